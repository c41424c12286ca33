//! Events: creation, changes, reads, search and the lifecycle (including the sale scheduler).

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgConnection;
use ticketing_platform::audit::Target;
use uuid::Uuid;

use super::{Catalog, Result, commit, parse_id};
use crate::adapters::{categories, events, seat_maps, venues};
use crate::domain::CatalogError;
use crate::domain::access::Caller;
use crate::domain::category::Allocation;
use crate::domain::event::{
    CancellationPolicy, Event, EventDetails, EventInput, EventPatch, EventStatus, Transition, cancellation_reason,
};
use crate::domain::page::{EventCursor, next_cursor};
use crate::domain::search::EventSearchInput;
use crate::events::publish;

/// Most due sales one scheduler round handles, so a backlog cannot starve shutdown.
const DUE_PER_ROUND: usize = 100;

impl Catalog {
    /// Creates a DRAFT event at a venue the caller may use.
    pub async fn create_event(&self, caller: &Caller, input: EventInput) -> Result<Event> {
        caller.manager()?;
        let new = input.validate()?;
        let owner = caller.owner_for(new.organizer_id)?;
        let mut details = new.details;
        let venue = venues::by_id(&self.pool, details.venue_id)
            .await?
            .ok_or_else(|| CatalogError::not_found("venue", details.venue_id))?;
        caller.check_venue(venue.id, venue.organizer_id)?;
        if details.time_zone.is_empty() {
            details.time_zone = venue.time_zone;
        } else {
            self.check_time_zone("time_zone", &details.time_zone).await?;
        }
        let mut tx = self.begin().await?;
        let event = events::insert(&mut *tx, owner, &venue.name, &details).await?;
        let after = json!({
            "name": event.details.name,
            "organizer_id": owner,
            "venue_id": event.details.venue_id,
            "starts_at": event.details.starts_at,
            "status": event.status.as_str(),
        });
        self.audit(&mut tx, caller, "event.created", Target::new("event", event.id), None, after).await?;
        commit(tx).await?;
        tracing::info!(event_id = %event.id, organizer_id = %owner, "event created");
        Ok(event)
    }

    /// One event the caller may see, with its categories (and their seats when asked).
    pub async fn event(&self, caller: &Caller, id: &str, with_seat_ids: bool) -> Result<Event> {
        let id = parse_id("event_id", id)?;
        let mut tx = self.begin().await?;
        let event = events::by_id(&mut *tx, id)
            .await?
            .filter(|e| caller.may_see_event(e.organizer_id, e.status))
            .ok_or_else(|| CatalogError::not_found("event", id))?;
        let mut found = [event];
        with_categories(&mut tx, &mut found, with_seat_ids).await?;
        let [event] = found;
        Ok(event)
    }

    /// Some seats of an event the caller may see: (seat, category, label, accessible).
    pub async fn event_seats(
        &self,
        caller: &Caller,
        id: &str,
        seat_ids: &[String],
    ) -> Result<Vec<(Uuid, Uuid, String, bool)>> {
        const MAX_SEATS: usize = 100;
        let id = parse_id("event_id", id)?;
        if seat_ids.is_empty() || seat_ids.len() > MAX_SEATS {
            return Err(CatalogError::invalid("seat_ids", format!("must list between 1 and {MAX_SEATS} seats")));
        }
        let seats = seat_ids.iter().map(|s| parse_id("seat_ids", s)).collect::<Result<Vec<_>>>()?;
        let mut tx = self.begin().await?;
        events::by_id(&mut *tx, id)
            .await?
            .filter(|e| caller.may_see_event(e.organizer_id, e.status))
            .ok_or_else(|| CatalogError::not_found("event", id))?;
        Ok(seat_maps::event_seats(&mut *tx, id, &seats).await?)
    }

    /// One page of the events matching `input` that the caller may see, and the next cursor.
    pub async fn events(&self, caller: &Caller, input: EventSearchInput) -> Result<(Vec<Event>, Option<String>)> {
        let search = input.validate()?;
        let mut tx = self.begin().await?;
        let mut rows = events::search(&mut *tx, &search, caller.visible_drafts()).await?;
        let next =
            next_cursor(&mut rows, search.limit, |e| EventCursor { starts_at: e.details.starts_at, id: e.id }.encode());
        with_categories(&mut tx, &mut rows, false).await?;
        Ok((rows, next))
    }

