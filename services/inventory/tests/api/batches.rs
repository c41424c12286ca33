//! `HoldBatch` and `ReleaseBatch`: each item answered as its own call would be, for the
//! user its own token names, and batches racing single calls for one event without
//! overselling, holding a seat twice or passing a buyer's limit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use ticketing_platform::auth::{Role, Scope};
use ticketing_platform::status::{from_message, refusal_reason};
use ticketing_proto::inventory::v1 as pb;
use tokio::sync::Mutex;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::helpers::{Fixture, TestApp, ga, seats, spawn_app, spawn_with};

/// A hold item for `token`.
fn hold_item(token: &str, event: uuid::Uuid, selection: pb::hold_request::Selection, key: &str) -> pb::HoldBatchItem {
    let hold = pb::HoldRequest { event_id: event.to_string(), selection: Some(selection), idempotency_key: key.into() };
    pb::HoldBatchItem { access_token: token.into(), hold: Some(hold), traceparent: String::new() }
}

fn release_item(token: &str, hold: &str) -> pb::ReleaseBatchItem {
    let release = pb::ReleaseRequest { hold_id: hold.into() };
    pb::ReleaseBatchItem { access_token: token.into(), release: Some(release), traceparent: String::new() }
}

/// An item's answer as its own call's result.
fn result(outcome: pb::HoldOutcome) -> Result<pb::HoldDetails, Status> {
    match outcome.outcome.expect("every item is answered") {
        pb::hold_outcome::Outcome::Hold(hold) => Ok(hold),
        pb::hold_outcome::Outcome::Error(status) => Err(from_message(status)),
    }
}

async fn hold_batch(app: &TestApp, items: Vec<pb::HoldBatchItem>) -> Vec<Result<pb::HoldDetails, Status>> {
    let n = items.len();
    let answer = app.client.clone().hold_batch(pb::HoldBatchRequest { items }).await.expect("the batch").into_inner();
    assert_eq!(answer.outcomes.len(), n, "one outcome per item");
    answer.outcomes.into_iter().map(result).collect()
}

async fn release_batch(app: &TestApp, items: Vec<pb::ReleaseBatchItem>) -> Vec<Result<pb::HoldDetails, Status>> {
    let n = items.len();
    let request = pb::ReleaseBatchRequest { items };
    let answer = app.client.clone().release_batch(request).await.expect("the batch").into_inner();
    assert_eq!(answer.outcomes.len(), n, "one outcome per item");
    answer.outcomes.into_iter().map(result).collect()
}

fn refusal(result: &Result<pb::HoldDetails, Status>) -> (Code, Option<String>) {
    let status = result.as_ref().expect_err("a refusal");
    (status.code(), refusal_reason(status))
}

