//! Bookings, line items, the event projection and the sales ledger in booking's Postgres.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use ticketing_platform::page::TimeCursor;
use uuid::Uuid;

use crate::domain::sales::{CategorySales, Point, Tally, Window};
use crate::domain::{Booking, CancellationRequest, LineItem, Status};

const COLUMNS: &str = "id, user_id, event_id, hold_id, fencing_token, status, currency, total_minor, expires_at, \
                       payment_id, refund_requested_at, cancellation_reason, cancel_requested_at, \
                       cancel_requested_by, cancel_forced, cancel_detail, restock_due, confirmed_at, refunded_minor, \
                       created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    hold_id: String,
    fencing_token: i64,
    status: String,
    currency: String,
    total_minor: i64,
    expires_at: DateTime<Utc>,
    payment_id: Option<Uuid>,
    refund_requested_at: Option<DateTime<Utc>>,
    cancellation_reason: String,
    cancel_requested_at: Option<DateTime<Utc>>,
    cancel_requested_by: Option<Uuid>,
    cancel_forced: bool,
    cancel_detail: String,
    restock_due: bool,
    confirmed_at: Option<DateTime<Utc>>,
    refunded_minor: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_booking(self, line_items: Vec<LineItem>) -> anyhow::Result<Booking> {
        Ok(Booking {
            id: self.id,
            user_id: self.user_id,
            event_id: self.event_id,
            hold_id: self.hold_id,
            fencing_token: u64::try_from(self.fencing_token).context("stored fencing token")?,
            status: self.status.parse().map_err(anyhow::Error::msg)?,
            currency: self.currency,
            total_minor: self.total_minor,
            expires_at: self.expires_at,
            payment_id: self.payment_id,
            refund_requested_at: self.refund_requested_at,
            cancellation_reason: self.cancellation_reason,
            cancellation: match (self.cancel_requested_at, self.cancel_requested_by) {
                (Some(at), Some(by)) => {
                    Some(CancellationRequest { at, by, forced: self.cancel_forced, detail: self.cancel_detail })
                }
                _ => None,
            },
            restock_due: self.restock_due,
            line_items,
            confirmed_at: self.confirmed_at,
            refunded_minor: self.refunded_minor,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Stores a new booking, for the reconciler to look at `reconcile_at`; `Err(id)` when its
/// hold already backs booking `id`.
pub async fn insert(
    tx: &mut PgConnection,
    booking: &Booking,
    reconcile_at: Option<DateTime<Utc>>,
) -> anyhow::Result<Result<(), Uuid>> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO bookings (id, user_id, event_id, hold_id, fencing_token, status, currency, total_minor, expires_at,
                               reconcile_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (hold_id) DO NOTHING RETURNING id",
    )
    .bind(booking.id)
    .bind(booking.user_id)
    .bind(booking.event_id)
    .bind(&booking.hold_id)
    .bind(i64::try_from(booking.fencing_token).context("fencing token")?)
    .bind(booking.status.as_str())
    .bind(&booking.currency)
    .bind(booking.total_minor)
    .bind(booking.expires_at)
    .bind(reconcile_at)
    .bind(booking.created_at)
    .bind(booking.updated_at)
    .fetch_optional(&mut *tx)
    .await
    .context("inserting a booking")?;
    if inserted.is_none() {
        let existing: Uuid = sqlx::query_scalar("SELECT id FROM bookings WHERE hold_id = $1")
            .bind(&booking.hold_id)
            .fetch_one(&mut *tx)
            .await
            .context("finding the hold's booking")?;
        return Ok(Err(existing));
    }
    let items = &booking.line_items;
    sqlx::query(
        "INSERT INTO line_items (id, booking_id, position, category_id, seat_id, label, unit_price_minor)
         SELECT u.id, $1, u.position, u.category_id, u.seat_id, u.label, u.price
         FROM UNNEST($2::uuid[], $3::int[], $4::uuid[], $5::uuid[], $6::text[], $7::bigint[])
           AS u(id, position, category_id, seat_id, label, price)",
    )
    .bind(booking.id)
    .bind(items.iter().map(|i| i.id).collect::<Vec<_>>())
    .bind((0..items.len() as i32).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.category_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.seat_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.label.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.unit_price_minor).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .context("inserting line items")?;
    Ok(Ok(()))
}

async fn line_items(db: &mut PgConnection, ids: &[Uuid]) -> anyhow::Result<Vec<(Uuid, LineItem)>> {
    let rows: Vec<(Uuid, Uuid, Uuid, Option<Uuid>, String, i64)> = sqlx::query_as(
        "SELECT booking_id, id, category_id, seat_id, label, unit_price_minor FROM line_items
         WHERE booking_id = ANY($1) ORDER BY booking_id, position",
    )
    .bind(ids)
    .fetch_all(db)
    .await
    .context("reading line items")?;
    Ok(rows
        .into_iter()
        .map(|(booking, id, category_id, seat_id, label, unit_price_minor)| {
            (booking, LineItem { id, category_id, seat_id, label, unit_price_minor })
        })
        .collect())
}

async fn with_items(db: &mut PgConnection, rows: Vec<Row>) -> anyhow::Result<Vec<Booking>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut items = line_items(db, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let mine = items.iter().filter(|(b, _)| *b == row.id).map(|(_, i)| i.clone()).collect();
            items.retain(|(b, _)| *b != row.id);
            row.into_booking(mine)
        })
        .collect()
}

