//! An in-process OTLP/gRPC trace collector: it receives the spans services export and
//! keeps them, flattened, for a test to walk.
//!
//! Services that share the test's process share its tracer provider, hence one
//! resource; a span's service is then its own `service.name` attribute, which the
//! platform sets on the spans where a service's work starts (server, consumer and
//! producer spans), or else its nearest ancestor's (see [`Trace::service`]).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// One received span.
#[derive(Debug, Clone)]
pub struct Span {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id; empty for a root.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// Server, client, producer, consumer or internal.
    pub kind: SpanKind,
    /// The span's attributes, rendered as strings.
    pub attributes: HashMap<String, String>,
    /// `service.name` of the exporting provider's resource.
    pub resource_service: String,
    /// The spans it links to (not its parent), as `(trace_id, span_id)`.
    pub links: Vec<(String, String)>,
}

impl Span {
    /// The attribute `key`, rendered as a string.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// A collector listening on a free loopback port; it stops when dropped.
pub struct Collector {
    /// The address for `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Starts serving OTLP trace export on the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let service = TraceServiceServer::new(Receiver { spans: spans.clone() });
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        Self { endpoint, spans, task }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The spans received so far of the trace `trace_id` (hex).
    pub fn trace(&self, trace_id: &str) -> Trace {
        Trace { spans: self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect() }
    }

    /// The spans received so far of every trace whose root links to the span `span_id` of
    /// the trace `trace_id`: what a client's calls started where a linked trace begins.
    pub fn linked_to(&self, trace_id: &str, span_id: &str) -> Trace {
        let spans = self.spans();
        let link = (trace_id.to_owned(), span_id.to_owned());
        let traces: BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id.is_empty() && s.links.contains(&link))
            .map(|s| s.trace_id.as_str())
            .collect();
        Trace { spans: spans.iter().filter(|s| traces.contains(s.trace_id.as_str())).cloned().collect() }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The spans of one trace.
#[derive(Debug, Clone)]
pub struct Trace {
    /// In the order they arrived.
    pub spans: Vec<Span>,
}

impl Trace {
    /// The span `span_id`, when received.
    pub fn span(&self, span_id: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.span_id == span_id)
    }

    /// `span`'s parent, when it is in the trace and received.
    pub fn parent(&self, span: &Span) -> Option<&Span> {
        if span.parent_span_id.is_empty() { None } else { self.span(&span.parent_span_id) }
    }

    /// `span`'s received ancestors, nearest first.
    pub fn ancestors<'a>(&'a self, span: &'a Span) -> impl Iterator<Item = &'a Span> + 'a {
        // Bounded by the span count, so a (malformed) cycle cannot loop forever.
        std::iter::successors(self.parent(span), |s| self.parent(s)).take(self.spans.len())
    }

    /// The service `span` ran in: its own `service.name` attribute, else its nearest
    /// ancestor's, else its resource's.
    pub fn service<'a>(&'a self, span: &'a Span) -> &'a str {
        std::iter::once(span)
            .chain(self.ancestors(span))
            .find_map(|s| s.attribute("service.name"))
            .unwrap_or(&span.resource_service)
    }

    /// Every service with a span in the trace.
    pub fn services(&self) -> BTreeSet<&str> {
        self.spans.iter().map(|s| self.service(s)).collect()
    }
}

struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource_service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| attributes(&r.attributes).remove("service.name"))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(Span {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: attributes(&span.attributes),
                    links: span.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                    name: span.name,
                    resource_service: resource_service.clone(),
                });
            }
        }
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map(render).unwrap_or_default())).collect()
}

fn render(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
