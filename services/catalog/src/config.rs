//! The catalog's configuration: the shared sections plus the sale scheduler and the size
//! limits a whole stadium's seat map needs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::config::{ConfigIssue, Validate};

/// Default gRPC port; the admin port is 1000 above.
pub const GRPC_PORT: u16 = 50052;

const MIB: usize = 1024 * 1024;

ticketing_platform::service_config! {
    service = "catalog";
    grpc_port = GRPC_PORT;

    /// The whole configuration.
    pub struct Config {
        /// Venues, seat maps, events and categories.
        database,
        /// `catalog.events`.
        kafka,
        /// Verifying callers' access tokens against identity's JWKS.
        auth,
        /// The catalog's own settings.
        catalog: CatalogSettings,
    }
}

/// Settings only the catalog has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogSettings {
    /// How often the sale scheduler starts and closes sales that are due.
    #[serde(with = "humantime_serde")]
    pub scheduler_interval: Duration,
    /// Largest gRPC request accepted. tonic's default of 4 MiB is too small for a
    /// 60,000-seat seat map or category.
    pub max_request_bytes: usize,
    /// Largest Kafka message the producer sends (librdkafka's `message.max.bytes`). The
    /// EventPublished of a sold-out stadium carries every seat id: about 80 bytes per seat.
    pub max_event_bytes: usize,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self { scheduler_interval: Duration::from_secs(1), max_request_bytes: 32 * MIB, max_event_bytes: 16 * MIB }
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.validate_shared(issues);
        let catalog = &self.catalog;
        if catalog.scheduler_interval < Duration::from_millis(10)
            || catalog.scheduler_interval > Duration::from_secs(3600)
        {
            issues.push(ConfigIssue::new("catalog.scheduler_interval", "must be between 10ms and 1h"));
        }
        if !(4 * MIB..=256 * MIB).contains(&catalog.max_request_bytes) {
            issues.push(ConfigIssue::new("catalog.max_request_bytes", "must be between 4 MiB and 256 MiB"));
        }
        // librdkafka refuses a message.max.bytes above 1e9.
        if !(MIB..=512 * MIB).contains(&catalog.max_event_bytes) {
            issues.push(ConfigIssue::new("catalog.max_event_bytes", "must be between 1 MiB and 512 MiB"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        let mut issues = Vec::new();
        Config::default().validate(&mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(Config::default().server.grpc_addr.port(), 50052);
        assert_eq!(Config::default().server.admin_addr.port(), 51052);

        let mut config = Config::default();
        config.catalog.scheduler_interval = Duration::ZERO;
        config.catalog.max_request_bytes = MIB;
        config.catalog.max_event_bytes = 0;
        config.validate(&mut issues);
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["catalog.scheduler_interval", "catalog.max_request_bytes", "catalog.max_event_bytes"]);
    }
}
