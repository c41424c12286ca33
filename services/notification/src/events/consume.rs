//! The Kafka consumers' handler: what each consumed event records (users, events, bookings,
//! tickets, revocations) and which email it logs for the dispatcher to send.
//!
//! Three consumer groups, so that no event waits behind an unrelated one:
//! - `notification.records` (identity, catalog and booking events) keeps the
//!   projections, issues and revokes tickets, and logs the account emails (welcome, a
//!   registration of a taken address). It never waits: tickets are issued and revoked
//!   even when the buyer's address is not known yet.
//! - `notification.booking-emails` and `notification.payment-emails` log the booking
//!   and refund emails. They need the buyer's address from `UserRegistered`: an event
//!   whose user is not known yet is retried (`Retryable`) until the user arrives, and
//!   dead-lettered when the consumer's bounded retries run out. The booking consumer
//!   also applies the booking's state itself (idempotently), so a refund it has seen is
//!   never followed by a tickets email, whatever the other group has processed.
//!
//! Everything is written in the consumer's transaction, together with the
//! `processed_events` row, and every write is idempotent besides, so redelivered,
//! replayed and reordered events change nothing twice and log no second email.

use chrono::Utc;
use serde_json::json;
use sqlx::PgConnection;
use ticketing_kernel::money;
use ticketing_kernel::time::from_proto;
use ticketing_platform::events::dispatch;
use ticketing_platform::kafka::consumer::required_id as id;
use ticketing_platform::kafka::consumer::{HandleError, Handler};
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;
use ticketing_proto::notification::v1::TicketCodePayload;
use uuid::Uuid;

use crate::adapters::deliveries::{self, NewDelivery};
use crate::adapters::keys::TicketKeys;
use crate::adapters::projections::{self, EventChange, User};
use crate::adapters::tickets;
use crate::config::NotificationSettings;
use crate::domain::{Template, Ticket, code};

/// Group that keeps the projections and tickets.
pub const RECORDS_GROUP: &str = "notification.records";
/// Group that logs booking emails.
pub const BOOKING_EMAILS_GROUP: &str = "notification.booking-emails";
/// Group that logs refund emails.
pub const PAYMENT_EMAILS_GROUP: &str = "notification.payment-emails";

/// What a consumer does with the events it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Projections, tickets, revocations, welcome emails.
    Records,
    /// Booking and refund emails (plus the booking state they depend on).
    Emails,
}

/// The handler of one consumer group.
#[derive(Clone)]
pub struct Events {
    keys: TicketKeys,
    duty: Duty,
    /// `notification.verify_email_url`.
    verify_email_url: std::sync::Arc<str>,
    /// `notification.reset_password_url`.
    reset_password_url: std::sync::Arc<str>,
}

impl Events {
    /// A handler doing `duty`, signing tickets with `keys`, linking emails to the pages of
    /// `settings`.
    pub fn new(keys: TicketKeys, duty: Duty, settings: &NotificationSettings) -> Self {
        Self {
            keys,
            duty,
            verify_email_url: settings.verify_email_url.as_str().into(),
            reset_password_url: settings.reset_password_url.as_str().into(),
        }
    }
}

/// The events notification acts on.
enum Incoming {
    UserRegistered(ev::UserRegistered),
    RegistrationAttempted(ev::RegistrationAttempted),
    EmailVerificationRequested(ev::EmailVerificationRequested),
    PasswordResetRequested(ev::PasswordResetRequested),
    PasswordChanged(ev::PasswordChanged),
    UserDeleted(ev::UserDeleted),
    EventPublished(ev::EventPublished),
    EventUpdated(ev::EventUpdated),
    BookingConfirmed(ev::BookingConfirmed),
    BookingCancelled(ev::BookingCancelled),
    BookingExpired(ev::BookingExpired),
    BookingRefundRequested(ev::BookingRefundRequested),
    BookingRefunded(ev::BookingRefunded),
    RefundSucceeded(ev::RefundSucceeded),
    /// Anything else on the topics (other event types are none of notification's business).
    Other,
}

impl Incoming {
    fn decode(event: &Envelope) -> Result<Self, HandleError> {
        let incoming = dispatch(event)
            .on(Self::UserRegistered)
            .on(Self::RegistrationAttempted)
            .on(Self::EmailVerificationRequested)
            .on(Self::PasswordResetRequested)
            .on(Self::PasswordChanged)
            .on(Self::UserDeleted)
            .on(Self::EventPublished)
            .on(Self::EventUpdated)
            .on(Self::BookingConfirmed)
            .on(Self::BookingCancelled)
            .on(Self::BookingExpired)
            .on(Self::BookingRefundRequested)
            .on(Self::BookingRefunded)
            .on(Self::RefundSucceeded)
            .decoded()?;
        Ok(incoming.unwrap_or(Self::Other))
    }
}

