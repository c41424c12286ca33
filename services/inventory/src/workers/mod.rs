//! Inventory's background jobs: each replica runs every one of them.

pub mod reaper;
