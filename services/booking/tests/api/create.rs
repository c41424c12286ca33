//! Creating a booking from a hold: what it holds, priced from the catalog, and the holds it
//! refuses.

use prost::Name as _;
use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::inventory::v1 as inventory;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::harness::{BookingService, eur, from_now, hold, on_sale, seated, standing};

#[tokio::test]
async fn a_hold_becomes_a_booking_awaiting_payment_priced_from_the_catalog() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let (labelled, unlabelled) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    service.knows_seat(catalog::EventSeat {
        seat_id: labelled.clone(),
        label: "Row 1, Seat 7".into(),
        ..Default::default()
    });
    let held = hold(buyer, &event, vec![standing(&event, 2), seated(&event, &[&labelled, &unlabelled])]);
    let hold_id = service.knows_hold(held.clone());

    let booking = service.create(&token, &hold_id, "").await.expect("the booking is created");
    assert_eq!(booking.status(), pb::BookingStatus::PendingPayment);
    assert_eq!((booking.user_id, booking.event_id.as_str()), (buyer.to_string(), event.id.as_str()));
    assert_eq!((booking.hold_id.as_str(), booking.payment_id.as_str()), (hold_id.as_str(), ""));
    assert_eq!(booking.expires_at, held.expires_at, "an unpaid booking expires with its hold");
    let lines: Vec<(&str, Option<&str>, i64)> = booking
        .line_items
        .iter()
        .map(|i| (i.label.as_str(), i.seat_id.as_deref(), i.unit_price.as_ref().unwrap().minor_units))
        .collect();
    let fallback = format!("Tier 1, seat {unlabelled}");
    assert_eq!(
        lines,
        [
            ("Standing", None, 4500),
            ("Standing", None, 4500),
            ("Row 1, Seat 7", Some(labelled.as_str()), 9900),
            (fallback.as_str(), Some(unlabelled.as_str()), 9900),
        ],
        "a line per ticket, labelled by catalog (or by category and seat when catalog has no label)"
    );
    assert_eq!(booking.total, eur(2 * 4500 + 2 * 9900));

    let claims = service.peers.inventory.requests::<inventory::GetHoldRequest>("get_hold");
    assert_eq!(claims, [inventory::GetHoldRequest { hold_id: hold_id.clone(), claim: true }], "the hold is claimed");
    let outbox = service.outbox(&booking.id).await;
    assert_eq!(outbox.len(), 1, "one event: {outbox:?}");
    let created: ev::BookingCreated = ticketing_platform::events::payload(&outbox[0]).expect("a BookingCreated");
    assert_eq!((created.booking_id.as_str(), created.hold_id.as_str()), (booking.id.as_str(), hold_id.as_str()));
    assert_eq!((created.line_items.len(), created.total), (4, booking.total.clone()));

    let stored = service.get(&token, &booking.id).await.expect("the buyer reads it");
    assert_eq!((stored.status, stored.line_items, stored.total), (booking.status, booking.line_items, booking.total));
}

#[tokio::test]
async fn a_hold_that_is_not_the_callers_is_not_found() {
    let service = BookingService::start().await;
    let (_, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let someone_elses = service.knows_hold(hold(Uuid::new_v4(), &event, vec![standing(&event, 1)]));
    let unknown = hold(Uuid::new_v4(), &event, Vec::new()).hold_id;
    for hold_id in [&someone_elses, &unknown] {
        let refused = service.create(&token, hold_id, "").await.unwrap_err();
        assert_eq!((refused.code(), refused.message()), (Code::NotFound, "hold not found"));
    }
    // Inventory refuses to show a hold to whoever is not its holder.
    service.peers.inventory.answer::<inventory::HoldDetails>("get_hold", Err(Status::permission_denied("not yours")));
    let refused = service.create(&token, &someone_elses, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert_eq!(service.stored_bookings().await, 0);
}

#[tokio::test]
async fn a_hold_that_ended_or_ran_out_is_a_failed_precondition() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let ended =
        [inventory::HoldStatus::Expired, inventory::HoldStatus::Released, inventory::HoldStatus::Confirmed].map(
            |status| inventory::HoldDetails { status: status as i32, ..hold(buyer, &event, vec![standing(&event, 1)]) },
        );
    // Active as inventory last wrote it, but past its expiry.
    let ran_out = inventory::HoldDetails {
        expires_at: from_now(chrono::Duration::seconds(-1)),
        ..hold(buyer, &event, vec![standing(&event, 1)])
    };
    for held in ended.into_iter().chain([ran_out]) {
        let status = held.status;
        let refused = service.create(&token, &service.knows_hold(held), "").await.unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (Code::FailedPrecondition, "the hold is no longer active"),
            "hold status {status}"
        );
    }
    assert_eq!(service.stored_bookings().await, 0);
    assert_eq!(service.peers.catalog.calls("get_event"), 0, "nothing is priced for a hold that ended");
}

#[tokio::test]
async fn a_hold_backs_one_booking_and_a_second_already_exists() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 2)]));
    let first = service.create(&token, &hold_id, "first").await.expect("the first booking");
    let second = service.create(&token, &hold_id, "second").await.unwrap_err();
    assert_eq!(second.code(), Code::AlreadyExists, "{second:?}");
    assert_eq!(second.message(), format!("the hold already backs booking {}", first.id));
    assert_eq!(service.stored_bookings().await, 1);
    assert_eq!(service.announced(&first.id).await, [ev::BookingCreated::full_name()]);
}

#[tokio::test]
async fn a_hold_whose_category_is_no_longer_on_sale_is_refused_for_good_not_for_a_retry() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    let category = event.categories[0].id.clone();
    // Removed from the event after the hold was made, or left without a price.
    let mut removed = event.clone();
    removed.categories.remove(0);
    let mut unpriced = event.clone();
    unpriced.categories[0].price = None;
    for changed in [removed, unpriced] {
        service.knows_event(&changed);
        let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 1)]));
        let refused = service.create(&token, &hold_id, "").await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains(&category), "{refused:?}");
        assert!(refused.get_details_retry_info().is_none(), "no retry hint: retrying cannot help");
    }
    assert_eq!(service.stored_bookings().await, 0);
}

#[tokio::test]
async fn an_id_inventory_sends_malformed_is_its_fault_not_a_field_of_the_request() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let mut event = on_sale();
    event.categories[0].id = "standing".into();
    service.knows_event(&event);
    let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 1)]));
    let failed = service.create(&token, &hold_id, "").await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert!(failed.get_details_bad_request().is_none(), "no field of the caller's is blamed: {failed:?}");
    assert_eq!(service.stored_bookings().await, 0);
}
