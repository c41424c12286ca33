//! Inventory's Kafka side: the catalog events that become stock ([`consume`]) and the hold
//! events it writes to the outbox for `inventory.events` ([`publish`]).

pub mod consume;
pub mod publish;
