//! Every error the gateway answers: RFC 9457 `application/problem+json`, with a
//! stable `type` per kind of problem and, for bad input, one entry per bad field.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;
use utoipa::ToSchema;

use crate::waiting_room::{RoomError, queue_url};

/// Base of every problem `type` URI; the last segment names the kind.
pub const TYPE_BASE: &str = "https://ticketing.dev/problems/";

/// A refusal a backend names with `platform::status::refused`: a 409 with a problem type of
/// its own (the reason in kebab-case), so that clients can tell sold out from over the
/// limit, and neither from a rate limit (I8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The backend's `ErrorInfo.reason`, e.g. `SOLD_OUT`.
    pub reason: &'static str,
    /// The problem's title.
    pub title: &'static str,
    /// When it happens, for the API document.
    pub meaning: &'static str,
}

impl Refusal {
    /// The problem type's last segment: `SOLD_OUT` is `sold-out`.
    pub fn slug(&self) -> String {
        self.reason.to_ascii_lowercase().replace('_', "-")
    }
}

/// Every refusal reason the gateway names; any other is the generic 409 `conflict`.
pub const REFUSALS: [Refusal; 9] = [
    Refusal { reason: "SOLD_OUT", title: "Sold out", meaning: "not enough tickets are left; nothing was held" },
    Refusal { reason: "SEAT_TAKEN", title: "Seat taken", meaning: "a chosen seat is held or sold; nothing was held" },
    Refusal {
        reason: "NO_ADJACENT_SEATS",
        title: "No adjacent seats",
        meaning: "no row has that many adjacent free seats; nothing was held",
    },
    Refusal {
        reason: "LIMIT_EXCEEDED",
        title: "Over the ticket limit",
        meaning: "the event's per-buyer limit, counting holds and bookings, would be exceeded",
    },
    Refusal { reason: "NOT_ON_SALE", title: "Not on sale", meaning: "outside the sale window, or the sale is over" },
    Refusal { reason: "HOLD_EXPIRED", title: "Hold expired", meaning: "the hold expired before it was booked" },
    Refusal {
        reason: "HOLD_ENDED",
        title: "Hold already ended",
        meaning: "the hold was confirmed, released or expired and cannot change any more",
    },
    Refusal {
        reason: "CANCELLATION_CLOSED",
        title: "Cancellation closed",
        meaning: "the event's cancellation cut-off has passed",
    },
    Refusal {
        reason: "TICKET_SCANNED",
        title: "Ticket already used",
        meaning: "a ticket of the booking was scanned at the gate, so it can no longer be cancelled",
    },
];

/// The refusal named `reason`.
pub fn refusal(reason: &str) -> Option<&'static Refusal> {
    REFUSALS.iter().find(|r| r.reason == reason)
}

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, e.g. `email` or `page.cursor`.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

/// A URL in a problem, boxed: it is rare, and problems travel in every `Result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Url(pub String);

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, stable across releases.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The bad fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The event's waiting-room queue to join, when a hold needs an admission pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub queue_url: Option<Box<Url>>,
    /// Seconds to wait before retrying (also in `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl Problem {
    /// A problem of kind `slug` with `status`.
    pub fn new(status: StatusCode, slug: &str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{TYPE_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            queue_url: None,
            retry_after: None,
        }
    }

    /// 400 for a request whose fields are wrong, listing each.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; ");
        Self { errors, ..Self::new(StatusCode::BAD_REQUEST, "validation-error", "Invalid request", detail) }
    }

    /// 400 for one bad field.
    pub fn field(field: &str, detail: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError { field: field.to_owned(), detail: detail.into() }])
    }

    /// 401: no or a bad bearer token.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required", detail)
    }

    /// 403: the caller's role does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    /// 403 for a user who has not verified their email yet, refused a hold or a queue.
    pub fn email_unverified(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "email-unverified", "Email not verified", detail)
    }

    /// 404 for an unknown path or resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(detail: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests", detail)
        }
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Temporarily unavailable", detail)
        }
    }
}

