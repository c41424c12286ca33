//! Holding tickets, over inventory.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_proto::inventory::v1 as pb;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{instant, non_empty};
use crate::extract::{AdmissionPass, Caller, IdempotencyKey, Json, PathId};
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(hold)).routes(routes!(release))
}

/// What to hold: a quantity of a general-admission category, exact seats, or the
/// best available seats of a seated category.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// GA or best-available: the category.
    pub category_id: Option<String>,
    /// GA or best-available: how many tickets.
    pub quantity: Option<u32>,
    /// Reserved seating: these seats.
    pub seat_ids: Option<Vec<String>>,
    /// Pick the best free seats of `category_id`.
    #[serde(default)]
    pub best_available: bool,
    /// With `best_available`: only adjacent seats in one row.
    #[serde(default)]
    pub require_adjacent: bool,
}

/// One line of a hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldLine {
    pub category_id: String,
    pub quantity: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seat_ids: Vec<String>,
}

/// Tickets held for the caller until `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hold {
    pub id: String,
    pub event_id: String,
    /// `active`, `confirmed`, `released`, `expired` or `restocked`.
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub lines: Vec<HoldLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
}

impl From<pb::HoldDetails> for Hold {
    fn from(h: pb::HoldDetails) -> Self {
        let status = match h.status() {
            pb::HoldStatus::Active => "active",
            pb::HoldStatus::Confirmed => "confirmed",
            pb::HoldStatus::Released => "released",
            pb::HoldStatus::Expired => "expired",
            pb::HoldStatus::Restocked => "restocked",
            pb::HoldStatus::Unspecified => "unknown",
        };
        Self {
            id: h.hold_id,
            event_id: h.event_id,
            status: status.into(),
            expires_at: instant(h.expires_at),
            lines: h
                .lines
                .into_iter()
                .map(|l| HoldLine { category_id: l.category_id, quantity: l.quantity, seat_ids: l.seat_ids })
                .collect(),
            booking_id: non_empty(h.booking_id),
        }
    }
}

fn selection(b: HoldBody) -> Result<pb::hold_request::Selection, Problem> {
    use pb::hold_request::Selection;
    match (b.category_id, b.quantity, b.seat_ids) {
        (None, None, Some(seat_ids)) if !b.best_available => Ok(Selection::Seats(pb::SeatSelection { seat_ids })),
        (Some(category_id), Some(quantity), None) if b.best_available => {
            Ok(Selection::BestAvailable(pb::BestAvailableSelection {
                category_id,
                quantity,
                require_adjacent: b.require_adjacent,
            }))
        }
        (Some(category_id), Some(quantity), None) => {
            Ok(Selection::GeneralAdmission(pb::GeneralAdmissionSelection { category_id, quantity }))
        }
        _ => Err(Problem::field(
            "body",
            "send either category_id and quantity (with best_available for seats), or seat_ids",
        )),
    }
}

/// Holds tickets for the caller. With an `Idempotency-Key`, a retry returns the first hold.
/// An event in on-sale mode (with a waiting room) needs the caller's admission pass, which a
/// successful hold uses up; a failed hold gives it back.
#[utoipa::path(post, path = "/v1/events/{id}/holds", tag = "holds", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 255 printable ASCII characters"),
           ("Admission-Pass" = Option<String>, Header,
            description = "The pass from the event's waiting room; required when the event has one")),
    request_body = HoldBody,
    responses((status = 201, body = Hold), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem,
               description = "No, an invalid or an expired admission pass (`queue_url` says where to queue), or \
                              `email-unverified`: the caller has not verified their email yet"),
              (status = 409, body = Problem,
               description = "Refused, each with its own type and no `Retry-After` (retrying does not help): \
                              `sold-out` (not enough tickets left), `seat-taken` (a chosen seat is held or sold), \
                              `no-adjacent-seats` (no row has that many adjacent free seats), `limit-exceeded` \
                              (over the event's per-buyer limit, counting holds and bookings), `not-on-sale` \
                              (outside the sale window), `admission-pass-used`; or `in-progress` (a request \
                              with this `Idempotency-Key` is still running). Nothing was held.")))]
async fn hold(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: event, uuid: event_id }: PathId,
    IdempotencyKey(key): IdempotencyKey,
    AdmissionPass(pass): AdmissionPass,
    Json(body): Json<HoldBody>,
) -> Result<(StatusCode, axum::Json<Hold>), Problem> {
    let selection = selection(body)?;
    let admission = s.waiting_room.admit(&s.backends, caller.0.user_id, event_id, pass.as_deref(), &key).await?;
    let request = pb::HoldRequest { event_id: event, selection: Some(selection), idempotency_key: key };
    let held = s.backends.inventory_calls.hold(&caller, request).await;
    s.waiting_room.settle(admission, held.is_ok()).await;
    Ok((StatusCode::CREATED, axum::Json(held?.into())))
}

/// Releases the caller's hold; releasing twice is fine.
#[utoipa::path(delete, path = "/v1/holds/{id}", tag = "holds", security(("bearer" = [])),
    params(("id" = String, Path, description = "Hold id (64 hex digits)")),
    responses((status = 200, body = Hold), (status = 400, body = Problem, description = "A malformed hold id"),
              (status = 401, body = Problem), (status = 403, body = Problem, description = "Another buyer's hold"),
              (status = 404, body = Problem, description = "No such hold, or it ended longer ago than inventory keeps \
                                                            ended holds (`inventory.ended_hold_retention`, 1 hour by default)"),
              (status = 409, body = Problem, description = "`hold-ended`: the hold was confirmed (booked and paid)")))]
async fn release(
    State(s): State<AppState>,
    caller: Caller,
    Path(hold): Path<String>,
) -> Result<axum::Json<Hold>, Problem> {
    let request = pb::ReleaseRequest { hold_id: hold };
    Ok(axum::Json(s.backends.inventory_calls.release(&caller, request).await?.into()))
}
