//! Single-use tokens mailed to a user, kept as SHA-256 hashes: email verifications
//! (`email_verifications`) and password resets (`password_resets`), alike but apart, so a
//! verification link can never reset a password.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::Digest as _;
use sqlx::PgConnection;

/// What a token proves, and so the table it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The user reads the account's inbox.
    VerifyEmail,
    /// The user may set a new password.
    ResetPassword,
}

impl Purpose {
    fn table(self) -> &'static str {
        match self {
            Self::VerifyEmail => "email_verifications",
            Self::ResetPassword => "password_resets",
        }
    }
}

/// A new `purpose` token for `user_id` valid until `expires_at`, replacing any earlier one
/// (only the newest link works). Returns the token itself, which is stored nowhere.
pub async fn issue(
    conn: &mut PgConnection,
    purpose: Purpose,
    user_id: uuid::Uuid,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<String> {
    // 256 random bits: guessing one is hopeless, so no attempt counter is needed.
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    revoke_all(&mut *conn, purpose, user_id).await?;
    let table = purpose.table();
    sqlx::query(&format!("INSERT INTO {table} (token_hash, user_id, expires_at) VALUES ($1, $2, $3)"))
        .bind(hash(&token))
        .bind(user_id)
        .bind(expires_at)
        .execute(conn)
        .await
        .with_context(|| format!("storing a token in {table}"))?;
    Ok(token)
}

/// Uses up `token`: the user it was issued to if it is known and unexpired. Known tokens are
/// deleted either way, with every other token of their user.
pub async fn redeem(conn: &mut PgConnection, purpose: Purpose, token: &str) -> anyhow::Result<Option<uuid::Uuid>> {
    let table = purpose.table();
    let found: Option<(uuid::Uuid, DateTime<Utc>)> =
        sqlx::query_as(&format!("DELETE FROM {table} WHERE token_hash = $1 RETURNING user_id, expires_at"))
            .bind(hash(token))
            .fetch_optional(&mut *conn)
            .await
            .with_context(|| format!("redeeming a token of {table}"))?;
    let Some((user_id, expires_at)) = found else { return Ok(None) };
    revoke_all(conn, purpose, user_id).await?;
    Ok((expires_at > Utc::now()).then_some(user_id))
}

/// Voids every outstanding `purpose` token of `user_id`.
pub async fn revoke_all(conn: &mut PgConnection, purpose: Purpose, user_id: uuid::Uuid) -> anyhow::Result<()> {
    let table = purpose.table();
    sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
        .bind(user_id)
        .execute(conn)
        .await
        .with_context(|| format!("dropping a user's tokens of {table}"))?;
    Ok(())
}

fn hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}
