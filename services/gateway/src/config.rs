//! The gateway's configuration: the common sections plus `gateway.*`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::auth::AuthConfig;
use ticketing_platform::coalesce::Batching;
use ticketing_platform::config::{ConfigIssue, Environment, Validate, check_http_url};

/// The gateway's gRPC port (health only); its admin port is this plus 1000.
pub const GRPC_PORT: u16 = 50050;

ticketing_platform::service_config! {
    service = "gateway";
    grpc_port = GRPC_PORT;

    /// Everything the gateway reads.
    pub struct Config {
        /// Rate limits and the waiting room.
        redis,
        /// Token verification.
        // Its credentials at identity, whose service token vouches for the client
        // addresses it hands on; production reads the secret from a Secret.
        auth = AuthConfig {
            client_id: "gateway".into(),
            client_secret: DEVELOPMENT_CLIENT_SECRET.into(),
            ..AuthConfig::default()
        },
        /// The gateway's own settings.
        gateway: GatewaySettings,
        /// How the services' pods are found.
        discovery,
    }
}

/// Most items inventory's `HoldBatch` and `ReleaseBatch` take in one call.
pub const INVENTORY_MAX_BATCH: usize = 256;

/// Settings only the gateway has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewaySettings {
    /// Where the public REST API listens.
    pub http_addr: SocketAddr,
    /// The load balancer in front of `http_addr`, named for messages (the chart sets it,
    /// e.g. `httpRoute` or `ingress alb`); empty when clients connect directly. Behind one,
    /// every socket's peer is the load balancer, so production requires
    /// `rate_limits.trusted_proxy_hops` of at least 1.
    pub front_end: String,
    /// The services' gRPC addresses.
    pub identity_url: String,
    /// Catalog.
    pub catalog_url: String,
    /// Inventory.
    pub inventory_url: String,
    /// Booking.
    pub booking_url: String,
    /// Payment.
    pub payment_url: String,
    /// Notification.
    pub notification_url: String,
    /// Deadline of each backend call.
    #[serde(with = "humantime_serde")]
    pub backend_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest seat map `PUT /v1/venues/{id}/seatmap` accepts: a stadium's is several MiB.
    pub max_seat_map_bytes: usize,
    /// Seat-map imports one replica parses at once (each can hold `max_seat_map_bytes` and
    /// several times that parsed); more answer 503 with `Retry-After`.
    pub max_seat_map_imports: usize,
    /// How long a client may take to send a request's headers before the connection is
    /// closed; hyper also closes a keep-alive connection idle that long, so behind a load
    /// balancer it must exceed the balancer's keep-alive (GKE 610 s, an ALB's idle timeout).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long after its headers a request's body must have arrived whole; later is a 408.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// How long the large public answers (`seats=true` availability, `seat_map=true`
    /// venues) are served from this replica's snapshot before a backend is asked again.
    #[serde(with = "humantime_serde")]
    pub snapshot_ttl: Duration,
    /// Origins allowed by CORS (`*` for any); empty disables CORS.
    pub cors_origins: Vec<String>,
    /// Requests served at once; beyond it the gateway sheds load with 503 at once.
    pub max_concurrency: usize,
    /// Most concurrent holds (and, apart from them, releases) carried to inventory in one
    /// `HoldBatch` (`ReleaseBatch`) call; 1 sends each on a `Hold` (`Release`) call of its own.
    pub inventory_batch_size: usize,
    /// Most of those batches outstanding at once; what arrives meanwhile joins the next.
    pub inventory_batches_in_flight: usize,
    /// Per-IP, per-user and login rate limits, shared by every replica through Redis.
    pub rate_limits: RateLimits,
    /// When a backend's calls fail fast instead of piling up on it.
    pub circuit_breaker: BreakerSettings,
    /// Admission passes of events in on-sale mode.
    pub waiting_room: WaitingRoomSettings,
    /// How deep and costly one `POST /graphql` query may be.
    pub graphql: GraphqlSettings,
}

