//! The `events` table.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::access::Drafts;
use crate::domain::event::{CancellationPolicy, Event, EventDetails, EventStatus};
use crate::domain::search::EventSearch;

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    organizer_id: Uuid,
    venue_id: Uuid,
    name: String,
    description: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    time_zone: String,
    sale_starts_at: Option<DateTime<Utc>>,
    sale_ends_at: Option<DateTime<Utc>>,
    per_user_limit: i32,
    admission_per_minute: Option<i32>,
    buyer_cancellation_cutoff_minutes: Option<i32>,
    status: String,
    version: i64,
    cancellation_reason: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
}

impl TryFrom<Row> for Event {
    type Error = anyhow::Error;

    fn try_from(row: Row) -> anyhow::Result<Self> {
        Ok(Event {
            id: row.id,
            organizer_id: row.organizer_id,
            details: EventDetails {
                venue_id: row.venue_id,
                name: row.name,
                description: row.description,
                starts_at: row.starts_at,
                ends_at: row.ends_at,
                time_zone: row.time_zone,
                sale_starts_at: row.sale_starts_at,
                sale_ends_at: row.sale_ends_at,
                per_user_limit: row.per_user_limit.try_into().context("stored per_user_limit")?,
                waiting_room: row
                    .admission_per_minute
                    .map(u32::try_from)
                    .transpose()
                    .context("stored admission_per_minute")?,
                cancellation: match row.buyer_cancellation_cutoff_minutes {
                    Some(minutes) => CancellationPolicy::Until {
                        minutes_before_start: minutes.try_into().context("stored cancellation cut-off")?,
                    },
                    None => CancellationPolicy::Never,
                },
            },
            status: EventStatus::parse(&row.status).with_context(|| format!("stored status {:?}", row.status))?,
            version: row.version.try_into().context("stored version")?,
            cancellation_reason: row.cancellation_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
            published_at: row.published_at,
            categories: Vec::new(),
        })
    }
}

const COLUMNS: &str = "id, organizer_id, venue_id, name, description, starts_at, ends_at, time_zone, \
                       sale_starts_at, sale_ends_at, per_user_limit, admission_per_minute, \
                       buyer_cancellation_cutoff_minutes, status, version, cancellation_reason, \
                       created_at, updated_at, published_at";

fn admission_per_minute(details: &EventDetails) -> anyhow::Result<Option<i32>> {
    details.waiting_room.map(i32::try_from).transpose().context("admission_per_minute")
}

fn cancellation_cutoff(details: &EventDetails) -> anyhow::Result<Option<i32>> {
    match details.cancellation {
        CancellationPolicy::Until { minutes_before_start } => {
            Ok(Some(i32::try_from(minutes_before_start).context("cancellation cut-off")?))
        }
        CancellationPolicy::Never => Ok(None),
    }
}

/// Inserts a DRAFT event (without categories).
pub async fn insert(
    db: impl PgExecutor<'_>,
    organizer_id: Uuid,
    venue_name: &str,
    details: &EventDetails,
) -> anyhow::Result<Event> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO events (id, organizer_id, venue_id, venue_name, name, description, starts_at, ends_at, time_zone,
                             sale_starts_at, sale_ends_at, per_user_limit, admission_per_minute,
                             buyer_cancellation_cutoff_minutes, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'draft') RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(organizer_id)
    .bind(details.venue_id)
    .bind(venue_name)
    .bind(&details.name)
    .bind(&details.description)
    .bind(details.starts_at)
    .bind(details.ends_at)
    .bind(&details.time_zone)
    .bind(details.sale_starts_at)
    .bind(details.sale_ends_at)
    .bind(i32::try_from(details.per_user_limit).context("per_user_limit")?)
    .bind(admission_per_minute(details)?)
    .bind(cancellation_cutoff(details)?)
    .fetch_one(db)
    .await
    .context("inserting an event")?;
    row.try_into()
}

/// The event `id` (without categories).
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> anyhow::Result<Option<Event>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM events WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .context("looking up an event")?;
    row.map(Event::try_from).transpose()
}

/// Locks the event `id` (without categories) for a change; every change to an event or its
/// categories holds this lock, which serializes them.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Event>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM events WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("locking an event")?;
    row.map(Event::try_from).transpose()
}

