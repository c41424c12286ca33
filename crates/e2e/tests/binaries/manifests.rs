//! The Helm chart against the binaries: every values file is rendered with helm and loaded
//! into k8s-openapi types, and each Deployment's probes, ports, resources and security
//! context, each service's HPA and PDB, the pre-scaler's RBAC and the HPAs it raises, the
//! migration Jobs and skaffold's artifacts are checked against what the crates really serve
//! and need; the payment and pre-scaler binaries are run with the environment each values
//! file gives their containers. The connection budget's objects (PgBouncer, the pooled
//! database URLs) and the hot path's QoS (Guaranteed memory, the PriorityClass, zone spread,
//! pull policy) are checked the same way.
//!
//! helm is the one `scripts/infra.sh` (run by `scripts/test.sh`) installs (`.local/deploy/bin/helm`, or
//! `$STATE_DIR/deploy/bin/helm`), else `$HELM`, else `helm` on the PATH; without any of them
//! the test fails and says how to get it. Rendering here (about a second) rather than
//! reading `.local/rendered/` means the checked manifests are never older than the chart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Probe, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use ticketing_platform::cli::ServiceConfig;

use crate::SERVICES;

const RELEASE: &str = "ticketing";
/// The binaries under services/ that are controllers, not services: the chart deploys each
/// from its own top-level values key, outside `services`.
const CONTROLLERS: &[&str] = &["prescaler"];
/// Values files for a developer's cluster, where one replica and no HPA are expected.
const DEVELOPMENT: &[&str] = &["values-minikube.yaml"];
/// The services every step of a purchase goes through during an on-sale: Guaranteed memory
/// and the hot-path PriorityClass.
const HOT_PATH: &[&str] = &["gateway", "inventory", "booking"];
/// PgBouncer's objects (database.pooler: pgbouncer).
const PGBOUNCER: &str = "ticketing-pgbouncer";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// What a binary serves and needs, from its crate.
struct Facts {
    grpc: u16,
    admin: u16,
    http: Option<u16>,
    database: bool,
}

fn facts(service: &str) -> Facts {
    fn of(grpc: u16, config: impl ServiceConfig) -> Facts {
        Facts { grpc, admin: grpc + 1000, http: None, database: config.database().is_some() }
    }
    match service {
        "gateway" => {
            let config = ticketing_gateway::config::Config::default();
            let http = Some(config.gateway.http_addr.port());
            Facts { http, ..of(ticketing_gateway::config::GRPC_PORT, config) }
        }
        "identity" => of(ticketing_identity::config::GRPC_PORT, ticketing_identity::config::Config::default()),
        "catalog" => of(ticketing_catalog::config::GRPC_PORT, ticketing_catalog::config::Config::default()),
        "inventory" => of(ticketing_inventory::config::GRPC_PORT, ticketing_inventory::config::Config::default()),
        "booking" => of(ticketing_booking::config::GRPC_PORT, ticketing_booking::config::Config::default()),
        "payment" => of(ticketing_payment::config::GRPC_PORT, ticketing_payment::config::Config::default()),
        "notification" => {
            of(ticketing_notification::config::GRPC_PORT, ticketing_notification::config::Config::default())
        }
        "prescaler" => of(ticketing_prescaler::config::GRPC_PORT, ticketing_prescaler::config::Config::default()),
        other => panic!("no facts for service {other}: add it here"),
    }
}

fn helm() -> PathBuf {
    let state = std::env::var_os("STATE_DIR").map_or_else(|| root().join(".local"), PathBuf::from);
    let installed = state.join("deploy/bin/helm");
    if installed.exists() {
        return installed;
    }
    if let Some(helm) = std::env::var_os("HELM") {
        return helm.into();
    }
    let on_path = Command::new("helm").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(
        on_path,
        "helm not found: run scripts/infra.sh (scripts/test.sh does; it installs helm under .local/deploy/bin), or set HELM"
    );
    "helm".into()
}

/// The objects of one rendered values file, by kind and name.
#[derive(Default)]
struct Manifests {
    objects: BTreeMap<(String, String), serde_yaml::Value>,
}

impl Manifests {
    fn render(helm: &Path, values: &Path) -> Self {
        Self::render_with(helm, values, &[]).unwrap_or_else(|e| panic!("helm template -f {}: {e}", values.display()))
    }

    /// Renders with extra `helm template` arguments (`--set ...`); helm's error when it refuses.
    fn render_with(helm: &Path, values: &Path, extra: &[&str]) -> Result<Self, String> {
        let home = std::env::temp_dir().join(format!("helm-home-{}", ticketing_testkit::unique()));
        let out = Command::new(helm)
            .args(["template", RELEASE, "charts/ticketing", "--namespace", "ticketing", "-f"])
            .arg(values)
            .args(extra)
            .current_dir(root())
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", home.join("cache"))
            .output()
            .expect("run helm");
        let _ = std::fs::remove_dir_all(&home);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let mut manifests = Self::default();
        for document in serde_yaml::Deserializer::from_slice(&out.stdout) {
            let value = serde_yaml::Value::deserialize(document).expect("rendered YAML parses");
            let (Some(kind), Some(name)) = (value["kind"].as_str(), value["metadata"]["name"].as_str()) else {
                continue;
            };
            manifests.objects.insert((kind.to_owned(), name.to_owned()), value.clone());
        }
        assert!(!manifests.objects.is_empty(), "{} rendered nothing", values.display());
        Ok(manifests)
    }

    fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> Option<T> {
        let value = self.objects.get(&(kind.to_owned(), name.to_owned()))?;
        Some(serde_yaml::from_value(value.clone()).unwrap_or_else(|e| panic!("{kind} {name} as k8s-openapi: {e}")))
    }

    /// An object of a kind k8s-openapi has no type for (a CRD), as JSON.
    fn custom(&self, kind: &str, name: &str) -> Option<serde_json::Value> {
        let value = self.objects.get(&(kind.to_owned(), name.to_owned()))?;
        Some(serde_json::to_value(value).unwrap_or_else(|e| panic!("{kind} {name} as JSON: {e}")))
    }

    fn all<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        let names: Vec<&String> = self.objects.keys().filter(|(k, _)| k == kind).map(|(_, n)| n).collect();
        names.into_iter().map(|n| self.get(kind, n).unwrap()).collect()
    }

    fn config(&self, service: &str) -> BTreeMap<String, String> {
        let name = format!("{RELEASE}-{service}");
        let config: ConfigMap = self.get("ConfigMap", &name).unwrap_or_else(|| panic!("no ConfigMap {name}"));
        config.data.unwrap_or_default()
    }
}

/// Whole seconds from the chart's `"<n>s"` durations.
fn seconds(value: &str) -> i64 {
    value.strip_suffix('s').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not whole seconds: {value}"))
}

/// How a pod stops, as rendered: the kubelet's preStop sleep, the binary's drain delay and
/// grace (from its ConfigMap) and the pod's termination grace period.
struct Shutdown {
    pre_stop: i64,
    drain: i64,
    grace: i64,
    termination: i64,
}

