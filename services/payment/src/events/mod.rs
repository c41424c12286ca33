//! Payment's Kafka side: the booking events it projects and refunds from ([`consume`]).

pub mod consume;
