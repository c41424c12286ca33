//! Postgres failing over while holds are on: inventory serves holds from Redis, so it stays
//! ready and keeps selling; readiness reports Postgres down without leaving rotation.

use std::time::Duration;

use sqlx::Connection as _;

use crate::helpers::{Fixture, ga, spawn_with};

/// Refuses new connections to `database` and drops the open ones (as a failover does), or
/// lets them in again.
async fn cut(database: &str, down: bool) {
    let mut admin = sqlx::PgConnection::connect(&ticketing_testkit::database_url()).await.expect("Postgres");
    let alter = format!(r#"ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {}"#, !down);
    sqlx::query(&alter).execute(&mut admin).await.expect("ALTER DATABASE");
    if down {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(database)
        .execute(&mut admin)
        .await
        .expect("terminate the connections");
    }
}

#[tokio::test]
async fn holds_go_on_and_inventory_stays_ready_while_postgres_is_away() {
    // The strictest threshold: one failed round would be enough to leave rotation.
    let app = spawn_with(|config| {
        config.server.readiness_interval = Duration::from_millis(100);
        config.server.readiness_failure_threshold = 1;
    })
    .await;
    let fixture = Fixture::new(100, 1, 4, 10);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    app.service.wait_ready(true).await;
    let user = uuid::Uuid::new_v4();
    let before = app.hold(user, fixture.event, ga(fixture.ga, 1)).await.expect("a hold while Postgres is up");

    cut(app.db.name(), true).await;
    let (status, check) = app.service.wait_check("postgres", false).await;
    assert_eq!(status, 200, "Postgres alone must not make inventory unready: {check}");
    assert_eq!(check["gates"], false, "{check}");
    let during = app.hold(user, fixture.event, ga(fixture.ga, 1)).await.expect("a hold while Postgres is away");
    let (status, _) = app.service.wait_check("postgres", false).await;
    assert_eq!(status, 200);

    cut(app.db.name(), false).await;
    app.service.wait_check("postgres", true).await;
    app.check_invariants(&fixture, &[before, during]).await;
}
