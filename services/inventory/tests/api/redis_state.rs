//! What inventory keeps in Redis: an event rebuilt from the ledger never replaces one
//! already loaded, nor is written by a loader that lost its lock, so holds placed
//! meanwhile survive; and an ended hold's record expires instead of staying for ever.

use std::time::Duration;

use redis::AsyncCommands as _;
use ticketing_inventory::adapters::ledger;
use ticketing_inventory::adapters::stock::{HoldRequest, Loaded, Placed, Snapshot, Stock};
use ticketing_inventory::domain::{Hold, HoldId, HoldStatus, Selection};
use ticketing_platform::redis::Connection;
use ticketing_testkit::{TestDb, TestRedis, eventually};
use tonic::Code;

use crate::helpers::{Fixture, ga, spawn_with};

const LOCK: Duration = Duration::from_secs(15);
const RETENTION: Duration = Duration::from_secs(60);
const IDEMPOTENCY: Duration = Duration::from_secs(86_400);

struct Harness {
    stock: Stock,
    conn: Connection,
    fixture: Fixture,
    db: TestDb,
    redis: TestRedis,
}

/// An event in the ledger (4 GA tickets, 4 seats in a row, limit 10), not yet in Redis.
async fn harness() -> Harness {
    let db = TestDb::new(&ticketing_inventory::migrator()).await;
    let redis = TestRedis::for_service("inventory");
    let conn = ticketing_platform::redis::connect(&redis.config).await.unwrap();
    let stock = Stock::new(conn.clone(), &redis.config.key_prefix).retaining(RETENTION);
    let fixture = Fixture::new(4, 1, 4, 10);
    let mut tx = db.pool.begin().await.unwrap();
    ledger::insert_stock(&mut tx, &fixture.on_sale_now()).await.unwrap();
    tx.commit().await.unwrap();
    Harness { stock, conn, fixture, db, redis }
}

impl Harness {
    async fn snapshot(&self) -> Snapshot {
        ledger::snapshot(&self.db.pool, self.fixture.event).await.unwrap().expect("the event is in the ledger")
    }

    async fn load(&self) {
        let lock = self.stock.lock_rebuild(self.fixture.event, LOCK).await.unwrap().expect("the lock is free");
        assert_eq!(self.stock.load(&lock, &self.snapshot().await).await.unwrap(), Loaded::Now);
    }

    /// Places one hold; `key` is its idempotency key ("" for none).
    async fn hold(&self, selection: Selection, key: &str) -> Hold {
        let request = HoldRequest {
            id: HoldId::new(self.fixture.event),
            user: uuid::Uuid::new_v4(),
            selection,
            idempotency_key: key.into(),
        };
        let placed = self
            .stock
            .hold_batch(self.fixture.event, &[&request], Duration::from_secs(600), IDEMPOTENCY, stock_now())
            .await
            .unwrap();
        match placed.into_iter().next() {
            Some(Placed::Held(hold)) => hold,
            other => panic!("a hold: {other:?}"),
        }
    }

    async fn held(&self) -> u32 {
        let counts = self.stock.counts(self.fixture.event).await.unwrap().expect("the event is loaded");
        counts.iter().map(|(_, c)| c.held).sum()
    }

    fn hold_key(&self, id: HoldId) -> String {
        format!("{}{{evt:{}}}:hold:{}", self.redis.config.key_prefix, id.event.simple(), id.hold.simple())
    }

    /// The hold record's time to live in ms: -1 for none, -2 when the record is gone.
    async fn ttl(&self, id: HoldId) -> i64 {
        self.conn.clone().pttl(self.hold_key(id)).await.unwrap()
    }
}

fn stock_now() -> u64 {
    ticketing_inventory::adapters::stock::now_ms()
}

#[tokio::test]
async fn a_second_load_keeps_the_holds_placed_after_the_first() {
    let h = harness().await;
    let f = &h.fixture;
    // Two callers found the event missing and read the ledger; the first loads it.
    let first = h.stock.lock_rebuild(f.event, LOCK).await.unwrap().expect("the lock is free");
    let (snapshot, late_snapshot) = (h.snapshot().await, h.snapshot().await);
    assert_eq!(h.stock.load(&first, &snapshot).await.unwrap(), Loaded::Now);
    assert_eq!(h.stock.events().await.unwrap(), [f.event], "the reaper is told of the event");
    let mut conn = h.conn.clone();
    for key in h.redis.keys() {
        let ttl: i64 = conn.pttl(&key).await.unwrap();
        assert_eq!(ttl, -1, "{key} of a loaded event expires (staged keys do)");
    }
    let holds = [
        h.hold(Selection::GeneralAdmission { category: f.ga, quantity: 2 }, "").await,
        h.hold(Selection::Seats(vec![f.seat(0)]), "").await,
    ];
    assert_eq!(h.held().await, 3);

    // The second comes late, once the first's lock is gone (as if it had expired).
    let second = h.stock.lock_rebuild(f.event, LOCK).await.unwrap().expect("the first load gave the lock up");
    assert_eq!(h.stock.load(&second, &late_snapshot).await.unwrap(), Loaded::Already);

    assert_eq!(h.held().await, 3, "the second load wiped holds");
    for hold in &holds {
        let kept = h.stock.get(hold.id).await.unwrap().expect("the hold is still in Redis");
        assert_eq!((kept.status, kept.fencing_token), (HoldStatus::Active, hold.fencing_token));
    }
    assert!(h.stock.lock_rebuild(f.event, LOCK).await.unwrap().is_some(), "the second load gave the lock up");
}

