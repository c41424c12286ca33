//! Notification's configuration: the shared sections plus the SMTP server, the sender
//! and the delivery retry policy.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::config::{ConfigIssue, Environment, Validate};

/// Default gRPC port; the admin port is 1000 above.
pub const GRPC_PORT: u16 = 50056;

ticketing_platform::service_config! {
    service = "notification";
    grpc_port = GRPC_PORT;

    /// The whole configuration.
    pub struct Config {
        /// The delivery log, tickets, signing keys and projections.
        database,
        /// `identity.events`, `catalog.events`, `booking.events` and `payment.events` in.
        kafka,
        /// Token verification.
        auth,
        /// The KEKs that seal the ticket signing keys' private halves in Postgres.
        sealing,
        /// Notification's own settings.
        notification: NotificationSettings,
    }
}

/// Settings only notification has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationSettings {
    /// The `From` of every email, e.g. `Ticketing <tickets@example.com>`.
    pub from: String,
    /// The SMTP server emails are handed to.
    pub smtp: SmtpSettings,
    /// How often the dispatcher looks for due deliveries when it found none.
    #[serde(with = "humantime_serde")]
    pub dispatch_interval: Duration,
    /// Most deliveries one dispatcher pass claims.
    pub dispatch_batch_size: u32,
    /// Most emails a replica sends at once.
    pub dispatch_concurrency: usize,
    /// Attempts per delivery before it is FAILED.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each further attempt.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest delay between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_retry_backoff: Duration,
    /// How long a claimed delivery is reserved for the replica sending it; a replica
    /// that dies mid-send leaves it to be retried after this.
    #[serde(with = "humantime_serde")]
    pub send_lease: Duration,
    /// Check-in.
    pub tickets: TicketSettings,
    /// The page of the web app that verifies an email: the verification email links to it
    /// with `?token=…`, and the page posts the token to `POST /v1/auth/verify-email`.
    pub verify_email_url: String,
    /// The page of the web app that sets a new password: the reset email links to it with
    /// `?token=…`, and the page posts the token and the new password to
    /// `POST /v1/auth/password/reset`.
    pub reset_password_url: String,
}

/// Check-in settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TicketSettings {
    /// Every online gate admits only rotating codes (`<code>~<value>`), as if each scan
    /// asked for them; static codes (emailed, printed, screenshotted) admit nowhere.
    /// Off: a static code admits unless the gate's scan asks for rotating codes.
    pub require_rotating: bool,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain text (a local relay or a test server).
    #[default]
    None,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// The SMTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    /// Host name (also the name its TLS certificate must carry) or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: SmtpSecurity,
    /// User name for SMTP AUTH; empty for none.
    pub username: String,
    /// Password for SMTP AUTH.
    pub password: String,
    /// Longest wait for one SMTP command, including connecting.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most pooled connections to the server.
    pub pool_size: u32,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            from: "Ticketing <tickets@ticketing.local>".into(),
            smtp: SmtpSettings::default(),
            dispatch_interval: Duration::from_millis(500),
            dispatch_batch_size: 32,
            dispatch_concurrency: 4,
            max_attempts: 12,
            retry_backoff: Duration::from_secs(5),
            max_retry_backoff: Duration::from_secs(15 * 60),
            send_lease: Duration::from_secs(120),
            tickets: TicketSettings::default(),
            verify_email_url: "http://127.0.0.1:8080/verify-email".into(),
            reset_password_url: "http://127.0.0.1:8080/reset-password".into(),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 2525,
            security: SmtpSecurity::None,
            username: String::new(),
            password: String::new(),
            timeout: Duration::from_secs(10),
            pool_size: 4,
        }
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.validate_shared(issues);
        self.notification.validate(self.server.environment, issues);
    }
}

