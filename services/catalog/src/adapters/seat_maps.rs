//! The seat-map tables (`sections`, `seat_rows`, `seats`, `ga_areas`): bulk import and reads.
//!
//! An import is one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO UPDATE` per table, so a
//! 60,000-seat map costs four statements, not 60,000. Upserting on the natural keys keeps ids
//! stable; every touched row gets the import's revision, and rows left with an older one are
//! what the new map no longer has.

use std::collections::HashMap;

use anyhow::Context as _;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::seat_map::{Area, ImportPlan, Row, Seat, SeatMap, SeatPlace, Section};

/// Writes `plan` as the venue's seat map at `revision`, leaving the previous map's leftovers
/// (rows with an older revision) for [`blocker`] to inspect and [`remove_stale`] to delete.
pub async fn upsert(conn: &mut PgConnection, venue_id: Uuid, revision: i64, plan: &ImportPlan) -> anyhow::Result<()> {
    let section_ordinals: Vec<i32> = (0..plan.section_names.len()).map(ordinal).collect::<anyhow::Result<_>>()?;
    sqlx::query(
        "INSERT INTO sections (venue_id, name, ordinal, revision)
         SELECT $1, u.name, u.ordinal, $2 FROM UNNEST($3::text[], $4::int4[]) AS u(name, ordinal)
         ON CONFLICT (venue_id, name) DO UPDATE SET ordinal = EXCLUDED.ordinal, revision = EXCLUDED.revision",
    )
    .bind(venue_id)
    .bind(revision)
    .bind(&plan.section_names)
    .bind(&section_ordinals)
    .execute(&mut *conn)
    .await
    .context("importing sections")?;

    let row_ordinals: Vec<i32> = (0..plan.row_names.len()).map(ordinal).collect::<anyhow::Result<_>>()?;
    sqlx::query(
        "INSERT INTO seat_rows (venue_id, section_id, name, ordinal, revision)
         SELECT $1, s.id, u.name, u.ordinal, $2
         FROM UNNEST($3::int4[], $4::text[], $5::int4[]) AS u(section, name, ordinal)
         JOIN sections s ON s.venue_id = $1 AND s.revision = $2 AND s.ordinal = u.section
         ON CONFLICT (section_id, name) DO UPDATE SET ordinal = EXCLUDED.ordinal, revision = EXCLUDED.revision",
    )
    .bind(venue_id)
    .bind(revision)
    .bind(&plan.row_sections)
    .bind(&plan.row_names)
    .bind(&row_ordinals)
    .execute(&mut *conn)
    .await
    .context("importing rows")?;

    let seat_ordinals: Vec<i32> = (0..plan.seat_count()).map(ordinal).collect::<anyhow::Result<_>>()?;
    sqlx::query(
        "INSERT INTO seats (venue_id, row_id, number, label, accessible, position, ordinal, revision)
         SELECT $1, r.id, u.number, u.label, u.accessible, u.position, u.ordinal, $2
         FROM UNNEST($3::int4[], $4::text[], $5::text[], $6::bool[], $7::int4[], $8::int4[])
              AS u(row_ordinal, number, label, accessible, position, ordinal)
         JOIN seat_rows r ON r.venue_id = $1 AND r.revision = $2 AND r.ordinal = u.row_ordinal
         ON CONFLICT (row_id, number) DO UPDATE SET label = EXCLUDED.label, accessible = EXCLUDED.accessible,
             position = EXCLUDED.position, ordinal = EXCLUDED.ordinal, revision = EXCLUDED.revision",
    )
    .bind(venue_id)
    .bind(revision)
    .bind(&plan.seat_rows)
    .bind(&plan.seat_numbers)
    .bind(&plan.seat_labels)
    .bind(&plan.seat_accessible)
    .bind(&plan.seat_positions)
    .bind(&seat_ordinals)
    .execute(&mut *conn)
    .await
    .context("importing seats")?;

    let area_ordinals: Vec<i32> = (0..plan.area_names.len()).map(ordinal).collect::<anyhow::Result<_>>()?;
    sqlx::query(
        "INSERT INTO ga_areas (venue_id, name, capacity, ordinal, revision)
         SELECT $1, u.name, u.capacity, u.ordinal, $2
         FROM UNNEST($3::text[], $4::int4[], $5::int4[]) AS u(name, capacity, ordinal)
         ON CONFLICT (venue_id, name) DO UPDATE SET capacity = EXCLUDED.capacity, ordinal = EXCLUDED.ordinal,
             revision = EXCLUDED.revision",
    )
    .bind(venue_id)
    .bind(revision)
    .bind(&plan.area_names)
    .bind(&plan.area_capacities)
    .bind(&area_ordinals)
    .execute(&mut *conn)
    .await
    .context("importing general-admission areas")?;
    Ok(())
}

