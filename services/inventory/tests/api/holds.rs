//! Holds one at a time: every outcome of Hold, Release, Confirm and Restock, and the
//! events they publish.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message as _;
use rdkafka::Message as _;
use ticketing_platform::auth::Scope;
use ticketing_platform::status::refusal_reason;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::inventory::v1 as pb;
use ticketing_testkit::eventually;
use tonic::Code;

use crate::helpers::{Fixture, best, ga, seats, spawn_app, spawn_with};

fn counts(a: &pb::AvailabilityResponse, category: uuid::Uuid) -> (u32, u32, u32) {
    let c = a.categories.iter().find(|c| c.category_id == category.to_string()).unwrap();
    (c.available, c.held, c.sold)
}

#[tokio::test]
async fn general_admission_holds_count_down_and_refuse_cleanly_when_short() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 1, 4, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());

    let hold = app.hold(alice, fixture.event, ga(fixture.ga, 6)).await.expect("hold");
    assert_eq!(hold.status, pb::HoldStatus::Active as i32);
    assert_eq!(hold.lines[0].quantity, 6);
    assert!(hold.fencing_token > 0);
    let expires = hold.expires_at.unwrap().seconds - hold.created_at.unwrap().seconds;
    assert!((599..=600).contains(&expires), "default TTL is 10 minutes: {expires}");
    assert_eq!(counts(&app.availability(fixture.event).await.unwrap(), fixture.ga), (4, 6, 0));

    let short = app.hold(bob, fixture.event, ga(fixture.ga, 5)).await.unwrap_err();
    assert_eq!((short.code(), refusal_reason(&short).as_deref()), (Code::FailedPrecondition, Some("SOLD_OUT")));
    assert!(short.message().contains("4 left"), "the error says what is left: {}", short.message());
    let over = app.hold(alice, fixture.event, ga(fixture.ga, 1)).await.unwrap_err();
    assert_eq!(refusal_reason(&over).as_deref(), Some("LIMIT_EXCEEDED"), "alice reached her limit of 6: {over:?}");
    assert_eq!(counts(&app.availability(fixture.event).await.unwrap(), fixture.ga), (4, 6, 0), "refusals hold nothing");
}

#[tokio::test]
async fn seats_are_all_or_nothing_and_best_available_keeps_groups_together() {
    let app = spawn_app().await;
    let fixture = Fixture::new(0, 3, 4, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let (alice, bob, carol) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());

    // Alice takes the middle of row 0, so row 0 has no 3 adjacent seats left.
    app.hold(alice, fixture.event, seats(&[fixture.seat(1), fixture.seat(2)])).await.unwrap();
    let taken = app.hold(bob, fixture.event, seats(&[fixture.seat(0), fixture.seat(2)])).await.unwrap_err();
    assert_eq!((taken.code(), refusal_reason(&taken).as_deref()), (Code::FailedPrecondition, Some("SEAT_TAKEN")));
    let a = app.availability(fixture.event).await.unwrap();
    let seat0 = a.seats.iter().find(|s| s.seat_id == fixture.seat(0).to_string()).unwrap();
    assert_eq!(seat0.state, pb::SeatState::Available as i32, "nothing was held for bob");

    let group = app.hold(bob, fixture.event, best(fixture.seated, 3, true)).await.unwrap();
    let held: Vec<String> = group.lines[0].seat_ids.clone();
    let expected: Vec<String> = (4..7).map(|i| fixture.seat(i).to_string()).collect();
    assert_eq!(held, expected, "the first 3 adjacent seats are in row 1");

    // Four adjacent seats exist nowhere any more except row 2.
    let four = app.hold(carol, fixture.event, best(fixture.seated, 4, true)).await.unwrap();
    assert!(four.lines[0].seat_ids.iter().all(|s| fixture.seats[8..].iter().any(|(id, _, _)| id.to_string() == *s)));
    let none = app.hold(uuid::Uuid::new_v4(), fixture.event, best(fixture.seated, 3, true)).await.unwrap_err();
    assert_eq!(refusal_reason(&none).as_deref(), Some("NO_ADJACENT_SEATS"), "{none:?}");
    // Without the adjacency requirement the best remaining seats are split.
    let split = app.hold(uuid::Uuid::new_v4(), fixture.event, best(fixture.seated, 3, false)).await.unwrap();
    assert_eq!(split.lines[0].quantity, 3);
}

