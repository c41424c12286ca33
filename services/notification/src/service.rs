//! Notification's use cases over gRPC: delivery status, a booking's tickets (listed or
//! as a PDF), check-in and the ticket keys.

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, Opts};
use sqlx::PgPool;
use ticketing_platform::auth::{Principal, Role, Scope};
use uuid::Uuid;

use crate::adapters::keys::TicketKeys;
use crate::adapters::pdf::{self, Booklet, PrintedTicket};
use crate::adapters::{deliveries, projections, tickets};
use crate::domain::code::ParsedCode;
use crate::domain::rotating;
use crate::domain::{Delivery, NotificationError, Ticket, Verification};

type Result<T> = std::result::Result<T, NotificationError>;

/// What GetDeliveryStatus asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The deliveries one consumed event caused (admins only).
    SourceEvent(Uuid),
    /// The deliveries about one booking (its owner or an admin).
    Booking(Uuid),
}

/// A RevokeTickets request.
#[derive(Debug, Clone, Copy)]
pub struct Revocation<'a> {
    /// The booking whose tickets go.
    pub booking: Uuid,
    /// Its buyer.
    pub user: Uuid,
    /// Its event, if known.
    pub event: Option<Uuid>,
    /// Why, for the record.
    pub reason: &'a str,
    /// Even if a ticket was scanned (an admin's refund).
    pub force: bool,
}

/// One scan at a gate.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    /// The scanned code: static, or rotating (`<static code>~<value>`).
    pub code: &'a str,
    /// The event the gate admits to.
    pub event: Uuid,
    /// The gate or device, for the audit log.
    pub gate: &'a str,
    /// The gate admits only rotating codes.
    pub require_rotating: bool,
}

/// A ticket as ListTickets shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTicket {
    /// The ticket.
    pub ticket: Ticket,
    /// Its rotating-code secret: for its owner only.
    pub rotation_secret: Option<[u8; 32]>,
}

/// A booking's tickets as a PDF.
#[derive(Debug, Clone)]
pub struct TicketsPdf {
    /// The document.
    pub pdf: Vec<u8>,
    /// What to save it as.
    pub filename: String,
    /// One per ticket.
    pub pages: usize,
}

/// The service's state and use cases.
#[derive(Clone)]
pub struct Notification {
    pool: PgPool,
    keys: TicketKeys,
    /// Every online gate admits only rotating codes.
    require_rotating: bool,
    verifications: IntCounterVec,
}

impl Notification {
    /// The use cases over `pool`, verifying codes with `keys`; with `require_rotating`,
    /// static codes admit at no gate.
    pub fn new(
        pool: PgPool,
        keys: TicketKeys,
        require_rotating: bool,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        let verifications = metrics.register(
            &IntCounterVec::new(
                Opts::new("notification_ticket_verifications_total", "Ticket scans at the gate, by result."),
                &["result"],
            )
            .expect("static metric definition"),
        );
        Self { pool, keys, require_rotating, verifications }
    }

    /// The deliveries about `subject`, oldest first.
    pub async fn deliveries(&self, caller: &Principal, subject: Subject) -> Result<Vec<Delivery>> {
        match subject {
            Subject::SourceEvent(event) => {
                if !caller.has_role(Role::Admin) {
                    return Err(NotificationError::Forbidden("only admins may look up deliveries by event"));
                }
                Ok(deliveries::of_event(&self.pool, event).await?)
            }
            Subject::Booking(booking) => {
                self.authorize_booking(caller, booking).await?;
                Ok(deliveries::of_booking(&self.pool, booking).await?)
            }
        }
    }

