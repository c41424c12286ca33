//! The catalog's integration tests, against real Postgres and the broker.

mod audit;
mod browse;
mod categories;
mod events;
mod health;
mod helpers;
mod lifecycle;
mod ownership;
mod seat_maps;
mod validation;
