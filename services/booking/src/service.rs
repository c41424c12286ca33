//! Booking's use cases: create, read, list and cancel bookings, report an event's sales,
//! and the saga steps the consumers drive. Every state change commits together with its
//! event and its lines in the sales ledger.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, Opts};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use ticketing_platform::audit::{self, Actor, Target};
use ticketing_platform::auth::{Principal, Role};
use ticketing_platform::kafka::outbox;
use ticketing_platform::page::{TimeCursor, next_cursor, page_size};
use ticketing_proto::events::v1 as ev;
use tonic::Code;

use crate::adapters::peers::Peers;
use crate::adapters::store::{self, Owner, Sale};
use crate::domain::sales::{Bucket, SalesReport, Window};
use crate::domain::{
    Booking, BookingError, CancellationRequest, CancellationTerms, LineItem, Reason, Status, Transition,
};
use crate::events::publish;

/// Tag of booking list cursors.
const CURSOR_TAG: &str = "b1";

type Result<T> = std::result::Result<T, BookingError>;

/// The booking service's state and use cases.
#[derive(Clone)]
pub struct Bookings {
    pub(crate) pool: PgPool,
    pub(crate) peers: Peers,
    topic: String,
    audit_topic: String,
    transitions: IntCounterVec,
    sales: crate::metrics::SalesMetrics,
    /// How long a booking waits on another service's event before the reconciler looks.
    pub(crate) reconcile_after: std::time::Duration,
}

/// A page of bookings and the cursor of the next one.
pub type Page = (Vec<Booking>, Option<String>);

fn parse_id(field: &str, raw: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|_| BookingError::invalid(field, "must be a UUID"))
}

/// An id a peer sent: malformed, it is the peer's fault, not a field of the caller's request.
fn peer_id(peer: &str, field: &str, raw: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|_| anyhow::anyhow!("{peer} sent a malformed {field}: {raw:?}").into())
}

/// What a peer's refusal means for the caller.
fn peer_error(status: tonic::Status) -> BookingError {
    match status.code() {
        Code::NotFound | Code::PermissionDenied => BookingError::HoldNotFound,
        Code::InvalidArgument => BookingError::invalid("hold_id", status.message().to_owned()),
        _ => BookingError::Unavailable(anyhow::anyhow!("peer call failed: {status}")),
    }
}

/// Now, as Postgres keeps it: an instant answered is the one read back later.
fn stored_now() -> DateTime<Utc> {
    ticketing_platform::db::stored(Utc::now())
}

fn instant(t: Option<&prost_types::Timestamp>) -> Result<DateTime<Utc>> {
    t.and_then(ticketing_kernel::time::from_proto)
        .ok_or_else(|| BookingError::Unavailable(anyhow::anyhow!("peer sent no valid timestamp")))
}

impl Bookings {
    /// Assembles the service, publishing on `topic` (`booking.events`) and its audit records
    /// on `audit_topic` (`audit.events`); bookings waiting on another service's event are left
    /// to it for `reconcile_after` before the reconciler asks.
    pub fn new(
        pool: PgPool,
        peers: Peers,
        topic: String,
        audit_topic: String,
        reconcile_after: std::time::Duration,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        let transitions = metrics.register(
            &IntCounterVec::new(
                Opts::new("booking_transitions_total", "Booking state changes, by the state entered."),
                &["to"],
            )
            .expect("static metric definition"),
        );
        let sales = crate::metrics::SalesMetrics::new(metrics);
        Self { pool, peers, topic, audit_topic, transitions, sales, reconcile_after }
    }

    /// When the reconciler should look at `booking`, as it now stands: `reconcile_after` from
    /// now when it waits on another service, never otherwise.
    fn next_look(&self, booking: &Booking) -> Option<DateTime<Utc>> {
        let after = chrono::Duration::from_std(self.reconcile_after).unwrap_or(chrono::Duration::MAX);
        booking.awaiting().map(|_| Utc::now() + after)
    }

    /// Writes `booking` back, with its next reconciliation, stamped with the instant it is
    /// stored at: what the caller answers is what a later read shows.
    pub(crate) async fn save(&self, db: &mut PgConnection, booking: &mut Booking) -> anyhow::Result<()> {
        booking.updated_at = stored_now();
        store::update(db, booking, self.next_look(booking)).await
    }

