//! Redis connections with the deployment's key prefix.
//!
//! Each process keeps one multiplexed connection, which a background task re-establishes
//! whenever it breaks. redis-rs's own `ConnectionManager` (0.32) is not used: a command
//! issued while it reconnects awaits the reconnection with no timeout, and its backoff grows
//! from 1 s to 60 s (its `factor` multiplies the delay and `exponent_base` is ignored), so
//! after a Redis restart every command hung for a minute or more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::watch;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, Validate};

/// Redis, for services that keep hot state there.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` (TLS) URL.
    pub url: String,
    /// Prepended to every key, so several deployments (or tests) can share a server.
    pub key_prefix: String,
    /// PEM file of the CA that signs the server's certificate, for `rediss://` servers
    /// whose CA is not in the system's store (Memorystore); unset: the system's CAs.
    pub ca_file: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: "redis://127.0.0.1:6379".into(), key_prefix: "ticketing:".into(), ca_file: None }
    }
}

impl Validate for RedisConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if let Err(e) = redis::Client::open(self.url.as_str()) {
            issues.push(ConfigIssue::new("redis.url", e.to_string()));
        }
        if let Some(path) = &self.ca_file {
            if !self.url.starts_with("rediss://") {
                issues.push(ConfigIssue::new("redis.ca_file", "needs a rediss:// redis.url"));
            }
            if let Err(e) = std::fs::read(path) {
                issues.push(ConfigIssue::new("redis.ca_file", format!("cannot read {}: {e}", path.display())));
            }
        }
    }
}

/// The longest wait for a reply, and for a connection attempt (TCP, TLS and handshake).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Reconnection attempts start this soon after a failure and double up to [`MAX_BACKOFF`]:
/// a returning Redis is noticed within a second, and one that stays away sees at most one
/// attempt a second from each process.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A multiplexed connection to Redis that reconnects by itself; clones share it.
///
/// Commands never wait for a connection: while there is none they fail at once with an
/// `IoError`-kind error that says why, and a reply is awaited at most 2 s. A command that
/// finds the connection broken (reset, closed, garbled) has it replaced in the background.
/// Nothing is retried: a command that failed may or may not have run.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    state: watch::Sender<State>,
    db: i64,
}

enum State {
    /// The first attempt has not finished.
    Connecting,
    /// Not connected, and why.
    Down(Arc<str>),
    /// Connected; the number tells a report about an earlier connection from one about this.
    Up(MultiplexedConnection, u64),
}

impl Connection {
    /// Starts connecting in the background; needs a Tokio runtime.
    fn start(client: redis::Client) -> Self {
        let db = client.get_connection_info().redis.db;
        let (state, watch) = watch::channel(State::Connecting);
        let shared = Arc::new(Shared { state, db });
        tokio::spawn(keep_connected(client, Arc::downgrade(&shared), watch));
        Self { shared }
    }

    /// Whether a connection is up (it may still turn out broken on the next command).
    fn is_connected(&self) -> bool {
        matches!(*self.shared.state.borrow(), State::Up(..))
    }

    fn current(&self) -> RedisResult<(MultiplexedConnection, u64)> {
        match &*self.shared.state.borrow() {
            State::Up(connection, number) => Ok((connection.clone(), *number)),
            State::Connecting => Err(not_connected("still connecting")),
            State::Down(why) => Err(not_connected(why)),
        }
    }

    /// Hands connection `number` to the background task for replacement if `result` says
    /// it is broken; a report about a connection already replaced changes nothing.
    fn observe<T>(&self, number: u64, result: &RedisResult<T>) {
        let Err(e) = result else { return };
        if !e.is_unrecoverable_error() {
            return;
        }
        let broken = self.shared.state.send_if_modified(|state| match state {
            State::Up(_, current) if *current == number => {
                *state = State::Down(format!("the connection broke: {e}").into());
                true
            }
            _ => false,
        });
        if broken {
            tracing::warn!(error = %e, "the Redis connection broke; reconnecting");
        }
    }
}

