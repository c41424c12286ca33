//! Payment's use cases: charge, read, refund, webhooks, and the reconciliation that
//! settles what a provider left open.
//!
//! The rules that keep a booking from being charged twice:
//! 1. a pending payment row is committed *before* the provider is called, and a
//!    partial unique index allows one live (pending, unknown, succeeded or refunded)
//!    payment per booking;
//! 2. the provider gets the payment id as its idempotency key, on every attempt and
//!    every resubmission, so it charges at most once per payment;
//! 3. a call that times out leaves the payment UNKNOWN: only the provider's own record
//!    (a lookup by key, or a webhook) settles it;
//! 4. every state change is the domain's (`Payment::apply`, `Refund::apply`) on a row
//!    locked in the transaction that commits its event, so whoever settles a payment
//!    first (the call, the reconciler in any replica, a webhook) publishes, and nobody
//!    else does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use sqlx::{PgConnection, PgPool};
use ticketing_platform::auth::{Principal, Scope};
use ticketing_platform::events::envelope_with_id;
use ticketing_platform::kafka::outbox;
use ticketing_proto::common::v1 as common;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;

use crate::adapters::store::{self, BookingFact, Lease, NewPayment, NewRefund, Recorded};
use crate::config::PaymentSettings;
use crate::domain::payment::refund_amount;
use crate::domain::{
    Applied, ChargeAction, Money, Outcome, Payment, PaymentError, PaymentStatus, Refund, RefundStatus,
};
use crate::ports::{ChargeAttempt, Provider, ProviderError, RefundAttempt, WebhookError, WebhookSubject};

/// Base name of the topic payment publishes on.
pub const TOPIC: &str = "payment.events";

/// Namespace of the deterministic event ids: one event per fact, however often it is
/// (re)announced.
const EVENT_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5d1f_0a8e_7c2b_4e61_9b0a_3f6e_2c8d_a002);

/// Most rows one reconciliation pass claims, per kind.
const RECONCILE_BATCH: i64 = 32;

/// Longest wait between two reconciliation looks at the same row.
const RECONCILE_CAP: Duration = Duration::from_secs(300);

/// How long a caller whose booking is not known yet should wait before retrying.
pub const BOOKING_RETRY_AFTER: Duration = Duration::from_secs(1);

type Result<T> = std::result::Result<T, PaymentError>;

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

/// How GetPayment finds a payment.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    /// By its id.
    Payment(uuid::Uuid),
    /// The booking's latest.
    Booking(uuid::Uuid),
}

/// What a provider call came to, retries included.
enum Called<T> {
    /// The provider answered.
    Answered(T),
    /// No answer within the client deadline: the outcome is unknown.
    TimedOut,
    /// Retryable errors until the retries ran out: the outcome is unknown too.
    Exhausted(ProviderError),
}

/// The payment service's state and use cases.
#[derive(Clone)]
pub struct Payments {
    pool: PgPool,
    provider: Arc<dyn Provider>,
    settings: PaymentSettings,
    topic: String,
    metrics: PaymentMetrics,
}

/// Payment's own metrics.
#[derive(Clone)]
struct PaymentMetrics {
    charges: IntCounterVec,
    charge_failures: IntCounterVec,
    refunds: IntCounterVec,
    reconciliations: IntCounterVec,
    webhooks: IntCounterVec,
    provider_calls: HistogramVec,
}

impl PaymentMetrics {
    fn new(metrics: &ticketing_platform::metrics::Metrics) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            metrics.register(&IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition"))
        };
        Self {
            charges: counter(
                "payment_charges_total",
                "Charges by provider and the state they reached: succeeded, failed or unknown.",
                &["provider", "result"],
            ),
            charge_failures: counter(
                "payment_charge_failures_total",
                "Failed charges by provider and failure code.",
                &["provider", "code"],
            ),
            refunds: counter(
                "payment_refunds_total",
                "Refunds by provider and the state they reached: succeeded, failed or pending.",
                &["provider", "result"],
            ),
            reconciliations: counter(
                "payment_reconciliations_total",
                "Reconciliation looks at open charges and refunds, by provider, kind and result.",
                &["provider", "kind", "result"],
            ),
            webhooks: counter(
                "payment_webhooks_total",
                "Provider webhooks by provider and result: processed, duplicate or refused.",
                &["provider", "result"],
            ),
            provider_calls: metrics.register(
                &HistogramVec::new(
                    HistogramOpts::new(
                        "payment_provider_request_duration_seconds",
                        "Provider calls by provider, operation and result: ok, error or timeout.",
                    )
                    .buckets(ticketing_platform::metrics::LATENCY_BUCKETS.to_vec()),
                    &["provider", "operation", "result"],
                )
                .expect("static metric definition"),
            ),
        }
    }
}

/// A failure code safe to use as a label value: bounded length, `[a-z0-9_]`.
fn label(code: &str) -> String {
    let code: String =
        code.chars().take(40).map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if code.is_empty() { "unspecified".into() } else { code }
}

