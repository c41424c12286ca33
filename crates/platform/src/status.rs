//! Building gRPC statuses with machine-readable details (google.rpc `BadRequest`,
//! `RetryInfo`), so the gateway can turn them into precise problem+json.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

/// `INVALID_ARGUMENT` listing every bad field as `(field, description)`.
pub fn invalid_argument<'a>(message: &str, violations: impl IntoIterator<Item = (&'a str, &'a str)>) -> Status {
    let violations: Vec<FieldViolation> = violations.into_iter().map(|(f, d)| FieldViolation::new(f, d)).collect();
    Status::with_error_details(Code::InvalidArgument, message, ErrorDetails::with_bad_request(violations))
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
        let status = invalid_argument("bad input", [("email", "is required"), ("password", "is too short")]);
        let bad = status.get_details_bad_request().expect("bad request details");
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[1].field, "password");
        let status = retry_after(Code::ResourceExhausted, "slow down", Duration::from_secs(3));
        assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(Duration::from_secs(3)));
    }
}
