//! The errors inventory's use cases return; `grpc::convert` maps each to a status once.

use ticketing_platform::status::FieldViolation;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Input broke the rules; every bad field is listed.
    #[error("invalid request: {}", ticketing_platform::status::describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// No stock for this event (never published, or unknown).
    #[error("event not found")]
    EventNotFound,
    /// No such hold.
    #[error("hold not found")]
    HoldNotFound,
    /// Outside the sale window, or the sale is closed or cancelled.
    #[error("the event is not on sale")]
    NotOnSale,
    /// The caller has not verified their email: accounts made in bulk would get around
    /// per-user limits and the waiting room's fairness.
    #[error("verify your email address before holding tickets")]
    EmailUnverified,
    /// The per-user limit would be exceeded.
    #[error("per-user ticket limit reached: {remaining} more allowed")]
    LimitExceeded {
        /// Tickets the user may still hold.
        remaining: u32,
    },
    /// Not enough tickets; nothing was held.
    #[error("not enough tickets available: {available} left")]
    SoldOut {
        /// Tickets left in the category.
        available: u32,
    },
    /// A requested seat is held or sold; nothing was held.
    #[error("seat {0} is not available")]
    SeatTaken(String),
    /// No row has that many adjacent free seats.
    #[error("no {0} adjacent seats are available in one row")]
    NoAdjacentSeats(u32),
    /// The idempotency key was used for a different request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyMismatch,
    /// The fencing token is not the hold's (or predates a rebuild).
    #[error("stale fencing token")]
    StaleToken,
    /// The hold expired before it was confirmed.
    #[error("the hold has expired")]
    Expired,
    /// The hold already ended in a way that forbids the call.
    #[error("the hold is {0}")]
    Ended(&'static str),
    /// The ledger refused the sale (a seat sold elsewhere, or capacity reached).
    #[error("the sale conflicts with the ledger: {0}")]
    LedgerConflict(String),
    /// The caller may not act on this hold.
    #[error("not allowed to act on this hold")]
    Forbidden,
    /// A dependency failed; the caller may retry.
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl InventoryError {
    /// A single-field validation error.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<anyhow::Error> for InventoryError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unavailable(e)
    }
}