/// `gateway.graphql`: a query over either limit is refused whole with a GraphQL error, before
/// any backend is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlSettings {
    /// Deepest nesting of fields (GraphiQL's introspection query is 14 deep).
    pub max_depth: usize,
    /// Most fields a query may select, each list counted `first` times and each seat map
    /// as many fields (see docs/gateway.md).
    pub max_complexity: usize,
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        Self { max_depth: 20, max_complexity: 5000 }
    }
}

impl GraphqlSettings {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if !(10..=64).contains(&self.max_depth) {
            issues.push(ConfigIssue::new("gateway.graphql.max_depth", "must be between 10 and 64"));
        }
        if !(100..=1_000_000).contains(&self.max_complexity) {
            issues.push(ConfigIssue::new("gateway.graphql.max_complexity", "must be between 100 and 1,000,000"));
        }
    }
}

/// The gateway's client secret at identity by default, for local runs; refused in production.
pub const DEVELOPMENT_CLIENT_SECRET: &str = "gateway-development-secret-change-me-0000";

/// The admission-pass key used by default, for local runs; refused in production.
pub const DEVELOPMENT_PASS_SECRET: &str = "gateway-development-pass-secret-change-me-00";

/// `gateway.waiting_room`: the queue's settings per event live in catalog; these are the gateway's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WaitingRoomSettings {
    /// HS256 key signing admission passes, at least 32 bytes; every replica needs the same.
    pub pass_secret: String,
    /// How long a pass is valid after it is first handed out.
    #[serde(with = "humantime_serde")]
    pub pass_ttl: Duration,
    /// How long an event's waiting-room setting is cached per replica before catalog is asked again.
    #[serde(with = "humantime_serde")]
    pub event_cache_ttl: Duration,
    /// Events whose setting a replica caches at most.
    pub event_cache_size: u64,
}

impl Default for WaitingRoomSettings {
    fn default() -> Self {
        Self {
            pass_secret: DEVELOPMENT_PASS_SECRET.into(),
            pass_ttl: Duration::from_secs(600),
            event_cache_ttl: Duration::from_secs(5),
            event_cache_size: 10_000,
        }
    }
}

impl WaitingRoomSettings {
    fn validate(&self, environment: Environment, issues: &mut Vec<ConfigIssue>) {
        if self.pass_secret.len() < 32 {
            issues.push(ConfigIssue::new("gateway.waiting_room.pass_secret", "must be at least 32 bytes"));
        }
        if environment == Environment::Production && self.pass_secret == DEVELOPMENT_PASS_SECRET {
            issues.push(ConfigIssue::new(
                "gateway.waiting_room.pass_secret",
                "the development secret is refused in production",
            ));
        }
        if self.pass_ttl < Duration::from_secs(1) || self.pass_ttl > Duration::from_secs(3600) {
            issues.push(ConfigIssue::new("gateway.waiting_room.pass_ttl", "must be between 1s and 1h"));
        }
        if self.event_cache_ttl > Duration::from_secs(60) {
            issues.push(ConfigIssue::new("gateway.waiting_room.event_cache_ttl", "must be at most 1m"));
        }
        if !(1..=10_000_000).contains(&self.event_cache_size) {
            issues.push(ConfigIssue::new("gateway.waiting_room.event_cache_size", "must be between 1 and 10,000,000"));
        }
    }
}

/// A GCRA limit: a sustained rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests per second, sustained (fractions allowed: `0.2` is 12 a minute).
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