#[tokio::test]
async fn holds_outside_the_sale_window_are_refused() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 0, 0, 6);
    let now = std::time::SystemTime::now();
    app.stock(&fixture, &fixture.published((now + Duration::from_secs(3600), now + Duration::from_secs(7200)))).await;
    let status = app.hold(uuid::Uuid::new_v4(), fixture.event, ga(fixture.ga, 1)).await.unwrap_err();
    assert_eq!((status.code(), refusal_reason(&status).as_deref()), (Code::FailedPrecondition, Some("NOT_ON_SALE")));
    assert!(status.message().contains("not on sale"));
}

#[tokio::test]
async fn bad_requests_get_field_errors_not_failures() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 1, 2, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let user = uuid::Uuid::new_v4();
    let cases = vec![
        (
            pb::HoldRequest {
                event_id: "nope".into(),
                selection: Some(ga(fixture.ga, 1)),
                idempotency_key: String::new(),
            },
            Code::InvalidArgument,
        ),
        (
            pb::HoldRequest { event_id: fixture.event.to_string(), selection: None, idempotency_key: String::new() },
            Code::InvalidArgument,
        ),
        (
            pb::HoldRequest {
                event_id: fixture.event.to_string(),
                selection: Some(ga(fixture.ga, 0)),
                idempotency_key: String::new(),
            },
            Code::InvalidArgument,
        ),
        (
            pb::HoldRequest {
                event_id: fixture.event.to_string(),
                selection: Some(ga(fixture.ga, 1000)),
                idempotency_key: String::new(),
            },
            Code::InvalidArgument,
        ),
        (
            pb::HoldRequest {
                event_id: fixture.event.to_string(),
                selection: Some(ga(fixture.seated, 1)),
                idempotency_key: String::new(),
            },
            Code::InvalidArgument,
        ),
        (
            pb::HoldRequest {
                event_id: fixture.event.to_string(),
                selection: Some(seats(&[fixture.seat(0), fixture.seat(0)])),
                idempotency_key: String::new(),
            },
            Code::InvalidArgument,
        ),
        (
            pb::HoldRequest {
                event_id: fixture.event.to_string(),
                selection: Some(seats(&[uuid::Uuid::new_v4()])),
                idempotency_key: String::new(),
            },
            Code::InvalidArgument,
        ),
        (
            pb::HoldRequest {
                event_id: uuid::Uuid::new_v4().to_string(),
                selection: Some(ga(fixture.ga, 1)),
                idempotency_key: String::new(),
            },
            Code::NotFound,
        ),
    ];
    for (request, code) in cases {
        let status = app.client.clone().hold(app.as_user(user, request.clone())).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
    }
    let anonymous = app.client.clone().hold(pb::HoldRequest::default()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let bad_id = app.release(user, "not-a-hold").await.unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_hold_and_refuses_a_different_request() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 0, 0, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let user = uuid::Uuid::new_v4();
    let request = |quantity| pb::HoldRequest {
        event_id: fixture.event.to_string(),
        selection: Some(ga(fixture.ga, quantity)),
        idempotency_key: "key-1".into(),
    };
    let first = app.client.clone().hold(app.as_user(user, request(2))).await.unwrap().into_inner();
    let again = app.client.clone().hold(app.as_user(user, request(2))).await.unwrap().into_inner();
    assert_eq!(again.hold_id, first.hold_id);
    assert_eq!(counts(&app.availability(fixture.event).await.unwrap(), fixture.ga), (8, 2, 0), "held once");
    let different = app.client.clone().hold(app.as_user(user, request(3))).await.unwrap_err();
    assert_eq!(different.code(), Code::InvalidArgument, "the gateway's 422 idempotency-key-reused: {different:?}");
}

