//! The events payment publishes on `payment.events`, built from settled payments and
//! refunds, each in its envelope keyed by the booking.

use ticketing_platform::events::envelope_with_id;
use ticketing_proto::common::v1 as common;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;

use crate::domain::{Money, Payment, PaymentStatus, Refund, RefundStatus};

/// Namespace of the deterministic event ids: one event per fact, however often it is
/// (re)announced.
const EVENT_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5d1f_0a8e_7c2b_4e61_9b0a_3f6e_2c8d_a002);

/// The event announcing a settled payment.
pub fn payment_event(p: &Payment) -> Option<Envelope> {
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
pub fn refund_event(r: &Refund, p: &Payment) -> Option<Envelope> {
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

fn money(m: &Money) -> Option<common::Money> {
    Some(common::Money { currency: m.currency.to_string(), minor_units: m.minor_units })
}

fn event_id(subject: uuid::Uuid, fact: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&EVENT_NAMESPACE, format!("{subject}/{fact}").as_bytes())
}
