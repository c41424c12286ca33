//! Wires booking's store, peers, use cases, saga consumer, workers and transport.

use std::time::Duration;

use anyhow::Context as _;
use ticketing_platform::auth::Verifier;
use ticketing_platform::discovery::Discovery;
use ticketing_platform::idempotency::IdempotencyKeys;
use ticketing_platform::peers::ServiceTokens;
use ticketing_platform::{App, Running, db, readiness};
use ticketing_proto::booking::v1::booking_server::BookingServer;
use ticketing_proto::topics;
use tonic::server::NamedService as _;

use crate::adapters::peers::{Channels, Peers};
use crate::config::Config;
use crate::events::consume::{GROUP, Saga, TOPICS};
use crate::grpc::Api;
use crate::service::Bookings;
use crate::workers::cancellation_sweeper::CancellationSweeper;
use crate::workers::reconciler::Reconciler;

/// Migrates (if configured), connects and binds the service.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let topic = config.kafka.topic(topics::BOOKING);

    let settings = &config.booking;
    let tokens = ServiceTokens::from_config(&config.auth)?.context("auth.client_id is required")?;
    let discovery = Discovery::from_config(&config.discovery);
    let channels = Channels {
        inventory: discovery.channel(&settings.inventory_url, settings.peer_timeout)?,
        catalog: discovery.channel(&settings.catalog_url, settings.peer_timeout)?,
        notification: discovery.channel(&settings.notification_url, settings.peer_timeout)?,
        payment: discovery.channel(&settings.payment_url, settings.peer_timeout)?,
    };
    let peers = Peers::new(channels, tokens);
    let mut app = App::new("booking", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool);
    let audit_topic = config.kafka.topic(topics::AUDIT);
    let bookings = Bookings::new(pool.clone(), peers, topic, audit_topic, settings.reconcile_after, app.metrics());
    // A request owns its key for at most a few peer calls; after that a repeat may take over.
    let keys = IdempotencyKeys::new(pool.clone(), settings.peer_timeout * 4 + Duration::from_secs(30));
    app.authenticate_with(Verifier::from_config(&config.auth));
    app.check("postgres", readiness::postgres(pool.clone()));

    app.kafka(&config.kafka)?.outbox_relay(&pool, topics::BOOKING).publishes(topics::AUDIT).consume(
        "saga",
        GROUP,
        &TOPICS,
        &pool,
        Saga::new(bookings.clone()),
    );
    let sweeper = CancellationSweeper::new(bookings.clone(), settings.cancellation_sweep_after)?;
    app.every("cancellation-sweeper", sweeper.interval(), sweeper);
    let reconciler = Reconciler::new(bookings.clone(), app.metrics());
    app.every("reconciler", reconciler.interval(), reconciler);
    app.spawn("idempotency-purge", keys.clone().purge_until(settings.idempotency_ttl, app.stop_token()));

    let routes = tonic::service::Routes::new(BookingServer::new(Api::new(bookings, keys)));
    app.bind(routes, &[BookingServer::<Api>::NAME]).await
}