/// One booking.
pub async fn get(db: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Booking>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM bookings WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *db)
        .await
        .context("reading a booking")?;
    Ok(with_items(db, row.into_iter().collect()).await?.pop())
}

/// One booking, locked until the transaction ends.
pub async fn lock(tx: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Booking>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM bookings WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .context("locking a booking")?;
    Ok(with_items(tx, row.into_iter().collect()).await?.pop())
}

/// The booking of a hold, locked until the transaction ends.
pub async fn lock_by_hold(tx: &mut PgConnection, hold_id: &str) -> anyhow::Result<Option<Booking>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM bookings WHERE hold_id = $1 FOR UPDATE"))
        .bind(hold_id)
        .fetch_optional(&mut *tx)
        .await
        .context("locking a hold's booking")?;
    Ok(with_items(tx, row.into_iter().collect()).await?.pop())
}

/// An event's bookings in `statuses`, locked until the transaction ends.
pub async fn lock_of_event(tx: &mut PgConnection, event: Uuid, statuses: &[Status]) -> anyhow::Result<Vec<Booking>> {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bookings WHERE event_id = $1 AND status = ANY($2) ORDER BY id FOR UPDATE"
    ))
    .bind(event)
    .bind(&names)
    .fetch_all(&mut *tx)
    .await
    .context("locking an event's bookings")?;
    with_items(tx, rows).await
}

/// Writes a booking's mutable fields back, for the reconciler to look at `reconcile_at`.
pub async fn update(
    db: impl PgExecutor<'_>,
    booking: &Booking,
    reconcile_at: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE bookings SET status = $2, payment_id = $3, refund_requested_at = $4, cancellation_reason = $5,
                cancel_requested_at = $6, cancel_requested_by = $7, cancel_forced = $8, cancel_detail = $9,
                restock_due = $10, reconcile_at = $11, updated_at = $12, confirmed_at = $13, refunded_minor = $14
         WHERE id = $1",
    )
    .bind(booking.id)
    .bind(booking.status.as_str())
    .bind(booking.payment_id)
    .bind(booking.refund_requested_at)
    .bind(&booking.cancellation_reason)
    .bind(booking.cancellation.as_ref().map(|c| c.at))
    .bind(booking.cancellation.as_ref().map(|c| c.by))
    .bind(booking.cancellation.as_ref().is_some_and(|c| c.forced))
    .bind(booking.cancellation.as_ref().map_or("", |c| c.detail.as_str()))
    .bind(booking.restock_due)
    .bind(reconcile_at)
    .bind(booking.updated_at)
    .bind(booking.confirmed_at)
    .bind(booking.refunded_minor)
    .execute(db)
    .await
    .context("updating a booking")?;
    Ok(())
}