impl Shutdown {
    fn of(m: &Manifests, service: &str) -> Self {
        let name = format!("{RELEASE}-{service}");
        let deployment: Deployment = m.get("Deployment", &name).unwrap_or_else(|| panic!("no Deployment {name}"));
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        let container = pod.containers.iter().find(|c| c.name == service).unwrap();
        let pre_stop = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.sleep.as_ref())
            .map_or(0, |s| s.seconds);
        let env = m.config(service);
        Self {
            pre_stop,
            drain: seconds(&env["TICKETING_SERVER__DRAIN_DELAY"]),
            grace: seconds(&env["TICKETING_SERVER__SHUTDOWN_GRACE"]),
            termination: pod.termination_grace_period_seconds.expect("terminationGracePeriodSeconds"),
        }
    }

    /// How long after termination starts the pod still accepts new requests.
    fn serving(&self) -> i64 {
        self.pre_stop + self.drain
    }

    /// How long after termination starts it may still be answering one.
    fn working(&self) -> i64 {
        self.pre_stop + self.grace
    }
}

/// The port a probe checks, and how: `grpc`, or the HTTP path.
fn probe_target(probe: &Probe, container: &Container) -> (u16, String) {
    let named = |port: &IntOrString| match port {
        IntOrString::Int(p) => u16::try_from(*p).unwrap(),
        IntOrString::String(name) => {
            let ports = container.ports.as_deref().unwrap_or_default();
            let port = ports.iter().find(|p| p.name.as_deref() == Some(name)).expect("a named probe port exists");
            u16::try_from(port.container_port).unwrap()
        }
    };
    if let Some(grpc) = &probe.grpc {
        (u16::try_from(grpc.port).unwrap(), "grpc".into())
    } else if let Some(http) = &probe.http_get {
        (named(&http.port), http.path.clone().unwrap_or_default())
    } else {
        panic!("probe without grpc or httpGet: {probe:?}")
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr}"))
}

/// The Deployment of `binary` (`<release>-<binary>`): its container runs the binary with the
/// ports it binds, probes it serves, resources, and a restricted security context. Returns
/// the Deployment and the ports the container declares, by name.
fn check_pod(m: &Manifests, file: &str, binary: &str, facts: &Facts) -> (Deployment, BTreeMap<String, u16>) {
    let name = format!("{RELEASE}-{binary}");
    let (service, at) = (binary, format!("{file}: {binary}"));
    let deployment: Deployment = m.get("Deployment", &name).unwrap_or_else(|| panic!("{at}: no Deployment {name}"));
    let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = pod.containers.iter().find(|c| c.name == service).unwrap_or_else(|| panic!("{at}: no container"));
    assert_eq!(container.command.as_deref(), Some(&[format!("/usr/local/bin/{service}")][..]), "{at}: command");

    // The ports the binary binds: its defaults, and what the ConfigMap tells it.
    let config: ConfigMap = m.get("ConfigMap", &name).unwrap_or_else(|| panic!("{at}: no ConfigMap"));
    let env = config.data.unwrap_or_default();
    assert_eq!(port_of(&env["TICKETING_SERVER__GRPC_ADDR"]), facts.grpc, "{at}: gRPC address in the ConfigMap");
    assert_eq!(port_of(&env["TICKETING_SERVER__ADMIN_ADDR"]), facts.admin, "{at}: admin address in the ConfigMap");
    let declared: BTreeMap<String, u16> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), u16::try_from(p.container_port).unwrap()))
        .collect();
    let mut served = BTreeMap::from([("grpc".to_owned(), facts.grpc), ("admin".to_owned(), facts.admin)]);
    if let Some(http) = facts.http {
        served.insert("http".into(), http);
    }
    assert_eq!(declared, served, "{at}: container ports");

    let probe = |which: &str, probe: &Option<Probe>| {
        let probe = probe.as_ref().unwrap_or_else(|| panic!("{at}: no {which} probe"));
        probe_target(probe, container)
    };
    let health = (facts.admin, "/healthz".to_owned());
    assert_eq!(probe("startup", &container.startup_probe), health, "{at}: startup probe");
    assert_eq!(probe("liveness", &container.liveness_probe), health, "{at}: liveness probe");
    let readiness = probe("readiness", &container.readiness_probe);
    assert!(
        readiness == (facts.grpc, "grpc".into()) || readiness == (facts.admin, "/readyz".into()),
        "{at}: readiness probe {readiness:?} is neither gRPC health on {} nor /readyz on {}",
        facts.grpc,
        facts.admin
    );

    let resources = container.resources.as_ref().unwrap_or_else(|| panic!("{at}: no resources"));
    for (what, list) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        let list = list.as_ref().unwrap_or_else(|| panic!("{at}: no resource {what}"));
        assert!(list.contains_key("cpu") && list.contains_key("memory"), "{at}: {what} need cpu and memory");
    }

    check_security(&at, pod, container);
    (deployment, declared)
}

fn check_service(m: &Manifests, file: &str, service: &str) {
    let facts = facts(service);
    let name = format!("{RELEASE}-{service}");
    let at = format!("{file}: {service}");
    let (deployment, served) = check_pod(m, file, service, &facts);

    let kube_service: Service = m.get("Service", &name).unwrap_or_else(|| panic!("{at}: no Service"));
    let ports: BTreeMap<String, u16> = kube_service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), u16::try_from(p.port).unwrap()))
        .collect();
    assert_eq!(ports, served, "{at}: Service ports");

    let hpa: Option<HorizontalPodAutoscaler> = m.get("HorizontalPodAutoscaler", &name);
    if let Some(scaled) = m.objects.get(&("ScaledObject".to_owned(), name.clone())) {
        assert!(hpa.is_none(), "{at}: a ScaledObject and a plain HPA would fight over the Deployment");
        check_scaled_object(scaled, &at, &name, service);
    } else if DEVELOPMENT.contains(&file) {
        assert!(hpa.is_some() || deployment.spec.as_ref().unwrap().replicas.is_some(), "{at}: replicas or an HPA");
    } else {
        let hpa = hpa.unwrap_or_else(|| panic!("{at}: no HPA"));
        let spec = hpa.spec.unwrap();
        assert_eq!(
            (spec.scale_target_ref.kind.as_str(), spec.scale_target_ref.name.as_str()),
            ("Deployment", name.as_str())
        );
        assert!(spec.max_replicas > spec.min_replicas.unwrap_or(1), "{at}: the HPA can scale");
    }
    // The binary's drain is shorter than its grace (it refuses the rest), and the kubelet
    // never kills a pod that is still within both.
    let shutdown = Shutdown::of(m, service);
    assert!(shutdown.drain < shutdown.grace, "{at}: drain delay {} >= grace {}", shutdown.drain, shutdown.grace);
    assert!(shutdown.termination > shutdown.working(), "{at}: terminationGracePeriodSeconds too short");

    let pdb: PodDisruptionBudget = m.get("PodDisruptionBudget", &name).unwrap_or_else(|| panic!("{at}: no PDB"));
    let selector = pdb.spec.and_then(|s| s.selector).and_then(|s| s.match_labels).unwrap_or_default();
    let pod_labels = deployment.spec.unwrap().template.metadata.and_then(|m| m.labels).unwrap_or_default();
    assert!(
        !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{at}: PDB selects the pods"
    );
}

