//! Identity's configuration: the shared sections plus token lifetimes,
//! login throttling and the bootstrap admin.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::auth::Scope;
use ticketing_platform::config::{ConfigIssue, Environment, Validate};

use crate::domain::throttle::LoginPolicy;

/// Default gRPC port; the admin port is 1000 above.
pub const GRPC_PORT: u16 = 50051;

ticketing_platform::service_config! {
    service = "identity";
    grpc_port = GRPC_PORT;

    /// The whole configuration.
    pub struct Config {
        /// Users and signing keys.
        database,
        /// Refresh tokens and login throttling.
        redis,
        /// `identity.events`, and the audit records of every service on `audit.events`.
        kafka,
        /// Issuer and audience of the tokens identity signs (and verifies).
        auth,
        /// The KEKs that seal the signing keys' private halves in Postgres.
        sealing,
        /// Identity's own settings.
        identity: IdentitySettings,
    }
}

/// Settings only identity has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// Lifetime of access tokens.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh-token family, from login; rotation does not extend it.
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// Email of the admin account created at start when missing (empty: none).
    pub bootstrap_admin_email: String,
    /// That admin's initial password.
    pub bootstrap_admin_password: String,
    /// Shortest password accepted.
    pub password_min_length: usize,
    /// Login throttling and lockout.
    pub login: LoginPolicy,
    /// Workloads that may get `service` tokens: client id → secret (from a Secret in
    /// production, e.g. `TICKETING_IDENTITY__SERVICE_CLIENTS__BOOKING`).
    pub service_clients: std::collections::BTreeMap<String, String>,
    /// What each workload's service tokens may do: client id → scopes. A client without an
    /// entry gets tokens that open no service-to-service call.
    pub service_scopes: std::collections::BTreeMap<String, Vec<Scope>>,
    /// Service clients whose word on the client's address identity takes (the gateway,
    /// which derives it from its trusted proxies); from any other caller it uses the peer.
    pub trusted_edge_clients: Vec<String>,
    /// Whether a new account must verify its email (a link notification mails it) before
    /// it may hold tickets or join a queue. Off, for a platform without email, accounts
    /// are made verified; enforcement reads the tokens' `email_verified` claim either way.
    pub require_email_verification: bool,
    /// How long a verification link works.
    #[serde(with = "humantime_serde")]
    pub email_verification_ttl: Duration,
    /// How long a password reset link works.
    #[serde(with = "humantime_serde")]
    pub password_reset_ttl: Duration,
    /// How long the audit log keeps an entry (ADR 0046); older ones are removed, the chain's
    /// anchor moving onto the last one removed.
    #[serde(with = "humantime_serde")]
    pub audit_retention: Duration,
    /// Social login with OpenID providers (ADR 0045).
    pub oidc: OidcSettings,
}

/// Social login: the OpenID providers users may sign in with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcSettings {
    /// Provider name (the `{provider}` of the routes) → its client registration.
    pub providers: std::collections::BTreeMap<String, OidcProvider>,
    /// How long a started sign-in may take to come back (its state, PKCE verifier and
    /// nonce are kept that long, single-use).
    #[serde(with = "humantime_serde")]
    pub state_ttl: Duration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self { providers: std::collections::BTreeMap::new(), state_ttl: Duration::from_secs(10 * 60) }
    }
}

/// Our registration as a client of one OpenID provider.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcProvider {
    /// Issuer URL; its `/.well-known/openid-configuration` is discovered. `https`, or
    /// `http` on a loopback address (tests).
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret there (from a Secret, e.g.
    /// `TICKETING_IDENTITY__OIDC__PROVIDERS__GOOGLE__CLIENT_SECRET`); never logged.
    pub client_secret: String,
    /// Where the provider sends the browser back: the gateway's
    /// `/v1/auth/oidc/{provider}/callback`, or a web client's page that passes the `code`
    /// and `state` on to it. Registered with the provider.
    pub redirect_uri: String,
    /// Scopes asked for; `openid` is always sent, `email` is needed to find accounts.
    pub scopes: Vec<String>,
}

impl Default for OidcProvider {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            redirect_uri: String::new(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
        }
    }
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl OidcSettings {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.state_ttl < Duration::from_secs(60) || self.state_ttl > Duration::from_secs(3600) {
            issues.push(ConfigIssue::new("identity.oidc.state_ttl", "must be between 1m and 1h"));
        }
        for (name, provider) in &self.providers {
            let key = |field: &str| format!("identity.oidc.providers.{name}.{field}");
            if !is_client_id(name) {
                issues.push(ConfigIssue::new(
                    format!("identity.oidc.providers.{name}"),
                    "provider names use only a-z, 0-9 and '-'",
                ));
            }
            if !is_provider_url(&provider.issuer) {
                issues.push(ConfigIssue::new(key("issuer"), "must be an https URL (http only on a loopback address)"));
            }
            if url::Url::parse(&provider.redirect_uri).is_err() {
                issues.push(ConfigIssue::new(key("redirect_uri"), "must be an absolute URL"));
            }
            if provider.client_id.is_empty() {
                issues.push(ConfigIssue::new(key("client_id"), "is required"));
            }
            if provider.client_secret.is_empty() {
                issues.push(ConfigIssue::new(key("client_secret"), "is required"));
            }
        }
    }
}

