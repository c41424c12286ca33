//! The errors notification's use cases return; `grpc::convert` maps each to a status once.

use ticketing_platform::status::FieldViolation;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// Input broke the rules; every bad field is listed.
    #[error("invalid request: {}", ticketing_platform::status::describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// The caller may not see or do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Nothing the caller may see is there (also said for what is someone else's).
    #[error("{0}")]
    NotFound(&'static str),
    /// A ticket of the booking was scanned at the gate: it can no longer be revoked
    /// (without force).
    #[error("a ticket of this booking was already scanned at the gate")]
    TicketScanned,
    /// A dependency failed; the caller may retry.
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl NotificationError {
    /// A single-field validation error.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<anyhow::Error> for NotificationError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unavailable(e)
    }
}

impl From<sqlx::Error> for NotificationError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(e.into())
    }
}
