//! Cancelling: an unpaid booking releases its hold; a paid one is refunded once its tickets
//! are revoked, as the event's policy allows buyers (admins refund by hand, saying why);
//! what has ended cannot be cancelled, and someone else's booking cannot be touched.

use prost::Name as _;
use ticketing_platform::auth::Role;
use ticketing_platform::status::refusal_reason;
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::notification::v1 as notification;
use tonic::{Code, Status};

use crate::harness::{BookingService, FENCING_TOKEN, bad_fields, from_now, on_sale};

/// The last event booking committed about `booking`, as `M`.
async fn last_event<M: prost::Message + prost::Name + Default>(service: &BookingService, booking: &str) -> M {
    let outbox = service.outbox(booking).await;
    let last = outbox.last().expect("an event");
    ticketing_platform::events::payload(last).unwrap_or_else(|e| panic!("{e}: {:?}", last.r#type))
}

async fn status(service: &BookingService, token: &str, booking: &str) -> pb::BookingStatus {
    service.get(token, booking).await.expect("the booking").status()
}

#[tokio::test]
async fn a_buyer_cancels_an_unpaid_booking_and_its_hold_is_released() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let booking = service.book(&(buyer, token.clone()), &on_sale()).await;
    let cancelled = service.cancel(&token, &booking.id, "changed my mind", "").await.expect("the buyer cancels");
    assert_eq!(cancelled.status(), pb::BookingStatus::Cancelled);
    assert_eq!(cancelled.cancellation_reason, "changed my mind");
    let released = service.peers.inventory.requests::<inventory::ReleaseRequest>("release");
    assert_eq!(released, [inventory::ReleaseRequest { hold_id: booking.hold_id.clone() }]);
    assert_eq!(status(&service, &token, &booking.id).await, pb::BookingStatus::Cancelled);

    let event: ev::BookingCancelled = last_event(&service, &booking.id).await;
    assert_eq!(event.reason(), ev::BookingCancellationReason::UserRequested);
    assert_eq!((event.cancelled_by, event.reason_detail), (buyer.to_string(), "changed my mind".to_owned()));
}

#[tokio::test]
async fn the_instants_a_call_answers_are_those_a_later_read_shows() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let created = service.book(&(buyer, token.clone()), &on_sale()).await;
    let read = service.get(&token, &created.id).await.expect("the buyer reads it");
    assert_eq!((&read.created_at, &read.updated_at), (&created.created_at, &created.updated_at));
    assert_eq!(created.created_at, created.updated_at);

    let cancelled = service.cancel(&token, &created.id, "", "").await.expect("the buyer cancels");
    let instant = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(ticketing_kernel::time::from_proto);
    assert!(instant(&cancelled.updated_at) > instant(&created.updated_at), "{cancelled:?}");
    let read = service.get(&token, &created.id).await.expect("the buyer reads it");
    assert_eq!((&read.created_at, &read.updated_at), (&created.created_at, &cancelled.updated_at));
}

#[tokio::test]
async fn someone_elses_booking_cannot_be_cancelled_but_an_admin_may() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    let (organizer, organizer_token) = service.account(Role::Organizer);
    service.organizes(organizer, &booking.event_id).await;
    let (_, stranger) = service.account(Role::User);
    for token in [&stranger, &organizer_token] {
        let refused = service.cancel(token, &booking.id, "", "").await.unwrap_err();
        assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    }
    assert_eq!(service.peers.inventory.calls("release"), 0);
    assert_eq!(status(&service, &buyer.1, &booking.id).await, pb::BookingStatus::PendingPayment);

    let (admin, admin_token) = service.account(Role::Admin);
    service.cancel(&admin_token, &booking.id, "fraud", "").await.expect("an admin cancels");
    let event: ev::BookingCancelled = last_event(&service, &booking.id).await;
    assert_eq!((event.reason(), event.cancelled_by), (ev::BookingCancellationReason::Admin, admin.to_string()));
}

