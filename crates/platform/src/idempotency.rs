//! Stripe-style idempotency keys, kept in the service's own Postgres.
//!
//! The first response to `(scope, caller, key)` is stored and replayed to every
//! repeat; the same key with a different request fails with `INVALID_ARGUMENT`;
//! a repeat that arrives while the first is still running fails with `ABORTED`
//! (Stripe's 409), and the caller retries. Transient failures (`UNAVAILABLE`,
//! deadlines, ...) are not stored, so a retry runs the request again: the work
//! itself must therefore be safe to redo (unique constraints, provider keys).

use std::time::Duration;

use prost::Message;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use tonic::{Code, Status};

use crate::status::{FieldViolation, IDEMPOTENCY_KEY_REUSED, REFUSAL_DOMAIN, invalid_argument};

/// Keys of one service.
#[derive(Clone)]
pub struct IdempotencyKeys {
    pool: PgPool,
    takeover_after: Duration,
}

/// Who asked what: the key's namespace.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The operation, e.g. `payment.Charge`.
    pub operation: &'static str,
    /// The caller's user id: keys are per caller.
    pub caller: uuid::Uuid,
    /// The caller's key; empty means no idempotency.
    pub key: &'a str,
}

/// Checks a key's shape (the kernel's rule; empty is no key): `INVALID_ARGUMENT` naming
/// `field` when it is bad.
pub fn validate_key(key: &str, field: &str) -> Result<(), Status> {
    if key.is_empty() || ticketing_kernel::idempotency::is_valid_key(key) {
        return Ok(());
    }
    let violation = FieldViolation::new(field, ticketing_kernel::idempotency::KEY_RULE);
    Err(invalid_argument("invalid idempotency key", &[violation]))
}

/// A key's row, and whether its owner's time ran out.
#[derive(sqlx::FromRow)]
struct StoredKey {
    fingerprint: Vec<u8>,
    state: String,
    code: Option<i32>,
    body: Option<Vec<u8>>,
    message: Option<String>,
    stale: bool,
}

/// `INVALID_ARGUMENT` on `idempotency_key`: the key was used for a different request
/// (Stripe semantics). It names [`IDEMPOTENCY_KEY_REUSED`] in an `ErrorInfo`, which is what
/// the gateway answers 422 `idempotency-key-reused` for: a key merely malformed is a 400.
pub fn key_reused() -> Status {
    let violation = tonic_types::FieldViolation::new("idempotency_key", "was already used for a different request");
    let mut details = tonic_types::ErrorDetails::with_bad_request(vec![violation]);
    details.set_error_info(IDEMPOTENCY_KEY_REUSED, REFUSAL_DOMAIN, std::collections::HashMap::new());
    <Status as tonic_types::StatusExt>::with_error_details(Code::InvalidArgument, "idempotency key reused", details)
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Internal
            | Code::Unknown
            | Code::Cancelled
    )
}

fn database(e: sqlx::Error) -> Status {
    tracing::warn!(error = %e, "idempotency store unavailable");
    Status::unavailable("idempotency store unavailable")
}

impl IdempotencyKeys {
    /// Keys in `pool`. A request that started but never finished (its replica
    /// died) may be run again by a repeat after `takeover_after`.
    pub fn new(pool: PgPool, takeover_after: Duration) -> Self {
        Self { pool, takeover_after }
    }

