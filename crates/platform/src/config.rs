//! Layered configuration: built-in defaults, then an optional file, then `TICKETING_*` env.
//!
//! Nested keys use `__` in the environment: `TICKETING_DATABASE__URL` sets
//! `database.url`. Every error names the key it is about.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Prefix of every environment variable the services read.
pub const ENV_PREFIX: &str = "TICKETING_";

/// A configuration that can check itself after it has been parsed.
pub trait Validate {
    /// Pushes one [`ConfigIssue`] per bad key into `issues`.
    fn validate(&self, issues: &mut Vec<ConfigIssue>);

    /// The keys `validate` finds bad, in order (what config tests assert on).
    fn issue_keys(&self) -> Vec<String> {
        let mut issues = Vec::new();
        self.validate(&mut issues);
        issues.into_iter().map(|i| i.key).collect()
    }
}

/// One bad key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted path of the key, e.g. `server.grpc_addr`.
    pub key: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl ConfigIssue {
    /// A new issue about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be parsed into its type.
    #[error("invalid configuration: key `{key}`: {message}")]
    Parse {
        /// Dotted path of the bad key.
        key: String,
        /// The parser's complaint, with the source of the value.
        message: String,
    },
    /// Values parsed but broke a rule.
    #[error("invalid configuration: {}", format_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn format_issues(issues: &[ConfigIssue]) -> String {
    issues.iter().map(|i| format!("key `{}`: {}", i.key, i.message)).collect::<Vec<_>>().join("; ")
}

/// Loads `T`: `defaults`, then `file` (TOML) if given, then the `TICKETING_*` environment.
pub fn load<T>(defaults: T, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Validate,
{
    load_checking(defaults, file, |_| true)
}

/// [`load`], refusing only the issues whose key `relevant` accepts: a command that uses part
/// of the configuration must not need the rest (a migration Job holds no service secrets).
/// A value that does not parse is refused whatever its key.
pub fn load_checking<T>(defaults: T, file: Option<&Path>, relevant: impl Fn(&str) -> bool) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Validate,
{
    let env = Env::prefixed(ENV_PREFIX).split("__");
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError::Parse {
                key: "--config".into(),
                message: format!("file {} does not exist", file.display()),
            });
        }
        figment = figment.merge(Toml::file(file));
    }
    let config: T = figment.merge(env).extract().map_err(|e| {
        let e = e.into_iter().next().expect("figment errors are never empty");
        let key = if e.path.is_empty() { "<root>".to_owned() } else { e.path.join(".") };
        let source = e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
        ConfigError::Parse { key, message: format!("{}{source}", e.kind) }
    })?;
    let mut issues = Vec::new();
    config.validate(&mut issues);
    issues.retain(|issue| relevant(&issue.key));
    if issues.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(issues)) }
}

/// Whether the deployment is a developer's machine or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development and tests: default secrets are allowed.
    #[default]
    Development,
    /// Production: default secrets are refused at start.
    Production,
}

/// Ports, drain and readiness timing, shared by every service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Where the gRPC API and tonic-health listen. Port 0 picks a free port.
    pub grpc_addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub admin_addr: SocketAddr,
    /// How long the service keeps serving after SIGTERM while reporting NOT_SERVING,
    /// so load balancers stop sending before connections close. In Kubernetes the
    /// preStop hook covers this, so the default is zero.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// Longest time from SIGTERM to exit.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How often dependency checks refresh readiness and gRPC health.
    #[serde(with = "humantime_serde")]
    pub readiness_interval: Duration,
    /// Consecutive failed rounds of a dependency check before the service turns unready:
    /// a dependency shared by every replica fails them all at once, so a brief failure
    /// (a database failover) must not take the whole service out of rotation.
    pub readiness_failure_threshold: u32,
    /// Deployment mode.
    pub environment: Environment,
}

