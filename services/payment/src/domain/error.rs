//! The errors payment's use cases return; `grpc::convert` maps each to a status once.

use ticketing_platform::status::FieldViolation;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Input broke the rules; every bad field is listed.
    #[error("invalid request: {}", ticketing_platform::status::describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// `booking.events` has not told payment about the booking yet; retry shortly.
    #[error("the booking is not known yet; retry with the same idempotency key")]
    BookingUnknown,
    /// The booking cannot be paid (no longer pending payment, or expired).
    #[error("the booking cannot be paid: {0}")]
    BookingNotPayable(String),
    /// The booking already has a charge that is pending, unknown or succeeded.
    #[error("the booking already has a {status} payment {payment_id}")]
    AlreadyCharged {
        /// That payment.
        payment_id: uuid::Uuid,
        /// Its state.
        status: &'static str,
    },
    /// Only the booking's buyer may pay for it.
    #[error("only the booking's buyer may pay for it")]
    NotOwner,
    /// No such payment.
    #[error("payment not found")]
    PaymentNotFound,
    /// The caller may not see or act on this payment.
    #[error("not allowed to act on this payment")]
    Forbidden,
    /// The payment cannot be refunded (never charged, or refunded in full).
    #[error("the payment cannot be refunded: {0}")]
    NotRefundable(String),
    /// A refund larger than what remains unrefunded.
    #[error("the refund exceeds what remains refundable ({remaining} minor units)")]
    ExceedsRemaining {
        /// Minor units still refundable, pending refunds deducted.
        remaining: i64,
    },
    /// A webhook whose signature or timestamp does not check out.
    #[error("webhook refused: {0}")]
    BadSignature(&'static str),
    /// A dependency failed; the caller may retry.
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl PaymentError {
    /// A single-field validation error.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<anyhow::Error> for PaymentError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unavailable(e)
    }
}
