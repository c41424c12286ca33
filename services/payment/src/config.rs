//! Payment's configuration: the shared sections plus the provider and its timing.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::cli::ServiceConfig;
use ticketing_platform::config::{
    AuthConfig, ConfigIssue, DatabaseConfig, Environment, KafkaConfig, ServerConfig, TelemetryConfig, Validate,
};

/// Default gRPC port; the admin port is 1000 above.
pub const GRPC_PORT: u16 = 50055;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Ports and shutdown.
    pub server: ServerConfig,
    /// Logs.
    pub telemetry: TelemetryConfig,
    /// Payments, refunds, the booking projection (and the simulated provider's ledger).
    pub database: DatabaseConfig,
    /// `booking.events` in, `payment.events` out.
    pub kafka: KafkaConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Payment's own settings.
    pub payment: PaymentSettings,
}

/// Which provider adapter charges cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Deterministic test cards, with a ledger in payment's own database.
    Simulated,
    /// A Stripe-shaped HTTP API with signed webhooks.
    Processor,
}

impl ProviderKind {
    /// The adapter's name, as payments and metrics report it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Simulated => "simulated",
            Self::Processor => "processor",
        }
    }
}

/// Settings only payment has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentSettings {
    /// The provider adapter.
    pub provider: ProviderKind,
    /// Longest wait for one provider call; past it a charge's outcome is UNKNOWN.
    #[serde(with = "humantime_serde")]
    pub client_deadline: Duration,
    /// Further attempts after a retryable provider error (same provider idempotency key).
    pub retries: u32,
    /// Delay before the first retry; doubles with each further one.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// How often each replica reconciles unknown charges and unfinished refunds.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How long a PENDING charge or refund may sit before the reconciler takes it over
    /// (its replica died mid-call). Longer than a whole charge with its retries.
    #[serde(with = "humantime_serde")]
    pub pending_timeout: Duration,
    /// How long Charge and Refund idempotency keys are remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// The simulated provider.
    pub simulated: SimulatedSettings,
    /// The processor-shaped HTTP provider.
    pub processor: ProcessorSettings,
}

/// The simulated provider's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulatedSettings {
    /// How long the `tok_slow` card takes; longer than `payment.client_deadline`.
    #[serde(with = "humantime_serde")]
    pub slow_delay: Duration,
}

/// The processor-shaped provider's settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorSettings {
    /// The API's base URL, e.g. `https://api.processor.example`.
    pub base_url: String,
    /// Bearer API key.
    pub api_key: String,
    /// Shared secret of the webhook signatures (HMAC-SHA256).
    pub webhook_secret: String,
    /// Oldest (or furthest in the future) webhook timestamp accepted.
    #[serde(with = "humantime_serde")]
    pub webhook_tolerance: Duration,
}

impl fmt::Debug for ProcessorSettings {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ProcessorSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &redacted(&self.api_key))
            .field("webhook_secret", &redacted(&self.webhook_secret))
            .field("webhook_tolerance", &self.webhook_tolerance)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_ports(GRPC_PORT),
            telemetry: TelemetryConfig::default(),
            database: DatabaseConfig::for_service("payment"),
            kafka: KafkaConfig::default(),
            auth: AuthConfig::default(),
            payment: PaymentSettings::default(),
        }
    }
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Simulated,
            client_deadline: Duration::from_secs(5),
            retries: 2,
            retry_backoff: Duration::from_millis(200),
            reconcile_interval: Duration::from_secs(5),
            pending_timeout: Duration::from_secs(120),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            simulated: SimulatedSettings::default(),
            processor: ProcessorSettings::default(),
        }
    }
}

impl Default for SimulatedSettings {
    fn default() -> Self {
        Self { slow_delay: Duration::from_secs(10) }
    }
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            api_key: String::new(),
            webhook_secret: String::new(),
            webhook_tolerance: Duration::from_secs(300),
        }
    }
}

/// Longest backoff between two provider attempts.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

impl PaymentSettings {
    /// The delay before retry number `retry` (0-based): doubling, capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        self.retry_backoff.saturating_mul(1 << retry.min(16)).min(MAX_RETRY_BACKOFF)
    }

    /// The longest a charge or refund call can spend at the provider, retries included.
    pub fn longest_call(&self) -> Duration {
        let attempts = self.client_deadline.saturating_mul(self.retries + 1);
        (0..self.retries).map(|r| self.backoff(r)).fold(attempts, Duration::saturating_add)
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.server.validate(issues);
        self.telemetry.validate(issues);
        self.database.validate(issues);
        self.kafka.validate(issues);
        self.auth.validate(issues);
        self.payment.validate(self.server.environment, issues);
    }
}

