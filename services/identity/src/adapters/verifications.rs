//! The `email_verifications` table: outstanding, single-use email verification tokens,
//! kept as SHA-256 hashes.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::Digest as _;
use sqlx::PgConnection;

/// A new token for `user_id` valid until `expires_at`, replacing any earlier one (only the
/// newest link works). Returns the token itself, which is stored nowhere.
pub async fn issue(conn: &mut PgConnection, user_id: uuid::Uuid, expires_at: DateTime<Utc>) -> anyhow::Result<String> {
    // 256 random bits: guessing one is hopeless, so no attempt counter is needed.
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    sqlx::query("DELETE FROM email_verifications WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .context("replacing verification tokens")?;
    sqlx::query("INSERT INTO email_verifications (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(hash(&token))
        .bind(user_id)
        .bind(expires_at)
        .execute(conn)
        .await
        .context("storing a verification token")?;
    Ok(token)
}

/// Uses up `token`: the user it verifies if it is known and unexpired. Known tokens are
/// deleted either way, with every other token of their user.
pub async fn redeem(conn: &mut PgConnection, token: &str) -> anyhow::Result<Option<uuid::Uuid>> {
    let found: Option<(uuid::Uuid, DateTime<Utc>)> =
        sqlx::query_as("DELETE FROM email_verifications WHERE token_hash = $1 RETURNING user_id, expires_at")
            .bind(hash(token))
            .fetch_optional(&mut *conn)
            .await
            .context("redeeming a verification token")?;
    let Some((user_id, expires_at)) = found else { return Ok(None) };
    sqlx::query("DELETE FROM email_verifications WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await
        .context("dropping a user's other verification tokens")?;
    Ok((expires_at > Utc::now()).then_some(user_id))
}

fn hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}
