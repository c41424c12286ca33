//! Payments: one row per charge.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::{LEASED, Lease, seconds, violates};
use crate::domain::{Money, Payment, PaymentStatus};

/// The partial unique index that allows one live charge per booking.
const ONE_LIVE_PER_BOOKING: &str = "payments_one_live_per_booking";

pub(super) const PAYMENT_COLUMNS: &str =
    "id, booking_id, user_id, currency, amount_minor, refunded_minor, status, provider,
    card_token, provider_reference, failure_code, failure_message, idempotency_key, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct PaymentRow {
    id: uuid::Uuid,
    booking_id: uuid::Uuid,
    user_id: uuid::Uuid,
    currency: String,
    amount_minor: i64,
    refunded_minor: i64,
    status: String,
    provider: String,
    card_token: String,
    provider_reference: String,
    failure_code: String,
    failure_message: String,
    idempotency_key: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = anyhow::Error;

    fn try_from(r: PaymentRow) -> anyhow::Result<Self> {
        Ok(Self {
            status: PaymentStatus::parse(&r.status).with_context(|| format!("unknown payment status {}", r.status))?,
            id: r.id,
            booking_id: r.booking_id,
            user_id: r.user_id,
            amount: super::stored_money(&r.currency, r.amount_minor)?,
            refunded_minor: r.refunded_minor,
            provider: r.provider,
            card_token: r.card_token,
            provider_reference: r.provider_reference,
            failure_code: r.failure_code,
            failure_message: r.failure_message,
            idempotency_key: r.idempotency_key,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(super) fn payment(row: Option<PaymentRow>) -> anyhow::Result<Option<Payment>> {
    row.map(Payment::try_from).transpose()
}

/// A charge about to be submitted.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Its id, also the provider idempotency key.
    pub id: uuid::Uuid,
    /// The booking.
    pub booking_id: uuid::Uuid,
    /// The payer.
    pub user_id: uuid::Uuid,
    /// The amount.
    pub amount: Money,
    /// The provider adapter.
    pub provider: &'static str,
    /// The card token.
    pub card_token: String,
    /// The Charge call's idempotency key.
    pub idempotency_key: String,
    /// When the reconciler takes it over if it is still pending.
    pub pending_timeout: Duration,
}

/// Records a pending charge (committed before the provider is called). `Ok(None)` when
/// the booking already has a live charge: the unique index keeps it to one.
pub async fn insert_payment(pool: &PgPool, new: &NewPayment) -> anyhow::Result<Option<Payment>> {
    let inserted = sqlx::query_as::<_, PaymentRow>(&format!(
        "INSERT INTO payments (id, booking_id, user_id, currency, amount_minor, status, provider, card_token,
                               idempotency_key, next_check_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, now() + make_interval(secs => $9))
         RETURNING {PAYMENT_COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.booking_id)
    .bind(new.user_id)
    .bind(new.amount.currency.as_str())
    .bind(new.amount.minor_units)
    .bind(new.provider)
    .bind(&new.card_token)
    .bind(&new.idempotency_key)
    .bind(seconds(new.pending_timeout))
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(row) => Ok(Some(row.try_into()?)),
        Err(e) if violates(&e, ONE_LIVE_PER_BOOKING) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context("inserting a payment")),
    }
}

/// A payment by id.
pub async fn payment_by_id(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<Payment>> {
    let row = sqlx::query_as(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("reading a payment")?;
    payment(row)
}

/// The booking's live payment (pending, unknown, succeeded or refunded), if any.
pub async fn live_payment(pool: &PgPool, booking_id: uuid::Uuid) -> anyhow::Result<Option<Payment>> {
    let row =
        sqlx::query_as(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE booking_id = $1 AND status <> 'failed'"))
            .bind(booking_id)
            .fetch_optional(pool)
            .await
            .context("reading a booking's payment")?;
    payment(row)
}

/// The booking's latest payment: the live one, else the newest failed one.
pub async fn latest_payment(pool: &PgPool, booking_id: uuid::Uuid) -> anyhow::Result<Option<Payment>> {
    let row = sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE booking_id = $1
         ORDER BY (status <> 'failed') DESC, created_at DESC LIMIT 1"
    ))
    .bind(booking_id)
    .fetch_optional(pool)
    .await
    .context("reading a booking's payment")?;
    payment(row)
}

/// Locks a payment for a change inside the caller's transaction.
pub async fn lock_payment(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<Payment>> {
    let row = sqlx::query_as(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("locking a payment")?;
    payment(row)
}

/// Stores what `Payment::apply` made of a locked payment; `recheck` also schedules the
/// reconciler's next look. Returns it as stored.
pub async fn save_payment(conn: &mut PgConnection, p: &Payment, recheck: Option<Duration>) -> anyhow::Result<Payment> {
    let row = sqlx::query_as(&format!(
        "UPDATE payments SET status = $2, refunded_minor = $3, provider_reference = $4, failure_code = $5,
                failure_message = $6, next_check_at = COALESCE(now() + make_interval(secs => $7), next_check_at),
                updated_at = now()
         WHERE id = $1
         RETURNING {PAYMENT_COLUMNS}"
    ))
    .bind(p.id)
    .bind(p.status.as_str())
    .bind(p.refunded_minor)
    .bind(&p.provider_reference)
    .bind(&p.failure_code)
    .bind(&p.failure_message)
    .bind(recheck.map(seconds))
    .fetch_optional(conn)
    .await
    .context("storing a payment")?;
    payment(row)?.context("a locked payment vanished")
}

/// Claims up to `limit` open payments of `provider` due for reconciliation, leasing each
/// for `lease` (other replicas skip them meanwhile). Payments made through another
/// provider (before a configuration change) are never asked about, let alone resubmitted.
pub async fn claim_open_payments(
    pool: &PgPool,
    provider: &str,
    limit: i64,
    lease: Lease,
) -> anyhow::Result<Vec<Payment>> {
    let rows: Vec<PaymentRow> = sqlx::query_as(&format!(
        "UPDATE payments SET next_check_at = {LEASED}, checks = checks + 1
         WHERE id IN (SELECT id FROM payments
                      WHERE status IN ('pending', 'unknown') AND next_check_at <= now() AND provider = $5
                      ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {PAYMENT_COLUMNS}"
    ))
    .bind(limit)
    .bind(seconds(lease.work))
    .bind(seconds(lease.base))
    .bind(seconds(lease.cap))
    .bind(provider)
    .fetch_all(pool)
    .await
    .context("claiming payments to reconcile")?;
    rows.into_iter().map(Payment::try_from).collect()
}