fn ordinal(i: usize) -> anyhow::Result<i32> {
    i32::try_from(i).context("seat-map ordinal")
}

/// Why the import at `revision` may not go ahead, if it may not: a seat or area it drops is
/// used by a category of a non-draft event, or an area it shrinks holds fewer people than the
/// categories of some event sell on it.
pub async fn blocker(conn: &mut PgConnection, venue_id: Uuid, revision: i64) -> anyhow::Result<Option<String>> {
    let seat: Option<(String, Uuid, String)> = sqlx::query_as(
        "SELECT s.label, e.id, e.status FROM seats s
         JOIN category_seats cs ON cs.seat_id = s.id
         JOIN events e ON e.id = cs.event_id
         WHERE s.venue_id = $1 AND s.revision <> $2 AND e.status <> 'draft'
         LIMIT 1",
    )
    .bind(venue_id)
    .bind(revision)
    .fetch_optional(&mut *conn)
    .await
    .context("checking removed seats")?;
    if let Some((label, event, status)) = seat {
        return Ok(Some(format!("seat {label:?} is sold by event {event}, which is {}", status.to_uppercase())));
    }
    let area: Option<(String, Uuid, i64, i32, bool)> = sqlx::query_as(
        "SELECT a.name, e.id, sum(c.ga_capacity)::int8, a.capacity, a.revision <> $2 FROM ga_areas a
         JOIN categories c ON c.area_id = a.id
         JOIN events e ON e.id = c.event_id
         WHERE a.venue_id = $1
         GROUP BY a.id, e.id
         HAVING (a.revision <> $2 AND bool_or(e.status <> 'draft')) OR (a.revision = $2 AND sum(c.ga_capacity) > a.capacity)
         LIMIT 1",
    )
    .bind(venue_id)
    .bind(revision)
    .fetch_optional(&mut *conn)
    .await
    .context("checking removed or shrunk areas")?;
    Ok(area.map(|(name, event, sold, capacity, removed)| {
        if removed {
            format!("area {name:?} is sold by event {event}, which is no longer a draft")
        } else {
            format!("area {name:?} would hold {capacity}, but event {event} sells {sold} tickets on it")
        }
    }))
}

/// Deletes what the import at `revision` did not touch (with the drafts' uses of it).
pub async fn remove_stale(conn: &mut PgConnection, venue_id: Uuid, revision: i64) -> anyhow::Result<()> {
    for (table, what) in [("seats", "seats"), ("seat_rows", "rows"), ("sections", "sections"), ("ga_areas", "areas")] {
        sqlx::query(&format!("DELETE FROM {table} WHERE venue_id = $1 AND revision <> $2"))
            .bind(venue_id)
            .bind(revision)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("removing stale {what}"))?;
    }
    Ok(())
}

