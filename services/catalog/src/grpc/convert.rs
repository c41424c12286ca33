//! Proto ↔ domain conversions and the one mapping from [`CatalogError`] to `Status`.

use chrono::{DateTime, Utc};
use ticketing_kernel::time::to_proto;
use ticketing_platform::auth::Principal;
use ticketing_proto::catalog::v1 as pb;
use tonic::{Request, Status};

use crate::domain::access::Caller;
use crate::domain::category::{Allocation, AllocationInput, Category, CategoryInput, PriceInput};
use crate::domain::event::{CancellationPolicy, CancellationPolicyInput, Event, EventStatus, WaitingRoomInput};
use crate::domain::seat_map::{Area, Row, Seat, SeatMap, Section};
use crate::domain::venue::Venue;
use crate::domain::{CatalogError, FieldViolation};
use crate::events::publish::money;

impl From<CatalogError> for Status {
    fn from(e: CatalogError) -> Self {
        let message = e.to_string();
        match e {
            CatalogError::Invalid(violations) => ticketing_platform::status::invalid_argument(&message, &violations),
            CatalogError::Unauthenticated => Status::unauthenticated(message),
            CatalogError::Forbidden(_) => Status::permission_denied(message),
            CatalogError::NotFound { .. } => Status::not_found(message),
            CatalogError::InvalidTransition { .. }
            | CatalogError::Frozen { .. }
            | CatalogError::Stale { .. }
            | CatalogError::Precondition(_) => Status::failed_precondition(message),
            CatalogError::SeatTaken { .. } | CatalogError::NameTaken { .. } => Status::already_exists(message),
            CatalogError::Unavailable(source) => {
                tracing::error!(error = format!("{source:#}"), "catalog dependency failed");
                Status::unavailable(message)
            }
        }
    }
}

/// The caller of `request`: anonymous without a token (the auth layer has refused bad ones).
pub fn caller<T>(request: &Request<T>) -> Caller {
    request
        .extensions()
        .get::<Principal>()
        .map_or_else(Caller::anonymous, |p| Caller::acting(ticketing_platform::audit::Actor::of(p, request)))
}

/// Converts timestamps named by their request fields, reporting every unrepresentable one.
pub fn instants<const N: usize>(
    fields: [(&str, Option<&prost_types::Timestamp>); N],
) -> Result<[Option<DateTime<Utc>>; N], Status> {
    let mut bad = Vec::new();
    let converted = fields.map(|(field, ts)| {
        let ts = ts?;
        let at = ticketing_kernel::time::from_proto(ts);
        if at.is_none() {
            bad.push(field);
        }
        at
    });
    if bad.is_empty() {
        Ok(converted)
    } else {
        let violations: Vec<_> = bad.into_iter().map(|f| FieldViolation::new(f, "is not a valid timestamp")).collect();
        Err(CatalogError::Invalid(violations).into())
    }
}

/// The domain status for a proto value; unspecified and unknown values are refused.
pub fn status_from_proto(value: i32) -> Result<EventStatus, Status> {
    match pb::EventStatus::try_from(value) {
        Ok(pb::EventStatus::Draft) => Ok(EventStatus::Draft),
        Ok(pb::EventStatus::Published) => Ok(EventStatus::Published),
        Ok(pb::EventStatus::OnSale) => Ok(EventStatus::OnSale),
        Ok(pb::EventStatus::Closed) => Ok(EventStatus::Closed),
        Ok(pb::EventStatus::Cancelled) => Ok(EventStatus::Cancelled),
        _ => Err(CatalogError::invalid(
            "statuses",
            "must be EVENT_STATUS_DRAFT, _PUBLISHED, _ON_SALE, _CLOSED or _CANCELLED",
        )
        .into()),
    }
}

fn status_to_proto(status: EventStatus) -> pb::EventStatus {
    match status {
        EventStatus::Draft => pb::EventStatus::Draft,
        EventStatus::Published => pb::EventStatus::Published,
        EventStatus::OnSale => pb::EventStatus::OnSale,
        EventStatus::Closed => pb::EventStatus::Closed,
        EventStatus::Cancelled => pb::EventStatus::Cancelled,
    }
}

/// The venue, with its seat map when given.
pub fn venue(venue: Venue, seat_map: Option<SeatMap>) -> pb::Venue {
    pb::Venue {
        id: venue.id.to_string(),
        organizer_id: venue.organizer_id.to_string(),
        name: venue.name,
        address: venue.address,
        city: venue.city,
        country_code: venue.country_code,
        time_zone: venue.time_zone,
        seat_count: venue.seat_count,
        general_admission_capacity: venue.ga_capacity,
        seat_map_revision: venue.seat_map_revision,
        seat_map: seat_map.map(Into::into),
        created_at: Some(to_proto(venue.created_at)),
        updated_at: Some(to_proto(venue.updated_at)),
    }
}

