//! Peer discovery: gRPC channels that balance each request over the ready pods of a
//! peer's Kubernetes Service, learned by watching its EndpointSlices.
//!
//! gRPC keeps one HTTP/2 connection open, so through a ClusterIP every request of a
//! client lands on the one pod it connected to, and pods the autoscaler adds get none.
//! A discovered channel instead keeps a connection per ready pod and picks one per
//! request (tonic's balance channel: power of two random choices). Outside a cluster,
//! when disabled, for a host that names no Service, and whenever the watch knows no
//! ready pod (before the first list, after the last pod left), requests go to the
//! configured address, so a missing permission or an API-server outage degrades to
//! the ClusterIP instead of failing calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc::Sender;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint, Uri};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, Validate};

/// Where a service's gRPC clients find the pods of their peers.
///
/// When enabled and running in a Kubernetes pod (a service-account token and
/// `KUBERNETES_SERVICE_HOST`), a client watches the EndpointSlices of the peer's Service
/// (named by the host of the peer's URL) and balances each request over the ready pods;
/// otherwise, and while no pod is ready, it calls the configured address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryConfig {
    /// Watch EndpointSlices (needs list/watch on them; the chart grants it).
    pub enabled: bool,
    /// Namespace of peers whose URL does not name one; empty: the pod's own.
    pub namespace: String,
}

impl Validate for DiscoveryConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let ns = &self.namespace;
        let label = ns.len() <= 63
            && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !label {
            issues.push(ConfigIssue::new("discovery.namespace", "must be empty or a Kubernetes namespace name"));
        }
    }
}
use crate::peers;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Makes the channels to a service's peers: discovered pods in a cluster, the
/// configured addresses elsewhere.
#[derive(Clone)]
pub struct Discovery {
    kube: Option<(kube::Client, String)>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery").field("namespace", &self.kube.as_ref().map(|(_, ns)| ns)).finish()
    }
}

impl Discovery {
    /// Discovery as configured: active when `discovery.enabled` and this process runs in a
    /// pod with a service-account token; otherwise every channel uses its configured
    /// address. Must be called within a Tokio runtime.
    pub fn from_config(config: &DiscoveryConfig) -> Self {
        if !config.enabled {
            return Self::disabled();
        }
        let mut kube_config = match kube::Config::incluster() {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(reason = %e, "discovery: not in a Kubernetes pod; calling peers at their configured addresses");
                return Self::disabled();
            }
        };
        if !config.namespace.is_empty() {
            kube_config.default_namespace.clone_from(&config.namespace);
        }
        let namespace = kube_config.default_namespace.clone();
        match kube::Client::try_from(kube_config) {
            Ok(client) => {
                tracing::info!(%namespace, "discovery: watching the EndpointSlices of peers");
                Self::with_client(client, namespace)
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery: no Kubernetes client; calling peers at their configured addresses");
                Self::disabled()
            }
        }
    }

    /// No discovery: every channel uses its configured address.
    pub fn disabled() -> Self {
        Self { kube: None }
    }

    /// Discovery through `client`, for peers in `namespace` unless their URL names one.
    pub fn with_client(client: kube::Client, namespace: impl Into<String>) -> Self {
        Self { kube: Some((client, namespace.into())) }
    }

    /// Whether channels watch EndpointSlices.
    pub fn is_active(&self) -> bool {
        self.kube.is_some()
    }

    /// A channel to the peer at `url` (`http://<service>[.<namespace>[.svc…]]:<port>`)
    /// with a deadline of `timeout` per call. When discovery is active and the host names
    /// a Service, each call goes to one of its ready pods, on the EndpointSlice port with
    /// the URL's port number (else the port named `grpc`); otherwise, and while no pod is
    /// ready, to `url` itself. Connections open lazily, as with [`peers::channel`]. Must be
    /// called within a Tokio runtime; the watch ends when the channel's last clone is dropped.
    pub fn channel(&self, url: &str, timeout: Duration) -> anyhow::Result<Channel> {
        let fallback = peers::endpoint(url, timeout)?;
        let Some((client, namespace)) = &self.kube else {
            return Ok(fallback.connect_lazy());
        };
        let Some(peer) = Peer::from_uri(fallback.uri(), namespace) else {
            tracing::debug!(url, "discovery: the host names no Service; calling its address");
            return Ok(fallback.connect_lazy());
        };
        let (channel, changes) = Channel::balance_channel(64);
        changes.try_send(Change::Insert(Target::Configured, fallback)).expect("a new balance channel has room");
        let api = Api::<EndpointSlice>::namespaced(client.clone(), &peer.namespace);
        tokio::spawn(follow(api, peer, url.to_owned(), timeout, changes));
        Ok(channel)
    }
}

