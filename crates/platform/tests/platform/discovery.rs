//! Peer discovery against a fake Kubernetes API server: an axum app that serves list and
//! watch of `discovery.k8s.io/v1` EndpointSlices from an event log, can drop its watches,
//! go down, and expire old resource versions (410 Gone). The "pods" are tiny gRPC health
//! servers on 127.0.0.2-4 (one port, like real pods), the Service's configured address is
//! a fourth one on 127.0.0.1, and every assertion is about which of them real calls reach.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use ticketing_platform::discovery::DiscoveryConfig;
use ticketing_platform::discovery::{Discovery, SERVICE_NAME_LABEL};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{eventually, eventually_every};

const NAMESPACE: &str = "ticketing";
/// The Service's name: the host of the peer URL (`http://localhost:<port>`).
const SERVICE: &str = "localhost";
const SETTLE: Duration = Duration::from_secs(20);

// --- the fake API server -------------------------------------------------------------

#[derive(Default)]
struct ApiState {
    version: u64,
    slices: BTreeMap<String, EndpointSlice>,
    /// (resource version, ADDED/MODIFIED/DELETED, object): what watches replay.
    log: Vec<(u64, &'static str, Value)>,
    /// A watch from an older resource version gets 410 Gone (compacted history).
    expired_below: u64,
    /// Every request fails with 503 and open watches end.
    down: bool,
    /// Bumped to end every open watch.
    epoch: u64,
    lists: usize,
    watches: usize,
    selectors: BTreeSet<String>,
}

struct FakeApi {
    state: Mutex<ApiState>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl FakeApi {
    async fn start() -> (Arc<Self>, kube::Client) {
        let api = Arc::new(Self { state: Mutex::default(), changed: tokio::sync::watch::channel(0).0 });
        let app = axum::Router::new()
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                axum::routing::get(endpointslices),
            )
            .with_state(api.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = kube::Config::new(url.parse().unwrap());
        (api, kube::Client::try_from(config).expect("a kube client for the fake API"))
    }

    fn mutate(&self, f: impl FnOnce(&mut ApiState)) {
        f(&mut self.state.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
    }

    /// Creates or replaces a slice (ADDED or MODIFIED).
    fn put(&self, mut slice: EndpointSlice) {
        self.mutate(|s| {
            s.version += 1;
            slice.metadata.resource_version = Some(s.version.to_string());
            let name = slice.metadata.name.clone().unwrap();
            let kind = if s.slices.contains_key(&name) { "MODIFIED" } else { "ADDED" };
            s.log.push((s.version, kind, serde_json::to_value(&slice).unwrap()));
            s.slices.insert(name, slice);
        });
    }

    fn delete(&self, name: &str) {
        self.mutate(|s| {
            s.version += 1;
            let mut slice = s.slices.remove(name).expect("a slice to delete");
            slice.metadata.resource_version = Some(s.version.to_string());
            s.log.push((s.version, "DELETED", serde_json::to_value(&slice).unwrap()));
        });
    }

    fn counts(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.lists, s.watches)
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": reason, "reason": reason, "code": code})
}

async fn endpointslices(
    AxumState(api): AxumState<Arc<FakeApi>>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut s = api.state.lock().unwrap();
    if namespace != NAMESPACE {
        return (StatusCode::NOT_FOUND, axum::Json(status(404, "NotFound"))).into_response();
    }
    s.selectors.insert(query.get("labelSelector").cloned().unwrap_or_default());
    if s.down {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(status(503, "ServiceUnavailable"))).into_response();
    }
    if query.get("watch").map(String::as_str) != Some("true") {
        s.lists += 1;
        let items: Vec<Value> = s.slices.values().map(|v| serde_json::to_value(v).unwrap()).collect();
        return axum::Json(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
            "metadata": {"resourceVersion": s.version.to_string()}, "items": items,
        }))
        .into_response();
    }
    s.watches += 1;
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    if from < s.expired_below {
        let line = json!({"type": "ERROR", "object": status(410, "Expired")}).to_string() + "\n";
        return Response::new(Body::from(line));
    }
    let seed = (api.clone(), from, s.epoch, api.changed.subscribe());
    drop(s);
    let events = futures::stream::unfold(seed, |(api, mut next, epoch, mut changed)| async move {
        loop {
            let line = {
                let s = api.state.lock().unwrap();
                if s.down || s.epoch != epoch {
                    return None;
                }
                s.log.iter().find(|(v, ..)| *v > next).map(|(v, kind, object)| {
                    next = *v;
                    json!({"type": kind, "object": object}).to_string() + "\n"
                })
            };
            if let Some(line) = line {
                return Some((Ok::<_, Infallible>(line), (api, next, epoch, changed)));
            }
            changed.changed().await.ok()?;
        }
    });
    Response::new(Body::from_stream(events))
}

