//! Unknown outcomes: a charge whose answer came too late, and charges a crashed replica
//! left pending, are settled from the provider's own record and never charged twice.

use std::time::Duration;

use ticketing_proto::events::v1 as ev;
use ticketing_proto::payment::v1 as pb;

use crate::helpers::{Booking, decode, spawn_app, spawn_replica, types};

#[tokio::test]
async fn a_slow_card_is_unknown_until_reconciliation_finds_it_charged() {
    let app = spawn_app().await;
    let booking = Booking::new();
    app.create_booking(&booking).await;

    let unknown = app.charge(booking.user, booking.charge("tok_slow", "k")).await.expect("an answer");
    assert_eq!(unknown.status(), pb::PaymentStatus::Unknown, "the deadline passed first: {unknown:?}");
    assert_eq!(app.ledger_charges().await, 1, "yet the charge landed at the provider");

    // Neither a repeat of the call nor another key charges again.
    let replay = app.charge(booking.user, booking.charge("tok_slow", "k")).await.expect("replay");
    assert_eq!(replay, unknown, "the first answer is replayed");
    let other = app.charge(booking.user, booking.charge("tok_visa", "k2")).await.unwrap_err();
    assert_eq!(other.code(), tonic::Code::FailedPrecondition, "an unknown charge blocks a new one");

    let settled = app.wait_payment(&unknown.id, pb::PaymentStatus::Succeeded, Duration::from_secs(20)).await;
    assert!(settled.provider_reference.starts_with("ch_sim_"));
    assert_eq!(app.ledger_charges().await, 1, "still one charge");
    let events = app.payment_events(booking.id, 1).await;
    assert_eq!(types(&events), ["PaymentSucceeded"], "exactly one event");
    assert_eq!(decode::<ev::PaymentSucceeded>(&events[0]).payment_id, unknown.id);
}

/// A payment row committed as pending whose replica died before or after calling the
/// provider; the reconciler takes it over once it is stale.
async fn crashed_payment(app: &crate::helpers::TestApp, booking: &Booking, card: &str) -> uuid::Uuid {
    crashed_payment_of(app, booking, card, "simulated").await
}

async fn crashed_payment_of(
    app: &crate::helpers::TestApp,
    booking: &Booking,
    card: &str,
    provider: &str,
) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, booking_id, user_id, currency, amount_minor, status, provider, card_token,
                               next_check_at)
         VALUES ($1, $2, $3, 'EUR', $4, 'pending', $6, $5, now() - interval '1 second')",
    )
    .bind(id)
    .bind(booking.id)
    .bind(booking.user)
    .bind(booking.total)
    .bind(card)
    .bind(provider)
    .execute(&app.db.pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn charges_left_pending_by_a_crash_are_settled_without_charging_twice() {
    let app = spawn_app().await;

    // Died before the provider heard of it: submitted again under the same key.
    let before = Booking::new();
    app.create_booking(&before).await;
    let id = crashed_payment(&app, &before, "tok_visa").await;
    app.wait_payment(&id.to_string(), pb::PaymentStatus::Succeeded, Duration::from_secs(20)).await;
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM simulated_charges").fetch_all(&app.db.pool).await.unwrap();
    assert_eq!(keys, [id.to_string()], "charged once, under the payment's key");

    // Died after the provider charged: found, not charged again.
    let after = Booking::new();
    app.create_booking(&after).await;
    let id = crashed_payment(&app, &after, "tok_decline").await;
    sqlx::query(
        "INSERT INTO simulated_charges (idempotency_key, id, card_token, currency, amount_minor, status, failure_code,
                                        failure_message, settles_at)
         VALUES ($1, 'ch_sim_landed', 'tok_decline', 'EUR', 5000, 'failed', 'card_declined', 'declined', now())",
    )
    .bind(id.to_string())
    .execute(&app.db.pool)
    .await
    .unwrap();
    let failed = app.wait_payment(&id.to_string(), pb::PaymentStatus::Failed, Duration::from_secs(20)).await;
    assert_eq!((failed.provider_reference.as_str(), failed.failure_code.as_str()), ("ch_sim_landed", "card_declined"));
    assert_eq!(app.ledger_charges().await, 2, "one charge per payment");

    assert_eq!(types(&app.payment_events(before.id, 1).await), ["PaymentSucceeded"]);
    assert_eq!(types(&app.payment_events(after.id, 1).await), ["PaymentFailed"]);

    // A payment made through another provider (before a configuration change) is never
    // submitted to this one.
    let elsewhere = Booking::new();
    app.create_booking(&elsewhere).await;
    let id = crashed_payment_of(&app, &elsewhere, "tok_visa", "processor").await;
    // Due at once: two reconciler rounds later it would have been submitted.
    app.service.wait_job_rounds("reconciler", 2).await;
    assert_eq!(app.payment(&id.to_string()).await.status(), pb::PaymentStatus::Pending);
    assert_eq!(app.ledger_charges().await, 2, "nothing charged here");
}

#[tokio::test]
async fn two_replicas_reconcile_each_charge_once() {
    let app = spawn_app().await;
    let _replica = spawn_replica(&app).await;
    let bookings: Vec<Booking> = (0..4).map(|_| Booking::new()).collect();
    for booking in &bookings {
        app.create_booking(booking).await;
    }
    let charges = bookings.iter().map(|b| app.charge(b.user, b.charge("tok_slow", "k")));
    let unknown: Vec<pb::PaymentDetails> =
        futures::future::join_all(charges).await.into_iter().map(|r| r.expect("an answer")).collect();
    for payment in &unknown {
        assert_eq!(payment.status(), pb::PaymentStatus::Unknown);
        app.wait_payment(&payment.id, pb::PaymentStatus::Succeeded, Duration::from_secs(20)).await;
    }
    for booking in &bookings {
        assert_eq!(types(&app.payment_events(booking.id, 1).await), ["PaymentSucceeded"], "one event per charge");
    }
    assert_eq!(app.ledger_charges().await, 4);
}