/// A peer's Service, from the host of its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    service: String,
    namespace: String,
    port: u16,
}

impl Peer {
    /// `<service>`, `<service>.<namespace>` or `<service>.<namespace>.svc[.<cluster domain>]`
    /// over plain `http`; `None` for IP addresses, other DNS names and TLS.
    fn from_uri(uri: &Uri, default_namespace: &str) -> Option<Self> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host()?;
        if host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
            return None;
        }
        let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
        let namespace = match labels.as_slice() {
            [_] => default_namespace,
            [_, ns] => ns,
            [_, ns, "svc", ..] => ns,
            _ => return None,
        };
        Some(Self {
            service: labels[0].to_owned(),
            namespace: namespace.to_owned(),
            port: uri.port_u16().unwrap_or(80),
        })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}:{}", self.service, self.namespace, self.port)
    }
}

/// One member of a balanced channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Target {
    /// The configured address (the ClusterIP), while no pod is known to be ready.
    Configured,
    /// A ready pod.
    Pod(SocketAddr),
}

/// The ready pods of one Service, slice by slice, as the watch reports them.
#[derive(Debug, Default)]
struct Slices {
    port: u16,
    live: BTreeMap<String, BTreeSet<SocketAddr>>,
    /// Slices listed since the watch (re)started; they replace `live` once the list is done.
    relisting: Option<BTreeMap<String, BTreeSet<SocketAddr>>>,
}

impl Slices {
    fn new(port: u16) -> Self {
        Self { port, ..Self::default() }
    }

    /// Applies one watch event; returns the targets to route to when they may have changed.
    fn apply(&mut self, event: Event<EndpointSlice>) -> Option<BTreeSet<Target>> {
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                return None;
            }
            Event::InitApply(slice) => {
                let (name, pods) = self.ready_pods(&slice);
                self.relisting.get_or_insert_default().insert(name, pods);
                return None;
            }
            // Slices missing from a relist are gone: they were deleted while the watch was down.
            Event::InitDone => self.live = self.relisting.take().unwrap_or_default(),
            Event::Apply(slice) => {
                let (name, pods) = self.ready_pods(&slice);
                self.live.insert(name, pods);
            }
            Event::Delete(slice) => {
                self.live.remove(&slice.metadata.name.unwrap_or_default());
            }
        }
        let pods: BTreeSet<Target> = self.live.values().flatten().copied().map(Target::Pod).collect();
        Some(if pods.is_empty() { BTreeSet::from([Target::Configured]) } else { pods })
    }

    /// The slice's name and the addresses of its ready endpoints on the peer's port.
    fn ready_pods(&self, slice: &EndpointSlice) -> (String, BTreeSet<SocketAddr>) {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let ports = slice.ports.as_deref().unwrap_or_default();
        let port = ports
            .iter()
            .find(|p| p.port == Some(i32::from(self.port)))
            .or_else(|| ports.iter().find(|p| p.name.as_deref() == Some("grpc")))
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else { return (name, BTreeSet::new()) };
        let pods = slice
            .endpoints
            .iter()
            // An unknown readiness counts as ready, as the API documents.
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|e| &e.addresses)
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        (name, pods)
    }
}

