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

/// The `ErrorInfo.domain` of every refusal a service names with [`refused`].
pub const REFUSAL_DOMAIN: &str = "ticketing.dev";

/// `FAILED_PRECONDITION` naming why the request was refused in a google.rpc `ErrorInfo`
/// (`reason` in SCREAMING_SNAKE_CASE, e.g. `SOLD_OUT`), so the gateway can answer 409 with
/// a problem type of its own instead of one generic conflict.
pub fn refused(reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, REFUSAL_DOMAIN, std::collections::HashMap::new());
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// The [`refused`] reason of a user who has not verified their email yet: unlike the other
/// refusals a 403 at the gateway, since it is about the caller, not the thing they asked for.
pub const EMAIL_UNVERIFIED: &str = "EMAIL_UNVERIFIED";

/// The `ErrorInfo` reason of `idempotency::key_reused`: the gateway answers 422 for it alone,
/// a key a service merely finds malformed being a bad field like any other.
pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";

/// The `ErrorInfo` reason of identity's `UNAVAILABLE` when an OpenID provider failed: the
/// gateway answers 502, the failure being a third party's (ADR 0045).
pub const OIDC_PROVIDER_FAILED: &str = "OIDC_PROVIDER_FAILED";

/// The reason a [`refused`] status names, if it names one.
pub fn refusal_reason(status: &Status) -> Option<String> {
    status.get_details_error_info().filter(|i| i.domain == REFUSAL_DOMAIN).map(|i| i.reason)
}

/// A status telling the caller when to retry.
pub fn retry_after(code: Code, message: impl Into<String>, after: Duration) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(after)))
}

/// `status` as a `google.rpc.Status` message, its details included: how a batch answers
/// one item that failed as its own call would have.
pub fn to_message(status: &Status) -> tonic_types::pb::Status {
    use prost::Message as _;
    // tonic keeps a status's details as an encoded google.rpc.Status (empty when none).
    let details = tonic_types::pb::Status::decode(status.details()).map(|s| s.details).unwrap_or_default();
    tonic_types::pb::Status { code: status.code() as i32, message: status.message().to_owned(), details }
}

/// The status a [`to_message`] carried, as the item's own call would have returned it.
pub fn from_message(message: tonic_types::pb::Status) -> Status {
    use prost::Message as _;
    let code = Code::from(message.code);
    let text = message.message.clone();
    if message.details.is_empty() {
        Status::new(code, text)
    } else {
        Status::with_details(code, text, message.encode_to_vec().into())
    }
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
        let status = refused("SOLD_OUT", "2 left");
        assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "2 left"));
        assert_eq!(refusal_reason(&status).as_deref(), Some("SOLD_OUT"));
        assert_eq!(refusal_reason(&Status::failed_precondition("no details")), None);
    }

    #[test]
    fn a_status_survives_a_trip_through_its_message() {
        let refusal = from_message(to_message(&refused("SOLD_OUT", "2 left")));
        assert_eq!((refusal.code(), refusal.message()), (Code::FailedPrecondition, "2 left"));
        assert_eq!(refusal_reason(&refusal).as_deref(), Some("SOLD_OUT"));
        let invalid = from_message(to_message(&invalid_argument("bad", &[FieldViolation::new("hold", "is required")])));
        assert_eq!(invalid.get_details_bad_request().unwrap().field_violations[0].field, "hold");
        let plain = to_message(&Status::unauthenticated("an access token is required"));
        assert_eq!((plain.code, plain.details.len()), (Code::Unauthenticated as i32, 0));
        let plain = from_message(plain);
        assert_eq!((plain.code(), plain.message()), (Code::Unauthenticated, "an access token is required"));
    }
}
