//! The Postgres ledger: published stock and confirmed sales, the final arbiter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use ticketing_proto::events::v1::EventPublished;
use ticketing_proto::events::v1::category_snapshot::Allocation;

use super::stock::Snapshot;
use crate::domain::{Hold, HoldId, HoldLine, HoldStatus};

fn timestamp(t: Option<&prost_types::Timestamp>) -> anyhow::Result<DateTime<Utc>> {
    let t = t.context("missing timestamp")?;
    ticketing_kernel::time::from_proto(t).context("invalid timestamp")
}

fn ms(t: DateTime<Utc>) -> u64 {
    t.timestamp_millis().max(0) as u64
}

/// Stores the stock of a newly published event. Idempotent: a replay changes nothing.
pub async fn insert_stock(tx: &mut PgConnection, event: &EventPublished) -> anyhow::Result<()> {
    let event_id: uuid::Uuid = event.event_id.parse().context("event_id")?;
    let inserted = sqlx::query(
        "INSERT INTO events (event_id, organizer_id, sale_starts_at, sale_ends_at, per_user_limit, state, version)
         VALUES ($1, $2, $3, $4, $5, 'published', $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(event.organizer_id.parse::<uuid::Uuid>().context("organizer_id")?)
    .bind(timestamp(event.sale_starts_at.as_ref())?)
    .bind(timestamp(event.sale_ends_at.as_ref())?)
    .bind(i32::try_from(event.per_user_limit.max(1)).context("per_user_limit")?)
    .bind(event.version as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(());
    }
    for category in &event.categories {
        let category_id: uuid::Uuid = category.category_id.parse().context("category_id")?;
        let (seated, capacity) = match &category.allocation {
            Some(Allocation::GeneralAdmissionCapacity(capacity)) => (false, *capacity),
            Some(Allocation::Seats(seats)) => (true, seats.seat_ids.len() as u32),
            None => anyhow::bail!("category {category_id} has no allocation"),
        };
        sqlx::query("INSERT INTO categories (event_id, category_id, seated, capacity) VALUES ($1, $2, $3, $4)")
            .bind(event_id)
            .bind(category_id)
            .bind(seated)
            .bind(capacity as i32)
            .execute(&mut *tx)
            .await?;
        if let Some(Allocation::Seats(seats)) = &category.allocation {
            anyhow::ensure!(
                seats.row_ids.len() == seats.seat_ids.len() && seats.positions.len() == seats.seat_ids.len(),
                "category {category_id}: seat, row and position lists differ in length"
            );
            let ids: Vec<uuid::Uuid> =
                seats.seat_ids.iter().map(|s| s.parse()).collect::<Result<_, _>>().context("seat id")?;
            let ranks: Vec<i32> = (0..ids.len() as i32).collect();
            let positions: Vec<i32> = seats.positions.iter().map(|p| *p as i32).collect();
            // One statement for the whole category, however many seats.
            sqlx::query(
                "INSERT INTO seats (event_id, seat_id, category_id, rank, row_id, position)
                 SELECT $1, s, $2, r, rw, p FROM UNNEST($3::uuid[], $4::int[], $5::text[], $6::int[]) AS t(s, r, rw, p)",
            )
            .bind(event_id)
            .bind(category_id)
            .bind(&ids)
            .bind(&ranks)
            .bind(&seats.row_ids)
            .bind(&positions)
            .execute(&mut *tx)
            .await
            .context("inserting seats")?;
        }
    }
    Ok(())
}

/// Applies a newer sale window and limit; `false` if the event is unknown (not yet published here).
pub async fn update_event(
    tx: &mut PgConnection,
    event: uuid::Uuid,
    window: (DateTime<Utc>, DateTime<Utc>),
    limit: u32,
    version: u64,
) -> anyhow::Result<bool> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM events WHERE event_id = $1 FOR UPDATE")
        .bind(event)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(current) = exists else { return Ok(false) };
    if current < version as i64 {
        sqlx::query(
            "UPDATE events SET sale_starts_at = $2, sale_ends_at = $3, per_user_limit = $4, version = $5 WHERE event_id = $1",
        )
        .bind(event)
        .bind(window.0)
        .bind(window.1)
        .bind(limit.max(1) as i32)
        .bind(version as i64)
        .execute(&mut *tx)
        .await?;
    }
    Ok(true)
}

/// Moves the event to `state` unless a newer change was applied; `false` if unknown.
/// Terminal states (closed, cancelled) are never left.
pub async fn set_state(tx: &mut PgConnection, event: uuid::Uuid, state: &str, version: u64) -> anyhow::Result<bool> {
    let exists: Option<(String, i64)> =
        sqlx::query_as("SELECT state, version FROM events WHERE event_id = $1 FOR UPDATE")
            .bind(event)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((current, current_version)) = exists else { return Ok(false) };
    let terminal = current == "cancelled" || (current == "closed" && state != "cancelled");
    if !terminal && current_version <= version as i64 {
        sqlx::query("UPDATE events SET state = $2, version = $3 WHERE event_id = $1")
            .bind(event)
            .bind(state)
            .bind(version as i64)
            .execute(&mut *tx)
            .await?;
    }
    Ok(true)
}

/// The event's state, window and limit, for refreshing Redis after an update.
pub async fn event_meta(tx: &mut PgConnection, event: uuid::Uuid) -> anyhow::Result<(String, (u64, u64), u32)> {
    let (state, start, end, limit): (String, DateTime<Utc>, DateTime<Utc>, i32) =
        sqlx::query_as("SELECT state, sale_starts_at, sale_ends_at, per_user_limit FROM events WHERE event_id = $1")
            .bind(event)
            .fetch_one(&mut *tx)
            .await?;
    Ok((state, (ms(start), ms(end)), limit as u32))
}

/// Everything needed to (re)build the event in Redis; `None` if the event is unknown.
/// Raises the fencing floor, so tokens issued before this rebuild are stale from now on.
pub async fn snapshot(pool: &PgPool, event: uuid::Uuid) -> anyhow::Result<Option<Snapshot>> {
    let mut tx = pool.begin().await?;
    let fence = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as i64 * 1000;
    #[derive(sqlx::FromRow)]
    struct Meta {
        state: String,
        sale_starts_at: DateTime<Utc>,
        sale_ends_at: DateTime<Utc>,
        per_user_limit: i32,
        fence_floor: i64,
    }
    let meta: Option<Meta> = sqlx::query_as(
        "UPDATE events SET fence_floor = GREATEST(fence_floor + 1, $2) WHERE event_id = $1
         RETURNING state, sale_starts_at, sale_ends_at, per_user_limit, fence_floor",
    )
    .bind(event)
    .bind(fence)
    .fetch_optional(&mut *tx)
    .await
    .context("reading the event")?;
    let Some(Meta { state, sale_starts_at: start, sale_ends_at: end, per_user_limit: limit, fence_floor: floor }) =
        meta
    else {
        return Ok(None);
    };
    let categories: Vec<(uuid::Uuid, bool, i32)> =
        sqlx::query_as("SELECT category_id, seated, capacity FROM categories WHERE event_id = $1")
            .bind(event)
            .fetch_all(&mut *tx)
            .await?;
    let seats: Vec<(uuid::Uuid, uuid::Uuid, String, i32, i32)> = sqlx::query_as(
        "SELECT seat_id, category_id, row_id, position, rank FROM seats WHERE event_id = $1 ORDER BY category_id, rank",
    )
    .bind(event)
    .fetch_all(&mut *tx)
    .await?;
    let sales = sales_of(&mut tx, event).await?;
    tx.commit().await?;

    // Sold counts come from the sales themselves, seated or not.
    let mut sold: std::collections::HashMap<uuid::Uuid, u32> = std::collections::HashMap::new();
    for sale in sales.iter().filter(|s| s.status == HoldStatus::Confirmed) {
        for line in &sale.lines {
            *sold.entry(line.category_id).or_default() += line.quantity;
        }
    }
    Ok(Some(Snapshot {
        event,
        state,
        sale_window_ms: (ms(start), ms(end)),
        per_user_limit: limit as u32,
        fence: floor as u64,
        categories: categories
            .into_iter()
            .map(|(id, seated, capacity)| (id, seated, capacity as u32, sold.get(&id).copied().unwrap_or(0)))
            .collect(),
        seats: seats.into_iter().map(|(s, c, row, pos, rank)| (s, c, row, pos as u32, rank as u32)).collect(),
        sales: sales.into_iter().filter(|s| s.status == HoldStatus::Confirmed).collect(),
    }))
}

#[derive(sqlx::FromRow)]
struct SaleRow {
    hold_id: String,
    user_id: uuid::Uuid,
    booking_id: String,
    fencing_token: i64,
    lines: sqlx::types::Json<Vec<HoldLine>>,
    state: String,
    confirmed_at: DateTime<Utc>,
    restocked_at: Option<DateTime<Utc>>,
}

impl SaleRow {
    fn into_hold(self) -> anyhow::Result<Hold> {
        let id: HoldId = self.hold_id.parse().map_err(anyhow::Error::msg)?;
        Ok(Hold {
            id,
            user: self.user_id,
            status: if self.state == "sold" { HoldStatus::Confirmed } else { HoldStatus::Restocked },
            expires_at: UNIX_EPOCH,
            fencing_token: self.fencing_token as u64,
            lines: self.lines.0,
            created_at: self.confirmed_at.into(),
            ended_at: Some(self.restocked_at.unwrap_or(self.confirmed_at).into()),
            booking_id: Some(self.booking_id),
        })
    }
}

const SALE_COLUMNS: &str = "hold_id, user_id, booking_id, fencing_token, lines, state, confirmed_at, restocked_at";

async fn sales_of(conn: &mut PgConnection, event: uuid::Uuid) -> anyhow::Result<Vec<Hold>> {
    let rows: Vec<SaleRow> = sqlx::query_as(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE event_id = $1"))
        .bind(event)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(SaleRow::into_hold).collect()
}

/// The sale of `hold`, if the ledger has one.
pub async fn sale(conn: &mut PgConnection, hold: HoldId) -> anyhow::Result<Option<Hold>> {
    let row: Option<SaleRow> = sqlx::query_as(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE hold_id = $1"))
        .bind(hold.to_string())
        .fetch_optional(conn)
        .await?;
    row.map(SaleRow::into_hold).transpose()
}

/// Why the ledger refused a sale.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The token predates the last rebuild.
    StaleToken,
    /// The hold was already sold to another booking.
    OtherBooking(String),
    /// A seat is already sold (possible only after holds were lost with Redis).
    SeatSold,
    /// A general-admission category would exceed its capacity.
    Oversold(uuid::Uuid),
}

/// Records the sale of `hold` for `booking`, inside the caller's transaction.
/// `Ok(Ok(true))`: recorded now; `Ok(Ok(false))`: already recorded for this booking.
pub async fn record_sale(tx: &mut PgConnection, hold: &Hold, booking: &str) -> anyhow::Result<Result<bool, Refused>> {
    let floor: i64 = sqlx::query_scalar("SELECT fence_floor FROM events WHERE event_id = $1 FOR SHARE")
        .bind(hold.id.event)
        .fetch_one(&mut *tx)
        .await
        .context("reading the fencing floor")?;
    if hold.fencing_token as i64 <= floor {
        return Ok(Err(Refused::StaleToken));
    }
    let inserted = sqlx::query(
        "INSERT INTO sales (hold_id, event_id, user_id, booking_id, fencing_token, lines, quantity, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'sold') ON CONFLICT (hold_id) DO NOTHING",
    )
    .bind(hold.id.to_string())
    .bind(hold.id.event)
    .bind(hold.user)
    .bind(booking)
    .bind(hold.fencing_token as i64)
    .bind(sqlx::types::Json(&hold.lines))
    .bind(hold.quantity() as i32)
    .execute(&mut *tx)
    .await
    .context("recording the sale")?
    .rows_affected();
    if inserted == 0 {
        let existing: String = sqlx::query_scalar("SELECT booking_id FROM sales WHERE hold_id = $1")
            .bind(hold.id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        return Ok(if existing == booking { Ok(false) } else { Err(Refused::OtherBooking(existing)) });
    }
    for line in &hold.lines {
        if line.seat_ids.is_empty() {
            let updated = sqlx::query(
                "UPDATE categories SET sold = sold + $3 WHERE event_id = $1 AND category_id = $2 AND sold + $3 <= capacity",
            )
            .bind(hold.id.event)
            .bind(line.category_id)
            .bind(line.quantity as i32)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(Err(Refused::Oversold(line.category_id)));
            }
            continue;
        }
        let result = sqlx::query(
            "INSERT INTO sold_seats (event_id, seat_id, hold_id) SELECT $1, s, $2 FROM UNNEST($3::uuid[]) AS s",
        )
        .bind(hold.id.event)
        .bind(hold.id.to_string())
        .bind(&line.seat_ids)
        .execute(&mut *tx)
        .await;
        if let Err(sqlx::Error::Database(e)) = &result
            && e.is_unique_violation()
        {
            return Ok(Err(Refused::SeatSold));
        }
        result.context("recording sold seats")?;
    }
    Ok(Ok(true))
}

/// Marks the sale of `hold` restocked and frees its seats and counts. Idempotent;
/// `Ok(None)` when there is no such sale, `Ok(Some(false))` when it was already restocked.
pub async fn restock(tx: &mut PgConnection, hold: HoldId, booking: &str) -> anyhow::Result<Option<(Hold, bool)>> {
    let row: Option<SaleRow> =
        sqlx::query_as(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE hold_id = $1 AND booking_id = $2 FOR UPDATE"))
            .bind(hold.to_string())
            .bind(booking)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let mut sale = row.into_hold()?;
    if sale.status == HoldStatus::Restocked {
        return Ok(Some((sale, false)));
    }
    sqlx::query("UPDATE sales SET state = 'restocked', restocked_at = now() WHERE hold_id = $1")
        .bind(hold.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sold_seats WHERE hold_id = $1").bind(hold.to_string()).execute(&mut *tx).await?;
    for line in sale.lines.iter().filter(|l| l.seat_ids.is_empty()) {
        sqlx::query("UPDATE categories SET sold = sold - $3 WHERE event_id = $1 AND category_id = $2")
            .bind(hold.event)
            .bind(line.category_id)
            .bind(line.quantity as i32)
            .execute(&mut *tx)
            .await?;
    }
    sale.status = HoldStatus::Restocked;
    Ok(Some((sale, true)))
}
