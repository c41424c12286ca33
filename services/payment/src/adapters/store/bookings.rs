//! The booking projection: what payment has heard of each booking.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::{Booking, BookingStatus, Money};

/// What one booking event says about a booking.
#[derive(Debug, Clone)]
pub struct BookingFact {
    /// The booking.
    pub id: uuid::Uuid,
    /// Its buyer.
    pub user_id: uuid::Uuid,
    /// Its event.
    pub event_id: uuid::Uuid,
    /// The state the event puts it in.
    pub status: BookingStatus,
    /// Its total, when the event carries it.
    pub total: Option<Money>,
    /// Its expiry, when the event carries it.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Applies `fact` to the projection: inserts the booking, or moves it forward and fills
/// in what was missing. Never moves a booking backwards (see [`BookingStatus::advance`]).
pub async fn apply_booking(conn: &mut PgConnection, fact: &BookingFact) -> anyhow::Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO bookings (id, user_id, event_id, currency, total_minor, expires_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(fact.id)
    .bind(fact.user_id)
    .bind(fact.event_id)
    .bind(fact.total.as_ref().map(|m| m.currency.as_str()))
    .bind(fact.total.as_ref().map(|m| m.minor_units))
    .bind(fact.expires_at)
    .bind(fact.status.as_str())
    .execute(&mut *conn)
    .await
    .context("inserting a booking")?
    .rows_affected();
    if inserted == 1 {
        return Ok(());
    }
    let current: String = sqlx::query_scalar("SELECT status FROM bookings WHERE id = $1 FOR UPDATE")
        .bind(fact.id)
        .fetch_one(&mut *conn)
        .await
        .context("locking a booking")?;
    let current = BookingStatus::parse(&current).with_context(|| format!("unknown booking status {current}"))?;
    sqlx::query(
        "UPDATE bookings SET status = $2, currency = COALESCE(currency, $3), total_minor = COALESCE(total_minor, $4),
                expires_at = COALESCE(expires_at, $5), updated_at = now()
         WHERE id = $1",
    )
    .bind(fact.id)
    .bind(current.advance(fact.status).as_str())
    .bind(fact.total.as_ref().map(|m| m.currency.as_str()))
    .bind(fact.total.as_ref().map(|m| m.minor_units))
    .bind(fact.expires_at)
    .execute(&mut *conn)
    .await
    .context("updating a booking")?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct BookingRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    status: String,
    currency: Option<String>,
    total_minor: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
}

/// The booking, if payment has heard of it.
pub async fn booking(pool: &PgPool, id: uuid::Uuid) -> anyhow::Result<Option<Booking>> {
    let row: Option<BookingRow> =
        sqlx::query_as("SELECT id, user_id, status, currency, total_minor, expires_at FROM bookings WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .context("reading a booking")?;
    row.map(|r| {
        Ok(Booking {
            id: r.id,
            user_id: r.user_id,
            status: BookingStatus::parse(&r.status).with_context(|| format!("unknown booking status {}", r.status))?,
            total: r
                .currency
                .zip(r.total_minor)
                .map(|(c, minor_units)| super::stored_money(&c, minor_units))
                .transpose()?,
            expires_at: r.expires_at,
        })
    })
    .transpose()
}
