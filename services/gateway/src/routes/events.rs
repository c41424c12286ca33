//! Browsing events and their availability, over catalog and inventory.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_kernel::time::to_proto;
use ticketing_platform::auth::Role;
use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::inventory::v1 as inventory;
use tonic::IntoRequest as _;
use tower_http::compression::CompressionLayer;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Fields, instant, non_empty, page, query};
use super::dto::{Money, Page};
use crate::extract::{Caller, Json, PathId};
use crate::problem::Problem;
use crate::resilience::caller_paced;
use crate::snapshot::{NotModified, Revalidation};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events, create_event))
        .routes(routes!(get_event, update_event))
        .merge(OpenApiRouter::new().routes(routes!(availability)).layer(CompressionLayer::new()))
        .routes(routes!(create_category))
        .routes(routes!(publish))
        .routes(routes!(start_sale))
        .routes(routes!(close_sale))
        .routes(routes!(cancel_event))
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
    /// Incremented by every change; send it back as `expected_version`.
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    pub waiting_room: WaitingRoom,
    pub cancellation_policy: CancellationPolicy,
}

/// When buyers may cancel a paid booking themselves for a refund (admins may always refund
/// by hand, with a reason). The default lets buyers cancel until the event starts; never after.
/// Changeable until the sale starts, so buyers keep the terms they bought under.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationPolicy {
    /// All sales final: buyers may not cancel at all.
    #[serde(default)]
    pub no_buyer_cancellation: bool,
    /// Buyers may cancel until this many minutes before `starts_at` (0: until the start; at
    /// most 525,600, a year).
    #[serde(default)]
    pub cutoff_minutes: u32,
}

impl From<CancellationPolicy> for pb::CancellationPolicy {
    fn from(c: CancellationPolicy) -> Self {
        Self { no_buyer_cancellation: c.no_buyer_cancellation, cutoff_minutes: c.cutoff_minutes }
    }
}

/// A sale's waiting room ("on-sale mode"): buyers queue at `POST /v1/events/{id}/queue` and
/// hold only with the admission pass it gives them, admitted at `admission_per_minute` from
/// `sale_starts_at`. Changeable until the sale starts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoom {
    pub enabled: bool,
    /// Buyers admitted per minute: 1 to 1,000,000 when enabled (0 when disabled).
    #[serde(default)]
    pub admission_per_minute: u32,
}

impl From<WaitingRoom> for pb::WaitingRoom {
    fn from(w: WaitingRoom) -> Self {
        Self { enabled: w.enabled, admission_per_minute: w.admission_per_minute }
    }
}

impl From<pb::Category> for Category {
    fn from(c: pb::Category) -> Self {
        Self {
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
        }
    }
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
            categories: e.categories.into_iter().map(Into::into).collect(),
            version: e.version,
            cancellation_reason: non_empty(e.cancellation_reason),
            waiting_room: e.waiting_room.map_or_else(WaitingRoom::default, |w| WaitingRoom {
                enabled: w.enabled,
                admission_per_minute: w.admission_per_minute,
            }),
            cancellation_policy: e.cancellation_policy.map_or_else(CancellationPolicy::default, |c| {
                CancellationPolicy { no_buyer_cancellation: c.no_buyer_cancellation, cutoff_minutes: c.cutoff_minutes }
            }),
        }
    }
}

