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
