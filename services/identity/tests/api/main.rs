//! Identity's integration tests, against real Postgres, Redis and the broker.

mod account;
mod accounts;
mod audit;
mod events;
mod helpers;
mod oidc;
mod redis_outage;
mod roles;
mod sealing;
mod throttle;
mod tokens;
mod verification;
