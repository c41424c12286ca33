//! Finishes the cancellations asked for more than `booking.cancellation_sweep_after` ago and
//! still under way (their replica died between the request and the revocation, or
//! notification was down).

use chrono::Utc;
use ticketing_platform::periodic::Job;

use crate::adapters::store;
use crate::domain::BookingError;
use crate::service::Bookings;

/// The sweeper of one replica.
pub struct CancellationSweeper {
    bookings: Bookings,
    after: std::time::Duration,
    age: chrono::Duration,
}

impl CancellationSweeper {
    /// Sweeps `bookings`' cancellations older than `after`.
    pub fn new(bookings: Bookings, after: std::time::Duration) -> anyhow::Result<Self> {
        Ok(Self { bookings, after, age: chrono::Duration::from_std(after)? })
    }

    /// How far apart its rounds are: a third of the age a cancellation must reach.
    pub fn interval(&self) -> std::time::Duration {
        self.after / 3
    }
}

impl Job for CancellationSweeper {
    async fn round(&mut self) {
        match store::stalled_cancellations(&self.bookings.pool, Utc::now() - self.age, 50).await {
            Ok(stalled) => {
                for id in stalled {
                    match self.bookings.finish_cancellation(id, None).await {
                        Ok(_) | Err(BookingError::TicketScanned) => {}
                        Err(e) => tracing::warn!(booking = %id, error = %e, "finishing a cancellation failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "looking for stalled cancellations failed"),
        }
    }
}
