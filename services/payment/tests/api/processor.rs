//! The processor-shaped HTTP adapter against a fake of the processor's API: charges,
//! retries, declines, refunds, reconciliation by lookup, and signed webhooks.

use std::sync::Arc;
use std::time::Duration;

use ticketing_payment::config::ProviderKind;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::payment::v1 as pb;
use tonic::Code;

use crate::fake_processor::{API_KEY, FakeProcessor, WEBHOOK_SECRET, now};
use crate::helpers::{Booking, TestApp, decode, eur, spawn_with, types};

async fn spawn_processor(slow: Duration, reconcile_interval: Duration) -> (TestApp, Arc<FakeProcessor>) {
    let fake = FakeProcessor::start(slow).await;
    let url = fake.url.clone();
    let app = spawn_with(move |c| {
        c.payment.provider = ProviderKind::Processor;
        c.payment.processor.base_url = url;
        c.payment.processor.api_key = API_KEY.into();
        c.payment.processor.webhook_secret = WEBHOOK_SECRET.into();
        c.payment.reconcile_interval = reconcile_interval;
    })
    .await;
    (app, fake)
}

async fn webhook(app: &TestApp, body: Vec<u8>, signature: String) -> Result<pb::HandleWebhookResponse, tonic::Status> {
    let request = pb::HandleWebhookRequest { provider: "processor".into(), body, signature };
    // Anonymous: the signature is the authentication.
    app.client.clone().handle_webhook(request).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_processor_charges_retries_declines_and_refunds_over_http() {
    let (app, fake) = spawn_processor(Duration::from_secs(3), Duration::from_millis(100)).await;

    let booking = Booking::new();
    app.create_booking(&booking).await;
    let paid = app.charge(booking.user, booking.charge("tok_visa", "k")).await.expect("charge");
    assert_eq!((paid.status(), paid.provider.as_str()), (pb::PaymentStatus::Succeeded, "processor"));
    assert!(paid.provider_reference.starts_with("ch_"), "{}", paid.provider_reference);
    let charge = fake.charge_of(&paid.id);
    assert_eq!((charge["amount"].as_i64(), charge["currency"].as_str()), (Some(5000), Some("eur")));
    assert_eq!(charge["metadata"]["booking_id"], booking.id.to_string());
    assert_eq!(fake.posts(), [("/v1/charges".to_owned(), paid.id.clone())], "the payment id is the key");

    // A 500 is retried under the same key, and the retry is charged once.
    let flaky = Booking::new();
    app.create_booking(&flaky).await;
    let retried = app.charge(flaky.user, flaky.charge("tok_processor_error", "k")).await.expect("charge");
    assert_eq!(retried.status(), pb::PaymentStatus::Succeeded);
    let keys: Vec<String> = fake.posts().into_iter().skip(1).map(|(_, key)| key).collect();
    assert_eq!(keys, [retried.id.clone(), retried.id.clone()], "two attempts, one key");

    // A 402 is a definite failure.
    let declined = Booking::new();
    app.create_booking(&declined).await;
    let failed = app.charge(declined.user, declined.charge("tok_decline", "k")).await.expect("an answer");
    assert_eq!((failed.status(), failed.failure_code.as_str()), (pb::PaymentStatus::Failed, "card_declined"));
    assert!(failed.provider_reference.starts_with("ch_"), "the failed charge is referenced");
    assert_eq!(types(&app.payment_events(declined.id, 1).await), ["PaymentFailed"]);

    // Refunds go through the same API, keyed by the refund id.
    let part = app.refund(&paid.id, Some(1500), "r1").await.expect("refund");
    assert_eq!(part.status(), pb::RefundStatus::Succeeded);
    assert_eq!(fake.refund_of(&part.id)["charge"], paid.provider_reference);
    assert_eq!(fake.posts().last().unwrap(), &("/v1/refunds".to_owned(), part.id.clone()));
    let too_much = app.refund(&paid.id, Some(4000), "r2").await.unwrap_err();
    assert_eq!(too_much.code(), Code::FailedPrecondition, "refused before reaching the processor");
    let events = app.payment_events(booking.id, 2).await;
    assert_eq!(types(&events), ["PaymentSucceeded", "RefundSucceeded"]);
    assert_eq!(decode::<ev::RefundSucceeded>(&events[1]).amount, eur(1500));
}

#[tokio::test]
async fn an_unknown_processor_charge_is_reconciled_by_looking_it_up() {
    let (app, fake) = spawn_processor(Duration::from_secs(3), Duration::from_millis(100)).await;
    let booking = Booking::new();
    app.create_booking(&booking).await;
    let unknown = app.charge(booking.user, booking.charge("tok_slow", "k")).await.expect("an answer");
    assert_eq!(unknown.status(), pb::PaymentStatus::Unknown);
    let settled = app.wait_payment(&unknown.id, pb::PaymentStatus::Succeeded, Duration::from_secs(20)).await;
    assert_eq!(settled.provider_reference, fake.charge_of(&unknown.id)["id"].as_str().unwrap());
    assert_eq!(fake.charge_count(), 1, "looked up, never charged again");
    let charges = fake.posts().iter().filter(|(path, _)| path == "/v1/charges").count();
    assert_eq!(charges, 1, "the timed-out call was not retried");
    assert_eq!(types(&app.payment_events(booking.id, 1).await), ["PaymentSucceeded"]);
}

#[tokio::test]
async fn signed_webhooks_settle_charges_and_refunds_once_and_forgeries_are_refused() {
    // Reconciliation is slow here, so only webhooks settle anything.
    let (app, fake) = spawn_processor(Duration::from_secs(3), Duration::from_secs(3600)).await;
    let booking = Booking::new();
    app.create_booking(&booking).await;
    let unknown = app.charge(booking.user, booking.charge("tok_pending", "k")).await.expect("an answer");
    assert_eq!(unknown.status(), pb::PaymentStatus::Unknown, "processing at the processor");

    let mut charge = fake.charge_of(&unknown.id);
    charge["status"] = "succeeded".into();
    let (body, signature) = FakeProcessor::webhook("evt_charge_1", "charge.succeeded", charge.clone());

    // Forgeries first: a wrong secret, a changed body, a replayed old signature.
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let refused = webhook(&app, tampered, signature.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let forged = signature.replace(&signature[signature.len() - 8..], "00000000");
    assert_eq!(webhook(&app, body.clone(), forged).await.unwrap_err().code(), Code::Unauthenticated);
    let (old_body, old_signature) =
        FakeProcessor::webhook_at("evt_charge_1", "charge.succeeded", charge.clone(), now() - 600);
    let stale = webhook(&app, old_body, old_signature).await.unwrap_err();
    assert_eq!(stale.code(), Code::Unauthenticated, "older than the 5-minute tolerance: {stale:?}");
    assert!(stale.message().contains("tolerance"), "{}", stale.message());
    let unsigned = webhook(&app, body.clone(), String::new()).await.unwrap_err();
    assert_eq!(unsigned.code(), Code::Unauthenticated);
    let other =
        pb::HandleWebhookRequest { provider: "simulated".into(), body: body.clone(), signature: signature.clone() };
    assert_eq!(app.client.clone().handle_webhook(other).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(app.payment(&unknown.id).await.status(), pb::PaymentStatus::Unknown, "nothing changed yet");

    let first = webhook(&app, body.clone(), signature.clone()).await.expect("accepted");
    assert_eq!((first.provider_event_id.as_str(), first.duplicate), ("evt_charge_1", false));
    assert_eq!(app.payment(&unknown.id).await.status(), pb::PaymentStatus::Succeeded);
    let again = webhook(&app, body, signature).await.expect("a replay is acknowledged");
    assert!(again.duplicate, "a replayed event id has no effect");
    // Another event about the same, already settled charge changes nothing either.
    let (late_body, late_signature) = FakeProcessor::webhook("evt_charge_2", "charge.failed", {
        let mut failed = charge.clone();
        failed["status"] = "failed".into();
        failed
    });
    assert!(!webhook(&app, late_body, late_signature).await.unwrap().duplicate);
    assert_eq!(app.payment(&unknown.id).await.status(), pb::PaymentStatus::Succeeded);

    // A refund the processor leaves pending is settled by its webhook.
    let pending = app.refund(&unknown.id, None, "r1").await.expect("refund");
    assert_eq!(pending.status(), pb::RefundStatus::Pending);
    let mut refund = fake.refund_of(&pending.id);
    refund["status"] = "succeeded".into();
    let (body, signature) = FakeProcessor::webhook("evt_refund_1", "refund.succeeded", refund);
    assert!(!webhook(&app, body, signature).await.unwrap().duplicate);
    let after = app.payment(&unknown.id).await;
    assert_eq!((after.status(), after.refunded_amount), (pb::PaymentStatus::Refunded, eur(5000)));

    let (ignored_body, ignored_signature) =
        FakeProcessor::webhook("evt_other", "customer.created", serde_json::json!({}));
    assert!(!webhook(&app, ignored_body, ignored_signature).await.unwrap().duplicate, "acknowledged, ignored");

    let events = app.payment_events(booking.id, 2).await;
    assert_eq!(types(&events), ["PaymentSucceeded", "RefundSucceeded"], "each settled once");
    assert!(decode::<ev::RefundSucceeded>(&events[1]).fully_refunded);
}