/// A KEDA ScaledObject in place of the HPA: it scales the service's Deployment through an
/// HPA of the service's own name, on CPU plus its triggers; each Kafka trigger watches one of
/// the service's own consumer groups (`<service>.…`) on an `.events` topic.
fn check_scaled_object(scaled: &serde_yaml::Value, at: &str, name: &str, service: &str) {
    let spec = &scaled["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"].as_str(), Some("Deployment"), "{at}: ScaledObject target");
    assert_eq!(spec["scaleTargetRef"]["name"].as_str(), Some(name), "{at}: ScaledObject target");
    assert_eq!(spec["advanced"]["horizontalPodAutoscalerConfig"]["name"].as_str(), Some(name), "{at}: HPA name");
    let (min, max) = (spec["minReplicaCount"].as_i64().unwrap(), spec["maxReplicaCount"].as_i64().unwrap());
    assert!(0 < min && min < max, "{at}: the ScaledObject can scale ({min}..{max})");
    let triggers = spec["triggers"].as_sequence().expect("triggers");
    assert!(triggers.iter().any(|t| t["type"] == "cpu"), "{at}: CPU stays a trigger");
    for trigger in triggers.iter().filter(|t| t["type"] == "kafka") {
        let group = trigger["metadata"]["consumerGroup"].as_str().unwrap_or_default();
        let topic = trigger["metadata"]["topic"].as_str().unwrap_or_default();
        assert!(group.starts_with(&format!("{service}.")), "{at}: lag of another service's group {group}");
        assert!(topic.ends_with(".events"), "{at}: lag on {topic}");
    }
}

/// The pre-scaler: one replica of the binary as it is, whose token may list and watch the
/// HPAs and get and patch only those it raises, each a rendered HPA that its ceiling fits;
/// its NetworkPolicy lets it reach the API server and Kafka; and the binary accepts the
/// configuration (it stops at the missing cluster, not at a key).
fn check_prescaler(m: &Manifests, file: &str) {
    let name = format!("{RELEASE}-prescaler");
    let at = format!("{file}: prescaler");
    let (deployment, _) = check_pod(m, file, "prescaler", &facts("prescaler"));
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1), "{at}: one writer");
    assert_eq!(spec.strategy.and_then(|s| s.type_).as_deref(), Some("Recreate"), "{at}: never two at once");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(name.as_str()), "{at}: its own ServiceAccount");
    assert_eq!(pod.automount_service_account_token, Some(true), "{at}: the token it patches with");

    let env = container_env(m, file, "prescaler");
    let mut raised = BTreeSet::new();
    for (key, hpa) in
        env.iter().filter(|(k, _)| k.starts_with("TICKETING_PRESCALER__SERVICES__") && k.ends_with("__HPA"))
    {
        let object: HorizontalPodAutoscaler =
            m.get("HorizontalPodAutoscaler", hpa).unwrap_or_else(|| panic!("{at}: {key} names no rendered HPA {hpa}"));
        let ceiling: i32 = env[&key.replace("__HPA", "__CEILING")].parse().unwrap();
        assert!(ceiling <= object.spec.unwrap().max_replicas, "{at}: {hpa}'s ceiling above its maxReplicas");
        raised.insert(hpa.clone());
    }
    assert!(!raised.is_empty(), "{at}: raises no HPA");

    let role: Role = m.get("Role", &format!("{name}-hpas")).unwrap_or_else(|| panic!("{at}: no Role"));
    let rules: Vec<(BTreeSet<String>, Option<BTreeSet<String>>)> = role
        .rules
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            assert_eq!(r.api_groups.as_deref(), Some(&["autoscaling".to_owned()][..]), "{at}: {r:?}");
            assert_eq!(r.resources.as_deref(), Some(&["horizontalpodautoscalers".to_owned()][..]), "{at}: {r:?}");
            (r.verbs.into_iter().collect(), r.resource_names.map(|n| n.into_iter().collect()))
        })
        .collect();
    let verbs = |v: &[&str]| v.iter().map(|v| (*v).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(rules, [(verbs(&["list", "watch"]), None), (verbs(&["get", "patch"]), Some(raised))], "{at}: Role");
    let binding: RoleBinding =
        m.get("RoleBinding", &format!("{name}-hpas")).unwrap_or_else(|| panic!("{at}: no RoleBinding"));
    assert_eq!(binding.role_ref.name, format!("{name}-hpas"), "{at}: RoleBinding");
    let subjects = binding.subjects.unwrap_or_default();
    assert!(subjects.iter().all(|s| s.kind == "ServiceAccount" && s.name == name), "{at}: bound to {subjects:?}");

    let policy: NetworkPolicy = m.get("NetworkPolicy", &name).unwrap_or_else(|| panic!("{at}: no NetworkPolicy"));
    let ports: BTreeSet<i32> = policy
        .spec
        .and_then(|s| s.egress)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|rule| rule.ports.unwrap_or_default())
        .filter_map(|p| match p.port {
            Some(IntOrString::Int(port)) => Some(port),
            _ => None,
        })
        .collect();
    for peer in ["kafka", "kubeApiServer"] {
        let wanted = network_ports(file, peer);
        assert!(wanted.is_subset(&ports), "{at}: egress to {peer} on {wanted:?}, not only {ports:?}");
    }

    let output = Command::new(crate::binary("prescaler")).env_clear().envs(&env).output().expect("run prescaler");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{at}: {stderr}");
    assert!(!stderr.contains("invalid configuration") && stderr.contains("Kubernetes"), "{at}: {stderr}");
}

/// The ports of `networkPolicy.<peer>` that `file` renders with (its own, else values.yaml's).
fn network_ports(file: &str, peer: &str) -> BTreeSet<i32> {
    let read = |f: &str| -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(root().join("charts/ticketing").join(f)).unwrap()).unwrap()
    };
    let ports = |v: &serde_yaml::Value| v["networkPolicy"][peer]["ports"].as_sequence().cloned();
    let list = ports(&read(file)).or_else(|| ports(&read("values.yaml"))).expect("networkPolicy ports");
    list.iter().map(|p| i32::try_from(p.as_i64().unwrap()).unwrap()).collect()
}

