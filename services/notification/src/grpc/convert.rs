//! Proto ↔ domain conversions and the one mapping from [`NotificationError`] to `Status`.

use ticketing_kernel::time::to_proto;
use ticketing_platform::status::FieldViolation;
use ticketing_proto::notification::v1 as pb;
use tonic::Status;

use crate::domain::{Delivery, DeliveryStatus, NotificationError, Ticket, TicketStatus, Verification, rotating};
use crate::service::ListedTicket;

/// Longest code accepted: real ones are about 400 bytes.
pub const MAX_CODE_LEN: usize = 4096;

impl From<NotificationError> for Status {
    fn from(e: NotificationError) -> Self {
        let message = e.to_string();
        match e {
            NotificationError::Invalid(violations) => {
                ticketing_platform::status::invalid_argument(&message, &violations)
            }
            NotificationError::Forbidden(_) => Status::permission_denied(message),
            NotificationError::NotFound(_) => Status::not_found(message),
            NotificationError::TicketScanned => ticketing_platform::status::refused("TICKET_SCANNED", message),
            NotificationError::Unavailable(source) => {
                tracing::error!(error = format!("{source:#}"), "notification dependency failed");
                Status::unavailable(message)
            }
        }
    }
}

/// One bad field.
pub fn violation(field: &str, description: &str) -> FieldViolation {
    FieldViolation::new(field, description)
}

/// `INVALID_ARGUMENT` for every bad field.
pub fn invalid_all(violations: &[FieldViolation]) -> Status {
    NotificationError::Invalid(violations.to_vec()).into()
}

/// `INVALID_ARGUMENT` for one bad field.
pub fn invalid(field: &str, description: &str) -> Status {
    invalid_all(&[violation(field, description)])
}

/// Parses a UUID field.
pub fn uuid(field: &str, value: &str) -> Result<uuid::Uuid, Status> {
    value.parse().map_err(|_| invalid(field, "must be a UUID"))
}

impl From<Delivery> for pb::Delivery {
    fn from(d: Delivery) -> Self {
        let status = match d.status {
            DeliveryStatus::Pending => pb::DeliveryStatus::Pending,
            DeliveryStatus::Retrying => pb::DeliveryStatus::Retrying,
            DeliveryStatus::Sent => pb::DeliveryStatus::Sent,
            DeliveryStatus::Failed => pb::DeliveryStatus::Failed,
        };
        Self {
            id: d.id.to_string(),
            channel: pb::DeliveryChannel::Email.into(),
            template: d.template,
            recipient: d.recipient,
            status: status.into(),
            attempts: d.attempts,
            sent_at: d.sent_at.map(to_proto),
            last_error: d.last_error.unwrap_or_default(),
            source_event_id: d.source_event_id.to_string(),
            booking_id: d.booking_id.map(|b| b.to_string()).unwrap_or_default(),
            created_at: Some(to_proto(d.created_at)),
        }
    }
}

impl From<Ticket> for pb::Ticket {
    fn from(t: Ticket) -> Self {
        let status = match t.status() {
            TicketStatus::Issued => pb::TicketStatus::Issued,
            TicketStatus::Scanned => pb::TicketStatus::Scanned,
            TicketStatus::Revoked => pb::TicketStatus::Revoked,
        };
        Self {
            id: t.id.to_string(),
            booking_id: t.booking_id.to_string(),
            event_id: t.event_id.to_string(),
            category_id: t.category_id.to_string(),
            seat_id: t.seat_id.map(|s| s.to_string()).unwrap_or_default(),
            seat_label: t.seat_label,
            code: t.code,
            status: status.into(),
            issued_at: Some(to_proto(t.issued_at)),
            scanned_at: t.scanned_at.map(to_proto),
            rotation: None,
        }
    }
}

impl From<ListedTicket> for pb::Ticket {
    fn from(listed: ListedTicket) -> Self {
        let rotation = listed.rotation_secret.map(|secret| pb::TicketRotation {
            secret: rotating::base32(&secret),
            period_seconds: rotating::PERIOD_SECONDS as u32,
            digits: rotating::DIGITS,
            algorithm: rotating::ALGORITHM.into(),
        });
        Self { rotation, ..listed.ticket.into() }
    }
}

impl From<Verification> for pb::VerifyTicketResponse {
    fn from(v: Verification) -> Self {
        use pb::VerificationResult as R;
        let (result, ticket) = match v {
            Verification::Valid(t) => (R::Valid, Some(t)),
            Verification::AlreadyScanned(t) => (R::AlreadyScanned, Some(t)),
            Verification::InvalidSignature => (R::InvalidSignature, None),
            Verification::UnknownTicket => (R::UnknownTicket, None),
            Verification::WrongEvent(t) => (R::WrongEvent, Some(t)),
            Verification::Revoked(t) => (R::Revoked, Some(t)),
            Verification::StaleCode(t) => (R::StaleCode, Some(t)),
            Verification::RotatingCodeRequired(t) => (R::RotatingCodeRequired, Some(t)),
        };
        Self { result: result.into(), ticket: ticket.map(Into::into) }
    }
}
