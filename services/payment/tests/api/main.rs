//! Payment's integration tests, against real Postgres and the broker, with a fake
//! processor API for the HTTP adapter.

mod bookings;
mod charges;
mod concurrency;
mod fake_processor;
mod helpers;
mod processor;
mod reconcile;
mod refunds;