/// Restricted pod security: non-root with a numeric UID, read-only root filesystem, no
/// privilege escalation, every capability dropped, a seccomp profile.
fn check_security(at: &str, pod: &PodSpec, container: &Container) {
    let pod_security = pod.security_context.clone().unwrap_or_else(|| panic!("{at}: no pod security context"));
    let security = container.security_context.clone().unwrap_or_else(|| panic!("{at}: no security context"));
    assert!(security.run_as_non_root.or(pod_security.run_as_non_root) == Some(true), "{at}: runAsNonRoot");
    assert!(security.run_as_user.or(pod_security.run_as_user).is_some_and(|u| u > 0), "{at}: a numeric non-root UID");
    assert_eq!(security.read_only_root_filesystem, Some(true), "{at}: readOnlyRootFilesystem");
    assert_eq!(security.allow_privilege_escalation, Some(false), "{at}: allowPrivilegeEscalation");
    let dropped = security.capabilities.clone().and_then(|c| c.drop).unwrap_or_default();
    assert!(dropped.iter().any(|c| c == "ALL"), "{at}: capabilities drop ALL");
    assert!(security.seccomp_profile.or(pod_security.seccomp_profile).is_some(), "{at}: a seccomp profile");
}

/// The chart's values for one file: values.yaml with the file layered over it, as helm does.
fn values(file: &str) -> serde_yaml::Value {
    fn merge(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
        match (base, over) {
            (serde_yaml::Value::Mapping(base), serde_yaml::Value::Mapping(over)) => {
                for (key, value) in over {
                    match base.get_mut(&key) {
                        Some(slot) => merge(slot, value),
                        None => {
                            base.insert(key, value);
                        }
                    }
                }
            }
            (slot, over) => *slot = over,
        }
    }
    let read = |name: &str| -> serde_yaml::Value {
        let path = root().join("charts/ticketing").join(name);
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut merged = read("values.yaml");
    merge(&mut merged, read(file));
    merged
}

/// The pod spec and the named container of a Deployment.
fn pod_of(m: &Manifests, at: &str, name: &str, container: &str) -> (PodSpec, Container) {
    let deployment: Deployment = m.get("Deployment", name).unwrap_or_else(|| panic!("{at}: no Deployment {name}"));
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let found = pod.containers.iter().find(|c| c.name == container).cloned();
    (pod, found.unwrap_or_else(|| panic!("{at}: no container {container} in {name}")))
}

/// The memory a container requests and its limit.
fn memory(container: &Container) -> (Option<String>, Option<String>) {
    let resources = container.resources.clone().unwrap_or_default();
    let get = |list: Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
        list.and_then(|l| l.get("memory").map(|q| q.0.clone()))
    };
    (get(resources.requests), get(resources.limits))
}

/// QoS of the hot path (and of PgBouncer, which is on it): memory requested = its limit, the
/// chart's PriorityClass; everywhere: zone spread DoNotSchedule in production, and
/// IfNotPresent exactly when the image cannot change under its name.
fn check_qos(m: &Manifests, file: &str, values: &serde_yaml::Value) {
    let classes: Vec<PriorityClass> = m.all("PriorityClass");
    let class = match classes.as_slice() {
        [class] if class.value > 0 && class.global_default != Some(true) => class.metadata.name.clone().unwrap(),
        other => panic!("{file}: one hot-path PriorityClass, not global default: {other:?}"),
    };
    let mut hot: Vec<(String, String)> = HOT_PATH.iter().map(|s| (format!("{RELEASE}-{s}"), (*s).to_owned())).collect();
    if m.objects.contains_key(&("Deployment".to_owned(), PGBOUNCER.to_owned())) {
        hot.push((PGBOUNCER.to_owned(), "pgbouncer".to_owned()));
    }
    for (name, container) in &hot {
        let at = format!("{file}: {name}");
        let (pod, container) = pod_of(m, &at, name, container);
        let (request, limit) = memory(&container);
        assert!(limit.is_some() && request == limit, "{at}: memory request {request:?} = limit {limit:?}");
        assert_eq!(pod.priority_class_name.as_deref(), Some(class.as_str()), "{at}: the hot-path PriorityClass");
    }
    let immutable = values["image"]["immutableTags"].as_bool() == Some(true);
    let configured = values["image"]["pullPolicy"].as_str().unwrap();
    for service in SERVICES {
        let at = format!("{file}: {service}");
        let (pod, container) = pod_of(m, &at, &format!("{RELEASE}-{service}"), service);
        if !HOT_PATH.contains(&service) {
            assert_ne!(pod.priority_class_name.as_deref(), Some(class.as_str()), "{at}: not on the hot path");
        }
        let image = container.image.clone().unwrap_or_default();
        let expected = if image.contains("@sha256:") || immutable { "IfNotPresent" } else { configured };
        assert_eq!(container.image_pull_policy.as_deref(), Some(expected), "{at}: pull policy of {image}");
        let zone = pod
            .topology_spread_constraints
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.topology_key == "topology.kubernetes.io/zone");
        let zone = zone.unwrap_or_else(|| panic!("{at}: no zone spread"));
        if !DEVELOPMENT.contains(&file) && file != "values.yaml" {
            assert_eq!(zone.when_unsatisfiable, "DoNotSchedule", "{at}: production spreads over zones strictly");
        }
    }
}

