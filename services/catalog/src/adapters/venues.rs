//! The `venues` table.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::page::VenueCursor;
use crate::domain::venue::{NewVenue, Venue};

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    organizer_id: Uuid,
    name: String,
    address: String,
    city: String,
    country_code: String,
    time_zone: String,
    seat_map_revision: i64,
    seat_count: i32,
    ga_capacity: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Venue {
    type Error = anyhow::Error;

    fn try_from(row: Row) -> anyhow::Result<Self> {
        Ok(Venue {
            id: row.id,
            organizer_id: row.organizer_id,
            name: row.name,
            address: row.address,
            city: row.city,
            country_code: row.country_code,
            time_zone: row.time_zone,
            seat_count: row.seat_count.try_into().context("stored seat_count")?,
            ga_capacity: row.ga_capacity.try_into().context("stored ga_capacity")?,
            seat_map_revision: row.seat_map_revision.try_into().context("stored seat_map_revision")?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, organizer_id, name, address, city, country_code, time_zone, seat_map_revision, \
                       seat_count, ga_capacity, created_at, updated_at";

/// Inserts a venue owned by `organizer_id`.
pub async fn insert(db: impl PgExecutor<'_>, organizer_id: Uuid, venue: &NewVenue) -> anyhow::Result<Venue> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO venues (id, organizer_id, name, address, city, country_code, time_zone)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(organizer_id)
    .bind(&venue.name)
    .bind(&venue.address)
    .bind(&venue.city)
    .bind(&venue.country_code)
    .bind(&venue.time_zone)
    .fetch_one(db)
    .await
    .context("inserting a venue")?;
    row.try_into()
}

/// The venue `id`.
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> anyhow::Result<Option<Venue>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM venues WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .context("looking up a venue")?;
    row.map(Venue::try_from).transpose()
}

/// Locks the venue `id` for a seat-map import, which serializes imports of one venue.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Venue>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM venues WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("locking a venue")?;
    row.map(Venue::try_from).transpose()
}

/// Holds the venue's seat map still for the rest of the transaction: an event write takes
/// this, an import takes the row exclusively ([`lock`]), so a publish never snapshots seats
/// an import is deleting.
pub async fn share(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("SELECT 1 FROM venues WHERE id = $1 FOR SHARE")
        .bind(id)
        .execute(conn)
        .await
        .context("sharing a venue lock")?;
    Ok(())
}

/// Records a finished import: its revision and the new totals.
pub async fn set_seat_map(
    conn: &mut PgConnection,
    id: Uuid,
    revision: i64,
    seat_count: usize,
    ga_capacity: i64,
) -> anyhow::Result<Venue> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE venues SET seat_map_revision = $2, seat_count = $3, ga_capacity = $4, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(revision)
    .bind(i32::try_from(seat_count).context("seat count")?)
    .bind(ga_capacity)
    .fetch_one(conn)
    .await
    .context("recording a seat-map import")?;
    row.try_into()
}

/// Up to `limit` venues after `after` in `(name, id)` order, optionally of one organizer.
pub async fn list(
    db: impl PgExecutor<'_>,
    organizer_id: Option<Uuid>,
    after: Option<&VenueCursor>,
    limit: i64,
) -> anyhow::Result<Vec<Venue>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM venues
         WHERE ($1::uuid IS NULL OR organizer_id = $1)
           AND ($2::text IS NULL OR (name, id) > ($2, $3::uuid))
         ORDER BY name, id LIMIT $4"
    ))
    .bind(organizer_id)
    .bind(after.map(|c| c.name.as_str()))
    .bind(after.map(|c| c.id))
    .bind(limit)
    .fetch_all(db)
    .await
    .context("listing venues")?;
    rows.into_iter().map(Venue::try_from).collect()
}
