//! A booking and the state machine it moves through.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::BookingError;

/// Where a booking is in its life.
///
/// ```text
/// PENDING_PAYMENT → CONFIRMED | CANCELLED | EXPIRED
/// CONFIRMED → REFUND_PENDING → REFUNDED
/// ```
/// A payment that lands on a CANCELLED or EXPIRED booking is refunded without
/// changing its state (`refund_requested_at` records it). A CONFIRMED booking being
/// cancelled carries its [`CancellationRequest`] until its tickets are revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for the buyer to pay, until the hold expires.
    PendingPayment,
    /// Paid and sold.
    Confirmed,
    /// Payment failed, or the buyer cancelled before paying.
    Cancelled,
    /// The hold expired before the payment confirmed it.
    Expired,
    /// Cancelled after payment; the refund is on its way.
    RefundPending,
    /// Cancelled after payment and refunded.
    Refunded,
}

impl Status {
    /// Every status, in proto order.
    pub const ALL: [Self; 6] =
        [Self::PendingPayment, Self::Confirmed, Self::Cancelled, Self::Expired, Self::RefundPending, Self::Refunded];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::RefundPending => "refund_pending",
            Self::Refunded => "refunded",
        }
    }

    /// Whether the state machine allows `self → to`.
    pub fn may_become(self, to: Self) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (PendingPayment, Confirmed | Cancelled | Expired) | (Confirmed, RefundPending) | (RefundPending, Refunded)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown booking status {s:?}"))
    }
}

/// Why a booking ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its buyer cancelled it.
    UserRequested,
    /// The charge failed.
    PaymentFailed,
    /// The event was cancelled.
    EventCancelled,
    /// An admin cancelled or refunded it.
    Admin,
    /// The payment came after the booking had ended.
    LatePayment,
}

/// A paid booking's cancellation, asked for and not yet carried out: its tickets must
/// leave the gate before it is refunded and its seats are sold again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationRequest {
    /// When it was asked for.
    pub at: DateTime<Utc>,
    /// Who asked: the buyer or an admin.
    pub by: uuid::Uuid,
    /// Revoke the tickets even if one was scanned (an admin's refund by hand).
    pub forced: bool,
    /// Why, in the asker's words.
    pub detail: String,
}

/// What a state change did; `announce` turns each into the event it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// PENDING_PAYMENT → CONFIRMED: sold.
    Confirmed,
    /// PENDING_PAYMENT → CANCELLED, by `by` (none when the system did it).
    Cancelled {
        /// Why.
        reason: Reason,
        /// Who.
        by: Option<uuid::Uuid>,
    },
    /// PENDING_PAYMENT → EXPIRED.
    Expired,
    /// The payment must go back: CONFIRMED → REFUND_PENDING, or a late payment of a
    /// CANCELLED or EXPIRED booking (whose state stays).
    RefundRequested {
        /// The payment to refund.
        payment: uuid::Uuid,
        /// Why.
        reason: Reason,
        /// In words.
        detail: String,
        /// Return the seats to stock (a cancellation nobody went in on).
        restock: bool,
    },
    /// REFUND_PENDING → REFUNDED.
    Refunded {
        /// The refund's id at payment.
        refund_id: String,
    },
}

/// What a booking waits for from another service, which its event should have brought
/// and the reconciler asks for when it is late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// An unpaid booking: payment's outcome (`PaymentSucceeded` / `PaymentFailed`).
    Payment,
    /// An ended booking nobody paid for yet: a payment that may still land and must go back.
    LatePayment,
    /// Inventory returning a cancelled booking's seats to stock.
    Restock,
    /// Payment refunding what was asked (`BookingRefundRequested` → `RefundSucceeded`).
    Refund,
}

/// One ticket of a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    /// Also the ticket's id.
    pub id: uuid::Uuid,
    /// Its category.
    pub category_id: uuid::Uuid,
    /// Its seat; `None` for general admission.
    pub seat_id: Option<uuid::Uuid>,
    /// e.g. "Floor A, Row 12, Seat 7", or the category's name.
    pub label: String,
    /// Price in minor units of the booking's currency.
    pub unit_price_minor: i64,
}

