//! The purchase saga across identity, catalog, inventory, booking, payment and
//! notification, in-process, against the real Postgres, Redis, broker and an SMTP
//! server: hold → booking → payment → confirmation → tickets, and every way it can
//! go wrong.

mod edge;
mod gateway;
mod http;
mod limits;
mod platform;
mod proxy;
mod rbac;
mod reconciler;
mod refunds;
mod registration;
mod restarts;
mod scenarios;
mod seams;
mod tracing;
mod waiting_room;
