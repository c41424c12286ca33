//! The at-least-once consumer: dedupe, retries, dead-lettering and offset commits, and
//! coming back after faults of the broker and of the group (ADR 0019).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::producer::FutureRecord;
use sqlx::PgConnection;
use ticketing_platform::App;
use ticketing_platform::events::envelope;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::kafka::consumer::{Consumer, HandleError, Handler};
use ticketing_platform::kafka::{self, DLQ_SUFFIX};
use ticketing_platform::metrics::Metrics;
use ticketing_platform::telemetry::TelemetryConfig;
use ticketing_proto::events::v1::{Envelope, UserRegistered};
use ticketing_testkit::broker::PrivateBroker;
use ticketing_testkit::{self as testkit, TestDb};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{counter, eventually, header, read_topic};

const WAIT: Duration = Duration::from_secs(30);
/// The group timeouts of the fault tests: the coordinator evicts a silent member after
/// `SESSION_TIMEOUT`; the watchdog calls a member stalled after `STALL_TIMEOUT`.
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
const STALL_TIMEOUT: Duration = Duration::from_secs(6);

/// How the handler treats an event, chosen by the event's aggregate id.
const FAIL_TWICE: &str = "fail-twice";
const FAIL_PERMANENTLY: &str = "fail-permanently";

/// Records every call in `seen` (inside the consumer's transaction) and in memory
/// (outside it, so rolled-back attempts are counted too).
#[derive(Clone, Default)]
struct Recorder {
    attempts: Arc<Mutex<HashMap<String, i32>>>,
}

impl Recorder {
    fn attempts(&self, event_id: &str) -> i32 {
        self.attempts.lock().unwrap().get(event_id).copied().unwrap_or(0)
    }

    fn total_attempts(&self) -> i32 {
        self.attempts.lock().unwrap().values().sum()
    }
}

impl Handler for Recorder {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandleError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(event.id.clone()).or_default();
            *n += 1;
            *n
        };
        let id = uuid::Uuid::parse_str(&event.id).map_err(|e| HandleError::Permanent(e.into()))?;
        sqlx::query("INSERT INTO seen (event_id, n) VALUES ($1, $2)")
            .bind(id)
            .bind(attempt)
            .execute(&mut *tx)
            .await
            .map_err(|e| HandleError::Retryable(e.into()))?;
        match event.aggregate_id.as_str() {
            FAIL_TWICE if attempt <= 2 => Err(HandleError::Retryable(anyhow::anyhow!("flaky peer, attempt {attempt}"))),
            FAIL_PERMANENTLY => Err(HandleError::Permanent(anyhow::anyhow!("cannot ever handle this"))),
            _ => Ok(()),
        }
    }
}

/// One test's database, topics, producer and handler.
struct Harness {
    db: TestDb,
    config: KafkaConfig,
    topic: String,
    dlq: String,
    group: String,
    producer: ticketing_platform::kafka::Producer,
    recorder: Recorder,
    telemetry: TelemetryConfig,
}

/// A consumer running in a task.
struct Running {
    metrics: Metrics,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn outcomes(&self, outcome: &str) -> u64 {
        counter(&self.metrics, "kafka_consumer_messages_total", &[("outcome", outcome)])
    }

    /// Waits until the consumer has counted `n` messages with `outcome`.
    async fn wait_for(&self, outcome: &str, n: u64) {
        eventually(&format!("{n} {outcome} message(s)"), WAIT, || async {
            (self.outcomes(outcome) >= n).then_some(())
        })
        .await;
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the consumer stops when cancelled")
            .expect("consumer task")
            .expect("consumer result");
    }
}

impl Harness {
    async fn new() -> Self {
        Self::with(testkit::kafka_config(), TelemetryConfig::default()).await
    }