#[tokio::test]
async fn each_item_is_answered_as_its_own_call_would_be() {
    let app = spawn_app().await;
    let fixture = Fixture::new(3, 1, 4, 4);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let [alice, bob, carol, dave] = std::array::from_fn(|_| uuid::Uuid::new_v4());
    let token = |u| app.issuer.token(u, &[Role::User]);
    let (seat, event) = (fixture.seat(0), fixture.event);

    let first = hold_batch(
        &app,
        vec![
            hold_item(&token(alice), event, ga(fixture.ga, 2), ""),
            hold_item("not-a-token", event, ga(fixture.ga, 1), ""),
            hold_item(&app.issuer.unverified_token(carol, &[Role::User]), event, ga(fixture.ga, 1), ""),
            hold_item("", event, ga(fixture.ga, 1), ""),
            hold_item(&token(dave), event, seats(&[seat]), "dave-1"),
            pb::HoldBatchItem { access_token: token(bob), hold: None, traceparent: String::new() },
            hold_item(&token(bob), uuid::Uuid::new_v4(), ga(fixture.ga, 1), ""),
        ],
    )
    .await;
    let held = first[0].as_ref().expect("alice's hold");
    assert_eq!((held.user_id.as_str(), held.lines[0].quantity), (alice.to_string().as_str(), 2), "held for alice");
    assert_eq!(first[1].as_ref().unwrap_err().code(), Code::Unauthenticated, "a bad token fails its item alone");
    assert_eq!(refusal(&first[2]), (Code::FailedPrecondition, Some("EMAIL_UNVERIFIED".into())));
    assert_eq!(first[3].as_ref().unwrap_err().code(), Code::Unauthenticated, "an item needs a token");
    let daves = first[4].as_ref().expect("dave's seat").clone();
    assert_eq!(daves.user_id, dave.to_string());
    let missing = first[5].as_ref().unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(missing.get_details_bad_request().unwrap().field_violations[0].field, "hold");
    assert_eq!(first[6].as_ref().unwrap_err().code(), Code::NotFound, "an unknown event");

    // Refusals carry their reasons, as the same single calls' do; a keyed item replays.
    let second = hold_batch(
        &app,
        vec![
            hold_item(&token(bob), event, ga(fixture.ga, 2), ""),
            hold_item(&token(dave), event, seats(&[seat]), "dave-1"),
            hold_item(&token(carol), event, seats(&[seat]), ""),
        ],
    )
    .await;
    let single = app.hold(bob, event, ga(fixture.ga, 2)).await;
    assert_eq!(refusal(&second[0]), (Code::FailedPrecondition, Some("SOLD_OUT".into())));
    assert_eq!(refusal(&second[0]), refusal(&single), "the single call's answer");
    assert_eq!(second[0].as_ref().unwrap_err().message(), single.as_ref().unwrap_err().message());
    assert_eq!(second[1].as_ref().expect("dave's replay").hold_id, daves.hold_id, "the key's first hold");
    assert_eq!(refusal(&second[2]), (Code::FailedPrecondition, Some("SEAT_TAKEN".into())));

    let available: Vec<(u32, u32)> =
        app.availability(event).await.unwrap().categories.iter().map(|c| (c.available, c.held)).collect();
    assert!(available.contains(&(1, 2)) && available.contains(&(3, 1)), "held: alice's 2, dave's seat: {available:?}");

    for items in [0, 257] {
        let request = pb::HoldBatchRequest { items: vec![hold_item(&token(bob), event, ga(fixture.ga, 1), ""); items] };
        let refused = app.client.clone().hold_batch(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{items} items");
    }
}

#[tokio::test]
async fn a_release_batch_ends_only_what_each_items_caller_may_end() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 1, 4, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let alices = app.hold(alice, fixture.event, ga(fixture.ga, 2)).await.unwrap();
    let bobs = app.hold(bob, fixture.event, ga(fixture.ga, 3)).await.unwrap();
    let token = |u| app.issuer.token(u, &[Role::User]);
    let booking = app.issuer.service_token(uuid::Uuid::new_v4(), &[Scope::InventoryHolds]);

    let answers = release_batch(
        &app,
        vec![
            release_item(&token(alice), &alices.hold_id),
            release_item(&token(alice), &bobs.hold_id),
            release_item(&token(alice), "not-a-hold"),
            release_item(&token(alice), &format!("{}{}", &bobs.hold_id[..32], "0".repeat(32))),
            release_item("", &alices.hold_id),
            pb::ReleaseBatchItem { access_token: token(alice), release: None, traceparent: String::new() },
        ],
    )
    .await;
    assert_eq!(answers[0].as_ref().expect("alice's release").status, pb::HoldStatus::Released as i32);
    assert_eq!(answers[1].as_ref().unwrap_err().code(), Code::PermissionDenied, "bob's hold is not alice's");
    assert_eq!(answers[2].as_ref().unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(answers[3].as_ref().unwrap_err().code(), Code::NotFound);
    assert_eq!(answers[4].as_ref().unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(answers[5].as_ref().unwrap_err().code(), Code::InvalidArgument);

    // Booking's workload may end any hold; releasing twice changes nothing.
    let again =
        release_batch(&app, vec![release_item(&booking, &bobs.hold_id), release_item(&token(alice), &alices.hold_id)])
            .await;
    assert_eq!(again[0].as_ref().expect("booking releases bob's").status, pb::HoldStatus::Released as i32);
    assert_eq!(again[1].as_ref().expect("released again").status, pb::HoldStatus::Released as i32);
    let ga_counts = app.availability(fixture.event).await.unwrap();
    let c = ga_counts.categories.iter().find(|c| c.category_id == fixture.ga.to_string()).unwrap();
    assert_eq!((c.available, c.held), (10, 0), "every ticket back once");
}

#[tokio::test]
async fn a_batch_all_of_whose_items_meet_redis_down_fails_as_their_calls_would() {
    let mut redis = ticketing_testkit::redis_server::PrivateRedis::start();
    let app = spawn_with(|config| config.redis.url = redis.url.clone()).await;
    let fixture = Fixture::new(100, 1, 4, 10);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let token = app.issuer.token(uuid::Uuid::new_v4(), &[Role::User]);
    let item = |token: &str| hold_item(token, fixture.event, ga(fixture.ga, 1), "");
    redis.kill();

    // Every item unavailable: the call is, so the caller's breaker and retries see it.
    let request = pb::HoldBatchRequest { items: vec![item(&token), item(&token)] };
    let bound = std::time::Duration::from_secs(3);
    let refused = tokio::time::timeout(bound, app.client.clone().hold_batch(request)).await.expect("an answer in time");
    assert_eq!(refused.expect_err("no holds without Redis").code(), Code::Unavailable);
    // One item refused for its own reason: each is answered.
    let answers = hold_batch(&app, vec![item("not-a-token"), item(&token)]).await;
    assert_eq!(answers[0].as_ref().unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(answers[1].as_ref().unwrap_err().code(), Code::Unavailable);
}

/// What the race's buyers were granted.
#[derive(Default)]
struct Granted {
    /// Holds granted and not released, by id: (user, tickets, seats).
    live: HashMap<String, (uuid::Uuid, u32, Vec<String>)>,
    /// Holds granted in all.
    count: usize,
}

/// Buyers race through single calls and batches of random sizes, holding GA tickets and
/// contested seats and releasing some of what they got. After every round the counts
/// agree with what was granted: no ticket held twice or lost, no seat in two holds, no
/// buyer over the limit.
async fn race(seed: u64) {
    const USERS: usize = 40;
    const ROUNDS: usize = 6;
    const TASKS: usize = 24;
    let app = spawn_app().await;
    let fixture = Fixture::new(60, 2, 10, 5);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let users: Vec<uuid::Uuid> = (0..USERS).map(|_| uuid::Uuid::new_v4()).collect();
    let tokens: Vec<String> = users.iter().map(|u| app.issuer.token(*u, &[Role::User])).collect();
    let granted = Arc::new(Mutex::new(Granted::default()));
    for round in 0..ROUNDS {
        futures::stream::iter(0..TASKS)
            .for_each_concurrent(TASKS, |task| {
                let (app, fixture, users, tokens, granted) = (&app, &fixture, &users, &tokens, granted.clone());
                async move {
                    let mut rng = StdRng::seed_from_u64(seed * 1_000_003 + (round * TASKS + task) as u64);
                    let mut wanted = Vec::new();
                    for _ in 0..rng.random_range(1..=8) {
                        let buyer = rng.random_range(0..USERS);
                        let selection = if rng.random_bool(0.5) {
                            ga(fixture.ga, rng.random_range(1..=3))
                        } else {
                            let n = rng.random_range(1..=2);
                            let picked = rand::seq::index::sample(&mut rng, 8, n);
                            seats(&picked.iter().map(|k| fixture.seat(k)).collect::<Vec<_>>())
                        };
                        wanted.push((buyer, selection));
                    }
                    let answers = if rng.random_bool(0.3) {
                        let mut answers = Vec::new();
                        for (buyer, selection) in &wanted {
                            answers.push(app.hold(users[*buyer], fixture.event, selection.clone()).await);
                        }
                        answers
                    } else {
                        let items = wanted
                            .iter()
                            .map(|(buyer, selection)| hold_item(&tokens[*buyer], fixture.event, selection.clone(), ""))
                            .collect();
                        hold_batch(app, items).await
                    };
                    let mut won = Vec::new();
                    for ((buyer, _), answer) in wanted.iter().zip(answers) {
                        match answer {
                            Ok(hold) => won.push((*buyer, hold)),
                            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
                        }
                    }
                    let mut releases = Vec::new();
                    {
                        let mut granted = granted.lock().await;
                        for (buyer, hold) in &won {
                            assert_eq!(hold.user_id, users[*buyer].to_string(), "held for the item's own buyer");
                            let tickets = hold.lines.iter().map(|l| l.quantity).sum();
                            let seat_ids = hold.lines.iter().flat_map(|l| l.seat_ids.clone()).collect();
                            let fresh = granted.live.insert(hold.hold_id.clone(), (users[*buyer], tickets, seat_ids));
                            assert!(fresh.is_none(), "hold {} granted twice", hold.hold_id);
                            granted.count += 1;
                            if rng.random_bool(0.4) {
                                releases.push((*buyer, hold.hold_id.clone()));
                            }
                        }
                    }
                    if releases.is_empty() {
                        return;
                    }
                    let items = releases.iter().map(|(buyer, hold)| release_item(&tokens[*buyer], hold)).collect();
                    for (answer, (_, hold)) in release_batch(app, items).await.into_iter().zip(&releases) {
                        assert_eq!(
                            answer.expect("a buyer releases their own hold").status,
                            pb::HoldStatus::Released as i32
                        );
                        granted.lock().await.live.remove(hold);
                    }
                }
            })
            .await;
        check(&app, &fixture, &*granted.lock().await).await;
    }
    assert!(granted.lock().await.count > 50, "the race granted too little to test anything");
}

/// The counts agree with the holds granted and not released.
async fn check(app: &TestApp, fixture: &Fixture, granted: &Granted) {
    let availability = app.availability(fixture.event).await.unwrap();
    let held: u32 = availability.categories.iter().map(|c| c.held).sum();
    let live: u32 = granted.live.values().map(|(_, tickets, _)| tickets).sum();
    assert_eq!(held, live, "tickets held = tickets of the live holds granted");
    for c in &availability.categories {
        assert_eq!(c.available + c.held + c.sold, c.capacity, "I1 for {c:?}");
    }
    let mut seen = HashSet::new();
    let mut per_user: HashMap<uuid::Uuid, u32> = HashMap::new();
    for (user, tickets, seat_ids) in granted.live.values() {
        for seat in seat_ids {
            assert!(seen.insert(seat.clone()), "seat {seat} in two live holds");
        }
        *per_user.entry(*user).or_default() += tickets;
    }
    let held_seats: HashSet<String> = availability
        .seats
        .iter()
        .filter(|s| s.state == pb::SeatState::Held as i32)
        .map(|s| s.seat_id.clone())
        .collect();
    assert_eq!(held_seats, seen, "the seats held are the live holds' seats");
    assert!(per_user.values().all(|&n| n <= fixture.limit), "a buyer over the limit: {per_user:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_single_calls_seed_1() {
    race(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_single_calls_seed_2() {
    race(2).await;
}
