//! Notification's domain: pure types and rules, no I/O.

pub mod code;
pub mod delivery;
pub mod error;
pub mod rotating;
pub mod ticket;

pub use delivery::{Delivery, DeliveryStatus, RetryPolicy, Template};
pub use error::NotificationError;
pub use ticket::{Ticket, TicketStatus, Verification};
