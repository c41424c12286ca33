//! Booking's configuration: the common sections plus `booking.*`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::auth::AuthConfig;
use ticketing_platform::config::{ConfigIssue, Environment, Validate, check_http_url};

/// Booking's gRPC port; its admin port is this plus 1000.
pub const GRPC_PORT: u16 = 50054;

/// The client secret booking uses by default, for local runs; refused in production.
pub const DEVELOPMENT_SECRET: &str = "booking-development-secret-change-me-0000";

ticketing_platform::service_config! {
    service = "booking";
    grpc_port = GRPC_PORT;

    /// Everything booking reads.
    pub struct Config {
        /// Booking's database.
        database,
        /// The broker.
        kafka,
        /// Token verification, and booking's own client credentials.
        // Development only: `identity.service_clients.booking` must match; production sets
        // the secret from a Secret and refuses this one.
        auth = AuthConfig {
            client_id: "booking".into(),
            client_secret: DEVELOPMENT_SECRET.into(),
            ..AuthConfig::default()
        },
        /// Booking's own settings.
        booking: BookingSettings,
        /// How inventory's and catalog's pods are found.
        discovery,
    }
}

/// Settings only booking has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BookingSettings {
    /// Inventory's gRPC address.
    pub inventory_url: String,
    /// Catalog's gRPC address.
    pub catalog_url: String,
    /// Notification's gRPC address (revoking a cancelled booking's tickets).
    pub notification_url: String,
    /// Payment's gRPC address (the reconciler asks it what became of a booking's payment).
    pub payment_url: String,
    /// Deadline of each call to a peer.
    #[serde(with = "humantime_serde")]
    pub peer_timeout: Duration,
    /// How long idempotency keys are kept.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// How old a paid booking's unfinished cancellation must be before the sweeper
    /// finishes it (its replica died or notification was down); longer than one
    /// cancellation's peer calls.
    #[serde(with = "humantime_serde")]
    pub cancellation_sweep_after: Duration,
    /// How long a booking may wait for another service's event (a payment's outcome, a
    /// restock, a refund) before the reconciler asks that service itself; far longer than a
    /// saga step takes when its consumers keep up.
    #[serde(with = "humantime_serde")]
    pub reconcile_after: Duration,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            inventory_url: "http://127.0.0.1:50053".into(),
            catalog_url: "http://127.0.0.1:50052".into(),
            notification_url: "http://127.0.0.1:50056".into(),
            payment_url: "http://127.0.0.1:50055".into(),
            peer_timeout: Duration::from_secs(3),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            cancellation_sweep_after: Duration::from_secs(30),
            reconcile_after: Duration::from_secs(30),
        }
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.validate_shared(issues);
        if self.server.environment == Environment::Production && self.auth.client_secret == DEVELOPMENT_SECRET {
            issues.push(ConfigIssue::new("auth.client_secret", "the development secret is refused in production"));
        }
        if self.auth.client_id.is_empty() {
            issues.push(ConfigIssue::new("auth.client_id", "booking needs client credentials to confirm sales"));
        }
        let b = &self.booking;
        check_http_url("booking.inventory_url", &b.inventory_url, issues);
        check_http_url("booking.catalog_url", &b.catalog_url, issues);
        check_http_url("booking.notification_url", &b.notification_url, issues);
        check_http_url("booking.payment_url", &b.payment_url, issues);
        if b.peer_timeout < Duration::from_millis(10) || b.peer_timeout > Duration::from_secs(60) {
            issues.push(ConfigIssue::new("booking.peer_timeout", "must be between 10ms and 60s"));
        }
        if b.cancellation_sweep_after < b.peer_timeout * 2 || b.cancellation_sweep_after > Duration::from_secs(3600) {
            issues.push(ConfigIssue::new(
                "booking.cancellation_sweep_after",
                "must be at least twice booking.peer_timeout and at most 1h",
            ));
        }
        if b.reconcile_after < b.peer_timeout * 2 || b.reconcile_after > Duration::from_secs(3600) {
            issues.push(ConfigIssue::new(
                "booking.reconcile_after",
                "must be at least twice booking.peer_timeout and at most 1h",
            ));
        }
        if b.idempotency_ttl < Duration::from_secs(24 * 3600) {
            issues.push(ConfigIssue::new("booking.idempotency_ttl", "must be at least 24h (Stripe semantics)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().issue_keys(), Vec::<String>::new());
    }

    #[test]
    fn the_reconciler_waits_longer_than_a_step_and_at_most_an_hour() {
        let mut config = Config::default();
        config.booking.payment_url = "payment:50055".into();
        config.booking.reconcile_after = config.booking.peer_timeout;
        assert_eq!(config.issue_keys(), ["booking.payment_url", "booking.reconcile_after"]);
        config.booking.payment_url = "http://payment:50055".into();
        config.booking.reconcile_after = Duration::from_secs(2 * 3600);
        assert_eq!(config.issue_keys(), ["booking.reconcile_after"]);
    }
}
