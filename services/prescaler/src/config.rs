//! The pre-scaler's configuration: the shared sections plus the lead time, the rush and the
//! HPAs it may raise, each with its ceiling and the demand one replica serves.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::config::{ConfigIssue, Validate};

/// Default gRPC port (health only); the admin port is 1000 above.
pub const GRPC_PORT: u16 = 50057;

ticketing_platform::service_config! {
    service = "prescaler";
    grpc_port = GRPC_PORT;

    /// The whole configuration.
    pub struct Config {
        /// `catalog.events` in, read from the beginning on every start.
        kafka,
        /// The pre-scaler's own settings.
        prescaler: PrescalerSettings,
    }
}

/// Settings only the pre-scaler has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PrescalerSettings {
    /// Namespace of the HPAs; empty: the pod's own (in a cluster) or the kubeconfig's.
    pub namespace: String,
    /// How long before `sale_starts_at` the floors go up: node provisioning plus pod start.
    #[serde(with = "humantime_serde")]
    pub lead_time: Duration,
    /// How long after the sale starts the floors stay up (less if the sale ends sooner).
    #[serde(with = "humantime_serde")]
    pub rush: Duration,
    /// How often each HPA is looked at again without a change to it or to the schedule:
    /// what puts back a floor that someone else lowered.
    #[serde(with = "humantime_serde")]
    pub resync: Duration,
    /// The hot services, by name (e.g. `gateway`): which HPA to raise and how far.
    pub services: BTreeMap<String, Target>,
}

/// One HPA the pre-scaler may raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    /// The HorizontalPodAutoscaler's name, e.g. `ticketing-gateway`.
    pub hpa: String,
    /// The highest floor the pre-scaler sets (the HPA's `maxReplicas` caps it too).
    pub ceiling: i32,
    /// Buyers per minute one replica serves during a rush: the floor is the sales' demand
    /// divided by this, rounded up.
    pub buyers_per_replica: u32,
}

impl Default for Target {
    fn default() -> Self {
        Self { hpa: String::new(), ceiling: 20, buyers_per_replica: 600 }
    }
}

impl Default for PrescalerSettings {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            lead_time: Duration::from_secs(10 * 60),
            rush: Duration::from_secs(30 * 60),
            resync: Duration::from_secs(60),
            services: BTreeMap::new(),
        }
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.validate_shared(issues);
        self.prescaler.validate(issues);
    }
}

/// A DNS-1123 label: what namespaces and HPA names are.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl PrescalerSettings {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let mut bad = |key: &str, message: &str| issues.push(ConfigIssue::new(format!("prescaler.{key}"), message));
        if !self.namespace.is_empty() && !is_label(&self.namespace) {
            bad("namespace", "must be empty or a Kubernetes namespace name");
        }
        if self.lead_time > Duration::from_secs(24 * 3600) {
            bad("lead_time", "must be at most 24h");
        }
        if self.rush < Duration::from_secs(60) || self.rush > Duration::from_secs(24 * 3600) {
            bad("rush", "must be between 1m and 24h");
        }
        if self.resync < Duration::from_secs(1) || self.resync > Duration::from_secs(3600) {
            bad("resync", "must be between 1s and 1h");
        }
        for (name, target) in &self.services {
            if !is_label(&target.hpa) {
                bad(&format!("services.{name}.hpa"), "must be a HorizontalPodAutoscaler's name");
            }
            if !(1..=1000).contains(&target.ceiling) {
                bad(&format!("services.{name}.ceiling"), "must be between 1 and 1000");
            }
            if target.buyers_per_replica == 0 {
                bad(&format!("services.{name}.buyers_per_replica"), "must be at least 1");
            }
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
    fn bad_values_name_their_keys() {
        let mut config = Config::default();
        let p = &mut config.prescaler;
        p.namespace = "Not_A_Namespace".into();
        p.lead_time = Duration::from_secs(25 * 3600);
        p.rush = Duration::from_secs(1);
        p.resync = Duration::ZERO;
        p.services.insert("gateway".into(), Target { hpa: "-bad".into(), ceiling: 0, buyers_per_replica: 0 });
        assert_eq!(
            config.issue_keys(),
            [
                "prescaler.namespace",
                "prescaler.lead_time",
                "prescaler.rush",
                "prescaler.resync",
                "prescaler.services.gateway.hpa",
                "prescaler.services.gateway.ceiling",
                "prescaler.services.gateway.buyers_per_replica",
            ]
        );
    }
}
