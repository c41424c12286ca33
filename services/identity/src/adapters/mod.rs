//! Identity's adapters: Postgres (users, email verifications, signing keys), Redis (refresh tokens,
//! login throttling) and the password hasher.

pub mod audit;
pub mod hasher;
pub mod keys;
pub mod oidc;
pub mod refresh;
pub mod throttle;
pub mod users;
pub mod verifications;
