//! The Kafka events the catalog publishes on `catalog.events`, built from domain types.

use std::collections::HashMap;

use ticketing_kernel::time::to_proto;
use ticketing_proto::common::v1 as common;
use ticketing_proto::events::v1 as pb;
use uuid::Uuid;

use crate::domain::category::{Allocation, Category};
use crate::domain::event::Event;
use crate::domain::seat_map::SeatPlace;
use ticketing_kernel::money::Money;

/// The protobuf form of a price.
pub fn money(price: &Money) -> common::Money {
    common::Money { currency: price.currency.to_string(), minor_units: price.minor_units }
}

fn user(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// Everything inventory needs to create stock: each seated category's seats come best first,
/// with their rows and positions so it can find adjacent seats; notification prints the
/// venue's name on tickets.
pub(crate) fn published(event: &Event, places: &HashMap<Uuid, Vec<SeatPlace>>, venue: &str) -> pb::EventPublished {
    let d = &event.details;
    pb::EventPublished {
        event_id: event.id.to_string(),
        organizer_id: event.organizer_id.to_string(),
        venue_id: d.venue_id.to_string(),
        name: d.name.clone(),
        starts_at: Some(to_proto(d.starts_at)),
        ends_at: Some(to_proto(d.ends_at)),
        time_zone: d.time_zone.clone(),
        sale_starts_at: d.sale_starts_at.map(to_proto),
        sale_ends_at: d.sale_ends_at.map(to_proto),
        per_user_limit: d.per_user_limit,
        categories: event.categories.iter().map(|c| snapshot(c, places.get(&c.id))).collect(),
        version: event.version,
        admission_per_minute: d.waiting_room.unwrap_or(0),
        venue_name: venue.to_owned(),
    }
}

fn snapshot(category: &Category, places: Option<&Vec<SeatPlace>>) -> pb::CategorySnapshot {
    use pb::category_snapshot::Allocation as Snapshot;
    let allocation = match &category.allocation {
        Allocation::GeneralAdmission { capacity, .. } => Snapshot::GeneralAdmissionCapacity(*capacity),
        Allocation::Seats(_) => {
            let places = places.map(Vec::as_slice).unwrap_or_default();
            Snapshot::Seats(pb::CatalogSeatIds {
                seat_ids: places.iter().map(|p| p.seat_id.to_string()).collect(),
                row_ids: places.iter().map(|p| p.row_id.to_string()).collect(),
                positions: places.iter().map(|p| p.position).collect(),
            })
        }
    };
    pb::CategorySnapshot {
        category_id: category.id.to_string(),
        name: category.name.clone(),
        price: Some(money(&category.price)),
        capacity: category.capacity,
        allocation: Some(allocation),
    }
}

/// A published event's details changed (`venue` is the name of its venue, which may be new).
pub(crate) fn updated(event: &Event, by: Uuid, venue: &str) -> pb::EventUpdated {
    let d = &event.details;
    pb::EventUpdated {
        event_id: event.id.to_string(),
        organizer_id: event.organizer_id.to_string(),
        name: d.name.clone(),
        description: d.description.clone(),
        starts_at: Some(to_proto(d.starts_at)),
        ends_at: Some(to_proto(d.ends_at)),
        time_zone: d.time_zone.clone(),
        sale_starts_at: d.sale_starts_at.map(to_proto),
        sale_ends_at: d.sale_ends_at.map(to_proto),
        per_user_limit: d.per_user_limit,
        version: event.version,
        updated_by: by.to_string(),
        admission_per_minute: d.waiting_room.unwrap_or(0),
        venue_name: venue.to_owned(),
    }
}

/// The sale started; `by` is `None` for the scheduler.
pub(crate) fn sale_started(event: &Event, by: Option<Uuid>) -> pb::EventSaleStarted {
    pb::EventSaleStarted {
        event_id: event.id.to_string(),
        organizer_id: event.organizer_id.to_string(),
        sale_starts_at: event.details.sale_starts_at.map(to_proto),
        sale_ends_at: event.details.sale_ends_at.map(to_proto),
        version: event.version,
        started_by: user(by),
    }
}

/// The sale closed; `by` is `None` for the scheduler.
pub(crate) fn closed(event: &Event, by: Option<Uuid>) -> pb::EventClosed {
    pb::EventClosed {
        event_id: event.id.to_string(),
        organizer_id: event.organizer_id.to_string(),
        version: event.version,
        closed_by: user(by),
    }
}

/// The event was called off.
pub(crate) fn cancelled(event: &Event, by: Option<Uuid>) -> pb::EventCancelled {
    pb::EventCancelled {
        event_id: event.id.to_string(),
        organizer_id: event.organizer_id.to_string(),
        reason: event.cancellation_reason.clone(),
        version: event.version,
        cancelled_by: user(by),
    }
}
