//! Identity's Kafka side: it consumes nothing, and [`publish`] builds what it writes to the
//! outbox for `identity.events`.

pub mod publish;
