//! Identity's background jobs: each replica runs every one of them.

pub mod audit_retention;
pub mod key_reload;
