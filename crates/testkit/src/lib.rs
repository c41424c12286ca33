//! Test helpers against the real Postgres, Redis and Kafka-compatible broker.
//!
//! Every helper isolates one test from every other, in this run and in any
//! other run sharing the servers: a fresh database, a fresh Redis key prefix,
//! and a fresh topic namespace. Servers come from `DATABASE_URL`, `REDIS_URL`
//! and `KAFKA_BROKERS`, with loopback defaults.

pub mod broker;
pub mod fakes;
mod issuer;
pub mod oidc;
pub mod otlp;
pub mod pdf;
pub mod process;
pub mod redis_server;
pub mod smtp;

pub use issuer::TestIssuer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::migrate::Migrator;
use sqlx::{Connection as _, PgConnection, PgPool};
use ticketing_platform::db::DatabaseConfig;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::redis::RedisConfig;
use ticketing_platform::{Running, ShutdownHandle};
use ticketing_proto::events::v1::AuditRecord;

/// The admin URL of the Postgres server tests create databases on.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The broker tests use.
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A short unique token for names.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// How often [`eventually`] probes.
pub const POLL: Duration = Duration::from_millis(20);

/// What a probe of [`eventually`] answers: `Some(value)` or `Ok(value)` once the fact
/// waited for holds; `None`, or `Err(seen)` naming what it saw instead, until then.
pub trait Outcome {
    /// What the wait returns.
    type Value;
    /// The value, or what was seen instead (if the probe says).
    fn settled(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn settled(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: std::fmt::Display> Outcome for Result<T, E> {
    type Value = T;
    fn settled(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `probe` every [`POLL`] until it yields `Some` or `Ok`, panicking with `what` after
/// `timeout`, and with what the last probe saw if it answered `Err`.
pub async fn eventually<O, F, Fut>(what: &str, timeout: Duration, probe: F) -> O::Value
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    eventually_every(what, timeout, POLL, probe).await
}

/// [`eventually`], probing every `every`: for probes too costly to run every 20 ms (a
/// rate-limited gateway, a whole platform on a small machine).
pub async fn eventually_every<O, F, Fut>(what: &str, timeout: Duration, every: Duration, mut probe: F) -> O::Value
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = match probe().await.settled() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            timed_out(what, timeout, seen);
        }
        tokio::time::sleep(every).await;
    }
}

/// [`eventually_every`] for a blocking probe, on a thread that may block.
pub fn eventually_blocking<O, F>(what: &str, timeout: Duration, every: Duration, mut probe: F) -> O::Value
where
    O: Outcome,
    F: FnMut() -> O,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe().settled() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            timed_out(what, timeout, seen);
        }
        #[allow(clippy::disallowed_methods)] // its callers run it where blocking is the point
        std::thread::sleep(every);
    }
}

fn timed_out(what: &str, timeout: Duration, seen: Option<String>) -> ! {
    match seen {
        Some(seen) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}"),
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Logs to the test output when `TEST_LOG` is set (e.g. `TEST_LOG=debug`).
pub fn init_logging() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
}

/// Server settings for a service under test: loopback, free ports, a short grace.
pub fn server_config() -> ticketing_platform::config::ServerConfig {
    ticketing_platform::config::ServerConfig {
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        shutdown_grace: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A database created for one test, with migrations applied, owned by a role of its own
/// (as `<service> bootstrap` makes them), both dropped when this is dropped. Services and
/// the pool connect as that role, so every test runs as a deployed service does: no
/// superuser, no other database.
pub struct TestDb {
    /// A pool on the database, as its role.
    pub pool: PgPool,
    /// Config pointing a service at the database, as its role.
    pub config: DatabaseConfig,
    name: String,
}

impl TestDb {
    /// Creates `test_<unique>` and applies `migrator`.
    pub async fn new(migrator: &Migrator) -> Self {
        let db = Self::empty().await;
        migrator.run(&db.pool).await.expect("apply migrations");
        db
    }

    /// Creates `test_<unique>` with `migrator`'s migrations older than `version` only: the
    /// schema a deployment has before an upgrade, for tests of what the upgrade does to its
    /// rows. A service started on it applies the rest itself.
    pub async fn before(migrator: &Migrator, version: i64) -> Self {
        let migrations = migrator.migrations.iter().filter(|m| m.version < version).cloned().collect();
        let mut db = Self::new(&Migrator { migrations, ..Migrator::DEFAULT }).await;
        db.config.migrate_on_start = true;
        db
    }

    /// Creates role and database `test_<unique>` with no tables (for a service that
    /// migrates itself).
    pub async fn empty() -> Self {
        let name = format!("test_{}", unique());
        let url = owner_url(&name, &unique());
        ticketing_platform::access::bootstrap_database(&database_url(), &url, None)
            .await
            .expect("create the test role and database (DATABASE_URL must be an admin)");
        // Few connections: an end-to-end platform holds five test databases at once, and the
        // shared server allows 100 clients in all.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to the test database");
        let mut config = DatabaseConfig::for_service("test");
        config.url = url;
        config.max_connections = 8;
        config.migrate_on_start = false;
        Self { pool, config, name }
    }

    /// The database's name (and its role's), e.g. for `pg_stat_activity.datname`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee; use a private one on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&database_url()).await.ok()?;
                sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                    .execute(&mut admin)
                    .await
                    .ok()?;
                sqlx::query(&format!(r#"DROP ROLE IF EXISTS "{name}""#)).execute(&mut admin).await.ok()
            })
        })
        .join();
    }
}

