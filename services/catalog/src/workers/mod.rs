//! The catalog's background jobs: each replica runs every one of them.

pub mod sale_scheduler;
