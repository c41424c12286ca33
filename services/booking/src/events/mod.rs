//! Booking's Kafka side: the saga's consumer ([`consume`]) and the events it writes to the
//! outbox for `booking.events` ([`publish`]).

pub mod consume;
pub mod publish;