impl ServerConfig {
    /// Defaults for a service whose gRPC port is `grpc_port` and admin port `grpc_port + 1000`.
    pub fn with_ports(grpc_port: u16) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], grpc_port)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], grpc_port + 1000)),
            ..Self::default()
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 50051)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 51051)),
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(20),
            readiness_interval: Duration::from_secs(2),
            readiness_failure_threshold: crate::readiness::DEFAULT_FAILURE_THRESHOLD,
            environment: Environment::Development,
        }
    }
}

impl Validate for ServerConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.grpc_addr.port() != 0 && self.grpc_addr.port() == self.admin_addr.port() {
            issues.push(ConfigIssue::new("server.admin_addr", "must differ from server.grpc_addr"));
        }
        if self.shutdown_grace.is_zero() || self.shutdown_grace > Duration::from_secs(600) {
            issues.push(ConfigIssue::new("server.shutdown_grace", "must be between 1ms and 10m"));
        }
        if self.drain_delay >= self.shutdown_grace {
            issues.push(ConfigIssue::new("server.drain_delay", "must be shorter than server.shutdown_grace"));
        }
        if self.readiness_interval.is_zero() {
            issues.push(ConfigIssue::new("server.readiness_interval", "must be positive"));
        }
        if !(1..=100).contains(&self.readiness_failure_threshold) {
            issues.push(ConfigIssue::new("server.readiness_failure_threshold", "must be between 1 and 100"));
        }
    }
}

/// Log filtering. Traces go to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive; `RUST_LOG` overrides it when set.
    pub log_filter: String,
    /// JSON logs (production) or human-readable ones (a developer's terminal).
    pub log_json: bool,
    /// How often gauges of shared state (outbox backlog, consumer lag, pool, seats) are sampled.
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
    /// Most events with per-event series (`event_id` label) per process; see
    /// `docs/observability.md`. Further events count under `event_id="_other"`.
    pub max_event_series: usize,
    /// Share of the traces that start in this service that are recorded (0 to 1); a trace
    /// that arrives keeps its caller's decision.
    pub trace_sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: "info".into(),
            log_json: true,
            metrics_interval: crate::metrics::DEFAULT_INTERVAL,
            max_event_series: crate::metrics::DEFAULT_MAX_EVENT_SERIES,
            trace_sample_ratio: 1.0,
        }
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_filter) {
            issues.push(ConfigIssue::new("telemetry.log_filter", e.to_string()));
        }
        if self.metrics_interval < Duration::from_millis(100) || self.metrics_interval > Duration::from_secs(300) {
            issues.push(ConfigIssue::new("telemetry.metrics_interval", "must be between 100ms and 5m"));
        }
        if self.max_event_series > 10_000 {
            issues.push(ConfigIssue::new("telemetry.max_event_series", "must be at most 10,000"));
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            issues.push(ConfigIssue::new("telemetry.trace_sample_ratio", "must be between 0 and 1"));
        }
    }
}

/// The service's own Postgres database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://` URL of the service's database.
    pub url: String,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Run pending migrations at start (development); production runs `<service> migrate`.
    pub migrate_on_start: bool,
}

impl DatabaseConfig {
    /// Defaults pointing at the local server's `ticketing_<service>` database.
    pub fn for_service(service: &str) -> Self {
        Self {
            url: format!("postgres://postgres@127.0.0.1:5432/ticketing_{service}"),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            migrate_on_start: true,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self::for_service("service")
    }
}

impl Validate for DatabaseConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            issues.push(ConfigIssue::new("database.url", "must be a postgres:// URL"));
        }
        if self.max_connections == 0 {
            issues.push(ConfigIssue::new("database.max_connections", "must be at least 1"));
        }
        if self.acquire_timeout.is_zero() {
            issues.push(ConfigIssue::new("database.acquire_timeout", "must be positive"));
        }
    }
}

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

/// Where a Kafka client gets its OAUTHBEARER tokens from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthBearer {
    /// The GCE/GKE metadata server's token of the workload's service account.
    Gcp,
}