fn id(id: Option<uuid::Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// Ids in an import are ignored: the server assigns them.
impl From<pb::SeatMap> for SeatMap {
    fn from(map: pb::SeatMap) -> Self {
        let seat = |s: pb::Seat| Seat { id: None, number: s.number, label: s.label, accessible: s.accessible };
        let row = |r: pb::Row| Row { id: None, name: r.name, seats: r.seats.into_iter().map(seat).collect() };
        Self {
            sections: map
                .sections
                .into_iter()
                .map(|s| Section { id: None, name: s.name, rows: s.rows.into_iter().map(row).collect() })
                .collect(),
            areas: map
                .general_admission_areas
                .into_iter()
                .map(|a| Area { id: None, name: a.name, capacity: a.capacity })
                .collect(),
        }
    }
}

impl From<SeatMap> for pb::SeatMap {
    fn from(map: SeatMap) -> Self {
        let seat = |s: Seat| pb::Seat { id: id(s.id), number: s.number, label: s.label, accessible: s.accessible };
        let row = |r: Row| pb::Row { id: id(r.id), name: r.name, seats: r.seats.into_iter().map(seat).collect() };
        Self {
            sections: map
                .sections
                .into_iter()
                .map(|s| pb::Section { id: id(s.id), name: s.name, rows: s.rows.into_iter().map(row).collect() })
                .collect(),
            general_admission_areas: map
                .areas
                .into_iter()
                .map(|a| pb::GeneralAdmissionArea { id: id(a.id), name: a.name, capacity: a.capacity })
                .collect(),
        }
    }
}

impl From<Event> for pb::Event {
    fn from(event: Event) -> Self {
        let d = event.details;
        Self {
            id: event.id.to_string(),
            organizer_id: event.organizer_id.to_string(),
            venue_id: d.venue_id.to_string(),
            name: d.name,
            description: d.description,
            starts_at: Some(to_proto(d.starts_at)),
            ends_at: Some(to_proto(d.ends_at)),
            time_zone: d.time_zone,
            sale_starts_at: d.sale_starts_at.map(to_proto),
            sale_ends_at: d.sale_ends_at.map(to_proto),
            per_user_limit: d.per_user_limit,
            status: status_to_proto(event.status).into(),
            categories: event.categories.into_iter().map(Into::into).collect(),
            version: event.version,
            cancellation_reason: event.cancellation_reason,
            created_at: Some(to_proto(event.created_at)),
            updated_at: Some(to_proto(event.updated_at)),
            published_at: event.published_at.map(to_proto),
            waiting_room: Some(pb::WaitingRoom {
                enabled: d.waiting_room.is_some(),
                admission_per_minute: d.waiting_room.unwrap_or(0),
            }),
            cancellation_policy: Some(match d.cancellation {
                CancellationPolicy::Until { minutes_before_start } => {
                    pb::CancellationPolicy { no_buyer_cancellation: false, cutoff_minutes: minutes_before_start }
                }
                CancellationPolicy::Never => pb::CancellationPolicy { no_buyer_cancellation: true, cutoff_minutes: 0 },
            }),
        }
    }
}

impl From<Category> for pb::Category {
    fn from(category: Category) -> Self {
        use pb::category::Allocation as Out;
        let allocation = match category.allocation {
            Allocation::GeneralAdmission { capacity, area_id } => {
                Out::GeneralAdmission(pb::GeneralAdmissionAllocation { capacity, area_id: id(area_id) })
            }
            Allocation::Seats(seats) => {
                Out::Seats(pb::SeatAllocation { seat_ids: seats.iter().map(ToString::to_string).collect() })
            }
        };
        Self {
            id: category.id.to_string(),
            event_id: category.event_id.to_string(),
            name: category.name,
            description: category.description,
            price: Some(money(&category.price)),
            capacity: category.capacity,
            allocation: Some(allocation),
            created_at: Some(to_proto(category.created_at)),
            updated_at: Some(to_proto(category.updated_at)),
        }
    }
}

/// A waiting-room setting as received.
pub fn waiting_room(room: pb::WaitingRoom) -> WaitingRoomInput {
    WaitingRoomInput { enabled: room.enabled, admission_per_minute: room.admission_per_minute }
}

/// A cancellation policy as received.
pub fn cancellation_policy(policy: pb::CancellationPolicy) -> CancellationPolicyInput {
    CancellationPolicyInput {
        no_buyer_cancellation: policy.no_buyer_cancellation,
        cutoff_minutes: policy.cutoff_minutes,
    }
}

fn price(price: Option<ticketing_proto::common::v1::Money>) -> Option<PriceInput> {
    price.map(|m| PriceInput { currency: m.currency, minor_units: m.minor_units })
}

fn ga(allocation: pb::GeneralAdmissionAllocation) -> AllocationInput {
    AllocationInput::GeneralAdmission { capacity: allocation.capacity, area_id: allocation.area_id }
}

impl From<pb::CreateCategoryRequest> for CategoryInput {
    fn from(r: pb::CreateCategoryRequest) -> Self {
        use pb::create_category_request::Allocation as In;
        Self {
            name: Some(r.name),
            description: Some(r.description),
            price: price(r.price),
            allocation: r.allocation.map(|a| match a {
                In::GeneralAdmission(g) => ga(g),
                In::Seats(s) => AllocationInput::Seats(s.seat_ids),
            }),
        }
    }
}

impl From<pb::UpdateCategoryRequest> for CategoryInput {
    fn from(r: pb::UpdateCategoryRequest) -> Self {
        use pb::update_category_request::Allocation as In;
        Self {
            name: r.name,
            description: r.description,
            price: price(r.price),
            allocation: r.allocation.map(|a| match a {
                In::GeneralAdmission(g) => ga(g),
                In::Seats(s) => AllocationInput::Seats(s.seat_ids),
            }),
        }
    }
}
