//! The emails: welcome, tickets with one QR code per line item, cancellation, expiry
//! and refund; and the delivery log behind them.

use base64::Engine as _;
use ed25519_dalek::Verifier as _;
use ticketing_platform::auth::Role;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::notification::v1 as pb;
use ticketing_proto::notification::v1::get_delivery_status_request::Subject;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn user_registered_sends_one_welcome_email_and_logs_it_as_sent() {
    let app = spawn_app().await;
    let mut ada = Buyer::new("ada");
    ada.name = "Ada <Lovelace>".into();
    let envelope = app.publish(IDENTITY, &ada.id.to_string(), &ada.registered()).await;

    let emails = wait_for_emails(&app.smtp, &ada.email, 1).await;
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert_eq!(email.header_to, ada.email);
    assert_eq!(email.to, [ada.email.clone()], "the envelope recipient");
    assert_eq!(email.subject, "Welcome to Ticketing, Ada <Lovelace>");
    assert!(email.text.contains("Hello Ada <Lovelace>"), "{}", email.text);
    assert!(email.html.contains("Ada &lt;Lovelace&gt;") && !email.html.contains("<Lovelace>"), "{}", email.html);
    assert_eq!(app.smtp.messages()[0].from, "tickets@ticketing.test");

    let delivery = eventually("the delivery to be SENT", WAIT, || async {
        let deliveries = app.deliveries_of(&envelope).await;
        deliveries.into_iter().find(|d| d.status == pb::DeliveryStatus::Sent as i32)
    })
    .await;
    assert_eq!(delivery.template, "welcome");
    assert_eq!(delivery.recipient, ada.email);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.channel, pb::DeliveryChannel::Email as i32);
    assert!(delivery.sent_at.is_some() && delivery.last_error.is_empty());
    assert_eq!(delivery.source_event_id, envelope.id);
    // The Message-ID is the delivery id: a resend after a crash is recognisably the same message.
    assert_eq!(email.message_id, format!("{}@ticketing.test", delivery.id));

    let denied = app.deliveries(ada.id, &[Role::User], Subject::SourceEventId(envelope.id.clone())).await;
    assert_eq!(denied.unwrap_err().code(), tonic::Code::PermissionDenied);
    let (_, metrics) = app.admin_get("/metrics").await;
    let sent = metrics
        .lines()
        .find(|l| l.starts_with("notification_emails_total{") && l.contains(r#"template="welcome""#))
        .unwrap_or_else(|| panic!("no notification_emails_total for welcome:\n{metrics}"));
    assert!(sent.contains(r#"result="sent""#) && sent.ends_with(" 1"), "{sent}");
}

#[tokio::test]
async fn booking_confirmed_sends_one_qr_ticket_per_line_item_and_each_admits_once() {
    let app = spawn_app().await;
    let buyer = Buyer::new("grace");
    let show = app.publish_show("Eras & Friends").await;
    app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    let confirmed = show.confirmed(&buyer, 3);
    let booking = booking_id(&confirmed);
    app.publish(BOOKING, &confirmed.booking_id, &confirmed).await;

    let emails = wait_for_emails(&app.smtp, &buyer.email, 2).await;
    assert_eq!(emails.len(), 2, "a welcome and a tickets email");
    let email = emails.iter().find(|e| e.subject.contains("tickets")).expect("the tickets email");
    assert_eq!(email.subject, "Your 3 tickets for Eras & Friends");
    assert!(
        email.text.contains("EUR 150.00") && email.text.contains("2027-01-15 09:00 (Europe/Berlin)"),
        "{}",
        email.text
    );
    assert_eq!(email.pngs.len(), 3, "one QR code per line item");
    let scanned: Vec<String> = email.pngs.iter().map(|png| read_qr(png)).collect();

    let tickets = app.wait_for_tickets(buyer.id, booking, 3).await;
    let codes: Vec<String> = tickets.iter().map(|t| t.code.clone()).collect();
    assert_eq!(scanned, codes, "the QR codes are the tickets' codes, in line-item order");
    for (ticket, item) in tickets.iter().zip(&confirmed.line_items) {
        assert_eq!(ticket.id, item.line_item_id);
        assert_eq!(ticket.seat_label, item.label);
        assert_eq!(ticket.seat_id, item.seat_id);
        assert_eq!(ticket.event_id, show.id.to_string());
        assert_eq!(ticket.status, pb::TicketStatus::Issued as i32);
        assert!(email.text.contains(&ticket.code));
    }

    for ticket in &tickets {
        let first = app.verify(show.organizer, &[Role::Organizer], &ticket.code, show.id).await;
        assert_eq!(first.result, pb::VerificationResult::Valid as i32);
        let admitted = first.ticket.expect("the ticket");
        assert_eq!(admitted.id, ticket.id);
        assert_eq!(admitted.status, pb::TicketStatus::Scanned as i32);
        let second = app.verify(show.organizer, &[Role::Organizer], &ticket.code, show.id).await;
        assert_eq!(second.result, pb::VerificationResult::AlreadyScanned as i32);
        let again = second.ticket.expect("the ticket");
        assert_eq!(again.scanned_at, admitted.scanned_at, "the first scan's time");
    }
    let after = app.tickets(buyer.id, &[Role::User], booking).await.unwrap();
    assert!(after.iter().all(|t| t.status == pb::TicketStatus::Scanned as i32 && t.scanned_at.is_some()));
    let audited = app.count("SELECT count(*) FROM ticket_scans WHERE event_id = $1", show.id).await;
    assert_eq!(audited, 6, "every scan is in the audit log");

    // The buyer sees the booking's deliveries; another user does not.
    let mine = app.deliveries(buyer.id, &[Role::User], Subject::BookingId(booking.to_string())).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].template, "booking_confirmed");
    assert_eq!(mine[0].booking_id, booking.to_string());
    let theirs = app.deliveries(Uuid::new_v4(), &[Role::User], Subject::BookingId(booking.to_string())).await;
    assert_eq!(theirs.unwrap_err().code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn ticket_codes_verify_offline_with_the_published_keys() {
    let app = spawn_app().await;
    let buyer = Buyer::new("alan");
    let show = Show::new("Offline");
    app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    let confirmed = show.confirmed(&buyer, 1);
    app.publish(BOOKING, &confirmed.booking_id, &confirmed).await;
    let ticket = app.wait_for_tickets(buyer.id, booking_id(&confirmed), 1).await.remove(0);

    let (status, body) = app.admin_get("/.well-known/ticket-keys.json").await;
    assert_eq!(status, 200);
    let from_admin: serde_json::Value = serde_json::from_str(&body).unwrap();
    let response = app.client.clone().get_ticket_signing_keys(pb::GetTicketSigningKeysRequest {}).await.unwrap();
    let from_grpc: serde_json::Value = serde_json::from_str(&response.into_inner().jwks_json).unwrap();
    assert_eq!(from_admin, from_grpc);

    // What a gate does with no network: find the key by kid, check the signature, read the payload.
    let (signed, signature) = ticket.code.rsplit_once('.').unwrap();
    let (kid, payload) = signed.split_once('.').unwrap();
    let jwk = from_admin["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("the code's key");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let x: [u8; 32] = b64.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&b64.decode(signature).unwrap()).unwrap();
    key.verify(signed.as_bytes(), &signature).expect("the signature verifies offline");
    let payload: pb::TicketCodePayload = prost::Message::decode(b64.decode(payload).unwrap().as_slice()).unwrap();
    assert_eq!(payload.ticket_id, ticket.id);
    assert_eq!(payload.event_id, show.id.to_string());
    assert_eq!(payload.booking_id, confirmed.booking_id);
    assert_eq!(payload.category_id, show.category.to_string());
    assert_eq!(payload.seat_label, ticket.seat_label);
    assert_eq!(payload.issued_at, ticket.issued_at);
}

#[tokio::test]
async fn cancelled_expired_and_refunded_bookings_get_their_emails() {
    let app = spawn_app().await;
    let buyer = Buyer::new("barbara");
    let show = app.publish_show("Liskov Live").await;
    app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    let (unpaid, late) = (show.confirmed(&buyer, 1), show.confirmed(&buyer, 1));
    let cancelled = ev::BookingCancelled {
        booking_id: unpaid.booking_id.clone(),
        user_id: buyer.id.to_string(),
        event_id: show.id.to_string(),
        reason: ev::BookingCancellationReason::PaymentFailed as i32,
        ..Default::default()
    };
    app.publish(BOOKING, &cancelled.booking_id, &cancelled).await;
    let expired = ev::BookingExpired {
        booking_id: late.booking_id.clone(),
        user_id: buyer.id.to_string(),
        event_id: show.id.to_string(),
        hold_id: late.hold_id.clone(),
    };
    app.publish(BOOKING, &expired.booking_id, &expired).await;
    let paid = show.confirmed(&buyer, 2);
    app.publish(BOOKING, &paid.booking_id, &paid).await;
    // A refund comes after the tickets went out (one that overtakes the confirmation
    // suppresses the tickets email: see the delivery tests).
    wait_for_emails(&app.smtp, &buyer.email, 4).await;
    app.publish(BOOKING, &paid.booking_id, &refunded(&paid)).await;
    app.publish(PAYMENT, &paid.booking_id, &refund_succeeded(&paid)).await;

    let emails = wait_for_emails(&app.smtp, &buyer.email, 5).await;
    let subjects: Vec<&str> = emails.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(emails.len(), 5, "{subjects:?}");
    let find = |subject: &str| {
        emails.iter().find(|e| e.subject == subject).unwrap_or_else(|| panic!("{subject}: {subjects:?}"))
    };
    assert!(find("Your booking for Liskov Live was cancelled").text.contains("the payment did not go through"));
    assert!(find("Your booking for Liskov Live expired").text.contains(&late.booking_id));
    assert!(find("Your refund of EUR 100.00").text.contains("refunded in full"));
    assert_eq!(find("Your 2 tickets for Liskov Live").pngs.len(), 2);
}
