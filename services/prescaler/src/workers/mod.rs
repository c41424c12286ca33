//! The pre-scaler's background job: the HPA controller.

pub mod controller;
