//! Consumes `booking.events`: keeps the booking projection that Charge checks, and
//! turns BookingRefundRequested into a refund. Idempotent (the consumer dedupes on the
//! event id, refunds on `refund_request_id`) and tolerant of any delivery order.

use sqlx::PgConnection;
use ticketing_platform::events::dispatch;
use ticketing_platform::kafka::consumer::{HandleError, Handler};
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;

use crate::adapters::store::BookingFact;
use crate::domain::{BookingStatus, Money};
use crate::service::{Payments, RefundInput, UnknownPayment};

/// Consumer group of payment's booking consumer.
pub const GROUP: &str = "payment.booking-events";

/// The handler.
pub struct BookingEvents {
    payments: Payments,
}

impl BookingEvents {
    /// A handler recording into `payments`.
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }
}

/// An event that will never make sense, however often it is retried.
#[derive(Debug, thiserror::Error)]
#[error("malformed booking event: {0}")]
struct Malformed(String);

fn id(field: &str, value: &str) -> Result<uuid::Uuid, Malformed> {
    value.parse().map_err(|_| Malformed(format!("{field} is not a UUID: {value:?}")))
}

fn money(field: &str, m: Option<&ticketing_proto::common::v1::Money>) -> Result<Option<Money>, Malformed> {
    m.map(|m| Money::parse_positive(&m.currency, m.minor_units)).transpose().map_err(|errors| {
        Malformed(format!("{field}: {}", errors.iter().map(|e| e.1.as_str()).collect::<Vec<_>>().join(", ")))
    })
}

fn fact(booking_id: &str, user_id: &str, event_id: &str, status: BookingStatus) -> Result<BookingFact, Malformed> {
    Ok(BookingFact {
        id: id("booking_id", booking_id)?,
        user_id: id("user_id", user_id)?,
        event_id: id("event_id", event_id)?,
        status,
        total: None,
        expires_at: None,
    })
}

/// What one booking event asks of payment.
enum Action {
    Project(BookingFact),
    Refund(RefundInput),
    Nothing,
}

fn created(e: ev::BookingCreated) -> Result<Action, Malformed> {
    let total = money("total", e.total.as_ref())?.ok_or_else(|| Malformed("total is missing".into()))?;
    let expires_at = e
        .expires_at
        .as_ref()
        .and_then(ticketing_kernel::time::from_proto)
        .ok_or_else(|| Malformed("expires_at is missing or invalid".into()))?;
    let mut fact = fact(&e.booking_id, &e.user_id, &e.event_id, BookingStatus::PendingPayment)?;
    fact.total = Some(total);
    fact.expires_at = Some(expires_at);
    Ok(Action::Project(fact))
}

fn confirmed(e: ev::BookingConfirmed) -> Result<Action, Malformed> {
    let mut fact = fact(&e.booking_id, &e.user_id, &e.event_id, BookingStatus::Confirmed)?;
    fact.total = money("total", e.total.as_ref())?;
    Ok(Action::Project(fact))
}

fn cancelled(e: ev::BookingCancelled) -> Result<Action, Malformed> {
    Ok(Action::Project(fact(&e.booking_id, &e.user_id, &e.event_id, BookingStatus::Cancelled)?))
}

fn expired(e: ev::BookingExpired) -> Result<Action, Malformed> {
    Ok(Action::Project(fact(&e.booking_id, &e.user_id, &e.event_id, BookingStatus::Expired)?))
}

fn refunded(e: ev::BookingRefunded) -> Result<Action, Malformed> {
    Ok(Action::Project(fact(&e.booking_id, &e.user_id, &e.event_id, BookingStatus::Refunded)?))
}

fn refund_requested(e: ev::BookingRefundRequested) -> Result<Action, Malformed> {
    if e.refund_request_id.is_empty() || e.refund_request_id.len() > 255 {
        return Err(Malformed("refund_request_id must hold 1 to 255 characters".into()));
    }
    // A zero amount means "everything that remains", like an absent one.
    let amount = e.amount.as_ref().filter(|m| m.minor_units != 0);
    let reason = if e.reason_detail.is_empty() {
        e.reason().as_str_name().to_owned()
    } else {
        e.reason_detail.chars().take(500).collect()
    };
    Ok(Action::Refund(RefundInput {
        payment_id: id("payment_id", &e.payment_id)?,
        amount: money("amount", amount)?,
        request_id: e.refund_request_id,
        reason,
    }))
}

impl Handler for BookingEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandleError> {
        let action = dispatch(event)
            .on(created)
            .on(confirmed)
            .on(cancelled)
            .on(expired)
            .on(refunded)
            .on(refund_requested)
            .decoded()?;
        // Other booking events (none yet) do not concern payment.
        let action = action.unwrap_or(Ok(Action::Nothing)).map_err(|e| HandleError::Permanent(e.into()))?;
        match action {
            Action::Project(fact) => self.payments.apply_booking(tx, &fact).await.map_err(HandleError::Retryable),
            Action::Refund(input) => self.payments.request_refund(tx, input).await.map_err(|e| {
                if e.is::<UnknownPayment>() { HandleError::Permanent(e) } else { HandleError::Retryable(e) }
            }),
            Action::Nothing => Ok(()),
        }
    }
}
