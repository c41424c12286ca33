//! Shared plumbing for every ticketing service: configuration, telemetry,
//! metrics, the gRPC and admin servers with health and graceful shutdown,
//! Postgres (the `postgres` feature), Redis, Kafka (producer, outbox, consumer; the `kafka`
//! feature, which implies `postgres`), token verification and the envelope encryption of
//! stored signing keys (`postgres`).
//!
//! No business types live here.

pub mod access;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod coalesce;
pub mod config;
#[cfg(feature = "postgres")]
pub mod db;
pub mod discovery;
pub mod events;
#[cfg(feature = "postgres")]
pub mod idempotency;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod middleware;
pub mod page;
pub mod peers;
pub mod periodic;
pub mod readiness;
pub mod redis;
#[cfg(feature = "postgres")]
pub mod sealing;
pub mod service_config;
pub mod shutdown;
pub mod status;
pub mod telemetry;

pub use app::{App, Running, ShutdownHandle};
