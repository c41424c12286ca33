//! The simulated provider: deterministic test cards and a ledger in payment's own
//! database, deduplicated on the idempotency key like a real processor.
//!
//! | card token | charge | refund |
//! |---|---|---|
//! | `tok_visa`, `tok_mastercard` | succeeds | succeeds |
//! | `tok_decline` | fails: `card_declined` | – |
//! | `tok_insufficient_funds` | fails: `insufficient_funds` | – |
//! | `tok_processor_error` | the first attempt per key fails with a retryable `processor_error`; a retry succeeds | succeeds |
//! | `tok_slow` | succeeds, but answers only after `payment.simulated.slow_delay` (the charge lands at once; lookups say processing until then) | succeeds |
//! | `tok_refund_fail` | succeeds | fails: `refund_failed` |
//! | anything else | fails: `invalid_card_token` | – |

use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;

use crate::domain::Outcome;
use crate::ports::{ChargeAttempt, Provider, ProviderError, RefundAttempt};

/// The simulated provider.
#[derive(Clone)]
pub struct Simulated {
    pool: PgPool,
    slow_delay: Duration,
}

impl Simulated {
    /// A provider keeping its ledger in `pool`; `tok_slow` takes `slow_delay`.
    pub fn new(pool: PgPool, slow_delay: Duration) -> Self {
        Self { pool, slow_delay }
    }
}

/// What a test card does to a charge: `(status, failure code, message)`.
fn charge_result(card_token: &str) -> (&'static str, &'static str, &'static str) {
    match card_token {
        "tok_visa" | "tok_mastercard" | "tok_processor_error" | "tok_slow" | "tok_refund_fail" => ("succeeded", "", ""),
        "tok_decline" => ("failed", "card_declined", "Your card was declined."),
        "tok_insufficient_funds" => ("failed", "insufficient_funds", "Your card has insufficient funds."),
        _ => ("failed", "invalid_card_token", "No such card token."),
    }
}

fn unavailable(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::new("simulator_unavailable", format!("{e:#}"))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    status: String,
    failure_code: String,
    failure_message: String,
    /// Seconds until it settles, by the database's clock.
    unsettled_for: f64,
}

impl Row {
    /// What a lookup sees now.
    fn outcome(self) -> Outcome {
        if self.unsettled_for > 0.0 { Outcome::Processing { reference: self.id } } else { self.settled() }
    }

    /// What it comes to once settled.
    fn settled(self) -> Outcome {
        if self.status == "succeeded" {
            Outcome::Succeeded { reference: self.id }
        } else {
            Outcome::Failed { reference: self.id, code: self.failure_code, message: self.failure_message }
        }
    }
}

impl Simulated {
    async fn charge_row(&self, key: &str) -> anyhow::Result<Option<Row>> {
        sqlx::query_as(
            "SELECT id, status, failure_code, failure_message,
                    GREATEST(EXTRACT(EPOCH FROM settles_at - now()), 0)::float8 AS unsettled_for
             FROM simulated_charges WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .context("reading the simulated ledger")
    }

    async fn refund_row(&self, key: &str) -> anyhow::Result<Option<Row>> {
        sqlx::query_as(
            "SELECT id, status, failure_code, failure_message, 0::float8 AS unsettled_for
             FROM simulated_refunds WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .context("reading the simulated ledger")
    }

    /// The first attempt of `tok_processor_error` under a key fails; later ones go through.
    async fn first_attempt(&self, key: &str) -> anyhow::Result<bool> {
        let inserted =
            sqlx::query("INSERT INTO simulated_failed_attempts (idempotency_key) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(key)
                .execute(&self.pool)
                .await
                .context("recording a failed attempt")?
                .rows_affected();
        Ok(inserted == 1)
    }
}

#[tonic::async_trait]
impl Provider for Simulated {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn charge(&self, attempt: &ChargeAttempt) -> Result<Outcome, ProviderError> {
        if attempt.card_token == "tok_processor_error"
            && self.charge_row(&attempt.key).await.map_err(unavailable)?.is_none()
            && self.first_attempt(&attempt.key).await.map_err(unavailable)?
        {
            return Err(ProviderError::new("processor_error", "The processor failed; retry with the same key."));
        }
        let (status, code, message) = charge_result(&attempt.card_token);
        let delay = if attempt.card_token == "tok_slow" { self.slow_delay } else { Duration::ZERO };
        // The first charge under a key wins; a repeat reads it back (at most once).
        sqlx::query(
            "INSERT INTO simulated_charges (idempotency_key, id, card_token, currency, amount_minor, status,
                                            failure_code, failure_message, settles_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&attempt.key)
        .bind(format!("ch_sim_{}", uuid::Uuid::new_v4().simple()))
        .bind(&attempt.card_token)
        .bind(attempt.amount.currency.as_str())
        .bind(attempt.amount.minor_units)
        .bind(status)
        .bind(code)
        .bind(message)
        .bind(delay.as_secs_f64())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        let row =
            self.charge_row(&attempt.key).await.map_err(unavailable)?.ok_or_else(|| unavailable("charge vanished"))?;
        // A slow charge has landed, but its answer comes late.
        tokio::time::sleep(Duration::from_secs_f64(row.unsettled_for)).await;
        Ok(row.settled())
    }

    async fn find_charge(&self, key: &str) -> Result<Option<Outcome>, ProviderError> {
        Ok(self.charge_row(key).await.map_err(unavailable)?.map(|row| row.outcome()))
    }

    async fn refund(&self, attempt: &RefundAttempt) -> Result<Outcome, ProviderError> {
        let charge: Option<(String, i64)> = sqlx::query_as(
            "SELECT card_token, amount_minor - COALESCE((SELECT sum(amount_minor) FROM simulated_refunds r
                                                         WHERE r.charge_id = c.id AND r.status = 'succeeded'), 0)::bigint
             FROM simulated_charges c WHERE id = $1 AND status = 'succeeded'",
        )
        .bind(&attempt.charge_reference)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let (status, code, message) = match &charge {
            None => ("failed", "charge_not_found", "No such succeeded charge."),
            Some((token, _)) if token == "tok_refund_fail" => ("failed", "refund_failed", "The refund was refused."),
            Some((_, remaining)) if attempt.amount.minor_units > *remaining => {
                ("failed", "amount_too_large", "The refund exceeds the unrefunded amount.")
            }
            Some(_) => ("succeeded", "", ""),
        };
        if charge.is_none() {
            return Ok(Outcome::Failed { reference: String::new(), code: code.into(), message: message.into() });
        }
        sqlx::query(
            "INSERT INTO simulated_refunds (idempotency_key, id, charge_id, amount_minor, status, failure_code,
                                            failure_message)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&attempt.key)
        .bind(format!("re_sim_{}", uuid::Uuid::new_v4().simple()))
        .bind(&attempt.charge_reference)
        .bind(attempt.amount.minor_units)
        .bind(status)
        .bind(code)
        .bind(message)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        let row =
            self.refund_row(&attempt.key).await.map_err(unavailable)?.ok_or_else(|| unavailable("refund vanished"))?;
        Ok(row.outcome())
    }

    async fn find_refund(&self, key: &str) -> Result<Option<Outcome>, ProviderError> {
        Ok(self.refund_row(key).await.map_err(unavailable)?.map(|row| row.outcome()))
    }
}
