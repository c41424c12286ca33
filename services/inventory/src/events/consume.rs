//! Consumes `catalog.events`: published events become stock; later changes adjust
//! the sale window, the per-user limit and the sale state. Idempotent, and tolerant
//! of replays and of changes older than what was already applied.

use sqlx::PgConnection;
use ticketing_platform::kafka::consumer::{HandleError, Handler};
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;

use crate::adapters::ledger;
use crate::adapters::stock::Stock;

/// Consumer group of inventory's catalog consumer.
pub const GROUP: &str = "inventory.catalog-events";

/// The handler.
pub struct CatalogEvents {
    stock: Stock,
}

impl CatalogEvents {
    /// A handler that also refreshes loaded events in `stock`.
    pub fn new(stock: Stock) -> Self {
        Self { stock }
    }
}

fn event_id(id: &str) -> anyhow::Result<uuid::Uuid> {
    Ok(id.parse()?)
}

fn timestamp(t: Option<&prost_types::Timestamp>) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .ok_or_else(|| anyhow::anyhow!("missing or invalid timestamp"))
}

impl CatalogEvents {
    /// Applies one event. `Ok(false)` means it must wait for the event's stock to exist.
    /// Malformed events fail every attempt and so reach the DLQ after the bounded retries.
    async fn apply(&self, tx: &mut PgConnection, event: &Envelope) -> anyhow::Result<bool> {
        use ticketing_platform::events::payload;
        let (id, applied) = match event.r#type.as_str() {
            t if t == <ev::EventPublished as prost::Name>::full_name() => {
                let published: ev::EventPublished = payload(event)?;
                ledger::insert_stock(tx, &published).await?;
                return Ok(true);
            }
            t if t == <ev::EventUpdated as prost::Name>::full_name() => {
                let updated: ev::EventUpdated = payload(event)?;
                let id = event_id(&updated.event_id)?;
                let window = (timestamp(updated.sale_starts_at.as_ref())?, timestamp(updated.sale_ends_at.as_ref())?);
                (id, ledger::update_event(tx, id, window, updated.per_user_limit, updated.version).await?)
            }
            t if t == <ev::EventSaleStarted as prost::Name>::full_name() => {
                let started: ev::EventSaleStarted = payload(event)?;
                let id = event_id(&started.event_id)?;
                (id, ledger::set_state(tx, id, "on_sale", started.version).await?)
            }
            t if t == <ev::EventClosed as prost::Name>::full_name() => {
                let closed: ev::EventClosed = payload(event)?;
                let id = event_id(&closed.event_id)?;
                (id, ledger::set_state(tx, id, "closed", closed.version).await?)
            }
            t if t == <ev::EventCancelled as prost::Name>::full_name() => {
                let cancelled: ev::EventCancelled = payload(event)?;
                let id = event_id(&cancelled.event_id)?;
                (id, ledger::set_state(tx, id, "cancelled", cancelled.version).await?)
            }
            // Other catalog events (venues, drafts) do not concern stock.
            _ => return Ok(true),
        };
        if applied {
            let (state, window, limit) = ledger::event_meta(tx, id).await?;
            self.stock.update_meta(id, &state, window, limit).await?;
        }
        Ok(applied)
    }
}

impl Handler for CatalogEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandleError> {
        match self.apply(tx, event).await {
            Ok(true) => Ok(()),
            // A change overtook its EventPublished; retry until the stock exists.
            Ok(false) => Err(HandleError::Retryable(anyhow::anyhow!("event {} has no stock yet", event.aggregate_id))),
            Err(e) if e.downcast_ref::<ticketing_platform::events::PayloadError>().is_some() => {
                Err(HandleError::Permanent(e))
            }
            Err(e) => Err(HandleError::Retryable(e)),
        }
    }
}
