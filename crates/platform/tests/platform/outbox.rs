//! The transactional outbox and its relay.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message as _;
use rdkafka::Message as _;
use ticketing_platform::events::envelope;
use ticketing_platform::kafka;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::kafka::outbox::{Relay, enqueue};
use ticketing_platform::metrics::Metrics;
use ticketing_proto::events::v1::{Envelope, UserRegistered};
use ticketing_testkit::{self as testkit, TestDb};
use tokio_util::sync::CancellationToken;

use crate::support::{counter, eventually, header, read_topic};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn user_registered(n: usize) -> Envelope {
    let user_id = uuid::Uuid::new_v4().to_string();
    let event = UserRegistered {
        user_id: user_id.clone(),
        email: format!("user{n}@example.test"),
        display_name: format!("User {n}"),
        role: "user".into(),
    };
    envelope(user_id, &event)
}

async fn setup() -> (TestDb, KafkaConfig, String) {
    let db = TestDb::new(&ticketing_platform::db::migrator(None)).await;
    let mut config = testkit::kafka_config();
    // Small batches, so two relays really split the work between them.
    config.outbox_batch_size = 5;
    let topic = config.topic("identity.events");
    kafka::ensure_topics(&config, std::slice::from_ref(&topic)).await.expect("create the topic");
    (db, config, topic)
}

async fn outbox_rows(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&db.pool).await.expect("count outbox rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_publish_every_event_exactly_once() {
    testkit::init_logging();
    let (db, config, topic) = setup().await;

    // 50 events, half with a trace context, all in one transaction.
    let envelopes: Vec<Envelope> = (0..50)
        .map(|n| {
            let mut env = user_registered(n);
            env.traceparent = if n % 2 == 0 { TRACEPARENT.into() } else { String::new() };
            env
        })
        .collect();
    let mut tx = db.pool.begin().await.unwrap();
    for env in &envelopes {
        enqueue(&mut tx, &topic, env).await.expect("enqueue");
    }
    tx.commit().await.unwrap();
    assert_eq!(outbox_rows(&db).await, 50);

    // Two relays, each with its own registry so their counts can be told apart.
    let producer = kafka::producer(&config).expect("producer");
    let stop = CancellationToken::new();
    let metrics = [Metrics::new("relay-a"), Metrics::new("relay-b")];
    let relays: Vec<_> = metrics
        .iter()
        .map(|m| tokio::spawn(Relay::new(db.pool.clone(), producer.clone(), &config, m).run(stop.clone())))
        .collect();
    eventually("the outbox to drain", Duration::from_secs(30), || async {
        (outbox_rows(&db).await == 0).then_some(())
    })
    .await;
    stop.cancel();
    for relay in relays {
        tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("relay stops when cancelled")
            .expect("relay task")
            .expect("relay result");
    }
    let published: Vec<u64> =
        metrics.iter().map(|m| counter(m, "outbox_relay_messages_total", &[("result", "published")])).collect();
    assert_eq!(published.iter().sum::<u64>(), 50, "published per relay: {published:?}");
    assert_eq!(counter(&metrics[0], "outbox_relay_messages_total", &[("result", "failed")]), 0);

    let messages = read_topic(&config, &topic, 50, Duration::from_secs(20)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        let env = Envelope::decode(message.payload().expect("payload")).expect("an envelope");
        let sent = envelopes.iter().find(|e| e.id == env.id).expect("a published event was enqueued");
        assert_eq!(&env, sent, "the envelope is published unchanged");
        assert_eq!(message.key(), Some(sent.aggregate_id.as_bytes()), "keyed by aggregate id");
        let traceparent = header(message, "traceparent");
        if sent.traceparent.is_empty() {
            assert_eq!(traceparent, None, "no traceparent header without a trace");
        } else {
            assert_eq!(traceparent.as_deref(), Some(TRACEPARENT));
        }
        *seen.entry(env.id).or_default() += 1;
    }
    for env in &envelopes {
        assert_eq!(seen.get(&env.id), Some(&1), "event {} published exactly once", env.id);
    }
    assert_eq!(messages.len(), 50);
}

