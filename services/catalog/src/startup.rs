//! Wires the catalog's adapters, use cases and transports into a runnable service.

use ticketing_platform::auth::Verifier;
use ticketing_platform::kafka::outbox::Relay;
use ticketing_platform::{App, Running, db, kafka, periodic, readiness};
use ticketing_proto::catalog::v1::catalog_server::CatalogServer;
use tonic::server::NamedService as _;

use crate::config::Config;
use crate::grpc::Api;
use crate::service::Catalog;

/// Migrates (if configured), connects and binds the service; call `run_until_stopped` on the result.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let topic = config.kafka.topic(ticketing_proto::topics::CATALOG);
    // The outbox buffers events while the broker is away, so a missing broker is not fatal.
    // A stadium's EventPublished lists every seat; the broker's default 1 MB would refuse it.
    let max_event_bytes = config.catalog.max_event_bytes.to_string();
    let topic_config = [("max.message.bytes", max_event_bytes.as_str())];
    if let Err(e) = kafka::ensure_topics_with(&config.kafka, std::slice::from_ref(&topic), &topic_config).await {
        tracing::warn!(error = format!("{e:#}"), "could not ensure Kafka topics; the relay will retry publishing");
    }

    let mut app = App::new("catalog", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool);
    app.authenticate_with(Verifier::from_config(&config.auth));
    app.check("postgres", readiness::postgres(pool.clone()));

    // A stadium's EventPublished lists every seat and is several MiB, above librdkafka's
    // 1 MB default; an operator's own `kafka.properties.message_max_bytes` wins.
    let mut producer_config = config.kafka.clone();
    producer_config
        .properties
        .entry("message_max_bytes".into())
        .or_insert_with(|| config.catalog.max_event_bytes.to_string());
    let relay = Relay::new(pool.clone(), kafka::producer(&producer_config)?, &config.kafka, app.metrics());
    app.spawn("outbox-relay", relay.run(app.stop_token()));

    let catalog = Catalog::new(pool, topic);
    app.spawn("sale-scheduler", schedule_sales(catalog.clone(), config.catalog.scheduler_interval, app.stop_token()));

    // tonic refuses requests above 4 MiB by default; a 60,000-seat import is larger.
    let server = CatalogServer::new(Api::new(catalog)).max_decoding_message_size(config.catalog.max_request_bytes);
    app.bind(tonic::service::Routes::new(server), &[CatalogServer::<Api>::NAME]).await
}

/// Starts and closes due sales every `interval` until `stop`. Safe in every replica.
async fn schedule_sales(
    catalog: Catalog,
    interval: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut rounds = periodic::Every::new(interval, stop);
    while rounds.tick().await {
        match catalog.advance_due_sales().await {
            Ok(0) => {}
            Ok(changed) => tracing::info!(changed, "sale scheduler moved events"),
            Err(e) => tracing::warn!(error = %e, "sale scheduler round failed; retrying next round"),
        }
    }
    Ok(())
}
