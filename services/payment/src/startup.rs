//! Wires payment's adapters, use cases, consumer, background work and transport.

use std::sync::Arc;
use std::time::Duration;

use ticketing_platform::auth::Verifier;
use ticketing_platform::db::DatabaseConfig;
use ticketing_platform::idempotency::IdempotencyKeys;
use ticketing_platform::kafka::consumer::Consumer;
use ticketing_platform::kafka::outbox::Relay;
use ticketing_platform::{App, Running, db, kafka, periodic, readiness};
use ticketing_proto::payment::v1::payment_server::PaymentServer;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService as _;

use crate::adapters::processor::Processor;
use crate::adapters::simulated::Simulated;
use crate::config::{Config, ProviderKind};
use crate::events::consume::{BookingEvents, GROUP};
use crate::grpc::Api;
use crate::ports::Provider;
use crate::service::Payments;

/// Migrates (if configured), connects and binds the service.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let topic = config.kafka.topic(ticketing_proto::topics::PAYMENT);
    let booking_topic = config.kafka.topic(ticketing_proto::topics::BOOKING);
    let dlq = format!("{booking_topic}{}", kafka::DLQ_SUFFIX);
    if let Err(e) = kafka::ensure_topics(&config.kafka, &[topic.clone(), booking_topic.clone(), dlq]).await {
        tracing::warn!(error = format!("{e:#}"), "could not ensure Kafka topics; retrying in the background");
    }

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
    let payments = Payments::new(pool.clone(), provider, settings.clone(), topic, app.metrics());
    // A started key is taken over only once its first request can no longer be running.
    let keys = IdempotencyKeys::new(pool.clone(), settings.longest_call() + Duration::from_secs(30));
    app.authenticate_with(Verifier::from_config(&config.auth));
    app.check("postgres", readiness::postgres(pool.clone()));

    let producer = kafka::producer(&config.kafka)?;
    let relay = Relay::new(pool.clone(), producer.clone(), &config.kafka, app.metrics());
    app.spawn("outbox-relay", relay.run(app.stop_token()));
    let consumer = Consumer::new(
        GROUP,
        vec![booking_topic],
        pool,
        producer,
        BookingEvents::new(payments.clone()),
        &config.kafka,
        app.metrics(),
    );
    app.spawn("booking-consumer", consumer.run(app.stop_token()));
    app.spawn("reconciler", reconcile(payments.clone(), settings.reconcile_interval, app.stop_token()));
    app.spawn("idempotency-purge", keys.clone().purge_until(settings.idempotency_ttl, app.stop_token()));

    let routes = tonic::service::Routes::new(PaymentServer::new(Api::new(payments, keys)));
    app.bind(routes, &[PaymentServer::<Api>::NAME]).await
}

/// Settles unknown charges and pending refunds, until stopped. Every replica runs it.
async fn reconcile(payments: Payments, interval: Duration, stop: CancellationToken) -> anyhow::Result<()> {
    let mut rounds = periodic::Every::new(interval, stop.clone());
    while rounds.tick().await {
        // Claimed rows are leased, so passes go on until nothing is due. A pass cut short
        // by shutdown is safe: its leases lapse and settling is conditional.
        loop {
            let pass = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                pass = payments.reconcile() => pass,
            };
            match pass {
                Ok(n) if n > 0 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "reconciliation pass failed");
                    break;
                }
            }
        }
    }
    Ok(())
}