    /// The booking's tickets (none until it is confirmed). Each ticket's rotating-code
    /// secret goes to its owner only: an admin sees the tickets, not their secrets.
    pub async fn tickets(&self, caller: &Principal, booking: Uuid) -> Result<Vec<ListedTicket>> {
        self.authorize_booking(caller, booking).await?;
        let mut listed = Vec::new();
        for ticket in tickets::of_booking(&self.pool, booking).await? {
            let rotation_secret = match ParsedCode::parse(&ticket.code) {
                Ok(code) if ticket.user_id == caller.user_id => {
                    self.keys.rotation_secret(code.kid(), &ticket.id.to_string()).await?
                }
                _ => None,
            };
            listed.push(ListedTicket { ticket, rotation_secret });
        }
        Ok(listed)
    }

    /// The booking's tickets that still admit, one PDF page each, for its owner only: a
    /// printed code is a static code that anyone holding the paper can use, so not even
    /// an admin prints someone else's. Anyone else, and a booking without such tickets,
    /// is told there is nothing, so the answer does not reveal whose a booking is.
    pub async fn tickets_pdf(&self, caller: &Principal, booking: Uuid) -> Result<TicketsPdf> {
        const NOTHING: NotificationError = NotificationError::NotFound("no printable tickets for this booking");
        let owner = projections::booking_owner(&self.pool, booking).await?;
        if owner != Some(caller.user_id) {
            return Err(NOTHING);
        }
        let issued: Vec<Ticket> =
            tickets::of_booking(&self.pool, booking).await?.into_iter().filter(|t| t.revoked_at.is_none()).collect();
        let Some(first) = issued.first() else { return Err(NOTHING) };
        if issued.len() > pdf::MAX_PAGES {
            let detail = format!("has more than {} tickets, more than one PDF holds", pdf::MAX_PAGES);
            return Err(NotificationError::invalid("booking_id", detail));
        }
        let event = projections::event(&self.pool, first.event_id).await?;
        let holder = projections::user(&self.pool, caller.user_id).await?.map(|u| u.display_name);
        let booklet = Booklet {
            event_name: event.as_ref().map_or("Your event", |e| e.name.as_str()).to_owned(),
            venue: event.as_ref().map(|e| e.venue_name.clone()).unwrap_or_default(),
            starts: event.and_then(|e| e.starts_local).unwrap_or_default(),
            booking_id: booking.to_string(),
            holder: holder.unwrap_or_default(),
            tickets: issued
                .into_iter()
                .map(|t| PrintedTicket { id: t.id.to_string(), label: t.seat_label, code: t.code })
                .collect(),
        };
        let pages = booklet.tickets.len();
        // QR encoding is CPU work (up to 100 pages): off the async workers.
        let pdf = tokio::task::spawn_blocking(move || pdf::render(&booklet))
            .await
            .map_err(|e| NotificationError::Unavailable(e.into()))??;
        Ok(TicketsPdf { pdf, filename: format!("tickets-{booking}.pdf"), pages })
    }

    /// Its owner and admins may read a booking's deliveries and tickets. A booking not
    /// seen yet has none, so the answer is empty for anyone and reveals nothing.
    async fn authorize_booking(&self, caller: &Principal, booking: Uuid) -> Result<()> {
        if caller.has_role(Role::Admin) {
            return Ok(());
        }
        match projections::booking_owner(&self.pool, booking).await? {
            Some(owner) if owner != caller.user_id => {
                Err(NotificationError::Forbidden("only the booking's owner or an admin may see this"))
            }
            _ => Ok(()),
        }
    }

    /// Checks a scanned code at the gate of `scan.event` at time `now` and admits the
    /// ticket at most once. For the event's organizer or an admin.
    pub async fn verify(&self, caller: &Principal, scan: &Scan<'_>, now: DateTime<Utc>) -> Result<Verification> {
        let Scan { code, event, gate, require_rotating } = *scan;
        if !caller.has_role(Role::Admin) {
            let organizer = projections::organizer(&self.pool, event).await?;
            if !caller.has_role(Role::Organizer) || organizer != Some(caller.user_id) {
                return Err(NotificationError::Forbidden(
                    "only the event's organizer or an admin may check tickets in",
                ));
            }
        }
        let verification = self.check(code, event, gate, require_rotating || self.require_rotating, now).await?;
        if let Some(ticket) = verification.ticket() {
            // The scan itself is recorded on the ticket; a lost audit row must not turn an
            // admitted scan into an error (whose retry would answer ALREADY_SCANNED).
            let label = verification.label();
            if let Err(e) = tickets::audit(&self.pool, ticket.id, event, gate, caller.user_id, label).await {
                tracing::warn!(ticket = %ticket.id, error = %e, "recording a scan in the audit log failed");
            }
        }
        self.verifications.with_label_values(&[verification.label()]).inc();
        Ok(verification)
    }

