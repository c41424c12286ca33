//! Charges: a pending payment committed, submitted under its own key, and settled.

use anyhow::Context as _;
use sqlx::PgConnection;
use ticketing_platform::kafka::outbox;

use super::{Called, Payments, Result, label};
use crate::adapters::store::{self, NewPayment};
use crate::domain::{Applied, ChargeAction, Money, Outcome, Payment, PaymentError, PaymentStatus};
use crate::events::publish;
use crate::ports::ChargeAttempt;

/// A Charge request, validated.
#[derive(Debug, Clone)]
pub struct ChargeInput {
    /// The booking to pay for.
    pub booking_id: uuid::Uuid,
    /// Must equal the booking's total.
    pub amount: Money,
    /// The provider's card token.
    pub card_token: String,
    /// The call's idempotency key (may be empty).
    pub idempotency_key: String,
}

impl Payments {
    /// Charges `input.amount` for a booking of `user`'s, at most once per booking.
    pub async fn charge(&self, user: uuid::Uuid, input: ChargeInput) -> Result<Payment> {
        let booking = store::booking(&self.pool, input.booking_id).await?.ok_or(PaymentError::BookingUnknown)?;
        booking.check_chargeable(user, &input.amount, chrono::Utc::now())?;
        let new = NewPayment {
            id: uuid::Uuid::now_v7(),
            booking_id: input.booking_id,
            user_id: user,
            amount: input.amount,
            provider: self.provider.name(),
            card_token: input.card_token,
            idempotency_key: input.idempotency_key.clone(),
            pending_timeout: self.settings.pending_timeout,
        };
        let Some(payment) = store::insert_payment(&self.pool, &new).await? else {
            return match store::live_payment(&self.pool, input.booking_id).await? {
                // The same call retried after its first attempt lost track (a replica
                // died, or its key was taken over): the answer is that payment.
                Some(p) if !input.idempotency_key.is_empty() && p.idempotency_key == input.idempotency_key => Ok(p),
                Some(p) => Err(PaymentError::AlreadyCharged { payment_id: p.id, status: p.status.as_str() }),
                // It failed between our insert and this read: a retry may charge.
                None => Err(PaymentError::Unavailable(anyhow::anyhow!("the booking's payment changed; retry"))),
            };
        };
        self.submit_charge(payment).await
    }

    /// Submits a pending (or stale) payment under its own key and settles what it can.
    pub(super) async fn submit_charge(&self, payment: Payment) -> Result<Payment> {
        let attempt = ChargeAttempt {
            key: payment.id.to_string(),
            payment_id: payment.id,
            booking_id: payment.booking_id,
            amount: payment.amount,
            card_token: payment.card_token.clone(),
        };
        let called = self.call("charge", || self.provider.charge(&attempt)).await;
        let outcome = match called {
            Called::Answered(outcome @ (Outcome::Succeeded { .. } | Outcome::Failed { .. })) => outcome,
            Called::Answered(Outcome::Processing { .. }) | Called::TimedOut | Called::Exhausted(_) => {
                if let Called::Exhausted(e) = &called {
                    tracing::warn!(payment = %payment.id, error = %e, "provider errors outlasted the retries");
                }
                let (marked, applied) = self.mark_unknown(payment.id).await?;
                if applied != Applied::Unchanged {
                    self.metrics.charges.with_label_values(&[self.provider.name(), "unknown"]).inc();
                }
                return Ok(marked);
            }
        };
        match self.settle_payment(payment.id, &outcome).await? {
            Some(settled) => Ok(settled),
            // Settled meanwhile by a webhook or the reconciler: that is the answer.
            None => Ok(store::payment_by_id(&mut *self.pool.acquire().await.context("acquiring")?, payment.id)
                .await?
                .context("a payment vanished")?),
        }
    }

    /// Settles an open payment with a final outcome and announces it, in one transaction.
    /// `None` when it was settled already.
    pub(super) async fn settle_payment(&self, id: uuid::Uuid, outcome: &Outcome) -> Result<Option<Payment>> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let settled = self.settle_payment_in(&mut tx, id, outcome).await?;
        tx.commit().await.context("committing a settled payment")?;
        if let Some(p) = &settled {
            self.count_charge(p);
        }
        Ok(settled)
    }

    pub(super) async fn settle_payment_in(
        &self,
        tx: &mut PgConnection,
        id: uuid::Uuid,
        outcome: &Outcome,
    ) -> anyhow::Result<Option<Payment>> {
        let Some(mut payment) = store::lock_payment(&mut *tx, id).await? else { return Ok(None) };
        if payment.apply(&ChargeAction::Answered(outcome.clone()))? == Applied::Unchanged {
            return Ok(None);
        }
        let settled = store::save_payment(&mut *tx, &payment, None).await?;
        if let Some(event) = publish::payment_event(&settled) {
            outbox::enqueue(&mut *tx, &self.topic, &event).await?;
        }
        tracing::info!(payment = %settled.id, booking = %settled.booking_id, status = settled.status.as_str(), "payment settled");
        Ok(Some(settled))
    }

    /// Marks a pending payment UNKNOWN (the provider left it open), for the reconciler to
    /// look at after `payment.reconcile_interval`. Returns the payment as it now stands.
    pub(super) async fn mark_unknown(&self, id: uuid::Uuid) -> Result<(Payment, Applied<PaymentStatus>)> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let mut payment = store::lock_payment(&mut tx, id).await?.context("a payment vanished")?;
        let applied = payment.apply(&ChargeAction::Unanswered)?;
        if applied != Applied::Unchanged {
            payment = store::save_payment(&mut tx, &payment, Some(self.settings.reconcile_interval)).await?;
        }
        tx.commit().await.context("committing an unknown payment")?;
        Ok((payment, applied))
    }

    pub(super) fn count_charge(&self, p: &Payment) {
        let provider = self.provider.name();
        self.metrics.charges.with_label_values(&[provider, p.status.as_str()]).inc();
        if p.status == PaymentStatus::Failed {
            self.metrics.charge_failures.with_label_values(&[provider, &label(&p.failure_code)]).inc();
        }
    }
}
