//! The errors booking's use cases return; `grpc` maps each to a status once.

pub use ticketing_platform::status::FieldViolation;

use super::Status;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// Input broke the rules; every bad field is listed.
    #[error("invalid request: {}", ticketing_platform::status::describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// No such booking, or not the caller's to see.
    #[error("booking not found")]
    NotFound,
    /// No such hold, or not the caller's.
    #[error("hold not found")]
    HoldNotFound,
    /// The hold is no longer active (expired, released or sold).
    #[error("the hold is no longer active")]
    HoldNotActive,
    /// A category of the hold is no longer on sale: gone from the event, or without a price.
    /// Retrying cannot help, unlike a peer that did not answer.
    #[error("category {0} of the hold is no longer on sale")]
    CategoryNotOnSale(String),
    /// The hold already backs a booking.
    #[error("the hold already backs booking {0}")]
    AlreadyBooked(uuid::Uuid),
    /// The caller may not do this.
    #[error("not allowed")]
    PermissionDenied,
    /// The transition is not allowed from the booking's state.
    #[error("the booking is {from} and cannot be {action}")]
    IllegalTransition {
        /// The booking's status.
        from: Status,
        /// What was asked, e.g. "cancelled".
        action: &'static str,
    },
    /// The event's cancellation policy no longer lets its buyers cancel.
    #[error("{0}")]
    CancellationClosed(String),
    /// A ticket of the booking was scanned at the gate: it can no longer be cancelled.
    #[error("a ticket of this booking was already scanned at the gate; it can no longer be cancelled")]
    TicketScanned,
    /// A peer or the database failed; worth retrying.
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl BookingError {
    /// One bad field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<anyhow::Error> for BookingError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unavailable(e)
    }
}

impl From<sqlx::Error> for BookingError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(e.into())
    }
}
