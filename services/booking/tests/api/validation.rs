//! What booking refuses before it asks a peer: malformed ids and bad input are
//! INVALID_ARGUMENT naming the field, and a call without a valid token is UNAUTHENTICATED.

use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::common::v1::PageRequest;
use ticketing_proto::inventory::v1 as inventory;
use tonic::{Code, Request, Status};
use uuid::Uuid;

use crate::harness::{BookingService, authed, bad_fields, on_sale};

#[tokio::test]
async fn a_malformed_hold_id_is_invalid_and_reaches_no_peer() {
    let service = BookingService::start().await;
    let (_, token) = service.account(Role::User);
    let too_short = "ab".repeat(31);
    let not_hex = "g".repeat(64);
    for hold_id in ["", "not-a-hold", too_short.as_str(), not_hex.as_str()] {
        let refused = service.create(&token, hold_id, "").await.unwrap_err();
        assert_eq!(bad_fields(&refused), ["hold_id"], "{hold_id:?}");
    }
    assert_eq!(service.peers.inventory.calls("get_hold"), 0);

    // A hold id of the right shape that inventory calls invalid is the caller's mistake too.
    let invalid = Status::invalid_argument("hold_id is not one of ours");
    service.peers.inventory.answer::<inventory::HoldDetails>("get_hold", Err(invalid));
    let refused = service.create(&token, &"ab".repeat(32), "").await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["hold_id"]);
    assert_eq!(service.stored_bookings().await, 0);
}

#[tokio::test]
async fn malformed_booking_and_event_ids_are_invalid_naming_the_field() {
    let service = BookingService::start().await;
    let (_, token) = service.account(Role::Admin);
    let refused = service.get(&token, "not-a-uuid").await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["booking_id"]);
    let refused = service.cancel(&token, "42", "", "").await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["booking_id"]);
    let request = pb::ListEventBookingsRequest { event_id: "an-event".into(), ..Default::default() };
    let refused = service.client().list_event_bookings(authed(&token, request)).await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["event_id"]);
}

#[tokio::test]
async fn bad_statuses_cursors_and_reasons_are_invalid_naming_the_field() {
    let service = BookingService::start().await;
    let (_, token) = service.account(Role::User);
    for status in [pb::BookingStatus::Unspecified as i32, 42] {
        let request = pb::ListMyBookingsRequest { statuses: vec![status], page: None };
        let refused = service.client().list_my_bookings(authed(&token, request)).await.unwrap_err();
        assert_eq!(bad_fields(&refused), ["statuses"], "status {status}");
    }
    for cursor in ["not base64!", "bm90IGEgY3Vyc29y"] {
        let page = Some(PageRequest { cursor: cursor.into(), limit: 2 });
        let request = pb::ListMyBookingsRequest { statuses: Vec::new(), page };
        let refused = service.client().list_my_bookings(authed(&token, request)).await.unwrap_err();
        assert_eq!(bad_fields(&refused), ["page.cursor"], "cursor {cursor:?}");
    }

    let booking = service.book(&service.account(Role::User), &on_sale()).await;
    let refused = service.cancel(&token, &booking.id, &"x".repeat(501), "").await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["reason"]);
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_unauthenticated() {
    let service = BookingService::start().await;
    let hold_id = "ab".repeat(32);
    let anonymous = Request::new(pb::CreateBookingRequest { hold_id: hold_id.clone(), idempotency_key: String::new() });
    let refused = service.client().create_booking(anonymous).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    let stranger = ticketing_testkit::TestIssuer::start().await;
    let forged = stranger.token(Uuid::new_v4(), &[Role::Admin]);
    let refused = service.create(&forged, &hold_id, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = service.get(&forged, &Uuid::new_v4().to_string()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(service.peers.inventory.calls("get_hold"), 0);
}
