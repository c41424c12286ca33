//! The booking projection: order-tolerant, idempotent, and not stalled by poison.

use prost::Message as _;
use rdkafka::Message as _;
use ticketing_proto::events::v1 as ev;
use tonic::Code;

use crate::helpers::{Booking, eur, spawn_app};

#[tokio::test]
async fn events_arriving_out_of_order_never_reopen_a_booking() {
    let app = spawn_app().await;

    // Cancelled overtakes Created: the booking stays cancelled and cannot be paid.
    let booking = Booking::new();
    app.publish(booking.id, &booking.cancelled()).await;
    app.wait_booking(booking.id, "cancelled").await;
    app.publish(booking.id, &booking.created()).await;
    // A later booking's creation proves the earlier events were consumed (one partition).
    let marker = Booking::new();
    app.create_booking(&marker).await;
    assert_eq!(app.booking_status(booking.id).await.as_deref(), Some("cancelled"));
    let refused = app.charge(booking.user, booking.charge("tok_visa", "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // Expired, then a late Cancelled: the first ending stays.
    let expired = Booking::new();
    app.create_booking(&expired).await;
    let gone = ev::BookingExpired {
        booking_id: expired.id.to_string(),
        user_id: expired.user.to_string(),
        event_id: expired.event.to_string(),
        hold_id: String::new(),
    };
    app.publish(expired.id, &gone).await;
    app.wait_booking(expired.id, "expired").await;
    app.publish(expired.id, &expired.cancelled()).await;
    let confirmed = ev::BookingConfirmed {
        booking_id: expired.id.to_string(),
        user_id: expired.user.to_string(),
        event_id: expired.event.to_string(),
        total: eur(expired.total),
        ..Default::default()
    };
    app.publish(expired.id, &confirmed).await;
    let marker = Booking::new();
    app.create_booking(&marker).await;
    assert_eq!(app.booking_status(expired.id).await.as_deref(), Some("expired"));
}

#[tokio::test]
async fn poison_goes_to_the_dead_letter_topic_and_the_consumer_goes_on() {
    let app = spawn_app().await;
    let booking = Booking::new();

    app.publish_raw(&booking.id.to_string(), b"\xff\xfe not an envelope").await;
    let mut bad = booking.created();
    bad.user_id = "not-a-uuid".into();
    app.publish(booking.id, &bad).await;
    let mut no_total = booking.created();
    no_total.total = None;
    app.publish(booking.id, &no_total).await;
    // A refund of a payment that never existed can never be made.
    app.publish(booking.id, &booking.refund_requested(&uuid::Uuid::new_v4().to_string(), 100, "req")).await;

    // The consumer is not stuck behind them.
    app.create_booking(&booking).await;
    let payment = app.charge(booking.user, booking.charge("tok_visa", "")).await.expect("charge");
    assert!(!payment.id.is_empty());

    let dead = app.dead_letters(4).await;
    assert_eq!(dead.len(), 4, "each poison message is dead-lettered once");
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            use rdkafka::message::Headers as _;
            let headers = m.headers().expect("DLQ headers");
            let error = headers.iter().find(|h| h.key == "dlq.error").and_then(|h| h.value).unwrap_or_default();
            String::from_utf8_lossy(error).into_owned()
        })
        .collect();
    assert!(reasons[0].contains("envelope"), "{reasons:?}");
    assert!(reasons[1].contains("user_id"), "{reasons:?}");
    assert!(reasons[2].contains("total"), "{reasons:?}");
    assert!(reasons[3].contains("unknown payment") && !reasons[3].contains("retries"), "at once: {reasons:?}");
    // The good copy of the same booking was projected despite the poison before it.
    assert_eq!(app.booking_status(booking.id).await.as_deref(), Some("pending_payment"));
    let _ = ev::Envelope::decode(dead[1].payload().unwrap()).expect("dead letters keep the original bytes");
}
