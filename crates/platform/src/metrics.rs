//! A Prometheus registry per service, with RED metrics for gRPC methods and HTTP routes.
//!
//! The gRPC layer also opens the request span and adopts the caller's
//! `traceparent`, so every handler runs inside a trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tracing::Instrument;

/// Latency buckets from 250µs to 10s: the hold path is sub-millisecond, payments take seconds.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `event_id` of counters of events beyond the cap.
pub const OTHER_EVENT: &str = "_other";

/// The service's registry and its request metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    grpc: Arc<Red>,
    http: Arc<Red>,
    /// The outbox relays' and consumers' metrics.
    #[cfg(feature = "kafka")]
    kafka: Arc<crate::kafka::metrics::KafkaMetrics>,
    /// Pool, Redis and dependency metrics, registered on first use.
    plumbing: Arc<Plumbing>,
    settings: Arc<Settings>,
    /// The service's name: its `service` label, and `service.name` on its entry spans.
    service: Arc<str>,
}

/// `telemetry.metrics_interval` and `telemetry.max_event_series`, set by [`Metrics::configure`].
struct Settings {
    interval_ms: AtomicU64,
    max_event_series: AtomicUsize,
}

/// Shared plumbing metrics. Vectors without series are not exported, so the labelled ones
/// are registered up front; the plain gauges of the pool and Redis's memory only once a
/// service has a pool or Redis, so a service without them reports no zeros.
struct Plumbing {
    #[cfg(feature = "postgres")]
    pool: std::sync::OnceLock<PoolMetrics>,
    redis_memory: std::sync::OnceLock<RedisMemoryGauges>,
    redis: HistogramVec,
    dependency_up: IntGaugeVec,
    job_rounds: IntCounterVec,
}

/// `db_pool_*`.
#[cfg(feature = "postgres")]
#[derive(Clone)]
pub(crate) struct PoolMetrics {
    pub(crate) idle: IntGauge,
    pub(crate) in_use: IntGauge,
    pub(crate) max: IntGauge,
    pub(crate) acquire: Histogram,
}

/// `redis_memory_used_bytes` and `redis_memory_max_bytes`.
#[derive(Clone)]
pub(crate) struct RedisMemoryGauges {
    pub(crate) used: IntGauge,
    pub(crate) max: IntGauge,
}

