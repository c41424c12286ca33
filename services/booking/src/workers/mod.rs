//! Booking's background jobs: each replica runs every one of them.

pub mod cancellation_sweeper;
pub mod reconciler;