/// Kafka connection, topic naming and consumer behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// Prepended (with a dot) to every topic name; empty for none.
    pub topic_namespace: String,
    /// Create the service's topics (and their `.dlq`) at start if missing.
    pub create_topics: bool,
    /// Partitions of topics created at start.
    pub topic_partitions: i32,
    /// Replication factor of topics created at start.
    pub topic_replication: i32,
    /// Extra librdkafka properties (TLS, SASL). `_` in a key stands for `.`,
    /// so `security_protocol` sets `security.protocol`.
    pub properties: BTreeMap<String, String>,
    /// Where SASL/OAUTHBEARER tokens come from (`gcp`: the workload's identity on GKE), with
    /// `properties.sasl_mechanism = OAUTHBEARER`; unset for SASL/SCRAM, PLAIN or none.
    pub oauthbearer: Option<OAuthBearer>,
    /// How often the outbox relay polls when it found nothing to publish.
    #[serde(with = "humantime_serde")]
    pub outbox_poll_interval: Duration,
    /// Rows the relay publishes per transaction.
    pub outbox_batch_size: i64,
    /// Whether this process consumes at all. Off for a replica that must only serve calls
    /// and relay its outbox (run-local.sh's short-hold inventory, beside a replica that
    /// consumes every partition: `assign_all_partitions`).
    pub consume: bool,
    /// Attempts a consumer makes on one message before sending it to the DLQ.
    pub consumer_max_attempts: u32,
    /// First retry delay; doubles each attempt.
    #[serde(with = "humantime_serde")]
    pub consumer_retry_backoff: Duration,
    /// How long the group coordinator waits for a member's heartbeat before it evicts the
    /// member and hands its partitions to the others (`session.timeout.ms`). Heartbeats go
    /// every third of it, at most every 3s.
    #[serde(with = "humantime_serde")]
    pub consumer_session_timeout: Duration,
    /// Longest gap between two polls before librdkafka gives the member's partitions away
    /// (`max.poll.interval.ms`): the consumer polls between messages, so this bounds the
    /// handling of one message, retries included.
    #[serde(with = "humantime_serde")]
    pub consumer_max_poll_interval: Duration,
    /// How long a partition may hold unconsumed messages without its committed offset moving
    /// before a member that owns it (or owns nothing) counts as stalled: the service turns
    /// unready, `kafka_consumer_stalled` goes to 1 and the member rejoins its group afresh.
    #[serde(with = "humantime_serde")]
    pub consumer_stall_timeout: Duration,
    /// Consume every partition of the topics without joining the consumer group (offsets are
    /// still committed under the group's id), so no group coordinator is involved. Only for a
    /// single replica of the service, on a broker whose coordinator cannot be trusted (tansu
    /// 0.6, ADR 0019): two replicas would both consume everything.
    pub assign_all_partitions: bool,
    /// Static group membership (`group.instance.id`): a restarted process with the same id
    /// takes its old member's place and partitions at once, instead of joining as a new member
    /// beside a dead one until the session times out. It must be unique per replica and stable
    /// across its restarts (the local platform's service name, a StatefulSet's pod name);
    /// empty: dynamic membership.
    pub group_instance_id: String,
    /// How long the producer keeps trying to deliver a message (`message.timeout.ms`); zero
    /// for "until it is delivered" (what tansu needs: see ADR 0019).
    #[serde(with = "humantime_serde")]
    pub producer_message_timeout: Duration,
}

impl KafkaConfig {
    /// The full topic name for `base` (e.g. `identity.events`) in this namespace.
    pub fn topic(&self, base: &str) -> String {
        if self.topic_namespace.is_empty() { base.to_owned() } else { format!("{}.{base}", self.topic_namespace) }
    }

    /// `properties` under librdkafka's names (`sasl_mechanism` is `sasl.mechanism`).
    pub fn librdkafka_properties(&self) -> impl Iterator<Item = (String, &str)> {
        self.properties.iter().map(|(key, value)| (key.replace('_', "."), value.as_str()))
    }
}

