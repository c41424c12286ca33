//! Coalesced holds: one script call places a batch exactly as if its holds had come
//! one by one, and concurrent holds really are batched.

use std::time::Duration;

use ticketing_inventory::adapters::ledger;
use ticketing_inventory::adapters::stock::{HoldRequest, Placed, Stock};
use ticketing_inventory::config::InventorySettings;
use ticketing_inventory::domain::{HoldId, Selection};
use ticketing_inventory::service::Inventory;
use ticketing_platform::metrics::Metrics;
use ticketing_testkit::{TestDb, TestRedis};

use crate::helpers::Fixture;

struct Harness {
    inventory: Inventory,
    stock: Stock,
    metrics: Metrics,
    fixture: Fixture,
    _db: TestDb,
    _redis: TestRedis,
}

/// A loaded event (3 GA tickets, 4 seats in one row, limit 3) and an inventory whose
/// coalescer keeps `in_flight` batches outstanding.
async fn harness(ga: u32, in_flight: usize) -> Harness {
    let db = TestDb::new(&ticketing_inventory::migrator()).await;
    let redis = TestRedis::for_service("inventory");
    let conn = ticketing_platform::redis::connect(&redis.config).await.unwrap();
    let stock = Stock::new(conn, &redis.config.key_prefix);
    let settings = InventorySettings { hold_batches_in_flight: in_flight, ..InventorySettings::default() };
    let metrics = Metrics::new("coalescing");
    let inventory = Inventory::new(db.pool.clone(), stock.clone(), settings, "inventory.events".into(), &metrics);
    let fixture = Fixture::new(ga, 1, 4, 3);
    let mut tx = db.pool.begin().await.unwrap();
    ledger::insert_stock(&mut tx, &fixture.on_sale_now()).await.unwrap();
    tx.commit().await.unwrap();
    inventory.ensure_loaded(fixture.event).await.unwrap();
    Harness { inventory, stock, metrics, fixture, _db: db, _redis: redis }
}

fn request(fixture: &Fixture, user: uuid::Uuid, selection: Selection, key: &str) -> HoldRequest {
    HoldRequest { id: HoldId::new(fixture.event), user, selection, idempotency_key: key.into() }
}

fn code(placed: &Placed) -> String {
    match placed {
        Placed::Held(_) => "OK".into(),
        Placed::Replayed(_) => "DUP".into(),
        Placed::Refused(r) => format!("{}:{}", r.code, r.detail),
    }
}

#[tokio::test]
async fn a_batch_places_its_holds_in_order_each_all_or_nothing() {
    let h = harness(3, 1).await;
    let f = &h.fixture;
    let (alice, bob, carol) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let ga = |quantity| Selection::GeneralAdmission { category: f.ga, quantity };
    let seats = |i: &[usize]| Selection::Seats(i.iter().map(|&i| f.seat(i)).collect());
    let batch = [
        request(f, alice, ga(2), ""),
        request(f, bob, ga(2), ""),             // one left after alice
        request(f, bob, seats(&[0, 1]), "b-1"), // held
        request(f, carol, seats(&[2, 1]), ""),  // seat 1 went to bob just before
        request(f, bob, seats(&[0, 1]), "b-1"), // bob's retry: his first hold
        request(f, bob, ga(1), "b-1"),          // same key, other request
        request(f, alice, seats(&[3]), ""),     // alice's third ticket
        request(f, alice, ga(1), ""),           // over alice's limit of 3
        request(f, carol, ga(1), ""),           // the last GA ticket
    ];
    let refs: Vec<&HoldRequest> = batch.iter().collect();
    let placed = h
        .stock
        .hold_batch(
            f.event,
            &refs,
            Duration::from_secs(60),
            Duration::from_secs(86_400),
            ticketing_inventory::adapters::stock::now_ms(),
        )
        .await
        .unwrap();

    let codes: Vec<String> = placed.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            "OK",
            "SOLD_OUT:1",
            "OK",
            &format!("SEAT_TAKEN:{}", f.seat(1).simple()),
            "DUP",
            "IDEMPOTENCY_MISMATCH:",
            "OK",
            "LIMIT:0",
            "OK"
        ]
    );
    let Placed::Replayed(first) = &placed[4] else { unreachable!() };
    assert_eq!(*first, batch[2].id, "a replay inside the batch names the first hold");
    let tokens: Vec<u64> = placed
        .iter()
        .filter_map(|p| if let Placed::Held(hold) = p { Some(hold.fencing_token) } else { None })
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "fencing tokens rise in batch order: {tokens:?}");

    let availability = h.inventory.availability(f.event, true).await.unwrap();
    let counts: Vec<(u32, u32, u32)> =
        availability.categories.iter().map(|(_, c)| (c.available, c.held, c.sold)).collect();
    assert!(counts.contains(&(0, 3, 0)), "GA all held: {counts:?}");
    assert!(counts.contains(&(1, 3, 0)), "seats 0, 1 and 3 held, seat 2 free: {counts:?}");
}

#[tokio::test]
async fn concurrent_holds_are_coalesced_into_few_script_calls() {
    const HOLDS: usize = 200;
    let h = harness(HOLDS as u32, 1).await;
    let holds = (0..HOLDS).map(|_| {
        let selection = Selection::GeneralAdmission { category: h.fixture.ga, quantity: 1 };
        h.inventory.hold(uuid::Uuid::new_v4(), h.fixture.event, selection, "")
    });
    let results = futures::future::join_all(holds).await;
    assert!(results.iter().all(Result::is_ok), "every hold is granted");

    let text = h.metrics.render();
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("inventory_hold_batch_size_sum") as usize, HOLDS, "every hold went through a batch");
    let calls = value("inventory_hold_batch_size_count") as usize;
    assert!(calls <= HOLDS / 4, "{HOLDS} concurrent holds took {calls} script calls");
    let sold_out = h
        .inventory
        .hold(
            uuid::Uuid::new_v4(),
            h.fixture.event,
            Selection::GeneralAdmission { category: h.fixture.ga, quantity: 1 },
            "",
        )
        .await;
    assert!(sold_out.is_err(), "nothing is left after {HOLDS} holds of {HOLDS} tickets");
}