/// A booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Its id.
    pub id: uuid::Uuid,
    /// The buyer.
    pub user_id: uuid::Uuid,
    /// The event.
    pub event_id: uuid::Uuid,
    /// The hold it was made from (64 hex digits).
    pub hold_id: String,
    /// The hold's fencing token, presented to inventory's Confirm.
    pub fencing_token: u64,
    /// Where it is; changed only by the transition methods below, which check the state
    /// machine and say what happened.
    pub status: Status,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of the line items' prices.
    pub total_minor: i64,
    /// When an unpaid booking expires (its hold's expiry).
    pub expires_at: DateTime<Utc>,
    /// The payment that paid it, once there is one.
    pub payment_id: Option<uuid::Uuid>,
    /// Set when a refund was asked of payment.
    pub refund_requested_at: Option<DateTime<Utc>>,
    /// Why it was cancelled.
    pub cancellation_reason: String,
    /// A paid booking's cancellation under way.
    pub cancellation: Option<CancellationRequest>,
    /// Its seats are to go back to stock, and inventory has not confirmed it yet.
    pub restock_due: bool,
    /// One per ticket.
    pub line_items: Vec<LineItem>,
    /// When it was confirmed, if it ever was.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// What was paid back of a sold booking, in minor units.
    pub refunded_minor: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The status changes. Each checks that the booking may change so, changes it and says
/// what happened; nothing else in the service assigns a status.
impl Booking {
    fn refused(&self, action: &'static str) -> BookingError {
        BookingError::IllegalTransition { from: self.status, action }
    }

    fn become_(&mut self, to: Status, action: &'static str) -> Result<(), BookingError> {
        if !self.status.may_become(to) {
            return Err(self.refused(action));
        }
        self.status = to;
        Ok(())
    }

    /// Paid by `payment` and sold, `at` that instant.
    pub fn confirm(&mut self, payment: uuid::Uuid, at: DateTime<Utc>) -> Result<Transition, BookingError> {
        self.become_(Status::Confirmed, "confirmed")?;
        self.payment_id = Some(payment);
        self.confirmed_at = Some(at);
        Ok(Transition::Confirmed)
    }

    /// Its hold ran out before it was paid.
    pub fn expire(&mut self) -> Result<Transition, BookingError> {
        self.become_(Status::Expired, "expired")?;
        Ok(Transition::Expired)
    }

    /// An unpaid booking ends: its payment failed, its hold was released or its buyer
    /// changed their mind.
    pub fn cancel(&mut self, reason: Reason, by: Option<uuid::Uuid>, detail: &str) -> Result<Transition, BookingError> {
        self.become_(Status::Cancelled, "cancelled")?;
        self.cancellation_reason = detail.to_owned();
        Ok(Transition::Cancelled { reason, by })
    }

    /// Starts the cancellation of a paid booking; an earlier request under way stays.
    pub fn request_cancellation(&mut self, request: CancellationRequest) -> Result<(), BookingError> {
        if self.status != Status::Confirmed {
            return Err(self.refused("cancelled"));
        }
        self.cancellation.get_or_insert(request);
        Ok(())
    }

    /// The cancellation under way was refused (a ticket was scanned): still CONFIRMED.
    pub fn abandon_cancellation(&mut self) {
        self.cancellation = None;
    }

    /// A paid booking goes back: CONFIRMED → REFUND_PENDING, its seats restocked when
    /// `restock` (its tickets are revoked and nobody went in on them).
    pub fn request_refund(&mut self, reason: Reason, detail: &str, restock: bool) -> Result<Transition, BookingError> {
        let payment = self.payment_id.ok_or_else(|| self.refused("refunded without a payment"))?;
        self.become_(Status::RefundPending, "refunded")?;
        self.cancellation = None;
        self.restock_due = restock;
        self.refund_requested_at = Some(Utc::now());
        if self.cancellation_reason.is_empty() {
            self.cancellation_reason = detail.to_owned();
        }
        Ok(Transition::RefundRequested { payment, reason, detail: detail.to_owned(), restock })
    }

    /// A payment that came after the booking ended goes back, once; the state stays.
    pub fn refund_late_payment(&mut self, payment: uuid::Uuid) -> Result<Transition, BookingError> {
        if !matches!(self.status, Status::Cancelled | Status::Expired) || self.refund_requested_at.is_some() {
            return Err(self.refused("refunded as a late payment"));
        }
        self.payment_id = Some(payment);
        self.refund_requested_at = Some(Utc::now());
        let detail = "the payment arrived after the booking had ended".to_owned();
        Ok(Transition::RefundRequested { payment, reason: Reason::LatePayment, detail, restock: false })
    }

    /// Its refund went through in full.
    pub fn refunded(&mut self, refund_id: &str) -> Result<Transition, BookingError> {
        self.become_(Status::Refunded, "marked refunded")?;
        // Booking only ever asks for the whole total back.
        self.refunded_minor = self.total_minor;
        Ok(Transition::Refunded { refund_id: refund_id.to_owned() })
    }

    /// Inventory has its seats back (or had nothing to take back).
    pub fn restocked(&mut self) {
        self.restock_due = false;
    }

