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
        .layer(axum::middleware::from_fn_with_state(metrics, crate::metrics::http_metrics))
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    readiness_report(&state.readiness).await
}

/// The `/readyz` answer: 200 when every check passes and the service is not draining, else
/// 503, with each check's result. The gateway serves it on its public port as well.
pub async fn readiness_report(readiness: &Readiness) -> (StatusCode, axum::Json<serde_json::Value>) {
    // Checks run on every probe so the answer is current; they are cheap pings.
    let report = readiness.run().await;
    let body = serde_json::json!({
        "ready": report.is_ready(),
        "draining": report.draining,
        "checks": report.checks.iter().map(|(name, failure)| serde_json::json!({
            "name": name,
            "ok": failure.is_none(),
            "error": failure,
        })).collect::<Vec<_>>(),
    });
    let status = if report.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body))
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render())
}
