//! Booking's use cases: create, read, list and cancel bookings, and the saga steps
//! the consumers drive. Every state change commits together with its event.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, Opts};
use sqlx::{PgConnection, PgPool};
use ticketing_platform::auth::{Principal, Role};
use ticketing_platform::kafka::outbox;
use ticketing_platform::page::{TimeCursor, next_cursor, page_size};
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::BookingCancellationReason as Reason;
use tonic::Code;

use crate::adapters::peers::Peers;
use crate::adapters::store::{self, Owner};
use crate::announce;
use crate::domain::{Booking, BookingError, LineItem, Status};

/// Base name of the topic booking publishes on.
pub const TOPIC: &str = "booking.events";

/// Tag of booking list cursors.
const CURSOR_TAG: &str = "b1";

type Result<T> = std::result::Result<T, BookingError>;

/// The booking service's state and use cases.
#[derive(Clone)]
pub struct Bookings {
    pool: PgPool,
    peers: Peers,
    topic: String,
    transitions: IntCounterVec,
    sales: crate::sales_metrics::SalesMetrics,
}

/// A page of bookings and the cursor of the next one.
pub type Page = (Vec<Booking>, Option<String>);

fn parse_id(field: &str, raw: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|_| BookingError::invalid(field, "must be a UUID"))
}

/// What a peer's refusal means for the caller.
fn peer_error(status: tonic::Status) -> BookingError {
    match status.code() {
        Code::NotFound | Code::PermissionDenied => BookingError::HoldNotFound,
        Code::InvalidArgument => BookingError::invalid("hold_id", status.message().to_owned()),
        _ => BookingError::Unavailable(anyhow::anyhow!("peer call failed: {status}")),
    }
}

fn instant(t: Option<&prost_types::Timestamp>) -> Result<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .ok_or_else(|| BookingError::Unavailable(anyhow::anyhow!("peer sent no timestamp")))
}

impl Bookings {
    /// Assembles the service.
    pub fn new(pool: PgPool, peers: Peers, topic: String, metrics: &ticketing_platform::metrics::Metrics) -> Self {
        let transitions = metrics.register(
            &IntCounterVec::new(
                Opts::new("booking_transitions_total", "Booking state changes, by the state entered."),
                &["to"],
            )
            .expect("static metric definition"),
        );
        Self { pool, peers, topic, transitions, sales: crate::sales_metrics::SalesMetrics::new(metrics) }
    }

    /// Writes `booking`'s new state and `event` in the caller's transaction.
    async fn save<M: prost::Message + prost::Name>(
        &self,
        tx: &mut PgConnection,
        booking: &Booking,
        event: &M,
    ) -> anyhow::Result<()> {
        store::update(&mut *tx, booking).await?;
        let envelope = ticketing_platform::events::envelope(booking.id.to_string(), event);
        outbox::enqueue(tx, &self.topic, &envelope).await?;
        self.transitions.with_label_values(&[booking.status.as_str()]).inc();
        Ok(())
    }

