//! Refunds: full and partial, never more than remains, idempotent on their key or
//! request id, and asked for by booking through `booking.events`.

use std::time::Duration;

use ticketing_platform::auth::{Role, Scope};
use ticketing_platform::peers::CLIENT_ADDRESS;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::payment::v1 as pb;
use ticketing_testkit::eventually;
use tonic::Code;

use crate::helpers::{Booking, TestApp, decode, eur, spawn_app, types};

async fn paid(app: &TestApp, card: &str) -> (Booking, pb::PaymentDetails) {
    let booking = Booking::new();
    app.create_booking(&booking).await;
    let payment = app.charge(booking.user, booking.charge(card, "pay")).await.expect("charge");
    assert_eq!(payment.status(), pb::PaymentStatus::Succeeded);
    (booking, payment)
}

async fn wait_refunds(app: &TestApp, payment: &str, status: &str, count: i64) {
    let what = format!("{count} {status} refunds of {payment}");
    eventually(&what, Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds WHERE payment_id = $1::uuid AND status = $2")
            .bind(payment)
            .bind(status)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        if n >= count { Ok(()) } else { Err(format!("{n} of them")) }
    })
    .await;
}

#[tokio::test]
async fn partial_then_full_refunds_stop_at_the_amount_charged() {
    let app = spawn_app().await;
    let (booking, payment) = paid(&app, "tok_visa").await;

    let part = app.refund(&payment.id, Some(2000), "r1").await.expect("partial refund");
    assert_eq!(part.status(), pb::RefundStatus::Succeeded);
    assert_eq!((part.amount.clone(), part.booking_id.as_str()), (eur(2000), booking.id.to_string().as_str()));
    assert!(part.provider_reference.starts_with("re_sim_"));
    let after = app.payment(&payment.id).await;
    assert_eq!(after.status(), pb::PaymentStatus::PartiallyRefunded);
    assert_eq!(after.refunded_amount, eur(2000));

    assert_eq!(app.refund(&payment.id, Some(2000), "r1").await.unwrap(), part, "the key replays");
    let reused = app.refund(&payment.id, Some(1000), "r1").await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "same key, other request: {reused:?}");
    let too_much = app.refund(&payment.id, Some(3001), "r2").await.unwrap_err();
    assert_eq!(too_much.code(), Code::FailedPrecondition, "{too_much:?}");
    assert!(too_much.message().contains("3000"), "says what remains: {}", too_much.message());

    let rest = app.refund(&payment.id, None, "r3").await.expect("the rest");
    assert_eq!((rest.status(), rest.amount.clone()), (pb::RefundStatus::Succeeded, eur(3000)));
    let after = app.payment(&payment.id).await;
    assert_eq!((after.status(), after.refunded_amount), (pb::PaymentStatus::Refunded, eur(5000)));
    let nothing = app.refund(&payment.id, None, "r4").await.unwrap_err();
    assert_eq!(nothing.code(), Code::FailedPrecondition);
    let one_cent = app.refund(&payment.id, Some(1), "r5").await.unwrap_err();
    assert_eq!(one_cent.code(), Code::FailedPrecondition);

    let events = app.payment_events(booking.id, 3).await;
    assert_eq!(types(&events), ["PaymentSucceeded", "RefundSucceeded", "RefundSucceeded"]);
    let first: ev::RefundSucceeded = decode(&events[1]);
    assert_eq!(
        (first.refund_id.as_str(), first.amount.clone(), first.fully_refunded),
        (part.id.as_str(), eur(2000), false)
    );
    assert_eq!((first.refund_request_id.as_str(), first.payment_id.as_str()), ("r1", payment.id.as_str()));
    assert_eq!(first.user_id, booking.user.to_string());
    let second: ev::RefundSucceeded = decode(&events[2]);
    assert_eq!((second.amount, second.fully_refunded, second.refund_request_id.as_str()), (eur(3000), true, "r3"));
}

