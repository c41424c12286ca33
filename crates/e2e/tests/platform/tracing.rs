//! A purchase is traced end to end (issue 7): a buyer's hold, booking and payment through
//! the gateway, with the client's `traceparent` on each call, reach gateway → booking →
//! inventory over gRPC and booking → outbox → Kafka → payment and notification, and
//! every service exports its spans over OTLP to a collector inside the test. The gateway
//! does not join the client's trace (a client's context is its own word, issue 16): each
//! call starts a trace of ours whose root links to the client's span.
//!
//! The services share this process, and the rest of the suite runs beside this test in
//! it. So nothing here is global: the test runs on a runtime of its own whose threads
//! use the platform's subscriber (`ticketing_platform::telemetry::subscriber`) as their
//! thread-local default, exporting to the collector. Every service's spans then come
//! from one tracer provider (one resource); the platform's `service.name` span
//! attribute tells them apart (see `ticketing_testkit::otlp`).
//!
//! A test binary of its own could install the subscriber globally instead; sharing the
//! saga binary costs only the second dispatcher below, and CI builds fewer binaries.

use std::cell::RefCell;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::tracing::Dispatch;
use ::tracing::dispatcher::DefaultGuard;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_platform::telemetry;
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::eventually_every;
use ticketing_testkit::otlp::{Collector, SpanKind, Trace};
use ticketing_testkit::smtp::emails_to;

use crate::harness::{Options, Platform};
use crate::http::{Http, account};

/// The services a purchase's trace must reach.
const SERVICES: [&str; 5] = ["gateway", "booking", "inventory", "payment", "notification"];

#[test]
fn a_purchase_is_traced_across_gateway_booking_inventory_payment_and_notification_linked_to_the_client() {
    // The collector and the exporter's connection run on a runtime without the
    // subscriber, so exporting makes no spans of its own.
    let infra = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let collector = infra.block_on(Collector::start());
    let provider = infra
        .block_on(async { telemetry::tracer_provider("e2e", telemetry::Export::To(&collector.endpoint), 1.0) })
        .expect("tracer provider");
    // tracing caches whether a callsite is enabled when it is first hit. While one dispatcher
    // is registered it asks only the hitting thread's default, so a callsite first hit by
    // another test's thread (no subscriber) would stay off here too. With two registered it
    // asks every one; this second one, registered first, subscribes to nothing.
    let _second = Dispatch::new(::tracing::subscriber::NoSubscriber::default());
    let logs = Logs::default();
    // The gateway logs each request at debug: a log line inside the trace, whatever else logs.
    let filter = tracing_subscriber::EnvFilter::new("info,ticketing_gateway::http=debug");
    let dispatch = Dispatch::new(telemetry::subscriber(filter, true, &provider, logs.clone()));

    run_traced(&dispatch, purchase(&collector, &provider, &logs));
    provider.shutdown().expect("tracer provider shutdown");
}

async fn purchase(collector: &Collector, provider: &opentelemetry_sdk::trace::SdkTracerProvider, logs: &Logs) {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 4, 6_000).await;
    let http = Http::new(&p);
    let email = format!("fan-{}@example.com", ticketing_testkit::unique());
    let token = account(&http, &email).await;

    // The client's purchase: its span is the root of its trace; every call names it the parent.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let root = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traceparent = format!("00-{trace_id}-{root}-01");
    let call = |method: Method, path: String, body: Value, key: &'static str| {
        let request = http
            .client
            .request(method, format!("{}{path}", http.base))
            .bearer_auth(&token)
            .header("traceparent", &traceparent)
            .header("Idempotency-Key", key)
            .json(&body);
        async move {
            let response = request.send().await.expect("the gateway answers");
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or_default())
        }
    };
    let seats = json!({"seat_ids": [event.seats[0], event.seats[1]]});
    let (status, hold) = call(Method::POST, format!("/v1/events/{}/holds", event.id), seats, "hold").await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let (status, booking) = call(Method::POST, "/v1/bookings".into(), json!({"hold_id": hold["id"]}), "book").await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let id = booking["id"].as_str().expect("a booking id").to_owned();
    let pay = json!({"card_token": "tok_visa"});
    let (status, paid) = call(Method::POST, format!("/v1/bookings/{id}/payment"), pay, "pay").await;
    // A charge the simulated provider answers late (a loaded machine) is left UNKNOWN and
    // settled by payment's reconciler, a background task outside the purchase's trace.
    assert!(
        status.is_success() && ["succeeded", "unknown"].contains(&paid["status"].as_str().unwrap_or_default()),
        "{status} {paid}"
    );
    let settled_in_call = paid["status"] == "succeeded";

    // Confirmed, and the tickets mailed: the saga's last steps have run.
    let what = format!("a tickets email to {email}");
    eventually_every(&what, Duration::from_secs(60), Duration::from_millis(100), || async {
        emails_to(&p.smtp, &email).iter().any(|e| !e.pngs.is_empty()).then_some(())
    })
    .await;

    // Spans are exported in batches: flush until the trace is complete (or time is up).
    let trace =
        eventually_every("the trace to be complete", Duration::from_secs(30), Duration::from_millis(200), || {
            let flushing = provider.clone();
            async {
                tokio::task::spawn_blocking(move || flushing.force_flush())
                    .await
                    .expect("flush")
                    .expect("spans exported");
                let trace = collector.linked_to(&trace_id, &root);
                match complete(&trace, &trace_id, &root, settled_in_call) {
                    Ok(()) => Ok(trace),
                    Err(missing) => Err(format!("{missing}\n{}", describe(&trace))),
                }
            }
        })
        .await;

    let services = trace.services();
    assert!(SERVICES.iter().all(|s| services.contains(s)), "services in the trace: {services:?}");
    let joined = collector.trace(&trace_id);
    assert!(joined.spans.is_empty(), "our spans joined the client's trace:\n{}", describe(&joined));

    // The logs of the purchase carry our trace ids, and the id of a span in them.
    let ours: std::collections::BTreeSet<&str> = trace.spans.iter().map(|s| s.trace_id.as_str()).collect();
    let lines = logs.lines();
    assert!(!lines.iter().any(|l| l["trace_id"] == trace_id.as_str()), "a log line in the client's trace");
    let traced: Vec<&Value> =
        lines.iter().filter(|l| l["trace_id"].as_str().is_some_and(|t| ours.contains(t))).collect();
    assert!(!traced.is_empty(), "no log line carries a trace id of {ours:?}");
    for line in traced {
        let span_id = line["span_id"].as_str().unwrap_or_default();
        assert!(trace.span(span_id).is_some(), "log line with span_id {span_id} outside the trace: {line}");
    }
}

