//! A Prometheus registry per service, with RED metrics for gRPC methods and HTTP routes.
//!
//! The gRPC layer also opens the request span and adopts the caller's
//! `traceparent`, so every handler runs inside a trace.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use tracing::Instrument;

/// Latency buckets from 250µs to 10s: the hold path is sub-millisecond, payments take seconds.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The service's registry and its request metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    grpc: Arc<Red>,
    http: Arc<Red>,
    /// Outbox rows relayed, by result; shared by every relay of the service.
    pub(crate) outbox_relayed: IntCounterVec,
    /// Consumed messages, by group, topic and outcome; shared by every consumer.
    pub(crate) consumed: IntCounterVec,
}

struct Red {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Red {
    fn new(registry: &Registry, prefix: &str, labels: &[&str]) -> prometheus::Result<Self> {
        let requests =
            IntCounterVec::new(Opts::new(format!("{prefix}_requests_total"), "Requests handled, by outcome."), labels)?;
        let duration = HistogramVec::new(
            HistogramOpts::new(format!("{prefix}_request_duration_seconds"), "Time to handle a request.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &labels[..labels.len() - 1],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }
}

impl Metrics {
    /// A fresh registry whose every metric carries `service="<service>"`.
    pub fn new(service: &str) -> Self {
        let labels = std::collections::HashMap::from([("service".to_owned(), service.to_owned())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("static labels are valid");
        let grpc = Red::new(&registry, "grpc_server", &["method", "code"]).expect("static metric definitions");
        let http =
            Red::new(&registry, "http_server", &["method", "route", "status"]).expect("static metric definitions");
        let outbox_relayed = IntCounterVec::new(
            Opts::new("outbox_relay_messages_total", "Outbox rows the relay tried to publish, by result."),
            &["result"],
        )
        .expect("static metric definition");
        let consumed = IntCounterVec::new(
            Opts::new("kafka_consumer_messages_total", "Consumed messages, by group, topic and outcome."),
            &["group", "topic", "outcome"],
        )
        .expect("static metric definition");
        for collector in [&outbox_relayed, &consumed] {
            registry.register(Box::new(collector.clone())).expect("registered once");
        }
        Self { registry, grpc: Arc::new(grpc), http: Arc::new(http), outbox_relayed, consumed }
    }

    /// The registry, for services to register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers a service-specific collector; panics on a duplicate name, which is a bug.
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(&self, collector: &C) -> C {
        self.registry.register(Box::new(collector.clone())).expect("metric registered once");
        collector.clone()
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }

    /// Records one HTTP request on a matched route.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, started: Instant) {
        let status = status.to_string();
        self.http.requests.with_label_values(&[method, route, &status]).inc();
        self.http.duration.with_label_values(&[method, route]).observe(started.elapsed().as_secs_f64());
    }

    /// A tower layer recording RED metrics and a span for every gRPC call.
    pub fn grpc_layer(&self) -> GrpcTelemetryLayer {
        GrpcTelemetryLayer { metrics: self.clone() }
    }
}

/// Axum middleware recording RED metrics per matched route (unmatched ones as `<unmatched>`).
pub async fn http_metrics(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe_http(&method, &route, response.status().as_u16(), started);
    response
}

/// See [`Metrics::grpc_layer`].
#[derive(Clone)]
pub struct GrpcTelemetryLayer {
    metrics: Metrics,
}

impl<S> tower::Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry { inner, metrics: self.metrics.clone() }
    }
}

/// See [`Metrics::grpc_layer`].
#[derive(Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcTelemetry<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let span =
            tracing::info_span!("grpc.request", rpc.method = %path, rpc.grpc.status_code = tracing::field::Empty);
        crate::telemetry::set_parent_from_headers(&span, request.headers());
        let metrics = self.metrics.clone();
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let result = future.await;
                // Unary errors are trailers-only responses: the status is in the headers.
                // A response without it started successfully.
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                    Err(_) => tonic::Code::Internal,
                };
                tracing::Span::current().record("rpc.grpc.status_code", code as i32);
                // Unknown paths come from the client; keep them out of label values.
                let method = if code == tonic::Code::Unimplemented { "<unknown>" } else { path.as_str() };
                let code_label = format!("{code:?}");
                metrics.grpc.requests.with_label_values(&[method, &code_label]).inc();
                metrics.grpc.duration.with_label_values(&[method]).observe(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_follow_conventions() {
        let metrics = Metrics::new("test");
        metrics.observe_http("GET", "/v1/events", 200, Instant::now());
        let text = metrics.render();
        assert!(
            text.contains(
                r#"http_server_requests_total{method="GET",route="/v1/events",status="200",service="test"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("http_server_request_duration_seconds_bucket"), "{text}");
    }
}
