//! Logs, traces and W3C trace-context propagation.
//!
//! Logs are JSON (or human-readable) with an `EnvFilter`; JSON lines logged inside a
//! span carry its `trace_id` and `span_id`. Every span is an OpenTelemetry span, so
//! trace ids exist, propagate and reach the logs whether or not they are exported;
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set they are also exported over OTLP/gRPC.
//! `traceparent` travels in gRPC metadata ([`Traced`] on the client, the platform's
//! server layer on the server) and Kafka headers; the helpers here inject and extract it.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, Validate};

/// Default of `telemetry.metrics_interval`.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(10);
/// Default of `telemetry.max_event_series`.
pub const DEFAULT_MAX_EVENT_SERIES: usize = 50;

/// Log filtering. Traces go to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive; `RUST_LOG` overrides it when set.
    pub log_filter: String,
    /// JSON logs (production) or human-readable ones (a developer's terminal).
    pub log_json: bool,
    /// How often gauges of shared state (outbox backlog, consumer lag, pool, seats) are sampled.
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
    /// Most events with per-event series (`event_id` label) per process; see
    /// `docs/observability.md`. Further events count under `event_id="_other"`.
    pub max_event_series: usize,
    /// Share of the traces that start in this service that are recorded (0 to 1); a trace
    /// that arrives keeps its caller's decision.
    pub trace_sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: "info".into(),
            log_json: true,
            metrics_interval: DEFAULT_METRICS_INTERVAL,
            max_event_series: DEFAULT_MAX_EVENT_SERIES,
            trace_sample_ratio: 1.0,
        }
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_filter) {
            issues.push(ConfigIssue::new("telemetry.log_filter", e.to_string()));
        }
        if self.metrics_interval < Duration::from_millis(100) || self.metrics_interval > Duration::from_secs(300) {
            issues.push(ConfigIssue::new("telemetry.metrics_interval", "must be between 100ms and 5m"));
        }
        if self.max_event_series > 10_000 {
            issues.push(ConfigIssue::new("telemetry.max_event_series", "must be at most 10,000"));
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            issues.push(ConfigIssue::new("telemetry.trace_sample_ratio", "must be between 0 and 1"));
        }
    }
}

/// The instrumentation scope of every span the services make.
const SCOPE: &str = "ticketing";

/// Keeps the trace exporter alive; dropping it flushes pending spans.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown failed: {e}");
        }
    }
}

/// Installs the global subscriber and propagator for `service`.
///
/// Safe to call more than once (tests spawn many services in one process):
/// later calls keep the first subscriber.
pub fn init(service: &'static str, config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log_filter))?;
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and _TIMEOUT, _HEADERS) itself.
    let export = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|endpoint| !endpoint.is_empty());
    let export = if export { Export::FromEnv } else { Export::Nowhere };
    let provider = tracer_provider(service, export, config.trace_sample_ratio)?;
    opentelemetry::global::set_tracer_provider(provider.clone());

    // `try_init` fails only when a subscriber is already installed.
    let _ = subscriber(filter, config.log_json, &provider, std::io::stdout).try_init();
    Ok(TelemetryGuard { provider: Some(provider) })
}

/// Where a [`tracer_provider`] sends its spans.
#[derive(Debug, Clone, Copy)]
pub enum Export<'a> {
    /// Nowhere: spans exist for their ids only, which propagate and reach the logs.
    Nowhere,
    /// Over OTLP/gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT`.
    FromEnv,
    /// Over OTLP/gRPC to this endpoint (a test's collector).
    To(&'a str),
}

/// The tracer provider of `service`'s spans, with the resource `service.name=<service>`.
/// A trace that starts here is recorded with probability `sample_ratio` (by its trace id,
/// so every service keeps or drops the same traces); one that arrives keeps its parent's
/// decision. Unsampled spans still carry ids for propagation and logs, but are neither
/// recorded nor exported. Export runs in batches on a thread of its own; build the
/// provider inside a Tokio runtime, which the gRPC exporter's connection lives on.
pub fn tracer_provider(service: &str, export: Export<'_>, sample_ratio: f64) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::trace::Sampler;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(sample_ratio)));
    let provider = SdkTracerProvider::builder().with_resource(resource).with_sampler(sampler);
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    let provider = match export {
        Export::Nowhere => provider,
        Export::FromEnv => provider.with_batch_exporter(exporter.build()?),
        Export::To(endpoint) => provider.with_batch_exporter(exporter.with_endpoint(endpoint).build()?),
    };
    Ok(provider.build())
}