/// Paid bookings whose cancellation was asked for before `before` and is still under way
/// (the replica that took it died, or notification was down), oldest first.
pub async fn stalled_cancellations(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM bookings WHERE cancel_requested_at < $1 AND status = 'confirmed'
         ORDER BY cancel_requested_at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
    .context("finding stalled cancellations")
}

/// Claims up to `limit` bookings whose reconciliation is due, oldest first, and puts their
/// next look `lease` ahead: a replica that dies while looking leaves them to the next. Rows a
/// saga step holds are skipped; that step reschedules them.
pub async fn claim_due(db: impl PgExecutor<'_>, lease: std::time::Duration, limit: i64) -> anyhow::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE bookings SET reconcile_at = now() + $1
         WHERE id IN (SELECT id FROM bookings WHERE reconcile_at <= now()
                      ORDER BY reconcile_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(lease)
    .bind(limit)
    .fetch_all(db)
    .await
    .context("claiming bookings to reconcile")
}

/// When the reconciler next looks at a booking (`None` for never), as it decided from the
/// booking last written at `seen`; a booking written since keeps the schedule that write set.
pub async fn reschedule(
    db: impl PgExecutor<'_>,
    id: Uuid,
    at: Option<DateTime<Utc>>,
    seen: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE bookings SET reconcile_at = $2 WHERE id = $1 AND updated_at = $3")
        .bind(id)
        .bind(at)
        .bind(seen)
        .execute(db)
        .await
        .context("rescheduling a reconciliation")?;
    Ok(())
}

/// Whose bookings a page lists.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    /// One buyer's.
    User(Uuid),
    /// One event's.
    Event(Uuid),
}

/// A page of bookings, newest first, one more than `limit` when there are more.
pub async fn page(
    db: &mut PgConnection,
    owner: Owner,
    statuses: &[Status],
    after: Option<TimeCursor>,
    limit: u32,
) -> anyhow::Result<Vec<Booking>> {
    let (column, id) = match owner {
        Owner::User(id) => ("user_id", id),
        Owner::Event(id) => ("event_id", id),
    };
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bookings
         WHERE {column} = $1 AND (cardinality($2::text[]) = 0 OR status = ANY($2))
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(id)
    .bind(&names)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *db)
    .await
    .context("listing bookings")?;
    with_items(db, rows).await
}

/// Records an event's organizer (from `EventPublished`).
pub async fn upsert_event(db: impl PgExecutor<'_>, event: Uuid, organizer: Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO events (id, organizer_id) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET organizer_id = EXCLUDED.organizer_id",
    )
    .bind(event)
    .bind(organizer)
    .execute(db)
    .await
    .context("recording an event")?;
    Ok(())
}

/// Marks an event cancelled; its organizer may be unknown yet.
pub async fn cancel_event(db: impl PgExecutor<'_>, event: Uuid, organizer: Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO events (id, organizer_id, cancelled) VALUES ($1, $2, true)
         ON CONFLICT (id) DO UPDATE SET cancelled = true",
    )
    .bind(event)
    .bind(organizer)
    .execute(db)
    .await
    .context("cancelling an event")?;
    Ok(())
}

/// The event's organizer, if known.
pub async fn organizer(db: impl PgExecutor<'_>, event: Uuid) -> anyhow::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT organizer_id FROM events WHERE id = $1")
        .bind(event)
        .fetch_optional(db)
        .await
        .context("reading an event's organizer")
}

