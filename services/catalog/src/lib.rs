//! The catalog service: venues and their seat maps, events, ticket categories and prices,
//! and the event lifecycle, announced on `catalog.events`.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod service;
pub mod startup;
pub mod workers;

use sqlx::migrate::Migrator;

/// The catalog's own migrations (the platform's are merged in by [`migrator`]).
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Platform plus catalog migrations.
pub fn migrator() -> Migrator {
    ticketing_platform::db::migrator(Some(&MIGRATIONS))
}
