//! The public HTTP server: the API routes, `/openapi.json`, Swagger UI at `/docs`, GraphiQL,
//! and the layers every request passes (request ids, security headers, CORS, body
//! limit and deadline, load shedding, RED metrics).

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use ticketing_platform::middleware::{Around, Finish, Hook};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::GatewaySettings;
use crate::problem::Problem;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The API answers JSON only: nothing may be framed, run or loaded from it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// Swagger UI's own assets, served from here (vendored), never from a CDN.
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";
/// GraphiQL's: the docs' policy, and the fonts its stylesheet inlines.
pub const GRAPHIQL_CSP: &str = "default-src 'self'; img-src 'self' data:; font-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";

/// The whole public router, with its state applied.
pub fn router(
    state: AppState,
    settings: &GatewaySettings,
    metrics: ticketing_platform::metrics::Metrics,
    limiter: Option<RateLimiter>,
) -> Router {
    let (api, mut openapi) = crate::routes::api(settings);
    let (probes, probes_doc) = crate::routes::operations::routes().split_for_parts();
    openapi.merge(probes_doc);
    let docs = Router::new()
        .merge(crate::docs::router(&openapi))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP)))
        .merge(crate::graphql::graphiql::assets().layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(GRAPHIQL_CSP),
        )));
    let api = api
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", "")
        })
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .with_state(state.clone());

    let retry_after = state.retry_after;
    // One stack, applied once: each `Router::layer` boxes every route again, and axum clones
    // a route's whole service for every request, so twelve layers applied one by one cost
    // twelve boxed clones per request (a sixth of the gateway's CPU in the profile of
    // docs/benchmarks.md). For the same reason the layers that work before and after the
    // route are `Around` hooks, not `from_fn`, which clones and boxes what is inside it for
    // every request. Outermost first.
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // Inside the request id; outside the request log, so its lines carry the trace id.
        .layer(ticketing_platform::telemetry::http_layer("gateway"))
        .layer(Around::new(LogRequest))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ))
        .layer(cors(&settings.cors_origins))
        // Enforced by the body extractors, which answer 413 as a problem document.
        .layer(axum::extract::DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(HandleErrorLayer::new(move |_: tower::BoxError| async move {
            Problem::unavailable("the gateway is at capacity; retry shortly", retry_after)
        }))
        .load_shed()
        .concurrency_limit(settings.max_concurrency)
        .layer(metrics.http_layer())
        // Once per request, for the limits and for identity's login throttle.
        .layer(crate::extract::IdentifyClient::layer(settings.rate_limits.trusted_proxy_hops))
        .layer(Around::new(crate::server::BodyDeadline(settings.body_read_timeout)))
        // Inside the metrics, so refusals show in them; inside the shedding, which is cheaper.
        .option_layer(limiter);
    Router::new()
        .merge(docs)
        .merge(api)
        .layer(stack)
        // After the layers: probes are neither limited nor shed.
        .merge(probes.with_state(state))
}

fn cors(origins: &[String]) -> CorsLayer {
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// Logs each request with its request id (debug: an on-sale is millions of lines), and
/// the cause of a server error, which its answer does not tell the client.
#[derive(Clone, Copy)]
struct LogRequest;

/// A request to log once answered. Shared handles, not copies: this runs for every request,
/// logged or not.
struct Logged {
    started: std::time::Instant,
    id: Option<HeaderValue>,
    method: Method,
    uri: axum::http::Uri,
}

impl Hook for LogRequest {
    type Pending = Logged;

    fn before(&self, request: &mut axum::extract::Request) -> Logged {
        Logged {
            started: std::time::Instant::now(),
            id: request.headers().get(&REQUEST_ID).cloned(),
            method: request.method().clone(),
            uri: request.uri().clone(),
        }
    }
}

impl Finish for Logged {
    fn finish(self, response: &mut axum::response::Response) {
        let status = response.status().as_u16();
        let id = self.id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
        let (method, path, elapsed_ms) = (&self.method, self.uri.path(), self.started.elapsed().as_millis() as u64);
        if status >= 500 {
            crate::problem::conceal(id, response);
            tracing::warn!(request_id = id, %method, path, status, elapsed_ms, "request");
        } else {
            tracing::debug!(request_id = id, %method, path, status, elapsed_ms, "request");
        }
    }
}