/// The venue's seat map with ids, in seat-map order.
pub async fn load(conn: &mut PgConnection, venue_id: Uuid) -> anyhow::Result<SeatMap> {
    let sections: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM sections WHERE venue_id = $1 ORDER BY ordinal")
            .bind(venue_id)
            .fetch_all(&mut *conn)
            .await
            .context("loading sections")?;
    let rows: Vec<(Uuid, Uuid, String)> =
        sqlx::query_as("SELECT id, section_id, name FROM seat_rows WHERE venue_id = $1 ORDER BY ordinal")
            .bind(venue_id)
            .fetch_all(&mut *conn)
            .await
            .context("loading rows")?;
    let seats: Vec<(Uuid, Uuid, String, String, bool)> =
        sqlx::query_as("SELECT id, row_id, number, label, accessible FROM seats WHERE venue_id = $1 ORDER BY ordinal")
            .bind(venue_id)
            .fetch_all(&mut *conn)
            .await
            .context("loading seats")?;
    let areas: Vec<(Uuid, String, i32)> =
        sqlx::query_as("SELECT id, name, capacity FROM ga_areas WHERE venue_id = $1 ORDER BY ordinal")
            .bind(venue_id)
            .fetch_all(&mut *conn)
            .await
            .context("loading general-admission areas")?;

    let mut map = SeatMap::default();
    let mut section_index = HashMap::with_capacity(sections.len());
    for (id, name) in sections {
        section_index.insert(id, map.sections.len());
        map.sections.push(Section { id: Some(id), name, rows: Vec::new() });
    }
    let mut row_index = HashMap::with_capacity(rows.len());
    for (id, section_id, name) in rows {
        let s = *section_index.get(&section_id).context("a row without its section")?;
        row_index.insert(id, (s, map.sections[s].rows.len()));
        map.sections[s].rows.push(Row { id: Some(id), name, seats: Vec::new() });
    }
    for (id, row_id, number, label, accessible) in seats {
        let (s, r) = *row_index.get(&row_id).context("a seat without its row")?;
        map.sections[s].rows[r].seats.push(Seat { id: Some(id), number, label, accessible });
    }
    for (id, name, capacity) in areas {
        map.areas.push(Area { id: Some(id), name, capacity: capacity.try_into().context("stored area capacity")? });
    }
    Ok(map)
}

/// The capacity of the venue's area `area_id`, if it has one.
pub async fn area_capacity(db: impl PgExecutor<'_>, venue_id: Uuid, area_id: Uuid) -> anyhow::Result<Option<u32>> {
    let capacity: Option<i32> = sqlx::query_scalar("SELECT capacity FROM ga_areas WHERE id = $1 AND venue_id = $2")
        .bind(area_id)
        .bind(venue_id)
        .fetch_optional(db)
        .await
        .context("looking up an area")?;
    capacity.map(|c| u32::try_from(c).context("stored area capacity")).transpose()
}

/// Which of `seat_ids` are not seats of the venue.
pub async fn foreign_seats(db: impl PgExecutor<'_>, venue_id: Uuid, seat_ids: &[Uuid]) -> anyhow::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT u.id FROM UNNEST($2::uuid[]) AS u(id)
         WHERE NOT EXISTS (SELECT 1 FROM seats s WHERE s.id = u.id AND s.venue_id = $1)",
    )
    .bind(venue_id)
    .bind(seat_ids)
    .fetch_all(db)
    .await
    .context("checking seats belong to the venue")
}

/// The seats of the event's seated categories, by category, each in seat-map order.
pub async fn places_by_category(
    db: impl PgExecutor<'_>,
    event_ids: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, Vec<SeatPlace>>> {
    let rows: Vec<(Uuid, Uuid, Uuid, i32)> = sqlx::query_as(
        "SELECT cs.category_id, s.id, s.row_id, s.position FROM category_seats cs
         JOIN seats s ON s.id = cs.seat_id
         WHERE cs.event_id = ANY($1)
         ORDER BY s.ordinal",
    )
    .bind(event_ids)
    .fetch_all(db)
    .await
    .context("loading the seats of categories")?;
    let mut by_category: HashMap<Uuid, Vec<SeatPlace>> = HashMap::new();
    for (category_id, seat_id, row_id, position) in rows {
        let position = u32::try_from(position).context("stored seat position")?;
        by_category.entry(category_id).or_default().push(SeatPlace { seat_id, row_id, position });
    }
    Ok(by_category)
}

/// Of `seat_ids`, those in a category of `event`: (seat, category, label, accessible).
pub async fn event_seats(
    db: impl PgExecutor<'_>,
    event: Uuid,
    seat_ids: &[Uuid],
) -> anyhow::Result<Vec<(Uuid, Uuid, String, bool)>> {
    sqlx::query_as(
        "SELECT s.id, cs.category_id, s.label, s.accessible FROM category_seats cs
         JOIN seats s ON s.id = cs.seat_id
         WHERE cs.event_id = $1 AND cs.seat_id = ANY($2)
         ORDER BY s.ordinal",
    )
    .bind(event)
    .bind(seat_ids)
    .fetch_all(db)
    .await
    .context("loading an event's seats")
}