    /// On `broker`, with group timeouts of seconds and a watchdog sampling often, so faults
    /// of the broker and of the group play out within a test.
    async fn on(broker: &PrivateBroker) -> Self {
        let config = KafkaConfig {
            brokers: broker.address.clone(),
            consumer_session_timeout: SESSION_TIMEOUT,
            consumer_stall_timeout: STALL_TIMEOUT,
            ..testkit::kafka_config()
        };
        Self::with(config, TelemetryConfig { metrics_interval: Duration::from_millis(200), ..Default::default() }).await
    }

    async fn with(config: KafkaConfig, telemetry: TelemetryConfig) -> Self {
        testkit::init_logging();
        let db = TestDb::new(&ticketing_platform::db::migrator(None)).await;
        sqlx::query("CREATE TABLE seen (event_id uuid NOT NULL, n int NOT NULL)").execute(&db.pool).await.unwrap();
        let topic = config.topic("identity.events");
        let dlq = format!("{topic}{DLQ_SUFFIX}");
        kafka::ensure_topics(&config, &[topic.clone(), dlq.clone()]).await.expect("create topics");
        let producer = kafka::producer(&config).expect("producer");
        let group = format!("test-consumer-{}", testkit::unique());
        Self { db, config, topic, dlq, group, producer, recorder: Recorder::default(), telemetry }
    }

    fn start(&self) -> Running {
        self.start_with(&self.config)
    }

