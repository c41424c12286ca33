//! The gateway's router tests: the real gateway in front of fake backends (tonic servers on
//! loopback) and a Redis key prefix of its own, so that what the edge decides (problems,
//! refusals, the waiting room, deadlines) is tested in milliseconds, without the platform.

mod batches;
mod edge;
mod fakes;
mod graphql;
mod harness;
mod refusals;
mod waiting_room;