/// `gateway.rate_limits`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Off: no limit is checked and Redis is not used for them.
    pub enabled: bool,
    /// Every caller, per client IP.
    pub ip: Limit,
    /// Authenticated callers, per user (on top of their IP's limit).
    pub user: Limit,
    /// `POST /v1/auth/login`, per client IP and per email (on top of the IP limit).
    pub login: Limit,
    /// `POST /v1/auth/register`, per client IP (on top of the IP limit): each registration
    /// costs a password hash and makes an account with budgets of its own. Also
    /// `POST /v1/auth/verify-email/resend`, per user: each sends an email.
    pub register: Limit,
    /// `POST /v1/auth/password/forgot`, per email address (lower-cased and hashed), whether
    /// or not it has an account: each may send a reset email to that inbox. Per client IP
    /// the route takes the `register` limit.
    pub password_reset: Limit,
    /// The large public answers (`GET /v1/events/{id}/availability?seats=true`,
    /// `GET /v1/venues/{id}?seat_map=true`), per client IP (on top of the IP limit).
    pub heavy: Limit,
    /// How many `X-Forwarded-For` entries, counted from the right, the trusted front end
    /// writes: the client is that entry (see `ratelimit::client_ip`). One per proxy that
    /// appends its peer (an AWS ALB: 1); GKE's Application Load Balancer appends the client
    /// and its own address (2). 0 trusts no header and limits the socket's peer address.
    pub trusted_proxy_hops: usize,
    /// How long a limit check may wait for Redis before the request goes through unchecked.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Most concurrent requests whose limits one Redis script call checks; 1 sends each alone.
    pub batch_size: usize,
    /// Most of those script calls outstanding at once.
    pub batches_in_flight: usize,
}

/// `gateway.circuit_breaker`: one breaker per backend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Failed calls in a row that open the breaker.
    pub consecutive_failures: u32,
    /// Share of failed calls in one `window` that opens it, once `min_calls` were made.
    pub failure_ratio: f64,
    /// Calls a window needs before its ratio counts.
    pub min_calls: u32,
    /// Length of the window the ratio is measured over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long an open breaker fails calls before it lets one trial call through.
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
}

impl Default for RateLimits {
    /// Generous: a venue's Wi-Fi or a carrier's NAT puts many buyers behind one IP.
    fn default() -> Self {
        Self {
            enabled: true,
            ip: Limit { per_second: 100.0, burst: 400 },
            user: Limit { per_second: 20.0, burst: 100 },
            login: Limit { per_second: 1.0, burst: 20 },
            // Ten at once, then three a minute: a family or a venue's Wi-Fi, not a script.
            register: Limit { per_second: 0.05, burst: 10 },
            // Three at once, then one every ten minutes: enough for a lost email, not a flood.
            password_reset: Limit { per_second: 0.002, burst: 3 },
            heavy: Limit { per_second: 1.0, burst: 20 },
            trusted_proxy_hops: 0,
            redis_timeout: Duration::from_millis(100),
            batch_size: 64,
            batches_in_flight: 2,
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
        }
    }
}

impl Limit {
    fn validate(&self, key: &str, issues: &mut Vec<ConfigIssue>) {
        if !(self.per_second.is_finite() && self.per_second >= 0.001 && self.per_second <= 1_000_000.0) {
            issues.push(ConfigIssue::new(format!("{key}.per_second"), "must be between 0.001 and 1,000,000"));
        }
        if self.burst == 0 || self.burst > 1_000_000 {
            issues.push(ConfigIssue::new(format!("{key}.burst"), "must be between 1 and 1,000,000"));
        }
    }
}

impl Validate for RateLimits {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.ip.validate("gateway.rate_limits.ip", issues);
        self.user.validate("gateway.rate_limits.user", issues);
        self.login.validate("gateway.rate_limits.login", issues);
        self.register.validate("gateway.rate_limits.register", issues);
        self.password_reset.validate("gateway.rate_limits.password_reset", issues);
        self.heavy.validate("gateway.rate_limits.heavy", issues);
        if self.trusted_proxy_hops > 10 {
            issues.push(ConfigIssue::new("gateway.rate_limits.trusted_proxy_hops", "must be at most 10"));
        }
        if self.redis_timeout < Duration::from_millis(1) || self.redis_timeout > Duration::from_secs(1) {
            issues.push(ConfigIssue::new("gateway.rate_limits.redis_timeout", "must be between 1ms and 1s"));
        }
        self.batching().validate("gateway.rate_limits.batch_size", "gateway.rate_limits.batches_in_flight", issues);
    }
}

