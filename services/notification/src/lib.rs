//! The notification service: emails sent at most once per consumed event (a delivery
//! log with a unique key, drained by a retrying dispatcher), Ed25519-signed QR tickets,
//! and check-in that admits each ticket once.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod service;
pub mod startup;
pub mod workers;

use sqlx::migrate::Migrator;

/// Notification's own migrations (the platform's are merged in by [`migrator`]).
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Platform plus notification migrations.
pub fn migrator() -> Migrator {
    ticketing_platform::db::migrator(Some(&MIGRATIONS))
}