fn slice(name: &str, port: u16, endpoints: &[(Ipv4Addr, bool)]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some([(SERVICE_NAME_LABEL.to_owned(), SERVICE.to_owned())].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![EndpointPort {
            name: Some("grpc".into()),
            port: Some(port.into()),
            ..EndpointPort::default()
        }]),
        endpoints: endpoints
            .iter()
            .map(|(ip, ready)| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions { ready: Some(*ready), ..EndpointConditions::default() }),
                ..Endpoint::default()
            })
            .collect(),
    }
}

// --- the backends ----------------------------------------------------------------------

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const C: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const CONFIGURED: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// gRPC health servers on 127.0.0.1 (the configured address) and 127.0.0.2-4 (the pods),
/// all on one port, each counting the calls it serves.
struct Backends {
    port: u16,
    hits: BTreeMap<Ipv4Addr, Arc<AtomicUsize>>,
}

impl Backends {
    async fn start() -> Self {
        'port: for _ in 0..20 {
            let first = TcpListener::bind((CONFIGURED, 0)).await.unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![(CONFIGURED, first)];
            for ip in [A, B, C] {
                match TcpListener::bind((ip, port)).await {
                    Ok(l) => listeners.push((ip, l)),
                    Err(_) => continue 'port,
                }
            }
            let mut hits = BTreeMap::new();
            for (ip, listener) in listeners {
                let counter = Arc::new(AtomicUsize::new(0));
                hits.insert(ip, counter.clone());
                let (_reporter, health) = tonic_health::server::health_reporter();
                let count = tonic::service::InterceptorLayer::new(move |request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    Ok(request)
                });
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                let server = tonic::transport::Server::builder().layer(count).add_service(health);
                tokio::spawn(server.serve_with_incoming(incoming));
            }
            return Self { port, hits };
        }
        panic!("no port free on 127.0.0.1-4");
    }

    fn url(&self) -> String {
        format!("http://{SERVICE}:{}", self.port)
    }

    /// Which backends 40 calls reached.
    async fn reached(&self, channel: &Channel) -> BTreeSet<Ipv4Addr> {
        self.hits.values().for_each(|h| h.store(0, Ordering::Relaxed));
        let mut client = HealthClient::new(channel.clone());
        for _ in 0..40 {
            client
                .check(HealthCheckRequest { service: String::new() })
                .await
                .expect("a health check through the channel");
        }
        self.hits.iter().filter(|(_, h)| h.load(Ordering::Relaxed) > 0).map(|(ip, _)| *ip).collect()
    }

    /// Waits until calls reach exactly `want`.
    async fn expect(&self, channel: &Channel, want: &[Ipv4Addr], what: &str) {
        let want: BTreeSet<Ipv4Addr> = want.iter().copied().collect();
        eventually_every(what, SETTLE, Duration::from_millis(50), || async {
            // Bounded: with no endpoint at all, a call waits for one.
            let last = tokio::time::timeout(SETTLE, self.reached(channel)).await;
            let last = last.map_err(|_| format!("calls hang, want {want:?}"))?;
            if last == want { Ok(()) } else { Err(format!("calls reach {last:?}, want {want:?}")) }
        })
        .await;
    }
}

// --- the scenarios -----------------------------------------------------------------------