impl KafkaConfig {
    /// The full consumer-group id for `base`: namespaced like topics, so deployments
    /// (and tests) sharing a cluster never join each other's groups.
    pub fn group(&self, base: &str) -> String {
        self.topic(base)
    }

    /// The longest a consumer waits between attempts on one message, in total: every
    /// retry's backoff, doubling from `consumer_retry_backoff` and capped at 30s.
    pub fn consumer_retry_wait(&self) -> Duration {
        (1..self.consumer_max_attempts)
            .scan(self.consumer_retry_backoff, |backoff, _| {
                let wait = *backoff;
                *backoff = (*backoff * 2).min(MAX_RETRY_BACKOFF);
                Some(wait)
            })
            .sum()
    }
}

/// The cap of a consumer's doubling retry backoff.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_namespace: String::new(),
            create_topics: true,
            topic_partitions: 3,
            topic_replication: 1,
            properties: BTreeMap::new(),
            oauthbearer: None,
            outbox_poll_interval: Duration::from_millis(200),
            outbox_batch_size: 100,
            consume: true,
            consumer_max_attempts: 5,
            consumer_retry_backoff: Duration::from_millis(200),
            consumer_session_timeout: Duration::from_secs(45),
            consumer_max_poll_interval: Duration::from_secs(300),
            consumer_stall_timeout: Duration::from_secs(60),
            assign_all_partitions: false,
            group_instance_id: String::new(),
            producer_message_timeout: Duration::from_secs(30),
        }
    }
}

impl Validate for KafkaConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.brokers.split(',').any(|b| b.trim().is_empty()) {
            issues.push(ConfigIssue::new("kafka.brokers", "must be a comma-separated host:port list"));
        }
        if self.topic_partitions < 1 {
            issues.push(ConfigIssue::new("kafka.topic_partitions", "must be at least 1"));
        }
        if self.topic_replication < 1 {
            issues.push(ConfigIssue::new("kafka.topic_replication", "must be at least 1"));
        }
        if self.outbox_batch_size < 1 {
            issues.push(ConfigIssue::new("kafka.outbox_batch_size", "must be at least 1"));
        }
        let oauthbearer = self
            .librdkafka_properties()
            .any(|(key, value)| key == "sasl.mechanism" && value.eq_ignore_ascii_case("OAUTHBEARER"));
        if self.oauthbearer.is_some() != oauthbearer {
            issues.push(ConfigIssue::new(
                "kafka.oauthbearer",
                "is set exactly when properties.sasl_mechanism is OAUTHBEARER (it is where those tokens come from)",
            ));
        }
        if self.outbox_poll_interval.is_zero() {
            issues.push(ConfigIssue::new("kafka.outbox_poll_interval", "must be positive"));
        }
        if self.consumer_max_attempts == 0 {
            issues.push(ConfigIssue::new("kafka.consumer_max_attempts", "must be at least 1"));
        }
        if !self.topic_namespace.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            issues.push(ConfigIssue::new("kafka.topic_namespace", "may hold only [A-Za-z0-9._-]"));
        }
        if self.consumer_session_timeout < Duration::from_secs(1)
            || self.consumer_session_timeout > Duration::from_secs(1800)
        {
            issues.push(ConfigIssue::new("kafka.consumer_session_timeout", "must be between 1s and 30m"));
        }
        if self.consumer_max_poll_interval <= self.consumer_retry_wait()
            || self.consumer_max_poll_interval < self.consumer_session_timeout
        {
            issues.push(ConfigIssue::new(
                "kafka.consumer_max_poll_interval",
                format!(
                    "must be at least kafka.consumer_session_timeout and longer than the {:?} a message's \
                     retries may wait (kafka.consumer_max_attempts, kafka.consumer_retry_backoff)",
                    self.consumer_retry_wait()
                ),
            ));
        }
        if self.consumer_stall_timeout <= self.consumer_session_timeout && !self.assign_all_partitions {
            // Shorter, a restarted member would be taken for stalled while the coordinator
            // still waits for its dead predecessor's session to end.
            issues.push(ConfigIssue::new(
                "kafka.consumer_stall_timeout",
                "must be longer than kafka.consumer_session_timeout",
            ));
        }
        let id = &self.group_instance_id;
        if id.len() > 249 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            issues.push(ConfigIssue::new("kafka.group_instance_id", "may hold only [A-Za-z0-9._-], at most 249"));
        }
        if !self.producer_message_timeout.is_zero() && self.producer_message_timeout < Duration::from_secs(1) {
            issues.push(ConfigIssue::new("kafka.producer_message_timeout", "must be zero (never) or at least 1s"));
        }
    }
}