impl NotificationSettings {
    fn validate(&self, environment: Environment, issues: &mut Vec<ConfigIssue>) {
        let mut bad = |key: &str, message: &str| issues.push(ConfigIssue::new(format!("notification.{key}"), message));
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            bad("from", "must be an email address, optionally with a name: `Name <user@domain>`");
        }
        for (key, url) in
            [("verify_email_url", &self.verify_email_url), ("reset_password_url", &self.reset_password_url)]
        {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(['?', '#']) {
                bad(key, "must be an http(s) URL without a query or fragment");
            }
            // The link's token opens the account.
            if environment == Environment::Production && !url.starts_with("https://") {
                bad(key, "a link with a token goes over https in production");
            }
        }
        let smtp = &self.smtp;
        if smtp.host.trim().is_empty() {
            bad("smtp.host", "must not be empty");
        }
        if smtp.port == 0 {
            bad("smtp.port", "must be between 1 and 65535");
        }
        if smtp.username.is_empty() != smtp.password.is_empty() {
            bad("smtp.password", "notification.smtp.username and notification.smtp.password go together");
        }
        if environment == Environment::Production && !smtp.username.is_empty() && smtp.security == SmtpSecurity::None {
            bad("smtp.security", "credentials are never sent in plain text in production: use starttls or tls");
        }
        if smtp.timeout < Duration::from_secs(1) || smtp.timeout > Duration::from_secs(300) {
            bad("smtp.timeout", "must be between 1s and 5m");
        }
        if smtp.pool_size == 0 || smtp.pool_size > 100 {
            bad("smtp.pool_size", "must be between 1 and 100");
        }
        if self.dispatch_interval.is_zero() || self.dispatch_interval > Duration::from_secs(3600) {
            bad("dispatch_interval", "must be between 1ms and 1h");
        }
        if self.dispatch_batch_size == 0 || self.dispatch_batch_size > 1000 {
            bad("dispatch_batch_size", "must be between 1 and 1000");
        }
        if self.dispatch_concurrency == 0 || self.dispatch_concurrency > 64 {
            bad("dispatch_concurrency", "must be between 1 and 64");
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            bad("max_attempts", "must be between 1 and 100");
        }
        if self.retry_backoff.is_zero() {
            bad("retry_backoff", "must be positive");
        }
        if self.max_retry_backoff < self.retry_backoff {
            bad("max_retry_backoff", "must be at least notification.retry_backoff");
        }
        if self.send_lease <= smtp.timeout {
            bad("send_lease", "must be longer than notification.smtp.timeout");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(config: &Config) -> Vec<String> {
        config.issue_keys()
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(issues(&Config::default()), Vec::<String>::new());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let mut config = Config::default();
        let n = &mut config.notification;
        n.from = "not an address".into();
        n.smtp.host = " ".into();
        n.smtp.port = 0;
        n.smtp.username = "mailer".into();
        n.smtp.timeout = Duration::from_millis(10);
        n.smtp.pool_size = 0;
        n.dispatch_interval = Duration::ZERO;
        n.dispatch_batch_size = 0;
        n.dispatch_concurrency = 65;
        n.max_attempts = 0;
        n.retry_backoff = Duration::from_secs(10);
        n.max_retry_backoff = Duration::from_secs(1);
        assert_eq!(
            issues(&config),
            [
                "notification.from",
                "notification.smtp.host",
                "notification.smtp.port",
                "notification.smtp.password",
                "notification.smtp.timeout",
                "notification.smtp.pool_size",
                "notification.dispatch_interval",
                "notification.dispatch_batch_size",
                "notification.dispatch_concurrency",
                "notification.max_attempts",
                "notification.max_retry_backoff",
            ]
        );
    }

    #[test]
    fn the_lease_must_outlast_a_send_and_production_refuses_plain_text_credentials() {
        let mut config = Config::default();
        config.notification.send_lease = config.notification.smtp.timeout;
        config.notification.smtp.username = "mailer".into();
        config.notification.smtp.password = "secret".into();
        assert_eq!(issues(&config), ["notification.send_lease"]);
        config.server.environment = Environment::Production;
        config.sealing.kek = format!("prod:{}", "A".repeat(43) + "=");
        assert_eq!(
            issues(&config),
            [
                "notification.verify_email_url",
                "notification.reset_password_url",
                "notification.smtp.security",
                "notification.send_lease"
            ]
        );
        config.notification.verify_email_url = "https://tickets.example.com/verify-email".into();
        config.notification.reset_password_url = "https://tickets.example.com/reset-password".into();
        config.notification.smtp.security = SmtpSecurity::Starttls;
        config.notification.send_lease = Duration::from_secs(60);
        assert_eq!(issues(&config), Vec::<String>::new());
    }
}
