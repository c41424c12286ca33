//! Payment's adapters: its Postgres tables, and the two providers.

pub mod processor;
pub mod simulated;
pub mod store;