/// How services verify access tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Where the JWKS is served (identity's admin port in a cluster).
    pub jwks_url: String,
    /// Expected `iss` claim.
    pub issuer: String,
    /// Expected `aud` claim.
    pub audience: String,
    /// How often the JWKS is refetched even without an unknown `kid`.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// Shortest gap between two fetches triggered by unknown `kid`s.
    #[serde(with = "humantime_serde")]
    pub jwks_min_refetch_interval: Duration,
    /// Allowed clock skew when checking `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Longest lifetime (`exp - iat`) of an access token that verifiers accept.
    #[serde(with = "humantime_serde")]
    pub max_token_lifetime: Duration,
    /// Identity's gRPC address, for service tokens.
    pub identity_url: String,
    /// This workload's client id at identity (empty: it never calls on its own behalf).
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: "http://127.0.0.1:51051/.well-known/jwks.json".into(),
            issuer: "https://ticketing.local".into(),
            audience: "ticketing".into(),
            jwks_refresh_interval: Duration::from_secs(30),
            jwks_min_refetch_interval: Duration::from_secs(10),
            leeway: Duration::from_secs(30),
            max_token_lifetime: Duration::from_secs(3600),
            identity_url: "http://127.0.0.1:50051".into(),
            client_id: String::new(),
            client_secret: String::new(),
        }
    }
}

/// Pushes an issue about `key` unless `url` is an http(s) URL (peer and JWKS addresses).
pub fn check_http_url(key: &str, url: &str, issues: &mut Vec<ConfigIssue>) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        issues.push(ConfigIssue::new(key, "must be an http(s) URL"));
    }
}

impl Validate for AuthConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        check_http_url("auth.jwks_url", &self.jwks_url, issues);
        if self.issuer.is_empty() {
            issues.push(ConfigIssue::new("auth.issuer", "must not be empty"));
        }
        if self.audience.is_empty() {
            issues.push(ConfigIssue::new("auth.audience", "must not be empty"));
        }
        if self.max_token_lifetime < Duration::from_secs(60) || self.max_token_lifetime > Duration::from_secs(86_400) {
            issues.push(ConfigIssue::new("auth.max_token_lifetime", "must be between 1m and 24h"));
        }
        check_http_url("auth.identity_url", &self.identity_url, issues);
        if self.client_id.is_empty() != self.client_secret.is_empty() {
            issues.push(ConfigIssue::new("auth.client_secret", "auth.client_id and auth.client_secret go together"));
        }
    }
}

/// Where a service's gRPC clients find the pods of their peers.
///
/// When enabled and running in a Kubernetes pod (a service-account token and
/// `KUBERNETES_SERVICE_HOST`), a client watches the EndpointSlices of the peer's Service
/// (named by the host of the peer's URL) and balances each request over the ready pods;
/// otherwise, and while no pod is ready, it calls the configured address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryConfig {
    /// Watch EndpointSlices (needs list/watch on them; the chart grants it).
    pub enabled: bool,
    /// Namespace of peers whose URL does not name one; empty: the pod's own.
    pub namespace: String,
}

