//! Redis connections with the deployment's key prefix.

use anyhow::Context as _;

use crate::config::RedisConfig;

/// A multiplexed, auto-reconnecting connection. Creating it does not wait for Redis:
/// the first command does, so a service starts (unready) while Redis is down.
pub async fn connect(config: &RedisConfig) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = match &config.ca_file {
        None => redis::Client::open(config.url.as_str()).context("parsing redis.url")?,
        Some(path) => {
            let root_cert = std::fs::read(path).with_context(|| format!("reading redis.ca_file {}", path.display()))?;
            let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
            redis::Client::build_with_tls(config.url.as_str(), certificates).context("parsing redis.url")?
        }
    };
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(std::time::Duration::from_secs(2))
        .set_response_timeout(std::time::Duration::from_secs(2));
    redis::aio::ConnectionManager::new_with_config(client, manager_config).await.context("connecting to Redis")
}

/// A connection made in the background, for a service that must start and serve what needs
/// no Redis while Redis is down (the gateway): until Redis first answers, `get` is `None`.
#[derive(Clone)]
pub struct LazyConnection {
    cell: std::sync::Arc<std::sync::OnceLock<redis::aio::ConnectionManager>>,
}

impl LazyConnection {
    /// Starts connecting to `config`'s Redis, retrying every second until it answers or the
    /// last clone is dropped; `what` names the user in the warnings. Needs a Tokio runtime.
    pub fn connect(config: &RedisConfig, what: &'static str) -> Self {
        let cell = std::sync::Arc::new(std::sync::OnceLock::new());
        let (weak, config) = (std::sync::Arc::downgrade(&cell), config.clone());
        tokio::spawn(async move {
            loop {
                let connected = connect(&config).await;
                let Some(cell) = weak.upgrade() else { return };
                match connected {
                    Ok(connection) => {
                        let _ = cell.set(connection);
                        return;
                    }
                    Err(e) => tracing::warn!(error = format!("{e:#}"), what, "cannot reach Redis yet"),
                }
                drop(cell);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        Self { cell }
    }

    /// The connection, once Redis has answered.
    pub fn get(&self) -> Option<redis::aio::ConnectionManager> {
        self.cell.get().cloned()
    }
}
