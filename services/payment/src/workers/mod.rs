//! Payment's background jobs: each replica runs every one of them.

pub mod reconciler;