impl Validate for DiscoveryConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let ns = &self.namespace;
        let label = ns.len() <= 63
            && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !label {
            issues.push(ConfigIssue::new("discovery.namespace", "must be empty or a Kubernetes namespace name"));
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Sample {
        server: ServerConfig,
        database: DatabaseConfig,
        kafka: KafkaConfig,
    }

    impl Validate for Sample {
        fn validate(&self, issues: &mut Vec<ConfigIssue>) {
            self.server.validate(issues);
            self.database.validate(issues);
            self.kafka.validate(issues);
        }
    }

    /// Loads `Sample` with `vars` as the only `TICKETING_*` environment.
    #[allow(clippy::result_large_err)] // the closure's error type is figment's
    fn load_vars(vars: &[(&str, &str)]) -> Result<Sample, String> {
        let mut result = Err(String::new());
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            result = load(Sample::default(), None).map_err(|e| e.to_string());
            Ok(())
        });
        result
    }

    #[test]
    fn defaults_are_valid() {
        let config = load_vars(&[]).expect("defaults load");
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(20));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load_vars(&[("TICKETING_SERVER__GRPC_ADDR", "not-an-addr")]).unwrap_err();
        assert!(err.contains("`server.grpc_addr`"), "{err}");
    }

    #[test]
    fn a_rule_violation_names_its_key() {
        let err = load_vars(&[("TICKETING_DATABASE__MAX_CONNECTIONS", "0")]).unwrap_err();
        assert!(err.contains("`database.max_connections`"), "{err}");
    }

    #[test]
    fn env_overrides_defaults() {
        let config = load_vars(&[("TICKETING_SERVER__SHUTDOWN_GRACE", "5s")]).expect("loads");
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(5));
    }

    #[test]
    fn consumer_timeouts_must_leave_room_for_each_other() {
        let kafka = |f: fn(&mut KafkaConfig)| {
            let mut kafka = KafkaConfig::default();
            f(&mut kafka);
            kafka.issue_keys()
        };
        assert_eq!(kafka(|_| {}), Vec::<String>::new());
        // Twelve attempts wait 0.2 + 0.4 + ... + 25.6 + 3 × 30 = 141s between them.
        assert_eq!(
            kafka(|k| {
                k.consumer_max_attempts = 12;
                k.consumer_max_poll_interval = Duration::from_secs(60);
            }),
            ["kafka.consumer_max_poll_interval"]
        );
        assert_eq!(kafka(|k| k.consumer_stall_timeout = Duration::from_secs(45)), ["kafka.consumer_stall_timeout"]);
        // Outside the group there is no session to wait for.
        assert_eq!(
            kafka(|k| {
                k.consumer_stall_timeout = Duration::from_secs(20);
                k.assign_all_partitions = true;
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            kafka(|k| k.consumer_session_timeout = Duration::from_millis(500)),
            ["kafka.consumer_session_timeout"]
        );
        assert_eq!(kafka(|k| k.group_instance_id = "booking 0".into()), ["kafka.group_instance_id"]);
    }

    #[test]
    fn a_producer_gives_up_after_a_second_at_least_or_never() {
        let mut kafka = KafkaConfig { producer_message_timeout: Duration::from_millis(10), ..KafkaConfig::default() };
        assert_eq!(kafka.issue_keys(), ["kafka.producer_message_timeout"]);
        kafka.producer_message_timeout = Duration::ZERO;
        assert_eq!(kafka.issue_keys(), Vec::<String>::new());
    }

    #[test]
    fn the_retry_wait_doubles_up_to_its_cap() {
        let mut kafka = KafkaConfig { consumer_retry_backoff: Duration::from_secs(10), ..KafkaConfig::default() };
        kafka.consumer_max_attempts = 1;
        assert_eq!(kafka.consumer_retry_wait(), Duration::ZERO);
        kafka.consumer_max_attempts = 5;
        assert_eq!(kafka.consumer_retry_wait(), Duration::from_secs(10 + 20 + 30 + 30));
    }

    #[test]
    fn topics_are_namespaced() {
        let mut kafka = KafkaConfig::default();
        assert_eq!(kafka.topic("identity.events"), "identity.events");
        kafka.topic_namespace = "t1".into();
        assert_eq!(kafka.topic("identity.events"), "t1.identity.events");
    }
}