    fn start_with(&self, config: &KafkaConfig) -> Running {
        let metrics = Metrics::new("test");
        metrics.configure(&self.telemetry);
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.consumer(config, &metrics).run(stop.clone()));
        Running { metrics, stop, task }
    }

    fn consumer(&self, config: &KafkaConfig, metrics: &Metrics) -> Consumer<Recorder> {
        Consumer::new(
            self.group.clone(),
            vec![self.topic.clone()],
            self.db.pool.clone(),
            self.producer.clone(),
            self.recorder.clone(),
            config,
            metrics,
        )
    }

    async fn produce_bytes(&self, key: &str, payload: &[u8]) {
        self.producer
            .send(FutureRecord::to(&self.topic).key(key).payload(payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    async fn produce(&self, env: &Envelope) {
        self.produce_bytes(&env.aggregate_id, &env.encode_to_vec()).await;
    }

    /// `n` of every `seen` row for `event_id`.
    async fn seen(&self, event_id: &str) -> Vec<i32> {
        let id = uuid::Uuid::parse_str(event_id).unwrap();
        sqlx::query_scalar("SELECT n FROM seen WHERE event_id = $1 ORDER BY n")
            .bind(id)
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }

    async fn seen_total(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM seen").fetch_one(&self.db.pool).await.unwrap()
    }

    async fn processed_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE consumer = $1")
            .bind(self.config.group(&self.group))
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

fn event(aggregate_id: &str) -> Envelope {
    let event = UserRegistered {
        user_id: uuid::Uuid::new_v4().to_string(),
        email: "someone@example.test".into(),
        ..Default::default()
    };
    envelope(aggregate_id, &event)
}

#[tokio::test]
async fn a_redelivered_event_is_processed_once() {
    let h = Harness::new().await;
    let env = event("user-1");
    h.produce(&env).await;
    h.produce(&env).await;
    let running = h.start();
    running.wait_for("processed", 1).await;
    running.wait_for("duplicate", 1).await;
    running.stop().await;

    assert_eq!(h.recorder.attempts(&env.id), 1, "the handler ran once");
    assert_eq!(h.seen(&env.id).await, vec![1]);
    assert_eq!(h.processed_events().await, 1);
}

#[tokio::test]
async fn a_retryable_failure_is_retried_until_it_succeeds() {
    let h = Harness::new().await;
    let env = event(FAIL_TWICE);
    h.produce(&env).await;
    let running = h.start();
    running.wait_for("processed", 1).await;
    assert_eq!(running.outcomes("dead_lettered"), 0);
    running.stop().await;

    assert_eq!(h.recorder.attempts(&env.id), 3, "two failures, then success");
    // The failed attempts' writes were rolled back; only the third one's stayed.
    assert_eq!(h.seen(&env.id).await, vec![3]);
    assert_eq!(h.processed_events().await, 1);
}

#[tokio::test]
async fn exhausted_retries_dead_letter_the_message() {
    let mut h = Harness::new().await;
    h.config.consumer_max_attempts = 2;
    let env = event(FAIL_TWICE);
    h.produce(&env).await;
    let running = h.start();
    running.wait_for("dead_lettered", 1).await;
    assert_eq!(running.outcomes("processed"), 0);
    running.stop().await;

    assert_eq!(h.recorder.attempts(&env.id), 2, "consumer_max_attempts bounds the attempts");
    assert_eq!(h.seen(&env.id).await, Vec::<i32>::new(), "every attempt was rolled back");
    let dead = read_topic(&h.config, &h.dlq, 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    let error = header(&dead[0], "dlq.error").expect("dlq.error header");
    assert!(error.contains("retries exhausted") && error.contains("attempt 2"), "{error}");
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_and_rolled_back() {
    let h = Harness::new().await;
    let env = event(FAIL_PERMANENTLY);
    h.produce(&env).await;
    let running = h.start();
    running.wait_for("dead_lettered", 1).await;
    running.stop().await;

    assert_eq!(h.recorder.attempts(&env.id), 1, "a permanent failure is not retried");
    assert_eq!(h.seen(&env.id).await, Vec::<i32>::new(), "the handler's writes were rolled back");
    assert_eq!(h.processed_events().await, 0, "not marked processed");

    let dead = read_topic(&h.config, &h.dlq, 1, WAIT).await;
    assert_eq!(dead.len(), 1, "one message on {}", h.dlq);
    let message = &dead[0];
    assert_eq!(message.payload(), Some(env.encode_to_vec().as_slice()), "the original payload");
    assert_eq!(message.key(), Some(FAIL_PERMANENTLY.as_bytes()), "the original key");
    assert_eq!(header(message, "dlq.original.topic").as_deref(), Some(h.topic.as_str()));
    let error = header(message, "dlq.error").expect("dlq.error header");
    assert!(error.contains("cannot ever handle this"), "{error}");
    assert_eq!(header(message, "dlq.consumer"), Some(h.config.group(&h.group)), "groups are namespaced");
    assert_eq!(header(message, "dlq.original.offset").as_deref(), Some("0"));
}

#[tokio::test]
async fn a_payload_that_is_not_an_envelope_is_dead_lettered() {
    let h = Harness::new().await;
    let garbage = b"definitely not a protobuf envelope";
    h.produce_bytes("garbage", garbage).await;
    let good = event("user-2");
    h.produce(&good).await;
    let running = h.start();
    running.wait_for("dead_lettered", 1).await;
    // The poison message does not block the partition.
    running.wait_for("processed", 1).await;
    running.stop().await;

    assert_eq!(h.recorder.total_attempts(), 1, "the handler only saw the good event");
    assert_eq!(h.seen(&good.id).await, vec![1]);
    let dead = read_topic(&h.config, &h.dlq, 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload(), Some(garbage.as_slice()));
    assert_eq!(header(&dead[0], "dlq.original.topic").as_deref(), Some(h.topic.as_str()));
    let error = header(&dead[0], "dlq.error").expect("dlq.error header");
    assert!(error.contains("not an event envelope"), "{error}");
}

#[tokio::test]
async fn a_restarted_consumer_resumes_after_its_committed_offsets() {
    let h = Harness::new().await;
    let first: Vec<Envelope> = (0..3).map(|n| event(&format!("user-{n}"))).collect();
    for env in &first {
        h.produce(env).await;
    }
    let running = h.start();
    running.wait_for("processed", 3).await;
    running.stop().await;

    let later = event("user-later");
    h.produce(&later).await;
    let running = h.start();
    running.wait_for("processed", 1).await;
    // The partition is read in order, so anything redelivered would have come first.
    let duplicates = running.outcomes("duplicate");
    running.stop().await;

    assert_eq!(duplicates, 0, "committed messages were delivered again after the restart");
    assert_eq!(h.recorder.total_attempts(), 4, "each event handled once");
    assert_eq!(h.recorder.attempts(&later.id), 1);
    assert_eq!(h.seen_total().await, 4);
    assert_eq!(h.processed_events().await, 4);
}

/// Handles nothing until the test opens the gate.
#[derive(Clone)]
struct Gate(Arc<tokio::sync::Semaphore>);

impl Handler for Gate {
    async fn handle(&self, _: &mut PgConnection, _: &Envelope) -> Result<(), HandleError> {
        self.0.acquire().await.expect("the gate is never closed").forget();
        Ok(())
    }
}

/// The sum of gauge `name`'s samples with `labels`, if any is exported.
fn gauge(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
    let text = metrics.render();
    let values: Vec<i64> = text
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_unconsumed_messages_and_the_dlq_its_messages() {
    let h = Harness::new().await;
    let metrics = Metrics::new("test");
    let telemetry = ticketing_platform::telemetry::TelemetryConfig {
        metrics_interval: Duration::from_millis(100),
        ..Default::default()
    };
    metrics.configure(&telemetry);
    let gate = Gate(Arc::new(tokio::sync::Semaphore::new(0)));
    let stop = CancellationToken::new();
    let consumer = Consumer::new(
        h.group.clone(),
        vec![h.topic.clone()],
        h.db.pool.clone(),
        h.producer.clone(),
        gate.clone(),
        &h.config,
        &metrics,
    );
    let task = tokio::spawn(consumer.run(stop.clone()));
    for _ in 0..5 {
        h.produce(&event("same-partition")).await;
    }
    let group = h.config.group(&h.group);
    let lag =
        |metrics: &Metrics| gauge(metrics, "kafka_consumer_lag_messages", &[("group", &group), ("topic", &h.topic)]);
    // The first message is stuck in the handler: nothing is committed, all five are behind.
    eventually("a lag of 5", WAIT, || async { (lag(&metrics) == Some(5)).then_some(()) }).await;
    assert_eq!(gauge(&metrics, "kafka_dlq_messages", &[("topic", &h.dlq)]), Some(0), "{}", metrics.render());
    assert!(metrics.render().contains(r#"platform_dependency_up{dependency="kafka",service="test"} 1"#));

    gate.0.add_permits(100);
    eventually("the lag to drain", WAIT, || async { (lag(&metrics) == Some(0)).then_some(()) }).await;

    // A dead-lettered message shows in the DLQ gauge until triage removes it.
    h.producer
        .send(FutureRecord::to(&h.dlq).key("poison").payload("not an envelope"), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produce to the DLQ");
    eventually("one DLQ message", WAIT, || async {
        (gauge(&metrics, "kafka_dlq_messages", &[("topic", &h.dlq)]) == Some(1)).then_some(())
    })
    .await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops").unwrap().unwrap();
}

/// The successor of a member that died without leaving (a killed process; here a static
/// member, which never says goodbye) joins while the dead one still leads the group. tansu
/// 0.6 then ends the rebalance with no partition assigned to anyone, and the group stays
/// "stable" that way for good (ADR 0019). The watchdog finds the successor stalled: the
/// service turns unready, the member rejoins afresh, the waiting message is processed and
/// the service is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_successor_of_a_member_that_died_without_leaving_takes_over() {
    let broker = PrivateBroker::start_async().await;
    let h = Harness::on(&broker).await;
    let first = event("before");
    h.produce(&first).await;
    // tansu holds each join and sync of a static member for 3s and counts them against the
    // session, which the first member sets for the whole group: 10s leaves it room.
    let dead = h.start_with(&KafkaConfig {
        group_instance_id: "dead".into(),
        consumer_session_timeout: Duration::from_secs(10),
        consumer_stall_timeout: Duration::from_secs(12),
        ..h.config.clone()
    });
    dead.wait_for("processed", 1).await;
    dead.stop().await;
    // The successor starts a few seconds later, as a killed process restarted would: the
    // dead member's session then ends while the successor's goes on.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut app = App::new("test", crate::app::server_config());
    app.telemetry(&h.telemetry);
    let consumer = h.consumer(&h.config, app.metrics());
    app.spawn("consumer", consumer.run(app.stop_token()));
    let metrics = app.metrics().clone();
    let running = app.bind(tonic::service::Routes::default(), &[]).await.expect("bind");
    let (readyz, shutdown) = (format!("http://{}/readyz", running.admin_addr()), running.shutdown_handle());
    let served = tokio::spawn(running.run_until_stopped());
    let waiting = event("after");
    h.produce(&waiting).await;
    let started = std::time::Instant::now();

    let reason = eventually("readiness off: the successor is stalled", WAIT, || async {
        let (status, body) = crate::app::get_json(&readyz).await;
        let check = body["checks"].as_array()?.iter().find(|c| c["name"] == "kafka-consumers")?.clone();
        (status == 503 && check["ok"] == false).then(|| check["error"].to_string())
    })
    .await;
    assert!(reason.contains("no partition is assigned"), "{reason}");
    eventually("the waiting message processed", WAIT, || async {
        (counter(&metrics, "kafka_consumer_messages_total", &[("outcome", "processed")]) == 1).then_some(())
    })
    .await;
    let recovered = started.elapsed();
    eventually("readiness back on", WAIT, || async { (crate::app::get_json(&readyz).await.0 == 200).then_some(()) })
        .await;
    assert!(counter(&metrics, "kafka_consumer_rejoins_total", &[]) >= 1, "{}", metrics.render());
    assert_eq!(gauge(&metrics, "kafka_consumer_stalled", &[]), Some(0));
    assert_eq!(gauge(&metrics, "kafka_consumer_assigned_partitions", &[]), Some(1), "{}", metrics.render());
    assert_eq!(h.recorder.attempts(&waiting.id), 1);
    assert_eq!(h.processed_events().await, 2);
    eprintln!("the successor processed the waiting message {recovered:?} after it was produced");

    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), served).await.expect("stops").unwrap().unwrap();
}

/// The broker dies (SIGKILL) and comes back on the same storage mid-stream: every message
/// produced before, during and after is processed exactly once, and the member resumes by
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing_and_the_consumer_resumes() {
    const MESSAGES: usize = 30;
    let mut broker = PrivateBroker::start_async().await;
    let h = Harness::on(&broker).await;
    let running = h.start();
    let events: Vec<Envelope> = (0..MESSAGES).map(|n| event(&format!("user-{n}"))).collect();
    for env in &events[..10] {
        h.produce(env).await;
    }
    running.wait_for("processed", 10).await;

    broker.stop();
    // Produced while the broker is down: the producer holds them until it is back.
    let (producer, topic, later) = (h.producer.clone(), h.topic.clone(), events[10..].to_vec());
    let producing = tokio::spawn(async move {
        for env in &later {
            let payload = env.encode_to_vec();
            let record = FutureRecord::to(&topic).key(&env.aggregate_id).payload(&payload);
            producer.send(record, Duration::from_secs(60)).await.map_err(|(e, _)| e).expect("produce");
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let broker = broker.resumed().await;
    tokio::time::timeout(WAIT, producing).await.expect("produced once the broker is back").unwrap();

    running.wait_for("processed", MESSAGES as u64).await;
    assert_eq!(gauge(&running.metrics, "kafka_consumer_stalled", &[]), Some(0));
    running.stop().await;
    for env in &events {
        assert_eq!(h.seen(&env.id).await.len(), 1, "event {} applied once", env.aggregate_id);
    }
    assert_eq!(h.seen_total().await, MESSAGES as i64);
    assert_eq!(h.processed_events().await, MESSAGES as i64);
    drop(broker);
}

/// Freezes `broker` (SIGSTOP) past the session and the stall timeouts while `running`
/// consumes, asserting that a frozen broker is never taken for a stalled member (it is the
/// broker's outage, which `platform_dependency_up` reports), then thaws it.
async fn freeze_past_the_timeouts(broker: &PrivateBroker, running: &Running) {
    eventually("the watchdog's first sample", WAIT, || async {
        (gauge(&running.metrics, "kafka_consumer_assigned_partitions", &[]) == Some(1)).then_some(())
    })
    .await;
    broker.freeze();
    let frozen = std::time::Instant::now();
    while frozen.elapsed() < STALL_TIMEOUT + SESSION_TIMEOUT {
        assert_eq!(gauge(&running.metrics, "kafka_consumer_stalled", &[]), Some(0), "a frozen broker is no stall");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let up = gauge(&running.metrics, "platform_dependency_up", &[("dependency", "kafka")]);
    assert_eq!(up, Some(0), "the frozen broker was noticed");
    broker.thaw();
}

/// The broker freezes for longer than the session timeout, so the member's session ends on
/// both sides. tansu 0.6 may then never complete a rebalance of the group again (it keeps a
/// leader that is no member any more; ADR 0019), so what must hold is that the consumer
/// does not stop silently: once the broker answers, the message sent then is processed or,
/// within the stall timeout, the service is unready with the stall reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_whose_session_ended_on_a_frozen_broker_never_stops_silently() {
    let broker = PrivateBroker::start_async().await;
    let h = Harness::on(&broker).await;
    let running = h.start();
    h.produce(&event("before")).await;
    running.wait_for("processed", 1).await;
    freeze_past_the_timeouts(&broker, &running).await;

    h.produce(&event("after")).await;
    let readiness = ticketing_platform::readiness::kafka_consumers(running.metrics.clone());
    let outcome = eventually("the message processed or the stall reported", WAIT, || async {
        if running.outcomes("processed") == 2 {
            return Some("processed".to_owned());
        }
        readiness().await.err().map(|e| format!("{e:#}"))
    })
    .await;
    eprintln!("after the broker came back: {outcome}");
    assert!(outcome == "processed" || outcome.contains("unconsumed for"), "{outcome}");
    running.stop().await;
}

/// Outside a group (`kafka.assign_all_partitions`, the local platform's setting on tansu)
/// there is no session to lose: after the same freeze the consumer goes on by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_outside_the_group_goes_on_after_a_frozen_broker() {
    let broker = PrivateBroker::start_async().await;
    let mut h = Harness::on(&broker).await;
    h.config.assign_all_partitions = true;
    let running = h.start();
    h.produce(&event("before")).await;
    running.wait_for("processed", 1).await;
    freeze_past_the_timeouts(&broker, &running).await;

    let after = event("after");
    h.produce(&after).await;
    let thawed = std::time::Instant::now();
    running.wait_for("processed", 2).await;
    eprintln!("processed {:?} after the broker came back", thawed.elapsed());
    assert_eq!(gauge(&running.metrics, "kafka_consumer_stalled", &[]), Some(0));
    assert_eq!(counter(&running.metrics, "kafka_consumer_rejoins_total", &[]), 0);
    running.stop().await;
    assert_eq!(h.recorder.attempts(&after.id), 1);
    // Offsets were committed under the group's id, outside any group membership.
    let restarted = h.start();
    h.produce(&event("later")).await;
    restarted.wait_for("processed", 1).await;
    assert_eq!(restarted.outcomes("duplicate"), 0, "resumed after its committed offsets");
    restarted.stop().await;
}
