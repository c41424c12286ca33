//! Wires the gateway: the platform's gRPC health and admin servers, and the public
//! HTTP server, which stops with the rest after the drain delay.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use ticketing_platform::auth::Verifier;
use ticketing_platform::discovery::Discovery;
use ticketing_platform::{App, Running};

use crate::config::Config;
use crate::state::{AppState, Backends};

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
    let state = AppState {
        verifier: Verifier::from_config(&config.auth),
        backends: Backends::new(settings, &Discovery::from_config(&config.discovery))?,
        retry_after: Duration::from_secs(1),
    };
    let router = crate::http::router(state, settings, app.metrics().clone());
    let stop = app.stop_token();
    app.spawn("http", async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .context("public HTTP server failed")
    });
    let running = app.bind(tonic::service::Routes::default(), &[]).await?;
    Ok(Gateway { running, http_addr })
}
