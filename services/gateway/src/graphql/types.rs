//! The schema's objects: events with their categories, prices and live availability,
//! venues and seat maps, and the caller's bookings and tickets. Values come from the same
//! conversions as the REST answers, so both APIs say the same things in the same words.

use async_graphql::{ComplexObject, Context, ID, Result, SimpleObject};
use chrono::{DateTime, Utc};
use ticketing_platform::auth::Principal;
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::notification::v1 as notification;

use super::loaders::Loaders;
use super::{Fail, Viewer};
use crate::routes::common::{instant, non_empty};
use crate::routes::{bookings, dto, events};

/// An amount: ISO 4217 currency and integer minor units (cents), never floats.
#[derive(SimpleObject)]
pub struct Money {
    pub currency: String,
    pub minor_units: i64,
}

impl From<dto::Money> for Money {
    fn from(m: dto::Money) -> Self {
        Self { currency: m.currency, minor_units: m.minor_units }
    }
}

/// An event; only published ones are public.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Event {
    pub id: ID,
    pub organizer_id: ID,
    pub venue_id: ID,
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
    pub cancellation_reason: Option<String>,
    pub categories: Vec<Category>,
}

impl From<catalog::Event> for Event {
    fn from(e: catalog::Event) -> Self {
        let e = events::Event::from(e);
        let categories = e.categories.into_iter().map(|c| Category::of(&e.id, c)).collect();
        Self {
            id: e.id.into(),
            organizer_id: e.organizer_id.into(),
            venue_id: e.venue_id.into(),
            name: e.name,
            description: e.description,
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            time_zone: e.time_zone,
            sale_starts_at: e.sale_starts_at,
            sale_ends_at: e.sale_ends_at,
            per_user_limit: e.per_user_limit,
            status: e.status,
            cancellation_reason: e.cancellation_reason,
            categories,
        }
    }
}

#[ComplexObject]
impl Event {
    /// Live counts per category (inventory); null when the event has no stock yet. The
    /// events of one query are asked for in one call.
    async fn availability(&self, ctx: &Context<'_>) -> Result<Option<Vec<CategoryAvailability>>> {
        let found = ctx.data_unchecked::<Loaders>().availability.load_one(self.id.to_string()).await.fail()?;
        Ok(found.map(|counts| counts.iter().map(CategoryAvailability::from).collect()))
    }

    /// Where it takes place.
    async fn venue(&self, ctx: &Context<'_>) -> Result<Option<Venue>> {
        ctx.data_unchecked::<Loaders>().venues.load_one(self.venue_id.to_string()).await.fail()
    }
}

/// A ticket category of an event.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Category {
    pub id: ID,
    pub name: String,
    pub description: String,
    pub price: Option<Money>,
    pub capacity: u32,
    /// `general_admission` or `seated`.
    pub kind: String,
    #[graphql(skip)]
    pub event_id: String,
}

impl Category {
    fn of(event: &str, c: events::Category) -> Self {
        Self {
            id: c.id.into(),
            name: c.name,
            description: c.description,
            price: c.price.map(Into::into),
            capacity: c.capacity,
            kind: c.kind,
            event_id: event.to_owned(),
        }
    }
}

#[ComplexObject]
impl Category {
    /// Its live counts (one call with the other events' of the query).
    async fn availability(&self, ctx: &Context<'_>) -> Result<Option<CategoryAvailability>> {
        let found = ctx.data_unchecked::<Loaders>().availability.load_one(self.event_id.clone()).await.fail()?;
        Ok(found.and_then(|counts| counts.iter().find(|c| *c.category_id == *self.id).map(Into::into)))
    }
}

/// One category's live counts: `sold + held + available = capacity`.
#[derive(SimpleObject)]
pub struct CategoryAvailability {
    pub category_id: ID,
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

impl From<&ticketing_proto::inventory::v1::CategoryAvailability> for CategoryAvailability {
    fn from(c: &ticketing_proto::inventory::v1::CategoryAvailability) -> Self {
        Self {
            category_id: c.category_id.clone().into(),
            capacity: c.capacity,
            available: c.available,
            held: c.held,
            sold: c.sold,
        }
    }
}

/// A page of events and the cursor of the next (null on the last page).
#[derive(SimpleObject)]
pub struct EventPage {
    pub items: Vec<Event>,
    pub next_cursor: Option<String>,
}

/// A venue; venues are public.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Venue {
    pub id: ID,
    pub organizer_id: ID,
    pub name: String,
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country_code: String,
    pub time_zone: String,
    pub seat_count: u32,
    pub general_admission_capacity: u32,
}