#[tokio::test]
async fn a_load_that_outlived_its_lock_writes_nothing() {
    let h = harness().await;
    let f = &h.fixture;
    let slow = h.stock.lock_rebuild(f.event, Duration::from_millis(1)).await.unwrap().expect("the lock is free");
    let snapshot = h.snapshot().await;
    let next = eventually("the lock expired and was taken again", Duration::from_secs(5), || async {
        h.stock.lock_rebuild(f.event, LOCK).await.unwrap()
    })
    .await;
    assert!(!h.stock.renew_rebuild(&slow, LOCK).await.unwrap(), "an expired lock cannot be renewed");

    assert_eq!(h.stock.load(&slow, &snapshot).await.unwrap(), Loaded::LockLost);
    assert!(!h.stock.is_loaded(f.event).await.unwrap(), "a loader without the lock wrote the event");
    let staged: Vec<String> = h.redis.keys().into_iter().filter(|k| k.contains(":load:")).collect();
    assert!(staged.is_empty(), "staging keys left behind: {staged:?}");

    // The lock's holder renews it and loads.
    assert!(h.stock.renew_rebuild(&next, LOCK).await.unwrap());
    assert_eq!(h.stock.load(&next, &snapshot).await.unwrap(), Loaded::Now);
    assert_eq!(h.held().await, 0);
    h.hold(Selection::GeneralAdmission { category: f.ga, quantity: 4 }, "").await;
    assert_eq!(h.held().await, 4);
}

#[tokio::test]
async fn a_load_drops_what_a_partial_loss_left_behind() {
    let h = harness().await;
    let f = &h.fixture;
    h.load().await;
    let lost = h.hold(Selection::Seats(vec![f.seat(1)]), "").await;
    // Redis lost the event's meta but kept the rest: the event counts as not loaded.
    let meta = format!("{}{{evt:{}}}:meta", h.redis.config.key_prefix, f.event.simple());
    let _: () = h.conn.clone().del(meta).await.unwrap();
    assert!(!h.stock.is_loaded(f.event).await.unwrap());

    h.load().await;
    assert!(h.stock.get(lost.id).await.unwrap().is_none(), "a hold Redis lost the event of came back");
    assert_eq!(h.held().await, 0);
    h.hold(Selection::Seats(vec![f.seat(1)]), "").await;
    let leftovers: Vec<String> = h.redis.keys().into_iter().filter(|k| k.contains(":load:")).collect();
    assert!(leftovers.is_empty(), "staging keys left behind: {leftovers:?}");
}

#[tokio::test]
async fn an_ended_hold_expires_after_the_retention_or_with_its_idempotency_key() {
    let h = harness().await;
    let f = &h.fixture;
    h.load().await;
    let ga = |quantity| Selection::GeneralAdmission { category: f.ga, quantity };
    let (plain, keyed, claimed, live) =
        (h.hold(ga(1), "").await, h.hold(ga(1), "retry-me").await, h.hold(ga(1), "").await, h.hold(ga(1), "").await);
    h.stock.claim(claimed.id).await.unwrap();
    for hold in [&plain, &keyed, &claimed, &live] {
        assert_eq!(h.ttl(hold.id).await, -1, "a live hold's record does not expire");
    }
    let now = stock_now();
    for hold in [&plain, &keyed, &claimed] {
        h.stock.end(hold.id, HoldStatus::Released, "someone", false, now).await.unwrap();
    }

    let retention = RETENTION.as_millis() as i64;
    let plain_ttl = h.ttl(plain.id).await;
    assert!(0 < plain_ttl && plain_ttl <= retention, "kept for the retention: {plain_ttl} ms");
    let keyed_ttl = h.ttl(keyed.id).await;
    assert!(keyed_ttl > retention && keyed_ttl <= IDEMPOTENCY.as_millis() as i64, "kept with its key: {keyed_ttl} ms");
    assert_eq!(h.ttl(claimed.id).await, -1, "a claimed hold's end is kept until it is announced");
    assert_eq!(h.ttl(live.id).await, -1);

    let spooled = h.stock.spooled(f.event, 10).await.unwrap();
    assert_eq!(spooled, [format!("released:{}", claimed.id.hold.simple())]);
    h.stock.unspool(f.event, &spooled).await.unwrap();
    assert!(h.stock.spooled(f.event, 10).await.unwrap().is_empty());
    let announced_ttl = h.ttl(claimed.id).await;
    assert!(0 < announced_ttl && announced_ttl <= retention, "kept for the retention once announced: {announced_ttl}");
    assert_eq!(h.held().await, 1);
}

#[tokio::test]
async fn a_released_hold_is_not_found_once_the_retention_passed() {
    let app = spawn_with(|config| config.inventory.ended_hold_retention = Duration::from_secs(1)).await;
    let fixture = Fixture::new(10, 1, 4, 10);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let user = uuid::Uuid::new_v4();
    let hold = app.hold(user, fixture.event, ga(fixture.ga, 2)).await.unwrap();
    app.release(user, &hold.hold_id).await.expect("released");
    app.release(user, &hold.hold_id).await.expect("releasing twice is fine while the record is kept");

    eventually("the released hold's record expired", Duration::from_secs(10), || async {
        match app.release(user, &hold.hold_id).await {
            Ok(_) => None,
            Err(status) if status.code() == Code::NotFound => Some(()),
            Err(status) => panic!("a release after the retention: {status:?}"),
        }
    })
    .await;
    let held: u32 = app.availability(fixture.event).await.unwrap().categories.iter().map(|c| c.held).sum();
    assert_eq!(held, 0);
}