/// Locks one event whose sale is due to start or end at `now`, skipping events other
/// replicas are working on.
pub async fn lock_due(conn: &mut PgConnection, now: DateTime<Utc>) -> anyhow::Result<Option<Event>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events
         WHERE (status = 'published' AND sale_starts_at <= $1)
            OR (status IN ('published', 'on_sale') AND sale_ends_at <= $1)
         LIMIT 1 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .fetch_optional(conn)
    .await
    .context("finding events due for a sale change")?;
    row.map(Event::try_from).transpose()
}

/// Stores new details and bumps the version.
pub async fn update_details(
    conn: &mut PgConnection,
    id: Uuid,
    venue_name: &str,
    details: &EventDetails,
) -> anyhow::Result<Event> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE events SET venue_id = $2, venue_name = $3, name = $4, description = $5, starts_at = $6, ends_at = $7,
             time_zone = $8, sale_starts_at = $9, sale_ends_at = $10, per_user_limit = $11,
             admission_per_minute = $12, buyer_cancellation_cutoff_minutes = $13, version = version + 1,
             updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(details.venue_id)
    .bind(venue_name)
    .bind(&details.name)
    .bind(&details.description)
    .bind(details.starts_at)
    .bind(details.ends_at)
    .bind(&details.time_zone)
    .bind(details.sale_starts_at)
    .bind(details.sale_ends_at)
    .bind(i32::try_from(details.per_user_limit).context("per_user_limit")?)
    .bind(admission_per_minute(details)?)
    .bind(cancellation_cutoff(details)?)
    .fetch_one(conn)
    .await
    .context("updating an event")?;
    row.try_into()
}

/// Moves the event to `status` (with a reason when cancelling) and bumps the version.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: EventStatus,
    cancellation_reason: &str,
) -> anyhow::Result<Event> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE events SET status = $2, cancellation_reason = $3, version = version + 1, updated_at = now(),
             published_at = CASE WHEN $2 = 'published' THEN now() ELSE published_at END
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(cancellation_reason)
    .fetch_one(conn)
    .await
    .context("changing an event's status")?;
    row.try_into()
}

/// Bumps the version after a change to the event's categories.
pub async fn touch(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("UPDATE events SET version = version + 1, updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .context("bumping an event's version")?;
    Ok(())
}

/// One page of events matching `search` that the viewer may see (plus one more, so the caller
/// can tell whether another page follows), in `(starts_at, id)` order. Only the filters in use
/// reach the SQL, so the planner sees each query's real shape (the GIN index for text, the
/// `(starts_at, id)` indexes for the rest) rather than one generic plan full of `$n IS NULL OR`.
pub async fn search(db: impl PgExecutor<'_>, search: &EventSearch, drafts: Drafts) -> anyhow::Result<Vec<Event>> {
    let statuses: Vec<&str> = search.statuses.iter().map(|s| s.as_str()).collect();
    let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM events WHERE status = ANY("));
    sql.push_bind(statuses).push(")");
    match drafts {
        Drafts::All => {}
        Drafts::Of(owner) => {
            sql.push(" AND (status <> 'draft' OR organizer_id = ").push_bind(owner).push(")");
        }
        Drafts::None => {
            sql.push(" AND status <> 'draft'");
        }
    }
    if !search.query.is_empty() {
        sql.push(" AND search @@ websearch_to_tsquery('english', ").push_bind(&search.query).push(")");
    }
    if let Some(from) = search.starts_from {
        sql.push(" AND starts_at >= ").push_bind(from);
    }
    if let Some(before) = search.starts_before {
        sql.push(" AND starts_at < ").push_bind(before);
    }
    if let Some(venue_id) = search.venue_id {
        sql.push(" AND venue_id = ").push_bind(venue_id);
    }
    if let Some(organizer_id) = search.organizer_id {
        sql.push(" AND organizer_id = ").push_bind(organizer_id);
    }
    if let Some(after) = search.after {
        sql.push(" AND (starts_at, id) > (").push_bind(after.starts_at).push(", ").push_bind(after.id).push(")");
    }
    sql.push(" ORDER BY starts_at, id LIMIT ").push_bind(i64::from(search.limit) + 1);
    let rows: Vec<Row> = sql.build_query_as().fetch_all(db).await.context("searching events")?;
    rows.into_iter().map(Event::try_from).collect()
}
