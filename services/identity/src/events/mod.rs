//! Identity's Kafka side: [`publish`] builds what it writes to the outbox for
//! `identity.events`, and [`consume`] keeps the audit log from `audit.events`.

pub mod consume;
pub mod publish;
