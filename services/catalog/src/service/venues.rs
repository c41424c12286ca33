//! Venues and seat-map imports.

use anyhow::Context as _;
use ticketing_platform::audit::Target;

use super::{Catalog, Result, commit, parse_id};
use crate::adapters::{seat_maps, venues};
use crate::domain::access::Caller;
use crate::domain::page::{VenueCursor, next_cursor, page_size};
use crate::domain::seat_map::SeatMap;
use crate::domain::venue::{Venue, VenueInput};
use crate::domain::{CatalogError, text};

impl Catalog {
    /// Creates a venue owned by the caller, or by the organizer an admin names.
    pub async fn create_venue(&self, caller: &Caller, input: VenueInput) -> Result<Venue> {
        caller.manager()?;
        let venue = input.validate()?;
        let owner = caller.owner_for(venue.organizer_id)?;
        self.check_time_zone("time_zone", &venue.time_zone).await?;
        let mut tx = self.begin().await?;
        let created = venues::insert(&mut *tx, owner, &venue).await?;
        let after = serde_json::json!({
            "name": created.name,
            "organizer_id": owner,
            "address": created.address,
            "city": created.city,
            "country_code": created.country_code,
            "time_zone": created.time_zone,
        });
        self.audit(&mut tx, caller, "venue.created", Target::new("venue", created.id), None, after).await?;
        commit(tx).await?;
        tracing::info!(venue_id = %created.id, organizer_id = %owner, "venue created");
        Ok(created)
    }

    /// A venue, with its seat map when asked (read in one snapshot, so map and totals agree).
    pub async fn venue(&self, id: &str, with_seat_map: bool) -> Result<(Venue, Option<SeatMap>)> {
        let id = parse_id("venue_id", id)?;
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .context("starting a snapshot")?;
        let venue = venues::by_id(&mut *tx, id).await?.ok_or_else(|| CatalogError::not_found("venue", id))?;
        let map = if with_seat_map { Some(seat_maps::load(&mut tx, id).await?) } else { None };
        Ok((venue, map))
    }

    /// One page of venues by name, optionally of one organizer; and the next page's cursor.
    pub async fn venues(&self, organizer_id: &str, cursor: &str, limit: u32) -> Result<(Vec<Venue>, Option<String>)> {
        let organizer_id = text::optional_id(organizer_id).map_err(|e| CatalogError::invalid("organizer_id", e))?;
        let after = VenueCursor::decode(cursor).map_err(|e| CatalogError::invalid("page.cursor", e))?;
        let limit = page_size(limit);
        let mut rows = venues::list(&self.pool, organizer_id, after.as_ref(), i64::from(limit) + 1).await?;
        let next = next_cursor(&mut rows, limit, |v| VenueCursor { name: v.name.clone(), id: v.id }.encode());
        Ok((rows, next))
    }

    /// Replaces the venue's seat map. Unchanged seats and areas keep their ids; the import is
    /// refused when it would drop a seat or area a non-draft event sells.
    pub async fn import_seat_map(
        &self,
        caller: &Caller,
        venue_id: &str,
        map: &SeatMap,
        expected_revision: Option<u64>,
    ) -> Result<(Venue, SeatMap)> {
        caller.manager()?;
        let venue_id = parse_id("venue_id", venue_id)?;
        let plan = map.plan()?;
        let mut tx = self.begin().await?;
        let venue = venues::lock(&mut tx, venue_id).await?.ok_or_else(|| CatalogError::not_found("venue", venue_id))?;
        caller.check_venue(venue.id, venue.organizer_id)?;
        if let Some(expected) = expected_revision
            && expected != venue.seat_map_revision
        {
            return Err(CatalogError::Stale { what: "seat_map_revision", expected, actual: venue.seat_map_revision });
        }
        let revision = i64::try_from(venue.seat_map_revision + 1).context("seat-map revision")?;
        seat_maps::upsert(&mut tx, venue_id, revision, &plan).await?;
        if let Some(why) = seat_maps::blocker(&mut tx, venue_id, revision).await? {
            return Err(CatalogError::Precondition(format!("the seat map cannot change: {why}")));
        }
        seat_maps::remove_stale(&mut tx, venue_id, revision).await?;
        let before = seat_map_state(&venue);
        let venue = venues::set_seat_map(&mut tx, venue_id, revision, plan.seat_count(), plan.ga_capacity()).await?;
        let stored = seat_maps::load(&mut tx, venue_id).await?;
        let target = Target::new("venue", venue_id);
        self.audit(&mut tx, caller, "venue.seat_map_imported", target, Some(before), seat_map_state(&venue)).await?;
        commit(tx).await?;
        tracing::info!(%venue_id, revision, seats = venue.seat_count, "seat map imported");
        Ok((venue, stored))
    }
}

/// What the audit log keeps of a venue's seat map: its revision and size, not every seat.
fn seat_map_state(venue: &Venue) -> serde_json::Value {
    serde_json::json!({
        "seat_map_revision": venue.seat_map_revision,
        "seat_count": venue.seat_count,
        "ga_capacity": venue.ga_capacity,
    })
}
