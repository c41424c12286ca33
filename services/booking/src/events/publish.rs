//! The events booking publishes on `booking.events`, built from a booking.

use ticketing_kernel::time::to_proto;
use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1 as ev;

use ticketing_platform::events::envelope;
use ticketing_proto::events::v1::Envelope;

use crate::domain::{Booking, Reason, Transition};

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

/// A booking awaits payment.
pub fn created(b: &Booking) -> Envelope {
    envelope(
        b.id.to_string(),
        &ev::BookingCreated {
            booking_id: b.id.to_string(),
            user_id: b.user_id.to_string(),
            event_id: b.event_id.to_string(),
            hold_id: b.hold_id.clone(),
            line_items: lines(b),
            total: money(&b.currency, b.total_minor),
            expires_at: Some(to_proto(b.expires_at)),
        },
    )
}

/// The event announcing `transition` of `b`, in its envelope (keyed by the booking).
pub fn transition(b: &Booking, transition: &Transition) -> Envelope {
    let key = b.id.to_string();
    match transition {
        Transition::Confirmed => envelope(key, &confirmed(b)),
        Transition::Cancelled { reason, by } => envelope(key, &cancelled(b, *reason, *by)),
        Transition::Expired => envelope(key, &expired(b)),
        Transition::RefundRequested { payment, reason, detail, restock } => {
            envelope(key, &refund_requested(b, *payment, *reason, detail, *restock))
        }
        Transition::Refunded { refund_id } => envelope(key, &refunded(b, refund_id)),
    }
}

fn reason(reason: Reason) -> ev::BookingCancellationReason {
    match reason {
        Reason::UserRequested => ev::BookingCancellationReason::UserRequested,
        Reason::PaymentFailed => ev::BookingCancellationReason::PaymentFailed,
        Reason::EventCancelled => ev::BookingCancellationReason::EventCancelled,
        Reason::Admin => ev::BookingCancellationReason::Admin,
        Reason::LatePayment => ev::BookingCancellationReason::LatePayment,
    }
}

fn confirmed(b: &Booking) -> ev::BookingConfirmed {
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

fn cancelled(b: &Booking, why: Reason, by: Option<uuid::Uuid>) -> ev::BookingCancelled {
    ev::BookingCancelled {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        hold_id: b.hold_id.clone(),
        reason: reason(why) as i32,
        reason_detail: b.cancellation_reason.clone(),
        cancelled_by: by.map(|u| u.to_string()).unwrap_or_default(),
    }
}

fn expired(b: &Booking) -> ev::BookingExpired {
    ev::BookingExpired {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        hold_id: b.hold_id.clone(),
    }
}

/// Payment is asked to refund `payment` in full; the request id is derived from the
/// booking and payment, so asking twice asks for one refund.
fn refund_requested(
    b: &Booking,
    payment: uuid::Uuid,
    why: Reason,
    detail: &str,
    restock: bool,
) -> ev::BookingRefundRequested {
    let request = b.refund_request_id(payment);
    ev::BookingRefundRequested {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        payment_id: payment.to_string(),
        amount: money(&b.currency, b.total_minor),
        reason: reason(why) as i32,
        reason_detail: detail.to_owned(),
        refund_request_id: request.to_string(),
        line_items: lines(b),
        hold_id: b.hold_id.clone(),
        restock,
    }
}

fn refunded(b: &Booking, refund_id: &str) -> ev::BookingRefunded {
    ev::BookingRefunded {
        booking_id: b.id.to_string(),
        user_id: b.user_id.to_string(),
        event_id: b.event_id.to_string(),
        payment_id: b.payment_id.map(|p| p.to_string()).unwrap_or_default(),
        refund_id: refund_id.to_owned(),
        amount: money(&b.currency, b.total_minor),
    }
}
