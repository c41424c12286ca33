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

mod charge;
mod reconcile;
mod refunds;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use sqlx::{PgConnection, PgPool};
use ticketing_platform::auth::{Principal, Scope};

pub use charge::ChargeInput;
pub use refunds::{RefundInput, UnknownPayment};

use crate::adapters::store::{self, BookingFact};
use crate::config::PaymentSettings;
use crate::domain::{Payment, PaymentError};
use crate::ports::{Provider, ProviderError};

/// How long a caller whose booking is not known yet should wait before retrying.
pub const BOOKING_RETRY_AFTER: Duration = Duration::from_secs(1);

type Result<T> = std::result::Result<T, PaymentError>;

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
    /// The full name of `audit.events`, for refunds a person asked for.
    audit_topic: String,
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

impl Payments {
    /// Assembles the service: its events go on `topic`, its audit records on `audit_topic`.
    pub fn new(
        pool: PgPool,
        provider: Arc<dyn Provider>,
        settings: PaymentSettings,
        topic: String,
        audit_topic: String,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        let metrics = PaymentMetrics::new(metrics);
        // Series exist from the start, at zero: a dashboard shows "none yet", not "no data".
        for result in ["processed", "duplicate", "refused"] {
            metrics.webhooks.with_label_values(&[provider.name(), result]);
        }
        Self { pool, provider, settings, topic, audit_topic, metrics }
    }

    /// The provider adapter's name.
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
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

    /// Applies a booking event to the projection, inside the consumer's transaction.
    pub async fn apply_booking(&self, tx: &mut PgConnection, fact: &BookingFact) -> anyhow::Result<()> {
        store::apply_booking(tx, fact).await
    }
}
