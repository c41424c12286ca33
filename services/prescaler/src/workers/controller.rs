//! The Kubernetes side: a kube-runtime controller over the namespace's HPAs that sets each
//! managed one's floor to what [`crate::domain::plan::decide`] says, by a conditional merge patch.
//!
//! Each HPA is reconciled when it changes (a `helm upgrade` that put the chart's floor back
//! is undone at once), when the schedule changes, at the next window boundary, and at least
//! every `prescaler.resync`. What the pre-scaler did lives on the HPA itself: the floor it
//! raised from and until when, as annotations, so a restarted pre-scaler finds it there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt as _};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
use serde_json::json;
use ticketing_platform::metrics::Metrics;
use ticketing_proto::events::v1::Envelope;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{PrescalerSettings, Target};
use crate::domain::plan::{Decision, Observed, Window, decide};
use crate::domain::schedule::Schedule;

/// The annotation holding the floor the pre-scaler raised from; present while raised.
pub const BASELINE_ANNOTATION: &str = "prescaler.ticketing.dev/baseline-min-replicas";
/// The annotation holding when the raised floor ends (RFC 3339).
pub const UNTIL_ANNOTATION: &str = "prescaler.ticketing.dev/until";
/// The field manager of the pre-scaler's patches.
const MANAGER: &str = "ticketing-prescaler";
/// How long a refused or failed reconcile waits before it is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// The schedule and whether it is complete (the topic read to the end seen at start),
/// shared between the catalog reader that writes it and the controller that reads it.
pub struct Knowledge {
    schedule: RwLock<Schedule>,
    complete: AtomicBool,
    changed: watch::Sender<u64>,
    complete_gauge: IntGauge,
}

impl Knowledge {
    /// Nothing known yet; the gauge `prescaler_schedule_complete` is registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Arc<Self> {
        let complete_gauge = metrics.register(
            &IntGauge::new(
                "prescaler_schedule_complete",
                "1 once catalog.events has been read to the end it had at start, 0 before",
            )
            .expect("valid metric"),
        );
        Arc::new(Self {
            schedule: RwLock::default(),
            complete: AtomicBool::new(false),
            changed: watch::channel(0).0,
            complete_gauge,
        })
    }

    /// Changes the schedule with `change`; every HPA is looked at again if it says it changed.
    pub fn record(&self, change: impl FnOnce(&mut Schedule) -> bool) {
        let changed = change(&mut self.schedule.write().expect("schedule lock"));
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Folds one envelope from `catalog.events` in.
    pub fn apply(&self, envelope: &Envelope) -> Result<(), ticketing_platform::events::PayloadError> {
        let mut outcome = Ok(());
        self.record(|schedule| {
            schedule.apply(envelope).unwrap_or_else(|e| {
                outcome = Err(e);
                false
            })
        });
        outcome
    }

    /// The schedule now holds everything published before the start: raised floors may be
    /// lowered from now on.
    pub fn mark_complete(&self) {
        if !self.complete.swap(true, Ordering::AcqRel) {
            self.complete_gauge.set(1);
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// A copy of the schedule as it is now.
    pub fn schedule(&self) -> Schedule {
        self.schedule.read().expect("schedule lock").clone()
    }

    /// Whether [`Knowledge::mark_complete`] was called.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }
}

/// Why one reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed the patch.
    #[error("patching HPA {hpa}: {source}")]
    Patch {
        /// The HPA.
        hpa: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
    /// The HPA has no spec (never from a real API server).
    #[error("HPA {0} has no spec")]
    NoSpec(String),
}

struct Context {
    api: Api<HorizontalPodAutoscaler>,
    targets: BTreeMap<String, Target>,
    window: Window,
    resync: Duration,
    knowledge: Arc<Knowledge>,
    floor: IntGaugeVec,
    patches: IntCounterVec,
}

/// Reconciles the HPAs of `namespace` named in `settings.services` until `stop`.
pub async fn run(
    client: kube::Client,
    namespace: &str,
    settings: &PrescalerSettings,
    knowledge: Arc<Knowledge>,
    metrics: &Metrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let floor = metrics.register(
        &IntGaugeVec::new(
            Opts::new("prescaler_floor_replicas", "The minReplicas the pre-scaler wants for each managed HPA"),
            &["hpa"],
        )
        .expect("valid metric"),
    );
    let patches = metrics.register(
        &IntCounterVec::new(
            Opts::new("prescaler_patches_total", "HPA floor patches, by HPA, action (raise, restore) and result"),
            &["hpa", "action", "result"],
        )
        .expect("valid metric"),
    );
    let api = Api::<HorizontalPodAutoscaler>::namespaced(client, namespace);
    let context = Arc::new(Context {
        api: api.clone(),
        targets: settings.services.values().map(|t| (t.hpa.clone(), t.clone())).collect(),
        window: Window { lead_time: settings.lead_time, rush: settings.rush },
        resync: settings.resync,
        knowledge: knowledge.clone(),
        floor,
        patches,
    });
    let changes = tokio_stream::wrappers::WatchStream::from_changes(knowledge.changed.subscribe()).map(|_| ());
    Controller::new(api, watcher::Config::default())
        .reconcile_all_on(changes)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile ended in an error");
            }
        })
        .await;
    Ok(())
}

