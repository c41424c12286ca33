//! The catalog's adapters: its Postgres tables and the database's time-zone list.

pub mod categories;
pub mod events;
pub mod seat_maps;
pub mod time_zones;
pub mod venues;
