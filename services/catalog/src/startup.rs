//! Wires the catalog's adapters, use cases and transports into a runnable service.

use ticketing_platform::auth::Verifier;
use ticketing_platform::{App, Running, db, readiness};
use ticketing_proto::catalog::v1::catalog_server::CatalogServer;
use ticketing_proto::topics;
use tonic::server::NamedService as _;

use crate::config::Config;
use crate::grpc::Api;
use crate::service::Catalog;
use crate::workers::sale_scheduler::SaleScheduler;

/// Migrates (if configured), connects and binds the service; call `run_until_stopped` on the result.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let topic = config.kafka.topic(topics::CATALOG);

    let mut app = App::new("catalog", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool);
    app.authenticate_with(Verifier::from_config(&config.auth));
    app.check("postgres", readiness::postgres(pool.clone()));

    // A stadium's EventPublished lists every seat and is several MiB, above librdkafka's
    // 1 MB default and the broker's; an operator's own `kafka.properties.message_max_bytes`
    // wins for the producer.
    let max_event_bytes = config.catalog.max_event_bytes.to_string();
    let mut kafka = config.kafka.clone();
    kafka.properties.entry("message_max_bytes".into()).or_insert_with(|| max_event_bytes.clone());
    app.kafka(&kafka)?.outbox_relay_with(&pool, topics::CATALOG, &[("max.message.bytes", &max_event_bytes)]);

    app.publishes(topics::AUDIT);
    let catalog = Catalog::new(pool, topic, config.kafka.topic(topics::AUDIT));
    app.every("sale-scheduler", config.catalog.scheduler_interval, SaleScheduler::new(catalog.clone()));

    // tonic refuses requests above 4 MiB by default; a 60,000-seat import is larger.
    let server = CatalogServer::new(Api::new(catalog)).max_decoding_message_size(config.catalog.max_request_bytes);
    app.bind(tonic::service::Routes::new(server), &[CatalogServer::<Api>::NAME]).await
}