/// The subscriber every service runs: `filter`, then logs to `writer` (JSON lines with
/// `trace_id` and `span_id`, or compact text) and spans to `provider`.
/// [`init`] installs it globally; tests may scope it to their own threads.
pub fn subscriber<W>(
    filter: EnvFilter,
    json: bool,
    provider: &SdkTracerProvider,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + for<'a> LookupSpan<'a> + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (json, compact) = if json {
        let format =
            tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(true).with_span_list(false);
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(WithTraceIds(format))
            .with_writer(writer);
        (Some(layer), None)
    } else {
        (None, Some(tracing_subscriber::fmt::layer().compact().with_writer(writer)))
    };
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(SCOPE)).with_threads(false);
    tracing_subscriber::registry().with(filter).with(otel).with(json).with(compact)
}

/// Formats an event with the JSON format `F`, adding the `trace_id` and `span_id` of the
/// span it happened in, so a log line leads to its trace.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx.parent_span().and_then(|span| {
            let extensions = span.extensions();
            let data = extensions.get::<tracing_opentelemetry::OtelData>()?;
            Some((data.trace_id()?, data.span_id()?))
        });
        let Some((trace_id, span_id)) = ids.filter(|(trace_id, _)| *trace_id != TraceId::INVALID) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // One JSON object per line: add the ids before its closing brace.
        match line.trim_end().strip_suffix('}') {
            Some(object) => writeln!(writer, r#"{object},"trace_id":"{trace_id}","span_id":"{span_id}"}}"#),
            None => writer.write_str(&line),
        }
    }
}

/// The `traceparent` of the current span, or `None` outside a trace.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` naming `span` as the parent, or `None` when it is in no trace (it is
/// disabled, or no subscriber makes OpenTelemetry spans).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `traceparent` the remote parent of `span`. Invalid input is ignored.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    // Fails only when the span is already closed; nothing to link then.
    let _ = span.set_parent(cx);
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut MetadataInjector(metadata));
}

/// Makes the trace context in incoming HTTP/gRPC headers the parent of `span`.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}

/// Links `span` to the trace context in incoming HTTP headers, if a valid one came; the span
/// stays the root of a trace of its own.
pub fn link_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    span.add_link(cx.span().span_context().clone());
}

/// Writes `span`'s trace context into outgoing HTTP/gRPC headers.
pub fn inject_headers(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// The HTTP layer of a public API: a server span per request, named for its route,
/// carrying `service` as `service.name`. It starts a trace of its own, *linked* to the
/// client's `traceparent` if one came (an OpenTelemetry span link): a client's trace context
/// is its own word, and joining it would let any client choose our trace ids, the sampling
/// decision (every request recorded) and the parent of our spans.
pub fn http_layer(service: &'static str) -> crate::middleware::Around<TraceHttp> {
    crate::middleware::Around::new(TraceHttp { service })
}

/// See [`http_layer`].
#[derive(Clone, Copy)]
pub struct TraceHttp {
    service: &'static str,
}

/// A request's span, until its answer.
pub struct HttpSpan(tracing::Span);

impl crate::middleware::Hook for TraceHttp {
    type Pending = HttpSpan;

    fn before(&self, request: &mut axum::extract::Request) -> HttpSpan {
        let method = request.method().as_str();
        let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("<unmatched>", |p| p.as_str());
        let span = tracing::info_span!(
            "http.request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            service.name = self.service,
            http.request.method = method,
            http.route = route,
            url.path = request.uri().path(),
            request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default(),
            http.response.status_code = tracing::field::Empty,
        );
        // Not for a span nobody records: the extraction parses headers on every request.
        if !span.is_disabled() {
            link_from_headers(&span, request.headers());
        }
        HttpSpan(span)
    }
}

impl crate::middleware::Finish for HttpSpan {
    fn span(&self) -> Option<&tracing::Span> {
        Some(&self.0)
    }

    fn finish(self, response: &mut axum::response::Response) {
        let status = response.status();
        self.0.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            self.0.record("otel.status_code", "error");
        }
    }
}

/// A gRPC client's transport (a `Channel`, or a stack over one) that opens a client
/// span per call and sends its context as `traceparent`, so the server's span is its
/// child: `InventoryClient::new(Traced::new(channel))`.
#[derive(Clone, Debug)]
pub struct Traced<S> {
    inner: S,
}

