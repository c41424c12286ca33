//! The delivery log: enqueued in the consumer's transaction, claimed with a lease by
//! the dispatcher, then marked sent, retrying or failed.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::delivery::delivery_id;
use crate::domain::{Delivery, DeliveryStatus, Template};

/// A message a consumed event causes.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// The envelope id of the event.
    pub source_event_id: Uuid,
    /// What to send.
    pub template: Template,
    /// Where to.
    pub recipient: &'a str,
    /// Whom it is for.
    pub user_id: Option<Uuid>,
    /// The booking it is about.
    pub booking_id: Option<Uuid>,
    /// What the template renders.
    pub context: serde_json::Value,
}

/// Logs `delivery` as pending. `false` when this event already caused it: the log's
/// key is (source event, template), so a redelivered or replayed event sends nothing.
pub async fn enqueue(conn: &mut PgConnection, delivery: &NewDelivery<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO deliveries (id, source_event_id, template, recipient, user_id, booking_id, context)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(delivery_id(delivery.source_event_id, delivery.template))
    .bind(delivery.source_event_id)
    .bind(delivery.template.as_str())
    .bind(delivery.recipient)
    .bind(delivery.user_id)
    .bind(delivery.booking_id)
    .bind(&delivery.context)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Erases what the log holds about the user's emails (address, names, links, ticket
/// codes), keeping that they were sent; the ones not sent yet are given up.
pub async fn erase_user(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<u64> {
    let erased = sqlx::query(
        "UPDATE deliveries SET recipient = '', context = '{}'::jsonb,
                status = CASE WHEN status IN ('pending', 'retrying') THEN 'failed' ELSE status END,
                last_error = CASE WHEN status IN ('pending', 'retrying') THEN 'the account was deleted'
                                  ELSE last_error END,
                claim = NULL, claimed_until = NULL
          WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(erased)
}

/// A delivery this replica has claimed and must now send.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// The delivery id (and Message-ID).
    pub id: Uuid,
    /// The template name.
    pub template: String,
    /// Where to.
    pub recipient: String,
    /// What the template renders.
    pub context: serde_json::Value,
    /// Attempts including this one.
    pub attempts: i32,
    /// This replica's claim; outcomes are recorded only under it.
    pub claim: Uuid,
}

/// Claims up to `limit` due deliveries for `lease`, counting the attempt. The claim is
/// committed before anything is sent, so a replica that dies mid-send leaves a row
/// that another replica retries once the lease ends.
pub async fn claim(pool: &PgPool, limit: u32, lease: Duration) -> anyhow::Result<Vec<Claimed>> {
    sqlx::query_as(
        "UPDATE deliveries d
            SET attempts = d.attempts + 1, claim = gen_random_uuid(), claimed_until = now() + $2
           FROM (SELECT id FROM deliveries
                  WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()
                    AND (claimed_until IS NULL OR claimed_until < now())
                  ORDER BY next_attempt_at
                  LIMIT $1
                  FOR UPDATE SKIP LOCKED) due
          WHERE d.id = due.id
         RETURNING d.id, d.template, d.recipient, d.context, d.attempts, d.claim",
    )
    .bind(i64::from(limit))
    .bind(lease)
    .fetch_all(pool)
    .await
    .context("claiming due deliveries")
}

/// Records that the server accepted the claimed delivery; `false` when the row is no
/// longer under this claim.
pub async fn mark_sent(pool: &PgPool, delivery: &Claimed) -> anyhow::Result<bool> {
    let updated = sqlx::query(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), claim = NULL, claimed_until = NULL
          WHERE id = $1 AND claim = $2",
    )
    .bind(delivery.id)
    .bind(delivery.claim)
    .execute(pool)
    .await
    .context("recording a sent delivery")?;
    Ok(updated.rows_affected() == 1)
}

/// Gives back claimed deliveries that were not attempted, uncounting the attempt, so
/// the next claim takes them at once instead of after the lease.
pub async fn release(pool: &PgPool, unsent: &[Claimed]) -> anyhow::Result<()> {
    let (ids, claims): (Vec<Uuid>, Vec<Uuid>) = unsent.iter().map(|d| (d.id, d.claim)).unzip();
    sqlx::query(
        "UPDATE deliveries d SET attempts = d.attempts - 1, claim = NULL, claimed_until = NULL
           FROM unnest($1::uuid[], $2::uuid[]) AS r(id, claim)
          WHERE d.id = r.id AND d.claim = r.claim",
    )
    .bind(ids)
    .bind(claims)
    .execute(pool)
    .await
    .context("releasing unsent deliveries")?;
    Ok(())
}

/// Records a failed attempt: `retry_in` schedules the next one, `None` gives up. `false`
/// when the row is no longer under this claim.
pub async fn mark_failed(
    pool: &PgPool,
    delivery: &Claimed,
    error: &str,
    retry_in: Option<Duration>,
) -> anyhow::Result<bool> {
    let status = if retry_in.is_some() { DeliveryStatus::Retrying } else { DeliveryStatus::Failed };
    let updated = sqlx::query(
        "UPDATE deliveries
            SET status = $3, last_error = $4, next_attempt_at = now() + coalesce($5, interval '0'),
                claim = NULL, claimed_until = NULL
          WHERE id = $1 AND claim = $2",
    )
    .bind(delivery.id)
    .bind(delivery.claim)
    .bind(status.as_str())
    .bind(error)
    .bind(retry_in)
    .execute(pool)
    .await
    .context("recording a failed delivery")?;
    Ok(updated.rows_affected() == 1)
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    template: String,
    recipient: String,
    status: String,
    attempts: i32,
    sent_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    source_event_id: Uuid,
    booking_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, template, recipient, status, attempts, sent_at, last_error, source_event_id, booking_id, created_at";

/// The deliveries about `booking`, oldest first.
pub async fn of_booking(db: impl PgExecutor<'_>, booking: Uuid) -> anyhow::Result<Vec<Delivery>> {
    list(db, "booking_id", booking).await
}

/// The deliveries `event` caused, oldest first.
pub async fn of_event(db: impl PgExecutor<'_>, event: Uuid) -> anyhow::Result<Vec<Delivery>> {
    list(db, "source_event_id", event).await
}

async fn list(db: impl PgExecutor<'_>, column: &'static str, id: Uuid) -> anyhow::Result<Vec<Delivery>> {
    let rows: Vec<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM deliveries WHERE {column} = $1 ORDER BY created_at, id"))
            .bind(id)
            .fetch_all(db)
            .await?;
    rows.into_iter().map(Row::into_delivery).collect()
}

impl Row {
    fn into_delivery(self) -> anyhow::Result<Delivery> {
        Ok(Delivery {
            id: self.id,
            template: self.template,
            recipient: self.recipient,
            status: self.status.parse().map_err(anyhow::Error::msg)?,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            sent_at: self.sent_at,
            last_error: self.last_error,
            source_event_id: self.source_event_id,
            booking_id: self.booking_id,
            created_at: self.created_at,
        })
    }
}
