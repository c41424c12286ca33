//! The whole platform in one process (identity, catalog, inventory, booking, payment,
//! notification and the gateway) against the real Postgres, Redis, broker and an SMTP
//! server: the purchase saga (hold → booking → payment → confirmation → tickets) and every
//! way it can go wrong, the public HTTP API and its edge (limits, the waiting room, RBAC,
//! the OpenAPI contract, GraphQL), reconciliation, restarts and tracing across the services. The
//! real binaries' own suite is `binaries`; crash faults under load are `faults`.

mod account;
mod audit;
mod edge;
mod gateway;
mod graphql;
mod harness;
mod http;
mod limits;
mod oidc;
mod printed;
mod proxy;
mod rbac;
mod reconciler;
mod refunds;
mod registration;
mod reports;
mod restarts;
mod scenarios;
mod seams;
mod tracing;
mod waiting_room;
