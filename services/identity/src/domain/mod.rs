//! Identity's domain: pure types and rules, no I/O.

pub mod audit;
pub mod email;
pub mod error;
pub mod password;
pub mod throttle;
pub mod user;

pub use error::{FieldViolation, IdentityError};
