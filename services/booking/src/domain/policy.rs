//! An event's cancellation terms, as booking enforces them for buyers.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::BookingError;

/// Until when the buyers of an event may cancel a paid booking (catalog owns the policy;
/// admins refund by hand whatever it says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancellationTerms {
    /// The event's start.
    pub starts_at: DateTime<Utc>,
    /// How long before the start buyer cancellation closes; `None`: never open.
    pub cutoff: Option<Duration>,
}

impl CancellationTerms {
    /// Whether a buyer may cancel at `now`; once the event has started, never.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), BookingError> {
        let Some(cutoff) = self.cutoff else {
            return Err(BookingError::CancellationClosed(
                "this event's bookings cannot be cancelled by buyers: all sales are final".into(),
            ));
        };
        let until = self.starts_at - cutoff.max(Duration::zero());
        if now >= until {
            let until = until.to_rfc3339_opts(SecondsFormat::Secs, true);
            return Err(BookingError::CancellationClosed(format!(
                "bookings for this event could be cancelled until {until}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(starts_in_hours: i64, cutoff_hours: Option<i64>) -> CancellationTerms {
        CancellationTerms {
            starts_at: Utc::now() + Duration::hours(starts_in_hours),
            cutoff: cutoff_hours.map(Duration::hours),
        }
    }

    #[test]
    fn by_default_buyers_may_cancel_until_the_start_and_never_after() {
        assert!(terms(1, Some(0)).check(Utc::now()).is_ok());
        for started in [terms(0, Some(0)), terms(-3, Some(0))] {
            let error = started.check(Utc::now()).unwrap_err();
            assert!(matches!(error, BookingError::CancellationClosed(_)), "{error:?}");
        }
    }

    #[test]
    fn a_cutoff_closes_cancellation_that_long_before_the_start() {
        assert!(terms(49, Some(48)).check(Utc::now()).is_ok());
        let error = terms(47, Some(48)).check(Utc::now()).unwrap_err();
        assert!(error.to_string().contains("could be cancelled until"), "{error}");
    }

    #[test]
    fn all_sales_final_refuses_every_buyer() {
        let error = terms(24 * 30, None).check(Utc::now()).unwrap_err();
        assert!(error.to_string().contains("all sales are final"), "{error}");
    }
}
