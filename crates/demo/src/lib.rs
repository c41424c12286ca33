//! Demo data for a local run, made through the services' gRPC APIs exactly as clients
//! would make it (no SQL): accounts, venues with seat maps (one a 52,000-seat stadium),
//! past, on-sale and future events, bookings driven into every state of the saga, and a
//! few confirmed bookings' tickets printed as PDFs.
//! [`api`] is shared with the load generator, which sets up its event the same way.

pub mod api;
pub mod plan;
pub mod printed;
pub mod seed;