    /// Changes an event's details; a change to a non-draft event publishes EventUpdated.
    pub async fn update_event(
        &self,
        caller: &Caller,
        id: &str,
        expected_version: Option<u64>,
        patch: EventPatch,
    ) -> Result<Event> {
        let by = caller.manager()?;
        let id = parse_id("event_id", id)?;
        let mut tx = self.begin().await?;
        let event = lock_event(&mut tx, caller, id).await?;
        if let Some(expected) = expected_version
            && expected != event.version
        {
            return Err(CatalogError::Stale { what: "version", expected, actual: event.version });
        }
        let time_zone_changed = patch.time_zone.is_some();
        let details = event.patched(patch)?;
        if details == event.details {
            return Ok(event);
        }
        if time_zone_changed && details.time_zone != event.details.time_zone {
            self.check_time_zone("time_zone", &details.time_zone).await?;
        }
        let venue = venues::by_id(&mut *tx, details.venue_id)
            .await?
            .ok_or_else(|| CatalogError::not_found("venue", details.venue_id))?;
        if venue.id != event.details.venue_id {
            caller.check_venue(venue.id, venue.organizer_id)?;
        }
        let mut updated = events::update_details(&mut tx, id, &venue.name, &details).await?;
        let (before, after) = details_change(&event, &updated);
        updated.categories = event.categories;
        if updated.status != EventStatus::Draft {
            self.announce(&mut tx, id, &publish::updated(&updated, by, &venue.name)).await?;
        }
        self.audit(&mut tx, caller, "event.updated", Target::new("event", id), Some(before), after).await?;
        commit(tx).await?;
        tracing::info!(event_id = %id, version = updated.version, "event updated");
        Ok(updated)
    }

    /// DRAFT → PUBLISHED, announcing everything inventory needs to create stock.
    pub async fn publish(&self, caller: &Caller, id: &str) -> Result<Event> {
        self.transition(caller, id, Transition::Publish, String::new()).await
    }

    /// PUBLISHED → ON_SALE, ahead of the scheduler.
    pub async fn start_sale(&self, caller: &Caller, id: &str) -> Result<Event> {
        self.transition(caller, id, Transition::StartSale, String::new()).await
    }

    /// PUBLISHED or ON_SALE → CLOSED, ahead of the scheduler.
    pub async fn close(&self, caller: &Caller, id: &str) -> Result<Event> {
        self.transition(caller, id, Transition::Close, String::new()).await
    }

    /// Calls the event off; its bookings are then refunded elsewhere.
    pub async fn cancel(&self, caller: &Caller, id: &str, reason: &str) -> Result<Event> {
        caller.manager()?;
        let reason = cancellation_reason(reason)?;
        self.transition(caller, id, Transition::Cancel, reason).await
    }

    async fn transition(&self, caller: &Caller, id: &str, transition: Transition, reason: String) -> Result<Event> {
        let by = caller.manager()?;
        let id = parse_id("event_id", id)?;
        let mut tx = self.begin().await?;
        let event = lock_event(&mut tx, caller, id).await?;
        let before = json!({"status": event.status.as_str()});
        let event = self.apply(&mut tx, event, transition, Some(by), &reason).await?;
        let action = match transition {
            Transition::Publish => "event.published",
            Transition::StartSale => "event.sale_opened",
            Transition::Close => "event.closed",
            Transition::Cancel => "event.cancelled",
        };
        let mut after = json!({"status": event.status.as_str()});
        if !reason.is_empty() {
            after["reason"] = reason.into();
        }
        self.audit(&mut tx, caller, action, Target::new("event", id), Some(before), after).await?;
        commit(tx).await?;
        Ok(event)
    }

