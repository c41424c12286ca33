//! Payments and refunds, their states, and what a provider's answer does to them.

use chrono::{DateTime, Utc};

use super::{Money, PaymentError};

/// A charge's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Recorded, and being submitted to the provider.
    Pending,
    /// Charged.
    Succeeded,
    /// Definitely not charged.
    Failed,
    /// The provider did not answer in time: reconciliation decides.
    Unknown,
    /// Charged, then refunded in full.
    Refunded,
    /// Charged, then refunded in part.
    PartiallyRefunded,
}

impl PaymentStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Unknown, Self::Refunded, Self::PartiallyRefunded]
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// Whether the outcome is still open (the provider's answer is awaited).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Unknown)
    }

    /// Whether money was taken and some may be given back.
    pub fn is_refundable(self) -> bool {
        matches!(self, Self::Succeeded | Self::PartiallyRefunded)
    }
}

/// A refund's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// Recorded (its amount reserved), submitted or about to be.
    Pending,
    /// Paid back.
    Succeeded,
    /// Refused for good; needs an operator.
    Failed,
}

impl RefundStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed].into_iter().find(|status| status.as_str() == s)
    }
}

/// A charge of one booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Also the provider idempotency key of the charge.
    pub id: uuid::Uuid,
    /// The booking paid for.
    pub booking_id: uuid::Uuid,
    /// The payer.
    pub user_id: uuid::Uuid,
    /// What was charged.
    pub amount: Money,
    /// Sum of succeeded refunds, in the amount's currency.
    pub refunded_minor: i64,
    /// Where the charge stands.
    pub status: PaymentStatus,
    /// The provider adapter's name.
    pub provider: String,
    /// The card token (kept to resubmit a charge the provider never received).
    pub card_token: String,
    /// The provider's id of the charge, once known.
    pub provider_reference: String,
    /// Machine-readable failure reason.
    pub failure_code: String,
    /// Human-readable failure reason.
    pub failure_message: String,
    /// The Charge call's idempotency key.
    pub idempotency_key: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A refund of (part of) a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Also the provider idempotency key of the refund.
    pub id: uuid::Uuid,
    /// The payment refunded.
    pub payment_id: uuid::Uuid,
    /// The refund request's id (BookingRefundRequested.refund_request_id or the
    /// Refund call's idempotency key); empty for none.
    pub request_id: String,
    /// How much.
    pub amount: Money,
    /// Where it stands.
    pub status: RefundStatus,
    /// Why it was asked for.
    pub reason: String,
    /// The provider adapter's name.
    pub provider: String,
    /// The provider's id of the refund, once known.
    pub provider_reference: String,
    /// Machine-readable failure reason.
    pub failure_code: String,
    /// Human-readable failure reason.
    pub failure_message: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A provider's definite or provisional answer about a charge or a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Succeeded {
        /// The provider's id.
        reference: String,
    },
    /// Refused: nothing was charged (or refunded).
    Failed {
        /// The provider's id, when it recorded the attempt.
        reference: String,
        /// Machine-readable reason, e.g. `card_declined`.
        code: String,
        /// Human-readable reason.
        message: String,
    },
    /// Accepted but not finished; ask again later.
    Processing {
        /// The provider's id.
        reference: String,
    },
}

/// How much of a payment a refund request gets.
///
/// `reserved` is what succeeded and pending refunds already take: pending ones count,
/// so two concurrent refunds can never together exceed the amount.
pub fn refund_amount(payment: &Payment, reserved: i64, asked: Option<&Money>) -> Result<Money, PaymentError> {
    if !payment.status.is_refundable() {
        return Err(PaymentError::NotRefundable(format!("the payment is {}", payment.status.as_str())));
    }
    let remaining = payment.amount.minor_units - reserved;
    match asked {
        Some(asked) if asked.currency != payment.amount.currency => Err(PaymentError::invalid(
            "amount.currency",
            format!("must be the payment's currency, {}", payment.amount.currency),
        )),
        Some(asked) if asked.minor_units > remaining => Err(PaymentError::ExceedsRemaining { remaining }),
        Some(asked) => Ok(asked.clone()),
        None if remaining <= 0 => Err(PaymentError::ExceedsRemaining { remaining: 0 }),
        None => Ok(payment.amount.with_minor_units(remaining)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(status: PaymentStatus) -> Payment {
        Payment {
            id: uuid::Uuid::new_v4(),
            booking_id: uuid::Uuid::new_v4(),
            user_id: uuid::Uuid::new_v4(),
            amount: Money { currency: "EUR".into(), minor_units: 10_000 },
            refunded_minor: 0,
            status,
            provider: "simulated".into(),
            card_token: "tok_visa".into(),
            provider_reference: String::new(),
            failure_code: String::new(),
            failure_message: String::new(),
            idempotency_key: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn refunds_never_exceed_what_remains() {
        let p = payment(PaymentStatus::Succeeded);
        let eur = |n| Money { currency: "EUR".into(), minor_units: n };
        assert_eq!(refund_amount(&p, 0, None).unwrap(), eur(10_000), "absent means everything");
        assert_eq!(refund_amount(&p, 2_500, None).unwrap(), eur(7_500), "everything that remains");
        assert_eq!(refund_amount(&p, 2_500, Some(&eur(7_500))).unwrap(), eur(7_500));
        assert!(matches!(
            refund_amount(&p, 2_500, Some(&eur(7_501))),
            Err(PaymentError::ExceedsRemaining { remaining: 7_500 })
        ));
        assert!(matches!(refund_amount(&p, 10_000, None), Err(PaymentError::ExceedsRemaining { remaining: 0 })));
        let usd = Money { currency: "USD".into(), minor_units: 1 };
        assert!(matches!(refund_amount(&p, 0, Some(&usd)), Err(PaymentError::Invalid(_))));
    }

    #[test]
    fn only_charged_payments_are_refunded() {
        for status in [PaymentStatus::Pending, PaymentStatus::Unknown, PaymentStatus::Failed, PaymentStatus::Refunded] {
            assert!(matches!(refund_amount(&payment(status), 0, None), Err(PaymentError::NotRefundable(_))));
        }
        assert!(refund_amount(&payment(PaymentStatus::PartiallyRefunded), 10, None).is_ok());
        for s in ["pending", "succeeded", "failed", "unknown", "refunded", "partially_refunded"] {
            assert_eq!(PaymentStatus::parse(s).unwrap().as_str(), s);
        }
    }
}
