//! Payment's Postgres tables: the booking projection, payments, refunds and the
//! webhook events already processed.
//!
//! Payments and refunds change only as the domain decides (`Payment::apply`,
//! `Refund::apply`) on a row locked in the caller's transaction, so racing writers (the
//! Charge call, the reconciler in any replica, a webhook) queue up: exactly one of them
//! moves it, and only that one publishes the event.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::{Booking, BookingStatus, Money, Payment, PaymentStatus, Refund, RefundStatus};

/// The partial unique index that allows one live charge per booking.
const ONE_LIVE_PER_BOOKING: &str = "payments_one_live_per_booking";
/// The unique index of refund request ids.
const ONE_PER_REQUEST: &str = "refunds_one_per_request";

const PAYMENT_COLUMNS: &str = "id, booking_id, user_id, currency, amount_minor, refunded_minor, status, provider,
    card_token, provider_reference, failure_code, failure_message, idempotency_key, created_at, updated_at";
const REFUND_COLUMNS: &str = "id, payment_id, request_id, currency, amount_minor, status, reason, provider,
    provider_reference, failure_code, failure_message, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct PaymentRow {
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
            amount: Money { currency: r.currency, minor_units: r.amount_minor },
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
            amount: Money { currency: r.currency, minor_units: r.amount_minor },
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

fn payment(row: Option<PaymentRow>) -> anyhow::Result<Option<Payment>> {
    row.map(Payment::try_from).transpose()
}

fn refund(row: Option<RefundRow>) -> anyhow::Result<Option<Refund>> {
    row.map(Refund::try_from).transpose()
}

fn violates(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}

/// The next check of a claimed row: `$2` (work) + min(`$3` (base) × 2^checks, `$4` (cap)).
const LEASED: &str = "now() + make_interval(secs => $2 + LEAST($3 * power(2, LEAST(checks, 20))::float8, $4))";

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---- bookings ---------------------------------------------------------------------

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
    .bind(fact.total.as_ref().map(|m| m.currency.clone()))
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
    .bind(fact.total.as_ref().map(|m| m.currency.clone()))
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
            total: r.currency.zip(r.total_minor).map(|(currency, minor_units)| Money { currency, minor_units }),
            expires_at: r.expires_at,
        })
    })
    .transpose()
}

// ---- payments ---------------------------------------------------------------------

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
    .bind(&new.amount.currency)
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

/// How long a claimed row is left alone: the call itself, then a doubling wait.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// The longest the claimer may spend on it.
    pub work: Duration,
    /// The first wait after that; doubles with each check.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
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

// ---- refunds ----------------------------------------------------------------------

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
    .bind(&amount.currency)
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
    .bind(&amount.currency)
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

// ---- webhooks ---------------------------------------------------------------------

/// Records a provider event inside the caller's transaction; `false` when it was
/// processed before.
pub async fn record_webhook(
    conn: &mut PgConnection,
    provider: &str,
    event_id: &str,
    kind: &str,
) -> anyhow::Result<bool> {
    let fresh = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(kind)
    .execute(conn)
    .await
    .context("recording a webhook event")?
    .rows_affected();
    Ok(fresh == 1)
}
