//! Booking's domain: bookings, their states and legal transitions, and its errors.

pub mod booking;
pub mod error;
pub mod policy;

pub use booking::{Awaited, Booking, CancellationRequest, LineItem, Reason, Status, Transition};
pub use error::BookingError;
pub use policy::CancellationTerms;
