//! Check-in: signatures, the one-scan rule under concurrency, events, revocation, and
//! who may verify or list tickets.

use ed25519_dalek::SigningKey;
use ticketing_platform::auth::Role;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::notification::v1 as pb;
use ticketing_proto::notification::v1::TicketCodePayload;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn tampered_foreign_and_unknown_codes_are_refused() {
    let app = spawn_app().await;
    let show = app.publish_show("Tamper").await;
    let (_, confirmed, tickets) = issued(&app, &show, 1).await;
    let code = &tickets[0].code;
    let admin = Uuid::new_v4();

    let (kid, rest) = code.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    // Another ticket's payload under this signature (a seat upgrade, say).
    let mut forged = TicketCodePayload {
        ticket_id: Uuid::new_v4().to_string(),
        event_id: show.id.to_string(),
        booking_id: confirmed.booking_id.clone(),
        category_id: show.category.to_string(),
        seat_label: "VIP".into(),
        issued_at: tickets[0].issued_at,
    };
    let swapped_payload = {
        use base64::Engine as _;
        let encoded = prost::Message::encode_to_vec(&forged);
        format!("{kid}.{}.{signature}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(encoded))
    };
    let mut flipped = signature.to_owned().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped_signature = format!("{kid}.{payload}.{}", String::from_utf8(flipped).unwrap());
    let stranger = SigningKey::from_bytes(&rand::random());
    let foreign_key = ticketing_notification::domain::code::sign(kid, &stranger, &forged);
    let unknown_kid = ticketing_notification::domain::code::sign("no-such-key", &stranger, &forged);
    for bad in [swapped_payload, flipped_signature, foreign_key, unknown_kid, "garbage".into(), format!("{code}.x")] {
        let response = app.verify(admin, &[Role::Admin], &bad, show.id).await;
        assert_eq!(result(&response), pb::VerificationResult::InvalidSignature, "{bad}");
        assert!(response.ticket.is_none());
    }

    // Signed with the service's real key, but no such ticket was ever issued.
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed_private_key FROM ticket_signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let seed = crate::helpers::ticket_keys(&app.config.sealing).open(kid, &sealed).unwrap();
    let real = SigningKey::from_bytes(&seed.try_into().unwrap());
    forged.seat_label = "Nowhere".into();
    let unknown = ticketing_notification::domain::code::sign(kid, &real, &forged);
    let response = app.verify(admin, &[Role::Admin], &unknown, show.id).await;
    assert_eq!(result(&response), pb::VerificationResult::UnknownTicket);

    // None of that touched the real ticket.
    let response = app.verify(admin, &[Role::Admin], code, show.id).await;
    assert_eq!(result(&response), pb::VerificationResult::Valid);
}

#[tokio::test]
async fn a_ticket_for_another_event_is_wrong_event_and_stays_unscanned() {
    let app = spawn_app().await;
    let (concert, other) = (app.publish_show("Concert").await, app.publish_show("Other").await);
    let (buyer, confirmed, tickets) = issued(&app, &concert, 1).await;
    let response = app.verify(other.organizer, &[Role::Organizer], &tickets[0].code, other.id).await;
    assert_eq!(result(&response), pb::VerificationResult::WrongEvent);
    let ticket = response.ticket.expect("the ticket is identified");
    assert_eq!(ticket.event_id, concert.id.to_string());
    let after = app.tickets(buyer.id, &[Role::User], booking_id(&confirmed)).await.unwrap();
    assert_eq!(after[0].status, pb::TicketStatus::Issued as i32);
    let response = app.verify(concert.organizer, &[Role::Organizer], &tickets[0].code, concert.id).await;
    assert_eq!(result(&response), pb::VerificationResult::Valid);
}

#[tokio::test]
async fn twenty_gates_scanning_one_ticket_at_once_admit_it_once() {
    let app = spawn_app().await;
    let show = app.publish_show("Rush").await;
    let (_, _, tickets) = issued(&app, &show, 1).await;
    let scans = (0..20).map(|_| app.verify(show.organizer, &[Role::Organizer], &tickets[0].code, show.id));
    let responses = futures::future::join_all(scans).await;
    let valid = responses.iter().filter(|r| result(r) == pb::VerificationResult::Valid).count();
    let already = responses.iter().filter(|r| result(r) == pb::VerificationResult::AlreadyScanned).count();
    assert_eq!((valid, already), (1, 19));
    let first = responses.iter().find(|r| result(r) == pb::VerificationResult::Valid).unwrap();
    for r in &responses {
        assert_eq!(r.ticket.as_ref().unwrap().scanned_at, first.ticket.as_ref().unwrap().scanned_at);
    }
}

#[tokio::test]
async fn refunded_and_cancelled_bookings_revoke_their_tickets() {
    let app = spawn_app().await;
    let show = app.publish_show("Refunds").await;
    let (buyer, refunded_booking, refunded_tickets) = issued(&app, &show, 2).await;
    let (other_buyer, cancelled_booking, cancelled_tickets) = issued(&app, &show, 1).await;
    // One ticket was even scanned already: revocation still wins.
    let scanned = app.verify(show.organizer, &[Role::Organizer], &refunded_tickets[0].code, show.id).await;
    assert_eq!(result(&scanned), pb::VerificationResult::Valid);

    app.publish(BOOKING, &refunded_booking.booking_id, &refunded(&refunded_booking)).await;
    let cancel = ev::BookingCancelled {
        booking_id: cancelled_booking.booking_id.clone(),
        user_id: other_buyer.id.to_string(),
        event_id: show.id.to_string(),
        reason: ev::BookingCancellationReason::Admin as i32,
        ..Default::default()
    };
    app.publish(BOOKING, &cancel.booking_id, &cancel).await;

    for (owner, booking) in [(buyer.id, &refunded_booking), (other_buyer.id, &cancelled_booking)] {
        eventually("the tickets to be revoked", WAIT, || async {
            let tickets = app.tickets(owner, &[Role::User], booking_id(booking)).await.unwrap();
            tickets.iter().all(|t| t.status == pb::TicketStatus::Revoked as i32).then_some(())
        })
        .await;
    }
    for ticket in refunded_tickets.iter().chain(&cancelled_tickets) {
        let response = app.verify(show.organizer, &[Role::Organizer], &ticket.code, show.id).await;
        assert_eq!(result(&response), pb::VerificationResult::Revoked, "{}", ticket.id);
        assert_eq!(response.ticket.unwrap().status, pb::TicketStatus::Revoked as i32);
    }
}

#[tokio::test]
async fn a_revocation_is_refused_once_a_ticket_was_scanned_unless_forced() {
    let app = spawn_app().await;
    let show = app.publish_show("Attended").await;
    let (buyer, attended, tickets) = issued(&app, &show, 2).await;
    let scanned = app.verify(show.organizer, &[Role::Organizer], &tickets[0].code, show.id).await;
    assert_eq!(result(&scanned), pb::VerificationResult::Valid);

    let refused = app.revoke_as_booking(&attended, false).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(ticketing_platform::status::refusal_reason(&refused).as_deref(), Some("TICKET_SCANNED"));
    let unscanned = app.verify(show.organizer, &[Role::Organizer], &tickets[1].code, show.id).await;
    assert_eq!(result(&unscanned), pb::VerificationResult::Valid, "a refused revocation changed nothing");

    // An admin's refund goes through, and says someone went in.
    assert!(app.revoke_as_booking(&attended, true).await.unwrap().attended);
    assert!(app.revoke_as_booking(&attended, false).await.unwrap().attended, "repeating keeps the decision");
    let listed = app.tickets(buyer.id, &[Role::User], booking_id(&attended)).await.unwrap();
    assert!(listed.iter().all(|t| t.status == pb::TicketStatus::Revoked as i32), "{listed:?}");

    // A booking nobody went in on: revoked at once, and its tickets stop admitting.
    let (_, unused, tickets) = issued(&app, &show, 1).await;
    assert!(!app.revoke_as_booking(&unused, false).await.unwrap().attended);
    let late = app.verify(show.organizer, &[Role::Organizer], &tickets[0].code, show.id).await;
    assert_eq!(result(&late), pb::VerificationResult::Revoked);
}

#[tokio::test]
async fn tickets_of_a_booking_revoked_before_they_were_issued_are_issued_revoked() {
    let app = spawn_app().await;
    let show = app.publish_show("Early").await;
    let buyer = Buyer::new("early");
    app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    let confirmed = show.confirmed(&buyer, 2);
    assert!(!app.revoke_as_booking(&confirmed, false).await.unwrap().attended);
    app.publish(BOOKING, &confirmed.booking_id, &confirmed).await;
    let tickets = app.wait_for_tickets(buyer.id, booking_id(&confirmed), 2).await;
    assert!(tickets.iter().all(|t| t.status == pb::TicketStatus::Revoked as i32), "{tickets:?}");
}

#[tokio::test]
async fn a_revocation_racing_a_scan_lets_exactly_one_win() {
    let app = spawn_app().await;
    let show = app.publish_show("Race").await;
    for round in 0..20 {
        let (_, confirmed, tickets) = issued(&app, &show, 1).await;
        let (revoked, scanned) = tokio::join!(
            app.revoke_as_booking(&confirmed, false),
            app.verify(show.organizer, &[Role::Organizer], &tickets[0].code, show.id),
        );
        let admitted = result(&scanned) == pb::VerificationResult::Valid;
        match revoked {
            Ok(r) => {
                assert!(!admitted, "round {round}: revoked and admitted: {scanned:?}");
                assert!(!r.attended);
                assert_eq!(result(&scanned), pb::VerificationResult::Revoked, "round {round}");
            }
            Err(status) => {
                assert!(admitted, "round {round}: refused without a scan: {status:?}");
                assert_eq!(ticketing_platform::status::refusal_reason(&status).as_deref(), Some("TICKET_SCANNED"));
            }
        }
    }
}

#[tokio::test]
async fn only_booking_or_an_admin_may_revoke_and_ids_are_checked() {
    let app = spawn_app().await;
    let show = app.publish_show("Guarded revocations").await;
    let (_, confirmed, _) = issued(&app, &show, 1).await;
    // Another workload's token, without the tickets:revoke scope, is refused like a user's.
    for roles in [&[Role::User][..], &[Role::Organizer], &[Role::Service]] {
        let error = app.revoke(roles, &confirmed, false).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied, "{roles:?}");
    }
    assert!(app.revoke(&[Role::Admin], &confirmed, false).await.is_ok());
    let bad = ev::BookingConfirmed { booking_id: "nope".into(), user_id: String::new(), ..confirmed };
    let error = app.revoke_as_booking(&bad, false).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(error.message().contains("booking_id: must be a UUID; user_id: must be a UUID"), "{error:?}");
}

