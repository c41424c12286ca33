//! The waiting room of events in on-sale mode: joining the queue and watching one's place.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Caller, PathId, id};
use crate::problem::Problem;
use crate::state::AppState;
use crate::waiting_room::{Place, Standing, queue_url};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(join)).routes(routes!(status))
}

/// A buyer's place in an event's queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueTicket {
    /// The ticket; poll `status_url` with it.
    pub ticket: String,
    pub event_id: String,
    /// `waiting` (the sale has not opened; no position yet: early joiners are shuffled at
    /// opening), `queued`, `admitted` (hold with `admission_pass` before `pass_expires_at`), or
    /// `expired` (the pass ran out).
    pub status: String,
    /// Place in line from the opening on, 1 first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Until the sale opens (`waiting`) or until the buyer's turn (`queued`), rounded up.
    pub estimated_wait_seconds: u64,
    /// When the sale opens.
    pub opens_at: DateTime<Utc>,
    /// Send as the `Admission-Pass` header of `POST /v1/events/{id}/holds`; good for one hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_pass: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_expires_at: Option<DateTime<Utc>>,
    /// Where to poll.
    pub status_url: String,
}

impl QueueTicket {
    fn new(event: uuid::Uuid, place: Place) -> Self {
        let (status, admission_pass, pass_expires_at) = match place.standing {
            Standing::Waiting => ("waiting", None, None),
            Standing::Queued => ("queued", None, None),
            Standing::Admitted { pass, expires_at } => ("admitted", Some(pass), Some(expires_at)),
            Standing::Expired => ("expired", None, None),
        };
        Self {
            status_url: format!("{}/{}", queue_url(event), place.ticket),
            ticket: place.ticket,
            event_id: event.to_string(),
            status: status.into(),
            position: place.position,
            estimated_wait_seconds: place.wait.as_millis().div_ceil(1000) as u64,
            opens_at: place.opens_at,
            admission_pass,
            pass_expires_at,
        }
    }
}

/// Joins the event's waiting room; joining again returns the same ticket (200 instead of 201).
#[utoipa::path(post, path = "/v1/events/{id}/queue", tag = "waiting room", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    responses((status = 201, body = QueueTicket), (status = 200, body = QueueTicket, description = "Already queued"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem, description = "`email-unverified`: the caller has not verified their email"),
              (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The event has no waiting room or its sale is over"),
              (status = 503, body = Problem)))]
async fn join(
    State(s): State<AppState>,
    caller: Caller,
    PathId { uuid: event, .. }: PathId,
) -> Result<(StatusCode, axum::Json<QueueTicket>), Problem> {
    // A queue place is a chance to buy: accounts made in bulk without an inbox would each
    // take one, and crowd out real buyers.
    if !caller.0.may_buy() {
        return Err(Problem::email_unverified("verify your email address before joining the queue"));
    }
    let (place, created) = s.waiting_room.join(&s.backends, caller.0.user_id, event).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(QueueTicket::new(event, place))))
}

/// Where the caller's ticket stands: its position, the estimated wait, and once admitted the pass.
#[utoipa::path(get, path = "/v1/events/{id}/queue/{ticket}", tag = "waiting room", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id"), ("ticket" = String, Path, description = "Queue ticket")),
    responses((status = 200, body = QueueTicket), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem, description = "Another buyer's ticket"), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The event has no waiting room"),
              (status = 503, body = Problem)))]
async fn status(
    State(s): State<AppState>,
    caller: Caller,
    Path((event, ticket)): Path<(String, String)>,
) -> Result<axum::Json<QueueTicket>, Problem> {
    let event = id("id", &event)?;
    let ticket = id("ticket", &ticket)?;
    let place = s.waiting_room.place(&s.backends, caller.0.user_id, event, ticket).await?;
    Ok(axum::Json(QueueTicket::new(event, place)))
}
