//! The identity service: accounts, passwords, access and refresh tokens, roles,
//! and the signing keys every other service verifies tokens with.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod service;
pub mod startup;
pub mod workers;

use sqlx::migrate::Migrator;

/// Identity's own migrations (the platform's are merged in by [`migrator`]).
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Platform plus identity migrations.
pub fn migrator() -> Migrator {
    ticketing_platform::db::migrator(Some(&MIGRATIONS))
}
