//! The pre-scaler's controller against a fake Kubernetes API server: an axum app that serves
//! list, watch and merge patches of `autoscaling/v2` HPAs from an event log, records every
//! patch, and can refuse them. The schedule is fed directly (no Kafka): these tests are about
//! the patches the API server receives, across sales, restarts and refusals.

mod catalog;
mod fake;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use ticketing_platform::metrics::Metrics;
use ticketing_prescaler::config::{PrescalerSettings, Target};
use ticketing_prescaler::workers::controller::{self, BASELINE_ANNOTATION, Knowledge, UNTIL_ANNOTATION};
use ticketing_proto::events::v1::{CategorySnapshot, EventPublished};
use ticketing_testkit::eventually;
use tokio_util::sync::CancellationToken;

use crate::fake::{FakeApi, NAMESPACE};

const SETTLE: Duration = Duration::from_secs(20);

fn settings() -> PrescalerSettings {
    let target = |hpa: &str, ceiling, buyers_per_replica| Target { hpa: hpa.into(), ceiling, buyers_per_replica };
    PrescalerSettings {
        services: [
            ("gateway".to_owned(), target("ticketing-gateway", 8, 100)),
            ("inventory".to_owned(), target("ticketing-inventory", 30, 200)),
        ]
        .into(),
        ..PrescalerSettings::default()
    }
}

/// An event whose sale opens `in_minutes` from now, admitting 1,200 buyers a minute.
fn sale(id: &str, in_minutes: i64) -> EventPublished {
    let opens = Utc::now() + chrono::Duration::minutes(in_minutes);
    EventPublished {
        event_id: id.into(),
        sale_starts_at: Some(prost_types::Timestamp { seconds: opens.timestamp(), nanos: 0 }),
        categories: vec![CategorySnapshot { capacity: 50_000, ..Default::default() }],
        admission_per_minute: 1_200,
        version: 1,
        ..Default::default()
    }
}

/// A running pre-scaler controller.
struct Prescaler {
    knowledge: Arc<Knowledge>,
    metrics: Metrics,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Prescaler {
    fn start(client: kube::Client) -> Self {
        let metrics = Metrics::new("prescaler");
        let knowledge = Knowledge::new(&metrics);
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (knowledge, metrics, stop) = (knowledge.clone(), metrics.clone(), stop.clone());
            async move { controller::run(client, NAMESPACE, &settings(), knowledge, &metrics, stop).await }
        });
        Self { knowledge, metrics, stop, task }
    }

    /// The value of the sample of `metric` whose labels include every one of `labels`.
    fn sample(&self, metric: &str, labels: &[&str]) -> Option<i64> {
        self.metrics.render().lines().find_map(|line| {
            let (series, value) = line.strip_prefix(metric)?.strip_prefix('{')?.split_once("} ")?;
            let names: Vec<&str> = series.split(',').collect();
            labels.iter().all(|l| names.contains(l)).then(|| value.parse().ok())?
        })
    }

    /// The floor it last decided for `hpa`, from `prescaler_floor_replicas`.
    fn floor(&self, hpa: &str) -> Option<i64> {
        self.sample("prescaler_floor_replicas", &[&format!("hpa=\"{hpa}\"")])
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("the controller task").expect("the controller stops cleanly");
    }
}

fn min_replicas(hpa: &Value) -> i64 {
    hpa["spec"]["minReplicas"].as_i64().unwrap()
}

fn until(hpa: &Value) -> Option<DateTime<Utc>> {
    hpa["metadata"]["annotations"][UNTIL_ANNOTATION].as_str().map(|u| u.parse().unwrap())
}