#[tokio::test]
async fn a_refund_request_revokes_the_tickets() {
    let app = spawn_app().await;
    let show = app.publish_show("Cancelled show").await;
    let (buyer, confirmed, tickets) = issued(&app, &show, 1).await;
    let requested = ev::BookingRefundRequested {
        booking_id: confirmed.booking_id.clone(),
        user_id: confirmed.user_id.clone(),
        event_id: confirmed.event_id.clone(),
        payment_id: confirmed.payment_id.clone(),
        reason: ev::BookingCancellationReason::EventCancelled as i32,
        ..Default::default()
    };
    app.publish(BOOKING, &confirmed.booking_id, &requested).await;
    eventually("the tickets to be revoked", WAIT, || async {
        let tickets = app.tickets(buyer.id, &[Role::User], booking_id(&confirmed)).await.unwrap();
        tickets.iter().all(|t| t.status == pb::TicketStatus::Revoked as i32).then_some(())
    })
    .await;
    let response = app.verify(show.organizer, &[Role::Organizer], &tickets[0].code, show.id).await;
    assert_eq!(result(&response), pb::VerificationResult::Revoked);
}

#[tokio::test]
async fn only_the_events_organizer_or_an_admin_may_verify() {
    let app = spawn_app().await;
    let show = app.publish_show("Guarded").await;
    let (buyer, _, tickets) = issued(&app, &show, 1).await;
    let code = &tickets[0].code;
    let denied = [
        app.try_verify(buyer.id, &[Role::User], code, show.id).await,
        app.try_verify(Uuid::new_v4(), &[Role::Organizer], code, show.id).await,
        app.try_verify(show.organizer, &[Role::User], code, show.id).await,
    ];
    for response in denied {
        assert_eq!(response.unwrap_err().code(), tonic::Code::PermissionDenied);
    }
    let request = pb::VerifyTicketRequest {
        code: code.clone(),
        event_id: show.id.to_string(),
        gate_id: String::new(),
        require_rotating: false,
    };
    let anonymous = app.client.clone().verify_ticket(request).await;
    assert_eq!(anonymous.unwrap_err().code(), tonic::Code::Unauthenticated);
    let invalid = app.try_verify(Uuid::new_v4(), &[Role::Admin], "", Uuid::nil()).await.unwrap_err();
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    let response = app.verify(Uuid::new_v4(), &[Role::Admin], code, show.id).await;
    assert_eq!(result(&response), pb::VerificationResult::Valid);
}