    /// Writes `booking` after `transition` (whose status it was in `before`) and the event
    /// announcing it, in the caller's transaction.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        booking: &mut Booking,
        before: Status,
        transition: &Transition,
    ) -> anyhow::Result<()> {
        self.save(&mut *tx, booking).await?;
        match transition {
            Transition::Confirmed => {
                store::record_sale(tx, booking, Sale::Sold, booking.confirmed_at.unwrap_or(booking.updated_at)).await?;
            }
            Transition::Refunded { .. } => store::record_sale(tx, booking, Sale::Refunded, booking.updated_at).await?,
            _ => {}
        }
        outbox::enqueue(tx, &self.topic, &publish::transition(booking, transition)).await?;
        if booking.status != before {
            self.transitions.with_label_values(&[booking.status.as_str()]).inc();
        }
        Ok(())
    }

    /// Creates a PENDING_PAYMENT booking from the caller's active hold, priced from the catalog.
    pub async fn create(&self, caller: &Principal, hold_id: &str) -> Result<Booking> {
        if hold_id.len() != 64 || !hold_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BookingError::invalid("hold_id", "must be a hold id (64 hex digits)"));
        }
        let hold = self.peers.claim_hold(&caller.token, hold_id).await.map_err(peer_error)?;
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
            let not_on_sale = || BookingError::CategoryNotOnSale(line.category_id.clone());
            let category = event.categories.iter().find(|c| c.id == line.category_id).ok_or_else(not_on_sale)?;
            let price = category.price.clone().ok_or_else(not_on_sale)?;
            currency = price.currency;
            let category_id = peer_id("inventory", "category_id", &line.category_id)?;
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
                    seat_id: seat.map(|s| peer_id("inventory", "seat_id", s)).transpose()?,
                    label,
                    unit_price_minor: price.minor_units,
                });
            }
        }
        let now = stored_now();
        let booking = Booking {
            id: uuid::Uuid::now_v7(),
            user_id: caller.user_id,
            event_id: peer_id("inventory", "event_id", &hold.event_id)?,
            hold_id: hold_id.to_owned(),
            fencing_token: hold.fencing_token,
            status: Status::PendingPayment,
            currency,
            total_minor: line_items.iter().map(|i| i.unit_price_minor).sum(),
            expires_at,
            payment_id: None,
            refund_requested_at: None,
            cancellation_reason: String::new(),
            cancellation: None,
            restock_due: false,
            line_items,
            confirmed_at: None,
            refunded_minor: 0,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.pool.begin().await?;
        if let Err(existing) = store::insert(&mut tx, &booking, self.next_look(&booking)).await? {
            return Err(BookingError::AlreadyBooked(existing));
        }
        outbox::enqueue(&mut tx, &self.topic, &publish::created(&booking)).await?;
        tx.commit().await?;
        self.transitions.with_label_values(&[booking.status.as_str()]).inc();
        Ok(booking)
    }

    /// Whether `caller` may see `booking`: its buyer, the event's organizer or an admin.
    async fn may_see(&self, caller: &Principal, booking: &Booking) -> Result<bool> {
        if booking.user_id == caller.user_id || caller.has_role(Role::Admin) {
            return Ok(true);
        }
        Ok(caller.roles.contains(&Role::Organizer)
            && self.organizer(caller, booking.event_id).await? == Some(caller.user_id))
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
        if !caller.roles.contains(&Role::Admin) && self.organizer(caller, event).await? != Some(caller.user_id) {
            return Err(BookingError::PermissionDenied);
        }
        self.page(Owner::Event(event), statuses, cursor, limit).await
    }

    /// An event's sales from the ledger, all time per category and in `bucket`s over
    /// `[from, to)`: its organizer or an admin. An event booking has not heard of yet (a
    /// draft, or one whose `EventPublished` is still on its way) is asked of the catalog.
    pub async fn sales(
        &self,
        caller: &Principal,
        event: &str,
        (from, to, bucket): (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Bucket),
    ) -> Result<SalesReport> {
        let id = parse_id("event_id", event)?;
        let window = Window::new(from, to, bucket, Utc::now())?;
        if !caller.roles.contains(&Role::Admin) && self.organizer(caller, id).await? != Some(caller.user_id) {
            return Err(BookingError::PermissionDenied);
        }
        let categories = store::sales_by_category(&self.pool, id).await?;
        let points = store::sales_series(&self.pool, id, &window).await?;
        Ok(SalesReport::new(categories, window, points))
    }

    /// Who organizes `event`: booking's projection, else the catalog (asked with the
    /// caller's token; an event it does not show them has no organizer they could be).
    async fn organizer(&self, caller: &Principal, event: uuid::Uuid) -> Result<Option<uuid::Uuid>> {
        if let Some(organizer) = store::organizer(&self.pool, event).await? {
            return Ok(Some(organizer));
        }
        match self.peers.event(&caller.token, &event.to_string()).await {
            Ok(found) => Ok(uuid::Uuid::parse_str(&found.organizer_id).ok()),
            Err(s) if matches!(s.code(), Code::NotFound | Code::PermissionDenied | Code::InvalidArgument) => Ok(None),
            Err(s) => Err(BookingError::Unavailable(anyhow::anyhow!("asking the catalog who organizes it: {s}"))),
        }
    }

    /// Cancels a booking for its buyer or an admin. An unpaid one is cancelled and its hold
    /// released. A paid one is refunded, in this order: the event's cancellation policy is
    /// checked (buyers only; an admin refunds by hand and must say why), the request is
    /// recorded, notification revokes the tickets (refused if one was scanned, unless an
    /// admin asks), and only then does the booking become REFUND_PENDING, whose event asks
    /// payment for the refund and, after commit, returns the seats to stock.
    /// An admin's cancellation of someone else's booking is recorded in the audit log, as is
    /// a check-in it overrode.
    pub async fn cancel(&self, caller: &Principal, actor: &Actor, id: &str, reason: &str) -> Result<Booking> {
        let id = parse_id("booking_id", id)?;
        if reason.chars().count() > 500 {
            return Err(BookingError::invalid("reason", "must be at most 500 characters"));
        }
        let admin = caller.roles.contains(&Role::Admin);
        let mut tx = self.pool.begin().await?;
        let mut booking = store::lock(&mut tx, id).await?.ok_or(BookingError::NotFound)?;
        if booking.user_id != caller.user_id && !admin {
            return Err(BookingError::NotFound);
        }
        // An admin acting on someone else's booking is refunding it by hand.
        let by_admin = admin && booking.user_id != caller.user_id;
        let before = booking.status;
        match booking.status {
            Status::PendingPayment => {
                self.peers.release(&booking.hold_id).await.map_err(|s| anyhow::anyhow!("releasing the hold: {s}"))?;
                let why = if by_admin { Reason::Admin } else { Reason::UserRequested };
                let transition = booking.cancel(why, Some(caller.user_id), reason)?;
                self.apply(&mut tx, &mut booking, before, &transition).await?;
                if by_admin {
                    let after = json!({"status": booking.status.as_str(), "reason": reason});
                    self.audit(&mut tx, actor, "booking.cancelled_by_hand", &booking, before, after).await?;
                }
                tx.commit().await?;
                Ok(booking)
            }
            Status::Confirmed => {
                if by_admin && reason.trim().is_empty() {
                    return Err(BookingError::invalid("reason", "an admin's refund must say why"));
                }
                if !admin {
                    self.check_cancellation_policy(caller, &booking).await?;
                }
                let request = CancellationRequest {
                    at: Utc::now(),
                    by: caller.user_id,
                    forced: admin,
                    detail: reason.to_owned(),
                };
                booking.request_cancellation(request)?;
                self.save(&mut tx, &mut booking).await?;
                if by_admin {
                    let after = json!({"status": booking.status.as_str(), "refund_requested": true, "reason": reason});
                    self.audit(&mut tx, actor, "booking.refunded_by_hand", &booking, before, after).await?;
                }
                tx.commit().await?;
                self.finish_cancellation(id, Some(actor)).await
            }
            from => Err(BookingError::IllegalTransition { from, action: "cancelled" }),
        }
    }

    /// Records `action` by `actor` on `booking` (in status `before` until then) in the audit
    /// log, in the caller's transaction.
    async fn audit(
        &self,
        tx: &mut PgConnection,
        actor: &Actor,
        action: &str,
        booking: &Booking,
        before: Status,
        after: serde_json::Value,
    ) -> anyhow::Result<()> {
        let before = json!({"status": before.as_str(), "user_id": booking.user_id, "event_id": booking.event_id});
        let record = actor.record("booking", action, Target::new("booking", booking.id), Some(&before), &after);
        audit::enqueue(tx, &self.audit_topic, &record).await
    }

    /// Refuses a buyer's cancellation the event's policy no longer allows.
    async fn check_cancellation_policy(&self, caller: &Principal, booking: &Booking) -> Result<()> {
        let event =
            self.peers.event(&caller.token, &booking.event_id.to_string()).await.map_err(|s| {
                BookingError::Unavailable(anyhow::anyhow!("reading the event's cancellation policy: {s}"))
            })?;
        let policy = event.cancellation_policy.unwrap_or_default();
        let terms = CancellationTerms {
            starts_at: instant(event.starts_at.as_ref())?,
            cutoff: (!policy.no_buyer_cancellation)
                .then(|| chrono::Duration::minutes(i64::from(policy.cutoff_minutes))),
        };
        terms.check(Utc::now())
    }

    /// Carries out a paid booking's recorded cancellation: revokes its tickets, then moves it
    /// to REFUND_PENDING (restocking its seats unless someone went in on a ticket). When
    /// notification refuses because a ticket was scanned, the request is dropped. Safe to
    /// repeat and to run on several replicas: every step is idempotent, and a booking that
    /// moved on meanwhile (say, its event was cancelled) is left as it is.
    ///
    /// An admin's refund that revoked a ticket already scanned overrides a check-in: that is
    /// recorded in the audit log, as done by `actor` (the admin, when they are still waiting
    /// for the answer) or by the admin who asked (a sweeper finishing the request later).
    pub async fn finish_cancellation(&self, id: uuid::Uuid, actor: Option<&Actor>) -> Result<Booking> {
        let mut conn = self.pool.acquire().await?;
        let seen = store::get(&mut conn, id).await?.ok_or(BookingError::NotFound)?;
        drop(conn);
        let Some(request) = seen.cancellation.clone() else { return Ok(seen) };
        // No row lock across the call: a check-in does not wait for booking.
        let revoked = self.peers.revoke_tickets(&seen, &request.detail, request.forced).await;

        let mut tx = self.pool.begin().await?;
        let mut booking = store::lock(&mut tx, id).await?.ok_or(BookingError::NotFound)?;
        if booking.cancellation.as_ref() != Some(&request) {
            return Ok(booking);
        }
        let before = booking.status;
        match revoked {
            Ok(attended) => {
                let why = if request.by == booking.user_id { Reason::UserRequested } else { Reason::Admin };
                let transition = booking.request_refund(why, &request.detail, !attended)?;
                self.apply(&mut tx, &mut booking, before, &transition).await?;
                if attended && request.forced {
                    let actor = actor.cloned().unwrap_or_else(|| Actor::recorded(request.by));
                    let after =
                        json!({"status": booking.status.as_str(), "tickets": "revoked", "reason": request.detail});
                    let target = Target::new("booking", id);
                    let scanned = json!({"tickets": "scanned"});
                    let record = actor.record("booking", "booking.check_in_overridden", target, Some(&scanned), &after);
                    audit::enqueue(&mut tx, &self.audit_topic, &record).await?;
                }
            }
            Err(s) if ticketing_platform::status::refusal_reason(&s).as_deref() == Some("TICKET_SCANNED") => {
                booking.abandon_cancellation();
                self.save(&mut tx, &mut booking).await?;
                tx.commit().await?;
                return Err(BookingError::TicketScanned);
            }
            Err(s) => return Err(BookingError::Unavailable(anyhow::anyhow!("revoking the tickets: {s}"))),
        }
        tx.commit().await?;
        Ok(booking)
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
        let before = booking.status;
        match booking.status {
            Status::PendingPayment => {
                match self.peers.confirm(&booking.hold_id, booking.fencing_token, booking.id).await {
                    Ok(()) => {
                        let transition = booking.confirm(payment, stored_now())?;
                        self.apply(tx, &mut booking, before, &transition).await?;
                        // The consumer commits right after the handler returns.
                        self.sales.confirmed(&booking, paid_at);
                    }
                    // Expired, released or fenced off: the seats are gone, the money goes back.
                    Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound | Code::Aborted) => {
                        let transition = booking.expire()?;
                        self.apply(tx, &mut booking, before, &transition).await?;
                        let transition = booking.refund_late_payment(payment)?;
                        let unchanged = booking.status;
                        self.apply(tx, &mut booking, unchanged, &transition).await?;
                    }
                    Err(s) => return Err(BookingError::Unavailable(anyhow::anyhow!("confirming the hold: {s}"))),
                }
            }
            Status::Cancelled | Status::Expired if booking.refund_requested_at.is_none() => {
                let transition = booking.refund_late_payment(payment)?;
                self.apply(tx, &mut booking, before, &transition).await?;
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
            let transition = booking.cancel(Reason::PaymentFailed, None, detail)?;
            self.apply(tx, &mut booking, Status::PendingPayment, &transition).await?;
        }
        Ok(())
    }

    /// `HoldExpired` / `HoldReleased`: an unpaid booking of that hold ends.
    pub async fn hold_ended(&self, tx: &mut PgConnection, hold_id: &str, expired: bool) -> Result<()> {
        let Some(mut booking) = store::lock_by_hold(tx, hold_id).await? else { return Ok(()) };
        if booking.status != Status::PendingPayment {
            return Ok(());
        }
        let transition = if expired {
            booking.expire()?
        } else {
            booking.cancel(Reason::UserRequested, None, "the hold was released")?
        };
        self.apply(tx, &mut booking, Status::PendingPayment, &transition).await?;
        Ok(())
    }

    /// `EventCancelled`: refund every confirmed booking (nothing to restock: the event is
    /// off; notification revokes their tickets on the refund request), cancel the unpaid ones.
    pub async fn event_cancelled(&self, tx: &mut PgConnection, event: uuid::Uuid, organizer: uuid::Uuid) -> Result<()> {
        store::cancel_event(&mut *tx, event, organizer).await?;
        let detail = "the event was cancelled";
        for mut booking in store::lock_of_event(tx, event, &[Status::Confirmed, Status::PendingPayment]).await? {
            let before = booking.status;
            let transition = if before == Status::Confirmed {
                booking.request_refund(Reason::EventCancelled, detail, false)?
            } else {
                booking.cancel(Reason::EventCancelled, None, detail)?
            };
            self.apply(tx, &mut booking, before, &transition).await?;
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
            let transition = booking.refunded(&refund.refund_id)?;
            self.apply(tx, &mut booking, Status::RefundPending, &transition).await?;
        }
        Ok(())
    }

    /// Our own `BookingRefundRequested`, after its commit: return the seats to stock when it
    /// says so (its tickets are revoked by then). The event is the request itself, whatever
    /// the booking recorded.
    pub async fn restock_requested(&self, tx: &mut PgConnection, requested: &ev::BookingRefundRequested) -> Result<()> {
        if !requested.restock {
            return Ok(());
        }
        let booking_id = parse_id("booking_id", &requested.booking_id)?;
        self.return_seats(&requested.hold_id, booking_id).await?;
        let Some(mut booking) = store::lock(tx, booking_id).await? else { return Err(BookingError::NotFound) };
        if booking.restock_due {
            booking.restocked();
            self.save(tx, &mut booking).await?;
        }
        Ok(())
    }

    /// Returns a cancelled booking's seats to stock if that is still due (its refund request
    /// was not consumed in time).
    pub async fn restock(&self, tx: &mut PgConnection, booking_id: uuid::Uuid) -> Result<()> {
        let Some(mut booking) = store::lock(tx, booking_id).await? else { return Err(BookingError::NotFound) };
        if !booking.restock_due {
            return Ok(());
        }
        self.return_seats(&booking.hold_id, booking.id).await?;
        booking.restocked();
        self.save(tx, &mut booking).await?;
        Ok(())
    }

    /// Inventory's `Restock`, idempotent there. A hold inventory has no sale of has nothing to
    /// take back: asking again would not change that.
    async fn return_seats(&self, hold_id: &str, booking: uuid::Uuid) -> Result<()> {
        match self.peers.restock(hold_id, booking).await {
            Ok(()) => Ok(()),
            Err(s) if s.code() == Code::NotFound => {
                tracing::warn!(%booking, hold = hold_id, "inventory has no sale of the hold to restock");
                Ok(())
            }
            Err(s) => Err(BookingError::Unavailable(anyhow::anyhow!("returning the tickets to stock: {s}"))),
        }
    }

    /// `EventPublished`: remember who organizes the event.
    pub async fn event_published(&self, tx: &mut PgConnection, event: uuid::Uuid, organizer: uuid::Uuid) -> Result<()> {
        store::upsert_event(tx, event, organizer).await?;
        Ok(())
    }
}
