//! The one error type of the catalog's use cases; `grpc::convert` maps it to a status once.

use super::event::{Action, EventStatus};

pub use ticketing_platform::status::FieldViolation;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Input broke the rules; every bad field is listed (up to [`Violations::LIMIT`]).
    #[error("invalid request: {}", ticketing_platform::status::describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// The call needs an access token.
    #[error("an access token is required")]
    Unauthenticated,
    /// The caller may see the resource but not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource, or a draft the caller may not see.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `venue`, `event` or `category`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The lifecycle does not allow `action` from `status`.
    #[error("cannot {action} an event that is {status}")]
    InvalidTransition {
        /// The event's current status.
        status: EventStatus,
        /// What was asked.
        action: Action,
    },
    /// The event's status freezes what the call tried to change.
    #[error("{what} cannot change while the event is {status}")]
    Frozen {
        /// The event's current status.
        status: EventStatus,
        /// What is frozen, e.g. `the venue`.
        what: &'static str,
    },
    /// An optimistic-concurrency check failed.
    #[error("{what} is {actual}, not the expected {expected}")]
    Stale {
        /// `version` or `seat_map_revision`.
        what: &'static str,
        /// What the caller expected.
        expected: u64,
        /// What it is.
        actual: u64,
    },
    /// The current state forbids the change (a publish requirement, a seat map in use).
    #[error("{0}")]
    Precondition(String),
    /// The seat already belongs to another category of the event.
    #[error("seat {seat_id} already belongs to category {category_id} of this event")]
    SeatTaken {
        /// The contested seat.
        seat_id: uuid::Uuid,
        /// The category holding it.
        category_id: uuid::Uuid,
    },
    /// A sibling with this name exists.
    #[error("a {kind} named {name:?} already exists")]
    NameTaken {
        /// `category`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A dependency failed; the caller may retry.
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl CatalogError {
    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }

    /// Not found.
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound { kind, id: id.to_string() }
    }
}

impl From<anyhow::Error> for CatalogError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unavailable(e)
    }
}

/// Collects the violations of one request, so the caller learns about every bad field at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Most violations reported: a 60,000-seat map full of mistakes must not produce a huge status.
    pub const LIMIT: usize = 50;

    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.0.len() < Self::LIMIT {
            self.0.push(FieldViolation::new(field, description));
        }
    }

    /// The value of `result`, or `None` after recording its error against `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.add(field, e)).ok()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether no more violations would be recorded.
    pub fn is_full(&self) -> bool {
        self.0.len() >= Self::LIMIT
    }

    /// `Ok(())` when nothing was recorded, else every violation as [`CatalogError::Invalid`].
    pub fn finish(self) -> Result<(), CatalogError> {
        if self.0.is_empty() { Ok(()) } else { Err(self.into_error()) }
    }

    /// The violations as an error, for callers that already know one was recorded.
    pub fn into_error(self) -> CatalogError {
        CatalogError::Invalid(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_capped_and_listed_in_the_message() {
        let mut v = Violations::default();
        assert_eq!(v.check("a", Ok::<_, String>(1)), Some(1));
        assert!(v.is_empty());
        for i in 0..Violations::LIMIT + 10 {
            v.add(format!("f{i}"), "bad");
        }
        assert!(v.is_full());
        let CatalogError::Invalid(list) = v.finish().unwrap_err() else { panic!("not Invalid") };
        assert_eq!(list.len(), Violations::LIMIT);
        let message = CatalogError::invalid("name", "is required").to_string();
        assert_eq!(message, "invalid request: name: is required");
    }
}
