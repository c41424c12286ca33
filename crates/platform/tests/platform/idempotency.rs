//! Stripe-style idempotency keys against the real Postgres.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ticketing_platform::idempotency::{IdempotencyKeys, Scope};
use ticketing_proto::common::v1::Money;
use ticketing_testkit::TestDb;
use tonic::{Code, Status};

async fn keys(takeover_after: Duration) -> (TestDb, IdempotencyKeys) {
    let db = TestDb::new(&ticketing_platform::db::migrator(None)).await;
    let keys = IdempotencyKeys::new(db.pool.clone(), takeover_after);
    (db, keys)
}

fn money(minor_units: i64) -> Money {
    Money { currency: "EUR".into(), minor_units }
}

fn scope(caller: uuid::Uuid, key: &str) -> Scope<'_> {
    Scope { operation: "test.Charge", caller, key }
}

#[tokio::test]
async fn a_repeat_replays_the_first_response_and_a_different_request_is_refused() {
    let (_db, keys) = keys(Duration::from_secs(60)).await;
    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let runs = AtomicUsize::new(0);
    let work = |answer: i64| {
        let runs = &runs;
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Status>(money(answer))
        }
    };

    let first = keys.once(scope(alice, "k1"), &money(100), work(1)).await.unwrap();
    let again = keys.once(scope(alice, "k1"), &money(100), work(2)).await.unwrap();
    assert_eq!((first.minor_units, again.minor_units), (1, 1), "the repeat gets the first response");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the work ran once");

    let other = keys.once(scope(alice, "k1"), &money(999), work(3)).await.unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument, "{other:?}");
    let bobs = keys.once(scope(bob, "k1"), &money(100), work(4)).await.unwrap();
    assert_eq!(bobs.minor_units, 4, "keys are per caller");
    let unkeyed = keys.once(scope(alice, ""), &money(100), work(5)).await.unwrap();
    assert_eq!(unkeyed.minor_units, 5, "no key, no idempotency");
}

#[tokio::test]
async fn final_errors_are_replayed_and_transient_ones_let_a_retry_run() {
    let (_db, keys) = keys(Duration::from_secs(60)).await;
    let caller = uuid::Uuid::new_v4();
    let refused = keys
        .once(scope(caller, "final"), &money(1), async { Err::<Money, _>(Status::failed_precondition("already paid")) })
        .await
        .unwrap_err();
    let replayed = keys.once(scope(caller, "final"), &money(1), async { Ok(money(1)) }).await.unwrap_err();
    assert_eq!((replayed.code(), replayed.message()), (refused.code(), refused.message()));

    let one = money(1);
    let down = keys.once(scope(caller, "transient"), &one, async { Err::<Money, _>(Status::unavailable("down")) });
    assert_eq!(down.await.unwrap_err().code(), Code::Unavailable);
    let retried = keys.once(scope(caller, "transient"), &money(1), async { Ok(money(7)) }).await.unwrap();
    assert_eq!(retried.minor_units, 7, "a transient failure is not stored");
}

#[tokio::test]
async fn concurrent_repeats_run_the_work_once_and_an_abandoned_key_is_taken_over() {
    let (_db, keys) = keys(Duration::from_millis(300)).await;
    let caller = uuid::Uuid::new_v4();
    let runs = Arc::new(AtomicUsize::new(0));
    let attempts = (0..50).map(|_| {
        let (keys, runs) = (keys.clone(), runs.clone());
        async move {
            keys.once(scope(caller, "race"), &money(5), async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(money(5))
            })
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one attempt ran the work");
    for result in &results {
        match result {
            Ok(m) => assert_eq!(m.minor_units, 5),
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }

    // The owner of "abandoned" dies mid-request: its future is dropped.
    let one = money(1);
    let started = keys.once(scope(caller, "abandoned"), &one, std::future::pending::<Result<Money, Status>>());
    assert!(tokio::time::timeout(Duration::from_millis(50), started).await.is_err());
    let busy = keys.once(scope(caller, "abandoned"), &money(1), async { Ok(money(1)) }).await.unwrap_err();
    assert_eq!(busy.code(), Code::Aborted, "still within the owner's time");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = keys.once(scope(caller, "abandoned"), &money(1), async { Ok(money(2)) }).await.unwrap();
    assert_eq!(taken.minor_units, 2, "taken over after the owner's time");

    assert_eq!(keys.purge(Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(keys.purge(Duration::from_secs(1)).await.unwrap() >= 2, "old keys are purged");
}
