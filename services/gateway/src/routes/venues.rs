//! Venues and their seat maps, over catalog.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_platform::auth::Role;
use ticketing_proto::catalog::v1 as pb;
use tokio::sync::OwnedSemaphorePermit;
use tower_http::compression::CompressionLayer;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Fields, instant, query};
use crate::extract::{Caller, Json, PathId};
use crate::problem::Problem;
use crate::resilience::caller_paced;
use crate::snapshot::{NotModified, Revalidation};
use crate::state::AppState;

/// The venue routes; the seat-map import accepts bodies up to `max_seat_map_bytes`.
pub fn routes(max_seat_map_bytes: usize) -> OpenApiRouter<AppState> {
    let seat_map =
        OpenApiRouter::new().routes(routes!(import_seat_map)).layer(DefaultBodyLimit::max(max_seat_map_bytes));
    let venue = OpenApiRouter::new().routes(routes!(get_venue)).layer(CompressionLayer::new());
    OpenApiRouter::new().routes(routes!(create_venue)).merge(venue).merge(seat_map)
}

/// A venue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Venue {
    pub id: String,
    /// The organizer who owns it.
    pub organizer_id: String,
    pub name: String,
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country_code: String,
    /// IANA time zone, the default of its events.
    pub time_zone: String,
    pub seat_count: u32,
    /// Sum of the general-admission areas' capacities.
    pub general_admission_capacity: u32,
    /// Incremented by every seat-map import; send it back as `expected_revision`.
    pub seat_map_revision: u64,
    /// Only with `seat_map=true` and in the answer to an import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat_map: Option<SeatMap>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::Venue> for Venue {
    fn from(v: pb::Venue) -> Self {
        Self {
            id: v.id,
            organizer_id: v.organizer_id,
            name: v.name,
            address: v.address,
            city: v.city,
            country_code: v.country_code,
            time_zone: v.time_zone,
            seat_count: v.seat_count,
            general_admission_capacity: v.general_admission_capacity,
            seat_map_revision: v.seat_map_revision,
            seat_map: v.seat_map.map(Into::into),
            created_at: instant(v.created_at),
            updated_at: instant(v.updated_at),
        }
    }
}

/// A venue's layout. Ids are assigned by the server and ignored on import, so a fetched
/// seat map can be edited and sent back; seats keep their ids while their section name,
/// row name and number stay the same.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatMap {
    #[serde(default)]
    pub sections: Vec<SeatMapSection>,
    #[serde(default)]
    pub general_admission_areas: Vec<StandingArea>,
}

/// A section of seats, e.g. `Block A`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatMapSection {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Unique within the venue.
    pub name: String,
    pub rows: Vec<SeatMapRow>,
}

/// A row of seats; consecutive seats are adjacent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatMapRow {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Unique within its section.
    pub name: String,
    pub seats: Vec<SeatMapSeat>,
}

/// A seat.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatMapSeat {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Unique within its row.
    pub number: String,
    /// Defaults to `<section>, Row <row>, Seat <number>`.
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub accessible: bool,
}

/// A standing area.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandingArea {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Unique within the venue.
    pub name: String,
    pub capacity: u32,
}

impl From<pb::SeatMap> for SeatMap {
    fn from(m: pb::SeatMap) -> Self {
        let seat = |s: pb::Seat| SeatMapSeat { id: s.id, number: s.number, label: s.label, accessible: s.accessible };
        let row = |r: pb::Row| SeatMapRow { id: r.id, name: r.name, seats: r.seats.into_iter().map(seat).collect() };
        Self {
            sections: m
                .sections
                .into_iter()
                .map(|s| SeatMapSection { id: s.id, name: s.name, rows: s.rows.into_iter().map(row).collect() })
                .collect(),
            general_admission_areas: m
                .general_admission_areas
                .into_iter()
                .map(|a| StandingArea { id: a.id, name: a.name, capacity: a.capacity })
                .collect(),
        }
    }
}

