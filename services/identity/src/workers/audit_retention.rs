//! Removes audit entries past `identity.audit_retention`, moving the chain's anchor onto the
//! last one removed (ADR 0046). Replicas may run it at once: each round is one transaction
//! under the log's lock, and a round with nothing due changes nothing.

use std::time::Duration;

use ticketing_platform::periodic::Job;

use crate::service::audit::AuditLog;

/// How often each replica looks for entries past their retention.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// The retention job of one replica.
pub struct AuditRetention {
    log: AuditLog,
}

impl AuditRetention {
    /// Applies `log`'s retention.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

impl Job for AuditRetention {
    async fn round(&mut self) {
        if let Err(e) = self.log.apply_retention().await {
            tracing::warn!(error = format!("{e:#}"), "applying the audit retention failed");
        }
    }
}
