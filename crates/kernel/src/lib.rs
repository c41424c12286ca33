//! The platform's shared vocabulary: one rule each for instants on the wire ([`time`]),
//! money ([`money`]) and idempotency keys ([`idempotency`]). Every service and the gateway
//! apply these, so a value one of them accepts is never refused, clamped or read otherwise
//! by the next. Pure: no I/O, no plumbing (that is `ticketing-platform`).

pub mod idempotency;
pub mod money;
pub mod time;
