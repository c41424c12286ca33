//! A booking and the state machine it moves through.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// Where a booking is in its life.
///
/// ```text
/// PENDING_PAYMENT → CONFIRMED | CANCELLED | EXPIRED
/// CONFIRMED → REFUND_PENDING → REFUNDED
/// ```
/// A payment that lands on a CANCELLED or EXPIRED booking is refunded without
/// changing its state (`refund_requested_at` records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for the buyer to pay, until the hold expires.
    PendingPayment,
    /// Paid and sold.
    Confirmed,
    /// Payment failed, or the buyer cancelled before paying.
    Cancelled,
    /// The hold expired before the payment confirmed it.
    Expired,
    /// Cancelled after payment; the refund is on its way.
    RefundPending,
    /// Cancelled after payment and refunded.
    Refunded,
}

impl Status {
    /// Every status, in proto order.
    pub const ALL: [Self; 6] =
        [Self::PendingPayment, Self::Confirmed, Self::Cancelled, Self::Expired, Self::RefundPending, Self::Refunded];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::RefundPending => "refund_pending",
            Self::Refunded => "refunded",
        }
    }

    /// Whether the state machine allows `self → to`.
    pub fn may_become(self, to: Self) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (PendingPayment, Confirmed | Cancelled | Expired) | (Confirmed, RefundPending) | (RefundPending, Refunded)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown booking status {s:?}"))
    }
}

/// One ticket of a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    /// Also the ticket's id.
    pub id: uuid::Uuid,
    /// Its category.
    pub category_id: uuid::Uuid,
    /// Its seat; `None` for general admission.
    pub seat_id: Option<uuid::Uuid>,
    /// e.g. "Floor A, Row 12, Seat 7", or the category's name.
    pub label: String,
    /// Price in minor units of the booking's currency.
    pub unit_price_minor: i64,
}

/// A booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Its id.
    pub id: uuid::Uuid,
    /// The buyer.
    pub user_id: uuid::Uuid,
    /// The event.
    pub event_id: uuid::Uuid,
    /// The hold it was made from (64 hex digits).
    pub hold_id: String,
    /// The hold's fencing token, presented to inventory's Confirm.
    pub fencing_token: u64,
    /// Where it is.
    pub status: Status,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of the line items' prices.
    pub total_minor: i64,
    /// When an unpaid booking expires (its hold's expiry).
    pub expires_at: DateTime<Utc>,
    /// The payment that paid it, once there is one.
    pub payment_id: Option<uuid::Uuid>,
    /// Set when a refund was asked of payment.
    pub refund_requested_at: Option<DateTime<Utc>>,
    /// Why it was cancelled.
    pub cancellation_reason: String,
    /// One per ticket.
    pub line_items: Vec<LineItem>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let allowed: Vec<(Status, Status)> = Status::ALL
            .into_iter()
            .flat_map(|from| Status::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.may_become(*to))
            .collect();
        use Status::*;
        assert_eq!(
            allowed,
            [
                (PendingPayment, Confirmed),
                (PendingPayment, Cancelled),
                (PendingPayment, Expired),
                (Confirmed, RefundPending),
                (RefundPending, Refunded)
            ]
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("paid".parse::<Status>().is_err());
    }
}
