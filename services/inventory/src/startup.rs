//! Wires inventory's adapters, use cases, consumer, background work and transport.

use std::time::Duration;

use ticketing_platform::auth::Verifier;
use ticketing_platform::kafka::consumer::Consumer;
use ticketing_platform::kafka::outbox::Relay;
use ticketing_platform::{App, Running, db, kafka, periodic, readiness};
use ticketing_proto::inventory::v1::inventory_server::InventoryServer;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService as _;

use crate::adapters::stock::Stock;
use crate::config::Config;
use crate::events::consume::{CatalogEvents, GROUP};
use crate::grpc::Api;
use crate::service::Inventory;

/// Migrates (if configured), connects and binds the service.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let redis = ticketing_platform::redis::connect(&config.redis).await?;
    let topic = config.kafka.topic(ticketing_proto::topics::INVENTORY);
    let catalog_topic = config.kafka.topic(ticketing_proto::topics::CATALOG);
    let dlq = format!("{catalog_topic}{}", kafka::DLQ_SUFFIX);
    if let Err(e) = kafka::ensure_topics(&config.kafka, &[topic.clone(), catalog_topic.clone(), dlq]).await {
        tracing::warn!(error = format!("{e:#}"), "could not ensure Kafka topics; retrying in the background");
    }

    let mut app = App::new("inventory", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool).watch_redis(&redis);
    let stock = Stock::new(redis.clone(), &config.redis.key_prefix).instrumented(app.metrics());
    let inventory = Inventory::new(pool.clone(), stock.clone(), config.inventory.clone(), topic, app.metrics());
    app.authenticate_with(Verifier::from_config(&config.auth));
    // Holds and releases are served from Redis; the ledger's flush retries while Postgres
    // fails over, so Postgres alone never takes inventory out of rotation.
    app.monitor("postgres", readiness::postgres(pool.clone()));
    app.check("redis", readiness::redis(redis));

    let producer = kafka::producer(&config.kafka)?;
    let relay = Relay::new(pool.clone(), producer.clone(), &config.kafka, app.metrics());
    app.spawn("outbox-relay", relay.run(app.stop_token()));
    crate::metrics::spawn(&mut app, pool.clone(), stock.clone());
    let consumer = Consumer::new(
        GROUP,
        vec![catalog_topic],
        pool,
        producer,
        CatalogEvents::new(stock),
        &config.kafka,
        app.metrics(),
    );
    app.spawn("catalog-consumer", consumer.run(app.stop_token()));
    app.spawn("reaper", reap(inventory.clone(), config.inventory.reaper_interval, app.stop_token()));

    let routes = tonic::service::Routes::new(InventoryServer::new(Api::new(inventory)));
    app.bind(routes, &[InventoryServer::<Api>::NAME]).await
}

/// Expires due holds and moves their announcements to the outbox, until stopped.
/// Every replica runs it: each expiry is one atomic script, and spooled announcements
/// carry deterministic ids.
async fn reap(inventory: Inventory, interval: Duration, stop: CancellationToken) -> anyhow::Result<()> {
    let mut rounds = periodic::Every::new(interval, stop);
    while rounds.tick().await {
        if let Err(e) = inventory.reap().await {
            tracing::warn!(error = format!("{e:#}"), "expiring holds failed");
        }
        if let Err(e) = inventory.drain_spool().await {
            tracing::warn!(error = format!("{e:#}"), "announcing ended holds failed");
        }
    }
    Ok(())
}
