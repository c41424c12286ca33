//! The catalog's use cases. Every write runs in one transaction that locks what it changes
//! (the venue for an import, the event for anything about an event or its categories) and,
//! when other services must hear of the change, writes its Kafka event to the outbox.

mod categories;
mod events;
mod venues;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use ticketing_platform::audit::{self, Target};

use crate::adapters::time_zones::TimeZones;
use crate::domain::access::Caller;
use crate::domain::{CatalogError, text};

type Result<T> = std::result::Result<T, CatalogError>;

/// The catalog's state and use cases. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    pool: PgPool,
    topic: String,
    audit_topic: String,
    zones: TimeZones,
}

impl Catalog {
    /// The catalog over `pool`, publishing on `topic` (the full name of `catalog.events`) and
    /// its audit records on `audit_topic` (that of `audit.events`).
    pub fn new(pool: PgPool, topic: String, audit_topic: String) -> Self {
        Self { zones: TimeZones::new(pool.clone()), pool, topic, audit_topic }
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await.map_err(anyhow::Error::from)?)
    }

    /// Refuses a well-formed but unknown zone such as `Europe/Berln`.
    async fn check_time_zone(&self, field: &'static str, name: &str) -> Result<()> {
        if self.zones.contains(name).await? {
            Ok(())
        } else {
            Err(CatalogError::invalid(field, format!("{name:?} is not a known IANA time zone")))
        }
    }

    /// Writes `message` about the event `event_id` to the outbox, in the caller's transaction.
    async fn announce<M: prost::Message + prost::Name>(
        &self,
        conn: &mut PgConnection,
        event_id: Uuid,
        message: &M,
    ) -> Result<()> {
        let envelope = ticketing_platform::events::envelope(event_id.to_string(), message);
        ticketing_platform::kafka::outbox::enqueue(conn, &self.topic, &envelope).await?;
        Ok(())
    }

    /// Records `action` by `caller` on `target` in the audit log, in the caller's transaction,
    /// with the target's state before (none for a creation) and after.
    async fn audit(
        &self,
        conn: &mut PgConnection,
        caller: &Caller,
        action: &str,
        target: Target<'_>,
        before: Option<serde_json::Value>,
        after: serde_json::Value,
    ) -> Result<()> {
        let record = caller.actor()?.record("catalog", action, target, before.as_ref(), &after);
        audit::enqueue(conn, &self.audit_topic, &record).await?;
        Ok(())
    }
}

async fn commit(tx: Transaction<'static, Postgres>) -> Result<()> {
    Ok(tx.commit().await.map_err(anyhow::Error::from)?)
}

fn parse_id(field: &'static str, raw: &str) -> Result<Uuid> {
    text::id(raw).map_err(|e| CatalogError::invalid(field, e))
}
