//! The Postgres readiness check against a real server: a saturated pool is busy, not down,
//! and a server that refuses connections fails the check within its bound.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use ticketing_testkit::TestDb;

const BOUND: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_pool_with_every_connection_in_use_counts_as_up_without_waiting() {
    let db = TestDb::empty().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&db.config.url)
        .await
        .unwrap();
    let check = ticketing_platform::readiness::postgres(pool.clone());
    tokio::time::timeout(BOUND, check()).await.expect("bounded").expect("an idle connection answers");

    // The only connection is busy: the check must neither wait for it nor fail.
    let busy = pool.acquire().await.unwrap();
    tokio::time::timeout(BOUND, check()).await.expect("answered without waiting for the pool").expect("busy is up");
    drop(busy);
    tokio::time::timeout(BOUND, check()).await.expect("bounded").expect("the connection is back");
}

#[tokio::test]
async fn a_server_that_refuses_connections_fails_the_check() {
    // A port nobody listens on: opening a connection fails at once.
    let port = ticketing_testkit::process::free_port();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .unwrap();
    let check = ticketing_platform::readiness::postgres(pool);
    let failed = tokio::time::timeout(BOUND, check()).await.expect("bounded");
    assert!(failed.is_err(), "{failed:?}");
}
