//! Wires inventory's adapters, use cases, consumer, workers and transport.

use ticketing_platform::auth::Verifier;
use ticketing_platform::{App, Running, db, readiness};
use ticketing_proto::inventory::v1::inventory_server::InventoryServer;
use ticketing_proto::topics;
use tonic::server::NamedService as _;

use crate::adapters::stock::Stock;
use crate::config::Config;
use crate::events::consume::{CatalogEvents, GROUP};
use crate::grpc::Api;
use crate::metrics::StockMetrics;
use crate::service::Inventory;
use crate::workers::reaper::Reaper;

/// Migrates (if configured), connects and binds the service.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let redis = ticketing_platform::redis::connect(&config.redis).await?;
    let topic = config.kafka.topic(topics::INVENTORY);

    let mut app = App::new("inventory", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool).watch_redis(&redis);
    let stock = Stock::new(redis.clone(), &config.redis.key_prefix)
        .retaining(config.inventory.ended_hold_retention)
        .instrumented(app.metrics());
    let inventory = Inventory::new(pool.clone(), stock.clone(), config.inventory.clone(), topic, app.metrics());
    let verifier = Verifier::from_config(&config.auth);
    app.authenticate_with(verifier.clone());
    // Holds and releases are served from Redis; the ledger's flush retries while Postgres
    // fails over, so Postgres alone never takes inventory out of rotation.
    app.monitor("postgres", readiness::postgres(pool.clone()));
    app.check("redis", readiness::redis(redis));

    app.kafka(&config.kafka)?.outbox_relay(&pool, topics::INVENTORY);
    let interval = app.metrics().interval();
    app.every("stock-metrics", interval, StockMetrics::new(pool.clone(), stock.clone(), app.metrics()));
    app.consume("catalog-consumer", GROUP, &[topics::CATALOG], &pool, CatalogEvents::new(stock));
    app.every("reaper", config.inventory.reaper_interval, Reaper::new(inventory.clone()));

    let routes = tonic::service::Routes::new(InventoryServer::new(Api::new(inventory, verifier)));
    app.bind(routes, &[InventoryServer::<Api>::NAME]).await
}