/// The connection budget's objects: with database.pooler pgbouncer, a PgBouncer Deployment
/// (2+ replicas, restricted, transaction mode, >= 1.21 with prepared statements), its
/// Service, PDB and a NetworkPolicy with only the database services in and Postgres out;
/// with any pooler the services read the pooled URL and the migration Jobs the direct one.
fn check_pooler(m: &Manifests, file: &str, values: &serde_yaml::Value) {
    let pooler = values["database"]["pooler"].as_str().unwrap();
    let pooled_key = values["database"]["pooledUrlKey"].as_str().unwrap();
    let databases: Vec<&str> = SERVICES.into_iter().filter(|s| facts(s).database).collect();
    let url_key = |pod: &PodSpec, container: &str| {
        let container = pod.containers.iter().find(|c| c.name == container).unwrap();
        let var = container.env.iter().flatten().find(|e| e.name == "TICKETING_DATABASE__URL");
        var.and_then(|v| v.value_from.clone()).and_then(|v| v.secret_key_ref).map(|r| r.key)
    };
    let expected = if pooler == "none" { "database-url" } else { pooled_key };
    for service in &databases {
        let (pod, _) = pod_of(m, file, &format!("{RELEASE}-{service}"), service);
        assert_eq!(url_key(&pod, service).as_deref(), Some(expected), "{file}: {service} reads its database URL");
    }
    for job in m.all::<Job>("Job") {
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(url_key(&pod, "migrate").as_deref(), Some("database-url"), "{file}: migrations bypass the pooler");
    }

    let deployment: Option<Deployment> = m.get("Deployment", PGBOUNCER);
    if pooler != "pgbouncer" {
        assert!(deployment.is_none(), "{file}: PgBouncer without database.pooler: pgbouncer");
        return;
    }
    let at = format!("{file}: PgBouncer");
    let deployment = deployment.unwrap_or_else(|| panic!("{at}: no Deployment"));
    let spec = deployment.spec.unwrap();
    assert!(spec.replicas.is_some_and(|r| r >= 2), "{at}: two replicas or more");
    assert!(m.get::<HorizontalPodAutoscaler>("HorizontalPodAutoscaler", PGBOUNCER).is_none(), "{at}: never autoscaled");
    let pod_labels = spec.template.metadata.and_then(|m| m.labels).unwrap_or_default();
    let pod = spec.template.spec.unwrap();
    let container =
        pod.containers.iter().find(|c| c.name == "pgbouncer").unwrap_or_else(|| panic!("{at}: no container"));
    check_security(&at, &pod, container);
    assert_eq!(pod.automount_service_account_token, Some(false), "{at}: no API token");
    assert!(container.env.is_none() && container.env_from.is_none(), "{at}: no secret in the environment");
    let image = container.image.clone().unwrap_or_default();
    let version: Vec<u32> = image
        .rsplit_once(':')
        .map(|(_, tag)| {
            tag.trim_start_matches('v').split(['.', '-', '@']).take(2).filter_map(|p| p.parse().ok()).collect()
        })
        .unwrap_or_default();
    assert!(version.as_slice() >= [1, 21].as_slice(), "{at}: {image} is PgBouncer >= 1.21");

    let config: ConfigMap = m.get("ConfigMap", PGBOUNCER).unwrap_or_else(|| panic!("{at}: no ConfigMap"));
    let ini =
        config.data.unwrap_or_default().remove("pgbouncer.ini").unwrap_or_else(|| panic!("{at}: no pgbouncer.ini"));
    let setting = |key: &str| ini.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(" = ").map(str::to_owned));
    assert_eq!(setting("pool_mode").as_deref(), Some("transaction"), "{at}: transaction pooling");
    let prepared = setting("max_prepared_statements").and_then(|v| v.parse::<u32>().ok());
    assert!(prepared.is_some_and(|n| n > 0), "{at}: max_prepared_statements > 0 for sqlx's named statements");
    assert_eq!(setting("auth_type").as_deref(), Some("scram-sha-256"), "{at}: SCRAM");

    let selects = |selector: &BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
    };
    let service: Service = m.get("Service", PGBOUNCER).unwrap_or_else(|| panic!("{at}: no Service"));
    let service = service.spec.unwrap();
    assert!(selects(&service.selector.unwrap_or_default()), "{at}: the Service selects the pods");
    let ports: Vec<i32> = service.ports.unwrap_or_default().iter().map(|p| p.port).collect();
    assert_eq!(ports, [5432], "{at}: Service port");
    let pdb: PodDisruptionBudget = m.get("PodDisruptionBudget", PGBOUNCER).unwrap_or_else(|| panic!("{at}: no PDB"));
    assert!(selects(&pdb.spec.and_then(|s| s.selector).and_then(|s| s.match_labels).unwrap_or_default()), "{at}: PDB");

    let policy: NetworkPolicy = m.get("NetworkPolicy", PGBOUNCER).unwrap_or_else(|| panic!("{at}: no NetworkPolicy"));
    let policy = policy.spec.unwrap();
    assert!(
        selects(&policy.pod_selector.clone().and_then(|s| s.match_labels).unwrap_or_default()),
        "{at}: the policy selects the pods"
    );
    let ingress = policy.ingress.unwrap_or_default();
    let from: BTreeSet<String> = ingress
        .iter()
        .flat_map(|rule| rule.from.iter().flatten())
        .map(|peer| {
            let labels = peer.pod_selector.as_ref().and_then(|s| s.match_labels.clone()).unwrap_or_default();
            labels.get("app.kubernetes.io/name").cloned().unwrap_or_else(|| panic!("{at}: a peer other than a service"))
        })
        .collect();
    let expected: BTreeSet<String> = databases.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(from, expected, "{at}: only the services with a database connect");
    let egress_ports: BTreeSet<i32> = policy
        .egress
        .unwrap_or_default()
        .iter()
        .flat_map(|rule| rule.ports.iter().flatten())
        .filter_map(|p| match p.port {
            Some(IntOrString::Int(port)) => Some(port),
            _ => None,
        })
        .collect();
    let mut allowed: BTreeSet<i32> = values["networkPolicy"]["dns"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap() as i32)
        .collect();
    allowed.extend(
        values["networkPolicy"]["postgres"]["ports"].as_sequence().unwrap().iter().map(|p| p.as_i64().unwrap() as i32),
    );
    assert_eq!(egress_ports, allowed, "{at}: out only to DNS and Postgres");

    // The services' own policies reach Postgres only through PgBouncer.
    for service in &databases {
        let policy: NetworkPolicy = m.get("NetworkPolicy", &format!("{RELEASE}-{service}")).unwrap();
        let to_pgbouncer = policy.spec.unwrap().egress.unwrap_or_default().iter().any(|rule| {
            rule.to.iter().flatten().any(|peer| {
                let labels = peer.pod_selector.as_ref().and_then(|s| s.match_labels.clone()).unwrap_or_default();
                selects(&labels)
            })
        });
        assert!(to_pgbouncer, "{file}: {service} may reach PgBouncer");
    }
}

/// One migration Job per service with a database, as a pre-install/pre-upgrade hook.
fn check_migrations(m: &Manifests, file: &str) {
    let mut migrated = BTreeSet::new();
    for job in m.all::<Job>("Job") {
        let name = job.metadata.name.clone().unwrap_or_default();
        let hook = job.metadata.annotations.as_ref().and_then(|a| a.get("helm.sh/hook")).cloned().unwrap_or_default();
        assert!(hook.contains("pre-install") && hook.contains("pre-upgrade"), "{file}: Job {name} hook is {hook:?}");
        let pod = job.spec.unwrap().template.spec.unwrap();
        for container in pod.containers {
            let command = [container.command.unwrap_or_default(), container.args.unwrap_or_default()].concat();
            if let [binary, migrate] = command.as_slice()
                && migrate == "migrate"
                && let Some(service) = binary.strip_prefix("/usr/local/bin/")
            {
                migrated.insert(service.to_owned());
            }
        }
    }
    let databases: BTreeSet<String> = SERVICES.iter().filter(|s| facts(s).database).map(|s| (*s).to_owned()).collect();
    assert_eq!(migrated, databases, "{file}: `<service> migrate` Jobs = the services with a database");
}

/// Every values file of the chart, with its name.
fn values_files() -> Vec<(String, PathBuf)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("charts/ticketing"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().is_some_and(|n| n.starts_with("values") && n.ends_with(".yaml")))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "values.yaml and the minikube, GKE and EKS files: {files:?}");
    files.into_iter().map(|p| (p.file_name().unwrap().to_str().unwrap().to_owned(), p)).collect()
}

