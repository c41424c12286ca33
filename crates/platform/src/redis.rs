//! Redis connections with the deployment's key prefix.

use anyhow::Context as _;

use crate::config::RedisConfig;

/// A multiplexed, auto-reconnecting connection. Creating it does not wait for Redis:
/// the first command does, so a service starts (unready) while Redis is down.
pub async fn connect(config: &RedisConfig) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(config.url.as_str()).context("parsing redis.url")?;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(std::time::Duration::from_secs(2))
        .set_response_timeout(std::time::Duration::from_secs(2));
    redis::aio::ConnectionManager::new_with_config(client, manager_config).await.context("connecting to Redis")
}