/// `Ok` once the traces linked to the client's span cross gRPC and Kafka as a purchase
/// must, else what is missing. `settled_in_call`: the charge was settled in the payment
/// call, so the rest of the saga (payment's outcome, booking's saga, the tickets) is in
/// them too.
fn complete(trace: &Trace, client_trace: &str, root: &str, settled_in_call: bool) -> Result<(), String> {
    let services = trace.services();
    if let Some(service) = SERVICES.iter().find(|s| !services.contains(*s)) {
        return Err(format!("no span of {service} in the trace (services: {services:?})"));
    }
    // Every span descends from a gateway server span, a root linked to the client's span:
    // no link in the chain is missing.
    let link = (client_trace.to_owned(), root.to_owned());
    for span in &trace.spans {
        let top = trace.ancestors(span).last().unwrap_or(span);
        let linked_root = top.parent_span_id.is_empty() && top.links.contains(&link);
        if !(linked_root && top.kind == SpanKind::Server && trace.service(top) == "gateway") {
            return Err(format!(
                "{} ({}) does not descend from a gateway root linked to the client",
                span.name, span.span_id
            ));
        }
    }
    // gRPC: a server span whose parent is the caller's client span, in another service.
    for (client, server) in [("gateway", "booking"), ("booking", "inventory"), ("gateway", "payment")] {
        let linked = trace.spans.iter().any(|s| {
            s.kind == SpanKind::Server
                && trace.service(s) == server
                && trace.parent(s).is_some_and(|c| c.kind == SpanKind::Client && trace.service(c) == client)
        });
        if !linked {
            return Err(format!("no {server} server span whose parent is a {client} client span"));
        }
    }
    // Kafka: a consumer span whose ancestors reach the producer span of booking's outbox relay.
    for consumer in ["payment", "notification"] {
        let linked = trace.spans.iter().any(|s| {
            s.kind == SpanKind::Consumer
                && trace.service(s) == consumer
                && trace.ancestors(s).any(|a| a.kind == SpanKind::Producer && trace.service(a) == "booking")
        });
        if !linked {
            return Err(format!("no {consumer} consumer span descending from booking's outbox producer span"));
        }
    }
    // The rest of the saga: payment's outcome → booking's saga → the tickets, one chain.
    let saga = trace.spans.iter().any(|s| {
        let kinds: Vec<_> = trace.ancestors(s).map(|a| (a.kind, trace.service(a))).collect();
        s.kind == SpanKind::Consumer
            && trace.service(s) == "notification"
            && kinds.contains(&(SpanKind::Consumer, "booking"))
            && kinds.contains(&(SpanKind::Producer, "payment"))
    });
    if settled_in_call && !saga {
        return Err("no notification consumer span descending from payment's outcome through booking's saga".into());
    }
    Ok(())
}

/// The trace as a tree-less list, for failure messages.
fn describe(trace: &Trace) -> String {
    let mut lines: Vec<String> = trace
        .spans
        .iter()
        .map(|s| format!("{} {} ({:?}, {}) parent {}", s.span_id, s.name, s.kind, trace.service(s), s.parent_span_id))
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Runs `test` on a runtime whose threads (and this one) use `dispatch` as their default
/// subscriber.
fn run_traced(dispatch: &Dispatch, test: impl Future<Output = ()>) {
    thread_local! {
        static DEFAULT: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
    }
    let on_start = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || DEFAULT.set(Some(::tracing::dispatcher::set_default(&on_start))))
        .on_thread_stop(|| DEFAULT.set(None))
        .build()
        .expect("runtime");
    let _default = ::tracing::dispatcher::set_default(dispatch);
    runtime.block_on(test);
    // Services stop with the runtime; their last spans are not part of the test.
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// The JSON log lines, kept in memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes).lines().map(|l| serde_json::from_str(l).expect("a JSON log line")).collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}
