//! The audit log's use cases (ADR 0046): appending the records every service publishes on
//! `audit.events`, querying them, verifying the chain and applying the retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use ticketing_proto::events::v1::AuditRecord;

use crate::adapters::audit::{self as store, Verification};
use crate::domain::IdentityError;
use crate::domain::audit::{Entry, Fields, Query, RawQuery, cursor, to_micros};

/// Why a record cannot be kept: it will never be, so its message goes to the dead letters.
#[derive(Debug, thiserror::Error)]
#[error("malformed audit record: {0}")]
pub struct Malformed(String);

/// The audit log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    pool: PgPool,
    retention: Duration,
}

impl AuditLog {
    /// The log in `pool`, keeping entries `retention` long.
    pub fn new(pool: PgPool, retention: Duration) -> Self {
        Self { pool, retention }
    }

    /// Appends `record` in the caller's transaction; a record already in the log is not
    /// appended again. Returns the entry appended.
    pub async fn append(&self, tx: &mut PgConnection, record: &AuditRecord) -> anyhow::Result<Option<Entry>> {
        let fields = fields(record).map_err(anyhow::Error::new)?;
        store::append(tx, fields).await
    }

    /// Checks `record` can be kept, before any work is done for it.
    pub fn check(record: &AuditRecord) -> Result<(), Malformed> {
        fields(record).map(drop)
    }

    /// One page of entries matching `raw`, newest first, and the next page's cursor.
    pub async fn entries(&self, raw: &RawQuery<'_>) -> Result<(Vec<Entry>, Option<String>), IdentityError> {
        let query: Query = raw.validate().map_err(IdentityError::Invalid)?;
        let mut entries = store::list(&self.pool, &query).await?;
        let next = ticketing_platform::page::next_cursor(&mut entries, query.limit, |e| cursor(e.seq));
        Ok((entries, next))
    }

    /// Walks the chain and reports the first entry that does not chain.
    pub async fn verify(&self) -> Result<Verification, IdentityError> {
        let verification = store::verify(&self.pool).await?;
        if let Some((seq, reason)) = &verification.broken {
            tracing::error!(seq, %reason, "the audit log's hash chain is broken");
        }
        Ok(verification)
    }

    /// Removes the entries older than the retention; returns how many went.
    pub async fn apply_retention(&self) -> anyhow::Result<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(self.retention)?;
        let removed = store::retain(&self.pool, cutoff).await?;
        if removed > 0 {
            tracing::info!(removed, %cutoff, "audit entries past their retention removed");
        }
        Ok(removed)
    }
}

/// The entry fields of `record`, recorded now.
fn fields(record: &AuditRecord) -> Result<Fields, Malformed> {
    let uuid = |what: &str, raw: &str| uuid::Uuid::parse_str(raw).map_err(|_| Malformed(format!("{what} {raw:?}")));
    let occurred_at = record
        .occurred_at
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .ok_or_else(|| Malformed("no occurred_at".into()))?;
    if record.action.is_empty() || record.target_type.is_empty() {
        return Err(Malformed("no action or target type".into()));
    }
    Ok(Fields {
        id: uuid("id", &record.id)?,
        occurred_at: to_micros(occurred_at),
        recorded_at: to_micros(Utc::now()),
        service: record.service.clone(),
        actor_id: uuid("actor_id", &record.actor_id)?,
        actor_roles: record.actor_roles.clone(),
        action: record.action.clone(),
        target_type: record.target_type.clone(),
        target_id: record.target_id.clone(),
        client_address: record.client_address.clone(),
        user_agent: record.user_agent.clone(),
        peer_address: record.peer_address.clone(),
        before: record.before.clone(),
        after: record.after.clone(),
        trace_id: record.trace_id.clone(),
    })
}
