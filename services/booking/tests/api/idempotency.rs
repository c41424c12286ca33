//! Idempotency keys on creation: a repeat replays the first answer, a key reused for another
//! request or malformed is refused, keys are the caller's own, and only a failure worth
//! retrying is run again.

use prost::Name as _;
use ticketing_platform::auth::Role;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::inventory::v1 as inventory;
use tonic::{Code, Status};

use crate::harness::{BookingService, bad_fields, hold, on_sale, standing};

#[tokio::test]
async fn the_same_key_and_request_replays_the_first_answer_and_books_once() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 2)]));
    let first = service.create(&token, &hold_id, "checkout-1").await.expect("the booking is created");
    let again = service.create(&token, &hold_id, "checkout-1").await.expect("the repeat is answered");
    assert_eq!(again, first, "the repeat gets the first answer, to the letter");
    assert_eq!(service.stored_bookings().await, 1);
    assert_eq!(service.peers.inventory.calls("get_hold"), 1, "the repeat never reaches inventory");
    assert_eq!(service.announced(&first.id).await, [ev::BookingCreated::full_name()]);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let first = service.knows_hold(hold(buyer, &event, vec![standing(&event, 2)]));
    let second = service.knows_hold(hold(buyer, &event, vec![standing(&event, 1)]));
    service.create(&token, &first, "checkout").await.expect("the first booking");
    let refused = service.create(&token, &second, "checkout").await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["idempotency_key"]);
    assert_eq!(service.stored_bookings().await, 1);
    assert_eq!(service.peers.inventory.calls("get_hold"), 1, "the second hold is never claimed");
}

#[tokio::test]
async fn a_key_with_a_control_character_or_too_long_is_refused() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 2)]));
    let too_long = "k".repeat(256);
    for key in ["check\nout", "tab\there", "\u{7f}", too_long.as_str()] {
        let refused = service.create(&token, &hold_id, key).await.unwrap_err();
        assert_eq!(bad_fields(&refused), ["idempotency_key"], "{key:?}");
    }
    assert_eq!(service.peers.inventory.calls("get_hold"), 0);
    let longest = "k".repeat(255);
    service.create(&token, &hold_id, &longest).await.expect("255 characters are a key");
}

#[tokio::test]
async fn keys_are_each_callers_own() {
    let service = BookingService::start().await;
    let event = on_sale();
    service.knows_event(&event);
    for (buyer, token) in [service.account(Role::User), service.account(Role::User)] {
        let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 1)]));
        let booking = service.create(&token, &hold_id, "checkout").await.expect("a booking of one's own");
        assert_eq!(booking.user_id, buyer.to_string());
    }
    assert_eq!(service.stored_bookings().await, 2);
}

#[tokio::test]
async fn a_failure_worth_retrying_runs_again_and_a_refusal_is_replayed() {
    let service = BookingService::start().await;
    let (buyer, token) = service.account(Role::User);
    let event = on_sale();
    service.knows_event(&event);
    let hold_id = service.knows_hold(hold(buyer, &event, vec![standing(&event, 2)]));
    service.peers.inventory.answer::<inventory::HoldDetails>("get_hold", Err(Status::unavailable("down")));
    let failed = service.create(&token, &hold_id, "checkout").await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable);
    service.cooperate();
    let booking = service.create(&token, &hold_id, "checkout").await.expect("the retry runs again");
    assert_eq!(booking.hold_id, hold_id);

    // Stripe's semantics: a refusal is the answer to that key, even once it would pass.
    let later = hold(buyer, &event, vec![standing(&event, 1)]);
    let refused = service.create(&token, &later.hold_id, "later").await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    service.knows_hold(later.clone());
    let replayed = service.create(&token, &later.hold_id, "later").await.unwrap_err();
    assert_eq!((replayed.code(), replayed.message()), (Code::NotFound, refused.message()));
    assert_eq!(service.stored_bookings().await, 1);
}
