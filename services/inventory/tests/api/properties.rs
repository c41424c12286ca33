//! Property test of the hold life cycle against the real scripts and ledger: random
//! sequences of hold, release, expire, confirm and restock must agree with a model in
//! which every hold ends exactly once, and counts never drift.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use ticketing_inventory::adapters::ledger;
use ticketing_inventory::adapters::stock::{Ended, Stock};
use ticketing_inventory::domain::{Hold, HoldStatus, Selection};
use ticketing_inventory::service::Inventory;
use ticketing_platform::auth::{Principal, Role};
use ticketing_testkit::{TestDb, TestRedis};

use crate::helpers::Fixture;

const USERS: usize = 3;
const LIMIT: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    HoldGa { user: usize, quantity: u32 },
    HoldSeats { user: usize, seats: Vec<usize> },
    Release(usize),
    Expire(usize),
    Confirm(usize),
    Restock(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS, 1..=3u32).prop_map(|(user, quantity)| Op::HoldGa { user, quantity }),
        3 => (0..USERS, proptest::sample::subsequence((0..4usize).collect::<Vec<_>>(), 1..=2))
            .prop_map(|(user, seats)| Op::HoldSeats { user, seats }),
        2 => (0..16usize).prop_map(Op::Release),
        2 => (0..16usize).prop_map(Op::Expire),
        2 => (0..16usize).prop_map(Op::Confirm),
        1 => (0..16usize).prop_map(Op::Restock),
    ]
}

struct Harness {
    inventory: Inventory,
    stock: Stock,
    pool: sqlx::PgPool,
    _db: TestDb,
    _redis: TestRedis,
}

/// What the model expects of one hold.
struct Modeled {
    hold: Hold,
    user: usize,
    status: HoldStatus,
    ga: u32,
    seats: Vec<usize>,
}

#[derive(Default)]
struct Model {
    holds: Vec<Modeled>,
    ga_available: u32,
    ga_sold: u32,
    seat_free: [bool; 4],
    seats_sold: u32,
    owned: [u32; USERS],
}

impl Harness {
    async fn new() -> Self {
        let db = TestDb::new(&ticketing_inventory::migrator()).await;
        let redis = TestRedis::for_service("inventory");
        let conn = ticketing_platform::redis::connect(&redis.config).await.unwrap();
        let stock = Stock::new(conn, &redis.config.key_prefix);
        let settings = ticketing_inventory::config::InventorySettings::default();
        let metrics = ticketing_platform::metrics::Metrics::new("proptest");
        let inventory = Inventory::new(db.pool.clone(), stock.clone(), settings, "inventory.events".into(), &metrics);
        Self { inventory, stock, pool: db.pool.clone(), _db: db, _redis: redis }
    }