#[tokio::test]
async fn floors_rise_ahead_of_a_sale_up_to_the_ceiling_and_fall_when_it_is_over() {
    let (api, client) = FakeApi::start().await;
    api.put(fake::hpa("ticketing-gateway", 2, 20));
    api.put(fake::hpa("ticketing-inventory", 2, 5));
    api.put(fake::hpa("ticketing-booking", 2, 20));
    let prescaler = Prescaler::start(client);
    // Opens in five minutes; the lead time is ten.
    prescaler.knowledge.record(|s| s.published(&sale("e1", 5)));
    prescaler.knowledge.mark_complete();

    eventually("both floors raised", SETTLE, || async {
        let (g, i) = (api.get("ticketing-gateway"), api.get("ticketing-inventory"));
        (min_replicas(&g) > 2 && min_replicas(&i) > 2).then_some(())
    })
    .await;
    let gateway = api.get("ticketing-gateway");
    // 1,200 buyers a minute at 100 per replica is 12: the ceiling, 8, holds it.
    assert_eq!(min_replicas(&gateway), 8);
    assert_eq!(gateway["metadata"]["annotations"][BASELINE_ANNOTATION], "2");
    let end = until(&gateway).expect("the raise's end");
    assert!(end > Utc::now() + chrono::Duration::minutes(30), "the rush after the opening: {end}");
    // 6 at 200 per replica, but the HPA's own maxReplicas is 5.
    assert_eq!(min_replicas(&api.get("ticketing-inventory")), 5);

    prescaler.knowledge.record(|s| s.over("e1", 2));
    eventually("both floors restored", SETTLE, || async {
        let (g, i) = (api.get("ticketing-gateway"), api.get("ticketing-inventory"));
        (min_replicas(&g) == 2 && min_replicas(&i) == 2).then_some(())
    })
    .await;
    let gateway = api.get("ticketing-gateway");
    assert_eq!(gateway["metadata"]["annotations"].get(BASELINE_ANNOTATION), None, "the raise is forgotten");
    prescaler.stop().await;

    let patches = api.patches();
    let sequence: Vec<(&str, Option<i64>)> =
        patches.iter().map(|(hpa, body)| (hpa.as_str(), body["spec"]["minReplicas"].as_i64())).collect();
    let of = |hpa: &str| sequence.iter().filter(|(h, _)| *h == hpa).map(|(_, m)| *m).collect::<Vec<_>>();
    assert_eq!(of("ticketing-gateway"), [Some(8), Some(2)], "one raise, one restore: {patches:?}");
    assert_eq!(of("ticketing-inventory"), [Some(5), Some(2)], "{patches:?}");
    assert_eq!(of("ticketing-booking"), [], "an HPA it does not manage is never touched");
    assert!(
        patches.iter().all(|(_, body)| body["metadata"]["resourceVersion"].is_string()),
        "every patch is conditional on the version it was decided from"
    );
}

#[tokio::test]
async fn a_restart_mid_sale_neither_drops_the_floor_nor_raises_it_twice() {
    let (api, client) = FakeApi::start().await;
    api.put(fake::hpa("ticketing-gateway", 2, 20));
    let opened = sale("e1", 0);
    let first = Prescaler::start(client.clone());
    first.knowledge.record(|s| s.published(&opened));
    first.knowledge.mark_complete();
    eventually("the floor raised", SETTLE, || async {
        (min_replicas(&api.get("ticketing-gateway")) == 8).then_some(())
    })
    .await;
    first.stop().await;
    let raised = api.patches().len();

    // The new process knows nothing yet: the catalog is still being read back.
    let second = Prescaler::start(client);
    eventually("the HPA looked at again", SETTLE, || async { second.floor("ticketing-gateway") }).await;
    assert_eq!(second.floor("ticketing-gateway"), Some(8), "held while the schedule is incomplete");
    // Read back: the same sale, the same floor, not 8 more.
    second.knowledge.record(|s| s.published(&opened));
    second.knowledge.mark_complete();
    // A helm upgrade mid-sale puts the chart's floor back: raised again from the same baseline.
    let mut reset = api.get("ticketing-gateway");
    reset["spec"]["minReplicas"] = json!(2);
    api.put(reset);
    eventually("the floor raised again", SETTLE, || async {
        (api.patches().len() > raised && min_replicas(&api.get("ticketing-gateway")) == 8).then_some(())
    })
    .await;
    second.stop().await;
    let patches = api.patches();
    assert_eq!(patches.len(), raised + 1, "only the helm reset was undone: {patches:?}");
    let (_, last) = patches.last().unwrap();
    assert_eq!(last["metadata"]["annotations"][BASELINE_ANNOTATION], "2");
    assert_eq!(last["spec"]["minReplicas"], 8);
}

#[tokio::test]
async fn an_api_server_that_refuses_is_asked_again_until_it_accepts() {
    let (api, client) = FakeApi::start().await;
    api.put(fake::hpa("ticketing-gateway", 2, 20));
    api.refuse(true);
    let prescaler = Prescaler::start(client);
    prescaler.knowledge.record(|s| s.published(&sale("e1", 5)));
    prescaler.knowledge.mark_complete();
    eventually("two refused patches", SETTLE, || async { (api.refused() >= 2).then_some(()) }).await;
    assert_eq!(min_replicas(&api.get("ticketing-gateway")), 2);
    assert!(!prescaler.task.is_finished(), "a refusal does not stop the controller");
    // The controller counts a refusal after the API server has answered it: wait for the count.
    let refused = [r#"hpa="ticketing-gateway""#, r#"action="raise""#, r#"result="refused""#];
    eventually("two refusals counted", SETTLE, || async {
        let counted = prescaler.sample("prescaler_patches_total", &refused);
        if counted >= Some(2) { Ok(()) } else { Err(prescaler.metrics.render()) }
    })
    .await;

    api.refuse(false);
    eventually("the floor raised", SETTLE, || async {
        (min_replicas(&api.get("ticketing-gateway")) == 8).then_some(())
    })
    .await;
    prescaler.stop().await;
}