#[test]
fn the_chart_runs_the_binaries_as_they_are() {
    let helm = helm();
    for (file, path) in values_files() {
        let m = Manifests::render(&helm, &path);
        let values = values(&file);
        let deployments: BTreeSet<String> =
            m.all::<Deployment>("Deployment").into_iter().filter_map(|d| d.metadata.name).collect();
        let mut expected: BTreeSet<String> = SERVICES.iter().map(|s| format!("{RELEASE}-{s}")).collect();
        // A developer's cluster has no HPAs for the pre-scaler to raise.
        if !DEVELOPMENT.contains(&file.as_str()) {
            expected.insert(format!("{RELEASE}-prescaler"));
            check_prescaler(&m, &file);
        }
        if values["database"]["pooler"].as_str() == Some("pgbouncer") {
            expected.insert(PGBOUNCER.to_owned());
        }
        assert_eq!(deployments, expected, "{file}: one Deployment per service, the pre-scaler and PgBouncer");
        for service in SERVICES {
            check_service(&m, &file, service);
        }
        check_migrations(&m, &file);
        check_qos(&m, &file, &values);
        check_pooler(&m, &file, &values);
    }
}

/// A stand-in for the value of a Secret's key, of the shape the binaries check.
fn sample_secret(key: &str) -> String {
    match key {
        // Nothing listens on port 1: `migrate` stops there, after the configuration. The
        // pooled URL (database.pooledUrlKey) is a database URL too, pointing at the pooler.
        "database-url" | "pooled-database-url" => "postgres://ticketing@127.0.0.1:1/ticketing".into(),
        _ => format!("sample_{key}_0123456789abcdef0123456789abcdef").replace('-', "_"),
    }
}

/// The environment the kubelet gives `service`'s container: its ConfigMaps (`envFrom`),
/// then its `env`, each Secret reference filled with a sample of that key and the pod's
/// name with a sample of one.
fn container_env(m: &Manifests, file: &str, service: &str) -> BTreeMap<String, String> {
    let name = format!("{RELEASE}-{service}");
    let deployment: Deployment = m.get("Deployment", &name).unwrap_or_else(|| panic!("{file}: no Deployment {name}"));
    pod_env(m, file, &name, deployment.spec.unwrap().template.spec.unwrap(), service)
}

/// [`container_env`] for the container `container` of `pod`, a pod named after `name`.
fn pod_env(m: &Manifests, file: &str, name: &str, pod: PodSpec, container: &str) -> BTreeMap<String, String> {
    let container = pod.containers.into_iter().find(|c| c.name == container).unwrap();
    let service = &container.name;
    let mut env = BTreeMap::new();
    for source in container.env_from.unwrap_or_default() {
        let from =
            source.config_map_ref.unwrap_or_else(|| panic!("{file}: {service} takes envFrom other than a ConfigMap"));
        let config: ConfigMap =
            m.get("ConfigMap", &from.name).unwrap_or_else(|| panic!("{file}: no ConfigMap {}", from.name));
        env.extend(config.data.unwrap_or_default());
    }
    for var in container.env.unwrap_or_default() {
        let from = var.value_from.unwrap_or_default();
        let secret = from.secret_key_ref.map(|r| sample_secret(&r.key));
        // The downward API: a pod's name as the kubelet would give it.
        let field = from.field_ref.map(|f| match f.field_path.as_str() {
            "metadata.name" => format!("{name}-7d9c5b6f4-x2x9q"),
            other => panic!("{file}: {} from the unexpected field {other}", var.name),
        });
        let value = var
            .value
            .or(secret)
            .or(field)
            .unwrap_or_else(|| panic!("{file}: {} is neither a value, a Secret key nor the pod's name", var.name));
        env.insert(var.name, value);
    }
    env
}

/// The payment binary, given what each values file renders for its container (and a sample
/// of each Secret key it reads), accepts the configuration: the chart's variables are the
/// binary's keys, and production ones pay through the processor with its keys from the
/// Secret (a simulated or incomplete one exits 78). `scripts/check-deploy.sh` checks the
/// same renders for I9 itself: processor, https, secrets never in a ConfigMap.
#[test]
fn payment_accepts_the_configuration_each_values_file_renders() {
    let helm = helm();
    for (file, path) in values_files() {
        let env = container_env(&Manifests::render(&helm, &path), &file, "payment");
        let output =
            Command::new(crate::binary("payment")).arg("check").env_clear().envs(&env).output().expect("run payment");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if env.get("TICKETING_PAYMENT__PROCESSOR__BASE_URL").is_some_and(String::is_empty) {
            // values.yaml leaves the processor's URL to the operator: refused until set.
            assert_eq!(output.status.code(), Some(78), "{file}: {stderr}");
            assert_eq!(stderr.matches("key `").collect::<Vec<_>>().len(), 1, "{file}: one issue only: {stderr}");
            assert!(stderr.contains("key `payment.processor.base_url`"), "{file}: {stderr}");
        } else {
            assert_eq!(output.status.code(), Some(0), "{file}: {stderr}");
        }
    }
}

/// Each migration Job, given only what it renders (the database URL, no service secret),
/// gets past the configuration in production: `migrate` checks the keys it uses, so a
/// release installs without handing its hooks the services' secrets.
#[test]
fn migration_jobs_start_with_only_what_the_chart_gives_them() {
    let helm = helm();
    for (file, path) in values_files() {
        let m = Manifests::render(&helm, &path);
        for job in m.all::<Job>("Job") {
            let name = job.metadata.name.clone().unwrap_or_default();
            let pod = job.spec.unwrap().template.spec.unwrap();
            let Some(migrate) = pod.containers.iter().find(|c| c.args.as_deref() == Some(&["migrate".to_owned()]))
            else {
                continue;
            };
            let command = migrate.command.clone().unwrap_or_default();
            let service = command[0].strip_prefix("/usr/local/bin/").expect("a service binary").to_owned();
            let env = pod_env(&m, &file, &name, pod, "migrate");
            let output =
                Command::new(crate::binary(&service)).arg("migrate").env_clear().envs(&env).output().expect("run");
            let stderr = String::from_utf8_lossy(&output.stderr);
            // Accepted, then stopped at the unreachable database (port 1).
            assert_eq!(output.status.code(), Some(1), "{file}: Job {name}: {stderr}");
            assert!(!stderr.contains("invalid configuration"), "{file}: Job {name}: {stderr}");
        }
    }
}