    /// Runs `work` at most once per `scope`, replaying its stored response.
    /// `request` is the request *without* its key: its digest detects key reuse.
    pub async fn once<T, F>(&self, scope: Scope<'_>, request: &impl Message, work: F) -> Result<T, Status>
    where
        T: Message + Default,
        F: Future<Output = Result<T, Status>>,
    {
        if scope.key.is_empty() {
            return work.await;
        }
        let fingerprint = Sha256::digest(request.encode_to_vec()).to_vec();
        if let Some(replay) = self.begin(scope, &fingerprint).await? {
            return replay;
        }
        let result = work.await;
        match &result {
            Err(status) if transient(status.code()) => self.release(scope).await,
            Ok(response) => self.complete(scope, Code::Ok, &response.encode_to_vec(), "").await,
            Err(status) => self.complete(scope, status.code(), status.details(), status.message()).await,
        }
        result
    }

    /// `None` when this call owns the key now; otherwise what to answer.
    async fn begin<T: Message + Default>(
        &self,
        scope: Scope<'_>,
        fingerprint: &[u8],
    ) -> Result<Option<Result<T, Status>>, Status> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, caller, key, fingerprint, state)
             VALUES ($1, $2, $3, $4, 'started') ON CONFLICT DO NOTHING",
        )
        .bind(scope.operation)
        .bind(scope.caller)
        .bind(scope.key)
        .bind(fingerprint)
        .execute(&self.pool)
        .await
        .map_err(database)?
        .rows_affected();
        if inserted == 1 {
            return Ok(None);
        }
        let row: Option<StoredKey> = sqlx::query_as(
            "SELECT fingerprint, state, code, body, message, locked_at < now() - make_interval(secs => $4) AS stale
             FROM idempotency_keys WHERE scope = $1 AND caller = $2 AND key = $3",
        )
        .bind(scope.operation)
        .bind(scope.caller)
        .bind(scope.key)
        .bind(self.takeover_after.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
        .map_err(database)?;
        // Purged or released between the two statements: the repeat may simply retry.
        let Some(StoredKey { fingerprint: stored, state, code, body, message, stale }) = row else {
            return Err(Status::aborted("the idempotency key changed hands; retry"));
        };
        if stored != fingerprint {
            return Err(key_reused());
        }
        if state == "completed" {
            let code = Code::from(code.unwrap_or(Code::Unknown as i32));
            let body = body.unwrap_or_default();
            return Ok(Some(if code == Code::Ok {
                T::decode(body.as_slice()).map_err(|_| Status::internal("stored response is unreadable"))
            } else {
                Err(Status::with_details(code, message.unwrap_or_default(), body.into()))
            }));
        }
        if stale && self.take_over(scope).await? {
            return Ok(None);
        }
        Err(Status::aborted("a request with this idempotency key is in progress; retry"))
    }

    /// Claims a started key whose owner stopped answering.
    async fn take_over(&self, scope: Scope<'_>) -> Result<bool, Status> {
        let claimed = sqlx::query(
            "UPDATE idempotency_keys SET locked_at = now()
             WHERE scope = $1 AND caller = $2 AND key = $3 AND state = 'started'
               AND locked_at < now() - make_interval(secs => $4)",
        )
        .bind(scope.operation)
        .bind(scope.caller)
        .bind(scope.key)
        .bind(self.takeover_after.as_secs_f64())
        .execute(&self.pool)
        .await
        .map_err(database)?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn complete(&self, scope: Scope<'_>, code: Code, body: &[u8], message: &str) {
        let stored = sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', code = $4, body = $5, message = $6
             WHERE scope = $1 AND caller = $2 AND key = $3",
        )
        .bind(scope.operation)
        .bind(scope.caller)
        .bind(scope.key)
        .bind(code as i32)
        .bind(body)
        .bind(message)
        .execute(&self.pool)
        .await;
        // Left started, a repeat takes the key over later and redoes the (idempotent) work.
        if let Err(e) = stored {
            tracing::warn!(error = %e, operation = scope.operation, "could not store an idempotent response");
        }
    }

    async fn release(&self, scope: Scope<'_>) {
        let released = sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND caller = $2 AND key = $3 AND state = 'started'",
        )
        .bind(scope.operation)
        .bind(scope.caller)
        .bind(scope.key)
        .execute(&self.pool)
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, operation = scope.operation, "could not release an idempotency key");
        }
    }

    /// Deletes keys older than `retention`; returns how many.
    pub async fn purge(&self, retention: Duration) -> sqlx::Result<u64> {
        let purged = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(&self.pool)
            .await?;
        Ok(purged.rows_affected())
    }

    /// Purges keys older than `retention` every hour, until `stop`.
    pub async fn purge_until(
        self,
        retention: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        const INTERVAL: Duration = Duration::from_secs(3600);
        let mut rounds = crate::periodic::Every::new(INTERVAL, stop);
        while rounds.tick().await {
            match self.purge(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged expired idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
            }
        }
        Ok(())
    }
}