#[tokio::test]
async fn calls_follow_the_ready_pods_through_changes_drops_and_outages() {
    let backends = Backends::start().await;
    let (api, client) = FakeApi::start().await;
    let discovery = Discovery::with_client(client, NAMESPACE);
    assert!(discovery.is_active());
    let channel = discovery.channel(&backends.url(), Duration::from_secs(2)).unwrap();
    let port = backends.port;

    // Before any pod is known (and while the Service has none), the configured address.
    backends.expect(&channel, &[CONFIGURED], "no pods yet").await;
    eventually("the first list and watch", SETTLE, || async { (api.counts().1 > 0).then_some(()) }).await;

    api.put(slice("s1", port, &[(A, true), (B, true)]));
    backends.expect(&channel, &[A, B], "two ready pods").await;

    api.put(slice("s1", port, &[(A, true), (B, false)]));
    backends.expect(&channel, &[A], "B not ready").await;

    api.put(slice("s2", port, &[(C, true)]));
    backends.expect(&channel, &[A, C], "a second slice with C").await;

    api.delete("s1");
    backends.expect(&channel, &[C], "s1 deleted").await;

    // The watch drops (the API server closes it); a change made meanwhile arrives through
    // the resumed watch, which starts from the last version seen, without a relist.
    let (lists, watches) = api.counts();
    api.mutate(|s| s.epoch += 1);
    api.put(slice("s2", port, &[(C, true), (A, true)]));
    backends.expect(&channel, &[A, C], "A back after the watch resumed").await;
    assert_eq!(api.counts().0, lists, "a resumed watch does not relist");
    assert!(api.counts().1 > watches, "the watch was resumed");

    // The API server goes down: the last known pods keep serving.
    let (lists, _) = api.counts();
    api.mutate(|s| {
        s.down = true;
        s.epoch += 1;
    });
    for _ in 0..3 {
        assert_eq!(backends.reached(&channel).await, BTreeSet::from([A, C]), "pods kept while the API is down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Meanwhile s2 was replaced by s3 and the history was compacted: the resumed watch gets
    // 410 Gone, the watcher relists, and the slice deleted meanwhile is forgotten.
    api.delete("s2");
    api.put(slice("s3", port, &[(B, true)]));
    api.mutate(|s| {
        s.expired_below = s.version + 1;
        s.down = false;
    });
    backends.expect(&channel, &[B], "the relist after 410 Gone").await;
    assert!(api.counts().0 > lists, "410 Gone made the watcher relist");

    api.put(slice("s3", port, &[(B, false)]));
    backends.expect(&channel, &[CONFIGURED], "no ready pod left").await;

    let selectors = api.state.lock().unwrap().selectors.clone();
    assert_eq!(
        selectors,
        BTreeSet::from([format!("{SERVICE_NAME_LABEL}={SERVICE}")]),
        "only the peer's slices are asked for"
    );
}

#[tokio::test]
async fn outside_a_cluster_or_disabled_calls_go_to_the_configured_address() {
    let backends = Backends::start().await;
    // No service-account token and no KUBERNETES_SERVICE_HOST on a test machine.
    for enabled in [true, false] {
        let discovery = Discovery::from_config(&DiscoveryConfig { enabled, namespace: String::new() });
        assert!(!discovery.is_active(), "enabled={enabled}");
        let channel = discovery.channel(&backends.url(), Duration::from_secs(2)).unwrap();
        backends.expect(&channel, &[CONFIGURED], "the configured address").await;
    }
}

#[tokio::test]
async fn hosts_that_name_no_service_keep_their_address() {
    let backends = Backends::start().await;
    let (api, client) = FakeApi::start().await;
    let channel = Discovery::with_client(client, NAMESPACE)
        .channel(&format!("http://{}", SocketAddr::new(IpAddr::V4(CONFIGURED), backends.port)), Duration::from_secs(2))
        .unwrap();
    backends.expect(&channel, &[CONFIGURED], "an IP address").await;
    assert_eq!(api.counts(), (0, 0), "nothing is watched for an IP address");
}
