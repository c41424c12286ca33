//! Inventory's adapters: the Redis hot path (with its hold coalescer) and the Postgres ledger.

pub mod coalesce;
pub mod ledger;
pub mod stock;
