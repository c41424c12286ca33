//! The pre-scaler: learns each event's sale time and expected demand from `catalog.events`,
//! raises the hot services' HPA floors (`minReplicas`) a lead time before the sale, and
//! lowers them after the rush (ADR 0024).

pub mod catalog;
pub mod config;
pub mod controller;
pub mod plan;
pub mod schedule;
pub mod startup;
