//! The admin HTTP server: `/healthz` (liveness), `/readyz` (readiness) and `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::readiness::Readiness;

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The admin routes, merged with the service's own `extra` routes (e.g. a JWKS).
pub fn router(metrics: Metrics, readiness: Readiness, extra: Router) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics: metrics.clone(), readiness })
        .merge(extra)
        .layer(metrics.http_layer())
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    readiness_report(&state.readiness)
}

/// The `/readyz` answer: 200 when the service is ready and not draining, else 503, with
/// each check's latest result. It reads the verdict of the last round of checks (run every
/// `server.readiness_interval`), so probes add no load to the dependencies, and never wait
/// on a busy pool. The gateway serves it on its public port as well.
pub fn readiness_report(readiness: &Readiness) -> (StatusCode, axum::Json<serde_json::Value>) {
    let report = readiness.latest();
    let body = serde_json::json!({
        "ready": report.is_ready(),
        "draining": report.draining,
        "checks": report.checks.iter().map(|c| serde_json::json!({
            "name": c.name,
            "ok": c.failure.is_none(),
            "error": c.failure,
            "gates": c.gates,
            "consecutive_failures": c.consecutive_failures,
        })).collect::<Vec<_>>(),
    });
    let status = if report.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body))
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render())
}
