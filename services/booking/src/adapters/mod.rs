//! Booking's adapters: its Postgres store and its peers (inventory, catalog).

pub mod peers;
pub mod store;
