//! Issued tickets, their status, and the outcomes of a check-in scan.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One ticket: a booking line item with its signed code.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Ticket {
    /// The booking line item id.
    #[sqlx(rename = "ticket_id")]
    pub id: Uuid,
    /// Its booking.
    pub booking_id: Uuid,
    /// The booking's owner.
    pub user_id: Uuid,
    /// The event it admits to.
    pub event_id: Uuid,
    /// Its ticket category.
    pub category_id: Uuid,
    /// The seat, unless general admission.
    pub seat_id: Option<Uuid>,
    /// e.g. "Floor A, Row 12, Seat 7".
    pub seat_label: String,
    /// The signed code in the QR code.
    pub code: String,
    /// When it was issued (the confirmation's time).
    pub issued_at: DateTime<Utc>,
    /// The first scan.
    pub scanned_at: Option<DateTime<Utc>>,
    /// When its booking was cancelled or refunded.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStatus {
    /// Issued, not scanned.
    Issued,
    /// Admitted once.
    Scanned,
    /// Its booking was cancelled or refunded; it admits no more.
    Revoked,
}

impl Ticket {
    /// Revocation wins over a scan: a refunded ticket never admits again.
    pub fn status(&self) -> TicketStatus {
        if self.revoked_at.is_some() {
            TicketStatus::Revoked
        } else if self.scanned_at.is_some() {
            TicketStatus::Scanned
        } else {
            TicketStatus::Issued
        }
    }
}

/// The answer to one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Admit: the ticket is now scanned.
    Valid(Ticket),
    /// Scanned before; the ticket carries the first scan's time.
    AlreadyScanned(Ticket),
    /// Malformed, unknown key, or bad signature.
    InvalidSignature,
    /// Correctly signed, but no such ticket is known here.
    UnknownTicket,
    /// A ticket for another event.
    WrongEvent(Ticket),
    /// Its booking was cancelled or refunded.
    Revoked(Ticket),
    /// A rotating code whose time value is not current (a screenshot) or wrong.
    StaleCode(Ticket),
    /// A static code at a gate that asked for rotating codes.
    RotatingCodeRequired(Ticket),
}

impl Verification {
    /// The metric and audit label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Valid(_) => "valid",
            Self::AlreadyScanned(_) => "already_scanned",
            Self::InvalidSignature => "invalid_signature",
            Self::UnknownTicket => "unknown_ticket",
            Self::WrongEvent(_) => "wrong_event",
            Self::Revoked(_) => "revoked",
            Self::StaleCode(_) => "stale_code",
            Self::RotatingCodeRequired(_) => "rotating_code_required",
        }
    }

    /// The ticket, when the scan identified one.
    pub fn ticket(&self) -> Option<&Ticket> {
        match self {
            Self::Valid(t)
            | Self::AlreadyScanned(t)
            | Self::WrongEvent(t)
            | Self::Revoked(t)
            | Self::StaleCode(t)
            | Self::RotatingCodeRequired(t) => Some(t),
            Self::InvalidSignature | Self::UnknownTicket => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_outranks_a_scan() {
        let mut ticket = Ticket {
            id: Uuid::new_v4(),
            booking_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            category_id: Uuid::new_v4(),
            seat_id: None,
            seat_label: "Standing".into(),
            code: "k.p.s".into(),
            issued_at: Utc::now(),
            scanned_at: None,
            revoked_at: None,
        };
        assert_eq!(ticket.status(), TicketStatus::Issued);
        ticket.scanned_at = Some(Utc::now());
        assert_eq!(ticket.status(), TicketStatus::Scanned);
        ticket.revoked_at = Some(Utc::now());
        assert_eq!(ticket.status(), TicketStatus::Revoked);
        assert_eq!(Verification::Revoked(ticket.clone()).ticket(), Some(&ticket));
        assert_eq!(Verification::UnknownTicket.ticket(), None);
    }
}
