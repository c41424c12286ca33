//! Integration tests of the platform crate against the real Postgres and a
//! Kafka-compatible broker (see `ticketing-testkit` for the servers' addresses).
//!
//! Every test isolates itself: its own database, topic namespace, consumer group
//! and ports, so tests run in parallel with each other and with other runs.

mod access;
mod app;
mod auth;
mod consumer;
mod discovery;
mod idempotency;
mod layers;
mod outbox;
mod readiness;
mod redis;
mod support;
mod tls;
