//! The pre-scaler: learns each event's sale time and expected demand from `catalog.events`,
//! raises the hot services' HPA floors (`minReplicas`) a lead time before the sale, and
//! lowers them after the rush (ADR 0024).

pub mod config;
pub mod domain;
pub mod events;
pub mod startup;
pub mod workers;