impl Handler for Events {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandleError> {
        let incoming = Incoming::decode(event)?;
        let source = id("envelope id", &event.id)?;
        self.record(tx, event, &incoming).await?;
        match self.duty {
            Duty::Records => self.account_email(tx, source, &incoming).await,
            Duty::Emails => booking_or_refund_email(tx, source, &incoming).await,
        }
    }
}

impl Events {
    /// The state an event changes; idempotent, and never waits for anything.
    async fn record(&self, tx: &mut PgConnection, event: &Envelope, incoming: &Incoming) -> Result<(), HandleError> {
        match incoming {
            Incoming::UserRegistered(u) => {
                projections::upsert_user(tx, id("user_id", &u.user_id)?, &u.email, &u.display_name)
                    .await
                    .map_err(retryable)?;
            }
            // The address, the name and the emails sent to them go; tickets and bookings
            // stay (their user id is opaque), and so do their tickets' validity.
            Incoming::UserDeleted(d) => {
                let user = id("user_id", &d.user_id)?;
                projections::erase_user(tx, user).await.map_err(retryable)?;
                deliveries::erase_user(tx, user).await.map_err(retryable)?;
            }
            Incoming::EventPublished(e) => {
                let fields = (&*e.event_id, &*e.organizer_id, &*e.name, e.starts_at.as_ref(), &*e.time_zone, e.version);
                upsert_event(tx, fields, &e.venue_name).await?;
            }
            Incoming::EventUpdated(e) => {
                let fields = (&*e.event_id, &*e.organizer_id, &*e.name, e.starts_at.as_ref(), &*e.time_zone, e.version);
                upsert_event(tx, fields, &e.venue_name).await?;
            }
            Incoming::BookingConfirmed(c) => self.issue_tickets(tx, event, c).await?,
            Incoming::BookingCancelled(c) => revoke(tx, &c.booking_id, &c.user_id, &c.event_id, "cancelled").await?,
            Incoming::BookingExpired(e) => revoke(tx, &e.booking_id, &e.user_id, &e.event_id, "expired").await?,
            // Usually revoked already (booking revokes before it cancels a paid booking);
            // an event's cancellation and a late payment are revoked here.
            Incoming::BookingRefundRequested(r) => {
                revoke(tx, &r.booking_id, &r.user_id, &r.event_id, "refund requested").await?
            }
            Incoming::BookingRefunded(r) => revoke(tx, &r.booking_id, &r.user_id, &r.event_id, "refunded").await?,
            Incoming::RefundSucceeded(r) => {
                let (booking, user) = (id("booking_id", &r.booking_id)?, id("user_id", &r.user_id)?);
                projections::record_booking(tx, booking, user, None).await.map_err(retryable)?;
            }
            Incoming::RegistrationAttempted(_)
            | Incoming::EmailVerificationRequested(_)
            | Incoming::PasswordResetRequested(_)
            | Incoming::PasswordChanged(_)
            | Incoming::Other => {}
        }
        Ok(())
    }

    /// One ticket per line item, signed, issued at the confirmation's time (so a replay
    /// signs the same codes). Tickets of a booking already revoked start revoked.
    async fn issue_tickets(
        &self,
        tx: &mut PgConnection,
        event: &Envelope,
        confirmed: &ev::BookingConfirmed,
    ) -> Result<(), HandleError> {
        let booking = id("booking_id", &confirmed.booking_id)?;
        let user = id("user_id", &confirmed.user_id)?;
        let event_id = id("event_id", &confirmed.event_id)?;
        projections::record_booking(tx, booking, user, Some(event_id)).await.map_err(retryable)?;
        // Postgres keeps microseconds: sign exactly what is stored.
        let issued_at = event.occurred_at.as_ref().and_then(from_proto).unwrap_or_else(Utc::now);
        let issued_at = ticketing_platform::db::stored(issued_at);
        let (kid, key) = self.keys.active(tx).await.map_err(retryable)?;
        let mut new = Vec::with_capacity(confirmed.line_items.len());
        for item in &confirmed.line_items {
            let ticket = id("line_items.line_item_id", &item.line_item_id)?;
            let category = id("line_items.category_id", &item.category_id)?;
            let seat = optional_id("line_items.seat_id", &item.seat_id)?;
            let label = if item.label.trim().is_empty() { "General admission".to_owned() } else { item.label.clone() };
            let code = code::sign(
                &kid,
                &key,
                &TicketCodePayload {
                    ticket_id: ticket.to_string(),
                    event_id: event_id.to_string(),
                    booking_id: booking.to_string(),
                    category_id: category.to_string(),
                    seat_label: label.clone(),
                    issued_at: Some(ticketing_kernel::time::to_proto(issued_at)),
                },
            );
            new.push(Ticket {
                id: ticket,
                booking_id: booking,
                user_id: user,
                event_id,
                category_id: category,
                seat_id: seat,
                seat_label: label,
                code,
                issued_at,
                scanned_at: None,
                revoked_at: None,
            });
        }
        tickets::issue(tx, &new).await.map_err(retryable)
    }
}