/// Follows the peer's EndpointSlices and keeps the balanced channel's members equal to its
/// ready pods, until the channel is dropped. Watch errors keep the last known members; the
/// watcher retries with backoff and relists when its resource version is too old.
async fn follow(
    api: Api<EndpointSlice>,
    peer: Peer,
    url: String,
    timeout: Duration,
    changes: Sender<Change<Target, Endpoint>>,
) {
    let selector = format!("{SERVICE_NAME_LABEL}={}", peer.service);
    let mut events = watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff().boxed();
    let mut slices = Slices::new(peer.port);
    let mut routed = BTreeSet::from([Target::Configured]);
    loop {
        let event = tokio::select! {
            () = changes.closed() => return,
            event = events.next() => event,
        };
        let wanted = match event {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "discovery: watching EndpointSlices failed; keeping the last known pods");
                continue;
            }
            Some(Ok(event)) => match slices.apply(event) {
                Some(wanted) if wanted != routed => wanted,
                _ => continue,
            },
        };
        // Insert before removing, so the channel never has no member to send to.
        for target in wanted.difference(&routed) {
            let endpoint = match target {
                Target::Configured => peers::endpoint(&url, timeout),
                Target::Pod(addr) => peers::endpoint(&format!("http://{addr}"), timeout),
            };
            let endpoint = match endpoint {
                Ok(endpoint) => endpoint,
                Err(e) => {
                    tracing::warn!(%peer, error = format!("{e:#}"), "discovery: skipping an endpoint");
                    continue;
                }
            };
            if changes.send(Change::Insert(*target, endpoint)).await.is_err() {
                return;
            }
        }
        for target in routed.difference(&wanted) {
            if changes.send(Change::Remove(*target)).await.is_err() {
                return;
            }
        }
        let pods: Vec<String> = wanted
            .iter()
            .map(|t| match t {
                Target::Configured => "configured address".to_owned(),
                Target::Pod(addr) => addr.to_string(),
            })
            .collect();
        tracing::info!(%peer, endpoints = ?pods, "discovery: peer endpoints changed");
        routed = wanted;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn peer(url: &str) -> Option<Peer> {
        Peer::from_uri(&url.parse().unwrap(), "home")
    }

    #[test]
    fn the_host_names_the_service_and_namespace() {
        let p = |s: &str, ns: &str, port| Some(Peer { service: s.into(), namespace: ns.into(), port });
        assert_eq!(peer("http://inventory:50053"), p("inventory", "home", 50053));
        assert_eq!(peer("http://inventory.shop:50053"), p("inventory", "shop", 50053));
        assert_eq!(peer("http://ticketing-inventory.shop.svc:50053"), p("ticketing-inventory", "shop", 50053));
        assert_eq!(peer("http://inventory.shop.svc.cluster.local.:1"), p("inventory", "shop", 1));
        assert_eq!(peer("http://inventory"), p("inventory", "home", 80));
    }

    #[test]
    fn addresses_other_names_and_tls_are_not_services() {
        assert_eq!(peer("http://10.0.0.7:50053"), None);
        assert_eq!(peer("http://[fd00::7]:50053"), None);
        assert_eq!(peer("http://inventory.example.com:50053"), None);
        assert_eq!(peer("https://inventory:50053"), None);
    }

    fn slice(name: &str, ports: &[(&str, i32)], endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            address_type: "IPv4".into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| EndpointPort { name: Some((*n).into()), port: Some(*p), ..EndpointPort::default() })
                    .collect(),
            ),
            endpoints: endpoints
                .iter()
                .map(|(ip, ready)| SliceEndpoint {
                    addresses: vec![(*ip).into()],
                    conditions: Some(EndpointConditions { ready: *ready, ..EndpointConditions::default() }),
                    ..SliceEndpoint::default()
                })
                .collect(),
        }
    }

    fn pods(list: &[&str]) -> Option<BTreeSet<Target>> {
        Some(list.iter().map(|a| Target::Pod(a.parse().unwrap())).collect())
    }

    #[test]
    fn ready_and_unknown_endpoints_count_on_the_peer_port() {
        let mut s = Slices::new(50053);
        let a = slice("a", &[("admin", 51053), ("grpc", 50053)], &[("10.0.0.1", Some(true)), ("10.0.0.2", None)]);
        assert_eq!(s.apply(Event::Apply(a)), pods(&["10.0.0.1:50053", "10.0.0.2:50053"]));
        let b = slice("b", &[("grpc", 9000)], &[("10.0.0.3", Some(false)), ("10.0.0.4", Some(true))]);
        assert_eq!(s.apply(Event::Apply(b)), pods(&["10.0.0.1:50053", "10.0.0.2:50053", "10.0.0.4:9000"]));
    }

    #[test]
    fn no_ready_pod_routes_to_the_configured_address() {
        let mut s = Slices::new(50053);
        let a = slice("a", &[("grpc", 50053)], &[("10.0.0.1", Some(false))]);
        assert_eq!(s.apply(Event::Apply(a.clone())), Some(BTreeSet::from([Target::Configured])));
        assert_eq!(
            s.apply(Event::Apply(slice("a", &[("other", 1), ("x", 2)], &[("10.0.0.1", None)]))),
            Some(BTreeSet::from([Target::Configured]))
        );
        assert_eq!(s.apply(Event::Delete(a)), Some(BTreeSet::from([Target::Configured])));
    }

    #[test]
    fn a_relist_replaces_every_slice_when_done() {
        let mut s = Slices::new(1);
        s.apply(Event::Apply(slice("gone", &[("grpc", 1)], &[("10.0.0.1", None)])));
        assert_eq!(s.apply(Event::Init), None);
        assert_eq!(s.apply(Event::InitApply(slice("new", &[("grpc", 1)], &[("10.0.0.2", None)]))), None);
        assert_eq!(s.apply(Event::InitDone), pods(&["10.0.0.2:1"]));
    }
}