fn money(m: &Money) -> Option<common::Money> {
    Some(common::Money { currency: m.currency.clone(), minor_units: m.minor_units })
}

fn event_id(subject: uuid::Uuid, fact: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&EVENT_NAMESPACE, format!("{subject}/{fact}").as_bytes())
}

/// The event announcing a settled payment.
fn payment_event(p: &Payment) -> Option<Envelope> {
    let aggregate = p.booking_id.to_string();
    match p.status {
        PaymentStatus::Succeeded => Some(envelope_with_id(
            event_id(p.id, "succeeded"),
            aggregate,
            &ev::PaymentSucceeded {
                payment_id: p.id.to_string(),
                booking_id: p.booking_id.to_string(),
                user_id: p.user_id.to_string(),
                amount: money(&p.amount),
                provider: p.provider.clone(),
                provider_reference: p.provider_reference.clone(),
            },
        )),
        PaymentStatus::Failed => Some(envelope_with_id(
            event_id(p.id, "failed"),
            aggregate,
            &ev::PaymentFailed {
                payment_id: p.id.to_string(),
                booking_id: p.booking_id.to_string(),
                user_id: p.user_id.to_string(),
                amount: money(&p.amount),
                provider: p.provider.clone(),
                provider_reference: p.provider_reference.clone(),
                failure_code: p.failure_code.clone(),
                failure_message: p.failure_message.clone(),
            },
        )),
        _ => None,
    }
}

