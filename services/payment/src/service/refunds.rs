//! Refunds: asked for by a caller or by `booking.events`, submitted under their own key,
//! and settled.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use sqlx::PgConnection;
use ticketing_platform::audit::{self, Actor, Target};
use ticketing_platform::kafka::outbox;

use super::{Called, Payments, Result};
use crate::adapters::store::{self, NewRefund, Recorded};
use crate::domain::payment::refund_amount;
use crate::domain::{
    Applied, ChargeAction, Money, Outcome, Payment, PaymentError, PaymentStatus, Refund, RefundStatus,
};
use crate::events::publish;
use crate::ports::RefundAttempt;

/// A Refund request, validated.
#[derive(Debug, Clone)]
pub struct RefundInput {
    /// The payment to refund.
    pub payment_id: uuid::Uuid,
    /// `None` for everything that remains.
    pub amount: Option<Money>,
    /// The refund's request id: the idempotency key or `refund_request_id`.
    pub request_id: String,
    /// Why.
    pub reason: String,
}

/// A refund was asked for a payment payment never made: retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[error("refund requested for unknown payment {0}")]
pub struct UnknownPayment(pub uuid::Uuid);

/// Why a refund asked for by `booking.events` is not recorded as pending.
enum Declined {
    /// The charge is not settled yet; the consumer retries.
    NotYet(PaymentStatus),
    /// Refused for good: recorded as a failed refund and announced.
    Refused { payment: Box<Payment>, amount: Money, code: &'static str, message: String },
}

impl Payments {
    /// Refunds all or part of a payment; returns the refund and its payment as they stand.
    /// Idempotent on `input.request_id`.
    ///
    /// `by` is the person who asked (an admin), whose refund is recorded on `audit.events`
    /// (ADR 0046) with it; `None` for a workload (booking settling a cancellation, which
    /// records the person behind it itself).
    pub async fn refund(&self, input: RefundInput, by: Option<&Actor>) -> Result<(Refund, Payment)> {
        let new = NewRefund {
            id: uuid::Uuid::now_v7(),
            payment_id: input.payment_id,
            request_id: input.request_id,
            reason: input.reason,
            provider: self.provider.name(),
            submit_after: self.settings.pending_timeout,
        };
        // A short transaction: the payment row lock serializes refunds of one payment.
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let recorded =
            store::record_refund(&mut tx, &new, |p, reserved| refund_amount(p, reserved, input.amount.as_ref()))
                .await?
                .ok_or(PaymentError::PaymentNotFound)??;
        let refund = match recorded {
            Recorded::New(refund) => refund,
            // A repeat of an earlier request: its refund as it stands, unless it asks
            // for another amount under the same request id.
            Recorded::Existing(refund) if input.amount.as_ref().is_some_and(|a| *a != refund.amount) => {
                return Err(PaymentError::invalid(
                    "idempotency_key",
                    "was already used for a refund of another amount",
                ));
            }
            Recorded::Existing(refund) => {
                drop(tx);
                return self.current_refund(refund.id).await;
            }
        };
        // Still locked by this transaction: as the refund found it.
        let payment = store::payment_by_id(&mut tx, refund.payment_id).await?.context("a payment vanished")?;
        if let Some(actor) = by {
            let record = actor.record(
                "payment",
                "payment.refunded_by_hand",
                Target::new("payment", payment.id),
                Some(&audited_payment(&payment)),
                &json!({
                    "booking_id": payment.booking_id.to_string(),
                    "refund_id": refund.id.to_string(),
                    "amount": audit::money(&refund.amount),
                    "reason": refund.reason,
                }),
            );
            audit::enqueue(&mut tx, &self.audit_topic, &record).await?;
        }
        tx.commit().await.context("committing a refund")?;
        self.submit_refund(refund, payment).await
    }

    /// Submits a pending refund under its own key and settles what it can.
    pub(super) async fn submit_refund(&self, refund: Refund, payment: Payment) -> Result<(Refund, Payment)> {
        let attempt = RefundAttempt {
            key: refund.id.to_string(),
            refund_id: refund.id,
            payment_id: payment.id,
            charge_reference: payment.provider_reference.clone(),
            amount: refund.amount,
        };
        match self.call("refund", || self.provider.refund(&attempt)).await {
            Called::Answered(outcome @ (Outcome::Succeeded { .. } | Outcome::Failed { .. })) => {
                match self.settle_refund(refund.id, &outcome).await? {
                    Some(settled) => Ok(settled),
                    None => self.current_refund(refund.id).await,
                }
            }
            Called::Answered(Outcome::Processing { .. }) | Called::TimedOut | Called::Exhausted(_) => {
                // Still pending: the reconciler asks the provider shortly.
                store::postpone_refund(&self.pool, refund.id, self.settings.reconcile_interval).await?;
                Ok((refund, payment))
            }
        }
    }