impl PaymentSettings {
    fn validate(&self, environment: Environment, issues: &mut Vec<ConfigIssue>) {
        let mut issue = |key: &str, message: &str| issues.push(ConfigIssue::new(format!("payment.{key}"), message));
        if self.client_deadline < Duration::from_millis(10) || self.client_deadline > Duration::from_secs(60) {
            issue("client_deadline", "must be between 10ms and 60s");
        }
        if self.retries > 10 {
            issue("retries", "must be at most 10");
        }
        if self.retry_backoff.is_zero() || self.retry_backoff > MAX_RETRY_BACKOFF {
            issue("retry_backoff", "must be between 1ms and 30s");
        }
        if self.reconcile_interval < Duration::from_millis(10) || self.reconcile_interval > Duration::from_secs(3600) {
            issue("reconcile_interval", "must be between 10ms and 1h");
        }
        if self.pending_timeout <= self.longest_call() || self.pending_timeout > Duration::from_secs(24 * 3600) {
            let message = format!(
                "must be longer than a whole provider call with its retries ({:?}) and at most 24h",
                self.longest_call()
            );
            issue("pending_timeout", &message);
        }
        if self.idempotency_ttl < Duration::from_secs(24 * 3600) {
            issue("idempotency_ttl", "must be at least 24h (Stripe semantics)");
        }
        if self.provider == ProviderKind::Simulated
            && (self.simulated.slow_delay <= self.client_deadline
                || self.simulated.slow_delay > Duration::from_secs(600))
        {
            issue("simulated.slow_delay", "must be longer than payment.client_deadline and at most 10m");
        }
        let p = &self.processor;
        if p.webhook_tolerance < Duration::from_secs(1) || p.webhook_tolerance > Duration::from_secs(3600) {
            issue("processor.webhook_tolerance", "must be between 1s and 1h");
        }
        if self.provider == ProviderKind::Processor {
            let https = p.base_url.starts_with("https://");
            if !(https || p.base_url.starts_with("http://")) || reqwest::Url::parse(&p.base_url).is_err() {
                issue("processor.base_url", "must be an http(s) URL");
            } else if environment == Environment::Production && !https {
                issue("processor.base_url", "must be https in production");
            }
            if p.api_key.trim().is_empty() {
                issue("processor.api_key", "is required with payment.provider = \"processor\"");
            }
            if p.webhook_secret.len() < 16 {
                issue(
                    "processor.webhook_secret",
                    "must be at least 16 characters with payment.provider = \"processor\"",
                );
            }
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }

    fn database(&self) -> Option<&DatabaseConfig> {
        Some(&self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &Config) -> Vec<String> {
        let mut issues = Vec::new();
        config.validate(&mut issues);
        issues.into_iter().map(|i| i.key).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(keys(&Config::default()).is_empty(), "{:?}", keys(&Config::default()));
    }

    #[test]
    fn the_processor_needs_its_url_key_and_secret() {
        let mut config = Config::default();
        config.payment.provider = ProviderKind::Processor;
        assert_eq!(
            keys(&config),
            ["payment.processor.base_url", "payment.processor.api_key", "payment.processor.webhook_secret"]
        );
        config.payment.processor.base_url = "http://127.0.0.1:9".into();
        config.payment.processor.api_key = "sk_test".into();
        config.payment.processor.webhook_secret = "whsec_0123456789abcdef".into();
        assert!(keys(&config).is_empty());
        config.server.environment = Environment::Production;
        assert_eq!(keys(&config), ["payment.processor.base_url"], "production wants https");
        assert!(!format!("{config:?}").contains("whsec_"), "secrets are redacted");
    }

    #[test]
    fn the_pending_timeout_must_outlast_a_whole_call() {
        let mut config = Config::default();
        config.payment.client_deadline = Duration::from_secs(30);
        config.payment.retries = 3;
        config.payment.simulated.slow_delay = Duration::from_secs(60);
        assert_eq!(keys(&config), ["payment.pending_timeout"]);
        assert_eq!(config.payment.longest_call(), Duration::from_millis(120_000 + 200 + 400 + 800));
    }

    #[test]
    fn the_slow_card_must_be_slower_than_the_deadline() {
        let mut config = Config::default();
        config.payment.simulated.slow_delay = config.payment.client_deadline;
        assert_eq!(keys(&config), ["payment.simulated.slow_delay"]);
        config.payment.idempotency_ttl = Duration::from_secs(3600);
        config.payment.reconcile_interval = Duration::ZERO;
        assert_eq!(
            keys(&config),
            ["payment.reconcile_interval", "payment.idempotency_ttl", "payment.simulated.slow_delay"]
        );
    }
}
