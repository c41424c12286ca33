//! The `users` table.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use ticketing_platform::auth::Role;

use crate::domain::email::Email;
use crate::domain::user::User;

#[derive(sqlx::FromRow)]
struct Row {
    id: uuid::Uuid,
    email: String,
    display_name: String,
    role: String,
    email_verified_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for User {
    type Error = anyhow::Error;

    fn try_from(row: Row) -> anyhow::Result<Self> {
        Ok(User {
            id: row.id,
            email: Email::parse(&row.email).map_err(|e| anyhow::anyhow!("stored email {e}"))?,
            display_name: row.display_name,
            role: row.role.parse().map_err(anyhow::Error::msg)?,
            email_verified: row.email_verified_at.is_some(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, email, display_name, role, email_verified_at, created_at, updated_at";

/// A user to insert.
pub struct NewUser<'a> {
    pub email: &'a Email,
    pub display_name: &'a str,
    /// None for an account made by a social login (ADR 0045).
    pub password_hash: Option<&'a str>,
    pub role: Role,
    /// Made verified (the bootstrap admin, or verification off).
    pub email_verified: bool,
}

/// Inserts a user; `Ok(None)` when the email is taken.
pub async fn insert(conn: &mut PgConnection, new: &NewUser<'_>) -> anyhow::Result<Option<User>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, display_name, password_hash, role, email_verified_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END)
         ON CONFLICT ((lower(email))) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(uuid::Uuid::now_v7())
    .bind(new.email.as_str())
    .bind(new.display_name)
    .bind(new.password_hash)
    .bind(new.role.as_str())
    .bind(new.email_verified)
    .fetch_optional(conn)
    .await
    .context("inserting a user")?;
    row.map(User::try_from).transpose()
}

/// The user with `email` and their password hash (none for an account without a password).
pub async fn by_email(
    conn: impl sqlx::PgExecutor<'_>,
    email: &Email,
) -> anyhow::Result<Option<(User, Option<String>)>> {
    #[derive(sqlx::FromRow)]
    struct WithHash {
        #[sqlx(flatten)]
        row: Row,
        password_hash: Option<String>,
    }
    let found: Option<WithHash> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = $1 AND deleted_at IS NULL"
    ))
    .bind(email.as_str())
    .fetch_optional(conn)
    .await
    .context("looking up a user by email")?;
    found.map(|f| Ok((User::try_from(f.row)?, f.password_hash))).transpose()
}

/// The user with `id`.
pub async fn by_id(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<User>> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .context("looking up a user")?;
    row.map(User::try_from).transpose()
}

/// Sets the display name; `None` when the user does not exist.
pub async fn update_display_name(pool: &PgPool, id: uuid::Uuid, name: &str) -> anyhow::Result<Option<User>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE users SET display_name = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .fetch_optional(pool)
    .await
    .context("updating a display name")?;
    row.map(User::try_from).transpose()
}

/// Locks the user row for a change; `None` when absent or deleted.
pub async fn lock(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<User>> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"))
            .bind(id)
            .fetch_optional(conn)
            .await
            .context("locking a user")?;
    row.map(User::try_from).transpose()
}

/// The password hash of the locked user `id`; none for an account without a password.
pub async fn password_hash(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_one(conn)
        .await
        .context("reading a password hash")
}

/// Replaces the password hash of the locked user `id`.
pub async fn set_password(conn: &mut PgConnection, id: uuid::Uuid, hash: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(hash)
        .execute(conn)
        .await
        .context("setting a password")?;
    Ok(())
}

/// Erases the locked user `id`, leaving a tombstone: no email (which frees the address), no
/// name, no password, no role above `user`.
pub async fn erase(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE users SET email = 'deleted:' || id::text, display_name = '', password_hash = NULL, role = 'user',
                          email_verified_at = NULL, deleted_at = now(), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await
    .context("erasing a user")?;
    Ok(())
}

/// How many admins exist. Callers serialize role changes with [`lock_roles`].
pub async fn count_admins(conn: &mut PgConnection) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin'")
        .fetch_one(conn)
        .await
        .context("counting admins")
}

/// Serializes role changes for the rest of the transaction, so two admins cannot
/// demote each other at once and leave none.
pub async fn lock_roles(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.roles'))")
        .execute(conn)
        .await
        .context("locking role changes")?;
    Ok(())
}

/// Sets the role of a locked user.
pub async fn set_role(conn: &mut PgConnection, id: uuid::Uuid, role: Role) -> anyhow::Result<User> {
    let row: Row =
        sqlx::query_as(&format!("UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"))
            .bind(id)
            .bind(role.as_str())
            .fetch_one(conn)
            .await
            .context("setting a role")?;
    User::try_from(row)
}

/// Marks the user's email verified (keeping the first time); `None` when absent.
pub async fn mark_verified(conn: &mut PgConnection, id: uuid::Uuid) -> anyhow::Result<Option<User>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .context("marking an email verified")?;
    row.map(User::try_from).transpose()
}

/// The live user a provider's subject is linked to.
pub async fn linked(conn: &mut PgConnection, provider: &str, subject: &str) -> anyhow::Result<Option<User>> {
    let columns = COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {columns} FROM oidc_links l JOIN users u ON u.id = l.user_id
         WHERE l.provider = $1 AND l.subject = $2 AND u.deleted_at IS NULL"
    ))
    .bind(provider)
    .bind(subject)
    .fetch_optional(conn)
    .await
    .context("looking up a provider link")?;
    row.map(User::try_from).transpose()
}

/// Links a provider's subject to `user_id`; false when the subject is linked already.
pub async fn link(conn: &mut PgConnection, provider: &str, subject: &str, user_id: uuid::Uuid) -> anyhow::Result<bool> {
    let inserted =
        sqlx::query("INSERT INTO oidc_links (provider, subject, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(provider)
            .bind(subject)
            .bind(user_id)
            .execute(conn)
            .await
            .context("linking a provider account")?;
    Ok(inserted.rows_affected() == 1)
}

/// Removes every provider link of `user_id` (its account is being deleted).
pub async fn unlink_all(conn: &mut PgConnection, user_id: uuid::Uuid) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM oidc_links WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await
        .context("removing provider links")?;
    Ok(())
}
