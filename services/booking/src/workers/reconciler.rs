//! The saga's second line. A booking that waits on another service's event (a payment's
//! outcome, its seats back in stock, its refund) longer than `booking.reconcile_after`
//! (a consumer stalled, the broker lost a consumer group, a replica died between two
//! steps) is completed by asking that service directly, through the very steps the
//! consumers take. Every replica runs it: each claims due bookings with SKIP LOCKED, every
//! step locks its booking and looks at its state first, and every peer call is idempotent,
//! so a reconciler racing a consumer (or another replica) changes a booking once.

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use prometheus::{IntCounterVec, Opts};
use ticketing_platform::periodic::Job;
use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::inventory::v1::HoldStatus;
use ticketing_proto::payment::v1::{PaymentDetails, PaymentStatus, RefundStatus};
use tonic::Code;

use crate::adapters::store;
use crate::domain::{Awaited, Booking, BookingError, Status};
use crate::service::Bookings;

/// Most bookings one claim takes.
const BATCH: i64 = 64;

/// Bookings looked at at once.
const CONCURRENCY: usize = 8;

/// Longest gap between two looks at a booking that still waits.
const MAX_GAP: chrono::Duration = chrono::Duration::hours(1);

/// How long an ended booking is watched for a payment that lands late, and a refund for its
/// outcome.
const WATCH_FOR: chrono::Duration = chrono::Duration::hours(24);

/// What the reconciler does, as `booking_reconciled_total{what}` counts it.
const WHAT: [&str; 7] =
    ["payment_succeeded", "payment_failed", "hold_expired", "hold_released", "restock", "refund", "refunded"];

type Result<T> = std::result::Result<T, BookingError>;

/// What one look at a booking came to.
enum Look {
    /// Nothing to do yet: look again then.
    Again(DateTime<Utc>),
    /// Nothing more to wait for.
    Done,
    /// A saga step ran (`what`), which rescheduled the booking as it now stands.
    Stepped(&'static str),
}

/// The reconciler of one replica.
#[derive(Clone)]
pub struct Reconciler {
    bookings: Bookings,
    reconciled: IntCounterVec,
}

fn unavailable(what: &'static str) -> impl FnOnce(tonic::Status) -> BookingError {
    move |s| BookingError::Unavailable(anyhow::anyhow!("{what}: {s}"))
}

impl Reconciler {
    /// A reconciler of `bookings`, counting what it does in `metrics`.
    pub fn new(bookings: Bookings, metrics: &ticketing_platform::metrics::Metrics) -> Self {
        let reconciled = metrics.register(
            &IntCounterVec::new(
                Opts::new(
                    "booking_reconciled_total",
                    "Saga steps the reconciler took because their event was late, by what it did.",
                ),
                &["what"],
            )
            .expect("static metric definition"),
        );
        for what in WHAT {
            reconciled.with_label_values(&[what]);
        }
        Self { bookings, reconciled }
    }

    /// How far apart its rounds are: a third of `reconcile_after`.
    pub fn interval(&self) -> std::time::Duration {
        self.bookings.reconcile_after / 3
    }

    /// Looks at every booking due now; returns how many it claimed.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let mut claimed = 0;
        loop {
            let due = store::claim_due(&self.bookings.pool, self.bookings.reconcile_after, BATCH).await?;
            claimed += due.len();
            futures::stream::iter(due.iter().copied()).for_each_concurrent(CONCURRENCY, |id| self.reconcile(id)).await;
            // A booking that failed keeps its lease, so no pass sees it twice.
            if (due.len() as i64) < BATCH {
                return Ok(claimed);
            }
        }
    }