/// The event announcing a settled refund.
fn refund_event(r: &Refund, p: &Payment) -> Option<Envelope> {
    let aggregate = p.booking_id.to_string();
    match r.status {
        RefundStatus::Succeeded => Some(envelope_with_id(
            event_id(r.id, "succeeded"),
            aggregate,
            &ev::RefundSucceeded {
                refund_id: r.id.to_string(),
                payment_id: p.id.to_string(),
                booking_id: p.booking_id.to_string(),
                user_id: p.user_id.to_string(),
                amount: money(&r.amount),
                provider: r.provider.clone(),
                provider_reference: r.provider_reference.clone(),
                refund_request_id: r.request_id.clone(),
                fully_refunded: p.status == PaymentStatus::Refunded,
            },
        )),
        RefundStatus::Failed => Some(envelope_with_id(
            event_id(r.id, "failed"),
            aggregate,
            &ev::RefundFailed {
                refund_id: r.id.to_string(),
                payment_id: p.id.to_string(),
                booking_id: p.booking_id.to_string(),
                user_id: p.user_id.to_string(),
                amount: money(&r.amount),
                provider: r.provider.clone(),
                provider_reference: r.provider_reference.clone(),
                refund_request_id: r.request_id.clone(),
                failure_code: r.failure_code.clone(),
                failure_message: r.failure_message.clone(),
            },
        )),
        RefundStatus::Pending => None,
    }
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
    /// Assembles the service.
    pub fn new(
        pool: PgPool,
        provider: Arc<dyn Provider>,
        settings: PaymentSettings,
        topic: String,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        let metrics = PaymentMetrics::new(metrics);
        // Series exist from the start, at zero: a dashboard shows "none yet", not "no data".
        for result in ["processed", "duplicate", "refused"] {
            metrics.webhooks.with_label_values(&[provider.name(), result]);
        }
        Self { pool, provider, settings, topic, metrics }
    }

    /// The provider adapter's name.
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    // ---- charge -------------------------------------------------------------------

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
    async fn submit_charge(&self, payment: Payment) -> Result<Payment> {
        let attempt = ChargeAttempt {
            key: payment.id.to_string(),
            payment_id: payment.id,
            booking_id: payment.booking_id,
            amount: payment.amount.clone(),
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

    /// Calls the provider with the client deadline, retrying retryable errors with backoff.
    /// A timeout is never retried: whether it charged is for reconciliation to find out.
    async fn call<T, F, Fut>(&self, operation: &'static str, f: F) -> Called<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, ProviderError>>,
    {
        let mut retry = 0;
        loop {
            let started = Instant::now();
            let result = tokio::time::timeout(self.settings.client_deadline, f()).await;
            let observe = |result: &str| {
                self.metrics
                    .provider_calls
                    .with_label_values(&[self.provider.name(), operation, result])
                    .observe(started.elapsed().as_secs_f64());
            };
            match result {
                Ok(Ok(outcome)) => {
                    observe("ok");
                    return Called::Answered(outcome);
                }
                Err(_) => {
                    observe("timeout");
                    return Called::TimedOut;
                }
                Ok(Err(e)) if e.code == "timeout" => {
                    observe("timeout");
                    return Called::TimedOut;
                }
                Ok(Err(e)) if retry >= self.settings.retries => {
                    observe("error");
                    return Called::Exhausted(e);
                }
                Ok(Err(e)) => {
                    observe("error");
                    tracing::info!(operation, retry, error = %e, "provider error; retrying under the same key");
                    tokio::time::sleep(self.settings.backoff(retry)).await;
                    retry += 1;
                }
            }
        }
    }

    /// Settles an open payment with a final outcome and announces it, in one transaction.
    /// `None` when it was settled already.
    async fn settle_payment(&self, id: uuid::Uuid, outcome: &Outcome) -> Result<Option<Payment>> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let settled = self.settle_payment_in(&mut tx, id, outcome).await?;
        tx.commit().await.context("committing a settled payment")?;
        if let Some(p) = &settled {
            self.count_charge(p);
        }
        Ok(settled)
    }

    async fn settle_payment_in(
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
        if let Some(event) = payment_event(&settled) {
            outbox::enqueue(&mut *tx, &self.topic, &event).await?;
        }
        tracing::info!(payment = %settled.id, booking = %settled.booking_id, status = settled.status.as_str(), "payment settled");
        Ok(Some(settled))
    }

    /// Marks a pending payment UNKNOWN (the provider left it open), for the reconciler to
    /// look at after `payment.reconcile_interval`. Returns the payment as it now stands.
    async fn mark_unknown(&self, id: uuid::Uuid) -> Result<(Payment, Applied<PaymentStatus>)> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let mut payment = store::lock_payment(&mut tx, id).await?.context("a payment vanished")?;
        let applied = payment.apply(&ChargeAction::Unanswered)?;
        if applied != Applied::Unchanged {
            payment = store::save_payment(&mut tx, &payment, Some(self.settings.reconcile_interval)).await?;
        }
        tx.commit().await.context("committing an unknown payment")?;
        Ok((payment, applied))
    }

    fn count_charge(&self, p: &Payment) {
        let provider = self.provider.name();
        self.metrics.charges.with_label_values(&[provider, p.status.as_str()]).inc();
        if p.status == PaymentStatus::Failed {
            self.metrics.charge_failures.with_label_values(&[provider, &label(&p.failure_code)]).inc();
        }
    }

    // ---- read ---------------------------------------------------------------------

    /// A payment, for its payer, the booking service or an admin. Others learn nothing,
    /// not even that it exists.
    pub async fn get(&self, caller: &Principal, lookup: Lookup) -> Result<Payment> {
        let payment = match lookup {
            Lookup::Payment(id) => {
                store::payment_by_id(&mut *self.pool.acquire().await.context("acquiring")?, id).await?
            }
            Lookup::Booking(id) => store::latest_payment(&self.pool, id).await?,
        };
        let privileged = caller.may(Scope::PaymentRead);
        match payment {
            Some(p) if privileged || p.user_id == caller.user_id => Ok(p),
            _ => Err(PaymentError::PaymentNotFound),
        }
    }

    // ---- refund -------------------------------------------------------------------

    /// Refunds all or part of a payment; returns the refund and its payment as they stand.
    /// Idempotent on `input.request_id`.
    pub async fn refund(&self, input: RefundInput) -> Result<(Refund, Payment)> {
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
        tx.commit().await.context("committing a refund")?;
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
            Recorded::Existing(refund) => return self.current_refund(refund.id).await,
        };
        let mut conn = self.pool.acquire().await.context("acquiring")?;
        let payment = store::payment_by_id(&mut conn, refund.payment_id).await?.context("a payment vanished")?;
        drop(conn);
        self.submit_refund(refund, payment).await
    }

    /// Submits a pending refund under its own key and settles what it can.
    async fn submit_refund(&self, refund: Refund, payment: Payment) -> Result<(Refund, Payment)> {
        let attempt = RefundAttempt {
            key: refund.id.to_string(),
            refund_id: refund.id,
            payment_id: payment.id,
            charge_reference: payment.provider_reference.clone(),
            amount: refund.amount.clone(),
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
    async fn settle_refund(&self, id: uuid::Uuid, outcome: &Outcome) -> Result<Option<(Refund, Payment)>> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let settled = self.settle_refund_in(&mut tx, id, outcome).await?;
        tx.commit().await.context("committing a settled refund")?;
        if let Some((r, _)) = &settled {
            self.metrics.refunds.with_label_values(&[self.provider.name(), r.status.as_str()]).inc();
        }
        Ok(settled)
    }

    async fn settle_refund_in(
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
        if let Some(event) = refund_event(&refund, &payment) {
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
                let amount = asked.clone().unwrap_or_else(|| p.amount.clone());
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
                    if let Some(event) = refund_event(&refund, &payment) {
                        outbox::enqueue(&mut *tx, &self.topic, &event).await?;
                    }
                    self.metrics.refunds.with_label_values(&[self.provider.name(), "failed"]).inc();
                }
                Ok(())
            }
        }
    }

    /// Applies a booking event to the projection, inside the consumer's transaction.
    pub async fn apply_booking(&self, tx: &mut PgConnection, fact: &BookingFact) -> anyhow::Result<()> {
        store::apply_booking(tx, fact).await
    }

    // ---- webhooks -----------------------------------------------------------------

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

    // ---- reconciliation -------------------------------------------------------------

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
