//! The events booking publishes on `booking.events`, built from a booking.

use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1 as ev;

use crate::domain::Booking;

fn money(currency: &str, minor_units: i64) -> Option<Money> {
    Some(Money { currency: currency.to_owned(), minor_units })
}

fn lines(booking: &Booking) -> Vec<ev::BookingLineItem> {
    booking
        .line_items
        .iter()
        .map(|item| ev::BookingLineItem {
            line_item_id: item.id.to_string(),
            category_id: item.category_id.to_string(),
            seat_id: item.seat_id.map(|s| s.to_string()).unwrap_or_default(),
            label: item.label.clone(),
            unit_price: money(&booking.currency, item.unit_price_minor),
        })
        .collect()
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 })
}

/// A booking awaits payment.
pub fn created(b: &Booking) -> ev::BookingCreated {
    ev::BookingCreated {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        hold_id: b.hold_id.clone(),
        line_items: lines(b),
        total: money(&b.currency, b.total_minor),
        expires_at: timestamp(b.expires_at),
    }
}

/// A booking was paid and sold.
pub fn confirmed(b: &Booking) -> ev::BookingConfirmed {
    ev::BookingConfirmed {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        hold_id: b.hold_id.clone(),
        payment_id: b.payment_id.map(|p| p.to_string()).unwrap_or_default(),
        line_items: lines(b),
        total: money(&b.currency, b.total_minor),
    }
}

/// An unpaid booking was cancelled.
pub fn cancelled(b: &Booking, reason: ev::BookingCancellationReason, by: Option<uuid::Uuid>) -> ev::BookingCancelled {
    ev::BookingCancelled {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        hold_id: b.hold_id.clone(),
        reason: reason as i32,
        reason_detail: b.cancellation_reason.clone(),
        cancelled_by: by.map(|u| u.to_string()).unwrap_or_default(),
    }
}

/// An unpaid booking's hold expired.
pub fn expired(b: &Booking) -> ev::BookingExpired {
    ev::BookingExpired {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        hold_id: b.hold_id.clone(),
    }
}

/// Payment is asked to refund `payment` in full; the request id is derived from the
/// booking and payment, so asking twice asks for one refund.
pub fn refund_requested(
    b: &Booking,
    payment: uuid::Uuid,
    reason: ev::BookingCancellationReason,
    detail: &str,
) -> ev::BookingRefundRequested {
    let request = uuid::Uuid::new_v5(&b.id, payment.as_bytes());
    ev::BookingRefundRequested {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        payment_id: payment.to_string(),
        amount: money(&b.currency, b.total_minor),
        reason: reason as i32,
        reason_detail: detail.to_owned(),
        refund_request_id: request.to_string(),
        line_items: lines(b),
    }
}

/// A confirmed booking's refund succeeded.
pub fn refunded(b: &Booking, refund_id: &str, amount: Option<Money>) -> ev::BookingRefunded {
    ev::BookingRefunded {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        payment_id: b.payment_id.map(|p| p.to_string()).unwrap_or_default(),
        refund_id: refund_id.to_owned(),
        amount,
    }
}