    /// Creates a PENDING_PAYMENT booking from the caller's active hold, priced from the catalog.
    pub async fn create(&self, caller: &Principal, hold_id: &str) -> Result<Booking> {
        if hold_id.len() != 64 || !hold_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BookingError::invalid("hold_id", "must be a hold id (64 hex digits)"));
        }
        let hold = self.peers.hold(&caller.token, hold_id).await.map_err(peer_error)?;
        if hold.user_id != caller.user_id.to_string() {
            return Err(BookingError::HoldNotFound);
        }
        let expires_at = instant(hold.expires_at.as_ref())?;
        if hold.status != ticketing_proto::inventory::v1::HoldStatus::Active as i32 || expires_at <= Utc::now() {
            return Err(BookingError::HoldNotActive);
        }
        let event = self.peers.event(&caller.token, &hold.event_id).await.map_err(peer_error)?;
        let seat_ids: Vec<String> = hold.lines.iter().flat_map(|l| l.seat_ids.iter().cloned()).collect();
        let labels: HashMap<String, String> = if seat_ids.is_empty() {
            HashMap::new()
        } else {
            let seats = self.peers.seats(&caller.token, &hold.event_id, &seat_ids).await.map_err(peer_error)?;
            seats.into_iter().map(|s| (s.seat_id, s.label)).collect()
        };

        let mut currency = String::new();
        let mut line_items = Vec::new();
        for line in &hold.lines {
            let category = event
                .categories
                .iter()
                .find(|c| c.id == line.category_id)
                .ok_or_else(|| anyhow::anyhow!("hold category {} is not in the event", line.category_id))?;
            let price = category.price.clone().ok_or_else(|| anyhow::anyhow!("category without a price"))?;
            currency = price.currency;
            let category_id = parse_id("category_id", &line.category_id)?;
            let seats: Vec<Option<&String>> = if line.seat_ids.is_empty() {
                vec![None; line.quantity as usize]
            } else {
                line.seat_ids.iter().map(Some).collect()
            };
            for seat in seats {
                let label = match seat {
                    Some(seat) => {
                        labels.get(seat).cloned().unwrap_or_else(|| format!("{}, seat {seat}", category.name))
                    }
                    None => category.name.clone(),
                };
                line_items.push(LineItem {
                    id: uuid::Uuid::now_v7(),
                    category_id,
                    seat_id: seat.map(|s| parse_id("seat_id", s)).transpose()?,
                    label,
                    unit_price_minor: price.minor_units,
                });
            }
        }
        let now = Utc::now();
        let booking = Booking {
            id: uuid::Uuid::now_v7(),
            user_id: caller.user_id,
            event_id: parse_id("event_id", &hold.event_id)?,
            hold_id: hold_id.to_owned(),
            fencing_token: hold.fencing_token,
            status: Status::PendingPayment,
            currency,
            total_minor: line_items.iter().map(|i| i.unit_price_minor).sum(),
            expires_at,
            payment_id: None,
            refund_requested_at: None,
            cancellation_reason: String::new(),
            line_items,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.pool.begin().await?;
        if let Err(existing) = store::insert(&mut tx, &booking).await? {
            return Err(BookingError::AlreadyBooked(existing));
        }
        let envelope = ticketing_platform::events::envelope(booking.id.to_string(), &announce::created(&booking));
        outbox::enqueue(&mut tx, &self.topic, &envelope).await?;
        tx.commit().await?;
        self.transitions.with_label_values(&[booking.status.as_str()]).inc();
        Ok(booking)
    }

    /// Whether `caller` may see `booking`: its buyer, the event's organizer, an admin or a service.
    async fn may_see(&self, caller: &Principal, booking: &Booking) -> Result<bool> {
        if booking.user_id == caller.user_id || caller.roles.iter().any(|r| matches!(r, Role::Admin | Role::Service)) {
            return Ok(true);
        }
        Ok(caller.roles.contains(&Role::Organizer)
            && store::organizer(&self.pool, booking.event_id).await? == Some(caller.user_id))
    }

    /// One booking.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Booking> {
        let id = parse_id("booking_id", id)?;
        let mut conn = self.pool.acquire().await?;
        let booking = store::get(&mut conn, id).await?.ok_or(BookingError::NotFound)?;
        if !self.may_see(caller, &booking).await? {
            return Err(BookingError::NotFound);
        }
        Ok(booking)
    }

    async fn page(&self, owner: Owner, statuses: &[Status], cursor: &str, limit: u32) -> Result<Page> {
        let after = TimeCursor::decode(cursor, CURSOR_TAG).map_err(|e| BookingError::invalid("page.cursor", e))?;
        let limit = page_size(limit);
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::page(&mut conn, owner, statuses, after, limit).await?;
        let next = next_cursor(&mut rows, limit, |b| TimeCursor { at: b.created_at, id: b.id }.encode(CURSOR_TAG));
        Ok((rows, next))
    }

    /// The caller's bookings, newest first.
    pub async fn mine(&self, caller: &Principal, statuses: &[Status], cursor: &str, limit: u32) -> Result<Page> {
        self.page(Owner::User(caller.user_id), statuses, cursor, limit).await
    }

    /// An event's bookings, newest first: its organizer or an admin.
    pub async fn of_event(
        &self,
        caller: &Principal,
        event: &str,
        statuses: &[Status],
        cursor: &str,
        limit: u32,
    ) -> Result<Page> {
        let event = parse_id("event_id", event)?;
        let admin = caller.roles.contains(&Role::Admin);
        if !admin && store::organizer(&self.pool, event).await? != Some(caller.user_id) {
            return Err(BookingError::PermissionDenied);
        }
        self.page(Owner::Event(event), statuses, cursor, limit).await
    }

    /// Cancels a booking for its buyer or an admin: an unpaid one is cancelled and its
    /// hold released; a confirmed one returns its tickets to stock and is refunded.
    pub async fn cancel(&self, caller: &Principal, id: &str, reason: &str) -> Result<Booking> {
        let id = parse_id("booking_id", id)?;
        if reason.chars().count() > 500 {
            return Err(BookingError::invalid("reason", "must be at most 500 characters"));
        }
        let mut tx = self.pool.begin().await?;
        let mut booking = store::lock(&mut tx, id).await?.ok_or(BookingError::NotFound)?;
        let admin = caller.roles.contains(&Role::Admin);
        if booking.user_id != caller.user_id && !admin {
            return Err(BookingError::NotFound);
        }
        let why = if admin && booking.user_id != caller.user_id { Reason::Admin } else { Reason::UserRequested };
        match booking.status {
            Status::PendingPayment => {
                self.peers.release(&booking.hold_id).await.map_err(|s| anyhow::anyhow!("releasing the hold: {s}"))?;
                booking.status = Status::Cancelled;
                booking.cancellation_reason = reason.to_owned();
                self.save(&mut tx, &booking, &announce::cancelled(&booking, why, Some(caller.user_id))).await?;
            }
            Status::Confirmed => {
                self.peers
                    .restock(&booking.hold_id, booking.id)
                    .await
                    .map_err(|s| anyhow::anyhow!("returning the tickets: {s}"))?;
                self.request_refund(&mut tx, &mut booking, Status::RefundPending, why, reason).await?;
            }
            from => return Err(BookingError::IllegalTransition { from, action: "cancelled" }),
        }
        tx.commit().await?;
        Ok(booking)
    }

    /// Moves `booking` to `status` and asks payment to refund its payment.
    async fn request_refund(
        &self,
        tx: &mut PgConnection,
        booking: &mut Booking,
        status: Status,
        reason: Reason,
        detail: &str,
    ) -> anyhow::Result<()> {
        let payment = booking.payment_id.ok_or_else(|| anyhow::anyhow!("booking {} has no payment", booking.id))?;
        booking.status = status;
        booking.refund_requested_at = Some(Utc::now());
        if booking.cancellation_reason.is_empty() {
            booking.cancellation_reason = detail.to_owned();
        }
        self.save(tx, booking, &announce::refund_requested(booking, payment, reason, detail)).await
    }

    /// `PaymentSucceeded` (which happened at `paid_at`): sell the hold and confirm, or refund
    /// a payment that came too late.
    pub async fn payment_succeeded(
        &self,
        tx: &mut PgConnection,
        booking_id: uuid::Uuid,
        payment: uuid::Uuid,
        paid_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let Some(mut booking) = store::lock(tx, booking_id).await? else {
            return Err(BookingError::NotFound);
        };
        match booking.status {
            Status::PendingPayment => {
                booking.payment_id = Some(payment);
                match self.peers.confirm(&booking.hold_id, booking.fencing_token, booking.id).await {
                    Ok(()) => {
                        booking.status = Status::Confirmed;
                        self.save(tx, &booking, &announce::confirmed(&booking)).await?;
                        // The consumer commits right after the handler returns.
                        self.sales.confirmed(&booking, paid_at);
                    }
                    // Expired, released or fenced off: the seats are gone, the money goes back.
                    Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound | Code::Aborted) => {
                        booking.status = Status::Expired;
                        self.save(tx, &booking, &announce::expired(&booking)).await?;
                        let detail = "the payment arrived after the hold had ended";
                        self.request_refund(tx, &mut booking, Status::Expired, Reason::LatePayment, detail).await?;
                    }
                    Err(s) => return Err(BookingError::Unavailable(anyhow::anyhow!("confirming the hold: {s}"))),
                }
            }
            Status::Cancelled | Status::Expired if booking.refund_requested_at.is_none() => {
                booking.payment_id = Some(payment);
                let (status, detail) = (booking.status, "the payment arrived after the booking had ended");
                self.request_refund(tx, &mut booking, status, Reason::LatePayment, detail).await?;
            }
            // Already confirmed, or already being refunded: a redelivery.
            _ => {}
        }
        Ok(())
    }

    /// `PaymentFailed`: cancel an unpaid booking and release its hold.
    pub async fn payment_failed(&self, tx: &mut PgConnection, booking_id: uuid::Uuid, detail: &str) -> Result<()> {
        let Some(mut booking) = store::lock(tx, booking_id).await? else {
            return Err(BookingError::NotFound);
        };
        if booking.status == Status::PendingPayment {
            self.peers.release(&booking.hold_id).await.map_err(|s| anyhow::anyhow!("releasing the hold: {s}"))?;
            booking.status = Status::Cancelled;
            booking.cancellation_reason = detail.to_owned();
            self.save(tx, &booking, &announce::cancelled(&booking, Reason::PaymentFailed, None)).await?;
        }
        Ok(())
    }

    /// `HoldExpired` / `HoldReleased`: an unpaid booking of that hold ends.
    pub async fn hold_ended(&self, tx: &mut PgConnection, hold_id: &str, expired: bool) -> Result<()> {
        let Some(mut booking) = store::lock_by_hold(tx, hold_id).await? else { return Ok(()) };
        if booking.status != Status::PendingPayment {
            return Ok(());
        }
        if expired {
            booking.status = Status::Expired;
            self.save(tx, &booking, &announce::expired(&booking)).await?;
        } else {
            booking.status = Status::Cancelled;
            booking.cancellation_reason = "the hold was released".into();
            self.save(tx, &booking, &announce::cancelled(&booking, Reason::UserRequested, None)).await?;
        }
        Ok(())
    }

    /// `EventCancelled`: refund every confirmed booking, cancel the unpaid ones.
    pub async fn event_cancelled(&self, tx: &mut PgConnection, event: uuid::Uuid, organizer: uuid::Uuid) -> Result<()> {
        store::cancel_event(&mut *tx, event, organizer).await?;
        let detail = "the event was cancelled";
        for mut booking in store::lock_of_event(tx, event, &[Status::Confirmed, Status::PendingPayment]).await? {
            if booking.status == Status::Confirmed {
                self.request_refund(tx, &mut booking, Status::RefundPending, Reason::EventCancelled, detail).await?;
            } else {
                booking.status = Status::Cancelled;
                booking.cancellation_reason = detail.into();
                self.save(tx, &booking, &announce::cancelled(&booking, Reason::EventCancelled, None)).await?;
            }
        }
        Ok(())
    }

    /// `RefundSucceeded`: a refund-pending booking is refunded once fully paid back.
    pub async fn refund_succeeded(&self, tx: &mut PgConnection, refund: &ev::RefundSucceeded) -> Result<()> {
        let booking_id = parse_id("booking_id", &refund.booking_id)?;
        let Some(mut booking) = store::lock(tx, booking_id).await? else {
            return Err(BookingError::NotFound);
        };
        if booking.status == Status::RefundPending && refund.fully_refunded {
            booking.status = Status::Refunded;
            self.save(tx, &booking, &announce::refunded(&booking, &refund.refund_id, refund.amount.clone())).await?;
        }
        Ok(())
    }

    /// `EventPublished`: remember who organizes the event.
    pub async fn event_published(&self, tx: &mut PgConnection, event: uuid::Uuid, organizer: uuid::Uuid) -> Result<()> {
        store::upsert_event(tx, event, organizer).await?;
        Ok(())
    }
}