impl From<catalog::Venue> for Venue {
    fn from(v: catalog::Venue) -> Self {
        Self {
            id: v.id.into(),
            organizer_id: v.organizer_id.into(),
            name: v.name,
            address: v.address,
            city: v.city,
            country_code: v.country_code,
            time_zone: v.time_zone,
            seat_count: v.seat_count,
            general_admission_capacity: v.general_admission_capacity,
        }
    }
}

#[ComplexObject]
impl Venue {
    /// Its sections, rows and seats and its standing areas: large for a stadium, so it
    /// counts as 500 fields against the query's complexity.
    #[graphql(complexity = "500 + child_complexity")]
    async fn seat_map(&self, ctx: &Context<'_>) -> Result<SeatMap> {
        let map = ctx.data_unchecked::<Loaders>().seat_map(self.id.to_string()).await.fail()?;
        Ok(map.into())
    }
}

/// A venue's layout, in the order best-available selection offers seats.
#[derive(SimpleObject)]
pub struct SeatMap {
    pub sections: Vec<Section>,
    pub general_admission_areas: Vec<GeneralAdmissionArea>,
}

#[derive(SimpleObject)]
pub struct Section {
    pub id: ID,
    pub name: String,
    pub rows: Vec<Row>,
}

#[derive(SimpleObject)]
pub struct Row {
    pub id: ID,
    pub name: String,
    pub seats: Vec<Seat>,
}

#[derive(SimpleObject)]
pub struct Seat {
    pub id: ID,
    pub number: String,
    pub label: String,
    pub accessible: bool,
}

/// A standing area.
#[derive(SimpleObject)]
pub struct GeneralAdmissionArea {
    pub id: ID,
    pub name: String,
    pub capacity: u32,
}

impl From<catalog::SeatMap> for SeatMap {
    fn from(m: catalog::SeatMap) -> Self {
        let seat =
            |s: catalog::Seat| Seat { id: s.id.into(), number: s.number, label: s.label, accessible: s.accessible };
        let row =
            |r: catalog::Row| Row { id: r.id.into(), name: r.name, seats: r.seats.into_iter().map(seat).collect() };
        Self {
            sections: m
                .sections
                .into_iter()
                .map(|s| Section { id: s.id.into(), name: s.name, rows: s.rows.into_iter().map(row).collect() })
                .collect(),
            general_admission_areas: m
                .general_admission_areas
                .into_iter()
                .map(|a| GeneralAdmissionArea { id: a.id.into(), name: a.name, capacity: a.capacity })
                .collect(),
        }
    }
}

/// The signed-in caller: only ever their own bookings.
pub struct Me(pub Principal);

#[async_graphql::Object]
impl Me {
    /// The caller's user id.
    async fn id(&self) -> ID {
        self.0.user_id.to_string().into()
    }

    /// The caller's bookings, newest first; `first` is 1 to 100 (default 20).
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn bookings(&self, ctx: &Context<'_>, first: Option<u32>, after: Option<String>) -> Result<BookingPage> {
        let page = crate::routes::common::page(after, first).fail()?;
        let request = Viewer::request(&self.0, booking::ListMyBookingsRequest { statuses: vec![], page: Some(page) });
        let found = ctx.data_unchecked::<Loaders>().backends.booking.clone().list_my_bookings(request).await.fail()?;
        let found = found.into_inner();
        Ok(BookingPage {
            // The service lists the caller's own; checked again, as `booking` is.
            items: found.bookings.into_iter().filter(|b| self.owns(b)).map(Into::into).collect(),
            next_cursor: found.page.and_then(|p| non_empty(p.next_cursor)),
        })
    }

