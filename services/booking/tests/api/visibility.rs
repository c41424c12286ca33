//! Who sees which bookings: one booking, the caller's list and an event's list, a page at a
//! time and by status.

use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::common::v1::PageRequest;
use tonic::Code;
use uuid::Uuid;

use crate::harness::{BookingService, authed, on_sale};

/// The ids of a listing's bookings.
fn ids(listing: &pb::ListBookingsResponse) -> Vec<&str> {
    listing.bookings.iter().map(|b| b.id.as_str()).collect()
}

/// The cursor of a listing's next page; empty on the last.
fn next(listing: &pb::ListBookingsResponse) -> &str {
    listing.page.as_ref().map_or("", |p| p.next_cursor.as_str())
}

async fn mine(
    service: &BookingService,
    token: &str,
    statuses: &[pb::BookingStatus],
    cursor: &str,
    limit: u32,
) -> pb::ListBookingsResponse {
    let statuses = statuses.iter().map(|&s| s as i32).collect();
    let request = pb::ListMyBookingsRequest { statuses, page: Some(PageRequest { cursor: cursor.into(), limit }) };
    service.client().list_my_bookings(authed(token, request)).await.expect("the caller's bookings").into_inner()
}

async fn of_event(
    service: &BookingService,
    token: &str,
    event: &str,
) -> Result<pb::ListBookingsResponse, tonic::Status> {
    let request = pb::ListEventBookingsRequest { event_id: event.into(), ..Default::default() };
    Ok(service.client().list_event_bookings(authed(token, request)).await?.into_inner())
}

#[tokio::test]
async fn a_booking_is_seen_by_its_buyer_its_organizer_and_admins_and_by_nobody_else() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    let (organizer, organizer_token) = service.account(Role::Organizer);
    service.organizes(organizer, &booking.event_id).await;
    let (_, admin) = service.account(Role::Admin);
    for token in [&buyer.1, &organizer_token, &admin] {
        let seen = service.get(token, &booking.id).await.expect("it sees the booking");
        assert_eq!(seen.id, booking.id);
    }

    let (_, stranger) = service.account(Role::User);
    let (_, other_organizer) = service.account(Role::Organizer);
    for token in [&stranger, &other_organizer] {
        let hidden = service.get(token, &booking.id).await.unwrap_err();
        assert_eq!((hidden.code(), hidden.message()), (Code::NotFound, "booking not found"), "as if it did not exist");
    }
    let unknown = service.get(&admin, &Uuid::new_v4().to_string()).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn my_bookings_come_newest_first_a_page_at_a_time() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let event = on_sale();
    let mut booked = Vec::new();
    for _ in 0..3 {
        booked.push(service.book(&buyer, &event).await.id);
    }
    let (ids_3, ids_2, ids_1) = (booked[2].as_str(), booked[1].as_str(), booked[0].as_str());

    let first = mine(&service, &buyer.1, &[], "", 2).await;
    assert_eq!(ids(&first), [ids_3, ids_2]);
    assert!(!next(&first).is_empty(), "there is another page");
    let last = mine(&service, &buyer.1, &[], next(&first), 2).await;
    assert_eq!(ids(&last), [ids_1]);
    assert_eq!(next(&last), "", "the last page says so");
    assert_eq!(ids(&mine(&service, &buyer.1, &[], "", 0).await), [ids_3, ids_2, ids_1], "0 is the default page size");

    let (_, stranger) = service.account(Role::User);
    assert!(mine(&service, &stranger, &[], "", 0).await.bookings.is_empty(), "a list of one's own");
}

#[tokio::test]
async fn my_bookings_are_filtered_by_status() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let event = on_sale();
    let kept = service.book(&buyer, &event).await;
    let dropped = service.book(&buyer, &event).await;
    service.cancel(&buyer.1, &dropped.id, "", "").await.expect("the buyer cancels");

    use pb::BookingStatus::{Cancelled, Confirmed, PendingPayment};
    assert_eq!(ids(&mine(&service, &buyer.1, &[Cancelled], "", 0).await), [dropped.id.as_str()]);
    assert_eq!(ids(&mine(&service, &buyer.1, &[PendingPayment], "", 0).await), [kept.id.as_str()]);
    assert!(mine(&service, &buyer.1, &[Confirmed], "", 0).await.bookings.is_empty());
    let either = mine(&service, &buyer.1, &[PendingPayment, Cancelled], "", 0).await;
    assert_eq!(ids(&either), [dropped.id.as_str(), kept.id.as_str()]);
}

#[tokio::test]
async fn an_events_bookings_are_listed_for_its_organizer_and_admins_only() {
    let service = BookingService::start().await;
    let booking = service.book(&service.account(Role::User), &on_sale()).await;
    let (organizer, organizer_token) = service.account(Role::Organizer);

    let unknown = of_event(&service, &organizer_token, &booking.event_id).await.unwrap_err();
    assert_eq!(unknown.code(), Code::PermissionDenied, "nobody said they organize it: {unknown:?}");
    service.organizes(organizer, &booking.event_id).await;
    let listed = of_event(&service, &organizer_token, &booking.event_id).await.expect("its organizer lists it");
    assert_eq!(ids(&listed), [booking.id.as_str()]);
    let (_, admin) = service.account(Role::Admin);
    let listed = of_event(&service, &admin, &booking.event_id).await.expect("an admin lists it");
    assert_eq!(ids(&listed), [booking.id.as_str()]);

    let (_, other_organizer) = service.account(Role::Organizer);
    let (_, buyer) = service.account(Role::User);
    for token in [&other_organizer, &buyer] {
        let refused = of_event(&service, token, &booking.event_id).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
}
