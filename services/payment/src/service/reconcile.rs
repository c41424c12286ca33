//! Reconciliation: what a provider left open, asked about again and settled.

use std::time::Duration;

use anyhow::Context as _;

use super::{Called, Payments, Result};
use crate::adapters::store::{self, Lease};
use crate::domain::{Outcome, Payment, PaymentStatus, Refund, RefundStatus};

/// Most rows one reconciliation pass claims, per kind.
const RECONCILE_BATCH: i64 = 32;

/// Longest wait between two reconciliation looks at the same row.
const RECONCILE_CAP: Duration = Duration::from_secs(300);

impl Payments {
    fn lease(&self) -> Lease {
        Lease { work: self.settings.longest_call(), base: self.settings.reconcile_interval, cap: RECONCILE_CAP }
    }

    /// One reconciliation pass: asks the provider about due unknown or stale pending
    /// charges and pending refunds, settles what it can, and submits what the provider
    /// never received (under the same key, so nothing happens twice). Safe in every
    /// replica: rows are claimed with `FOR UPDATE SKIP LOCKED` and leased, and settling
    /// is conditional. Returns how many rows it looked at.
    pub async fn reconcile(&self) -> anyhow::Result<usize> {
        let provider = self.provider.name();
        let payments = store::claim_open_payments(&self.pool, provider, RECONCILE_BATCH, self.lease()).await?;
        let refunds = store::claim_pending_refunds(&self.pool, provider, RECONCILE_BATCH, self.lease()).await?;
        let looked = payments.len() + refunds.len();
        let charges = futures::future::join_all(payments.into_iter().map(|p| self.reconcile_payment(p)));
        let refunds = futures::future::join_all(refunds.into_iter().map(|r| self.reconcile_refund(r)));
        let (charges, refunds) = tokio::join!(charges, refunds);
        for (kind, result) in
            charges.into_iter().map(|r| ("charge", r)).chain(refunds.into_iter().map(|r| ("refund", r)))
        {
            let result = result.unwrap_or_else(|e| {
                tracing::warn!(kind, error = format!("{e:#}"), "reconciliation failed; retrying later");
                "error"
            });
            self.metrics.reconciliations.with_label_values(&[self.provider.name(), kind, result]).inc();
        }
        Ok(looked)
    }

    async fn reconcile_payment(&self, payment: Payment) -> Result<&'static str> {
        let key = payment.id.to_string();
        match self.call("find_charge", || self.provider.find_charge(&key)).await {
            Called::Answered(Some(outcome @ (Outcome::Succeeded { .. } | Outcome::Failed { .. }))) => {
                Ok(if self.settle_payment(payment.id, &outcome).await?.is_some() {
                    "settled"
                } else {
                    "already_settled"
                })
            }
            Called::Answered(Some(Outcome::Processing { .. })) => {
                // Accepted, not finished: a stale pending one is unknown now; look again later.
                if payment.status == PaymentStatus::Pending {
                    self.mark_unknown(payment.id).await?;
                }
                Ok("processing")
            }
            Called::Answered(None) => {
                // The provider never received it: submit it under the same key, which
                // cannot charge twice even if the first submission is still in flight.
                let after = self.submit_charge(payment).await?;
                Ok(if after.status.is_open() { "resubmitted" } else { "settled" })
            }
            Called::TimedOut | Called::Exhausted(_) => Ok("unanswered"),
        }
    }

    async fn reconcile_refund(&self, refund: Refund) -> Result<&'static str> {
        let key = refund.id.to_string();
        match self.call("find_refund", || self.provider.find_refund(&key)).await {
            Called::Answered(Some(outcome @ (Outcome::Succeeded { .. } | Outcome::Failed { .. }))) => {
                Ok(if self.settle_refund(refund.id, &outcome).await?.is_some() { "settled" } else { "already_settled" })
            }
            Called::Answered(Some(Outcome::Processing { .. })) => Ok("processing"),
            Called::Answered(None) => {
                // Not submitted yet (asked for by an event) or lost on the way.
                let mut conn = self.pool.acquire().await.context("acquiring")?;
                let payment =
                    store::payment_by_id(&mut conn, refund.payment_id).await?.context("a payment vanished")?;
                drop(conn);
                let (after, _) = self.submit_refund(refund, payment).await?;
                Ok(if after.status == RefundStatus::Pending { "resubmitted" } else { "settled" })
            }
            Called::TimedOut | Called::Exhausted(_) => Ok("unanswered"),
        }
    }
}
