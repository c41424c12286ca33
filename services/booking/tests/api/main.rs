//! Booking's service tests: its real gRPC API (use cases, idempotency keys, token checks) on
//! a database of its own, in front of fake peers (tonic servers on loopback), so that its
//! edge cases (bad input, foreign holds, peers failing, replays, who sees and cancels what)
//! are tested in milliseconds, without the platform.

mod cancellation;
mod create;
mod fakes;
mod harness;
mod idempotency;
mod outages;
mod reports;
mod validation;
mod visibility;