/// What a sales ledger row records of a ticket.
#[derive(Debug, Clone, Copy)]
pub enum Sale {
    /// Sold: its booking was confirmed.
    Sold,
    /// Paid back: its booking was refunded in full.
    Refunded,
}

impl Sale {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sold => "sold",
            Self::Refunded => "refunded",
        }
    }
}

/// Records every ticket of `booking` in the sales ledger as `sale` at `at`, in the
/// transaction of the transition; a ticket is recorded once per kind.
pub async fn record_sale(
    tx: &mut PgConnection,
    booking: &Booking,
    sale: Sale,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let items = &booking.line_items;
    sqlx::query(
        "INSERT INTO sales (line_item_id, kind, booking_id, event_id, category_id, currency, amount_minor, at)
         SELECT u.id, $1, $2, $3, u.category_id, $4, u.price, $5
         FROM UNNEST($6::uuid[], $7::uuid[], $8::bigint[]) AS u(id, category_id, price)
         ON CONFLICT (line_item_id, kind) DO NOTHING",
    )
    .bind(sale.as_str())
    .bind(booking.id)
    .bind(booking.event_id)
    .bind(&booking.currency)
    .bind(at)
    .bind(items.iter().map(|i| i.id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.category_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.unit_price_minor).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .context("recording a sale")?;
    Ok(())
}

/// Ledger rows grouped by a key: its kind, how many tickets and their sum.
type Grouped<K> = (K, String, String, i64, i64);

fn tally<K: PartialEq>(rows: Vec<Grouped<K>>) -> Vec<(K, String, Tally)> {
    let mut out: Vec<(K, String, Tally)> = Vec::new();
    for (key, currency, kind, tickets, amount) in rows {
        let at = match out.iter().position(|(k, c, _)| *k == key && *c == currency) {
            Some(at) => at,
            None => {
                out.push((key, currency, Tally::default()));
                out.len() - 1
            }
        };
        let tally = &mut out[at].2;
        let tickets = u64::try_from(tickets).unwrap_or_default();
        if kind == Sale::Sold.as_str() {
            (tally.tickets_sold, tally.revenue_minor) = (tickets, amount);
        } else {
            (tally.tickets_refunded, tally.refunds_minor) = (tickets, amount);
        }
    }
    out
}

/// An event's sales per category and currency, all time.
pub async fn sales_by_category(db: impl PgExecutor<'_>, event: Uuid) -> anyhow::Result<Vec<CategorySales>> {
    let rows: Vec<Grouped<Uuid>> = sqlx::query_as(
        "SELECT category_id, currency, kind, count(*), sum(amount_minor)::bigint FROM sales
         WHERE event_id = $1 GROUP BY category_id, currency, kind ORDER BY category_id, currency",
    )
    .bind(event)
    .fetch_all(db)
    .await
    .context("summing an event's sales")?;
    Ok(tally(rows)
        .into_iter()
        .map(|(category_id, currency, tally)| CategorySales { category_id, currency, tally })
        .collect())
}

/// An event's sales per bucket of `window` and currency, for the buckets with any.
pub async fn sales_series(db: impl PgExecutor<'_>, event: Uuid, window: &Window) -> anyhow::Result<Vec<Point>> {
    let rows: Vec<Grouped<DateTime<Utc>>> = sqlx::query_as(
        "SELECT date_bin($4, at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS start, currency, kind, count(*),
                sum(amount_minor)::bigint
         FROM sales WHERE event_id = $1 AND at >= $2 AND at < $3
         GROUP BY start, currency, kind ORDER BY start, currency",
    )
    .bind(event)
    .bind(window.from)
    .bind(window.to)
    .bind(window.bucket.length().to_std().context("a bucket's length")?)
    .fetch_all(db)
    .await
    .context("bucketing an event's sales")?;
    Ok(tally(rows).into_iter().map(|(start, currency, tally)| Point { start, currency, tally }).collect())
}