    async fn check(
        &self,
        code: &str,
        event: Uuid,
        gate: &str,
        require_rotating: bool,
        now: DateTime<Utc>,
    ) -> Result<Verification> {
        let (code, shown) = rotating::split(code);
        let Ok(parsed) = ParsedCode::parse(code) else { return Ok(Verification::InvalidSignature) };
        let Some(key) = self.keys.verifying_key(parsed.kid()).await? else {
            return Ok(Verification::InvalidSignature);
        };
        let Ok(payload) = parsed.verify(&key) else { return Ok(Verification::InvalidSignature) };
        let Ok(id) = payload.ticket_id.parse::<Uuid>() else { return Ok(Verification::UnknownTicket) };
        let Some(ticket) = tickets::get(&self.pool, id).await? else { return Ok(Verification::UnknownTicket) };
        if ticket.event_id != event {
            return Ok(Verification::WrongEvent(ticket));
        }
        if ticket.revoked_at.is_some() {
            return Ok(Verification::Revoked(ticket));
        }
        // The time value, before anything is marked: a stale code leaves the ticket unscanned.
        match shown {
            Some(value) => {
                let secret = self.keys.rotation_secret(parsed.kid(), &id.to_string()).await?;
                if !secret.is_some_and(|secret| rotating::is_current(&secret, value, now)) {
                    return Ok(Verification::StaleCode(ticket));
                }
            }
            None if require_rotating => return Ok(Verification::RotatingCodeRequired(ticket)),
            None => {}
        }
        if let Some(scanned) = tickets::scan(&self.pool, id, gate).await? {
            return Ok(Verification::Valid(scanned));
        }
        // Lost the race to another scan, or revoked in between: read what won.
        let ticket = tickets::get(&self.pool, id).await?.unwrap_or(ticket);
        Ok(if ticket.revoked_at.is_some() {
            Verification::Revoked(ticket)
        } else {
            Verification::AlreadyScanned(ticket)
        })
    }

    /// Revokes a booking's tickets for booking (its service token) or an admin: refused
    /// when a ticket was already scanned, unless `force`. Returns whether one had been.
    pub async fn revoke(&self, caller: &Principal, revocation: &Revocation<'_>) -> Result<bool> {
        if !caller.may(Scope::TicketsRevoke) {
            return Err(NotificationError::Forbidden("only the booking service or an admin may revoke tickets"));
        }
        let Revocation { booking, user, event, reason, force } = *revocation;
        let mut tx = self.pool.begin().await?;
        let attended = tickets::revoke(&mut tx, booking, user, event, reason, force)
            .await?
            .ok_or(NotificationError::TicketScanned)?;
        tx.commit().await?;
        Ok(attended)
    }

    /// Retires the active ticket signing key for a new one; admins only. Returns the new
    /// active kid and the retired one.
    pub async fn rotate_keys(&self, caller: &Principal) -> Result<(String, String)> {
        if !caller.has_role(Role::Admin) {
            return Err(NotificationError::Forbidden("only admins may rotate the ticket signing key"));
        }
        let (active, retired) = self.keys.rotate().await?;
        tracing::warn!(actor = %caller.user_id, %active, %retired, "rotated the ticket signing key");
        Ok((active, retired))
    }

    /// The public ticket keys as a JWKS document.
    pub async fn jwks(&self) -> Result<serde_json::Value> {
        Ok(self.keys.jwks().await?)
    }
}