fn annotation<T: std::str::FromStr>(hpa: &HorizontalPodAutoscaler, key: &str) -> Option<T> {
    hpa.annotations().get(key).and_then(|v| v.parse().ok())
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, context: Arc<Context>) -> Result<Action, Error> {
    let name = hpa.name_any();
    let Some(target) = context.targets.get(&name) else { return Ok(Action::await_change()) };
    let spec = hpa.spec.as_ref().ok_or_else(|| Error::NoSpec(name.clone()))?;
    let observed = Observed {
        min: spec.min_replicas.unwrap_or(1),
        max: spec.max_replicas,
        baseline: annotation(&hpa, BASELINE_ANNOTATION),
        until: annotation::<DateTime<Utc>>(&hpa, UNTIL_ANNOTATION),
    };
    let now = Utc::now();
    let complete = context.knowledge.is_complete();
    let (want, next) = {
        let schedule = context.knowledge.schedule.read().expect("schedule lock");
        (context.window.want(&schedule, target, now), context.window.next_change(&schedule, now))
    };
    let decision = decide(observed, want, target.ceiling, complete);
    let (action, min, body) = match decision {
        Decision::Keep => ("keep", observed.min, None),
        Decision::Raise { min, baseline, until } => {
            let annotations = json!({BASELINE_ANNOTATION: baseline.to_string(), UNTIL_ANNOTATION: until.to_rfc3339()});
            ("raise", min, Some(json!({"metadata": {"annotations": annotations}, "spec": {"minReplicas": min}})))
        }
        Decision::Restore { min } => {
            let annotations = json!({BASELINE_ANNOTATION: null, UNTIL_ANNOTATION: null});
            ("restore", min, Some(json!({"metadata": {"annotations": annotations}, "spec": {"minReplicas": min}})))
        }
    };
    if let Some(mut body) = body {
        // Conditional on the version decided from: a floor changed meanwhile (helm) is
        // refused with 409 and decided again from what it is now.
        body["metadata"]["resourceVersion"] = json!(hpa.resource_version());
        let result = context
            .api
            .patch(
                &name,
                &PatchParams { field_manager: Some(MANAGER.into()), ..PatchParams::default() },
                &Patch::Merge(&body),
            )
            .await;
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        context.patches.with_label_values(&[name.as_str(), action, outcome]).inc();
        result.map_err(|source| Error::Patch { hpa: name.clone(), source })?;
        tracing::info!(hpa = %name, action, from = observed.min, to = min, complete, "HPA floor set");
    }
    context.floor.with_label_values(&[name.as_str()]).set(i64::from(min));
    let until_next =
        next.and_then(|at| (at - now).to_std().ok()).map_or(context.resync, |d| d + Duration::from_millis(100));
    Ok(Action::requeue(until_next.min(context.resync)))
}

fn error_policy(hpa: Arc<HorizontalPodAutoscaler>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(hpa = %hpa.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(RETRY)
}