/// `DATABASE_URL` with role and database `name`, and `password`.
pub fn owner_url(name: &str, password: &str) -> String {
    let mut url = url::Url::parse(&database_url()).expect("DATABASE_URL is a URL");
    url.set_username(name).expect("DATABASE_URL has a host");
    url.set_password(Some(password)).expect("DATABASE_URL has a host");
    url.set_path(name);
    url.into()
}

/// A Redis key prefix for one test; its keys (and its ACL user, if any) are deleted when
/// this is dropped.
pub struct TestRedis {
    /// Config pointing a service at the prefix.
    pub config: RedisConfig,
    user: Option<String>,
}

impl TestRedis {
    /// A fresh `test:<unique>:` prefix, reached as Redis's default user.
    pub fn new() -> Self {
        Self { config: Self::config(redis_url()), user: None }
    }

    /// A fresh prefix reached as an ACL user `test_<unique>` with the rules a deployment
    /// gives `service`'s user ([`ticketing_platform::access::redis_acl_rules`]): a service
    /// tested through it proves those rules let it do its work.
    pub fn for_service(service: &str) -> Self {
        let mut config = Self::config(String::new());
        let (user, password) = (format!("test_{}", unique()), unique());
        let rules = ticketing_platform::access::redis_acl_rules(service, &config.key_prefix, &password)
            .unwrap_or_else(|| panic!("{service} keeps nothing in Redis"));
        let mut admin = admin_redis().expect("connect to Redis (REDIS_URL)");
        redis::cmd("ACL").arg("SETUSER").arg(&user).arg(rules).query::<()>(&mut admin).expect("ACL SETUSER");
        let mut url = url::Url::parse(&redis_url()).expect("REDIS_URL is a URL");
        url.set_username(&user).expect("REDIS_URL has a host");
        url.set_password(Some(&password)).expect("REDIS_URL has a host");
        config.url = url.into();
        Self { config, user: Some(user) }
    }

    fn config(url: String) -> RedisConfig {
        RedisConfig { url, key_prefix: format!("test:{}:", unique()), ca_file: None }
    }

    /// Every key under the prefix.
    pub fn keys(&self) -> Vec<String> {
        let Ok(mut conn) = admin_redis() else { return Vec::new() };
        let pattern = format!("{}*", self.config.key_prefix);
        redis::cmd("KEYS").arg(&pattern).query(&mut conn).unwrap_or_default()
    }
}

/// A connection to `REDIS_URL`, as whoever it names (the default user when no one).
fn admin_redis() -> redis::RedisResult<redis::Connection> {
    redis::Client::open(redis_url().as_str())?.get_connection()
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let keys = self.keys();
        let Ok(mut conn) = admin_redis() else { return };
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
        if let Some(user) = &self.user {
            let _: redis::RedisResult<()> = redis::cmd("ACL").arg("DELUSER").arg(user).query(&mut conn);
        }
    }
}

/// Kafka config whose topics live in a namespace of their own.
pub fn kafka_config() -> KafkaConfig {
    KafkaConfig {
        brokers: kafka_brokers(),
        topic_namespace: format!("t{}", unique()),
        topic_partitions: 1,
        outbox_poll_interval: Duration::from_millis(50),
        consumer_retry_backoff: Duration::from_millis(20),
        // tansu 0.6 loses its storage for good when an idempotent producer bumps its epoch
        // after a message timed out (ADR 0019): the shared broker must never see one.
        producer_message_timeout: Duration::ZERO,
        ..KafkaConfig::default()
    }
}

/// Every message on `topic` (all partitions), once at least `min` have arrived or
/// `timeout` has passed.
///
/// The consumer blocks, so it runs on the blocking pool: a service under test runs on the
/// test's own runtime, and blocking that would stop the very relay the test waits for.
pub async fn read_topic(config: &KafkaConfig, topic: &str, min: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let (config, topic) = (config.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_topic_blocking(&config, &topic, min, timeout))
        .await
        .expect("reading a topic panicked")
}

