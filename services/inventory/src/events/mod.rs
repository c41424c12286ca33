//! Inventory's Kafka side: the catalog events that become stock ([`consume`]).

pub mod consume;