/// Search parameters of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Published and on-sale events, soonest first, with keyset pagination.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = Page<Event>), (status = 400, body = Problem)))]
async fn list_events(
    State(s): State<AppState>,
    q: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Page<Event>>, Problem> {
    let q = query(q)?;
    let mut fields = Fields::default();
    let starts_from = fields.instant("from", q.from.as_deref());
    let starts_before = fields.instant("to", q.to.as_deref());
    if let Some(venue) = q.venue.as_deref() {
        fields.id("venue", venue);
    }
    fields.check()?;
    let request = pb::ListEventsRequest {
        query: q.q.unwrap_or_default(),
        starts_from,
        starts_before,
        venue_id: q.venue.unwrap_or_default(),
        page: Some(page(q.cursor, q.limit)?),
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
async fn get_event(State(s): State<AppState>, PathId { raw: event, .. }: PathId) -> Result<axum::Json<Event>, Problem> {
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    /// Also list every seat's state.
    pub seats: Option<bool>,
}

/// Counts per category, and optionally every seat's state. With `seats=true` the answer
/// comes from a snapshot up to `gateway.snapshot_ttl` old (a few seconds; holds are still
/// decided by inventory) with an `ETag`, is rate-limited more tightly, and an
/// `If-None-Match` naming the current snapshot is a 304.
#[utoipa::path(get, path = "/v1/events/{id}/availability", tag = "events",
    params(("id" = String, Path, description = "Event id"), AvailabilityQuery, Revalidation),
    responses((status = 200, body = Availability,
               headers(("ETag" = String, description = "With `seats=true`: the snapshot's strong entity tag"))),
              NotModified,
              (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn availability(
    State(s): State<AppState>,
    PathId { raw: event, .. }: PathId,
    q: Result<Query<AvailabilityQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let q = query(q)?;
    if !q.seats.unwrap_or(false) {
        return Ok(axum::Json(load_availability(&s, event, false).await?).into_response());
    }
    let snapshot = s.snapshots.get("availability", &event, load_availability(&s, event.clone(), true)).await?;
    Ok(snapshot.respond(&headers))
}

async fn load_availability(s: &AppState, event: String, include_seats: bool) -> Result<Availability, Problem> {
    let request = inventory::AvailabilityRequest { event_id: event, include_seats, category_ids: vec![] };
    // Every seat of a stadium is slow when Redis is busy, and says little about inventory.
    let request = if include_seats { caller_paced(request.into_request()) } else { request.into_request() };
    let a = s.backends.inventory.clone().availability(request).await?.into_inner();
    Ok(Availability {
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
    })
}

/// A new event, created as a draft at a venue the caller owns.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventBody {
    pub venue_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA time zone; defaults to the venue's.
    pub time_zone: Option<String>,
    /// Holds are accepted from this instant (required to publish).
    pub sale_starts_at: Option<DateTime<Utc>>,
    /// Until this instant (exclusive; required to publish).
    pub sale_ends_at: Option<DateTime<Utc>>,
    /// Tickets one buyer may hold and buy (default 6).
    pub per_user_limit: Option<u32>,
    /// Admins only: the organizer who will own it (default: the caller).
    pub organizer_id: Option<String>,
    /// Absent: no waiting room.
    pub waiting_room: Option<WaitingRoom>,
    /// Absent: buyers may cancel until the event starts.
    pub cancellation_policy: Option<CancellationPolicy>,
}

/// Creates a draft event. Organizers at their own venues; admins anywhere, for anyone.
#[utoipa::path(post, path = "/v1/events", tag = "organizer", security(("bearer" = [])),
    request_body = CreateEventBody,
    responses((status = 201, body = Event), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn create_event(
    State(s): State<AppState>,
    caller: Caller,
    Json(b): Json<CreateEventBody>,
) -> Result<(StatusCode, axum::Json<Event>), Problem> {
    caller.require(Role::Organizer)?;
    let mut fields = Fields::default();
    fields.id("venue_id", &b.venue_id);
    if let Some(organizer) = &b.organizer_id {
        fields.id("organizer_id", organizer);
    }
    fields.check()?;
    let request = pb::CreateEventRequest {
        venue_id: b.venue_id,
        name: b.name,
        description: b.description,
        starts_at: Some(to_proto(b.starts_at)),
        ends_at: Some(to_proto(b.ends_at)),
        time_zone: b.time_zone.unwrap_or_default(),
        sale_starts_at: b.sale_starts_at.map(to_proto),
        sale_ends_at: b.sale_ends_at.map(to_proto),
        per_user_limit: b.per_user_limit,
        organizer_id: b.organizer_id.unwrap_or_default(),
        waiting_room: b.waiting_room.map(Into::into),
        cancellation_policy: b.cancellation_policy.map(Into::into),
    };
    let event = s.backends.catalog.clone().create_event(caller.request(request)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(event.into())))
}

/// Changes to an event; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventBody {
    /// Optimistic concurrency: refuse (409) unless the event's `version` still equals it.
    pub expected_version: Option<u64>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Drafts only.
    pub venue_id: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub time_zone: Option<String>,
    /// Not once on sale.
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub sale_ends_at: Option<DateTime<Utc>>,
    pub per_user_limit: Option<u32>,
    /// Replaces the setting; not once on sale.
    pub waiting_room: Option<WaitingRoom>,
    /// Replaces the policy; not once on sale.
    pub cancellation_policy: Option<CancellationPolicy>,
}

/// Changes an event. Drafts change freely; once published the venue and categories are
/// frozen (a postponement still moves the dates); closed and cancelled events are final.
/// The event's organizer or an admin.
#[utoipa::path(patch, path = "/v1/events/{id}", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    request_body = UpdateEventBody,
    responses((status = 200, body = Event), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "A stale expected_version, or not in this status")))]
async fn update_event(
    State(s): State<AppState>,
    caller: Caller,
    Path(event): Path<String>,
    Json(b): Json<UpdateEventBody>,
) -> Result<axum::Json<Event>, Problem> {
    caller.require(Role::Organizer)?;
    let mut fields = Fields::default();
    fields.id("id", &event);
    if let Some(venue) = &b.venue_id {
        fields.id("venue_id", venue);
    }
    fields.check()?;
    let request = pb::UpdateEventRequest {
        event_id: event,
        expected_version: b.expected_version,
        name: b.name,
        description: b.description,
        venue_id: b.venue_id,
        starts_at: b.starts_at.map(to_proto),
        ends_at: b.ends_at.map(to_proto),
        time_zone: b.time_zone,
        sale_starts_at: b.sale_starts_at.map(to_proto),
        sale_ends_at: b.sale_ends_at.map(to_proto),
        per_user_limit: b.per_user_limit,
        waiting_room: b.waiting_room.map(Into::into),
        cancellation_policy: b.cancellation_policy.map(Into::into),
    };
    Ok(axum::Json(s.backends.catalog.clone().update_event(caller.request(request)).await?.into_inner().into()))
}

