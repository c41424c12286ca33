//! Browsing events and their availability, over catalog and inventory.

use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::inventory::v1 as inventory;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Money, Page, instant, non_empty, timestamp};
use crate::extract::id;
use crate::problem::{FieldError, Problem};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events)).routes(routes!(get_event)).routes(routes!(availability))
}

/// A ticket category of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price: Option<Money>,
    pub capacity: u32,
    /// `general_admission` or `seated`.
    pub kind: String,
}

/// An event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub organizer_id: String,
    pub venue_id: String,
    pub name: String,
    pub description: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub sale_ends_at: Option<DateTime<Utc>>,
    pub per_user_limit: u32,
    /// `draft`, `published`, `on_sale`, `closed` or `cancelled`.
    pub status: String,
    pub categories: Vec<Category>,
}

impl From<pb::Event> for Event {
    fn from(e: pb::Event) -> Self {
        let status = match e.status() {
            pb::EventStatus::Draft => "draft",
            pb::EventStatus::Published => "published",
            pb::EventStatus::OnSale => "on_sale",
            pb::EventStatus::Closed => "closed",
            pb::EventStatus::Cancelled => "cancelled",
            pb::EventStatus::Unspecified => "unknown",
        };
        let categories = e
            .categories
            .into_iter()
            .map(|c| Category {
                kind: if matches!(c.allocation, Some(pb::category::Allocation::Seats(_))) {
                    "seated"
                } else {
                    "general_admission"
                }
                .into(),
                id: c.id,
                name: c.name,
                description: c.description,
                price: c.price.map(Into::into),
                capacity: c.capacity,
            })
            .collect();
        Self {
            id: e.id,
            organizer_id: e.organizer_id,
            venue_id: e.venue_id,
            name: e.name,
            description: e.description,
            starts_at: instant(e.starts_at),
            ends_at: instant(e.ends_at),
            time_zone: e.time_zone,
            sale_starts_at: instant(e.sale_starts_at),
            sale_ends_at: instant(e.sale_ends_at),
            per_user_limit: e.per_user_limit,
            status: status.into(),
            categories,
        }
    }
}

/// Search parameters of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Full-text search over name, description and venue.
    pub q: Option<String>,
    /// Events starting at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Events starting before this instant (RFC 3339).
    pub to: Option<String>,
    /// Only this venue.
    pub venue: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

fn rfc3339(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<prost_types::Timestamp> {
    let raw = raw?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(at) => Some(timestamp(at.with_timezone(&Utc))),
        Err(_) => {
            errors.push(FieldError { field: field.into(), detail: "must be an RFC 3339 instant".into() });
            None
        }
    }
}

/// A query string that does not parse is a 400 naming the problem.
pub fn query<T>(query: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, Problem> {
    query.map(|Query(q)| q).map_err(|e| {
        Problem::new(axum::http::StatusCode::BAD_REQUEST, "invalid-query", "Invalid query string", e.body_text())
    })
}

/// Published and on-sale events, soonest first, with keyset pagination.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = Page<Event>), (status = 400, body = Problem)))]
async fn list_events(
    State(s): State<AppState>,
    q: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Page<Event>>, Problem> {
    let q = query(q)?;
    let mut errors = Vec::new();
    let starts_from = rfc3339("from", q.from.as_deref(), &mut errors);
    let starts_before = rfc3339("to", q.to.as_deref(), &mut errors);
    if let Some(venue) = q.venue.as_deref()
        && uuid::Uuid::parse_str(venue).is_err()
    {
        errors.push(FieldError { field: "venue".into(), detail: "must be a UUID".into() });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let request = pb::ListEventsRequest {
        query: q.q.unwrap_or_default(),
        starts_from,
        starts_before,
        venue_id: q.venue.unwrap_or_default(),
        page: Some(ticketing_proto::common::v1::PageRequest {
            limit: q.limit.unwrap_or(0),
            cursor: q.cursor.unwrap_or_default(),
        }),
        ..Default::default()
    };
    let found = s.backends.catalog.clone().list_events(request).await?.into_inner();
    Ok(axum::Json(Page {
        items: found.events.into_iter().map(Into::into).collect(),
        next_cursor: found.page.and_then(|p| non_empty(p.next_cursor)),
    }))
}

/// One event with its categories and prices.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = Event), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn get_event(State(s): State<AppState>, Path(event): Path<String>) -> Result<axum::Json<Event>, Problem> {
    id("id", &event)?;
    let request = pb::GetEventRequest { event_id: event, include_seat_ids: false };
    Ok(axum::Json(s.backends.catalog.clone().get_event(request).await?.into_inner().into()))
}

/// Live counts of one category.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryAvailability {
    pub category_id: String,
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

/// One seat's live state.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatAvailability {
    pub seat_id: String,
    pub category_id: String,
    /// `available`, `held` or `sold`.
    pub state: String,
}

/// An event's live availability.
#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    pub event_id: String,
    pub categories: Vec<CategoryAvailability>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<SeatAvailability>,
}

/// Parameters of the availability call.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    /// Also list every seat's state.
    pub seats: Option<bool>,
}

/// Counts per category, and optionally every seat's state; cheap enough for every page view.
#[utoipa::path(get, path = "/v1/events/{id}/availability", tag = "events",
    params(("id" = String, Path, description = "Event id"), AvailabilityQuery),
    responses((status = 200, body = Availability), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn availability(
    State(s): State<AppState>,
    Path(event): Path<String>,
    q: Result<Query<AvailabilityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Availability>, Problem> {
    let q = query(q)?;
    id("id", &event)?;
    let request = inventory::AvailabilityRequest {
        event_id: event,
        include_seats: q.seats.unwrap_or(false),
        category_ids: vec![],
    };
    let a = s.backends.inventory.clone().availability(request).await?.into_inner();
    Ok(axum::Json(Availability {
        event_id: a.event_id,
        categories: a
            .categories
            .into_iter()
            .map(|c| CategoryAvailability {
                category_id: c.category_id,
                capacity: c.capacity,
                available: c.available,
                held: c.held,
                sold: c.sold,
            })
            .collect(),
        seats: a
            .seats
            .into_iter()
            .map(|seat| SeatAvailability {
                state: match seat.state() {
                    inventory::SeatState::Available => "available",
                    inventory::SeatState::Held => "held",
                    inventory::SeatState::Sold => "sold",
                    inventory::SeatState::Unspecified => "unknown",
                }
                .into(),
                seat_id: seat.seat_id,
                category_id: seat.category_id,
            })
            .collect(),
    }))
}