    /// Starts and closes the sales that are due, one event per transaction so replicas share
    /// the work (`SKIP LOCKED`); returns how many events changed.
    pub async fn advance_due_sales(&self) -> Result<usize> {
        let mut changed = 0;
        while changed < DUE_PER_ROUND {
            let mut tx = self.begin().await?;
            let now = Utc::now();
            let Some(event) = events::lock_due(&mut tx, now).await? else { break };
            let transition = if event.details.sale_ends_at.is_some_and(|end| end <= now) {
                Transition::Close
            } else {
                Transition::StartSale
            };
            self.apply(&mut tx, event, transition, None, "").await?;
            commit(tx).await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Applies `transition` to a locked event and announces it; `by` is `None` for the scheduler.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: Event,
        transition: Transition,
        by: Option<Uuid>,
        reason: &str,
    ) -> Result<Event> {
        let status = event.status.apply(transition.into())?;
        if transition == Transition::Publish {
            event.check_publishable(Utc::now())?;
        }
        let mut updated = events::set_status(tx, event.id, status, reason).await?;
        updated.categories = event.categories;
        match transition {
            Transition::Publish => {
                let places = seat_maps::places_by_category(&mut *tx, &[updated.id]).await?;
                // Tickets print the venue's name; an event's venue always exists.
                let venue = venues::by_id(&mut *tx, updated.details.venue_id).await?.map(|v| v.name);
                let published = publish::published(&updated, &places, venue.as_deref().unwrap_or_default());
                self.announce(tx, updated.id, &published).await?;
            }
            Transition::StartSale => self.announce(tx, updated.id, &publish::sale_started(&updated, by)).await?,
            Transition::Close => self.announce(tx, updated.id, &publish::closed(&updated, by)).await?,
            Transition::Cancel => self.announce(tx, updated.id, &publish::cancelled(&updated, by)).await?,
        }
        tracing::info!(event_id = %updated.id, from = %event.status, to = %status, by = ?by, "event status changed");
        Ok(updated)
    }
}

/// What the audit log keeps of an edit: the details that changed, before and after, and the
/// version on each side.
fn details_change(event: &Event, updated: &Event) -> (Value, Value) {
    let mut before = json!({"version": event.version});
    let mut after = json!({"version": updated.version});
    for ((field, old), (_, new)) in details_fields(&event.details).into_iter().zip(details_fields(&updated.details)) {
        if old != new {
            before[field] = old;
            after[field] = new;
        }
    }
    (before, after)
}

/// An event's details by field. No waiting room is a null `admission_per_minute`, no buyer
/// cancellation a null `buyer_cancellation_cutoff_minutes`.
fn details_fields(details: &EventDetails) -> [(&'static str, Value); 11] {
    let cutoff = match details.cancellation {
        CancellationPolicy::Until { minutes_before_start } => Some(minutes_before_start),
        CancellationPolicy::Never => None,
    };
    [
        ("venue_id", json!(details.venue_id)),
        ("name", json!(details.name)),
        ("description", json!(details.description)),
        ("starts_at", json!(details.starts_at)),
        ("ends_at", json!(details.ends_at)),
        ("time_zone", json!(details.time_zone)),
        ("sale_starts_at", json!(details.sale_starts_at)),
        ("sale_ends_at", json!(details.sale_ends_at)),
        ("per_user_limit", json!(details.per_user_limit)),
        ("admission_per_minute", json!(details.waiting_room)),
        ("buyer_cancellation_cutoff_minutes", json!(cutoff)),
    ]
}

/// Locks the event (and, shared, its venue's seat map) for a change by `caller` and loads its
/// categories (without seat ids).
pub(super) async fn lock_event(tx: &mut PgConnection, caller: &Caller, id: Uuid) -> Result<Event> {
    let mut event = events::lock(&mut *tx, id).await?.ok_or_else(|| CatalogError::not_found("event", id))?;
    caller.check_event(id, event.organizer_id, event.status)?;
    // Before reading categories: an import of the venue in flight finishes first.
    venues::share(&mut *tx, event.details.venue_id).await?;
    event.categories = categories::of_events(&mut *tx, &[id]).await?;
    Ok(event)
}

/// Fills in the events' categories, with seat ids (in seat-map order) when asked.
async fn with_categories(conn: &mut PgConnection, events: &mut [Event], with_seat_ids: bool) -> Result<()> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let mut places =
        if with_seat_ids { seat_maps::places_by_category(&mut *conn, &ids).await? } else { Default::default() };
    for category in categories::of_events(&mut *conn, &ids).await? {
        let Some(event) = events.iter_mut().find(|e| e.id == category.event_id) else { continue };
        let mut category = category;
        if let (Allocation::Seats(seat_ids), Some(seats)) = (&mut category.allocation, places.remove(&category.id)) {
            *seat_ids = seats.into_iter().map(|p| p.seat_id).collect();
        }
        event.categories.push(category);
    }
    Ok(())
}