struct Red {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Red {
    /// Records one HTTP request on a matched route.
    fn observe_http(&self, method: &str, route: &str, status: http::StatusCode, started: Instant) {
        self.requests.with_label_values(&[method, route, status.as_str()]).inc();
        self.duration.with_label_values(&[method, route]).observe(started.elapsed().as_secs_f64());
    }

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
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
            registry.register(Box::new(vec.clone())).expect("registered once");
            vec
        };
        let dependency_up = gauge_vec(
            "platform_dependency_up",
            "1 when the latest check of the dependency passed, else 0.",
            &["dependency"],
        );
        let job_rounds = IntCounterVec::new(
            Opts::new("platform_job_rounds_total", "Rounds of a periodic job or loop done, failed or not, by job."),
            &["job"],
        )
        .expect("static metric definition");
        registry.register(Box::new(job_rounds.clone())).expect("registered once");
        let redis = HistogramVec::new(
            HistogramOpts::new("redis_command_duration_seconds", "Time of one Redis script or command.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("static metric definition");
        registry.register(Box::new(redis.clone())).expect("registered once");
        #[cfg(feature = "kafka")]
        let kafka = Arc::new(crate::kafka::metrics::KafkaMetrics::new(&registry));
        let plumbing = Plumbing {
            #[cfg(feature = "postgres")]
            pool: std::sync::OnceLock::new(),
            redis_memory: std::sync::OnceLock::new(),
            redis,
            dependency_up,
            job_rounds,
        };
        let settings = Settings {
            interval_ms: AtomicU64::new(crate::telemetry::DEFAULT_METRICS_INTERVAL.as_millis() as u64),
            max_event_series: AtomicUsize::new(crate::telemetry::DEFAULT_MAX_EVENT_SERIES),
        };
        Self {
            registry,
            grpc: Arc::new(grpc),
            http: Arc::new(http),
            #[cfg(feature = "kafka")]
            kafka,
            plumbing: Arc::new(plumbing),
            settings: Arc::new(settings),
            service: service.into(),
        }
    }

    /// Applies `telemetry.metrics_interval` and `telemetry.max_event_series`; call it before
    /// starting the tasks that read them.
    pub fn configure(&self, telemetry: &crate::telemetry::TelemetryConfig) {
        self.settings.interval_ms.store(telemetry.metrics_interval.as_millis().max(1) as u64, Ordering::Relaxed);
        self.settings.max_event_series.store(telemetry.max_event_series, Ordering::Relaxed);
    }

    /// How often background tasks sample gauges of shared state (`telemetry.metrics_interval`).
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.settings.interval_ms.load(Ordering::Relaxed))
    }

    /// Most events with series of their own (`telemetry.max_event_series`).
    pub fn max_event_series(&self) -> usize {
        self.settings.max_event_series.load(Ordering::Relaxed)
    }

    /// The rounds counter of periodic job `job`: that a job still runs is a fact an alert or
    /// a test can wait on, where the time it takes is not.
    pub fn job_rounds(&self, job: &str) -> IntCounter {
        self.plumbing.job_rounds.with_label_values(&[job])
    }

    /// The histogram of one Redis `operation`, resolved once by the caller for its hot path.
    pub fn redis_timer(&self, operation: &str) -> Histogram {
        self.plumbing.redis.with_label_values(&[operation])
    }

    /// Records whether `dependency` (`postgres`, `redis`, `kafka`) passed its latest check.
    pub fn dependency_up(&self, dependency: &str, up: bool) {
        self.plumbing.dependency_up.with_label_values(&[dependency]).set(i64::from(up));
    }

    #[cfg(feature = "kafka")]
    pub(crate) fn kafka(&self) -> &crate::kafka::metrics::KafkaMetrics {
        &self.kafka
    }

    /// The service's consumer groups, each with why it is stalled (`None`: it is not);
    /// none without the `kafka` feature.
    pub fn consumer_stalls(&self) -> Vec<(String, Option<String>)> {
        #[cfg(feature = "kafka")]
        return self.kafka.consumer_stalls();
        #[cfg(not(feature = "kafka"))]
        Vec::new()
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn pool_metrics(&self) -> &PoolMetrics {
        self.plumbing.pool.get_or_init(|| {
            let connections = IntGaugeVec::new(
                Opts::new("db_pool_connections", "Pooled Postgres connections, by state."),
                &["state"],
            )
            .expect("static metric definition");
            let max = IntGauge::new("db_pool_max_connections", "The pool's upper bound (database.max_connections).")
                .expect("static metric definition");
            let acquire = Histogram::with_opts(
                HistogramOpts::new("db_pool_acquire_duration_seconds", "Time to get a pooled connection.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("static metric definition");
            self.register(&connections);
            self.register(&max);
            self.register(&acquire);
            PoolMetrics {
                idle: connections.with_label_values(&["idle"]),
                in_use: connections.with_label_values(&["in_use"]),
                max,
                acquire,
            }
        })
    }

    pub(crate) fn redis_memory(&self) -> &RedisMemoryGauges {
        self.plumbing.redis_memory.get_or_init(|| {
            let used = IntGauge::new("redis_memory_used_bytes", "Memory Redis uses for its data (INFO used_memory).")
                .expect("static metric definition");
            let max =
                IntGauge::new("redis_memory_max_bytes", "Redis's memory limit (INFO maxmemory); 0 when it has none.")
                    .expect("static metric definition");
            self.register(&used);
            self.register(&max);
            RedisMemoryGauges { used, max }
        })
    }

    /// The registry, for services to register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The service's name (`service.name` of the spans where its work starts).
    pub fn service(&self) -> &str {
        &self.service
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

    /// The HTTP layer recording RED metrics per matched route (unmatched ones as
    /// `<unmatched>`).
    pub fn http_layer(&self) -> crate::middleware::Around<HttpMetrics> {
        crate::middleware::Around::new(HttpMetrics(self.http.clone()))
    }

    /// A tower layer recording RED metrics and a span for every gRPC call.
    pub fn grpc_layer(&self) -> GrpcTelemetryLayer {
        GrpcTelemetryLayer { metrics: self.clone() }
    }
}

/// Per-event metric handles under the label-cardinality rule of `docs/observability.md`:
/// at most `cap` events have series of their own; the handles of any further event are
/// those of `event_id="_other"`, so counters' totals stay right. An event unused for
/// `retention` (an hour after its sale ended) gives its slot up and its series are removed.
pub struct PerEvent<T> {
    cap: usize,
    retention: Duration,
    entries: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, (T, Instant)>>,
    other: T,
    make: Box<dyn Fn(&str) -> T + Send + Sync>,
    forget: Box<dyn Fn(&T) + Send + Sync>,
}

/// How long an event's series outlive its last use.
pub const EVENT_RETENTION: Duration = Duration::from_secs(3600);

impl<T: Clone> PerEvent<T> {
    /// Handles made by `make(event_id label)`; `forget` removes an event's series.
    pub fn new(
        cap: usize,
        make: impl Fn(&str) -> T + Send + Sync + 'static,
        forget: impl Fn(&T) + Send + Sync + 'static,
    ) -> Self {
        Self::with_retention(cap, EVENT_RETENTION, make, forget)
    }

    /// Like [`PerEvent::new`] with another retention (tests).
    pub fn with_retention(
        cap: usize,
        retention: Duration,
        make: impl Fn(&str) -> T + Send + Sync + 'static,
        forget: impl Fn(&T) + Send + Sync + 'static,
    ) -> Self {
        Self {
            cap,
            retention,
            entries: std::sync::Mutex::default(),
            other: make(OTHER_EVENT),
            make: Box::new(make),
            forget: Box::new(forget),
        }
    }

    /// The handles of `event`: its own while under the cap, else `_other`'s.
    pub fn get(&self, event: uuid::Uuid) -> T {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((handles, used)) = entries.get_mut(&event) {
            *used = now;
            return handles.clone();
        }
        if entries.len() >= self.cap {
            self.expire_locked(&mut entries, now);
            if entries.len() >= self.cap {
                return self.other.clone();
            }
        }
        let handles = (self.make)(&event.to_string());
        entries.insert(event, (handles.clone(), now));
        handles
    }

    /// The events that have series of their own, with their handles.
    pub fn events(&self) -> Vec<(uuid::Uuid, T)> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.iter().map(|(event, (handles, _))| (*event, handles.clone())).collect()
    }

    /// Removes the series of events unused for the retention.
    pub fn expire(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.expire_locked(&mut entries, Instant::now());
    }

    fn expire_locked(&self, entries: &mut std::collections::HashMap<uuid::Uuid, (T, Instant)>, now: Instant) {
        entries.retain(|_, (handles, used)| {
            let keep = now.duration_since(*used) < self.retention;
            if !keep {
                (self.forget)(handles);
            }
            keep
        });
    }
}

/// See [`Metrics::http_layer`].
#[derive(Clone)]
pub struct HttpMetrics(Arc<Red>);

/// A request being timed.
pub struct Timed {
    red: Arc<Red>,
    // Clones of shared handles, not copies: this runs for every request.
    method: http::Method,
    route: Option<axum::extract::MatchedPath>,
    started: Instant,
}

impl crate::middleware::Hook for HttpMetrics {
    type Pending = Timed;

    fn before(&self, request: &mut axum::extract::Request) -> Timed {
        Timed {
            red: self.0.clone(),
            method: request.method().clone(),
            route: request.extensions().get::<axum::extract::MatchedPath>().cloned(),
            started: Instant::now(),
        }
    }
}

impl crate::middleware::Finish for Timed {
    fn finish(self, response: &mut axum::response::Response) {
        let route = self.route.as_ref().map_or("<unmatched>", axum::extract::MatchedPath::as_str);
        self.red.observe_http(self.method.as_str(), route, response.status(), self.started);
    }
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
        // A clone of the request's shared bytes, not a copy: this runs for every call.
        let uri = request.uri().clone();
        let path = uri.path();
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = path.trim_start_matches('/'),
            otel.kind = "server",
            service.name = %self.metrics.service,
            rpc.method = path,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        crate::telemetry::set_parent_from_headers(&span, request.headers());
        let metrics = self.metrics.clone();
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let result = future.await;
                let code = crate::telemetry::response_code(&result, tonic::Code::Internal);
                tracing::Span::current().record("rpc.grpc.status_code", code as i32);
                // Unknown paths come from the client; keep them out of label values.
                let method = if code == tonic::Code::Unimplemented { "<unknown>" } else { uri.path() };
                metrics.grpc.requests.with_label_values(&[method, code_name(code)]).inc();
                metrics.grpc.duration.with_label_values(&[method]).observe(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}

/// The `code` label: the status code's name, as `{code:?}` spells it, without formatting.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "Ok",
        C::Cancelled => "Cancelled",
        C::Unknown => "Unknown",
        C::InvalidArgument => "InvalidArgument",
        C::DeadlineExceeded => "DeadlineExceeded",
        C::NotFound => "NotFound",
        C::AlreadyExists => "AlreadyExists",
        C::PermissionDenied => "PermissionDenied",
        C::ResourceExhausted => "ResourceExhausted",
        C::FailedPrecondition => "FailedPrecondition",
        C::Aborted => "Aborted",
        C::OutOfRange => "OutOfRange",
        C::Unimplemented => "Unimplemented",
        C::Internal => "Internal",
        C::Unavailable => "Unavailable",
        C::DataLoss => "DataLoss",
        C::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_labels_are_the_codes_names() {
        for i in 0..=16 {
            let code = tonic::Code::from_i32(i);
            assert_eq!(code_name(code), format!("{code:?}"));
        }
    }

    #[test]
    fn exposition_names_follow_conventions() {
        let metrics = Metrics::new("test");
        metrics.http.observe_http("GET", "/v1/events", http::StatusCode::OK, Instant::now());
        let text = metrics.render();
        assert!(
            text.contains(
                r#"http_server_requests_total{method="GET",route="/v1/events",status="200",service="test"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("http_server_request_duration_seconds_bucket"), "{text}");
    }

    #[test]
    fn events_beyond_the_cap_count_as_other_and_idle_ones_free_their_slot() {
        let metrics = Metrics::new("test");
        let sold =
            metrics.register(&IntCounterVec::new(Opts::new("test_sold_total", "Sold."), &["event_id"]).expect("valid"));
        let (make, forget) = (sold.clone(), sold.clone());
        let per_event = PerEvent::with_retention(
            2,
            Duration::from_millis(200),
            move |event| (make.with_label_values(&[event]), event.to_owned()),
            move |(_, event): &(prometheus::IntCounter, String)| {
                let _ = forget.remove_label_values(&[event]);
            },
        );
        let events: Vec<_> = (0..4).map(|_| uuid::Uuid::new_v4()).collect();
        for event in &events {
            per_event.get(*event).0.inc();
        }
        per_event.get(events[0]).0.inc();
        let text = metrics.render();
        assert!(text.contains(&format!(r#"test_sold_total{{event_id="{}",service="test"}} 2"#, events[0])), "{text}");
        assert!(text.contains(&format!(r#"test_sold_total{{event_id="{}",service="test"}} 1"#, events[1])), "{text}");
        assert!(text.contains(r#"test_sold_total{event_id="_other",service="test"} 2"#), "{text}");
        assert!(!text.contains(&events[2].to_string()), "{text}");

        // Once the first two have been idle for the retention, a new event takes a slot.
        #[allow(clippy::disallowed_methods)] // a synchronous test, outliving the retention it set
        std::thread::sleep(Duration::from_millis(250));
        per_event.get(events[3]).0.inc();
        assert_eq!(per_event.events().len(), 1);
        let text = metrics.render();
        assert!(!text.contains(&events[0].to_string()), "{text}");
        assert!(text.contains(&format!(r#"test_sold_total{{event_id="{}",service="test"}} 1"#, events[3])), "{text}");
    }
}
