//! Payment's Kafka side: the booking events it projects and refunds from ([`consume`]) and
//! the payment and refund outcomes it writes to the outbox for `payment.events` ([`publish`]).

pub mod consume;
pub mod publish;
