//! Peers that fail: booking answers UNAVAILABLE with a time to retry after, never INTERNAL,
//! and leaves no booking behind.

use std::time::Duration;

use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::inventory::v1 as inventory;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::harness::{BookingService, hold, on_sale, seated, standing};

/// The status is UNAVAILABLE telling the caller to retry in a second.
fn assert_retry(status: &Status) {
    assert_eq!((status.code(), status.message()), (Code::Unavailable, "temporarily unavailable"), "{status:?}");
    let retry = status.get_details_retry_info().expect("RetryInfo details");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
}

#[tokio::test]
async fn a_peer_answering_unavailable_makes_creation_unavailable_and_leaves_no_booking() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let seat = Uuid::new_v4().to_string();
    let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 1), seated(&event, &[&seat])]));

    // Booking asks inventory for the hold, then catalog for the event, then for the seats'
    // labels: each failure scripted here comes before the ones scripted earlier.
    let down = || Status::unavailable("peer down");
    service.peers.catalog.answer::<catalog::GetEventSeatsResponse>("get_event_seats", Err(down()));
    assert_retry(&service.create(&token, &hold_id, "").await.unwrap_err());
    service.peers.catalog.answer::<catalog::Event>("get_event", Err(down()));
    assert_retry(&service.create(&token, &hold_id, "").await.unwrap_err());
    service.peers.inventory.answer::<inventory::HoldDetails>("get_hold", Err(down()));
    assert_retry(&service.create(&token, &hold_id, "").await.unwrap_err());
    assert_eq!(service.peers.catalog.calls("get_event_seats"), 1, "the later failures stopped booking before it");
    assert_eq!(service.stored_bookings().await, 0);
}

#[tokio::test]
async fn a_peer_that_is_down_makes_creation_unavailable() {
    // Nothing listens where the listener was.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let nowhere = format!("http://{}", listener.local_addr().expect("a bound address"));
    drop(listener);
    let service = BookingService::start_with(|config| config.booking.catalog_url = nowhere).await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 2)]));
    assert_retry(&service.create(&token, &hold_id, "").await.unwrap_err());
    assert_eq!(service.stored_bookings().await, 0);
}

#[tokio::test]
async fn a_peer_that_never_answers_is_given_up_on_at_the_deadline() {
    let deadline = Duration::from_millis(200);
    let service = BookingService::start_with(|config| config.booking.peer_timeout = deadline).await;
    let (_, token) = service.account(Role::User);
    service.peers.inventory.on("get_hold", |_: inventory::GetHoldRequest| {
        std::future::pending::<Result<inventory::HoldDetails, Status>>()
    });
    // Bounded, so that a booking waiting for ever fails the test instead of hanging it.
    let created = tokio::time::timeout(deadline * 10, service.create(&token, &"ab".repeat(32), "")).await;
    assert_retry(&created.expect("booking gives up at its deadline").unwrap_err());
    assert_eq!(service.stored_bookings().await, 0);
}

#[tokio::test]
async fn without_a_service_token_an_unpaid_booking_cannot_be_cancelled_yet() {
    let service = BookingService::start().await;
    let buyer = service.account(Role::User);
    let booking = service.book(&buyer, &on_sale()).await;
    // Booking releases the hold as itself, with a token identity cannot issue now.
    let down = Status::unavailable("identity down");
    service.peers.identity.answer::<identity::ServiceToken>("issue_service_token", Err(down));
    assert_retry(&service.cancel(&buyer.1, &booking.id, "", "").await.unwrap_err());
    assert_eq!(service.peers.inventory.calls("release"), 0);
    let unchanged = service.get(&buyer.1, &booking.id).await.expect("the buyer reads it");
    assert_eq!(unchanged.status, booking.status);

    service.cooperate();
    let cancelled = service.cancel(&buyer.1, &booking.id, "", "").await.expect("identity is back");
    assert_eq!(cancelled.status, pb::BookingStatus::Cancelled as i32);
}
