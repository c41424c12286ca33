//! Payment's configuration: the shared sections plus the provider and its timing.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::config::{ConfigIssue, Environment, Validate};

/// Default gRPC port; the admin port is 1000 above.
pub const GRPC_PORT: u16 = 50055;

ticketing_platform::service_config! {
    service = "payment";
    grpc_port = GRPC_PORT;

    /// The whole configuration.
    pub struct Config {
        /// Payments, refunds, the booking projection (and the simulated provider's ledger).
        database,
        /// `booking.events` in, `payment.events` out.
        kafka,
        /// Token verification.
        auth,
        /// Payment's own settings.
        payment: PaymentSettings,
    }
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
        self.validate_shared(issues);
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
        let production = environment == Environment::Production;
        // I9: money is real in production.
        if self.provider == ProviderKind::Simulated && production {
            issue(
                "provider",
                "the simulated provider takes no real money and is refused in production; \
                 set payment.provider = \"processor\" with payment.processor.*",
            );
        }
        if self.provider == ProviderKind::Processor {
            p.validate(production, issues);
        }
    }
}

/// Longest API key or webhook secret accepted: far above any processor's, far below a
/// header limit.
const MAX_CREDENTIAL_LEN: usize = 1024;
/// Shortest API key accepted in production; real processors' keys are much longer.
const MIN_PRODUCTION_API_KEY_LEN: usize = 16;
/// Shortest webhook secret accepted: an HMAC key that can be guessed proves nothing.
const MIN_WEBHOOK_SECRET_LEN: usize = 16;