/// Every message on `topic` (a base name; at least `min`) once the service's outbox in `pool`
/// is empty, so nothing the service committed is still on its way.
pub async fn drained_topic(pool: &PgPool, config: &KafkaConfig, topic: &str, min: usize) -> Vec<OwnedMessage> {
    eventually("the outbox rows to be published", Duration::from_secs(60), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool).await.unwrap();
        if left == 0 { Ok(()) } else { Err(format!("{left} rows left")) }
    })
    .await;
    read_topic(config, &config.topic(topic), min, Duration::from_secs(30)).await
}

/// Every record on `audit.events` (at least `min`) once the service's outbox in `pool` is
/// empty, oldest first.
pub async fn audit_records(pool: &PgPool, config: &KafkaConfig, min: usize) -> Vec<AuditRecord> {
    let mut records: Vec<AuditRecord> = drained_topic(pool, config, "audit.events", min)
        .await
        .iter()
        .map(|m| {
            let envelope = prost::Message::decode(m.payload().expect("a payload")).expect("an envelope");
            ticketing_platform::events::payload(&envelope).expect("an audit record")
        })
        .collect();
    records.sort_by_key(|r| r.occurred_at.map(|t| (t.seconds, t.nanos)));
    records
}

fn read_topic_blocking(config: &KafkaConfig, topic: &str, min: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", format!("testkit-{}", unique()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create test consumer");
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    let mut assigned = false;
    while Instant::now() < deadline {
        if !assigned {
            let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) else { continue };
            let partitions: Vec<i32> =
                metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
            if partitions.is_empty() {
                #[allow(clippy::disallowed_methods)] // a blocking helper: rdkafka's metadata calls block too
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let mut list = TopicPartitionList::new();
            for p in partitions {
                list.add_partition_offset(topic, p, Offset::Beginning).expect("valid partition");
            }
            consumer.assign(&list).expect("assign partitions");
            assigned = true;
        }
        // Once `min` arrived, half a second of quiet means the topic is drained.
        let wait = if messages.len() >= min { 500 } else { 200 };
        match consumer.poll(Duration::from_millis(wait)) {
            Some(Ok(message)) => messages.push(message.detach()),
            _ if messages.len() >= min => break,
            _ => {}
        }
    }
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    messages
}

/// The rounds periodic job `job` has done (`platform_job_rounds_total` at `metrics_url`).
pub async fn job_rounds(metrics_url: &str, job: &str) -> u64 {
    let text = match reqwest::get(metrics_url).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let label = format!("job=\"{job}\"");
    text.lines()
        .filter(|l| l.starts_with("platform_job_rounds_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

/// A service running in-process; dropping it starts its shutdown.
pub struct Spawned {
    /// Where its gRPC server listens.
    pub grpc_addr: SocketAddr,
    /// Where its admin server listens.
    pub admin_addr: SocketAddr,
    shutdown: ShutdownHandle,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Spawned {
    /// Runs `running` on the current runtime.
    pub fn start(running: Running) -> Self {
        let (grpc_addr, admin_addr, shutdown) = (running.grpc_addr(), running.admin_addr(), running.shutdown_handle());
        let task = tokio::spawn(running.run_until_stopped());
        Self { grpc_addr, admin_addr, shutdown, task: Some(task) }
    }

    /// A gRPC channel to the service.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc_addr))
            .expect("valid endpoint")
            .connect()
            .await
            .expect("connect to the spawned service")
    }

    /// The admin base URL, e.g. `http://127.0.0.1:1234`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// Waits until periodic job `job` has done `more` rounds from now: whatever it would do
    /// with what is there now, it has done (two rounds: the one in hand may have begun before).
    pub async fn wait_job_rounds(&self, job: &str, more: u64) {
        let url = format!("{}/metrics", self.admin_url());
        let from = job_rounds(&url, job).await;
        let what = format!("{more} more rounds of {job} (after {from})");
        eventually(&what, Duration::from_secs(30), || async {
            (job_rounds(&url, job).await >= from + more).then_some(())
        })
        .await;
    }

    /// Waits until `/readyz` says `ready` (or not), for up to 10 s.
    pub async fn wait_ready(&self, ready: bool) {
        let url = format!("{}/readyz", self.admin_url());
        eventually(&format!("ready: {ready}"), Duration::from_secs(10), || async {
            let response = reqwest::get(&url).await;
            (response.is_ok_and(|r| r.status().is_success()) == ready).then_some(())
        })
        .await;
    }

    /// Waits until `/readyz` reports the check `name` passing (or failing); that check's
    /// entry and the answer's status.
    pub async fn wait_check(&self, name: &str, ok: bool) -> (u16, serde_json::Value) {
        let url = format!("{}/readyz", self.admin_url());
        eventually(&format!("readiness check {name} ok={ok}"), Duration::from_secs(15), || async {
            let response = reqwest::get(&url).await.ok()?;
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.ok()?;
            let check = body["checks"].as_array()?.iter().find(|c| c["name"] == name)?.clone();
            (check["ok"] == ok).then_some((status, check))
        })
        .await
    }

    /// Shuts down and waits for the service's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.shutdown();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}
