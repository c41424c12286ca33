//! Wires payment's adapters, use cases, consumer, workers and transport.

use std::sync::Arc;
use std::time::Duration;

use ticketing_platform::auth::Verifier;
use ticketing_platform::db::DatabaseConfig;
use ticketing_platform::idempotency::IdempotencyKeys;
use ticketing_platform::{App, Running, db, readiness};
use ticketing_proto::payment::v1::payment_server::PaymentServer;
use ticketing_proto::topics;
use tonic::server::NamedService as _;

use crate::adapters::processor::Processor;
use crate::adapters::simulated::Simulated;
use crate::config::{Config, ProviderKind};
use crate::events::consume::{BookingEvents, GROUP};
use crate::grpc::Api;
use crate::ports::Provider;
use crate::service::Payments;
use crate::workers::reconciler::Reconciler;

/// Migrates (if configured), connects and binds the service.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let topic = config.kafka.topic(topics::PAYMENT);

    let settings = &config.payment;
    let provider: Arc<dyn Provider> = match settings.provider {
        // The simulator stands for another system: a pool of its own, so a burst of
        // Charge calls waiting for payment's connections does not slow it down.
        ProviderKind::Simulated => {
            let ledger = db::pool(&DatabaseConfig { max_connections: 4, ..config.database.clone() })?;
            Arc::new(Simulated::new(ledger, settings.simulated.slow_delay))
        }
        // The HTTP client's own timeout backs up the client deadline, a little later.
        ProviderKind::Processor => {
            Arc::new(Processor::new(&settings.processor, settings.client_deadline + Duration::from_secs(1))?)
        }
    };

    let mut app = App::new("payment", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool);
    let audit_topic = config.kafka.topic(topics::AUDIT);
    let payments = Payments::new(pool.clone(), provider, settings.clone(), topic, audit_topic, app.metrics());
    // A started key is taken over only once its first request can no longer be running.
    let keys = IdempotencyKeys::new(pool.clone(), settings.longest_call() + Duration::from_secs(30));
    app.authenticate_with(Verifier::from_config(&config.auth));
    app.check("postgres", readiness::postgres(pool.clone()));

    // Refunds by hand are audited (ADR 0046) through the same outbox.
    app.kafka(&config.kafka)?.outbox_relay(&pool, topics::PAYMENT).publishes(topics::AUDIT).consume(
        "booking-consumer",
        GROUP,
        &[topics::BOOKING],
        &pool,
        BookingEvents::new(payments.clone()),
    );
    app.every("reconciler", settings.reconcile_interval, Reconciler::new(payments.clone(), app.stop_token()));
    app.spawn("idempotency-purge", keys.clone().purge_until(settings.idempotency_ttl, app.stop_token()));

    let routes = tonic::service::Routes::new(PaymentServer::new(Api::new(payments, keys)));
    app.bind(routes, &[PaymentServer::<Api>::NAME]).await
}
