//! Inventory's domain: holds, their life cycle, selections and errors. No I/O.

pub mod error;
pub mod hold;

pub use error::InventoryError;
pub use hold::{Hold, HoldId, HoldLine, HoldStatus, Selection};