impl RateLimits {
    /// How the limit checks of concurrent requests share script calls.
    pub fn batching(&self) -> Batching {
        Batching { max_batch: self.batch_size, in_flight: self.batches_in_flight }
    }
}

impl Validate for BreakerSettings {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.consecutive_failures == 0 || self.consecutive_failures > 1000 {
            issues.push(ConfigIssue::new("gateway.circuit_breaker.consecutive_failures", "must be between 1 and 1000"));
        }
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            issues.push(ConfigIssue::new("gateway.circuit_breaker.failure_ratio", "must be above 0 and at most 1"));
        }
        if self.min_calls == 0 {
            issues.push(ConfigIssue::new("gateway.circuit_breaker.min_calls", "must be at least 1"));
        }
        if self.window < Duration::from_millis(100) || self.window > Duration::from_secs(600) {
            issues.push(ConfigIssue::new("gateway.circuit_breaker.window", "must be between 100ms and 10m"));
        }
        if self.cool_down < Duration::from_millis(10) || self.cool_down > Duration::from_secs(600) {
            issues.push(ConfigIssue::new("gateway.circuit_breaker.cool_down", "must be between 10ms and 10m"));
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            front_end: String::new(),
            identity_url: "http://127.0.0.1:50051".into(),
            catalog_url: "http://127.0.0.1:50052".into(),
            inventory_url: "http://127.0.0.1:50053".into(),
            booking_url: "http://127.0.0.1:50054".into(),
            payment_url: "http://127.0.0.1:50055".into(),
            notification_url: "http://127.0.0.1:50056".into(),
            backend_timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            max_seat_map_bytes: 16 << 20,
            max_seat_map_imports: 2,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            snapshot_ttl: Duration::from_secs(2),
            cors_origins: Vec::new(),
            max_concurrency: 2048,
            inventory_batch_size: 64,
            inventory_batches_in_flight: 4,
            rate_limits: RateLimits::default(),
            circuit_breaker: BreakerSettings::default(),
            waiting_room: WaitingRoomSettings::default(),
            graphql: GraphqlSettings::default(),
        }
    }
}

impl GatewaySettings {
    /// Behind a load balancer every connection comes from the balancer's own addresses: with
    /// no hop trusted, every buyer would share one per-IP and one login limit, and the
    /// on-sale would be a wall of 429s that spend no error budget, so nothing pages.
    fn validate_front_end(&self, environment: Environment, issues: &mut Vec<ConfigIssue>) {
        let front_end = &self.front_end;
        if front_end.len() > 128 || front_end.chars().any(char::is_control) {
            issues.push(ConfigIssue::new("gateway.front_end", "must be at most 128 printable characters"));
        }
        if environment == Environment::Production
            && !front_end.trim().is_empty()
            && self.rate_limits.trusted_proxy_hops == 0
        {
            issues.push(ConfigIssue::new(
                "gateway.rate_limits.trusted_proxy_hops",
                format!(
                    "must be at least 1 in production behind gateway.front_end {front_end:?}: at 0 every client is \
                     the load balancer's address and shares its rate limits"
                ),
            ));
        }
    }

    /// How holds and releases share calls to inventory.
    pub fn inventory_batching(&self) -> Batching {
        Batching { max_batch: self.inventory_batch_size, in_flight: self.inventory_batches_in_flight }
    }

