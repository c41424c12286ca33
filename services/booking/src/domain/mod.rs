//! Booking's domain: bookings, their states and legal transitions, sales reports, and its
//! errors.

pub mod booking;
pub mod error;
pub mod policy;
pub mod sales;

pub use booking::{Awaited, Booking, CancellationRequest, LineItem, Reason, Status, Transition};
pub use error::BookingError;
pub use policy::CancellationTerms;
