//! What notification keeps of other services' events: users (email, name), events
//! (organizer, name, start, venue) and bookings (owner, revocation).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Who to write to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Their address.
    pub email: String,
    /// How to greet them (may be empty).
    pub display_name: String,
    /// They deleted their account: nothing is sent to them any more.
    pub erased: bool,
}

/// An event as emails show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    /// Its name.
    pub name: String,
    /// Its start in its own time zone, e.g. `2026-12-01 20:00 (Europe/Berlin)`.
    pub starts_local: Option<String>,
    /// Its venue's name; empty for events published before catalog sent it.
    pub venue_name: String,
}

/// Records or refreshes a user.
pub async fn upsert_user(conn: &mut PgConnection, id: Uuid, email: &str, display_name: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO users (user_id, email, display_name) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, display_name = EXCLUDED.display_name,
                                             updated_at = now()
          WHERE users.deleted_at IS NULL",
    )
    .bind(id)
    .bind(email)
    .bind(display_name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user, if their registration (or their account's deletion) has been seen.
pub async fn user(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as("SELECT email, display_name, deleted_at IS NOT NULL AS erased FROM users WHERE user_id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Forgets the user's address and name for good, keeping the id: a replayed registration
/// finds the row erased and leaves it so.
pub async fn erase_user(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO users (user_id, email, display_name, deleted_at) VALUES ($1, '', '', now())
         ON CONFLICT (user_id) DO UPDATE SET email = '', display_name = '', updated_at = now(),
                                             deleted_at = coalesce(users.deleted_at, now())",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The parts of a published or updated event that notification keeps.
#[derive(Debug, Clone)]
pub struct EventChange<'a> {
    /// The event.
    pub id: Uuid,
    /// Its organizer.
    pub organizer_id: Uuid,
    /// Its name.
    pub name: &'a str,
    /// Its start.
    pub starts_at: Option<DateTime<Utc>>,
    /// Its IANA time zone.
    pub time_zone: &'a str,
    /// Its venue's name.
    pub venue_name: &'a str,
    /// The event's version after the change; older changes are ignored.
    pub version: i64,
}

/// Applies `change` unless a newer version is already recorded.
pub async fn upsert_event(conn: &mut PgConnection, change: &EventChange<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO events (event_id, organizer_id, name, starts_at, time_zone, version, venue_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (event_id) DO UPDATE
            SET organizer_id = EXCLUDED.organizer_id, name = EXCLUDED.name, starts_at = EXCLUDED.starts_at,
                time_zone = EXCLUDED.time_zone, version = EXCLUDED.version, venue_name = EXCLUDED.venue_name
          WHERE events.version < EXCLUDED.version",
    )
    .bind(change.id)
    .bind(change.organizer_id)
    .bind(change.name)
    .bind(change.starts_at)
    .bind(change.time_zone)
    .bind(change.version)
    .bind(change.venue_name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The event, if its publication has been seen. Postgres converts the start to the
/// event's zone (it carries the IANA database, so no time-zone crate is needed).
pub async fn event(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Event>> {
    sqlx::query_as(
        "SELECT name,
                CASE WHEN starts_at IS NULL THEN NULL
                     WHEN time_zone IN (SELECT name FROM pg_timezone_names)
                     THEN to_char(starts_at AT TIME ZONE time_zone, 'YYYY-MM-DD HH24:MI') || ' (' || time_zone || ')'
                     ELSE to_char(starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' (UTC)' END AS starts_local,
                venue_name
           FROM events WHERE event_id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The event's organizer, if its publication has been seen (the check-in hot path).
pub async fn organizer(db: impl PgExecutor<'_>, event: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT organizer_id FROM events WHERE event_id = $1").bind(event).fetch_optional(db).await
}

/// Records who owns `booking` (and its event, when the event says).
pub async fn record_booking(
    conn: &mut PgConnection,
    booking: Uuid,
    user: Uuid,
    event: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bookings (booking_id, user_id, event_id) VALUES ($1, $2, $3)
         ON CONFLICT (booking_id) DO UPDATE SET event_id = coalesce(bookings.event_id, EXCLUDED.event_id)",
    )
    .bind(booking)
    .bind(user)
    .bind(event)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes the booking and every ticket it has (or will have: tickets issued later
/// start revoked). Repeating it changes nothing; the first revocation's time and
/// reason stay.
pub async fn revoke_booking(conn: &mut PgConnection, booking: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bookings SET revoked_at = now(), revoke_reason = $2 WHERE booking_id = $1 AND revoked_at IS NULL",
    )
    .bind(booking)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE tickets SET revoked_at = now() WHERE booking_id = $1 AND revoked_at IS NULL")
        .bind(booking)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether the booking's tickets are revoked.
pub async fn booking_revoked(db: impl PgExecutor<'_>, booking: Uuid) -> sqlx::Result<bool> {
    let revoked: Option<bool> = sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM bookings WHERE booking_id = $1")
        .bind(booking)
        .fetch_optional(db)
        .await?;
    Ok(revoked.unwrap_or(false))
}

/// The booking's owner, if the booking has been seen.
pub async fn booking_owner(db: impl PgExecutor<'_>, booking: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT user_id FROM bookings WHERE booking_id = $1").bind(booking).fetch_optional(db).await
}
