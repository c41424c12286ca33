//! Issued tickets, the one-scan rule and the scan audit log.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::projections;
use crate::domain::Ticket;

const COLUMNS: &str = "ticket_id, booking_id, user_id, event_id, category_id, seat_id, seat_label, code, issued_at,
                       scanned_at, revoked_at";

/// Issues a booking's `tickets`, in line-item order; ones already issued are left as
/// they are (their scan and revocation columns are ignored here). When the booking is
/// already revoked (its refund overtook its confirmation) they start revoked.
pub async fn issue(conn: &mut PgConnection, tickets: &[Ticket]) -> sqlx::Result<()> {
    for (position, t) in tickets.iter().enumerate() {
        sqlx::query(
            "INSERT INTO tickets (ticket_id, position, booking_id, user_id, event_id, category_id, seat_id, seat_label,
                                  code, issued_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                     (SELECT revoked_at FROM bookings WHERE booking_id = $3))
             ON CONFLICT (ticket_id) DO NOTHING",
        )
        .bind(t.id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(t.booking_id)
        .bind(t.user_id)
        .bind(t.event_id)
        .bind(t.category_id)
        .bind(t.seat_id)
        .bind(&t.seat_label)
        .bind(&t.code)
        .bind(t.issued_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The booking's tickets in line-item order.
pub async fn of_booking(db: impl PgExecutor<'_>, booking: Uuid) -> sqlx::Result<Vec<Ticket>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tickets WHERE booking_id = $1 ORDER BY position, ticket_id"))
        .bind(booking)
        .fetch_all(db)
        .await
}

/// One ticket.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Ticket>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tickets WHERE ticket_id = $1")).bind(id).fetch_optional(db).await
}

/// Marks the ticket scanned if it is neither scanned nor revoked, in one conditional
/// UPDATE, so of two gates scanning at once exactly one admits. `None`: not admitted.
pub async fn scan(db: impl PgExecutor<'_>, id: Uuid, gate: &str) -> sqlx::Result<Option<Ticket>> {
    sqlx::query_as(&format!(
        "UPDATE tickets SET scanned_at = now(), scanned_gate = $2
          WHERE ticket_id = $1 AND scanned_at IS NULL AND revoked_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(gate)
    .fetch_optional(db)
    .await
}

/// Revokes `booking` and its tickets (those issued later start revoked) unless one was
/// already scanned; with `force`, even then. Decided against check-in: the booking's
/// projection row is locked first (issuing tickets locks it too, so none appears
/// meanwhile), then its tickets, which [`scan`] locks as it marks one, so whichever commits
/// first wins. Repeating it returns the first decision. `Some(attended)`: revoked, and
/// whether a ticket had been scanned; `None`: refused, nothing changed.
pub async fn revoke(
    tx: &mut PgConnection,
    booking: Uuid,
    user: Uuid,
    event: Option<Uuid>,
    reason: &str,
    force: bool,
) -> sqlx::Result<Option<bool>> {
    projections::record_booking(tx, booking, user, event).await?;
    let revoked = projections::booking_revoked(&mut *tx, booking).await?;
    let attended: bool = sqlx::query_scalar(
        "SELECT coalesce(bool_or(scanned_at IS NOT NULL), false)
           FROM (SELECT scanned_at FROM tickets WHERE booking_id = $1 FOR UPDATE) AS locked",
    )
    .bind(booking)
    .fetch_one(&mut *tx)
    .await?;
    if attended && !force && !revoked {
        return Ok(None);
    }
    projections::revoke_booking(tx, booking, reason).await?;
    Ok(Some(attended))
}

/// Appends one check to the audit log.
pub async fn audit(
    db: impl PgExecutor<'_>,
    ticket: Uuid,
    event: Uuid,
    gate: &str,
    by: Uuid,
    result: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_scans (ticket_id, event_id, gate_id, scanned_by, result) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ticket)
    .bind(event)
    .bind(gate)
    .bind(by)
    .bind(result)
    .execute(db)
    .await?;
    Ok(())
}