#[test]
fn skaffold_builds_every_service_binary_the_chart_deploys() {
    let root = root();
    let crates: BTreeSet<String> = std::fs::read_dir(root.join("services"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists() && p.join("src/main.rs").exists())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    let binaries: BTreeSet<String> = SERVICES.iter().chain(CONTROLLERS).map(|s| (*s).to_owned()).collect();
    assert_eq!(crates, binaries, "service and controller crates with a binary");

    let skaffold: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("skaffold.yaml")).unwrap()).unwrap();
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("charts/ticketing/values.yaml")).unwrap()).unwrap();
    let mut chart: BTreeSet<String> =
        values["services"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    chart.extend(CONTROLLERS.iter().filter(|c| values[**c].is_mapping()).map(|c| (*c).to_owned()));
    let mut built = BTreeSet::new();
    for artifact in skaffold["build"]["artifacts"].as_sequence().expect("skaffold build.artifacts") {
        let image = artifact["image"].as_str().unwrap();
        let docker = &artifact["docker"];
        let service =
            docker["buildArgs"]["SERVICE"].as_str().unwrap_or_else(|| panic!("{image}: no SERVICE build arg"));
        assert_eq!(image, service, "artifact {image} builds SERVICE={service}");
        assert_eq!(docker["dockerfile"].as_str().unwrap_or("Dockerfile"), "Dockerfile", "{image}: from the Dockerfile");
        let manifest = std::fs::read_to_string(root.join("services").join(service).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("name = \"ticketing-{service}\"")),
            "{service}: the crate ticketing-{service}"
        );
        assert!(
            chart.contains(service),
            "{service}: neither services.{service} nor {service} in the chart's values.yaml"
        );
        built.insert(service.to_owned());
    }
    assert_eq!(built, crates, "skaffold artifacts = service binaries");
    assert_eq!(chart, crates, "chart entries = service binaries");
}

/// The front ends the values files put before the gateway, from the providers' documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrontEnd {
    /// Clients (or `kubectl port-forward`) connect to the pods.
    Direct,
    /// GKE's global external Application Load Balancer, through the Gateway API: it
    /// appends "<client>, <forwarding rule's address>" to `X-Forwarded-For` and connects
    /// from a Google front end.
    GkeApplicationLoadBalancer,
    /// The AWS ALB (processing mode append): it appends the client's address and connects
    /// from one of its own nodes.
    AwsAlb,
}

impl FrontEnd {
    fn of(file: &str) -> Self {
        match file {
            "values-gke.yaml" => Self::GkeApplicationLoadBalancer,
            "values-eks.yaml" => Self::AwsAlb,
            _ => Self::Direct,
        }
    }

    /// The `X-Forwarded-For` the gateway receives when a client at `client` sent `sent`.
    fn forwarded(self, sent: &str, client: &str) -> String {
        let prefix = if sent.is_empty() { String::new() } else { format!("{sent}, ") };
        match self {
            Self::GkeApplicationLoadBalancer => format!("{prefix}{client}, 34.117.0.1"),
            Self::AwsAlb => format!("{prefix}{client}"),
            Self::Direct => sent.to_owned(),
        }
    }
}

/// The gateway's edge per values file: the trusted hop count matches the load balancer in
/// front, its drain outlasts the load balancer's deregistration, and the load balancer's
/// own objects probe the gateway's real readiness and drain as long as a pod still works.
#[test]
fn the_gateway_edge_fits_each_cloud_load_balancer() {
    let helm = helm();
    let backend = format!("{RELEASE}-gateway");
    let gateway = facts("gateway");
    for (file, path) in values_files() {
        let m = Manifests::render(&helm, &path);
        let env = m.config("gateway");
        let front = FrontEnd::of(&file);
        let (hops, front_end) = match front {
            FrontEnd::Direct => ("0", None),
            FrontEnd::GkeApplicationLoadBalancer => ("2", Some("httpRoute")),
            FrontEnd::AwsAlb => ("1", Some("ingress alb")),
        };
        assert_eq!(env["TICKETING_GATEWAY__RATE_LIMITS__TRUSTED_PROXY_HOPS"], hops, "{file}: trusted hops");
        assert_eq!(env.get("TICKETING_GATEWAY__FRONT_END").map(String::as_str), front_end, "{file}: front end");
        let shutdown = Shutdown::of(&m, "gateway");
        let policies = ["HealthCheckPolicy", "GCPBackendPolicy"].map(|kind| m.custom(kind, &backend));
        match front {
            FrontEnd::Direct => {
                assert!(policies.iter().all(Option::is_none), "{file}: GKE policies without GKE");
                assert!(m.get::<Ingress>("Ingress", &backend).is_none(), "{file}: an Ingress");
            }
            FrontEnd::GkeApplicationLoadBalancer => {
                // NEG detach takes up to a minute: the gateway serves through it.
                assert!(
                    shutdown.serving() >= 60,
                    "{file}: the gateway serves {} s after termination",
                    shutdown.serving()
                );
                let [Some(health), Some(backend_policy)] = policies else {
                    panic!("{file}: no HealthCheckPolicy or GCPBackendPolicy {backend}")
                };
                for policy in [&health, &backend_policy] {
                    assert_eq!(policy["apiVersion"], "networking.gke.io/v1", "{file}");
                    assert_eq!(
                        policy["spec"]["targetRef"],
                        serde_json::json!({"group": "", "kind": "Service", "name": &backend})
                    );
                }
                let check = &health["spec"]["default"];
                let http = &check["config"]["httpHealthCheck"];
                assert_eq!(check["config"]["type"], "HTTP", "{file}");
                assert_eq!(http["portSpecification"], "USE_FIXED_PORT", "{file}");
                assert_eq!(http["port"], gateway.admin, "{file}: the health check's port is the admin port");
                assert_eq!(http["requestPath"], "/readyz", "{file}: the health check probes readiness");
                assert!(
                    check["timeoutSec"].as_i64().unwrap() <= check["checkIntervalSec"].as_i64().unwrap(),
                    "{file}: the health check's timeout exceeds its interval"
                );
                let draining = backend_policy["spec"]["default"]["connectionDraining"]["drainingTimeoutSec"].as_i64();
                assert_eq!(draining, Some(shutdown.working()), "{file}: draining = preStop + grace");
                assert!(shutdown.termination > shutdown.working(), "{file}");
                let route: serde_json::Value = m.custom("HTTPRoute", &backend).expect("an HTTPRoute");
                let backend_ref = &route["spec"]["rules"][0]["backendRefs"][0];
                assert_eq!(
                    (backend_ref["name"].as_str(), backend_ref["port"].as_u64()),
                    (Some(backend.as_str()), gateway.http.map(u64::from))
                );
            }
            FrontEnd::AwsAlb => {
                assert!(
                    shutdown.serving() >= 60,
                    "{file}: the gateway serves {} s after termination",
                    shutdown.serving()
                );
                assert!(policies.iter().all(Option::is_none), "{file}: GKE policies on EKS");
                let ingress: Ingress = m.get("Ingress", &backend).unwrap_or_else(|| panic!("{file}: no Ingress"));
                let annotations = ingress.metadata.annotations.unwrap_or_default();
                let annotation =
                    |key: &str| annotations.get(&format!("alb.ingress.kubernetes.io/{key}")).map(String::as_str);
                assert_eq!(ingress.spec.unwrap().ingress_class_name.as_deref(), Some("alb"));
                // Readiness gates and the deregistration delay need IP targets (the pods).
                assert_eq!(annotation("target-type"), Some("ip"), "{file}");
                let delay = format!("deregistration_delay.timeout_seconds={}", shutdown.working());
                assert_eq!(
                    annotation("target-group-attributes"),
                    Some(delay.as_str()),
                    "{file}: delay = preStop + grace"
                );
                assert_eq!(annotation("healthcheck-port"), Some(gateway.admin.to_string().as_str()), "{file}");
                assert_eq!(annotation("healthcheck-path"), Some("/readyz"), "{file}");
                assert_eq!(
                    annotation("load-balancer-attributes"),
                    Some("routing.http.xff_header_processing.mode=append"),
                    "{file}: the hop count assumes the ALB appends"
                );
            }
        }
        // In production behind a load balancer, no trusted hop is refused.
        if front_end.is_some() {
            let refused = Manifests::render_with(&helm, &path, &["--set", "expose.trustedProxyHops=0"]).err();
            let refused = refused.unwrap_or_else(|| panic!("{file}: rendered with trustedProxyHops 0"));
            assert!(refused.contains("expose.trustedProxyHops is 0"), "{file}: {refused}");
        }
    }
}

