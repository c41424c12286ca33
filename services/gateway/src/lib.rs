//! The gateway: the platform's only public entry point. It speaks REST/JSON (with an
//! OpenAPI 3.1 document and Swagger UI) to clients and gRPC to the six services.

pub mod batches;
pub mod breaker;
pub mod config;
pub mod docs;
pub mod embedded;
pub mod extract;
pub mod graphql;
pub mod http;
pub mod problem;
pub mod ratelimit;
pub mod resilience;
pub mod routes;
pub mod server;
pub mod snapshot;
pub mod startup;
pub mod state;
pub mod waiting_room;