    /// The id of the refund of `payment` asked for this booking: the same however often it
    /// is asked, so payment refunds once.
    pub fn refund_request_id(&self, payment: uuid::Uuid) -> uuid::Uuid {
        uuid::Uuid::new_v5(&self.id, payment.as_bytes())
    }

    /// What it still waits for from another service, if anything: the seats before the
    /// money, since a refund may fail and leave the booking where it is.
    pub fn awaiting(&self) -> Option<Awaited> {
        match self.status {
            Status::PendingPayment => Some(Awaited::Payment),
            _ if self.restock_due => Some(Awaited::Restock),
            Status::Cancelled | Status::Expired if self.refund_requested_at.is_none() => Some(Awaited::LatePayment),
            Status::Cancelled | Status::Expired | Status::RefundPending => Some(Awaited::Refund),
            Status::Confirmed | Status::Refunded => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let allowed: Vec<(Status, Status)> = Status::ALL
            .into_iter()
            .flat_map(|from| Status::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.may_become(*to))
            .collect();
        use Status::*;
        assert_eq!(
            allowed,
            [
                (PendingPayment, Confirmed),
                (PendingPayment, Cancelled),
                (PendingPayment, Expired),
                (Confirmed, RefundPending),
                (RefundPending, Refunded)
            ]
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("paid".parse::<Status>().is_err());
    }

    fn pending() -> Booking {
        let now = Utc::now();
        Booking {
            id: uuid::Uuid::now_v7(),
            user_id: uuid::Uuid::now_v7(),
            event_id: uuid::Uuid::now_v7(),
            hold_id: "ab".repeat(32),
            fencing_token: 7,
            status: Status::PendingPayment,
            currency: "EUR".into(),
            total_minor: 10_000,
            expires_at: now,
            payment_id: None,
            refund_requested_at: None,
            cancellation_reason: String::new(),
            cancellation: None,
            restock_due: false,
            line_items: Vec::new(),
            confirmed_at: None,
            refunded_minor: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// What the saga and the API may ask of a booking, in any order and any number of times.
    #[derive(Debug, Clone)]
    enum Op {
        Confirm,
        Expire,
        Cancel,
        RequestCancellation { forced: bool },
        AbandonCancellation,
        RequestRefund { restock: bool },
        RefundLatePayment,
        Refunded,
        Restocked,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Op::Confirm),
            Just(Op::Expire),
            Just(Op::Cancel),
            any::<bool>().prop_map(|forced| Op::RequestCancellation { forced }),
            Just(Op::AbandonCancellation),
            any::<bool>().prop_map(|restock| Op::RequestRefund { restock }),
            Just(Op::RefundLatePayment),
            Just(Op::Refunded),
            Just(Op::Restocked),
        ]
    }

    fn apply(booking: &mut Booking, op: &Op, payment: uuid::Uuid) -> Option<Result<Transition, BookingError>> {
        Some(match op {
            Op::Confirm => booking.confirm(payment, Utc::now()),
            Op::Expire => booking.expire(),
            Op::Cancel => booking.cancel(Reason::UserRequested, None, "changed my mind"),
            Op::RequestCancellation { forced } => {
                let request =
                    CancellationRequest { at: Utc::now(), by: booking.user_id, forced: *forced, detail: "ill".into() };
                return booking.request_cancellation(request).err().map(Err);
            }
            Op::AbandonCancellation => {
                booking.abandon_cancellation();
                return None;
            }
            Op::Restocked => {
                booking.restocked();
                return None;
            }
            Op::RequestRefund { restock } => booking.request_refund(Reason::UserRequested, "ill", *restock),
            Op::RefundLatePayment => booking.refund_late_payment(payment),
            Op::Refunded => booking.refunded("re_1"),
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Whatever the order of requests and events, a booking only moves along the
        /// documented edges, says exactly what it did, changes nothing when it refuses, asks
        /// for its money back at most once, and never restocks a late payment.
        #[test]
        fn any_sequence_of_requests_keeps_the_state_machine_honest(ops in proptest::collection::vec(op(), 1..24)) {
            let payment = uuid::Uuid::now_v7();
            let mut booking = pending();
            let mut refunds = 0;
            for op in &ops {
                let before = booking.clone();
                let Some(result) = apply(&mut booking, op, payment) else {
                    proptest::prop_assert_eq!(booking.status, before.status);
                    proptest::prop_assert!(!booking.restock_due || before.restock_due, "only a refund asks for seats back");
                    continue;
                };
                let transition = match result {
                    Ok(t) => t,
                    Err(error) => {
                        proptest::prop_assert!(
                            matches!(error, BookingError::IllegalTransition { .. }), "{:?}", error
                        );
                        proptest::prop_assert_eq!(&booking, &before, "a refusal changed the booking");
                        continue;
                    }
                };
                let (from, to) = (before.status, booking.status);
                proptest::prop_assert!(from == to || from.may_become(to), "{} → {}", from, to);
                match &transition {
                    Transition::Confirmed => {
                        proptest::prop_assert_eq!(to, Status::Confirmed);
                        proptest::prop_assert_eq!(booking.payment_id, Some(payment));
                        proptest::prop_assert!(booking.confirmed_at.is_some());
                    }
                    Transition::Cancelled { .. } => proptest::prop_assert_eq!(to, Status::Cancelled),
                    Transition::Expired => proptest::prop_assert_eq!(to, Status::Expired),
                    Transition::Refunded { .. } => {
                        proptest::prop_assert_eq!(to, Status::Refunded);
                        proptest::prop_assert_eq!(booking.refunded_minor, booking.total_minor, "refunded in full");
                    }
                    Transition::RefundRequested { payment: refunded, reason, restock, .. } => {
                        refunds += 1;
                        proptest::prop_assert_eq!(*refunded, payment);
                        proptest::prop_assert!(booking.refund_requested_at.is_some());
                        if *reason == Reason::LatePayment {
                            proptest::prop_assert!(!restock, "a late payment sold nothing to restock");
                            proptest::prop_assert_eq!(to, from, "a late refund leaves the state");
                        } else {
                            proptest::prop_assert_eq!((from, to), (Status::Confirmed, Status::RefundPending));
                        }
                    }
                }
                proptest::prop_assert!(
                    booking.cancellation.is_none() || booking.status == Status::Confirmed,
                    "a cancellation request outlived CONFIRMED"
                );
                // The reconciler looks at every booking still waiting on another service, and
                // at nothing that is settled.
                let settled = matches!(booking.status, Status::Confirmed | Status::Refunded) && !booking.restock_due;
                proptest::prop_assert_eq!(booking.awaiting().is_none(), settled, "{:?}", booking.awaiting());
            }
            proptest::prop_assert!(refunds <= 1, "{} refunds requested", refunds);
            proptest::prop_assert_eq!(booking.refund_requested_at.is_some(), refunds == 1);
        }
    }

    #[test]
    fn a_booking_waits_for_its_payment_then_its_seats_then_its_refund() {
        let payment = uuid::Uuid::now_v7();
        let mut booking = pending();
        assert_eq!(booking.awaiting(), Some(Awaited::Payment));
        booking.confirm(payment, Utc::now()).unwrap();
        assert_eq!(booking.awaiting(), None);
        booking.request_refund(Reason::UserRequested, "ill", true).unwrap();
        assert_eq!(booking.awaiting(), Some(Awaited::Restock), "the seats first");
        booking.restocked();
        assert_eq!(booking.awaiting(), Some(Awaited::Refund));
        booking.refunded("re_1").unwrap();
        assert_eq!(booking.awaiting(), None);

        let mut expired = pending();
        expired.expire().unwrap();
        assert_eq!(expired.awaiting(), Some(Awaited::LatePayment), "a payment may still land");
        expired.refund_late_payment(payment).unwrap();
        assert_eq!(expired.awaiting(), Some(Awaited::Refund));
        assert_eq!(expired.refund_request_id(payment), expired.refund_request_id(payment));
        assert_ne!(expired.refund_request_id(payment), booking.refund_request_id(payment));
    }

    #[test]
    fn every_state_is_reachable_and_the_final_ones_stay() {
        let payment = uuid::Uuid::now_v7();
        let mut refunded = pending();
        refunded.confirm(payment, Utc::now()).unwrap();
        let request = CancellationRequest { at: Utc::now(), by: refunded.user_id, forced: false, detail: "x".into() };
        refunded.request_cancellation(request).unwrap();
        assert_eq!(refunded.status, Status::Confirmed, "asking is not yet cancelling");
        refunded.request_refund(Reason::UserRequested, "x", true).unwrap();
        assert_eq!((refunded.status, refunded.cancellation.is_none()), (Status::RefundPending, true));
        refunded.refunded("re_1").unwrap();
        let mut expired = pending();
        expired.expire().unwrap();
        let mut cancelled = pending();
        cancelled.cancel(Reason::PaymentFailed, None, "declined").unwrap();
        for mut done in [refunded, expired, cancelled] {
            let status = done.status;
            assert!(
                done.confirm(payment, Utc::now()).is_err() && done.expire().is_err() && done.refunded("r").is_err()
            );
            assert_eq!(done.status, status);
        }
    }
}
