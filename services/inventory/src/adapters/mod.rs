//! Inventory's adapters: the Redis hot path and the Postgres ledger.

pub mod ledger;
pub mod stock;
