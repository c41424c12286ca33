//! The pre-scaler's Kafka side: it publishes nothing, and [`consume`] reads `catalog.events`
//! into the schedule.

pub mod consume;