    /// The backend URLs with their keys.
    pub fn backends(&self) -> [(&'static str, &str); 6] {
        [
            ("gateway.identity_url", &self.identity_url),
            ("gateway.catalog_url", &self.catalog_url),
            ("gateway.inventory_url", &self.inventory_url),
            ("gateway.booking_url", &self.booking_url),
            ("gateway.payment_url", &self.payment_url),
            ("gateway.notification_url", &self.notification_url),
        ]
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.validate_shared(issues);
        if self.auth.client_id.is_empty() {
            issues.push(ConfigIssue::new(
                "auth.client_id",
                "the gateway needs client credentials to hand identity the client's address",
            ));
        }
        if self.server.environment == Environment::Production && self.auth.client_secret == DEVELOPMENT_CLIENT_SECRET {
            issues.push(ConfigIssue::new("auth.client_secret", "the development secret is refused in production"));
        }
        let g = &self.gateway;
        for (key, url) in g.backends() {
            check_http_url(key, url, issues);
        }
        if g.http_addr == self.server.grpc_addr || g.http_addr == self.server.admin_addr {
            issues.push(ConfigIssue::new("gateway.http_addr", "must differ from the gRPC and admin addresses"));
        }
        if g.backend_timeout < Duration::from_millis(10) || g.backend_timeout > Duration::from_secs(60) {
            issues.push(ConfigIssue::new("gateway.backend_timeout", "must be between 10ms and 60s"));
        }
        if g.max_body_bytes < 1024 || g.max_body_bytes > 64 << 20 {
            issues.push(ConfigIssue::new("gateway.max_body_bytes", "must be between 1 KiB and 64 MiB"));
        }
        if g.max_seat_map_bytes < g.max_body_bytes || g.max_seat_map_bytes > 64 << 20 {
            issues.push(ConfigIssue::new(
                "gateway.max_seat_map_bytes",
                "must be between gateway.max_body_bytes and 64 MiB",
            ));
        }
        if !(1..=64).contains(&g.max_seat_map_imports) {
            issues.push(ConfigIssue::new("gateway.max_seat_map_imports", "must be between 1 and 64"));
        }
        if g.header_read_timeout < Duration::from_secs(1) || g.header_read_timeout > Duration::from_secs(900) {
            issues.push(ConfigIssue::new("gateway.header_read_timeout", "must be between 1s and 15m"));
        }
        if g.body_read_timeout < Duration::from_secs(1) || g.body_read_timeout > Duration::from_secs(600) {
            issues.push(ConfigIssue::new("gateway.body_read_timeout", "must be between 1s and 10m"));
        }
        if g.snapshot_ttl < Duration::from_millis(100) || g.snapshot_ttl > Duration::from_secs(60) {
            issues.push(ConfigIssue::new("gateway.snapshot_ttl", "must be between 100ms and 1m"));
        }
        if g.max_concurrency == 0 || g.max_concurrency > 1_000_000 {
            issues.push(ConfigIssue::new("gateway.max_concurrency", "must be between 1 and 1,000,000"));
        }
        g.inventory_batching().validate("gateway.inventory_batch_size", "gateway.inventory_batches_in_flight", issues);
        if g.inventory_batch_size > INVENTORY_MAX_BATCH {
            issues.push(ConfigIssue::new(
                "gateway.inventory_batch_size",
                format!("must be at most {INVENTORY_MAX_BATCH}, the most items inventory takes in one call"),
            ));
        }
        g.rate_limits.validate(issues);
        g.validate_front_end(self.server.environment, issues);
        g.circuit_breaker.validate(issues);
        g.waiting_room.validate(self.server.environment, issues);
        g.graphql.validate(issues);
        for origin in &g.cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                issues.push(ConfigIssue::new("gateway.cors_origins", format!("{origin:?} is not an origin")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(config: &Config) -> Vec<String> {
        config.issue_keys()
    }

    /// Production's configuration, but for the development secrets.
    fn production() -> Config {
        let mut config = Config::default();
        config.server.environment = Environment::Production;
        config.auth.client_secret = "y".repeat(32);
        config
    }

    #[test]
    fn the_pass_secret_must_be_long_and_not_the_development_one_in_production() {
        assert!(issues(&Config::default()).is_empty(), "{:?}", issues(&Config::default()));
        let mut config = production();
        assert_eq!(issues(&config), ["gateway.waiting_room.pass_secret"]);
        config.gateway.waiting_room.pass_secret = "x".repeat(31);
        assert_eq!(issues(&config), ["gateway.waiting_room.pass_secret"]);
        config.gateway.waiting_room.pass_secret = "x".repeat(32);
        assert!(issues(&config).is_empty());
        config.gateway.waiting_room.pass_ttl = Duration::ZERO;
        config.gateway.waiting_room.event_cache_size = 0;
        assert_eq!(issues(&config), ["gateway.waiting_room.pass_ttl", "gateway.waiting_room.event_cache_size"]);
    }

    #[test]
    fn production_behind_a_load_balancer_refuses_zero_trusted_hops() {
        let mut config = Config::default();
        config.gateway.front_end = "httpRoute".into();
        assert!(issues(&config).is_empty(), "development may run behind anything: {:?}", issues(&config));
        config = Config { gateway: config.gateway, ..production() };
        config.gateway.waiting_room.pass_secret = "x".repeat(32);
        assert_eq!(issues(&config), ["gateway.rate_limits.trusted_proxy_hops"]);
        config.gateway.rate_limits.trusted_proxy_hops = 2;
        assert!(issues(&config).is_empty(), "{:?}", issues(&config));
        // No front end: clients connect directly, and their socket's address is theirs.
        config.gateway.front_end = String::new();
        config.gateway.rate_limits.trusted_proxy_hops = 0;
        assert!(issues(&config).is_empty(), "{:?}", issues(&config));
        config.gateway.front_end = "ingress\nalb".into();
        assert_eq!(issues(&config), ["gateway.front_end", "gateway.rate_limits.trusted_proxy_hops"]);
    }

    #[test]
    fn the_gateway_needs_credentials_and_not_the_development_secret_in_production() {
        let mut config = production();
        config.gateway.waiting_room.pass_secret = "x".repeat(32);
        assert!(issues(&config).is_empty(), "{:?}", issues(&config));
        config.auth.client_secret = DEVELOPMENT_CLIENT_SECRET.into();
        assert_eq!(issues(&config), ["auth.client_secret"]);
        config.auth.client_id = String::new();
        config.auth.client_secret = String::new();
        assert_eq!(issues(&config), ["auth.client_id"]);
    }

    #[test]
    fn edge_timeouts_imports_and_snapshots_are_bounded() {
        let mut config = Config::default();
        config.gateway.max_seat_map_imports = 0;
        config.gateway.header_read_timeout = Duration::from_millis(500);
        config.gateway.body_read_timeout = Duration::from_secs(601);
        config.gateway.snapshot_ttl = Duration::from_secs(61);
        config.gateway.rate_limits.heavy.burst = 0;
        assert_eq!(
            issues(&config),
            [
                "gateway.max_seat_map_imports",
                "gateway.header_read_timeout",
                "gateway.body_read_timeout",
                "gateway.snapshot_ttl",
                "gateway.rate_limits.heavy.burst",
            ]
        );
    }

    #[test]
    fn graphql_limits_are_bounded() {
        let mut config = Config::default();
        config.gateway.graphql = GraphqlSettings { max_depth: 9, max_complexity: 99 };
        assert_eq!(issues(&config), ["gateway.graphql.max_depth", "gateway.graphql.max_complexity"]);
        config.gateway.graphql = GraphqlSettings { max_depth: 64, max_complexity: 1_000_000 };
        assert!(issues(&config).is_empty());
    }

    #[test]
    fn the_seat_map_limit_is_at_least_the_body_limit() {
        let mut config = Config::default();
        config.gateway.max_seat_map_bytes = config.gateway.max_body_bytes - 1;
        assert_eq!(issues(&config), ["gateway.max_seat_map_bytes"]);
    }
}
