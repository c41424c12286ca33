//! What the use cases need from a payment provider.
//!
//! Every call carries the provider idempotency key: the payment id for a charge, the
//! refund id for a refund. A provider dedupes on it, so resubmitting under the same key
//! never charges (or refunds) twice; that is what makes retries and reconciliation safe.

use crate::domain::{Money, Outcome};

/// A charge to submit.
#[derive(Debug, Clone)]
pub struct ChargeAttempt {
    /// The provider idempotency key (the payment id).
    pub key: String,
    /// The payment.
    pub payment_id: uuid::Uuid,
    /// The booking paid for.
    pub booking_id: uuid::Uuid,
    /// How much.
    pub amount: Money,
    /// The provider's card token.
    pub card_token: String,
}

/// A refund to submit.
#[derive(Debug, Clone)]
pub struct RefundAttempt {
    /// The provider idempotency key (the refund id).
    pub key: String,
    /// The refund.
    pub refund_id: uuid::Uuid,
    /// The payment refunded.
    pub payment_id: uuid::Uuid,
    /// The provider's id of the charge refunded.
    pub charge_reference: String,
    /// How much.
    pub amount: Money,
}

/// A provider call that did not produce an answer but may be retried under the same key.
/// Whether the provider acted is unknown.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    /// Machine-readable, e.g. `processor_error`, `rate_limited`, `connection`.
    pub code: String,
    /// For humans and logs.
    pub message: String,
}

impl ProviderError {
    /// An error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// A webhook event, authenticated and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The provider's event id; each is processed once.
    pub id: String,
    /// The event type, e.g. `charge.succeeded`.
    pub kind: String,
    /// What it says.
    pub subject: WebhookSubject,
}

/// What a webhook event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSubject {
    /// A charge reached an outcome.
    Charge {
        /// Our payment (from the charge's metadata).
        payment_id: uuid::Uuid,
        /// The outcome.
        outcome: Outcome,
    },
    /// A refund reached an outcome.
    Refund {
        /// Our refund (from the refund's metadata).
        refund_id: uuid::Uuid,
        /// The outcome.
        outcome: Outcome,
    },
    /// An event payment does not act on; acknowledged and recorded.
    Ignored,
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature header is missing, malformed or does not match.
    #[error("bad signature")]
    BadSignature,
    /// The signed timestamp is outside the tolerance.
    #[error("timestamp outside the tolerance")]
    Stale,
    /// The body is signed but not a webhook event payment understands.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// This provider sends no webhooks.
    #[error("this provider sends no webhooks")]
    Unsupported,
}

/// A payment provider.
#[tonic::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The adapter's name, recorded on payments and in metrics.
    fn name(&self) -> &'static str;

    /// Charges a card, at most once per `attempt.key`: a repeat returns the first result.
    async fn charge(&self, attempt: &ChargeAttempt) -> Result<Outcome, ProviderError>;

    /// The charge made under `key`, if the provider has one.
    async fn find_charge(&self, key: &str) -> Result<Option<Outcome>, ProviderError>;

    /// Refunds (part of) a charge, at most once per `attempt.key`.
    async fn refund(&self, attempt: &RefundAttempt) -> Result<Outcome, ProviderError>;

    /// The refund made under `key`, if the provider has one.
    async fn find_refund(&self, key: &str) -> Result<Option<Outcome>, ProviderError>;

    /// Authenticates and parses a webhook request.
    fn webhook(&self, body: &[u8], signature: &str) -> Result<WebhookEvent, WebhookError> {
        let _ = (body, signature);
        Err(WebhookError::Unsupported)
    }
}
