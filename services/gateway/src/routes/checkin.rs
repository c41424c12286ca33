//! Checking tickets in at the gate, over notification.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use ticketing_platform::auth::Role;
use ticketing_proto::notification::v1 as pb;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::Ticket;
use crate::extract::{Caller, Json, id};
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check_in))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    /// The scanned QR code: a ticket's static `code`, or its rotating code
    /// (`<code>~<totp>`, see a ticket's `rotation`).
    pub code: String,
    /// The event this gate admits to.
    pub event_id: String,
    /// Which gate or device scanned it, for the audit log.
    #[serde(default)]
    pub gate_id: String,
    /// Admit only rotating codes: a static code (emailed, printed, a screenshot of one)
    /// answers `rotating_code_required`. Leave it off at gates that must also take
    /// static codes. A rotating code's time value is checked either way.
    #[serde(default)]
    pub require_rotating: bool,
}

/// The verdict on a ticket the platform recognised.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckIn {
    /// Whether to let the holder in.
    pub admit: bool,
    /// `valid` (now marked scanned), `already_scanned` (see `ticket.scanned_at`),
    /// `wrong_event`, `revoked`, `stale_code` (a rotating code whose time value is not
    /// current: a screenshot, or the holder's clock far off) or `rotating_code_required`
    /// (a static code where `require_rotating` was asked).
    pub result: String,
    pub ticket: Option<Ticket>,
}

/// Checks a scanned ticket in: the first scan of a valid ticket admits and marks it
/// scanned (atomically, so a second scan anywhere answers `already_scanned`). A code the
/// platform did not sign, or whose ticket it does not know, is a 422 `invalid-ticket`.
/// A stale rotating code, or a static one where rotating codes are required, does not
/// admit and leaves the ticket unscanned.
/// The event's organizer (gate staff) or an admin.
#[utoipa::path(post, path = "/v1/checkin", tag = "checkin", security(("bearer" = [])),
    request_body = CheckInBody,
    responses((status = 200, body = CheckIn), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn check_in(
    State(s): State<AppState>,
    caller: Caller,
    Json(b): Json<CheckInBody>,
) -> Result<axum::Json<CheckIn>, Problem> {
    caller.require(Role::Organizer)?;
    id("event_id", &b.event_id)?;
    let request = caller.request(pb::VerifyTicketRequest {
        code: b.code,
        event_id: b.event_id,
        gate_id: b.gate_id,
        require_rotating: b.require_rotating,
    });
    let verified = s.backends.notification.clone().verify_ticket(request).await?.into_inner();
    let result = match verified.result() {
        pb::VerificationResult::Valid => "valid",
        pb::VerificationResult::AlreadyScanned => "already_scanned",
        pb::VerificationResult::WrongEvent => "wrong_event",
        pb::VerificationResult::Revoked => "revoked",
        pb::VerificationResult::StaleCode => "stale_code",
        pb::VerificationResult::RotatingCodeRequired => "rotating_code_required",
        pb::VerificationResult::InvalidSignature | pb::VerificationResult::UnknownTicket => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-ticket",
                "Not a valid ticket",
                "the code is not a ticket this platform issued",
            ));
        }
        pb::VerificationResult::Unspecified => return Err(tonic::Status::internal("no verification result").into()),
    };
    Ok(axum::Json(CheckIn {
        admit: verified.result() == pb::VerificationResult::Valid,
        result: result.into(),
        ticket: verified.ticket.map(Into::into),
    }))
}