#[tokio::test]
async fn concurrent_partial_refunds_never_exceed_the_charge() {
    let app = std::sync::Arc::new(spawn_app().await);
    let (_, payment) = paid(&app, "tok_visa").await;
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let (app, id) = (app.clone(), payment.id.clone());
            tokio::spawn(async move { app.refund(&id, Some(1000), &format!("r{i}")).await })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let succeeded =
        results.iter().filter(|r| r.as_ref().is_ok_and(|r| r.status() == pb::RefundStatus::Succeeded)).count();
    assert_eq!(succeeded, 5, "five 10-euro refunds fit in 50 euros: {results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }
    let after = app.payment(&payment.id).await;
    assert_eq!((after.status(), after.refunded_amount), (pb::PaymentStatus::Refunded, eur(5000)));
}

#[tokio::test]
async fn refunds_are_for_the_platform_and_for_charged_payments_only() {
    let app = spawn_app().await;
    let (booking, payment) = paid(&app, "tok_visa").await;
    let request = pb::RefundRequest { payment_id: payment.id.clone(), ..Default::default() };
    let user = app.client.clone().refund(app.as_user(booking.user, request)).await.unwrap_err();
    assert_eq!(user.code(), Code::PermissionDenied, "the buyer asks booking, not payment");
    // Nor may a workload refund that was not granted payment:refund (the gateway, say).
    let request = pb::RefundRequest { payment_id: payment.id.clone(), ..Default::default() };
    let unscoped = app.issuer.as_service(request, uuid::Uuid::new_v4(), &[Scope::PaymentRead]);
    let workload = app.client.clone().refund(unscoped).await.unwrap_err();
    assert_eq!(workload.code(), Code::PermissionDenied, "{workload:?}");
    let usd = pb::RefundRequest {
        payment_id: payment.id.clone(),
        amount: Some(ticketing_proto::common::v1::Money { currency: "USD".into(), minor_units: 100 }),
        ..Default::default()
    };
    assert_eq!(app.client.clone().refund(app.as_service(usd)).await.unwrap_err().code(), Code::InvalidArgument);
    let missing = app.refund(&uuid::Uuid::new_v4().to_string(), None, "").await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let declined = Booking::new();
    app.create_booking(&declined).await;
    let failed = app.charge(declined.user, declined.charge("tok_decline", "")).await.unwrap();
    let refused = app.refund(&failed.id, None, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "nothing was charged: {refused:?}");
}

#[tokio::test]
async fn a_refund_requested_twice_by_booking_is_made_once() {
    let app = spawn_app().await;
    let (booking, payment) = paid(&app, "tok_visa").await;
    let request = booking.refund_requested(&payment.id, 0, "refund-req-1");
    let envelope = ticketing_platform::events::envelope(booking.id.to_string(), &request);
    app.republish(&envelope).await;
    app.republish(&envelope).await; // a redelivery
    app.publish(booking.id, &request).await; // booking asking again under the same request id
    wait_refunds(&app, &payment.id, "succeeded", 1).await;

    let events = app.payment_events(booking.id, 2).await;
    assert_eq!(types(&events), ["PaymentSucceeded", "RefundSucceeded"], "one refund, announced once");
    let refunded: ev::RefundSucceeded = decode(&events[1]);
    assert_eq!(
        (refunded.refund_request_id.as_str(), refunded.amount, refunded.fully_refunded),
        ("refund-req-1", eur(5000), true)
    );
    let refunds: i64 =
        sqlx::query_scalar("SELECT count(*) FROM simulated_refunds").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(refunds, 1, "one refund at the provider");
    assert_eq!(app.payment(&payment.id).await.status(), pb::PaymentStatus::Refunded);
}

#[tokio::test]
async fn refunds_booking_asks_for_that_cannot_be_made_are_announced_as_failed() {
    let app = spawn_app().await;

    // The provider refuses the refund.
    let (booking, payment) = paid(&app, "tok_refund_fail").await;
    app.publish(booking.id, &booking.refund_requested(&payment.id, 5000, "req-a")).await;
    wait_refunds(&app, &payment.id, "failed", 1).await;
    let events = app.payment_events(booking.id, 2).await;
    assert_eq!(types(&events), ["PaymentSucceeded", "RefundFailed"]);
    let failed: ev::RefundFailed = decode(&events[1]);
    assert_eq!((failed.failure_code.as_str(), failed.refund_request_id.as_str()), ("refund_failed", "req-a"));
    assert_eq!(failed.payment_id, payment.id);
    assert_eq!(app.payment(&payment.id).await.status(), pb::PaymentStatus::Succeeded, "still charged");

    // More than was charged.
    let (booking, payment) = paid(&app, "tok_visa").await;
    app.publish(booking.id, &booking.refund_requested(&payment.id, 9000, "req-b")).await;
    wait_refunds(&app, &payment.id, "failed", 1).await;
    let events = app.payment_events(booking.id, 2).await;
    assert_eq!(types(&events), ["PaymentSucceeded", "RefundFailed"]);
    assert_eq!(decode::<ev::RefundFailed>(&events[1]).failure_code, "amount_exceeds_remaining");
    let at_provider: i64 = sqlx::query_scalar("SELECT count(*) FROM simulated_refunds WHERE charge_id = $1")
        .bind(&payment.provider_reference)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(at_provider, 0, "never sent to the provider");
}

/// A refund an admin asks for is a privileged action, recorded on `audit.events` in the
/// transaction that records the refund (ADR 0046); booking's, settling a cancellation, is
/// its saga's and recorded by booking with the person behind it. A replay records nothing.
#[tokio::test]
async fn an_admins_refund_is_audited_once_and_bookings_is_not() {
    let app = spawn_app().await;
    let (booking, payment) = paid(&app, "tok_visa").await;
    app.refund(&payment.id, Some(1000), "by-booking").await.expect("booking's refund");

    let admin = uuid::Uuid::new_v4();
    let by_hand = || {
        let refund = pb::RefundRequest {
            payment_id: payment.id.clone(),
            amount: eur(1500),
            idempotency_key: "by-hand".into(),
            reason: "Goodwill".into(),
        };
        let mut request = app.issuer.authed(refund, admin, &[Role::Admin]);
        request.metadata_mut().insert(CLIENT_ADDRESS, "192.0.2.9".parse().unwrap());
        request
    };
    let refund = app.client.clone().refund(by_hand()).await.expect("an admin's refund").into_inner();
    assert_eq!(refund.status(), pb::RefundStatus::Succeeded);
    assert_eq!(app.client.clone().refund(by_hand()).await.unwrap().into_inner(), refund, "the key replays");

    let records = app.audit_records().await;
    assert_eq!(records.len(), 1, "the admin's refund, once: {records:?}");
    let record = &records[0];
    assert_eq!(
        (record.service.as_str(), record.action.as_str(), record.target_type.as_str(), record.target_id.as_str()),
        ("payment", "payment.refunded_by_hand", "payment", payment.id.as_str())
    );
    assert_eq!(
        (record.actor_id.clone(), record.actor_roles.as_slice()),
        (admin.to_string(), &["admin".to_owned()][..])
    );
    assert_eq!(record.client_address, "192.0.2.9");
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let money = |minor: i64| serde_json::json!({"currency": "EUR", "minor_units": minor});
    let booking_id = booking.id.to_string();
    assert_eq!(
        json(&record.before),
        serde_json::json!({"booking_id": booking_id, "amount": money(5000), "refunded_minor_units": 1000,
                           "status": "partially_refunded"})
    );
    assert_eq!(
        json(&record.after),
        serde_json::json!({"booking_id": booking_id, "refund_id": refund.id, "amount": money(1500),
                           "reason": "Goodwill"})
    );
}