/// The gateway binary, with the hop count each cloud's values file renders and a tight
/// per-IP limit, behind the `X-Forwarded-For` that cloud's load balancer writes: the limit
/// follows the client's real address whatever the client forges, and another client is
/// not held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forwarded_for_chains_do_not_choose_the_rate_limit_key() {
    let helm = helm();
    for (file, path) in values_files() {
        let front = FrontEnd::of(&file);
        if front == FrontEnd::Direct {
            continue;
        }
        let hops =
            Manifests::render(&helm, &path).config("gateway")["TICKETING_GATEWAY__RATE_LIMITS__TRUSTED_PROXY_HOPS"]
                .clone();
        let http = ticketing_testkit::process::free_port();
        let env = [
            ("TICKETING_GATEWAY__HTTP_ADDR", format!("127.0.0.1:{http}")),
            ("TICKETING_GATEWAY__RATE_LIMITS__TRUSTED_PROXY_HOPS", hops),
            ("TICKETING_GATEWAY__RATE_LIMITS__IP__PER_SECOND", "0.001".to_owned()),
            ("TICKETING_GATEWAY__RATE_LIMITS__IP__BURST", "3".to_owned()),
        ];
        let mut gateway = crate::Process::start_with("gateway", &ticketing_testkit::kafka_config(), &env).await;
        gateway.wait_serving().await;
        let client = reqwest::Client::new();
        let get = |forwarded: String| {
            let request =
                client.get(format!("http://127.0.0.1:{http}/openapi.json")).header("x-forwarded-for", forwarded);
            async move { request.send().await.expect("the gateway answers").status().as_u16() }
        };
        let buyer = "203.0.113.7";
        // Until Redis first answers a request may pass unchecked: send until refused.
        let mut sent = 0;
        while get(front.forwarded(&format!("198.18.0.{sent}"), buyer)).await != 429 {
            sent += 1;
            assert!(sent < 50, "{file}: never limited, each request forging another address:\n{}", gateway.log());
        }
        // Nothing, other addresses, garbage, or a whole chain as the load balancer writes one.
        let chain = front.forwarded("", "198.51.100.3");
        for forged in ["", "198.51.100.1", "198.51.100.1, 198.51.100.2", "garbage", chain.as_str()] {
            let status = get(front.forwarded(forged, buyer)).await;
            assert_eq!(status, 429, "{file}: forging {forged:?} escaped the buyer's limit");
        }
        assert_eq!(get(front.forwarded("", "198.51.100.9")).await, 200, "{file}: another buyer is held back");
        assert_eq!(get(front.forwarded(buyer, "198.51.100.10")).await, 200, "{file}: forging the buyer's address");
    }
}

/// Whether every label of `selector` (a `matchLabels`) is among `labels`.
fn selects(selector: &serde_json::Value, labels: &BTreeMap<String, String>) -> bool {
    let selector = selector.as_object().filter(|s| !s.is_empty());
    selector.is_some_and(|s| s.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()))
}

/// Every cloud values file monitors what the binaries export (issue 15: the GKE render had
/// no monitoring object at all): one ServiceMonitor (Prometheus Operator) or PodMonitoring
/// (Google Cloud Managed Service for Prometheus) per service, selecting its pods (or their
/// Service) and scraping `/metrics` on the port the binary serves it on; and exactly one
/// kind of rules object, a PrometheusRule or a GMP Rules/ClusterRules, whose spec is the
/// rules file `promtool test rules` tests.
#[test]
fn every_cloud_scrapes_each_service_and_loads_the_rules() {
    let helm = helm();
    let rules_file = root().join("charts/ticketing/files/prometheus/ticketing.rules.yml");
    let rules: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(rules_file).unwrap()).unwrap();
    for (file, path) in values_files() {
        if file == "values.yaml" || DEVELOPMENT.contains(&file.as_str()) {
            continue;
        }
        let m = Manifests::render(&helm, &path);
        let rule_objects: Vec<(&str, serde_json::Value)> = ["PrometheusRule", "Rules", "ClusterRules"]
            .into_iter()
            .filter_map(|kind| m.custom(kind, RELEASE).map(|o| (kind, o)))
            .collect();
        let kinds: Vec<&str> = rule_objects.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds.len(), 1, "{file}: one rules object, not {kinds:?}");
        let (kind, object) = &rule_objects[0];
        assert!(object["spec"] == rules, "{file}: the {kind}'s spec is not the rules file");

        for service in SERVICES {
            let facts = facts(service);
            let name = format!("{RELEASE}-{service}");
            let at = format!("{file}: {service}");
            let deployment: Deployment = m.get("Deployment", &name).unwrap();
            let template = deployment.spec.unwrap().template;
            let pod_labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
            let admin_port =
                template.spec.unwrap().containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
                    (p.name.as_deref() == Some("admin")).then(|| u16::try_from(p.container_port).unwrap())
                });
            let kube_service: Service = m.get("Service", &name).unwrap();
            let service_labels = kube_service.metadata.labels.unwrap_or_default();
            let mut scraped = false;
            for (kind, target_labels) in [("ServiceMonitor", &service_labels), ("PodMonitoring", &pod_labels)] {
                let Some(object) = m.custom(kind, &name) else { continue };
                scraped = true;
                assert!(selects(&object["spec"]["selector"]["matchLabels"], target_labels), "{at}: {kind} selector");
                let endpoints = object["spec"]["endpoints"].as_array().cloned().unwrap_or_default();
                let scrapes: Vec<(&str, &str)> = endpoints
                    .iter()
                    .map(|e| (e["port"].as_str().unwrap_or_default(), e["path"].as_str().unwrap_or("/metrics")))
                    .collect();
                assert_eq!(scrapes, [("admin", "/metrics")], "{at}: {kind} endpoints");
            }
            assert!(scraped, "{at}: neither a ServiceMonitor nor a PodMonitoring");
            // Both name the port `admin`: the container's (PodMonitoring) or the Service's,
            // which check_service holds to the same number. The binary serves /metrics there.
            assert_eq!(admin_port, Some(facts.admin), "{at}: the admin port scraped is the binary's");
        }
    }
}