impl ProcessorSettings {
    /// The processor's settings, checked once `payment.provider = "processor"`.
    fn validate(&self, production: bool, issues: &mut Vec<ConfigIssue>) {
        let mut issue = |key: &str, message: &str| {
            issues.push(ConfigIssue::new(format!("payment.processor.{key}"), message));
        };
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") || !url.has_host() => {
                issue("base_url", "must be an http(s) URL");
            }
            // It sits in a ConfigMap: credentials belong in api_key, from a Secret.
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                issue("base_url", "must not carry credentials; the key goes in payment.processor.api_key");
            }
            Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                issue("base_url", "must have no query or fragment: request paths are appended to it");
            }
            Ok(url) if production && url.scheme() != "https" => issue("base_url", "must be https in production"),
            Ok(_) => {}
            Err(_) => issue("base_url", "must be an http(s) URL"),
        }
        let required = "is required with payment.provider = \"processor\"";
        // A trailing newline (a Secret made from a file) or a space would break the
        // Authorization header on every call, or never match a signature.
        let clean = |s: &str| s.chars().all(|c| c.is_ascii_graphic());
        let key = &self.api_key;
        if key.is_empty() {
            issue("api_key", required);
        } else if !clean(key) || key.len() > MAX_CREDENTIAL_LEN {
            issue("api_key", "must be at most 1024 printable ASCII characters, with no spaces or newlines");
        } else if production && key.len() < MIN_PRODUCTION_API_KEY_LEN {
            issue("api_key", "must be at least 16 characters in production");
        }
        let secret = &self.webhook_secret;
        if secret.is_empty() {
            issue("webhook_secret", required);
        } else if !clean(secret) || !(MIN_WEBHOOK_SECRET_LEN..=MAX_CREDENTIAL_LEN).contains(&secret.len()) {
            issue("webhook_secret", "must be 16 to 1024 printable ASCII characters, with no spaces or newlines");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().issue_keys().is_empty(), "{:?}", Config::default().issue_keys());
    }

    #[test]
    fn the_processor_needs_its_url_key_and_secret() {
        let mut config = Config::default();
        config.payment.provider = ProviderKind::Processor;
        assert_eq!(
            config.issue_keys(),
            ["payment.processor.base_url", "payment.processor.api_key", "payment.processor.webhook_secret"]
        );
        config.payment.processor.base_url = "http://127.0.0.1:9".into();
        config.payment.processor.api_key = "sk_live_0123456789abcdef".into();
        config.payment.processor.webhook_secret = "whsec_0123456789abcdef".into();
        assert!(config.issue_keys().is_empty());
        config.server.environment = Environment::Production;
        assert_eq!(config.issue_keys(), ["payment.processor.base_url"], "production wants https");
        assert!(!format!("{config:?}").contains("whsec_"), "secrets are redacted");
    }

    /// A production config paying through the processor, as the chart renders it.
    fn production() -> Config {
        let mut config = Config::default();
        config.server.environment = Environment::Production;
        config.payment.provider = ProviderKind::Processor;
        config.payment.processor.base_url = "https://api.processor.example/".into();
        config.payment.processor.api_key = "sk_live_0123456789abcdef".into();
        config.payment.processor.webhook_secret = "whsec_0123456789abcdef".into();
        config
    }

    #[test]
    fn production_refuses_the_simulated_provider() {
        assert!(production().issue_keys().is_empty(), "{:?}", production().issue_keys());
        let mut config = production();
        config.payment.provider = ProviderKind::Simulated;
        let mut issues = Vec::new();
        config.validate(&mut issues);
        assert_eq!(issues.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["payment.provider"]);
        assert!(issues[0].message.contains("refused in production"), "{}", issues[0].message);
        config.server.environment = Environment::Development;
        assert!(config.issue_keys().is_empty(), "development keeps its test cards");
    }

    #[test]
    fn the_processor_settings_must_be_sound() {
        type Spoil = fn(&mut ProcessorSettings);
        let cases: [(&str, Spoil); 9] = [
            ("base_url", |p| p.base_url = "ftp://api.processor.example".into()),
            ("base_url", |p| p.base_url = "https://sk_live_key:@api.processor.example".into()),
            ("base_url", |p| p.base_url = "https://api.processor.example/?key=sk_live".into()),
            ("base_url", |p| p.base_url = "https://".into()),
            ("api_key", |p| p.api_key = "sk_live_0123456789abcdef\n".into()),
            ("api_key", |p| p.api_key = "sk_live".into()),
            ("api_key", |p| p.api_key = "k".repeat(1025)),
            ("webhook_secret", |p| p.webhook_secret = " whsec_0123456789abcdef".into()),
            ("webhook_secret", |p| p.webhook_secret = "w".repeat(1025)),
        ];
        for (key, spoil) in cases {
            let mut config = production();
            spoil(&mut config.payment.processor);
            assert_eq!(
                config.issue_keys(),
                [format!("payment.processor.{key}")],
                "{:?}",
                config.payment.processor.base_url
            );
        }
        let mut config = production();
        config.server.environment = Environment::Development;
        config.payment.processor.api_key = "sk_test".into();
        assert!(config.issue_keys().is_empty(), "a short test key is fine outside production");
    }

    #[test]
    fn the_pending_timeout_must_outlast_a_whole_call() {
        let mut config = Config::default();
        config.payment.client_deadline = Duration::from_secs(30);
        config.payment.retries = 3;
        config.payment.simulated.slow_delay = Duration::from_secs(60);
        assert_eq!(config.issue_keys(), ["payment.pending_timeout"]);
        assert_eq!(config.payment.longest_call(), Duration::from_millis(120_000 + 200 + 400 + 800));
    }

    #[test]
    fn the_slow_card_must_be_slower_than_the_deadline() {
        let mut config = Config::default();
        config.payment.simulated.slow_delay = config.payment.client_deadline;
        assert_eq!(config.issue_keys(), ["payment.simulated.slow_delay"]);
        config.payment.idempotency_ttl = Duration::from_secs(3600);
        config.payment.reconcile_interval = Duration::ZERO;
        assert_eq!(
            config.issue_keys(),
            ["payment.reconcile_interval", "payment.idempotency_ttl", "payment.simulated.slow_delay"]
        );
    }
}