/// A ticket category: a price and either a general-admission `capacity` (optionally on one
/// of the venue's standing areas) or a set of the venue's `seat_ids`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Of one ticket; every category of an event uses one currency.
    pub price: Money,
    /// General admission: how many tickets.
    pub capacity: Option<u32>,
    /// General admission: the standing area the tickets admit to.
    pub area_id: Option<String>,
    /// Reserved seating: these seats, each in at most one category of the event.
    pub seat_ids: Option<Vec<String>>,
}

/// Adds a ticket category to a draft event. The event's organizer or an admin.
#[utoipa::path(post, path = "/v1/events/{id}/categories", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    request_body = CategoryBody,
    responses((status = 201, body = Category), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The event is no longer a draft")))]
async fn create_category(
    State(s): State<AppState>,
    caller: Caller,
    Path(event): Path<String>,
    Json(b): Json<CategoryBody>,
) -> Result<(StatusCode, axum::Json<Category>), Problem> {
    use pb::create_category_request::Allocation;
    caller.require(Role::Organizer)?;
    let mut fields = Fields::default();
    fields.id("id", &event);
    fields.money("price", &b.price);
    if let Some(area) = &b.area_id {
        fields.id("area_id", area);
    }
    // One message for a whole stadium's seats is enough: the first bad one.
    if let Some(bad) = b.seat_ids.iter().flatten().position(|seat| uuid::Uuid::parse_str(seat).is_err()) {
        fields.bad(format!("seat_ids[{bad}]"), "must be a UUID");
    }
    let allocation = match (b.capacity, b.area_id, b.seat_ids) {
        (Some(capacity), area_id, None) => Some(Allocation::GeneralAdmission(pb::GeneralAdmissionAllocation {
            capacity,
            area_id: area_id.unwrap_or_default(),
        })),
        (None, None, Some(seat_ids)) => Some(Allocation::Seats(pb::SeatAllocation { seat_ids })),
        _ => {
            fields.bad("body", "send either capacity (with an optional area_id) or seat_ids");
            None
        }
    };
    fields.check()?;
    let request = pb::CreateCategoryRequest {
        event_id: event,
        name: b.name,
        description: b.description,
        price: Some(b.price.into()),
        allocation,
    };
    let category =
        s.backends.catalog.clone().create_category(caller_paced(caller.request(request))).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(category.into())))
}

/// Publishes a draft: it becomes public and inventory stocks its tickets. Needs a category
/// and a sale window. The event's organizer or an admin.
#[utoipa::path(post, path = "/v1/events/{id}/publish", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = Event), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn publish(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: event, .. }: PathId,
) -> Result<axum::Json<Event>, Problem> {
    caller.require(Role::Organizer)?;
    let request = caller.request(pb::PublishEventRequest { event_id: event });
    Ok(axum::Json(s.backends.catalog.clone().publish_event(request).await?.into_inner().into()))
}

/// Opens the sale of a published event now, ahead of its `sale_starts_at` (the catalog opens
/// it by itself then). Holds are still taken only within the sale window. The event's
/// organizer or an admin.
#[utoipa::path(post, path = "/v1/events/{id}/sale/start", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = Event), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn start_sale(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: event, .. }: PathId,
) -> Result<axum::Json<Event>, Problem> {
    caller.require(Role::Organizer)?;
    let request = caller.request(pb::StartSaleRequest { event_id: event });
    Ok(axum::Json(s.backends.catalog.clone().start_sale(request).await?.into_inner().into()))
}

/// Closes the sale now, ahead of its `sale_ends_at`; tickets sold stay valid. The event's
/// organizer or an admin.
#[utoipa::path(post, path = "/v1/events/{id}/sale/close", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = Event), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn close_sale(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: event, .. }: PathId,
) -> Result<axum::Json<Event>, Problem> {
    caller.require(Role::Organizer)?;
    let request = caller.request(pb::CloseEventRequest { event_id: event });
    Ok(axum::Json(s.backends.catalog.clone().close_event(request).await?.into_inner().into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelEventBody {
    /// Shown to buyers; required.
    pub reason: String,
}

/// Calls an event off; its bookings are refunded. Not once closed. The event's organizer
/// or an admin.
#[utoipa::path(post, path = "/v1/events/{id}/cancel", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    request_body = CancelEventBody,
    responses((status = 200, body = Event), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel_event(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: event, .. }: PathId,
    Json(b): Json<CancelEventBody>,
) -> Result<axum::Json<Event>, Problem> {
    caller.require(Role::Organizer)?;
    let request = caller.request(pb::CancelEventRequest { event_id: event, reason: b.reason });
    Ok(axum::Json(s.backends.catalog.clone().cancel_event(request).await?.into_inner().into()))
}
