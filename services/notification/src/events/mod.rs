//! Notification's Kafka side: it publishes nothing, and [`consume`] is what its consumer
//! groups make of the events they read.

pub mod consume;