impl Problem {
    fn render(&self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(after) = self.retry_after {
            // Rounded up: a client that waits what it was told is not refused again.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }

    /// What a client may read of a server error: its type and a sentence naming the request,
    /// never the cause (a backend's address, a library's error text).
    pub fn public(&self, request_id: &str) -> Self {
        let what = match self.status {
            503 => "Temporarily unavailable; retry after the Retry-After delay.",
            504 => "A backend ran out of time; retry after the Retry-After delay.",
            _ => "Something failed on our side.",
        };
        let detail = if request_id.is_empty() { what.to_owned() } else { format!("{what} Request id: {request_id}.") };
        Self { detail, errors: Vec::new(), queue_url: None, ..self.clone() }
    }
}

/// A server error's whole problem, riding on its response to [`conceal`], which logs it.
#[derive(Clone)]
struct Concealed(std::sync::Arc<Problem>);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        if self.status < 500 {
            return self.render();
        }
        let mut response = self.public("").render();
        response.extensions_mut().insert(Concealed(std::sync::Arc::new(self)));
        response
    }
}

/// For a server error's answer: logs its whole problem with the request id and tells the
/// client only the request id (see [`Problem::public`]).
pub fn conceal(request_id: &str, response: &mut Response) {
    let Some(Concealed(problem)) = response.extensions_mut().remove::<Concealed>() else { return };
    tracing::warn!(request_id, status = problem.status, kind = %problem.kind, detail = %problem.detail, "server error");
    let public = serde_json::to_vec(&problem.public(request_id)).unwrap_or_default();
    response.headers_mut().remove(header::CONTENT_LENGTH);
    *response.body_mut() = axum::body::Body::from(public);
}

/// A backend's status, as the public API says it.
impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Self {
        let details = tonic_types::StatusExt::get_error_details(&status);
        let message = status.message().to_owned();
        let retry_after = details.retry_info().and_then(|r| r.retry_delay).unwrap_or(Duration::from_secs(1));
        match status.code() {
            Code::InvalidArgument => {
                let errors: Vec<FieldError> = details
                    .bad_request()
                    .map(|b| {
                        b.field_violations
                            .iter()
                            .map(|v| FieldError { field: v.field.clone(), detail: v.description.clone() })
                            .collect()
                    })
                    .unwrap_or_default();
                let reason = ticketing_platform::status::refusal_reason(&status);
                if reason.as_deref() == Some(ticketing_platform::status::IDEMPOTENCY_KEY_REUSED) {
                    return Self {
                        errors,
                        ..Self::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "idempotency-key-reused",
                            "Idempotency key reused",
                            message,
                        )
                    };
                }
                Self { errors, ..Self::new(StatusCode::BAD_REQUEST, "validation-error", "Invalid request", message) }
            }
            Code::Unauthenticated => Self::unauthenticated(message),
            Code::PermissionDenied => Self::forbidden(message),
            Code::NotFound => Self::not_found(message),
            Code::AlreadyExists => Self::new(StatusCode::CONFLICT, "already-exists", "Already exists", message),
            Code::FailedPrecondition => match ticketing_platform::status::refusal_reason(&status) {
                Some(reason) if reason == ticketing_platform::status::EMAIL_UNVERIFIED => {
                    Self::email_unverified(message)
                }
                reason => match reason.as_deref().and_then(refusal) {
                    Some(r) => Self::new(StatusCode::CONFLICT, &r.slug(), r.title, message),
                    None => Self::new(StatusCode::CONFLICT, "conflict", "Not possible now", message),
                },
            },
            Code::Aborted => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::CONFLICT, "in-progress", "Request in progress", message)
            },
            // Only identity's login throttling sends it, a limiter like the gateway's own;
            // refusals (sold out, over the limit) are FAILED_PRECONDITION above (I8).
            Code::ResourceExhausted => Self::rate_limited(message, retry_after),
            Code::Unavailable => Self::unavailable(message, retry_after),
            // The connection broke while the backend answered (it died or restarted
            // mid-answer): tonic says UNKNOWN and keeps the transport's error as the source,
            // which a backend's own UNKNOWN never carries. The outcome is as unknown as
            // with UNAVAILABLE, and as safe to retry with the same idempotency key.
            Code::Unknown if std::error::Error::source(&status).is_some() => {
                tracing::warn!(message, "connection to a backend lost mid-answer");
                Self::unavailable("the connection to a backend was lost; retry", retry_after)
            }
            // Sent by a backend that is up but ran out of time itself; a backend that does not
            // answer at all is UNAVAILABLE by then (`resilience::unreachable`).
            Code::DeadlineExceeded | Code::Cancelled => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", "A backend ran out of time", message)
            },
            _ => {
                tracing::error!(code = ?status.code(), message, "backend failed");
                Self::new(StatusCode::BAD_GATEWAY, "backend-error", "A backend failed", "")
            }
        }
    }
}

