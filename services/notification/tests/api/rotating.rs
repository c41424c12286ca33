//! Rotating ticket codes (issue 16, finding 10): a screenshot stops admitting where gates
//! ask for rotating codes, static codes keep admitting where they do not, only the owner
//! gets a ticket's secret, and the signing key rotates without voiding issued tickets.
//!
//! Time is never waited for: a code is computed for the step it should be in (the
//! current one, or one a minute ago, as a screenshot would carry) with the service's
//! own TOTP function.

use chrono::{Duration, Utc};
use ticketing_notification::domain::rotating;
use ticketing_platform::auth::{Role, Scope};
use ticketing_proto::notification::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

/// What the owner's app shows `ago` before now: `<code>~<value of that step>`.
fn shown(ticket: &pb::Ticket, ago: Duration) -> String {
    let rotation = ticket.rotation.as_ref().expect("the owner gets the rotation");
    let secret = rotating::from_base32(&rotation.secret).expect("base32");
    rotating::code(&ticket.code, &secret, Utc::now() - ago)
}

/// A minute ago: four steps back, as a screenshot passed on would carry.
fn screenshot(ticket: &pb::Ticket) -> String {
    shown(ticket, Duration::seconds(60))
}

fn kid(code: &str) -> &str {
    code.split_once('.').unwrap().0
}

#[tokio::test]
async fn a_screenshot_is_refused_where_rotating_codes_are_required_and_a_current_code_admits_once() {
    let app = spawn_app().await;
    let show = app.publish_show("No screenshots").await;
    let (buyer, confirmed, tickets) = issued(&app, &show, 1).await;
    let ticket = &tickets[0];
    let (app, show) = (&app, &show);
    let gate = |code: String| async move {
        app.try_verify_at(show.organizer, &[Role::Organizer], &code, show.id, true).await.expect("verify")
    };

    let stale = gate(screenshot(ticket)).await;
    assert_eq!(result(&stale), pb::VerificationResult::StaleCode);
    assert_eq!(stale.ticket.unwrap().id, ticket.id, "the ticket is identified for the gate staff");
    let mut wrong = shown(ticket, Duration::zero()).into_bytes();
    let last = wrong.last_mut().unwrap();
    *last = if *last == b'0' { b'1' } else { b'0' };
    assert_eq!(result(&gate(String::from_utf8(wrong).unwrap()).await), pb::VerificationResult::StaleCode);
    let static_code = gate(ticket.code.clone()).await;
    assert_eq!(result(&static_code), pb::VerificationResult::RotatingCodeRequired);
    // A rotating code of a forged static code is no better than the forgery.
    let (head, signature) = ticket.code.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = pb::Ticket { code: format!("{head}.{flipped}{}", &signature[1..]), ..ticket.clone() };
    assert_eq!(result(&gate(shown(&forged, Duration::zero())).await), pb::VerificationResult::InvalidSignature);

    let listed = app.tickets(buyer.id, &[Role::User], booking_id(&confirmed)).await.unwrap();
    assert_eq!(listed[0].status, pb::TicketStatus::Issued as i32, "refused scans use nothing up");

    let admitted = gate(shown(ticket, Duration::zero())).await;
    assert_eq!(result(&admitted), pb::VerificationResult::Valid);
    let again = gate(shown(ticket, Duration::zero())).await;
    assert_eq!(result(&again), pb::VerificationResult::AlreadyScanned, "one scan admits once");
    let audited = app.count("SELECT count(*) FROM ticket_scans WHERE ticket_id = $1", ticket.id.parse().unwrap()).await;
    assert_eq!(audited, 5, "every check of the identified ticket is in the audit log");
}

#[tokio::test]
async fn a_static_code_still_admits_at_a_gate_that_allows_it_and_a_stale_code_nowhere() {
    let app = spawn_app().await;
    let show = app.publish_show("Offline gates").await;
    let (_, _, tickets) = issued(&app, &show, 3).await;
    let (app, show) = (&app, &show);
    let gate = |code: String| async move {
        app.try_verify_at(show.organizer, &[Role::Organizer], &code, show.id, false).await.expect("verify")
    };
    assert_eq!(result(&gate(tickets[0].code.clone()).await), pb::VerificationResult::Valid);
    assert_eq!(result(&gate(tickets[0].code.clone()).await), pb::VerificationResult::AlreadyScanned);
    // A time value is checked wherever it is shown.
    assert_eq!(result(&gate(screenshot(&tickets[1])).await), pb::VerificationResult::StaleCode);
    // Within one step either side (clock skew, a scan across a step boundary) it admits.
    assert_eq!(result(&gate(shown(&tickets[1], Duration::seconds(15))).await), pb::VerificationResult::Valid);
    assert_eq!(result(&gate(shown(&tickets[2], Duration::seconds(-15))).await), pb::VerificationResult::Valid);
}

#[tokio::test]
async fn a_platform_requiring_rotating_codes_refuses_static_ones_at_every_gate() {
    let app = spawn_with(|c| c.notification.tickets.require_rotating = true).await;
    let show = app.publish_show("Rotating only").await;
    let (_, _, tickets) = issued(&app, &show, 1).await;
    let static_code = app.try_verify_at(show.organizer, &[Role::Organizer], &tickets[0].code, show.id, false).await;
    assert_eq!(result(&static_code.unwrap()), pb::VerificationResult::RotatingCodeRequired);
    let current = shown(&tickets[0], Duration::zero());
    let admitted = app.try_verify_at(show.organizer, &[Role::Organizer], &current, show.id, false).await;
    assert_eq!(result(&admitted.unwrap()), pb::VerificationResult::Valid);
}