    /// One of the caller's bookings; another's, even one an organizer or admin may read
    /// over REST, is NOT_FOUND here.
    async fn booking(&self, ctx: &Context<'_>, id: ID) -> Result<Booking> {
        crate::extract::id("id", &id).fail()?;
        let request = Viewer::request(&self.0, booking::GetBookingRequest { booking_id: id.to_string() });
        let found = ctx.data_unchecked::<Loaders>().backends.booking.clone().get_booking(request).await.fail()?;
        let found = found.into_inner();
        if !self.owns(&found) {
            return Err(crate::problem::Problem::not_found("no such booking")).fail();
        }
        Ok(found.into())
    }
}

impl Me {
    fn owns(&self, b: &booking::BookingDetails) -> bool {
        b.user_id == self.0.user_id.to_string()
    }
}

/// A page of bookings and the cursor of the next (null on the last page).
#[derive(SimpleObject)]
pub struct BookingPage {
    pub items: Vec<Booking>,
    pub next_cursor: Option<String>,
}

/// One of the caller's bookings.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Booking {
    pub id: ID,
    pub event_id: ID,
    /// `pending_payment`, `confirmed`, `cancelled`, `expired`, `refund_pending` or `refunded`.
    pub status: String,
    pub line_items: Vec<LineItem>,
    pub total: Option<Money>,
    pub expires_at: Option<DateTime<Utc>>,
    pub cancellation_reason: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// One ticket of a booking, as bought.
#[derive(SimpleObject)]
pub struct LineItem {
    pub id: ID,
    pub category_id: ID,
    pub seat_id: Option<ID>,
    pub label: String,
    pub unit_price: Option<Money>,
}

impl From<booking::BookingDetails> for Booking {
    fn from(b: booking::BookingDetails) -> Self {
        let b = bookings::Booking::from(b);
        Self {
            id: b.id.into(),
            event_id: b.event_id.into(),
            status: b.status,
            line_items: b
                .line_items
                .into_iter()
                .map(|i| LineItem {
                    id: i.id.into(),
                    category_id: i.category_id.into(),
                    seat_id: i.seat_id.map(Into::into),
                    label: i.label,
                    unit_price: i.unit_price.map(Into::into),
                })
                .collect(),
            total: b.total.map(Into::into),
            expires_at: b.expires_at,
            cancellation_reason: b.cancellation_reason,
            created_at: b.created_at,
        }
    }
}

#[ComplexObject]
impl Booking {
    /// Its signed tickets, issued once it is confirmed (empty before). One call per
    /// booking, so it counts ten times against the query's complexity.
    #[graphql(complexity = "10 * child_complexity")]
    async fn tickets(&self, ctx: &Context<'_>) -> Result<Vec<Ticket>> {
        // The booking was read as the caller's own (`Me`), with the caller's token.
        let viewer = ctx.data_unchecked::<Viewer>().signed_in().fail()?;
        let request = Viewer::request(viewer, notification::ListTicketsRequest { booking_id: self.id.to_string() });
        let found = ctx.data_unchecked::<Loaders>().backends.notification.clone().list_tickets(request).await.fail()?;
        Ok(found.into_inner().tickets.into_iter().map(Into::into).collect())
    }

    /// The event it is for.
    async fn event(&self, ctx: &Context<'_>) -> Result<Option<std::sync::Arc<Event>>> {
        ctx.data_unchecked::<Loaders>().events.load_one(self.event_id.to_string()).await.fail()
    }
}

/// A signed ticket.
#[derive(SimpleObject)]
pub struct Ticket {
    pub id: ID,
    pub event_id: ID,
    pub seat_label: String,
    /// `<kid>.<payload>.<signature>`: what the emailed QR code encodes.
    pub code: String,
    /// `issued`, `scanned` or `revoked`.
    pub status: String,
    pub issued_at: Option<DateTime<Utc>>,
    pub scanned_at: Option<DateTime<Utc>>,
}

impl From<notification::Ticket> for Ticket {
    fn from(t: notification::Ticket) -> Self {
        let issued_at = instant(t.issued_at);
        let t = dto::Ticket::from(t);
        Self {
            id: t.id.into(),
            event_id: t.event_id.into(),
            seat_label: t.seat_label,
            code: t.code,
            status: t.status,
            issued_at,
            scanned_at: t.scanned_at,
        }
    }
}