impl From<SeatMap> for pb::SeatMap {
    fn from(m: SeatMap) -> Self {
        let seat =
            |s: SeatMapSeat| pb::Seat { id: String::new(), number: s.number, label: s.label, accessible: s.accessible };
        let row =
            |r: SeatMapRow| pb::Row { id: String::new(), name: r.name, seats: r.seats.into_iter().map(seat).collect() };
        Self {
            sections: m
                .sections
                .into_iter()
                .map(|s| pb::Section { id: String::new(), name: s.name, rows: s.rows.into_iter().map(row).collect() })
                .collect(),
            general_admission_areas: m
                .general_admission_areas
                .into_iter()
                .map(|a| pb::GeneralAdmissionArea { id: String::new(), name: a.name, capacity: a.capacity })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVenueBody {
    pub name: String,
    #[serde(default)]
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country_code: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Admins only: the organizer who will own it (default: the caller).
    pub organizer_id: Option<String>,
}

/// Creates a venue owned by the caller (an organizer), or by `organizer_id` (admins).
#[utoipa::path(post, path = "/v1/venues", tag = "organizer", security(("bearer" = [])),
    request_body = CreateVenueBody,
    responses((status = 201, body = Venue), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn create_venue(
    State(s): State<AppState>,
    caller: Caller,
    Json(b): Json<CreateVenueBody>,
) -> Result<(StatusCode, axum::Json<Venue>), Problem> {
    caller.require(Role::Organizer)?;
    let mut fields = Fields::default();
    if let Some(organizer) = &b.organizer_id {
        fields.id("organizer_id", organizer);
    }
    fields.check()?;
    let request = pb::CreateVenueRequest {
        name: b.name,
        address: b.address,
        city: b.city,
        country_code: b.country_code,
        time_zone: b.time_zone,
        organizer_id: b.organizer_id.unwrap_or_default(),
    };
    let venue = s.backends.catalog.clone().create_venue(caller.request(request)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(venue.into())))
}

/// Parameters of `GET /v1/venues/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VenueQuery {
    /// Include the whole seat map (large for stadiums).
    pub seat_map: Option<bool>,
}

/// One venue, optionally with its seat map. Venues are public. With `seat_map=true` the
/// answer comes from a snapshot up to `gateway.snapshot_ttl` old with an `ETag`, is
/// rate-limited more tightly, and an `If-None-Match` naming the current snapshot is a 304.
#[utoipa::path(get, path = "/v1/venues/{id}", tag = "organizer",
    params(("id" = String, Path, description = "Venue id"), VenueQuery, Revalidation),
    responses((status = 200, body = Venue,
               headers(("ETag" = String, description = "With `seat_map=true`: the snapshot's strong entity tag"))),
              NotModified,
              (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn get_venue(
    State(s): State<AppState>,
    PathId { raw: venue, .. }: PathId,
    q: Result<Query<VenueQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let q = query(q)?;
    let load = |include_seat_map| {
        let request = tonic::Request::new(pb::GetVenueRequest { venue_id: venue.clone(), include_seat_map });
        // A whole stadium's map is slow to load when Postgres is busy, and says little about catalog.
        let request = if include_seat_map { caller_paced(request) } else { request };
        let mut catalog = s.backends.catalog.clone();
        async move { Ok::<Venue, Problem>(catalog.get_venue(request).await?.into_inner().into()) }
    };
    if !q.seat_map.unwrap_or(false) {
        return Ok(axum::Json(load(false).await?).into_response());
    }
    Ok(s.snapshots.get("venue", &venue, load(true)).await?.respond(&headers))
}

/// An organizer's seat-map import, let in before its body is read: anyone else is refused
/// (401, 403) without the gateway reading a byte of it, and past
/// `gateway.max_seat_map_imports` at once an import is a 503 until one ends (each can
/// hold `max_seat_map_bytes`, and several times that once parsed).
struct SeatMapImport {
    caller: Caller,
    _slot: OwnedSemaphorePermit,
}

impl FromRequestParts<AppState> for SeatMapImport {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Role::Organizer)?;
        let slot = state.seat_map_imports.clone().try_acquire_owned().map_err(|_| {
            Problem::unavailable("other seat-map imports are running; retry shortly", IMPORT_RETRY_AFTER)
        })?;
        Ok(Self { caller, _slot: slot })
    }
}

/// How long an import refused for want of a slot should wait: about one import's time.
const IMPORT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A whole new seat map for a venue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatMapBody {
    #[serde(default)]
    pub sections: Vec<SeatMapSection>,
    #[serde(default)]
    pub general_admission_areas: Vec<StandingArea>,
    /// Optimistic concurrency: refuse (409) unless the venue's `seat_map_revision` still equals it.
    pub expected_revision: Option<u64>,
}

/// Replaces the venue's whole seat map (sections, rows, seats and standing areas). Fails
/// with 409 if a seat or area that a published event sells would disappear, or if
/// `expected_revision` is stale. The venue's owner or an admin.
#[utoipa::path(put, path = "/v1/venues/{id}/seatmap", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Venue id")),
    request_body = SeatMapBody,
    responses((status = 200, body = Venue), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem)))]
async fn import_seat_map(
    State(s): State<AppState>,
    import: SeatMapImport,
    PathId { raw: venue, .. }: PathId,
    Json(b): Json<SeatMapBody>,
) -> Result<axum::Json<Venue>, Problem> {
    let seat_map = SeatMap { sections: b.sections, general_admission_areas: b.general_admission_areas };
    let request = pb::ImportSeatMapRequest {
        venue_id: venue,
        seat_map: Some(seat_map.into()),
        expected_revision: b.expected_revision,
    };
    Ok(axum::Json(
        s.backends
            .catalog
            .clone()
            .import_seat_map(caller_paced(import.caller.request(request)))
            .await?
            .into_inner()
            .into(),
    ))
}