/// `(event id, organizer id, name, start, time zone, version)` of a published or updated event.
type EventFields<'a> = (&'a str, &'a str, &'a str, Option<&'a prost_types::Timestamp>, &'a str, u64);

async fn upsert_event(tx: &mut PgConnection, fields: EventFields<'_>, venue_name: &str) -> Result<(), HandleError> {
    let (event, organizer, name, starts_at, time_zone, version) = fields;
    let change = EventChange {
        id: id("event_id", event)?,
        organizer_id: id("organizer_id", organizer)?,
        name,
        starts_at: starts_at.and_then(from_proto),
        time_zone,
        venue_name,
        version: i64::try_from(version).map_err(permanent)?,
    };
    projections::upsert_event(tx, &change).await.map_err(retryable)
}

async fn revoke(
    tx: &mut PgConnection,
    booking: &str,
    user: &str,
    event: &str,
    reason: &str,
) -> Result<(), HandleError> {
    let booking = id("booking_id", booking)?;
    projections::record_booking(tx, booking, id("user_id", user)?, optional_id("event_id", event)?)
        .await
        .map_err(retryable)?;
    projections::revoke_booking(tx, booking, reason).await.map_err(retryable)
}

impl Events {
    /// The welcome email, the verification and password reset links, and the owner's
    /// warnings that someone tried to register their address or that their password
    /// changed: each event carries the address, so none waits.
    async fn account_email(&self, tx: &mut PgConnection, source: Uuid, incoming: &Incoming) -> Result<(), HandleError> {
        let recipient =
            |email: &str, name: &str| User { email: email.to_owned(), display_name: name.to_owned(), erased: false };
        // Base64url tokens: nothing in them needs escaping in a query string.
        let link_context = |base: &str, token: &str, expires_at: Option<&prost_types::Timestamp>| {
            let expires = expires_at.and_then(from_proto).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
            json!({ "link": format!("{base}?token={token}"), "token": token, "expires": expires })
        };
        let (template, user_id, user, mut context) = match incoming {
            Incoming::UserRegistered(u) => {
                (Template::Welcome, &u.user_id, recipient(&u.email, &u.display_name), json!({}))
            }
            Incoming::RegistrationAttempted(a) => {
                (Template::RegistrationAttempted, &a.user_id, recipient(&a.email, &a.display_name), json!({}))
            }
            Incoming::EmailVerificationRequested(v) => {
                let context = link_context(&self.verify_email_url, &v.token, v.expires_at.as_ref());
                (Template::VerifyEmail, &v.user_id, recipient(&v.email, &v.display_name), context)
            }
            Incoming::PasswordResetRequested(r) => {
                let context = link_context(&self.reset_password_url, &r.token, r.expires_at.as_ref());
                (Template::ResetPassword, &r.user_id, recipient(&r.email, &r.display_name), context)
            }
            Incoming::PasswordChanged(c) => {
                let at = c.changed_at.as_ref().and_then(from_proto).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
                let context = json!({ "changed_at": at, "by_reset": c.by_reset });
                (Template::PasswordChanged, &c.user_id, recipient(&c.email, &c.display_name), context)
            }
            _ => return Ok(()),
        };
        context["name"] = greeting(&user).into();
        context["email"] = user.email.clone().into();
        let delivery = NewDelivery {
            source_event_id: source,
            template,
            recipient: &user.email,
            user_id: Some(id("user_id", user_id)?),
            booking_id: None,
            context,
        };
        deliveries::enqueue(tx, &delivery).await.map_err(retryable)?;
        Ok(())
    }
}

