//! Many buyers racing for the same tickets, with releases, expiries, confirms and a
//! lost Redis mixed in. Afterwards the invariants must hold, at several seeds.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use ticketing_proto::inventory::v1 as pb;
use tokio::sync::Mutex;

use crate::helpers::{Fixture, TestApp, best, ga, seats, spawn_with};

const ATTEMPTS: usize = 2000;
const USERS: usize = 500;
const CONCURRENCY: usize = 64;

/// Runs the race; returns every hold granted (with its final known status).
async fn race(app: &TestApp, fixture: &Fixture, seed: u64, flush_at: Option<usize>) -> Vec<pb::HoldDetails> {
    let users: Vec<uuid::Uuid> = (0..USERS).map(|_| uuid::Uuid::new_v4()).collect();
    let holds = Arc::new(Mutex::new(Vec::new()));
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    futures::stream::iter(0..ATTEMPTS)
        .for_each_concurrent(CONCURRENCY, |i| {
            let (holds, confirmed, users) = (holds.clone(), confirmed.clone(), &users);
            async move {
                if Some(i) == flush_at {
                    app.flush_redis();
                }
                let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
                let user = users[rng.random_range(0..USERS)];
                // A third of the seat requests fight over the same 20 seats.
                let selection = match rng.random_range(0..3) {
                    0 => ga(fixture.ga, rng.random_range(1..=4)),
                    1 => {
                        let hot = rng.random_bool(0.6);
                        let range = if hot { 0..20 } else { 0..fixture.seats.len() };
                        let n = rng.random_range(1..=3);
                        let picked: Vec<uuid::Uuid> = rand::seq::index::sample(&mut rng, range.len(), n)
                            .iter()
                            .map(|k| fixture.seat(range.start + k))
                            .collect();
                        seats(&picked)
                    }
                    _ => best(fixture.seated, rng.random_range(1..=4), rng.random_bool(0.5)),
                };
                let Ok(hold) = app.hold(user, fixture.event, selection).await else { return };
                let action = rng.random_range(0..10);
                let last = if action < 3 {
                    app.release(user, &hold.hold_id).await.ok()
                } else if action < 6 {
                    let result = app.confirm(&hold, &format!("booking-{i}")).await;
                    if let Ok(sold) = &result {
                        confirmed.lock().await.push(sold.clone());
                    }
                    result.ok()
                } else {
                    None // left to expire
                };
                holds.lock().await.push(last.unwrap_or(hold));
            }
        })
        .await;
    let confirmed = confirmed.lock().await.clone();
    assert!(!confirmed.is_empty(), "the race sold nothing; it tested nothing");
    // Nothing confirmed is ever lost: every confirmed hold is in the ledger.
    for sold in &confirmed {
        let in_ledger: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sales WHERE hold_id = $1 AND state = 'sold')")
                .bind(&sold.hold_id)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        assert!(in_ledger, "confirmed hold {} is missing from the ledger", sold.hold_id);
    }
    holds.lock().await.clone()
}

async fn run(seed: u64, flush: bool) {
    let app = spawn_with(|c| c.inventory.hold_ttl = Duration::from_millis(600)).await;
    // 300 general-admission tickets and 200 seats (10 rows of 20).
    let fixture = Fixture::new(300, 10, 20, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let holds = race(&app, &fixture, seed, flush.then_some(ATTEMPTS / 2)).await;
    // Statuses recorded during the race may be stale; only sold holds are final.
    let sold: Vec<pb::HoldDetails> =
        holds.into_iter().filter(|h| h.status == pb::HoldStatus::Confirmed as i32).collect();
    app.check_invariants(&fixture, &sold).await;
    app.wait_until_nothing_held(fixture.event, Duration::from_secs(20)).await;
    app.check_invariants(&fixture, &sold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_seed_1() {
    run(1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_seed_2() {
    run(2, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_seed_3() {
    run(3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_with_redis_lost_midway_seed_4() {
    run(4, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_with_redis_lost_midway_seed_5() {
    run(5, true).await;
}
