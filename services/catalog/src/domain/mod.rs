//! The catalog's domain: pure types, rules and validation, no I/O.

pub mod access;
pub mod category;
pub mod error;
pub mod event;
pub mod page;
pub mod search;
pub mod seat_map;
pub mod text;
pub mod venue;

pub use error::{CatalogError, FieldViolation, Violations};
