//! One charge at a time: every test card, its answer and its event, and every refusal.

use std::time::Duration;

use ticketing_proto::events::v1 as ev;
use ticketing_proto::payment::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{Booking, decode, eur, spawn_app, types};

#[tokio::test]
async fn a_good_card_is_charged_once_and_announced() {
    let app = spawn_app().await;
    let booking = Booking::new();
    app.create_booking(&booking).await;

    let paid = app.charge(booking.user, booking.charge("tok_visa", "k1")).await.expect("charge");
    assert_eq!(paid.status(), pb::PaymentStatus::Succeeded);
    assert_eq!(paid.booking_id, booking.id.to_string());
    assert_eq!(paid.user_id, booking.user.to_string());
    assert_eq!(paid.amount, eur(5000));
    assert_eq!(paid.refunded_amount, eur(0));
    assert_eq!(paid.provider, "simulated");
    assert!(paid.provider_reference.starts_with("ch_sim_"), "{}", paid.provider_reference);
    assert_eq!(app.ledger_charges().await, 1);

    // The same key replays the first answer, and charges nothing more.
    let replay = app.charge(booking.user, booking.charge("tok_visa", "k1")).await.expect("replay");
    assert_eq!(replay, paid);
    // The same key with another request is refused.
    let reused = app.charge(booking.user, booking.charge("tok_mastercard", "k1")).await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    // Another key finds the booking paid.
    let again = app.charge(booking.user, booking.charge("tok_visa", "k2")).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains(&paid.id), "names the payment: {}", again.message());
    assert_eq!(app.ledger_charges().await, 1, "still one charge at the provider");

    let events = app.payment_events(booking.id, 1).await;
    assert_eq!(types(&events), ["PaymentSucceeded"]);
    let succeeded: ev::PaymentSucceeded = decode(&events[0]);
    assert_eq!(succeeded.payment_id, paid.id);
    assert_eq!(succeeded.booking_id, booking.id.to_string());
    assert_eq!(succeeded.user_id, booking.user.to_string());
    assert_eq!(succeeded.amount, eur(5000));
    assert_eq!(succeeded.provider, "simulated");
    assert_eq!(succeeded.provider_reference, paid.provider_reference);
}

