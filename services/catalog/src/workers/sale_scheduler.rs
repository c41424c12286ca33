//! Starts and closes due sales. Safe in every replica: replicas share the due events
//! (`SKIP LOCKED`).

use ticketing_platform::periodic::Job;

use crate::service::Catalog;

/// The sale scheduler of one replica.
pub struct SaleScheduler {
    catalog: Catalog,
}

impl SaleScheduler {
    /// Moves `catalog`'s events along their sale windows.
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }
}

impl Job for SaleScheduler {
    async fn round(&mut self) {
        match self.catalog.advance_due_sales().await {
            Ok(0) => {}
            Ok(changed) => tracing::info!(changed, "sale scheduler moved events"),
            Err(e) => tracing::warn!(error = %e, "sale scheduler round failed; retrying next round"),
        }
    }
}
