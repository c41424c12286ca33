//! Consumes `catalog.events`: published events become stock; later changes adjust
//! the sale window, the per-user limit and the sale state. Idempotent, and tolerant
//! of replays and of changes older than what was already applied.

use sqlx::PgConnection;
use ticketing_platform::events::dispatch;
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
    t.and_then(ticketing_kernel::time::from_proto).ok_or_else(|| anyhow::anyhow!("missing or invalid timestamp"))
}

/// The catalog events that concern stock.
enum Incoming {
    Published(ev::EventPublished),
    Updated(ev::EventUpdated),
    SaleStarted(ev::EventSaleStarted),
    Closed(ev::EventClosed),
    Cancelled(ev::EventCancelled),
}

impl CatalogEvents {
    /// Applies one event. `Ok(false)` means it must wait for the event's stock to exist.
    /// Malformed events fail every attempt and so reach the DLQ after the bounded retries.
    async fn apply(&self, tx: &mut PgConnection, incoming: Incoming) -> anyhow::Result<bool> {
        let (id, applied) = match incoming {
            Incoming::Published(published) => {
                ledger::insert_stock(tx, &published).await?;
                return Ok(true);
            }
            Incoming::Updated(updated) => {
                let id = event_id(&updated.event_id)?;
                let window = (timestamp(updated.sale_starts_at.as_ref())?, timestamp(updated.sale_ends_at.as_ref())?);
                (id, ledger::update_event(tx, id, window, updated.per_user_limit, updated.version).await?)
            }
            Incoming::SaleStarted(started) => {
                let id = event_id(&started.event_id)?;
                (id, ledger::set_state(tx, id, "on_sale", started.version).await?)
            }
            Incoming::Closed(closed) => {
                let id = event_id(&closed.event_id)?;
                (id, ledger::set_state(tx, id, "closed", closed.version).await?)
            }
            Incoming::Cancelled(cancelled) => {
                let id = event_id(&cancelled.event_id)?;
                (id, ledger::set_state(tx, id, "cancelled", cancelled.version).await?)
            }
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
        let incoming = dispatch(event)
            .on(Incoming::Published)
            .on(Incoming::Updated)
            .on(Incoming::SaleStarted)
            .on(Incoming::Closed)
            .on(Incoming::Cancelled)
            .decoded()?;
        // Other catalog events (venues, drafts) do not concern stock.
        let Some(incoming) = incoming else { return Ok(()) };
        match self.apply(tx, incoming).await {
            Ok(true) => Ok(()),
            // A change overtook its EventPublished; retry until the stock exists.
            Ok(false) => Err(HandleError::Retryable(anyhow::anyhow!("event {} has no stock yet", event.aggregate_id))),
            Err(e) => Err(HandleError::Retryable(e)),
        }
    }
}
