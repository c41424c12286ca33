//! A fake Kubernetes API server for `autoscaling/v2` HorizontalPodAutoscalers in one
//! namespace: list, watch (replayed from an event log), and JSON merge patches, conditional
//! on `metadata.resourceVersion` when the patch carries one (409 otherwise), as the real one.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const NAMESPACE: &str = "ticketing";
const PATH: &str = "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers";

#[derive(Default)]
struct ApiState {
    version: u64,
    objects: BTreeMap<String, Value>,
    /// (resource version, ADDED/MODIFIED, object): what watches replay.
    log: Vec<(u64, &'static str, Value)>,
    /// Every patch accepted, in order: (HPA, body).
    patches: Vec<(String, Value)>,
    /// Patches are refused with 403 Forbidden.
    refuse: bool,
    refused: usize,
}

pub struct FakeApi {
    state: Mutex<ApiState>,
    changed: tokio::sync::watch::Sender<u64>,
}

/// An HPA as the chart renders it.
pub fn hpa(name: &str, min: i64, max: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min, "maxReplicas": max,
        },
    })
}

fn status(code: StatusCode, reason: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

/// RFC 7386: `null` removes a key, objects merge, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().unwrap();
    for (key, value) in patch {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

impl FakeApi {
    pub async fn start() -> (Arc<Self>, kube::Client) {
        let api = Arc::new(Self { state: Mutex::default(), changed: tokio::sync::watch::channel(0).0 });
        let app = axum::Router::new()
            .route(PATH, axum::routing::get(list_or_watch))
            .route(&format!("{PATH}/{{name}}"), axum::routing::get(get_one).patch(patch))
            .with_state(api.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = kube::Config::new(url.parse().unwrap());
        (api, kube::Client::try_from(config).expect("a kube client for the fake API"))
    }

    /// Stores `object` under a new version and tells the watches.
    fn store(&self, s: &mut ApiState, mut object: Value) {
        s.version += 1;
        object["metadata"]["resourceVersion"] = json!(s.version.to_string());
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let kind = if s.objects.contains_key(&name) { "MODIFIED" } else { "ADDED" };
        s.log.push((s.version, kind, object.clone()));
        s.objects.insert(name, object);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Creates or replaces an HPA, as `helm upgrade` would.
    pub fn put(&self, object: Value) {
        let mut s = self.state.lock().unwrap();
        self.store(&mut s, object);
    }

    pub fn get(&self, name: &str) -> Value {
        self.state.lock().unwrap().objects[name].clone()
    }

    pub fn patches(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().patches.clone()
    }

    pub fn refuse(&self, refuse: bool) {
        self.state.lock().unwrap().refuse = refuse;
    }

    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }
}

async fn list_or_watch(
    State(api): State<Arc<FakeApi>>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if namespace != NAMESPACE {
        return status(StatusCode::NOT_FOUND, "NotFound");
    }
    let s = api.state.lock().unwrap();
    if query.get("watch").map(String::as_str) != Some("true") {
        let items: Vec<Value> = s.objects.values().cloned().collect();
        return axum::Json(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList",
            "metadata": {"resourceVersion": s.version.to_string()}, "items": items,
        }))
        .into_response();
    }
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let seed = (api.clone(), from, api.changed.subscribe());
    drop(s);
    let events = futures::stream::unfold(seed, |(api, mut next, mut changed)| async move {
        loop {
            let line = {
                let s = api.state.lock().unwrap();
                s.log.iter().find(|(v, ..)| *v > next).map(|(v, kind, object)| {
                    next = *v;
                    json!({"type": kind, "object": object}).to_string() + "\n"
                })
            };
            if let Some(line) = line {
                return Some((Ok::<_, Infallible>(line), (api, next, changed)));
            }
            changed.changed().await.ok()?;
        }
    });
    Response::new(Body::from_stream(events))
}

async fn get_one(State(api): State<Arc<FakeApi>>, Path((_, name)): Path<(String, String)>) -> Response {
    match api.state.lock().unwrap().objects.get(&name) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => status(StatusCode::NOT_FOUND, "NotFound"),
    }
}

async fn patch(State(api): State<Arc<FakeApi>>, Path((_, name)): Path<(String, String)>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).expect("a JSON patch");
    let mut s = api.state.lock().unwrap();
    if s.refuse {
        s.refused += 1;
        return status(StatusCode::FORBIDDEN, "Forbidden");
    }
    let Some(mut object) = s.objects.get(&name).cloned() else { return status(StatusCode::NOT_FOUND, "NotFound") };
    if let Some(expected) = body["metadata"]["resourceVersion"].as_str()
        && object["metadata"]["resourceVersion"] != expected
    {
        return status(StatusCode::CONFLICT, "Conflict");
    }
    merge(&mut object, &body);
    s.patches.push((name, body));
    api.store(&mut s, object.clone());
    let stored = s.log.last().unwrap().2.clone();
    axum::Json(stored).into_response()
}
