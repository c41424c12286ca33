//! Proto ↔ domain conversions and the one mapping from [`PaymentError`] to `Status`.

use ticketing_kernel::time::to_proto;
use ticketing_platform::status::{FieldViolation, invalid_argument, retry_after};
use ticketing_proto::common::v1 as common;
use ticketing_proto::payment::v1 as pb;
use tonic::{Code, Status};

use crate::domain::{Money, Payment, PaymentError, PaymentStatus, Refund, RefundStatus};
use crate::service::{BOOKING_RETRY_AFTER, ChargeInput, RefundInput};

impl From<PaymentError> for Status {
    fn from(e: PaymentError) -> Self {
        let message = e.to_string();
        match e {
            PaymentError::Invalid(violations) => invalid_argument(&message, &violations),
            PaymentError::BookingUnknown => retry_after(Code::Unavailable, message, BOOKING_RETRY_AFTER),
            PaymentError::BookingNotPayable(_)
            | PaymentError::AlreadyCharged { .. }
            | PaymentError::NotRefundable(_)
            | PaymentError::ExceedsRemaining { .. } => Status::failed_precondition(message),
            PaymentError::NotOwner | PaymentError::Forbidden => Status::permission_denied(message),
            PaymentError::PaymentNotFound => Status::not_found(message),
            PaymentError::BadSignature(_) => Status::unauthenticated(message),
            PaymentError::Unavailable(source) => {
                tracing::error!(error = format!("{source:#}"), "payment dependency failed");
                Status::unavailable(message)
            }
        }
    }
}

/// `INVALID_ARGUMENT` about one field.
pub fn invalid(field: &str, description: &str) -> Status {
    invalid_argument("invalid request", &[FieldViolation::new(field, description)])
}

/// Parses a UUID field.
pub fn uuid(field: &str, value: &str) -> Result<uuid::Uuid, Status> {
    value.parse().map_err(|_| invalid(field, "must be a UUID"))
}

fn amount(field: &str, m: Option<&common::Money>, violations: &mut Vec<FieldViolation>) -> Option<Money> {
    let m = m?;
    Money::parse_positive(&m.currency, m.minor_units)
        .map_err(|errors| {
            violations.extend(errors.into_iter().map(|(f, d)| FieldViolation::new(format!("{field}.{f}"), d)))
        })
        .ok()
}

fn done(violations: Vec<FieldViolation>) -> Result<(), Status> {
    if violations.is_empty() { Ok(()) } else { Err(invalid_argument("invalid request", &violations)) }
}

/// A validated Charge request.
pub fn charge_input(r: &pb::ChargeRequest) -> Result<ChargeInput, Status> {
    let mut violations = Vec::new();
    let booking_id =
        r.booking_id.parse().map_err(|_| violations.push(FieldViolation::new("booking_id", "must be a UUID")));
    let money = amount("amount", r.amount.as_ref(), &mut violations);
    if r.amount.is_none() {
        violations.push(FieldViolation::new("amount", "is required"));
    }
    if r.card_token.is_empty() || r.card_token.len() > 255 || r.card_token.chars().any(char::is_control) {
        violations
            .push(FieldViolation::new("card_token", "must hold 1 to 255 characters, none of them control characters"));
    }
    done(violations)?;
    Ok(ChargeInput {
        booking_id: booking_id.expect("checked"),
        amount: money.expect("checked"),
        card_token: r.card_token.clone(),
        idempotency_key: r.idempotency_key.clone(),
    })
}

/// A validated Refund request.
pub fn refund_input(r: &pb::RefundRequest) -> Result<RefundInput, Status> {
    let mut violations = Vec::new();
    let payment_id =
        r.payment_id.parse().map_err(|_| violations.push(FieldViolation::new("payment_id", "must be a UUID")));
    let money = amount("amount", r.amount.as_ref(), &mut violations);
    if r.reason.chars().count() > 500 {
        violations.push(FieldViolation::new("reason", "must be at most 500 characters"));
    }
    done(violations)?;
    Ok(RefundInput {
        payment_id: payment_id.expect("checked"),
        amount: money,
        request_id: r.idempotency_key.clone(),
        reason: r.reason.clone(),
    })
}

fn money(m: &Money) -> Option<common::Money> {
    Some(common::Money { currency: m.currency.to_string(), minor_units: m.minor_units })
}

fn payment_status(s: PaymentStatus) -> pb::PaymentStatus {
    match s {
        PaymentStatus::Pending => pb::PaymentStatus::Pending,
        PaymentStatus::Succeeded => pb::PaymentStatus::Succeeded,
        PaymentStatus::Failed => pb::PaymentStatus::Failed,
        PaymentStatus::Unknown => pb::PaymentStatus::Unknown,
        PaymentStatus::Refunded => pb::PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded => pb::PaymentStatus::PartiallyRefunded,
    }
}

fn refund_status(s: RefundStatus) -> pb::RefundStatus {
    match s {
        RefundStatus::Pending => pb::RefundStatus::Pending,
        RefundStatus::Succeeded => pb::RefundStatus::Succeeded,
        RefundStatus::Failed => pb::RefundStatus::Failed,
    }
}

impl From<Payment> for pb::PaymentDetails {
    fn from(p: Payment) -> Self {
        Self {
            id: p.id.to_string(),
            booking_id: p.booking_id.to_string(),
            user_id: p.user_id.to_string(),
            refunded_amount: money(&p.amount.with_minor_units(p.refunded_minor)),
            amount: money(&p.amount),
            status: payment_status(p.status).into(),
            provider: p.provider,
            provider_reference: p.provider_reference,
            failure_code: p.failure_code,
            failure_message: p.failure_message,
            created_at: Some(to_proto(p.created_at)),
            updated_at: Some(to_proto(p.updated_at)),
        }
    }
}

/// The proto refund, with its payment's booking.
pub fn refund_details(r: Refund, payment: &Payment) -> pb::RefundDetails {
    pb::RefundDetails {
        id: r.id.to_string(),
        payment_id: r.payment_id.to_string(),
        booking_id: payment.booking_id.to_string(),
        amount: money(&r.amount),
        status: refund_status(r.status).into(),
        reason: r.reason,
        provider: r.provider,
        provider_reference: r.provider_reference,
        failure_code: r.failure_code,
        failure_message: r.failure_message,
        created_at: Some(to_proto(r.created_at)),
        updated_at: Some(to_proto(r.updated_at)),
    }
}
