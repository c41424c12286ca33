//! The bookings payment knows of (a projection of `booking.events`) and when one may
//! be charged.

use chrono::{DateTime, Utc};

use super::{Money, PaymentError};

/// A booking's state as far as payment has heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    /// Created, awaiting payment: the only state a charge is accepted in.
    PendingPayment,
    /// Paid and its seats sold.
    Confirmed,
    /// Cancelled before payment.
    Cancelled,
    /// Its hold expired before payment.
    Expired,
    /// Paid, then refunded.
    Refunded,
}

impl BookingStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::PendingPayment, Self::Confirmed, Self::Cancelled, Self::Expired, Self::Refunded]
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// How far along the booking's life the state is. Events can arrive in any order;
    /// the projection only ever moves forward, so a late BookingCreated cannot reopen a
    /// booking that was already cancelled, and a late BookingConfirmed cannot undo a
    /// refund. The first ending of an unpaid booking (cancelled or expired) stays.
    fn rank(self) -> u8 {
        match self {
            Self::PendingPayment => 0,
            Self::Confirmed => 1,
            Self::Cancelled | Self::Expired => 2,
            Self::Refunded => 3,
        }
    }

    /// The state after hearing `next` in this state.
    pub fn advance(self, next: Self) -> Self {
        if next.rank() > self.rank() { next } else { self }
    }
}

/// A booking as payment knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// The booking id.
    pub id: uuid::Uuid,
    /// Its buyer.
    pub user_id: uuid::Uuid,
    /// What payment last heard.
    pub status: BookingStatus,
    /// The total to charge; `None` until BookingCreated has been seen.
    pub total: Option<Money>,
    /// When its hold expires; `None` until BookingCreated has been seen.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Booking {
    /// Whether `caller` may charge `amount` for this booking at `now`.
    pub fn check_chargeable(&self, caller: uuid::Uuid, amount: &Money, now: DateTime<Utc>) -> Result<(), PaymentError> {
        if caller != self.user_id {
            return Err(PaymentError::NotOwner);
        }
        if self.status != BookingStatus::PendingPayment {
            return Err(PaymentError::BookingNotPayable(format!("the booking is {}", self.status.as_str())));
        }
        let (Some(total), Some(expires_at)) = (&self.total, self.expires_at) else {
            return Err(PaymentError::BookingUnknown);
        };
        if now >= expires_at {
            return Err(PaymentError::BookingNotPayable("the booking has expired".into()));
        }
        if amount != total {
            return Err(PaymentError::invalid("amount", format!("must equal the booking's total of {total}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(status: BookingStatus) -> Booking {
        Booking {
            id: uuid::Uuid::new_v4(),
            user_id: uuid::Uuid::from_u128(1),
            status,
            total: Some(Money::parse("EUR", 5000).unwrap()),
            expires_at: Some(Utc::now() + chrono::Duration::minutes(5)),
        }
    }

    #[test]
    fn the_projection_only_moves_forward() {
        use BookingStatus::*;
        assert_eq!(PendingPayment.advance(Confirmed), Confirmed);
        assert_eq!(Cancelled.advance(PendingPayment), Cancelled, "a late BookingCreated reopens nothing");
        assert_eq!(Cancelled.advance(Expired), Cancelled, "the first ending stays");
        assert_eq!(Refunded.advance(Confirmed), Refunded);
        assert_eq!(Expired.advance(Refunded), Refunded, "a late payment's refund is recorded");
        for s in [PendingPayment, Confirmed, Cancelled, Expired, Refunded] {
            assert_eq!(BookingStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn only_the_owner_pays_the_exact_total_of_a_live_pending_booking() {
        let now = Utc::now();
        let owner = uuid::Uuid::from_u128(1);
        let total = Money::parse("EUR", 5000).unwrap();
        assert!(booking(BookingStatus::PendingPayment).check_chargeable(owner, &total, now).is_ok());
        let stranger = booking(BookingStatus::PendingPayment).check_chargeable(uuid::Uuid::from_u128(2), &total, now);
        assert!(matches!(stranger, Err(PaymentError::NotOwner)));
        let wrong = booking(BookingStatus::PendingPayment).check_chargeable(owner, &total.with_minor_units(4999), now);
        assert!(matches!(wrong, Err(PaymentError::Invalid(_))));
        let cancelled = booking(BookingStatus::Cancelled).check_chargeable(owner, &total, now);
        assert!(matches!(cancelled, Err(PaymentError::BookingNotPayable(_))));
        let late =
            booking(BookingStatus::PendingPayment).check_chargeable(owner, &total, now + chrono::Duration::hours(1));
        assert!(matches!(late, Err(PaymentError::BookingNotPayable(_))));
    }
}

/// The projection under `booking.events` delivered in any order, with duplicates.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::BookingStatus::{self, *};

    fn status() -> impl Strategy<Value = BookingStatus> {
        prop_oneof![Just(PendingPayment), Just(Confirmed), Just(Cancelled), Just(Expired), Just(Refunded)]
    }

    proptest! {
        #[test]
        fn any_order_ends_at_the_furthest_state_and_replays_change_nothing(
            events in proptest::collection::vec(status(), 1..30),
        ) {
            let last = events[1..].iter().fold(events[0], |s, &next| s.advance(next));
            let furthest = events.iter().map(|s| s.rank()).max().unwrap();
            prop_assert_eq!(last.rank(), furthest, "{:?}", events);
            if furthest == Cancelled.rank() {
                // The first ending of an unpaid booking stays.
                let first = events.iter().find(|s| s.rank() == furthest).unwrap();
                prop_assert_eq!(last, *first);
            }
            let again = events.iter().fold(last, |s, &next| s.advance(next));
            prop_assert_eq!(again, last, "delivering everything again changes nothing");
        }
    }
}