#[tokio::test]
async fn declines_fail_the_payment_and_a_new_card_may_follow() {
    let app = spawn_app().await;
    for (card, code) in [("tok_decline", "card_declined"), ("tok_insufficient_funds", "insufficient_funds")] {
        let booking = Booking::new();
        app.create_booking(&booking).await;
        let failed = app.charge(booking.user, booking.charge(card, "k1")).await.expect("an answer");
        assert_eq!(failed.status(), pb::PaymentStatus::Failed, "{card}");
        assert_eq!(failed.failure_code, code);
        assert!(!failed.failure_message.is_empty());

        let events = app.payment_events(booking.id, 1).await;
        assert_eq!(types(&events), ["PaymentFailed"], "{card}");
        let event: ev::PaymentFailed = decode(&events[0]);
        assert_eq!(event.payment_id, failed.id);
        assert_eq!(event.failure_code, code);
        assert_eq!(event.amount, eur(5000));

        // A failed charge is not a live one: another card may be tried.
        let paid = app.charge(booking.user, booking.charge("tok_visa", "k2")).await.expect("second card");
        assert_eq!(paid.status(), pb::PaymentStatus::Succeeded);
        assert_ne!(paid.id, failed.id);
        let latest = app
            .client
            .clone()
            .get_payment(app.as_user(
                booking.user,
                pb::GetPaymentRequest {
                    lookup: Some(pb::get_payment_request::Lookup::BookingId(booking.id.to_string())),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(latest.id, paid.id, "the booking's payment is the live one");
    }
}

#[tokio::test]
async fn processor_errors_are_retried_under_the_same_key() {
    let app = spawn_app().await;
    let booking = Booking::new();
    app.create_booking(&booking).await;
    let paid = app.charge(booking.user, booking.charge("tok_processor_error", "k")).await.expect("charge");
    assert_eq!(paid.status(), pb::PaymentStatus::Succeeded, "the retry went through: {paid:?}");
    let keys: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM simulated_failed_attempts")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(keys, std::slice::from_ref(&paid.id), "the first attempt failed under the payment's own key");
    assert_eq!(app.ledger_charges().await, 1);
    assert_eq!(types(&app.payment_events(booking.id, 1).await), ["PaymentSucceeded"]);
}

#[tokio::test]
async fn an_unknown_booking_is_retried_later_and_then_charged() {
    let app = spawn_app().await;
    let booking = Booking::new();
    let early = app.charge(booking.user, booking.charge("tok_visa", "k")).await.unwrap_err();
    assert_eq!(early.code(), Code::Unavailable, "{early:?}");
    let retry = early.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO));
    assert_eq!(app.ledger_charges().await, 0);

    app.create_booking(&booking).await;
    // The same key works now: the transient refusal was not stored.
    let paid = app.charge(booking.user, booking.charge("tok_visa", "k")).await.expect("charge");
    assert_eq!(paid.status(), pb::PaymentStatus::Succeeded);
}

#[tokio::test]
async fn strangers_wrong_amounts_and_dead_bookings_are_refused() {
    let app = spawn_app().await;
    let booking = Booking::new();
    app.create_booking(&booking).await;

    let stranger = app.charge(uuid::Uuid::new_v4(), booking.charge("tok_visa", "")).await.unwrap_err();
    assert_eq!(stranger.code(), Code::PermissionDenied, "{stranger:?}");
    let mut wrong = booking.charge("tok_visa", "");
    wrong.amount = eur(4999);
    let wrong = app.charge(booking.user, wrong).await.unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument, "{wrong:?}");
    assert!(wrong.message().contains("amount"));
    let mut currency = booking.charge("tok_visa", "");
    currency.amount = Some(ticketing_proto::common::v1::Money { currency: "USD".into(), minor_units: 5000 });
    assert_eq!(app.charge(booking.user, currency).await.unwrap_err().code(), Code::InvalidArgument);
    let anonymous = app.client.clone().charge(booking.charge("tok_visa", "")).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut invalid = booking.charge("", "");
    invalid.booking_id = "nope".into();
    invalid.amount = None;
    let invalid = app.charge(booking.user, invalid).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        invalid.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["booking_id", "amount", "card_token"]);

    // Expired by the clock, though booking has not said so yet.
    let mut expired = Booking::new();
    expired.expires_at = std::time::SystemTime::now() - Duration::from_secs(1);
    app.create_booking(&expired).await;
    let late = app.charge(expired.user, expired.charge("tok_visa", "")).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");

    // Cancelled by booking.
    let cancelled = Booking::new();
    app.create_booking(&cancelled).await;
    app.publish(cancelled.id, &cancelled.cancelled()).await;
    app.wait_booking(cancelled.id, "cancelled").await;
    let refused = app.charge(cancelled.user, cancelled.charge("tok_visa", "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    assert_eq!(app.ledger_charges().await, 0, "nothing was charged");
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(payments, 0, "no payment was even recorded");
}

#[tokio::test]
async fn payments_are_shown_to_their_payer_and_the_platform_only() {
    let app = spawn_app().await;
    let booking = Booking::new();
    app.create_booking(&booking).await;
    let paid = app.charge(booking.user, booking.charge("tok_visa", "")).await.unwrap();
    let by_id = || pb::GetPaymentRequest { lookup: Some(pb::get_payment_request::Lookup::PaymentId(paid.id.clone())) };

    let mine = app.client.clone().get_payment(app.as_user(booking.user, by_id())).await.unwrap().into_inner();
    assert_eq!(mine, paid);
    let admin = app.issuer.authed(by_id(), uuid::Uuid::new_v4(), &[ticketing_platform::auth::Role::Admin]);
    assert_eq!(app.client.clone().get_payment(admin).await.unwrap().into_inner(), paid);
    assert_eq!(app.payment(&paid.id).await, paid, "the booking service");
    let other = app.client.clone().get_payment(app.as_user(uuid::Uuid::new_v4(), by_id())).await.unwrap_err();
    assert_eq!(other.code(), Code::NotFound, "another user learns nothing");
    let missing = pb::GetPaymentRequest {
        lookup: Some(pb::get_payment_request::Lookup::PaymentId(uuid::Uuid::new_v4().to_string())),
    };
    assert_eq!(app.client.clone().get_payment(app.as_service(missing)).await.unwrap_err().code(), Code::NotFound);
}
