//! Provider webhooks: authenticated, and processed once per provider event id.

use anyhow::Context as _;

use super::{Payments, Result};
use crate::adapters::store;
use crate::domain::PaymentError;
use crate::ports::{WebhookError, WebhookSubject};

impl Payments {
    /// Processes a provider webhook once per provider event id. Returns the event id and
    /// whether it had been processed before.
    pub async fn handle_webhook(&self, provider: &str, body: &[u8], signature: &str) -> Result<(String, bool)> {
        let name = self.provider.name();
        if provider != name {
            return Err(PaymentError::invalid("provider", format!("must be \"{name}\"")));
        }
        let event = self.provider.webhook(body, signature).map_err(|e| {
            self.metrics.webhooks.with_label_values(&[name, "refused"]).inc();
            match e {
                WebhookError::BadSignature => PaymentError::BadSignature("bad signature"),
                WebhookError::Stale => PaymentError::BadSignature("timestamp outside the tolerance"),
                WebhookError::Malformed(m) => PaymentError::invalid("body", m),
                WebhookError::Unsupported => PaymentError::invalid("provider", format!("{name} sends no webhooks")),
            }
        })?;
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        if !store::record_webhook(&mut tx, name, &event.id, &event.kind).await? {
            self.metrics.webhooks.with_label_values(&[name, "duplicate"]).inc();
            return Ok((event.id, true));
        }
        let (mut charge, mut refund) = (None, None);
        match &event.subject {
            WebhookSubject::Charge { payment_id, outcome } => {
                charge = self.settle_payment_in(&mut tx, *payment_id, outcome).await?;
            }
            WebhookSubject::Refund { refund_id, outcome } => {
                refund = self.settle_refund_in(&mut tx, *refund_id, outcome).await?;
            }
            WebhookSubject::Ignored => {}
        }
        tx.commit().await.context("committing a webhook")?;
        if let Some(p) = &charge {
            self.count_charge(p);
        }
        if let Some((r, _)) = &refund {
            self.metrics.refunds.with_label_values(&[name, r.status.as_str()]).inc();
        }
        self.metrics.webhooks.with_label_values(&[name, "processed"]).inc();
        tracing::info!(event = %event.id, kind = %event.kind, "webhook processed");
        Ok((event.id, false))
    }
}
