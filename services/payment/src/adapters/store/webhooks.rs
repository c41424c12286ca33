//! The provider webhook events already processed.

use anyhow::Context as _;
use sqlx::PgConnection;

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
