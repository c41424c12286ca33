//! The catalog's Kafka side: it consumes nothing, and [`publish`] builds what it writes to
//! the outbox for `catalog.events`.

pub mod publish;