/// Not an `io::Error`, whose message redis-rs would print twice in an error chain.
fn not_connected(why: &str) -> RedisError {
    (redis::ErrorKind::IoError, "not connected to Redis", why.to_owned()).into()
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (mut connection, number) = self.current()?;
            let result = connection.send_packed_command(cmd).await;
            self.observe(number, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (mut connection, number) = self.current()?;
            let result = connection.send_packed_commands(cmd, offset, count).await;
            self.observe(number, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}

/// Connects, then waits until the connection is reported broken and connects again, until
/// every [`Connection`] is dropped. Holds no strong reference while it waits.
async fn keep_connected(client: redis::Client, shared: Weak<Shared>, mut watch: watch::Receiver<State>) {
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT);
    let (mut number, mut backoff) = (0, MIN_BACKOFF);
    loop {
        let attempt = client.get_multiplexed_async_connection_with_config(&config).await;
        let Some(strong) = shared.upgrade() else { return };
        match attempt {
            Ok(connection) => {
                number += 1;
                strong.state.send_replace(State::Up(connection, number));
                drop(strong);
                tracing::info!("connected to Redis");
                backoff = MIN_BACKOFF;
                // Errs once the last `Connection` (and so the sender) is gone.
                if watch.wait_for(|state| !matches!(state, State::Up(_, current) if *current == number)).await.is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let was = strong.state.send_replace(State::Down(e.to_string().into()));
                drop(strong);
                // Once per outage; a broken connection was already reported by `observe`.
                if matches!(was, State::Down(_)) {
                    tracing::debug!(error = %e, "Redis is still unreachable");
                } else {
                    tracing::warn!(error = %e, "cannot reach Redis; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

pub(crate) fn client(config: &RedisConfig) -> anyhow::Result<redis::Client> {
    match &config.ca_file {
        None => redis::Client::open(config.url.as_str()).context("parsing redis.url"),
        Some(path) => {
            let root_cert = std::fs::read(path).with_context(|| format!("reading redis.ca_file {}", path.display()))?;
            let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
            redis::Client::build_with_tls(config.url.as_str(), certificates).context("parsing redis.url")
        }
    }
}

/// Connects to `config`'s Redis. Waits for the first attempt (at most 2 s) but not for Redis
/// itself: a service starts, unready, while Redis is down. Needs a Tokio runtime.
pub async fn connect(config: &RedisConfig) -> anyhow::Result<Connection> {
    let connection = Connection::start(client(config)?);
    let mut watch = connection.shared.state.subscribe();
    // Cannot err: `connection` holds the sender.
    let _ = watch.wait_for(|state| !matches!(state, State::Connecting)).await;
    Ok(connection)
}

/// A connection made in the background, for a service that must start and serve what needs
/// no Redis while Redis is down (the gateway): until Redis first answers, `get` is `None`.
#[derive(Clone)]
pub struct LazyConnection {
    connection: Connection,
    answered: Arc<AtomicBool>,
}

impl LazyConnection {
    /// Starts connecting to `config`'s Redis without waiting. Needs a Tokio runtime.
    pub fn connect(config: &RedisConfig) -> anyhow::Result<Self> {
        Ok(Self { connection: Connection::start(client(config)?), answered: Arc::default() })
    }

    /// The connection whether or not Redis has answered yet, for background work such as
    /// [`watch_memory`], whose commands may fail (at once) while Redis is away.
    pub fn background(&self) -> Connection {
        self.connection.clone()
    }

    /// The connection, once Redis has answered.
    pub fn get(&self) -> Option<Connection> {
        if !self.answered.load(Ordering::Relaxed) {
            if !self.connection.is_connected() {
                return None;
            }
            self.answered.store(true, Ordering::Relaxed);
        }
        Some(self.connection.clone())
    }
}

/// Samples `redis_memory_used_bytes` and `redis_memory_max_bytes` from `INFO memory`
/// (`used_memory`, `maxmemory`) every `telemetry.metrics_interval` until `stop`. With the
/// `noeviction` policy a full Redis refuses every write (holds, rate limits, logins), so
/// the alert on their ratio is the warning before that; managed Redis (Memorystore,
/// ElastiCache) answers INFO too, so no exporter is needed. A failed sample keeps the
/// previous values: `platform_dependency_up` reports the outage.
pub async fn watch_memory(
    connection: Connection,
    metrics: crate::metrics::Metrics,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let gauges = metrics.redis_memory().clone();
    let mut rounds = crate::periodic::Every::new(metrics.interval(), stop);
    while rounds.tick().await {
        match memory(&mut connection.clone()).await {
            Ok((used, max)) => {
                gauges.used.set(used);
                gauges.max.set(max);
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample Redis's memory"),
        }
    }
    Ok(())
}

/// `used_memory` and `maxmemory` from `INFO memory`.
async fn memory(connection: &mut Connection) -> anyhow::Result<(i64, i64)> {
    let info: redis::InfoDict = redis::cmd("INFO").arg("memory").query_async(connection).await?;
    let field = |name: &str| info.get::<i64>(name).with_context(|| format!("INFO memory has no {name}"));
    Ok((field("used_memory")?, field("maxmemory")?))
}