    async fn case(&self, ops: Vec<Op>) {
        let fixture = Fixture::new(4, 1, 4, LIMIT);
        let mut tx = self.pool.begin().await.unwrap();
        ledger::insert_stock(&mut tx, &fixture.on_sale_now()).await.unwrap();
        tx.commit().await.unwrap();
        self.inventory.ensure_loaded(fixture.event).await.unwrap();
        let users: Vec<uuid::Uuid> = (0..USERS).map(|_| uuid::Uuid::new_v4()).collect();
        let mut model = Model { ga_available: 4, seat_free: [true; 4], ..Model::default() };

        for op in ops {
            match op {
                Op::HoldGa { user, quantity } => {
                    let fits = quantity <= model.ga_available && model.owned[user] + quantity <= LIMIT;
                    let selection = Selection::GeneralAdmission { category: fixture.ga, quantity };
                    let result = self.inventory.hold(users[user], fixture.event, selection, "").await;
                    assert_eq!(result.is_ok(), fits, "{op:?}: {result:?}");
                    if let Ok(hold) = result {
                        model.ga_available -= quantity;
                        model.owned[user] += quantity;
                        model.holds.push(Modeled {
                            hold,
                            user,
                            status: HoldStatus::Active,
                            ga: quantity,
                            seats: vec![],
                        });
                    }
                }
                Op::HoldSeats { user, ref seats } => {
                    let n = seats.len() as u32;
                    let fits = seats.iter().all(|s| model.seat_free[*s]) && model.owned[user] + n <= LIMIT;
                    let selection = Selection::Seats(seats.iter().map(|s| fixture.seat(*s)).collect());
                    let result = self.inventory.hold(users[user], fixture.event, selection, "").await;
                    assert_eq!(result.is_ok(), fits, "{op:?}: {result:?}");
                    if let Ok(hold) = result {
                        seats.iter().for_each(|s| model.seat_free[*s] = false);
                        model.owned[user] += n;
                        model.holds.push(Modeled {
                            hold,
                            user,
                            status: HoldStatus::Active,
                            ga: 0,
                            seats: seats.clone(),
                        });
                    }
                }
                Op::Release(i) | Op::Expire(i) | Op::Confirm(i) | Op::Restock(i) if model.holds.is_empty() => {
                    let _ = i;
                }
                Op::Release(i) => {
                    let k = i % model.holds.len();
                    let m = &model.holds[k];
                    let owner = Principal {
                        user_id: m.hold.user,
                        roles: vec![Role::User],
                        scopes: Vec::new(),
                        email_verified: true,
                        token: String::new(),
                    };
                    let result = self.inventory.release(&owner, m.hold.id).await;
                    match m.status {
                        HoldStatus::Active => {
                            assert!(result.is_ok(), "{result:?}");
                            end(&mut model, k, HoldStatus::Released);
                        }
                        HoldStatus::Released | HoldStatus::Expired => assert!(result.is_ok(), "idempotent: {result:?}"),
                        _ => assert!(result.is_err(), "a sold hold cannot be released"),
                    }
                }
                Op::Expire(i) => {
                    let k = i % model.holds.len();
                    let m = &model.holds[k];
                    let due = m.hold.expires_at.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 + 1;
                    let ended = self.stock.end(m.hold.id, HoldStatus::Expired, "", false, due).await.unwrap();
                    if m.status == HoldStatus::Active {
                        assert_eq!(ended, Ended::Now);
                        end(&mut model, k, HoldStatus::Expired);
                    } else {
                        assert_eq!(ended, Ended::Already(m.status), "a hold ends once");
                    }
                }
                Op::Confirm(i) => {
                    let k = i % model.holds.len();
                    let m = &model.holds[k];
                    let result = self.inventory.confirm(m.hold.id, m.hold.fencing_token, &format!("b-{k}")).await;
                    match m.status {
                        HoldStatus::Active => {
                            assert!(result.is_ok(), "{result:?}");
                            let (ga, seats) = (m.ga, m.seats.len() as u32);
                            model.holds[k].status = HoldStatus::Confirmed;
                            model.ga_sold += ga;
                            model.seats_sold += seats;
                        }
                        HoldStatus::Confirmed => assert!(result.is_ok(), "idempotent: {result:?}"),
                        _ => assert!(result.is_err(), "an ended hold cannot be sold: {result:?}"),
                    }
                }
                Op::Restock(i) => {
                    let k = i % model.holds.len();
                    let m = &model.holds[k];
                    let result = self.inventory.restock(m.hold.id, &format!("b-{k}")).await;
                    match m.status {
                        HoldStatus::Confirmed => {
                            assert!(result.is_ok(), "{result:?}");
                            let (ga, seats, user) = (m.ga, m.seats.clone(), m.user);
                            model.holds[k].status = HoldStatus::Restocked;
                            model.ga_sold -= ga;
                            model.ga_available += ga;
                            model.seats_sold -= seats.len() as u32;
                            seats.iter().for_each(|s| model.seat_free[*s] = true);
                            model.owned[user] -= ga + seats.len() as u32;
                        }
                        HoldStatus::Restocked => assert!(result.is_ok(), "idempotent: {result:?}"),
                        _ => assert!(result.is_err(), "only sales are restocked: {result:?}"),
                    }
                }
            }
            let counts = self.stock.counts(fixture.event).await.unwrap().unwrap();
            let ga = counts.iter().find(|(c, _)| *c == fixture.ga).unwrap().1;
            let seated = counts.iter().find(|(c, _)| *c == fixture.seated).unwrap().1;
            assert_eq!((ga.available, ga.sold), (model.ga_available, model.ga_sold), "GA counts after {op:?}");
            assert_eq!(ga.available + ga.held + ga.sold, 4);
            let free = model.seat_free.iter().filter(|f| **f).count() as u32;
            assert_eq!((seated.available, seated.sold), (free, model.seats_sold), "seat counts after {op:?}");
            assert_eq!(seated.available + seated.held + seated.sold, 4);
        }
    }
}

/// A live hold ends: its tickets return to stock and stop counting against its owner.
fn end(model: &mut Model, k: usize, status: HoldStatus) {
    let m = &mut model.holds[k];
    m.status = status;
    model.ga_available += m.ga;
    m.seats.iter().for_each(|s| model.seat_free[*s] = true);
    model.owned[m.user] -= m.ga + m.seats.len() as u32;
}

#[test]
fn hold_life_cycle_matches_the_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let harness = runtime.block_on(Harness::new());
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&proptest::collection::vec(op(), 1..24), |ops| {
            runtime.block_on(harness.case(ops));
            Ok(())
        })
        .unwrap();
}
