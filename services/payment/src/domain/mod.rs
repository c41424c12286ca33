//! Payment's domain: the booking projection's rules, payments and refunds with
//! their state machines, and the errors of the use cases. No I/O.

pub mod booking;
pub mod error;
pub mod payment;

pub use booking::{Booking, BookingStatus};
pub use error::PaymentError;
// Amounts are the kernel's: one rule for currencies across the platform.
pub use payment::{Applied, ChargeAction, Outcome, Payment, PaymentStatus, Refund, RefundStatus};
pub use ticketing_kernel::money::Money;