impl<S> Traced<S> {
    /// Traces the calls made through `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = path.trim_start_matches('/'),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.method = path,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        inject_headers(&span, request.headers_mut());
        let future = self.inner.call(request);
        let outcome = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                let code = response_code(&result, tonic::Code::Unavailable);
                outcome.record("rpc.grpc.status_code", code as i32);
                if code != tonic::Code::Ok {
                    outcome.record("otel.status_code", "error");
                }
                result
            }
            .instrument(span),
        )
    }
}

/// A unary call's gRPC status: unary errors are trailers-only responses, so the status is in
/// the headers, and a response without it started successfully; `failed` when no response came.
pub(crate) fn response_code<B, E>(result: &Result<http::Response<B>, E>, failed: tonic::Code) -> tonic::Code {
    match result {
        Ok(response) => response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map_or(tonic::Code::Ok, tonic::Code::from_i32),
        Err(_) => failed,
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::try_from(value.as_str()))
        {
            self.0.insert(key, value);
        }
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn json_log_lines_carry_the_trace_and_span_ids() {
        let provider = tracer_provider("test", Export::Nowhere, 1.0).unwrap();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(EnvFilter::new("info"), true, &provider, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("work", order = 7);
            set_parent_from_traceparent(&span, PARENT);
            let _entered = span.enter();
            tracing::info!(seats = 2, "inside");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].get("trace_id").is_none(), "{text}");
        assert_eq!(lines[1]["message"], "inside");
        assert_eq!(lines[1]["seats"], 2);
        assert_eq!(lines[1]["span"]["order"], 7);
        assert_eq!(lines[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{text}");
        let span_id = lines[1]["span_id"].as_str().unwrap();
        assert!(span_id.len() == 16 && span_id != "00f067aa0ba902b7", "the span's own id: {text}");
    }

    /// The `traceparent` a traced client sends from a handler span under `parent`, with
    /// `sample_ratio`, split into its fields.
    async fn traceparent_sent(sample_ratio: f64, parent: Option<&str>) -> Vec<String> {
        let provider = tracer_provider("test", Export::Nowhere, sample_ratio).unwrap();
        let _default =
            tracing::subscriber::set_default(subscriber(EnvFilter::new("info"), true, &provider, std::io::sink));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = seen.clone();
        let mut client = Traced::new(tower::service_fn(move |request: http::Request<()>| {
            *record.lock().unwrap() = request.headers().get("traceparent").cloned();
            async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
        }));
        let handler = tracing::info_span!("handler");
        if let Some(parent) = parent {
            set_parent_from_traceparent(&handler, parent);
        }
        let call = http::Request::builder().uri("/ticketing.inventory.v1.Inventory/GetHold").body(()).unwrap();
        tower::ServiceExt::oneshot(&mut client, call).instrument(handler).await.unwrap();
        let sent = seen.lock().unwrap().clone().expect("a traceparent header");
        sent.to_str().unwrap().split('-').map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn traced_clients_send_their_call_span_as_traceparent() {
        let parts = traceparent_sent(1.0, Some(PARENT)).await;
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace");
        assert_ne!(parts[2], "00f067aa0ba902b7", "the client span's own id, not the caller's");
    }

    #[tokio::test]
    async fn traces_are_sampled_at_their_root_by_the_ratio_and_keep_the_callers_decision() {
        let unsampled_parent = PARENT.replace("-01", "-00");
        assert_eq!(traceparent_sent(0.0, None).await[3], "00", "ratio 0: a new trace is not recorded");
        assert_eq!(traceparent_sent(1.0, None).await[3], "01", "ratio 1: every new trace is");
        assert_eq!(traceparent_sent(0.0, Some(PARENT)).await[3], "01", "a sampled caller's trace is recorded");
        assert_eq!(traceparent_sent(1.0, Some(&unsampled_parent)).await[3], "00", "an unsampled one is not");
        let unsampled = traceparent_sent(0.0, None).await;
        assert_ne!(unsampled[1], "0".repeat(32), "unsampled traces still have ids to propagate");
    }

    #[test]
    fn grpc_metadata_carries_the_parent_trace() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", tp.parse().unwrap());
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        let mut metadata = tonic::metadata::MetadataMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(&mut metadata));
        assert_eq!(metadata.get("traceparent").unwrap().to_str().unwrap(), tp);
    }
}
