//! Expires due holds and moves their announcements to the outbox. Every replica runs it:
//! each expiry is one atomic script, and spooled announcements carry deterministic ids.

use ticketing_platform::periodic::Job;

use crate::service::Inventory;

/// The reaper of one replica.
pub struct Reaper {
    inventory: Inventory,
}

impl Reaper {
    /// Reaps `inventory`'s holds.
    pub fn new(inventory: Inventory) -> Self {
        Self { inventory }
    }
}

impl Job for Reaper {
    async fn round(&mut self) {
        if let Err(e) = self.inventory.reap().await {
            tracing::warn!(error = format!("{e:#}"), "expiring holds failed");
        }
        if let Err(e) = self.inventory.drain_spool().await {
            tracing::warn!(error = format!("{e:#}"), "announcing ended holds failed");
        }
    }
}
