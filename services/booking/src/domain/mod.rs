//! Booking's domain: bookings, their states and legal transitions, and its errors.

pub mod booking;
pub mod error;

pub use booking::{Booking, LineItem, Status};
pub use error::BookingError;
