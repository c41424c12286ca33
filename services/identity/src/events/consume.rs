//! Consumes `audit.events`: every service's records of privileged actions go into the audit
//! log (ADR 0046). Idempotent twice over: the consumer dedupes on the event id, and the log
//! keeps each record id once.

use sqlx::PgConnection;
use ticketing_platform::events::dispatch;
use ticketing_platform::kafka::consumer::{HandleError, Handler};
use ticketing_proto::events::v1::{AuditRecord, Envelope};

use crate::service::audit::AuditLog;

/// Consumer group of identity's audit consumer.
pub const GROUP: &str = "identity.audit";

/// The handler.
pub struct AuditEvents {
    log: AuditLog,
}

impl AuditEvents {
    /// A handler appending to `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

impl Handler for AuditEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandleError> {
        // Another type on the topic is not the log's: skipped (and committed).
        let Some(record) = dispatch(event).on(|r: AuditRecord| r).decoded()? else { return Ok(()) };
        AuditLog::check(&record).map_err(|e| HandleError::Permanent(e.into()))?;
        if let Some(entry) = self.log.append(tx, &record).await.map_err(HandleError::Retryable)? {
            tracing::info!(seq = entry.seq, action = %record.action, target = %record.target_id, "audit entry appended");
        }
        Ok(())
    }
}