    async fn current_refund(&self, id: uuid::Uuid) -> Result<(Refund, Payment)> {
        let mut conn = self.pool.acquire().await.context("acquiring")?;
        let refund = store::refund_by_id(&mut conn, id).await?.context("a refund vanished")?;
        let payment = store::payment_by_id(&mut conn, refund.payment_id).await?.context("a payment vanished")?;
        Ok((refund, payment))
    }

    /// Settles a pending refund with a final outcome and announces it, in one transaction.
    pub(super) async fn settle_refund(&self, id: uuid::Uuid, outcome: &Outcome) -> Result<Option<(Refund, Payment)>> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let settled = self.settle_refund_in(&mut tx, id, outcome).await?;
        tx.commit().await.context("committing a settled refund")?;
        if let Some((r, _)) = &settled {
            self.metrics.refunds.with_label_values(&[self.provider.name(), r.status.as_str()]).inc();
        }
        Ok(settled)
    }

    pub(super) async fn settle_refund_in(
        &self,
        tx: &mut PgConnection,
        id: uuid::Uuid,
        outcome: &Outcome,
    ) -> anyhow::Result<Option<(Refund, Payment)>> {
        let Some(mut refund) = store::lock_refund(&mut *tx, id).await? else { return Ok(None) };
        if refund.apply(outcome) == Applied::Unchanged {
            return Ok(None);
        }
        let refund = store::save_refund(&mut *tx, &refund).await?;
        let mut payment =
            store::lock_payment(&mut *tx, refund.payment_id).await?.context("a refund's payment vanished")?;
        if refund.status == RefundStatus::Succeeded {
            payment.apply(&ChargeAction::Refunded(refund.amount.minor_units))?;
            payment = store::save_payment(&mut *tx, &payment, None).await?;
        }
        if let Some(event) = publish::refund_event(&refund, &payment) {
            outbox::enqueue(&mut *tx, &self.topic, &event).await?;
        }
        tracing::info!(refund = %refund.id, payment = %payment.id, status = refund.status.as_str(), "refund settled");
        Ok(Some((refund, payment)))
    }

    /// Records a refund that `booking.events` asked for, inside the consumer's
    /// transaction. The reconciler submits it once committed. A request that cannot be
    /// honoured is recorded as a failed refund and announced with RefundFailed; a
    /// repeated `request_id` changes nothing. [`UnknownPayment`] can never succeed; any
    /// other `Err` means retry later.
    pub async fn request_refund(&self, tx: &mut PgConnection, input: RefundInput) -> anyhow::Result<()> {
        let new = NewRefund {
            id: uuid::Uuid::now_v7(),
            payment_id: input.payment_id,
            request_id: input.request_id,
            reason: input.reason,
            provider: self.provider.name(),
            submit_after: Duration::ZERO,
        };
        let asked = input.amount;
        let decided = store::record_refund(&mut *tx, &new, |p, reserved| {
            if p.status.is_open() {
                return Err(Declined::NotYet(p.status));
            }
            refund_amount(p, reserved, asked.as_ref()).map_err(|e| {
                let code = match &e {
                    PaymentError::NotRefundable(_) => "payment_not_refundable",
                    PaymentError::ExceedsRemaining { .. } => "amount_exceeds_remaining",
                    _ => "invalid_refund_request",
                };
                let amount = asked.unwrap_or(p.amount);
                Declined::Refused { payment: Box::new(p.clone()), amount, code, message: e.to_string() }
            })
        })
        .await?;
        match decided {
            None => {
                // Not a payment of ours: nothing to refund, and nobody to ask again.
                Err(UnknownPayment(new.payment_id).into())
            }
            Some(Ok(Recorded::New(refund))) => {
                tracing::info!(refund = %refund.id, payment = %refund.payment_id, "refund requested");
                Ok(())
            }
            Some(Ok(Recorded::Existing(_))) => Ok(()),
            Some(Err(Declined::NotYet(status))) => {
                anyhow::bail!("payment {} is {}; its refund waits", new.payment_id, status.as_str())
            }
            Some(Err(Declined::Refused { payment, amount, code, message })) => {
                tracing::warn!(payment = %payment.id, request = %new.request_id, code, "refund request refused");
                if let Recorded::New(refund) =
                    store::record_failed_refund(&mut *tx, &new, &amount, code, &message).await?
                {
                    if let Some(event) = publish::refund_event(&refund, &payment) {
                        outbox::enqueue(&mut *tx, &self.topic, &event).await?;
                    }
                    self.metrics.refunds.with_label_values(&[self.provider.name(), "failed"]).inc();
                }
                Ok(())
            }
        }
    }
}

/// What the audit log keeps of a payment a person refunds: its booking, what was charged,
/// what was refunded before and where it stood.
fn audited_payment(payment: &Payment) -> serde_json::Value {
    json!({
        "booking_id": payment.booking_id.to_string(),
        "amount": audit::money(&payment.amount),
        "refunded_minor_units": payment.refunded_minor,
        "status": payment.status.as_str(),
    })
}
