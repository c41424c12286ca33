//! Layered configuration: built-in defaults, then an optional file, then `TICKETING_*` env.
//!
//! Nested keys use `__` in the environment: `TICKETING_DATABASE__URL` sets
//! `database.url`. Every error names the key it is about.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Prefix of every environment variable the services read.
pub const ENV_PREFIX: &str = "TICKETING_";

/// Consecutive failed rounds of a gating check before the service turns unready, unless
/// `server.readiness_failure_threshold` says otherwise.
pub const DEFAULT_READINESS_FAILURE_THRESHOLD: u32 = 3;

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
            readiness_failure_threshold: DEFAULT_READINESS_FAILURE_THRESHOLD,
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

/// Pushes an issue about `key` unless `url` is an http(s) URL (peer and JWKS addresses).
pub fn check_http_url(key: &str, url: &str, issues: &mut Vec<ConfigIssue>) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        issues.push(ConfigIssue::new(key, "must be an http(s) URL"));
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.message)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Sample {
        server: ServerConfig,
    }

    impl Validate for Sample {
        fn validate(&self, issues: &mut Vec<ConfigIssue>) {
            self.server.validate(issues);
        }
    }

    /// Loads `defaults` with `vars` as the only `TICKETING_*` environment.
    #[allow(clippy::result_large_err)] // the closure's error type is figment's
    pub(crate) fn load_vars<T>(defaults: T, vars: &[(&str, &str)]) -> Result<T, String>
    where
        T: Serialize + DeserializeOwned + Validate,
    {
        let mut result = Err(String::new());
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            result = load(defaults, None).map_err(|e| e.to_string());
            Ok(())
        });
        result
    }

    #[test]
    fn defaults_are_valid() {
        let config = load_vars(Sample::default(), &[]).expect("defaults load");
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(20));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load_vars(Sample::default(), &[("TICKETING_SERVER__GRPC_ADDR", "not-an-addr")]).unwrap_err();
        assert!(err.contains("`server.grpc_addr`"), "{err}");
    }

    #[test]
    fn a_rule_violation_names_its_key() {
        let err = load_vars(Sample::default(), &[("TICKETING_SERVER__READINESS_FAILURE_THRESHOLD", "0")]).unwrap_err();
        assert!(err.contains("`server.readiness_failure_threshold`"), "{err}");
    }

    #[test]
    fn env_overrides_defaults() {
        let config = load_vars(Sample::default(), &[("TICKETING_SERVER__SHUTDOWN_GRACE", "5s")]).expect("loads");
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(5));
    }
}
