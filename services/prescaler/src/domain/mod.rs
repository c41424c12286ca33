//! What the pre-scaler knows and decides, pure: the [`schedule`] of sales folded from
//! `catalog.events`, and the [`plan`] from it to each HPA's floor.

pub mod plan;
pub mod schedule;
