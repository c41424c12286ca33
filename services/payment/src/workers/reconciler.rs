//! Settles unknown charges and pending refunds by asking the provider. Every replica runs it.

use ticketing_platform::periodic::Job;
use tokio_util::sync::CancellationToken;

use crate::service::Payments;

/// The reconciler of one replica.
pub struct Reconciler {
    payments: Payments,
    stop: CancellationToken,
}

impl Reconciler {
    /// Reconciles `payments`; a round stops between passes once `stop` is cancelled.
    pub fn new(payments: Payments, stop: CancellationToken) -> Self {
        Self { payments, stop }
    }
}

impl Job for Reconciler {
    async fn round(&mut self) {
        // Claimed rows are leased, so passes go on until nothing is due. A pass cut short
        // by shutdown is safe: its leases lapse and settling is conditional.
        loop {
            let pass = tokio::select! {
                () = self.stop.cancelled() => return,
                pass = self.payments.reconcile() => pass,
            };
            match pass {
                Ok(n) if n > 0 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "reconciliation pass failed");
                    break;
                }
            }
        }
    }
}