#[tokio::test]
async fn only_the_owner_gets_a_tickets_rotation_secret() {
    let app = spawn_app().await;
    let show = app.publish_show("Secrets").await;
    let (buyer, confirmed, tickets) = issued(&app, &show, 2).await;
    let booking = booking_id(&confirmed);
    let rotation = tickets[0].rotation.clone().expect("the owner gets the rotation");
    assert_eq!((rotation.period_seconds, rotation.digits, rotation.algorithm.as_str()), (15, 8, "SHA256"));
    assert_eq!(rotating::from_base32(&rotation.secret).expect("base32").len(), 32);
    assert_ne!(tickets[1].rotation.as_ref().unwrap().secret, rotation.secret, "each ticket has its own");
    let again = app.tickets(buyer.id, &[Role::User], booking).await.unwrap();
    assert_eq!(again[0].rotation.as_ref(), Some(&rotation), "derived, so the same every time");

    let as_admin = app.tickets(Uuid::new_v4(), &[Role::Admin], booking).await.unwrap();
    assert!(as_admin.iter().all(|t| t.rotation.is_none()), "an admin sees no secrets: {as_admin:?}");
    for (who, roles) in [(Uuid::new_v4(), &[Role::User][..]), (show.organizer, &[Role::Organizer])] {
        let denied = app.tickets(who, roles, booking).await.unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }
    // The emailed code carries no secret: the static code is all anyone else ever sees.
    assert!(!tickets[0].code.contains(&rotation.secret));
}

#[tokio::test]
async fn after_a_key_rotation_old_tickets_verify_and_new_tickets_use_the_new_key() {
    let app = spawn_app().await;
    let show = app.publish_show("Rotation").await;
    let (old_buyer, old_booking, old) = issued(&app, &show, 2).await;
    let old_kid = kid(&old[0].code).to_owned();

    let request = app.authed(pb::RotateTicketSigningKeyRequest {}, Uuid::new_v4(), &[Role::Admin]);
    let rotated = app.client.clone().rotate_ticket_signing_key(request).await.unwrap().into_inner();
    assert_eq!(rotated.retired_kid, old_kid);
    assert_ne!(rotated.active_kid, old_kid);

    let (_, _, new) = issued(&app, &show, 1).await;
    assert_eq!(kid(&new[0].code), rotated.active_kid, "new tickets are signed with the new key");
    let (_, jwks) = app.admin_get("/.well-known/ticket-keys.json").await;
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    let published: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(published.contains(&old_kid.as_str()) && published.contains(&rotated.active_kid.as_str()), "{jwks}");

    // Issued tickets keep their codes and secrets, and keep admitting.
    let listed = app.tickets(old_buyer.id, &[Role::User], booking_id(&old_booking)).await.unwrap();
    assert_eq!(listed, old);
    let (app, show) = (&app, &show);
    let scan = |code: String, rotating_only: bool| async move {
        let response = app.try_verify_at(show.organizer, &[Role::Organizer], &code, show.id, rotating_only).await;
        result(&response.expect("verify"))
    };
    assert_eq!(scan(old[0].code.clone(), false).await, pb::VerificationResult::Valid);
    assert_eq!(scan(shown(&old[1], Duration::zero()), true).await, pb::VerificationResult::Valid);
    assert_eq!(scan(shown(&new[0], Duration::zero()), true).await, pb::VerificationResult::Valid);

    // A second rotation retires the second key; the first stays retired and published.
    let request = app.authed(pb::RotateTicketSigningKeyRequest {}, Uuid::new_v4(), &[Role::Admin]);
    let second = app.client.clone().rotate_ticket_signing_key(request).await.unwrap().into_inner();
    assert_eq!(second.retired_kid, rotated.active_kid);
    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_signing_keys WHERE state = 'active'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let all: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ticket_signing_keys").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!((active, all), (1, 3));
}

#[tokio::test]
async fn only_an_admin_may_rotate_the_ticket_key() {
    let app = spawn_app().await;
    let show = app.publish_show("Guarded keys").await;
    let (_, _, tickets) = issued(&app, &show, 1).await;
    for roles in [&[Role::User][..], &[Role::Organizer], &[Role::Service]] {
        let request = app.authed(pb::RotateTicketSigningKeyRequest {}, Uuid::new_v4(), roles);
        let denied = app.client.clone().rotate_ticket_signing_key(request).await.unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{roles:?}");
    }
    let as_booking =
        app.issuer.as_service(pb::RotateTicketSigningKeyRequest {}, Uuid::new_v4(), &[Scope::TicketsRevoke]);
    let denied = app.client.clone().rotate_ticket_signing_key(as_booking).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let anonymous = app.client.clone().rotate_ticket_signing_key(pb::RotateTicketSigningKeyRequest {}).await;
    assert_eq!(anonymous.unwrap_err().code(), tonic::Code::Unauthenticated);

    let keys: Vec<String> =
        sqlx::query_scalar("SELECT kid FROM ticket_signing_keys").fetch_all(&app.db.pool).await.unwrap();
    assert_eq!(keys, [kid(&tickets[0].code)], "nothing rotated");
}