    async fn reconcile(&self, id: uuid::Uuid) {
        let seen = match self.read(id).await {
            Ok(Some(booking)) => booking,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(booking = %id, error = format!("{e:#}"), "reading a booking to reconcile failed");
                return;
            }
        };
        let next = match self.look(&seen).await {
            Ok(Look::Stepped(what)) => {
                self.reconciled.with_label_values(&[what]).inc();
                tracing::info!(booking = %id, what, "completed a saga step whose event was late");
                return;
            }
            Ok(Look::Again(at)) => Some(at),
            Ok(Look::Done) => None,
            Err(e) => {
                // Its lease brings it back after `reconcile_after`.
                tracing::warn!(booking = %id, error = format!("{:#}", anyhow::Error::from(e)), "reconciling a booking failed");
                return;
            }
        };
        if let Err(e) = store::reschedule(&self.bookings.pool, id, next, seen.updated_at).await {
            tracing::warn!(booking = %id, error = format!("{e:#}"), "rescheduling a reconciliation failed");
        }
    }

    async fn read(&self, id: uuid::Uuid) -> anyhow::Result<Option<Booking>> {
        let mut conn = self.bookings.pool.acquire().await?;
        store::get(&mut conn, id).await
    }

    async fn look(&self, booking: &Booking) -> Result<Look> {
        let (b, id) = (&self.bookings, booking.id);
        let now = Utc::now();
        let after = chrono::Duration::from_std(b.reconcile_after).map_err(anyhow::Error::from)?;
        match booking.awaiting() {
            None => Ok(Look::Done),
            Some(Awaited::Restock) => {
                let mut tx = b.pool.begin().await?;
                b.restock(&mut tx, id).await?;
                tx.commit().await?;
                Ok(Look::Stepped("restock"))
            }
            Some(awaited @ (Awaited::Payment | Awaited::LatePayment)) => {
                let since = if awaited == Awaited::Payment { booking.created_at } else { booking.updated_at };
                if awaited == Awaited::LatePayment && since < now - WATCH_FOR {
                    return Ok(Look::Done);
                }
                let payment = b.peers.payment_of(id).await.map_err(unavailable("asking payment"))?;
                self.settle_payment(booking, awaited, payment, now, after, since).await
            }
            Some(Awaited::Refund) => self.settle_refund(booking, now, after).await,
        }
    }

    /// Applies the booking's payment's outcome once its event had its chance to arrive.
    async fn settle_payment(
        &self,
        booking: &Booking,
        awaited: Awaited,
        payment: Option<PaymentDetails>,
        now: DateTime<Utc>,
        after: chrono::Duration,
        since: DateTime<Utc>,
    ) -> Result<Look> {
        let b = &self.bookings;
        let Some(payment) = payment else { return self.settle_hold(booking, awaited, now, after, since).await };
        let settled_at = payment.updated_at.as_ref().and_then(ticketing_kernel::time::from_proto).unwrap_or(now);
        if settled_at > now - after {
            // Settled a moment ago: its event is most likely on its way.
            return Ok(Look::Again(settled_at + after));
        }
        let payment_id = uuid::Uuid::parse_str(&payment.id).map_err(anyhow::Error::from)?;
        let mut tx = b.pool.begin().await?;
        let what = match PaymentStatus::try_from(payment.status) {
            Ok(PaymentStatus::Succeeded) => {
                b.payment_succeeded(&mut tx, booking.id, payment_id, Some(settled_at)).await?;
                "payment_succeeded"
            }
            Ok(PaymentStatus::Failed) if awaited == Awaited::Payment => {
                let detail = format!("payment failed: {}", payment.failure_code);
                b.payment_failed(&mut tx, booking.id, &detail).await?;
                "payment_failed"
            }
            // Still open at payment (its own reconciliation settles it), failed after the
            // booking ended, or already refunded: nothing for the booking from payment.
            _ => return self.settle_hold(booking, awaited, now, after, since).await,
        };
        tx.commit().await?;
        Ok(Look::Stepped(what))
    }

    /// Ends an unpaid booking whose hold ended at inventory (`HoldExpired` / `HoldReleased`
    /// never came), once its expiry is `after` past.
    async fn settle_hold(
        &self,
        booking: &Booking,
        awaited: Awaited,
        now: DateTime<Utc>,
        after: chrono::Duration,
        since: DateTime<Utc>,
    ) -> Result<Look> {
        if awaited != Awaited::Payment {
            return Ok(Look::Again(backoff(now, since, after)));
        }
        if booking.expires_at > now - after {
            // Again once the hold's own expiry event had its chance, if not sooner.
            return Ok(Look::Again(backoff(now, since, after).min(booking.expires_at + after)));
        }
        let b = &self.bookings;
        let status = match b.peers.hold_as_service(&booking.hold_id).await {
            Ok(hold) => HoldStatus::try_from(hold.status).unwrap_or_default(),
            // Inventory lost it (Redis lost its data): it will never be sold.
            Err(s) if s.code() == Code::NotFound => HoldStatus::Expired,
            Err(s) => return Err(unavailable("asking inventory")(s)),
        };
        let (expired, what) = match status {
            HoldStatus::Expired => (true, "hold_expired"),
            HoldStatus::Released => (false, "hold_released"),
            // Sold (a confirmation whose PaymentSucceeded comes later) or still active.
            _ => return Ok(Look::Again(backoff(now, since, after))),
        };
        let mut tx = b.pool.begin().await?;
        b.hold_ended(&mut tx, &booking.hold_id, expired).await?;
        tx.commit().await?;
        Ok(Look::Stepped(what))
    }

    /// Asks payment again for the refund the booking asked for (the same request id, so
    /// payment records one refund however it heard of it), and marks a refund-pending
    /// booking refunded once payment says its payment is.
    async fn settle_refund(&self, booking: &Booking, now: DateTime<Utc>, after: chrono::Duration) -> Result<Look> {
        let b = &self.bookings;
        let Some(payment) = booking.payment_id else { return Ok(Look::Done) };
        let asked = booking.refund_requested_at.unwrap_or(booking.updated_at);
        if asked > now - after {
            return Ok(Look::Again(asked + after));
        }
        let amount = Money { currency: booking.currency.clone(), minor_units: booking.total_minor };
        let reason = match booking.cancellation_reason.as_str() {
            "" => "the payment arrived after the booking had ended",
            reason => reason,
        };
        let refund = match b.peers.refund(payment, amount, booking.refund_request_id(payment), reason).await {
            Ok(refund) => refund,
            // Not refundable yet (the charge is still open at payment): later.
            Err(s) if s.code() == Code::FailedPrecondition => return Ok(Look::Again(backoff(now, asked, after))),
            Err(s) => return Err(unavailable("asking payment for the refund")(s)),
        };
        self.reconciled.with_label_values(&["refund"]).inc();
        let current = b.peers.payment(payment).await.map_err(unavailable("asking payment"))?;
        if current.is_some_and(|p| p.status == PaymentStatus::Refunded as i32) {
            if booking.status != Status::RefundPending {
                return Ok(Look::Done);
            }
            let refunded = ev::RefundSucceeded {
                booking_id: booking.id.to_string(),
                refund_id: refund.id,
                fully_refunded: true,
                ..ev::RefundSucceeded::default()
            };
            let mut tx = b.pool.begin().await?;
            b.refund_succeeded(&mut tx, &refunded).await?;
            tx.commit().await?;
            return Ok(Look::Stepped("refunded"));
        }
        // The refund's first answer is what payment replays; only the payment tells the rest.
        match RefundStatus::try_from(refund.status) {
            Ok(RefundStatus::Pending) if asked > now - WATCH_FOR => Ok(Look::Again(backoff(now, asked, after))),
            // It failed (payment's reconciliation and alerts own it now), or it never settles.
            _ => Ok(Look::Done),
        }
    }
}

impl Job for Reconciler {
    async fn round(&mut self) {
        if let Err(e) = self.pass().await {
            tracing::warn!(error = format!("{e:#}"), "looking for bookings to reconcile failed");
        }
    }
}

/// The next look at a booking waiting `since`: the longer it waited, the less often (at
/// least `after`, at most [`MAX_GAP`] apart), so an unpaid booking costs a few questions.
fn backoff(now: DateTime<Utc>, since: DateTime<Utc>, after: chrono::Duration) -> DateTime<Utc> {
    now + (now - since).clamp(after, MAX_GAP.max(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_at_a_waiting_booking_grow_apart_up_to_an_hour() {
        let now = Utc::now();
        let after = chrono::Duration::seconds(30);
        assert_eq!(backoff(now, now, after), now + after, "at least reconcile_after");
        assert_eq!(backoff(now, now - chrono::Duration::minutes(5), after), now + chrono::Duration::minutes(5));
        assert_eq!(backoff(now, now - chrono::Duration::days(3), after), now + MAX_GAP);
    }
}