#[tokio::test]
async fn a_rolled_back_enqueue_is_never_published() {
    testkit::init_logging();
    let (db, config, topic) = setup().await;

    let rolled_back = user_registered(1);
    let mut tx = db.pool.begin().await.unwrap();
    enqueue(&mut tx, &topic, &rolled_back).await.expect("enqueue");
    tx.rollback().await.unwrap();

    let committed = user_registered(2);
    let mut tx = db.pool.begin().await.unwrap();
    enqueue(&mut tx, &topic, &committed).await.expect("enqueue");
    tx.commit().await.unwrap();
    assert_eq!(outbox_rows(&db).await, 1);

    let relay = Relay::new(db.pool.clone(), kafka::producer(&config).unwrap(), &config, &Metrics::new("relay"));
    assert_eq!(relay.publish_batch().await.expect("publish"), 1);
    assert_eq!(relay.publish_batch().await.expect("publish"), 0, "nothing left to publish");
    assert_eq!(outbox_rows(&db).await, 0);

    let messages = read_topic(&config, &topic, 1, Duration::from_secs(10)).await;
    let ids: Vec<String> =
        messages.iter().map(|m| Envelope::decode(m.payload().unwrap()).expect("an envelope").id).collect();
    assert_eq!(ids, vec![committed.id], "only the committed event is published");
}

#[tokio::test]
async fn enqueue_refuses_an_envelope_without_a_uuid() {
    let db = TestDb::new(&ticketing_platform::db::migrator(None)).await;
    let mut env = user_registered(1);
    env.id = "not-a-uuid".into();
    let mut conn = db.pool.acquire().await.unwrap();
    let err = enqueue(&mut conn, "topic", &env).await.expect_err("a bad id is refused");
    assert!(format!("{err:#}").contains("UUID"), "{err:#}");
    assert_eq!(outbox_rows(&db).await, 0);
}

/// Two relays sharing one registry (several in one service) should both be counted.
/// They are not: the second `register` fails and its counter is exported nowhere.
#[tokio::test]
async fn relays_sharing_a_registry_are_all_counted() {
    let (db, config, topic) = setup().await;
    let mut tx = db.pool.begin().await.unwrap();
    for n in 0..3 {
        enqueue(&mut tx, &topic, &user_registered(n)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let metrics = Metrics::new("relay");
    let producer = kafka::producer(&config).unwrap();
    let _first = Relay::new(db.pool.clone(), producer.clone(), &config, &metrics);
    let second = Relay::new(db.pool.clone(), producer, &config, &metrics);
    assert_eq!(second.publish_batch().await.unwrap(), 3);
    assert_eq!(counter(&metrics, "outbox_relay_messages_total", &[("result", "published")]), 3);
}

/// The value of gauge `name` (first sample) in `metrics`, if exported.
fn gauge(metrics: &Metrics, name: &str) -> Option<f64> {
    metrics
        .render()
        .lines()
        .find(|line| line.starts_with(&format!("{name}{{")))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_and_its_oldest_row_age_while_the_broker_is_unreachable() {
    testkit::init_logging();
    let (db, mut config, topic) = setup().await;
    // Nothing listens there: every publish fails and the rows stay.
    config.brokers = "127.0.0.1:1".into();
    let mut tx = db.pool.begin().await.unwrap();
    for n in 0..3 {
        enqueue(&mut tx, &topic, &user_registered(n)).await.expect("enqueue");
    }
    tx.commit().await.unwrap();

    let metrics = Metrics::new("test");
    let telemetry = ticketing_platform::telemetry::TelemetryConfig {
        metrics_interval: Duration::from_millis(200),
        ..Default::default()
    };
    metrics.configure(&telemetry);
    let relay = Relay::new(db.pool.clone(), kafka::producer(&config).expect("producer"), &config, &metrics);
    relay.sample_backlog().await.expect("sample");
    assert_eq!(gauge(&metrics, "outbox_pending_messages"), Some(3.0), "{}", metrics.render());
    let first = gauge(&metrics, "outbox_oldest_pending_age_seconds").expect("age exported");

    let stop = CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = gauge(&metrics, "outbox_oldest_pending_age_seconds").expect("age exported");
    assert!(later >= first + 1.0, "the oldest row's age grows while it cannot be published: {first} then {later}");
    assert_eq!(gauge(&metrics, "outbox_pending_messages"), Some(3.0));
    eventually("the broker reported down", Duration::from_secs(10), || async {
        metrics.render().contains(r#"platform_dependency_up{dependency="kafka",service="test"} 0"#).then_some(())
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(40), running).await.expect("the relay stops").unwrap().unwrap();

    // Once the rows are gone the age is 0, not the age of a row that no longer exists.
    sqlx::query("DELETE FROM outbox").execute(&db.pool).await.unwrap();
    let relay = Relay::new(db.pool.clone(), kafka::producer(&config).expect("producer"), &config, &metrics);
    relay.sample_backlog().await.expect("sample");
    assert_eq!(gauge(&metrics, "outbox_pending_messages"), Some(0.0));
    assert_eq!(gauge(&metrics, "outbox_oldest_pending_age_seconds"), Some(0.0));
}
