//! The booking service: bookings made from holds, priced from the catalog, and the
//! purchase saga that pays, confirms, cancels, expires and refunds them.

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

/// Booking's own migrations (the platform's are merged in by [`migrator`]).
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Platform plus booking migrations.
pub fn migrator() -> Migrator {
    ticketing_platform::db::migrator(Some(&MIGRATIONS))
}