/// The booking and refund emails, once the buyer's address is known.
async fn booking_or_refund_email(tx: &mut PgConnection, source: Uuid, incoming: &Incoming) -> Result<(), HandleError> {
    let (template, booking, user, event, mut context) = match incoming {
        Incoming::BookingConfirmed(c) => {
            let booking = id("booking_id", &c.booking_id)?;
            if projections::booking_revoked(&mut *tx, booking).await.map_err(retryable)? {
                tracing::info!(%booking, "booking revoked before its confirmation was handled; no tickets email");
                return Ok(());
            }
            let issued = tickets::of_booking(&mut *tx, booking).await.map_err(retryable)?;
            let tickets: Vec<_> =
                issued.iter().map(|t| json!({ "id": t.id, "label": t.seat_label, "code": t.code })).collect();
            let total = c.total.as_ref().map(|m| money::format(&m.currency, m.minor_units));
            let context = json!({ "booking_id": booking, "tickets": tickets, "total": total });
            (Template::BookingConfirmed, booking, &c.user_id, Some(&c.event_id), context)
        }
        Incoming::BookingCancelled(c) => {
            let context = json!({ "booking_id": c.booking_id, "reason": cancellation_reason(c.reason()) });
            (Template::BookingCancelled, id("booking_id", &c.booking_id)?, &c.user_id, Some(&c.event_id), context)
        }
        Incoming::BookingExpired(e) => {
            let context = json!({ "booking_id": e.booking_id });
            (Template::BookingExpired, id("booking_id", &e.booking_id)?, &e.user_id, Some(&e.event_id), context)
        }
        Incoming::RefundSucceeded(r) => {
            let amount = r.amount.as_ref().map(|m| money::format(&m.currency, m.minor_units)).unwrap_or_default();
            let context = json!({ "booking_id": r.booking_id, "amount": amount, "full": r.fully_refunded });
            (Template::RefundSucceeded, id("booking_id", &r.booking_id)?, &r.user_id, None, context)
        }
        _ => return Ok(()),
    };
    let user_id = id("user_id", user)?;
    let Some(recipient) = projections::user(&mut *tx, user_id).await.map_err(retryable)? else {
        // Wait for the UserRegistered (bounded by the consumer's retries, then the DLQ).
        return Err(HandleError::Retryable(anyhow::anyhow!("user {user_id} is not known yet")));
    };
    if recipient.erased {
        tracing::info!(%user_id, %booking, "the user deleted their account; no email");
        return Ok(());
    }
    let event = match event {
        Some(event) => projections::event(&mut *tx, id("event_id", event)?).await.map_err(retryable)?,
        None => None,
    };
    context["name"] = greeting(&recipient).into();
    // The attached PDF prints the holder's name only when they gave one.
    context["holder"] = recipient.display_name.trim().into();
    context["event_name"] = event.as_ref().map_or("your event", |e| e.name.as_str()).into();
    context["venue"] = event.as_ref().map_or("", |e| e.venue_name.as_str()).into();
    context["starts"] = event.and_then(|e| e.starts_local).into();
    let delivery = NewDelivery {
        source_event_id: source,
        template,
        recipient: &recipient.email,
        user_id: Some(user_id),
        booking_id: Some(booking),
        context,
    };
    deliveries::enqueue(tx, &delivery).await.map_err(retryable)?;
    Ok(())
}

/// How an email addresses the user: their display name, or their address's local part.
fn greeting(user: &User) -> String {
    let name = user.display_name.trim();
    if name.is_empty() { user.email.split('@').next().unwrap_or_default().to_owned() } else { name.to_owned() }
}

fn cancellation_reason(reason: ev::BookingCancellationReason) -> &'static str {
    use ev::BookingCancellationReason as R;
    match reason {
        R::UserRequested => "you cancelled it",
        R::PaymentFailed => "the payment did not go through",
        R::EventCancelled => "the event was cancelled",
        R::Admin => "an administrator cancelled it",
        R::LatePayment => "the payment arrived after the booking had ended",
        R::Unspecified => "it could not be completed",
    }
}

/// An id that may be empty.
fn optional_id(field: &str, value: &str) -> Result<Option<Uuid>, HandleError> {
    if value.is_empty() { Ok(None) } else { id(field, value).map(Some) }
}

fn permanent(e: impl Into<anyhow::Error>) -> HandleError {
    HandleError::Permanent(e.into())
}

fn retryable(e: impl Into<anyhow::Error>) -> HandleError {
    HandleError::Retryable(e.into())
}
