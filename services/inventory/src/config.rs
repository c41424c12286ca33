//! Inventory's configuration: the shared sections plus hold timing.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::coalesce::Batching;
use ticketing_platform::config::{ConfigIssue, Validate};

/// Default gRPC port; the admin port is 1000 above.
pub const GRPC_PORT: u16 = 50053;

ticketing_platform::service_config! {
    service = "inventory";
    grpc_port = GRPC_PORT;

    /// The whole configuration.
    pub struct Config {
        /// The sold ledger.
        database,
        /// Live stock and holds.
        redis,
        /// `catalog.events` in, `inventory.events` out.
        kafka,
        /// Token verification.
        auth,
        /// Inventory's own settings.
        inventory: InventorySettings,
    }
}

/// Settings only inventory has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct InventorySettings {
    /// How long a hold lasts unless confirmed.
    #[serde(with = "humantime_serde")]
    pub hold_ttl: Duration,
    /// How long a hold may sit mid-confirm before the reaper finishes or undoes it.
    #[serde(with = "humantime_serde")]
    pub confirm_grace: Duration,
    /// How often the reaper looks for expired holds and spooled announcements.
    #[serde(with = "humantime_serde")]
    pub reaper_interval: Duration,
    /// How long an idempotency key of Hold is remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// How long an ended (released or expired) hold can still be read; then `GetHold`
    /// answers NOT_FOUND. A hold placed with an idempotency key is kept as long as the key.
    #[serde(with = "humantime_serde")]
    pub ended_hold_retention: Duration,
    /// Most tickets one Hold call may ask for.
    pub max_quantity: u32,
    /// Most concurrent holds coalesced into one Redis script call; 1 turns coalescing off.
    pub hold_batch_size: usize,
    /// Most hold script calls outstanding at once; further holds wait and are batched.
    pub hold_batches_in_flight: usize,
}

impl InventorySettings {
    /// How concurrent holds share script calls.
    pub fn hold_batching(&self) -> Batching {
        Batching { max_batch: self.hold_batch_size, in_flight: self.hold_batches_in_flight }
    }
}

impl Default for InventorySettings {
    fn default() -> Self {
        Self {
            hold_ttl: Duration::from_secs(600),
            confirm_grace: Duration::from_secs(60),
            reaper_interval: Duration::from_millis(250),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            ended_hold_retention: crate::adapters::stock::DEFAULT_RETENTION,
            max_quantity: 20,
            hold_batch_size: 64,
            hold_batches_in_flight: 2,
        }
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.validate_shared(issues);
        let s = &self.inventory;
        if s.hold_ttl < Duration::from_millis(100) || s.hold_ttl > Duration::from_secs(3600) {
            issues.push(ConfigIssue::new("inventory.hold_ttl", "must be between 100ms and 1h"));
        }
        if s.confirm_grace.is_zero() {
            issues.push(ConfigIssue::new("inventory.confirm_grace", "must be positive"));
        }
        if s.reaper_interval.is_zero() {
            issues.push(ConfigIssue::new("inventory.reaper_interval", "must be positive"));
        }
        if s.idempotency_ttl < Duration::from_secs(24 * 3600) {
            issues.push(ConfigIssue::new("inventory.idempotency_ttl", "must be at least 24h (Stripe semantics)"));
        }
        if s.ended_hold_retention < Duration::from_secs(1) || s.ended_hold_retention > Duration::from_secs(30 * 86400) {
            issues.push(ConfigIssue::new("inventory.ended_hold_retention", "must be between 1s and 30 days"));
        }
        if s.max_quantity == 0 || s.max_quantity > 100 {
            issues.push(ConfigIssue::new("inventory.max_quantity", "must be between 1 and 100"));
        }
        s.hold_batching().validate("inventory.hold_batch_size", "inventory.hold_batches_in_flight", issues);
    }
}