#[tokio::test]
async fn a_hold_ends_exactly_once_and_its_events_say_how() {
    let app = spawn_with(|c| c.inventory.hold_ttl = Duration::from_millis(400)).await;
    let fixture = Fixture::new(20, 1, 6, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let (alice, mallory) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());

    // Only the ends of holds claimed for a booking are announced: nobody else consumes them.
    let claim = |hold: &pb::HoldDetails| {
        let (mut client, get) = (app.client.clone(), pb::GetHoldRequest { hold_id: hold.hold_id.clone(), claim: true });
        let request = app.as_user(alice, get);
        async move { client.get_hold(request).await }
    };
    let unclaimed = app.hold(alice, fixture.event, ga(fixture.ga, 1)).await.unwrap();
    app.release(alice, &unclaimed.hold_id).await.unwrap();
    let released = app.hold(alice, fixture.event, ga(fixture.ga, 2)).await.unwrap();
    assert_eq!(claim(&released).await.unwrap().into_inner().status, pb::HoldStatus::Active as i32);
    assert_eq!(app.release(mallory, &released.hold_id).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(app.release(alice, &released.hold_id).await.unwrap().status, pb::HoldStatus::Released as i32);
    assert_eq!(
        app.release(alice, &released.hold_id).await.unwrap().status,
        pb::HoldStatus::Released as i32,
        "idempotent"
    );
    let late = app.confirm(&released, "booking-x").await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "a released hold cannot be sold");

    let sold = app.hold(alice, fixture.event, seats(&[fixture.seat(0), fixture.seat(1)])).await.unwrap();
    let mut stale = sold.clone();
    stale.fencing_token -= 1;
    assert_eq!(app.confirm(&stale, "booking-1").await.unwrap_err().code(), Code::Aborted, "stale fencing token");
    let user_confirm = app
        .client
        .clone()
        .confirm(app.as_user(
            alice,
            pb::ConfirmRequest {
                hold_id: sold.hold_id.clone(),
                fencing_token: sold.fencing_token,
                booking_id: "b".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(user_confirm.code(), Code::PermissionDenied, "only services confirm");
    // Nor any workload: only one granted the inventory:holds scope (booking).
    let confirm =
        pb::ConfirmRequest { hold_id: sold.hold_id.clone(), fencing_token: sold.fencing_token, booking_id: "b".into() };
    let unscoped = app.issuer.as_service(confirm, uuid::Uuid::new_v4(), &[Scope::PaymentRefund]);
    assert_eq!(app.client.clone().confirm(unscoped).await.unwrap_err().code(), Code::PermissionDenied);
    let confirmed = app.confirm(&sold, "booking-1").await.unwrap();
    assert_eq!(confirmed.status, pb::HoldStatus::Confirmed as i32);
    assert_eq!(app.confirm(&sold, "booking-1").await.unwrap().status, pb::HoldStatus::Confirmed as i32, "idempotent");
    assert_eq!(app.confirm(&sold, "booking-2").await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(app.release(alice, &sold.hold_id).await.unwrap_err().code(), Code::FailedPrecondition);

    let expired = app.hold(alice, fixture.event, ga(fixture.ga, 1)).await.unwrap();
    claim(&expired).await.unwrap();
    // Read (which changes nothing) until its time is up; a confirm then comes too late.
    ticketing_testkit::eventually("the hold to expire", Duration::from_secs(10), || async {
        let get = pb::GetHoldRequest { hold_id: expired.hold_id.clone(), claim: false };
        let read = app.client.clone().get_hold(app.as_user(alice, get)).await.unwrap().into_inner();
        (read.status == pb::HoldStatus::Expired as i32).then_some(())
    })
    .await;
    let too_late = app.confirm(&expired, "booking-3").await.unwrap_err();
    assert_eq!(too_late.code(), Code::FailedPrecondition, "{too_late:?}");

    let restock = pb::RestockRequest { hold_id: sold.hold_id.clone(), booking_id: "booking-1".into() };
    let restocked = app.client.clone().restock(app.as_service(restock.clone())).await.unwrap().into_inner();
    assert_eq!(restocked.status, pb::HoldStatus::Restocked as i32);
    app.client.clone().restock(app.as_service(restock)).await.expect("restock is idempotent");
    let a = app.availability(fixture.event).await.unwrap();
    assert_eq!(counts(&a, fixture.ga), (20, 0, 0));
    assert_eq!(counts(&a, fixture.seated), (6, 0, 0));
    app.check_invariants(&fixture, &[]).await;

    // A claim of an ended hold claims nothing: the caller sees it ended.
    assert_eq!(claim(&unclaimed).await.unwrap().into_inner().status, pb::HoldStatus::Released as i32);

    // Each ended hold claimed for a booking is announced exactly once, with the outcome it
    // had; the unclaimed one is not.
    let topic = app.kafka.topic("inventory.events");
    // Read only once everything is relayed: tansu's SQLite storage can starve a produce
    // while a consumer long-polls the same partition, and the read would then wait for
    // itself.
    eventually("the announcements to be relayed", Duration::from_secs(60), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&app.db.pool).await.unwrap();
        if left == 0 { Ok(()) } else { Err(format!("{left} left")) }
    })
    .await;
    let messages = ticketing_testkit::read_topic(&app.kafka, &topic, 4, Duration::from_secs(60)).await;
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for m in &messages {
        let envelope = ev::Envelope::decode(m.payload().unwrap()).unwrap();
        *seen.entry((envelope.aggregate_id.clone(), envelope.r#type.clone())).or_default() += 1;
    }
    let expect = [
        (&released.hold_id, "ticketing.events.v1.HoldReleased"),
        (&sold.hold_id, "ticketing.events.v1.HoldConfirmed"),
        (&sold.hold_id, "ticketing.events.v1.HoldRestocked"),
        (&expired.hold_id, "ticketing.events.v1.HoldExpired"),
    ];
    for (hold, kind) in expect {
        assert_eq!(seen.get(&(hold.clone(), kind.to_owned())), Some(&1), "{kind} for {hold}: {seen:?}");
    }
    assert_eq!(seen.values().sum::<usize>(), 4, "{seen:?}");
}

#[tokio::test]
async fn sales_survive_losing_redis_and_nothing_is_oversold_after() {
    let app = spawn_app().await;
    let fixture = Fixture::new(3, 1, 3, 5);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let alice = uuid::Uuid::new_v4();
    let sold = app.hold(alice, fixture.event, ga(fixture.ga, 2)).await.unwrap();
    app.confirm(&sold, "booking-1").await.unwrap();
    let seat = app.hold(alice, fixture.event, seats(&[fixture.seat(0)])).await.unwrap();
    app.confirm(&seat, "booking-2").await.unwrap();
    let lost = app.hold(alice, fixture.event, ga(fixture.ga, 1)).await.unwrap();

    app.flush_redis();

    let a = app.availability(fixture.event).await.expect("rebuilt from the ledger");
    assert_eq!(counts(&a, fixture.ga), (1, 0, 2), "the sale survived; the lost hold's ticket is free again");
    assert_eq!(counts(&a, fixture.seated), (2, 0, 1));
    // The hold lost with Redis cannot be confirmed: the buyer retries.
    assert_eq!(app.confirm(&lost, "booking-3").await.unwrap_err().code(), Code::NotFound);
    // Confirming the earlier sale again still answers from the ledger.
    assert_eq!(app.confirm(&sold, "booking-1").await.unwrap().status, pb::HoldStatus::Confirmed as i32);
    // The per-user count was rebuilt from sales: alice has 3 of her 5.
    let over = app.hold(alice, fixture.event, seats(&[fixture.seat(1), fixture.seat(2)])).await.unwrap();
    assert_eq!(over.lines[0].quantity, 2);
    let refused = app.hold(alice, fixture.event, ga(fixture.ga, 1)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "limit counts rebuilt sales: {refused:?}");
    app.check_invariants(&fixture, &[]).await;
}

#[tokio::test]
async fn replaying_event_published_changes_nothing() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 1, 3, 6);
    let published = fixture.on_sale_now();
    app.stock(&fixture, &published).await;
    let hold = app.hold(uuid::Uuid::new_v4(), fixture.event, ga(fixture.ga, 2)).await.unwrap();
    app.confirm(&hold, "booking-1").await.unwrap();

    // The same event again, in a new envelope (a republish, not a redelivery).
    app.publish(fixture.event, &published).await;
    eventually("the republished event to be consumed", Duration::from_secs(30), || async {
        let processed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM processed_events").fetch_one(&app.db.pool).await.unwrap();
        if processed == 2 { Ok(()) } else { Err(format!("{processed} processed events")) }
    })
    .await;
    let a = app.availability(fixture.event).await.unwrap();
    assert_eq!(counts(&a, fixture.ga), (8, 0, 2), "stock and sales are untouched");
    let categories: i64 = sqlx::query_scalar("SELECT count(*) FROM categories WHERE event_id = $1")
        .bind(fixture.event)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(categories, 2);
}

/// A user who has not verified their email holds nothing (issue 16, finding 5): scripted
/// accounts would otherwise multiply the per-user limit.
#[tokio::test]
async fn an_unverified_user_holds_nothing() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 1, 4, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let user = uuid::Uuid::new_v4();
    let request = pb::HoldRequest {
        event_id: fixture.event.to_string(),
        selection: Some(ga(fixture.ga, 1)),
        idempotency_key: String::new(),
    };
    let token = app.issuer.unverified_token(user, &[ticketing_platform::auth::Role::User]);
    let request = ticketing_platform::auth::with_bearer(tonic::Request::new(request), &token);
    let refused = app.client.clone().hold(request).await.unwrap_err();
    assert_eq!(
        (refused.code(), refusal_reason(&refused).as_deref()),
        (Code::FailedPrecondition, Some("EMAIL_UNVERIFIED"))
    );
    assert_eq!(counts(&app.availability(fixture.event).await.unwrap(), fixture.ga), (10, 0, 0));
    app.hold(user, fixture.event, ga(fixture.ga, 1)).await.expect("the same user, verified");
}