#[tokio::test]
async fn list_tickets_is_for_the_owner_or_an_admin() {
    let app = spawn_app().await;
    let show = Show::new("Mine");
    let (buyer, confirmed, tickets) = issued(&app, &show, 2).await;
    let booking = booking_id(&confirmed);
    assert_eq!(tickets.len(), 2);
    let as_admin = app.tickets(Uuid::new_v4(), &[Role::Admin], booking).await.unwrap();
    // The same tickets, without their owner's rotating-code secrets.
    let without_secrets: Vec<_> = tickets.iter().cloned().map(|t| pb::Ticket { rotation: None, ..t }).collect();
    assert_eq!(as_admin, without_secrets);
    let other = app.tickets(Uuid::new_v4(), &[Role::User], booking).await.unwrap_err();
    assert_eq!(other.code(), tonic::Code::PermissionDenied);
    let organizer = app.tickets(show.organizer, &[Role::Organizer], booking).await.unwrap_err();
    assert_eq!(organizer.code(), tonic::Code::PermissionDenied);
    // A booking nobody has heard of has no tickets, whoever asks.
    assert!(app.tickets(buyer.id, &[Role::User], Uuid::new_v4()).await.unwrap().is_empty());
    let request = pb::ListTicketsRequest { booking_id: "nope".into() };
    let invalid = app.client.clone().list_tickets(app.authed(request, buyer.id, &[Role::User])).await;
    assert_eq!(invalid.unwrap_err().code(), tonic::Code::InvalidArgument);
    let anonymous = app.client.clone().list_tickets(pb::ListTicketsRequest { booking_id: booking.to_string() }).await;
    assert_eq!(anonymous.unwrap_err().code(), tonic::Code::Unauthenticated);
}
