//! Refunds: any number per payment, one per request id.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::payments::{PAYMENT_COLUMNS, payment};
use super::{LEASED, Lease, seconds, violates};
use crate::domain::{Money, Payment, Refund, RefundStatus};

/// The unique index of refund request ids.
const ONE_PER_REQUEST: &str = "refunds_one_per_request";

const REFUND_COLUMNS: &str = "id, payment_id, request_id, currency, amount_minor, status, reason, provider,
    provider_reference, failure_code, failure_message, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct RefundRow {
    id: uuid::Uuid,
    payment_id: uuid::Uuid,
    request_id: String,
    currency: String,
    amount_minor: i64,
    status: String,
    reason: String,
    provider: String,
    provider_reference: String,
    failure_code: String,
    failure_message: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RefundRow> for Refund {
    type Error = anyhow::Error;

    fn try_from(r: RefundRow) -> anyhow::Result<Self> {
        Ok(Self {
            status: RefundStatus::parse(&r.status).with_context(|| format!("unknown refund status {}", r.status))?,
            id: r.id,
            payment_id: r.payment_id,
            request_id: r.request_id,
            amount: super::stored_money(&r.currency, r.amount_minor)?,
            reason: r.reason,
            provider: r.provider,
            provider_reference: r.provider_reference,
            failure_code: r.failure_code,
            failure_message: r.failure_message,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn refund(row: Option<RefundRow>) -> anyhow::Result<Option<Refund>> {
    row.map(Refund::try_from).transpose()
}

/// A refund about to be recorded.
#[derive(Debug, Clone)]
pub struct NewRefund {
    /// Its id, also the provider idempotency key.
    pub id: uuid::Uuid,
    /// The payment.
    pub payment_id: uuid::Uuid,
    /// The request id (may be empty).
    pub request_id: String,
    /// Why.
    pub reason: String,
    /// The provider adapter.
    pub provider: &'static str,
    /// When the reconciler submits it (or takes it over if it is still pending).
    pub submit_after: Duration,
}

/// What recording a refund found.
#[derive(Debug)]
pub enum Recorded {
    /// A new pending refund, with its amount reserved.
    New(Refund),
    /// A refund with this request id already exists.
    Existing(Refund),
}

/// Locks the payment and records a refund of `amount` (or of whatever remains) as
/// pending, inside the caller's transaction. `decide` gets the locked payment and what
/// succeeded and pending refunds already take, and returns the amount or refuses.
/// `None` when there is no such payment.
pub async fn record_refund<E>(
    conn: &mut PgConnection,
    new: &NewRefund,
    decide: impl FnOnce(&Payment, i64) -> Result<Money, E>,
) -> anyhow::Result<Option<Result<Recorded, E>>> {
    let Some(payment) = payment(
        sqlx::query_as(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"))
            .bind(new.payment_id)
            .fetch_optional(&mut *conn)
            .await
            .context("locking a payment")?,
    )?
    else {
        return Ok(None);
    };
    if !new.request_id.is_empty()
        && let Some(existing) = refund_by_request(&mut *conn, new.payment_id, &new.request_id).await?
    {
        return Ok(Some(Ok(Recorded::Existing(existing))));
    }
    let reserved: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(amount_minor), 0)::bigint FROM refunds
         WHERE payment_id = $1 AND status IN ('pending', 'succeeded')",
    )
    .bind(new.payment_id)
    .fetch_one(&mut *conn)
    .await
    .context("summing refunds")?;
    let amount = match decide(&payment, reserved) {
        Ok(amount) => amount,
        Err(e) => return Ok(Some(Err(e))),
    };
    let row: RefundRow = sqlx::query_as(&format!(
        "INSERT INTO refunds (id, payment_id, request_id, currency, amount_minor, status, reason, provider,
                              next_check_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, now() + make_interval(secs => $8))
         RETURNING {REFUND_COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.payment_id)
    .bind(&new.request_id)
    .bind(amount.currency.as_str())
    .bind(amount.minor_units)
    .bind(&new.reason)
    .bind(new.provider)
    .bind(seconds(new.submit_after))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| {
        // The payment row is locked, so a racing duplicate request cannot get here.
        debug_assert!(!violates(&e, ONE_PER_REQUEST));
        anyhow::Error::new(e).context("inserting a refund")
    })?;
    Ok(Some(Ok(Recorded::New(row.try_into()?))))
}

/// Records a refund that failed before reaching the provider (e.g. more than remains,
/// asked for by an event that cannot be answered with an error). Idempotent on the
/// request id: returns the refund already recorded for it, if any.
pub async fn record_failed_refund(
    conn: &mut PgConnection,
    new: &NewRefund,
    amount: &Money,
    code: &str,
    message: &str,
) -> anyhow::Result<Recorded> {
    let row: Option<RefundRow> = sqlx::query_as(&format!(
        "INSERT INTO refunds (id, payment_id, request_id, currency, amount_minor, status, reason, provider,
                              failure_code, failure_message, next_check_at)
         VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7, $8, $9, now())
         ON CONFLICT (payment_id, request_id) WHERE request_id <> '' DO NOTHING
         RETURNING {REFUND_COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.payment_id)
    .bind(&new.request_id)
    .bind(amount.currency.as_str())
    .bind(amount.minor_units.max(1))
    .bind(&new.reason)
    .bind(new.provider)
    .bind(code)
    .bind(message)
    .fetch_optional(&mut *conn)
    .await
    .context("inserting a failed refund")?;
    match refund(row)? {
        Some(refund) => Ok(Recorded::New(refund)),
        None => refund_by_request(conn, new.payment_id, &new.request_id)
            .await?
            .map(Recorded::Existing)
            .context("the conflicting refund vanished"),
    }
}

async fn refund_by_request(
    conn: &mut PgConnection,
    payment_id: uuid::Uuid,
    request_id: &str,
) -> anyhow::Result<Option<Refund>> {
    let row =
        sqlx::query_as(&format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE payment_id = $1 AND request_id = $2"))
            .bind(payment_id)
            .bind(request_id)
            .fetch_optional(conn)
            .await
            .context("reading a refund")?;
    refund(row)
}

/// A refund by id.
pub async fn refund_by_id(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<Refund>> {
    let row = sqlx::query_as(&format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("reading a refund")?;
    refund(row)
}

/// Locks a refund for a change inside the caller's transaction.
pub async fn lock_refund(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<Refund>> {
    let row = sqlx::query_as(&format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("locking a refund")?;
    refund(row)
}

/// Stores what `Refund::apply` made of a locked refund. Returns it as stored.
pub async fn save_refund(conn: &mut PgConnection, r: &Refund) -> anyhow::Result<Refund> {
    let row = sqlx::query_as(&format!(
        "UPDATE refunds SET status = $2, provider_reference = $3, failure_code = $4, failure_message = $5,
                updated_at = now()
         WHERE id = $1
         RETURNING {REFUND_COLUMNS}"
    ))
    .bind(r.id)
    .bind(r.status.as_str())
    .bind(&r.provider_reference)
    .bind(&r.failure_code)
    .bind(&r.failure_message)
    .fetch_optional(conn)
    .await
    .context("storing a refund")?;
    refund(row)?.context("a locked refund vanished")
}

/// Claims up to `limit` pending refunds of `provider` due for submission or
/// reconciliation, leasing each for `lease`.
pub async fn claim_pending_refunds(
    pool: &PgPool,
    provider: &str,
    limit: i64,
    lease: Lease,
) -> anyhow::Result<Vec<Refund>> {
    let rows: Vec<RefundRow> = sqlx::query_as(&format!(
        "UPDATE refunds SET next_check_at = {LEASED}, checks = checks + 1
         WHERE id IN (SELECT id FROM refunds
                      WHERE status = 'pending' AND next_check_at <= now() AND provider = $5
                      ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {REFUND_COLUMNS}"
    ))
    .bind(limit)
    .bind(seconds(lease.work))
    .bind(seconds(lease.base))
    .bind(seconds(lease.cap))
    .bind(provider)
    .fetch_all(pool)
    .await
    .context("claiming refunds to reconcile")?;
    rows.into_iter().map(Refund::try_from).collect()
}

/// Postpones a pending refund's next reconciliation look to `after` from now.
pub async fn postpone_refund(pool: &PgPool, id: uuid::Uuid, after: Duration) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE refunds SET next_check_at = now() + make_interval(secs => $2) WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(seconds(after))
    .execute(pool)
    .await
    .context("postponing a refund")?;
    Ok(())
}
