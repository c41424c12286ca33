//! The `categories` and `category_seats` tables.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::category::{Allocation, Category, CategoryFields};
use ticketing_kernel::money::Money;

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    event_id: Uuid,
    name: String,
    description: String,
    currency: String,
    price_minor: i64,
    ga_capacity: Option<i32>,
    area_id: Option<Uuid>,
    seat_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Category {
    type Error = anyhow::Error;

    fn try_from(row: Row) -> anyhow::Result<Self> {
        let price = Money::parse(&row.currency, row.price_minor)
            .map_err(|e| anyhow::anyhow!("stored price of category {}: {e:?}", row.id))?;
        let (capacity, allocation) = match row.ga_capacity {
            Some(capacity) => {
                let capacity = u32::try_from(capacity).context("stored ga_capacity")?;
                (capacity, Allocation::GeneralAdmission { capacity, area_id: row.area_id })
            }
            // Seat ids are loaded separately, and only when asked for.
            None => (u32::try_from(row.seat_count).context("seat count")?, Allocation::Seats(Vec::new())),
        };
        Ok(Category {
            id: row.id,
            event_id: row.event_id,
            name: row.name,
            description: row.description,
            price,
            capacity,
            allocation,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const SELECT: &str = "SELECT c.id, c.event_id, c.name, c.description, c.currency, c.price_minor, c.ga_capacity, \
                      c.area_id, (SELECT count(*) FROM category_seats cs WHERE cs.category_id = c.id) AS seat_count, \
                      c.created_at, c.updated_at FROM categories c";

/// The categories of `event_ids`, oldest first, without seat ids.
pub async fn of_events(db: impl PgExecutor<'_>, event_ids: &[Uuid]) -> anyhow::Result<Vec<Category>> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE c.event_id = ANY($1) ORDER BY c.created_at, c.id"))
        .bind(event_ids)
        .fetch_all(db)
        .await
        .context("loading categories")?;
    rows.into_iter().map(Category::try_from).collect()
}

/// The event a category belongs to.
pub async fn event_of(db: impl PgExecutor<'_>, id: Uuid) -> anyhow::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT event_id FROM categories WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .context("looking up a category")
}

/// Inserts a category; its seats, if any, are added with [`add_seats`].
pub async fn insert(
    conn: &mut PgConnection,
    event_id: Uuid,
    fields: &CategoryFields,
    allocation: &Allocation,
) -> anyhow::Result<Uuid> {
    let (ga_capacity, area_id) = ga_columns(allocation)?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO categories (id, event_id, name, description, currency, price_minor, ga_capacity, area_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(event_id)
    .bind(&fields.name)
    .bind(&fields.description)
    .bind(fields.price.currency.as_str())
    .bind(fields.price.minor_units)
    .bind(ga_capacity)
    .bind(area_id)
    .execute(conn)
    .await
    .context("inserting a category")?;
    Ok(id)
}

/// Updates a category's fields and, when `allocation` is given, its GA columns; seats are
/// replaced separately with [`clear_seats`] and [`add_seats`].
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &CategoryFields,
    allocation: Option<&Allocation>,
) -> anyhow::Result<()> {
    let ga = allocation.map(ga_columns).transpose()?;
    sqlx::query(
        "UPDATE categories SET name = $2, description = $3, currency = $4, price_minor = $5,
             ga_capacity = CASE WHEN $6 THEN $7 ELSE ga_capacity END,
             area_id = CASE WHEN $6 THEN $8 ELSE area_id END,
             updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.description)
    .bind(fields.price.currency.as_str())
    .bind(fields.price.minor_units)
    .bind(ga.is_some())
    .bind(ga.and_then(|(capacity, _)| capacity))
    .bind(ga.and_then(|(_, area)| area))
    .execute(conn)
    .await
    .context("updating a category")?;
    Ok(())
}

fn ga_columns(allocation: &Allocation) -> anyhow::Result<(Option<i32>, Option<Uuid>)> {
    Ok(match allocation {
        Allocation::GeneralAdmission { capacity, area_id } => {
            (Some(i32::try_from(*capacity).context("GA capacity")?), *area_id)
        }
        Allocation::Seats(_) => (None, None),
    })
}

/// Deletes a category (and its seats).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM categories WHERE id = $1").bind(id).execute(conn).await.context("deleting a category")?;
    Ok(())
}

/// Frees the category's seats.
pub async fn clear_seats(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM category_seats WHERE category_id = $1")
        .bind(id)
        .execute(conn)
        .await
        .context("clearing a category's seats")?;
    Ok(())
}

/// Gives `seat_ids` to the category, in one statement. The primary key on (event, seat) is
/// the rule that a seat belongs to at most one category of an event: seats another category
/// holds are skipped, and returned as `(seat, holder)`.
pub async fn add_seats(
    conn: &mut PgConnection,
    event_id: Uuid,
    category_id: Uuid,
    seat_ids: &[Uuid],
) -> anyhow::Result<Option<(Uuid, Uuid)>> {
    let added = sqlx::query(
        "INSERT INTO category_seats (event_id, seat_id, category_id)
         SELECT $1, u.id, $2 FROM UNNEST($3::uuid[]) AS u(id)
         ON CONFLICT (event_id, seat_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(category_id)
    .bind(seat_ids)
    .execute(&mut *conn)
    .await
    .context("assigning seats")?
    .rows_affected();
    if added == seat_ids.len() as u64 {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT seat_id, category_id FROM category_seats
         WHERE event_id = $1 AND seat_id = ANY($2) AND category_id <> $3 LIMIT 1",
    )
    .bind(event_id)
    .bind(seat_ids)
    .bind(category_id)
    .fetch_optional(conn)
    .await
    .context("finding a taken seat")
}

/// How many GA tickets the event's categories other than `except` sell on `area_id`.
pub async fn sold_on_area(
    db: impl PgExecutor<'_>,
    event_id: Uuid,
    area_id: Uuid,
    except: Option<Uuid>,
) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(ga_capacity), 0)::int8 FROM categories
         WHERE event_id = $1 AND area_id = $2 AND ($3::uuid IS NULL OR id <> $3)",
    )
    .bind(event_id)
    .bind(area_id)
    .bind(except)
    .fetch_one(db)
    .await
    .context("summing an area's categories")
}
