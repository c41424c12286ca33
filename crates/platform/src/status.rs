//! Building gRPC statuses with machine-readable details (google.rpc `BadRequest`,
//! `RetryInfo`), so the gateway can turn them into precise problem+json.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// One invalid input field, as services' domain errors report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field, e.g. `password` or `seats[3]`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// Joins violations for an error message: `email: is required; password: too short`.
pub fn describe(violations: &[FieldViolation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
}

/// `INVALID_ARGUMENT` listing every bad field.
pub fn invalid_argument(message: &str, violations: &[FieldViolation]) -> Status {
    let details =
        violations.iter().map(|v| tonic_types::FieldViolation::new(&v.field, &v.description)).collect::<Vec<_>>();
    Status::with_error_details(Code::InvalidArgument, message, ErrorDetails::with_bad_request(details))
}

/// A status telling the caller when to retry.
pub fn retry_after(code: Code, message: impl Into<String>, after: Duration) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_survive_the_round_trip() {
        let violations = [FieldViolation::new("email", "is required"), FieldViolation::new("password", "is too short")];
        assert_eq!(describe(&violations), "email: is required; password: is too short");
        let status = invalid_argument("bad input", &violations);
        let bad = status.get_details_bad_request().expect("bad request details");
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[1].field, "password");
        let status = retry_after(Code::ResourceExhausted, "slow down", Duration::from_secs(3));
        assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(Duration::from_secs(3)));
    }
}
