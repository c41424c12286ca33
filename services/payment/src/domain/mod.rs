//! Payment's domain: money, the booking projection's rules, payments and refunds with
//! their state machines, and the errors of the use cases. No I/O.

pub mod booking;
pub mod error;
pub mod money;
pub mod payment;

pub use booking::{Booking, BookingStatus};
pub use error::PaymentError;
pub use money::Money;
pub use payment::{Applied, ChargeAction, Outcome, Payment, PaymentStatus, Refund, RefundStatus};