#[tokio::test]
async fn what_was_cancelled_or_expired_cannot_be_cancelled_again() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let event = on_sale();
    let cancelled = service.book(&buyer, &event).await;
    service.cancel(&buyer.1, &cancelled.id, "", "").await.expect("the first cancellation");
    let expired = service.book(&buyer, &event).await;
    let hold_expired = ev::HoldExpired { hold_id: expired.hold_id.clone(), ..Default::default() };
    service.deliver(&hold_expired).await;
    assert_eq!(status(&service, &buyer.1, &expired.id).await, pb::BookingStatus::Expired);

    for (booking, state) in [(&cancelled, "cancelled"), (&expired, "expired")] {
        let refused = service.cancel(&buyer.1, &booking.id, "", "").await.unwrap_err();
        let message = format!("the booking is {state} and cannot be cancelled");
        assert_eq!((refused.code(), refused.message()), (Code::FailedPrecondition, message.as_str()));
    }
    assert_eq!(service.peers.inventory.calls("release"), 1, "only the first cancellation released a hold");
}

#[tokio::test]
async fn a_repeated_cancellation_replays_its_answer() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    let first = service.cancel(&buyer.1, &booking.id, "", "cancel-1").await.expect("cancelled");
    let again = service.cancel(&buyer.1, &booking.id, "", "cancel-1").await.expect("the same answer");
    assert_eq!(again, first);
    assert_eq!(service.peers.inventory.calls("release"), 1);
    let reworded = service.cancel(&buyer.1, &booking.id, "another reason", "cancel-1").await.unwrap_err();
    assert_eq!(bad_fields(&reworded), ["idempotency_key"]);
}

#[tokio::test]
async fn a_hold_inventory_cannot_release_leaves_the_booking_unpaid() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    service.peers.inventory.answer::<inventory::HoldDetails>("release", Err(Status::unavailable("down")));
    let failed = service.cancel(&buyer.1, &booking.id, "", "").await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert_eq!(status(&service, &buyer.1, &booking.id).await, pb::BookingStatus::PendingPayment);
    assert_eq!(service.announced(&booking.id).await, [ev::BookingCreated::full_name()]);
}

#[tokio::test]
async fn a_paid_booking_is_refunded_once_its_tickets_are_revoked() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    service.pay(&booking).await;
    let confirmed = service.get(&buyer.1, &booking.id).await.expect("the booking");
    assert_eq!(confirmed.status(), pb::BookingStatus::Confirmed);
    let sold = inventory::ConfirmRequest {
        hold_id: booking.hold_id.clone(),
        fencing_token: FENCING_TOKEN,
        booking_id: booking.id.clone(),
    };
    assert_eq!(service.peers.inventory.requests::<inventory::ConfirmRequest>("confirm"), [sold]);

    let refunding = service.cancel(&buyer.1, &booking.id, "cannot make it", "").await.expect("the buyer cancels");
    assert_eq!(refunding.status(), pb::BookingStatus::RefundPending);
    let revoked = service.peers.notification.requests::<notification::RevokeTicketsRequest>("revoke_tickets");
    assert_eq!(revoked.len(), 1);
    assert_eq!((revoked[0].booking_id.as_str(), revoked[0].force), (booking.id.as_str(), false));
    let refund: ev::BookingRefundRequested = last_event(&service, &booking.id).await;
    assert_eq!(refund.reason(), ev::BookingCancellationReason::UserRequested);
    assert_eq!((refund.payment_id, refund.amount), (confirmed.payment_id, booking.total));
    assert!(refund.restock, "nobody went in: the seats go back on sale");
    assert_eq!(service.peers.inventory.calls("release"), 0, "a sold hold is restocked, not released");
}

#[tokio::test]
async fn buyers_may_not_cancel_what_the_events_policy_closed() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let mut final_sale = on_sale();
    final_sale.cancellation_policy =
        Some(catalog::CancellationPolicy { no_buyer_cancellation: true, cutoff_minutes: 0 });
    let mut too_late = on_sale();
    too_late.starts_at = from_now(chrono::Duration::minutes(30));
    too_late.cancellation_policy =
        Some(catalog::CancellationPolicy { no_buyer_cancellation: false, cutoff_minutes: 60 });
    for event in [final_sale, too_late] {
        let booking = service.book(&buyer, &event).await;
        service.pay(&booking).await;
        let refused = service.cancel(&buyer.1, &booking.id, "", "").await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert_eq!(refusal_reason(&refused).as_deref(), Some("CANCELLATION_CLOSED"));
        assert_eq!(status(&service, &buyer.1, &booking.id).await, pb::BookingStatus::Confirmed);
    }
    assert_eq!(service.peers.notification.calls("revoke_tickets"), 0);
}