/// The waiting room's refusals and failures, as the public API says them.
impl From<RoomError> for Problem {
    fn from(e: RoomError) -> Self {
        let pass = |slug: &str, title: &'static str, detail: &'static str| {
            Self::new(StatusCode::FORBIDDEN, slug, title, detail)
        };
        match e {
            RoomError::Catalog(status) => status.into(),
            RoomError::NoRedis | RoomError::Redis(_) => {
                // The queue cannot be served, and letting everybody through would defeat it.
                tracing::warn!(error = %e, "waiting room: Redis failed");
                Self::unavailable("the waiting room is unavailable; retry shortly", Duration::from_secs(1))
            }
            RoomError::SaleClosed => {
                Self::new(StatusCode::CONFLICT, "sale-closed", "Not on sale", "the event's sale is over")
            }
            RoomError::NoWaitingRoom => Self::new(
                StatusCode::CONFLICT,
                "no-waiting-room",
                "No waiting room",
                "this event's sale has no queue: hold tickets directly",
            ),
            RoomError::NoSuchTicket => Self::not_found("no such ticket in this event's queue"),
            RoomError::NotYourTicket => Self::forbidden("the ticket belongs to another buyer"),
            RoomError::PassRequired { event } => Self {
                queue_url: Some(Box::new(Url(queue_url(event)))),
                ..pass(
                    "admission-pass-required",
                    "Admission pass required",
                    "this sale runs through a waiting room: join its queue and hold with the Admission-Pass it gives you",
                )
            },
            RoomError::PassInvalid(detail) => pass("admission-pass-invalid", "Invalid admission pass", detail),
            RoomError::PassExpired => pass(
                "admission-pass-expired",
                "Admission pass expired",
                "the pass's time ran out; it cannot be renewed",
            ),
            RoomError::PassUsed => Self::new(
                StatusCode::CONFLICT,
                "admission-pass-used",
                "Admission pass already used",
                "a pass admits one hold",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_lost_mid_answer_is_retryable_and_a_backends_unknown_is_not() {
        // What tonic makes of a response body cut off by a backend killed mid-answer.
        let cut = tonic::Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert_eq!(cut.code(), Code::Unknown);
        let problem = Problem::from(cut);
        assert_eq!((problem.status, problem.retry_after), (503, Some(Duration::from_secs(1))));

        let sent = Problem::from(tonic::Status::unknown("the backend's own failure"));
        assert_eq!((sent.status, sent.retry_after), (502, None));
    }

    #[test]
    fn field_violations_become_errors_and_key_reuse_is_422() {
        let status = ticketing_platform::status::invalid_argument(
            "bad",
            &[ticketing_platform::status::FieldViolation::new("email", "is required")],
        );
        let problem = Problem::from(status);
        assert_eq!((problem.status, problem.kind.as_str()), (400, "https://ticketing.dev/problems/validation-error"));
        assert_eq!(problem.errors, [FieldError { field: "email".into(), detail: "is required".into() }]);

        assert_eq!(Problem::from(ticketing_platform::idempotency::key_reused()).status, 422);
        // A key a service finds malformed is the caller's bad field, not a key reused.
        let malformed = ticketing_platform::status::invalid_argument(
            "invalid idempotency key",
            &[ticketing_platform::status::FieldViolation::new("idempotency_key", "must be printable")],
        );
        assert_eq!(Problem::from(malformed).status, 400);
    }

    #[test]
    fn named_refusals_are_409s_of_their_own_type_without_retry_after() {
        for (reason, kind, title) in [
            ("SOLD_OUT", "sold-out", "Sold out"),
            ("SEAT_TAKEN", "seat-taken", "Seat taken"),
            ("NO_ADJACENT_SEATS", "no-adjacent-seats", "No adjacent seats"),
            ("LIMIT_EXCEEDED", "limit-exceeded", "Over the ticket limit"),
            ("CANCELLATION_CLOSED", "cancellation-closed", "Cancellation closed"),
            ("TICKET_SCANNED", "ticket-scanned", "Ticket already used"),
        ] {
            let problem = Problem::from(ticketing_platform::status::refused(reason, "4 left"));
            assert_eq!((problem.status, problem.kind.as_str()), (409, format!("{TYPE_BASE}{kind}").as_str()));
            assert_eq!((problem.title, problem.detail.as_str()), (title, "4 left"));
            let response = problem.into_response();
            assert!(response.headers().get(header::RETRY_AFTER).is_none(), "{reason}: not a rate limit");
        }
        let unknown = Problem::from(ticketing_platform::status::refused("SOMETHING_NEW", "no"));
        assert_eq!((unknown.status, unknown.kind.as_str()), (409, "https://ticketing.dev/problems/conflict"));
        let plain = Problem::from(tonic::Status::failed_precondition("stale version"));
        assert_eq!(plain.kind, "https://ticketing.dev/problems/conflict");
        let slugs: std::collections::HashSet<String> = REFUSALS.iter().map(Refusal::slug).collect();
        assert_eq!(slugs.len(), REFUSALS.len(), "one type per reason");
    }

    #[test]
    fn an_unverified_email_is_a_403_about_the_caller() {
        let reason = ticketing_platform::status::EMAIL_UNVERIFIED;
        let problem = Problem::from(ticketing_platform::status::refused(reason, "verify first"));
        assert_eq!((problem.status, problem.kind.as_str()), (403, "https://ticketing.dev/problems/email-unverified"));
        assert!(refusal(reason).is_none(), "not one of the 409 refusals");
    }

    #[test]
    fn only_a_limiter_is_a_rate_limit() {
        let throttled = ticketing_platform::status::retry_after(
            Code::ResourceExhausted,
            "too many attempts",
            Duration::from_secs(7),
        );
        let response = Problem::from(throttled).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let early =
            ticketing_platform::status::retry_after(Code::ResourceExhausted, "wait", Duration::from_millis(1200));
        assert_eq!(Problem::from(early).into_response().headers()[header::RETRY_AFTER], "2", "rounded up");
    }

    #[tokio::test]
    async fn server_errors_name_the_request_and_never_their_cause() {
        let leaky = Problem::unavailable(
            "cannot verify tokens now: GET http://identity:8080/jwks: reqwest error",
            Duration::from_secs(2),
        );
        let mut response = leaky.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        conceal("req-7", &mut response);
        let body = axum::body::to_bytes(std::mem::take(response.body_mut()), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["type"], "https://ticketing.dev/problems/unavailable");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("req-7") && !detail.contains("http") && !detail.contains("reqwest"), "{body}");
        // A client error keeps its detail: it is about the request.
        let mut conflict = Problem::from(tonic::Status::failed_precondition("stale version")).into_response();
        conceal("req-8", &mut conflict);
        let body = axum::body::to_bytes(std::mem::take(conflict.body_mut()), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("stale version"));
    }

    #[test]
    fn unknown_backend_failures_are_502_without_their_message() {
        let problem = Problem::from(tonic::Status::internal("stack trace"));
        assert_eq!(problem.status, 502);
        assert!(problem.detail.is_empty());
        let response = Problem::unavailable("busy", Duration::from_secs(3)).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