/// An `https` URL, or an `http` one on a loopback address.
fn is_provider_url(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else { return false };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            bootstrap_admin_email: String::new(),
            bootstrap_admin_password: String::new(),
            password_min_length: 12,
            login: LoginPolicy::default(),
            service_clients: std::collections::BTreeMap::new(),
            // Booking's saga reads and settles holds, reads and refunds payments, and revokes
            // the tickets of cancelled bookings.
            service_scopes: [(
                "booking".to_owned(),
                vec![Scope::InventoryHolds, Scope::PaymentRead, Scope::PaymentRefund, Scope::TicketsRevoke],
            )]
            .into(),
            trusted_edge_clients: vec!["gateway".into()],
            require_email_verification: true,
            email_verification_ttl: Duration::from_secs(24 * 3600),
            password_reset_ttl: Duration::from_secs(30 * 60),
            audit_retention: Duration::from_secs(400 * 86400),
            oidc: OidcSettings::default(),
        }
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.validate_shared(issues);
        let id = &self.identity;
        if id.access_token_ttl < Duration::from_secs(60) || id.access_token_ttl > Duration::from_secs(3600) {
            issues.push(ConfigIssue::new("identity.access_token_ttl", "must be between 1m and 1h"));
        }
        if id.access_token_ttl > self.auth.max_token_lifetime {
            issues.push(ConfigIssue::new(
                "identity.access_token_ttl",
                "must not exceed auth.max_token_lifetime, or every verifier refuses the tokens",
            ));
        }
        if id.refresh_token_ttl <= id.access_token_ttl {
            issues
                .push(ConfigIssue::new("identity.refresh_token_ttl", "must be longer than identity.access_token_ttl"));
        }
        if !(8..=128).contains(&id.password_min_length) {
            issues.push(ConfigIssue::new("identity.password_min_length", "must be between 8 and 128"));
        }
        if id.bootstrap_admin_email.is_empty() != id.bootstrap_admin_password.is_empty() {
            issues.push(ConfigIssue::new(
                "identity.bootstrap_admin_password",
                "identity.bootstrap_admin_email and identity.bootstrap_admin_password go together",
            ));
        }
        if self.server.environment == Environment::Production
            && !id.bootstrap_admin_password.is_empty()
            && crate::domain::password::is_common(&id.bootstrap_admin_password)
        {
            issues.push(ConfigIssue::new(
                "identity.bootstrap_admin_password",
                "a default or common password is refused in production",
            ));
        }
        for (client, secret) in &id.service_clients {
            let key = format!("identity.service_clients.{client}");
            if !is_client_id(client) {
                issues.push(ConfigIssue::new(&key, "client ids use only a-z, 0-9 and '-'"));
            }
            if secret.len() < 32 {
                issues.push(ConfigIssue::new(&key, "the secret must have at least 32 characters"));
            }
        }
        if !id.trusted_edge_clients.iter().all(|c| is_client_id(c)) {
            issues.push(ConfigIssue::new("identity.trusted_edge_clients", "client ids use only a-z, 0-9 and '-'"));
        }
        if id.email_verification_ttl < Duration::from_secs(60)
            || id.email_verification_ttl > Duration::from_secs(7 * 86400)
        {
            issues.push(ConfigIssue::new("identity.email_verification_ttl", "must be between 1m and 7d"));
        }
        // Short: a reset link in an inbox someone else reads opens the account.
        if id.password_reset_ttl < Duration::from_secs(60) || id.password_reset_ttl > Duration::from_secs(3600) {
            issues.push(ConfigIssue::new("identity.password_reset_ttl", "must be between 1m and 1h"));
        }
        // At least a day: the retention job runs hourly, and a shorter log audits little.
        if id.audit_retention < Duration::from_secs(86400) {
            issues.push(ConfigIssue::new("identity.audit_retention", "must be at least 1d"));
        }
        id.login.validate(issues);
        id.oidc.validate(issues);
    }
}

fn is_client_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_living_longer_than_verifiers_accept_are_refused() {
        let mut config = Config::default();
        let mut issues = Vec::new();
        config.validate(&mut issues);
        assert!(issues.iter().all(|i| i.key != "identity.access_token_ttl"), "{issues:?}");

        config.auth.max_token_lifetime = Duration::from_secs(600);
        let mut issues = Vec::new();
        config.validate(&mut issues);
        assert!(issues.iter().any(|i| i.key == "identity.access_token_ttl"), "{issues:?}");
    }

    #[test]
    fn providers_need_https_issuers_except_on_loopback() {
        assert!(is_provider_url("https://accounts.google.com"));
        assert!(is_provider_url("http://127.0.0.1:4000"));
        assert!(is_provider_url("http://localhost:4000/oidc"));
        assert!(!is_provider_url("http://idp.example.com"));
        assert!(!is_provider_url("accounts.google.com"));

        let mut config = Config::default();
        let provider = OidcProvider {
            issuer: "http://idp.example.com".into(),
            redirect_uri: "https://tickets.example.com/v1/auth/oidc/corp/callback".into(),
            client_id: "ticketing".into(),
            ..OidcProvider::default()
        };
        config.identity.oidc.providers.insert("corp".into(), provider);
        let mut issues = Vec::new();
        config.validate(&mut issues);
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert!(keys.contains(&"identity.oidc.providers.corp.issuer"), "{issues:?}");
        assert!(keys.contains(&"identity.oidc.providers.corp.client_secret"), "{issues:?}");
        let debug = format!("{:?}", config.identity.oidc);
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
