//! The inventory service: the on-sale hot path. Holds live in Redis (one atomic Lua
//! script per operation), sales in a Postgres ledger that is the final arbiter, so
//! no seat or ticket is ever sold twice.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod workers;

use sqlx::migrate::Migrator;

/// Inventory's own migrations (the platform's are merged in by [`migrator`]).
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Platform plus inventory migrations.
pub fn migrator() -> Migrator {
    ticketing_platform::db::migrator(Some(&MIGRATIONS))
}
