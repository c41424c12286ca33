//! Inventory's integration tests, against real Postgres, Redis and the broker.

mod availability;
mod batches;
mod coalescing;
mod contention;
mod helpers;
mod holds;
mod metrics;
mod postgres_outage;
mod properties;
mod redis_outage;
mod redis_state;
