//! Liveness and readiness on the public port too: cloud load balancers (a GKE Ingress, an
//! ALB) probe the port they send traffic to. `/metrics` stays on the admin port only, out
//! of the internet's reach. These answer outside rate limits and load shedding, so a busy
//! gateway is not taken out of rotation for being busy.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: every dependency check passes and the gateway is not draining.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready: each check's result", body = Object),
              (status = 503, description = "Not ready or draining", body = Object)))]
async fn readyz(State(s): State<AppState>) -> (StatusCode, axum::Json<serde_json::Value>) {
    ticketing_platform::admin::readiness_report(&s.readiness)
}
