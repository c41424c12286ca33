//! The payment service: charges a booking at most once (a unique constraint, Stripe-style
//! idempotency keys, provider idempotency keys and reconciliation of unknown outcomes),
//! refunds in full or in part, and authenticates provider webhooks.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod ports;
pub mod service;
pub mod startup;
pub mod workers;

use sqlx::migrate::Migrator;

/// Payment's own migrations (the platform's are merged in by [`migrator`]).
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Platform plus payment migrations.
pub fn migrator() -> Migrator {
    ticketing_platform::db::migrator(Some(&MIGRATIONS))
}