#[tokio::test]
async fn an_admin_refunds_by_hand_whatever_the_policy_and_must_say_why() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let mut event = on_sale();
    event.cancellation_policy = Some(catalog::CancellationPolicy { no_buyer_cancellation: true, cutoff_minutes: 0 });
    let booking = service.book(&buyer, &event).await;
    service.pay(&booking).await;
    let (_, admin) = service.account(Role::Admin);
    let refused = service.cancel(&admin, &booking.id, "  ", "").await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["reason"]);

    // Someone went in on a ticket: revoked all the same, but the seat is not sold again.
    service.peers.notification.answer("revoke_tickets", Ok(notification::RevokeTicketsResponse { attended: true }));
    let refunding = service.cancel(&admin, &booking.id, "the show was cut short", "").await.expect("refunded");
    assert_eq!(refunding.status(), pb::BookingStatus::RefundPending);
    let revoked = service.peers.notification.requests::<notification::RevokeTicketsRequest>("revoke_tickets");
    assert!(revoked.iter().all(|r| r.force), "an admin's refund revokes scanned tickets too");
    let refund: ev::BookingRefundRequested = last_event(&service, &booking.id).await;
    assert_eq!(refund.reason(), ev::BookingCancellationReason::Admin);
    assert!(!refund.restock);

    // Both the refund by hand and the check-in it overrode are in the audit trail.
    let audited = service.audited(&booking.id).await;
    let actions: Vec<&str> = audited.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["booking.refunded_by_hand", "booking.check_in_overridden"]);
    for record in &audited {
        assert_eq!((record.service.as_str(), record.actor_roles.as_slice()), ("booking", &["admin".to_owned()][..]));
        assert_eq!((record.target_type.as_str(), record.target_id.as_str()), ("booking", booking.id.as_str()));
        assert!(record.after.contains("the show was cut short"), "{}", record.after);
    }
    assert!(audited[0].before.contains(r#""status":"confirmed""#), "{}", audited[0].before);
    assert_eq!(audited[1].before, r#"{"tickets":"scanned"}"#);
}

#[tokio::test]
async fn a_booking_whose_ticket_was_scanned_stays_confirmed() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    service.pay(&booking).await;
    let scanned = ticketing_platform::status::refused("TICKET_SCANNED", "ticket 1 was scanned");
    service.peers.notification.answer::<notification::RevokeTicketsResponse>("revoke_tickets", Err(scanned));
    let refused = service.cancel(&buyer.1, &booking.id, "", "").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(refusal_reason(&refused).as_deref(), Some("TICKET_SCANNED"));
    assert_eq!(status(&service, &buyer.1, &booking.id).await, pb::BookingStatus::Confirmed);
    assert_eq!(
        service.announced(&booking.id).await,
        [ev::BookingCreated::full_name(), ev::BookingConfirmed::full_name()],
        "no refund is asked for"
    );
}

#[tokio::test]
async fn a_paid_booking_whose_tickets_cannot_be_revoked_yet_is_cancelled_on_retry() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    service.pay(&booking).await;
    let down = Status::unavailable("notification down");
    service.peers.notification.answer::<notification::RevokeTicketsResponse>("revoke_tickets", Err(down));
    let failed = service.cancel(&buyer.1, &booking.id, "", "retry-me").await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert_eq!(status(&service, &buyer.1, &booking.id).await, pb::BookingStatus::Confirmed, "until they are revoked");

    service.cooperate();
    let refunding = service.cancel(&buyer.1, &booking.id, "", "retry-me").await.expect("the retry goes through");
    assert_eq!(refunding.status(), pb::BookingStatus::RefundPending);
}
