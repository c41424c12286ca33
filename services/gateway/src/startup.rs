//! Wires the gateway: the platform's gRPC health and admin servers, and the public
//! HTTP server, which stops with the rest after the drain delay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ticketing_platform::auth::Verifier;
use ticketing_platform::discovery::Discovery;
use ticketing_platform::peers::ServiceTokens;
use ticketing_platform::redis::LazyConnection;
use ticketing_platform::{App, Running};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::ratelimit::RateLimiter;
use crate::snapshot::Snapshots;
use crate::state::{AppState, Backends, Shared};
use crate::waiting_room::WaitingRoom;

/// The running gateway and where its public API listens.
pub struct Gateway {
    /// Health, metrics and shutdown.
    pub running: Running,
    /// The public REST API.
    pub http_addr: SocketAddr,
}

/// Connects (lazily) and binds the gateway.
pub async fn build(config: Config) -> anyhow::Result<Gateway> {
    let settings = &config.gateway;
    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .with_context(|| format!("binding the public HTTP API on {}", settings.http_addr))?;
    let http_addr = listener.local_addr()?;
    let mut app = App::new("gateway", config.server.clone());
    app.telemetry(&config.telemetry);
    // One connection, made in the background: the gateway serves while Redis is down.
    let redis = LazyConnection::connect(&config.redis)?;
    app.watch_redis(&redis.background());
    let tokens = ServiceTokens::from_config(&config.auth)?.context("auth.client_id is required")?;
    let state = AppState::new(Shared {
        verifier: Verifier::from_config(&config.auth),
        backends: Backends::new(settings, &Discovery::from_config(&config.discovery), app.metrics())?,
        retry_after: Duration::from_secs(1),
        waiting_room: WaitingRoom::new(redis.clone(), &config.redis.key_prefix, &settings.waiting_room, app.metrics()),
        readiness: app.readiness().clone(),
        tokens,
        seat_map_imports: Arc::new(Semaphore::new(settings.max_seat_map_imports)),
        snapshots: Snapshots::new(settings.snapshot_ttl, app.metrics())?,
    });
    let (interval, stop) = (app.metrics().interval(), app.stop_token());
    app.spawn("waiting-room-metrics", state.waiting_room.clone().watch(state.backends.clone(), interval, stop));
    let limits = settings.rate_limits;
    let limiter = limits
        .enabled
        .then(|| {
            let verifier = state.verifier.clone();
            let prefix = &config.redis.key_prefix;
            RateLimiter::new(limits, redis, prefix, verifier, settings.max_body_bytes, app.metrics())
        })
        .transpose()?;
    let router = crate::http::router(state, settings, app.metrics().clone(), limiter);
    let stop = app.stop_token();
    let header_read_timeout = settings.header_read_timeout;
    app.spawn("http", async move {
        crate::server::serve(listener, router, header_read_timeout, stop).await.context("public HTTP server failed")
    });
    let running = app.bind(tonic::service::Routes::default(), &[]).await?;
    Ok(Gateway { running, http_addr })
}
