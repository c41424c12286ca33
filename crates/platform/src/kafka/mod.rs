//! Kafka plumbing: the idempotent producer, topic creation, the outbox relay and the consumer.

pub mod consumer;
pub(crate) mod metrics;
mod oauth;
pub mod outbox;
mod settings;

pub use oauth::KafkaContext;
pub use settings::{KafkaConfig, MAX_RETRY_BACKOFF, OAuthBearer};

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedHeaders, Headers as _, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

/// Suffix of the dead-letter topic of every consumed topic.
pub const DLQ_SUFFIX: &str = ".dlq";

/// A client of `config`'s brokers with its extra properties and the platform's context
/// (OAUTHBEARER tokens when configured); `settings` adds the client's own.
pub fn create<C>(config: &KafkaConfig, settings: impl FnOnce(&mut ClientConfig)) -> KafkaResult<C>
where
    C: FromClientConfigAndContext<KafkaContext>,
{
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.brokers);
    for (key, value) in config.librdkafka_properties() {
        client.set(key, value);
    }
    settings(&mut client);
    client.create_with_context(KafkaContext::new(config))
}

/// Runs `call` on a thread of its own: for librdkafka calls that block until a broker answers
/// (closing a consumer, metadata, offsets). Not on tokio's blocking pool, which a runtime waits
/// for when it shuts down: a call still waiting on a broker that is gone must not keep a
/// stopping service from exiting. `None` if the thread could not start or `call` panicked.
pub(crate) async fn off_runtime<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kafka-blocking".into())
        .spawn(move || {
            let _ = done.send(call());
        })
        .ok()?;
    result.await.ok()
}

/// The platform's producer: its context supplies OAUTHBEARER tokens when configured.
pub type Producer = FutureProducer<KafkaContext>;

/// The platform's consumer, with the same context.
pub type StreamConsumer = rdkafka::consumer::StreamConsumer<KafkaContext>;

/// An idempotent producer: `enable.idempotence=true`, `acks=all`, so retries never duplicate
/// or reorder within a partition. It gives up on a message after `kafka.producer_message_timeout`.
pub fn producer(config: &KafkaConfig) -> anyhow::Result<Producer> {
    create(config, |client| {
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.producer_message_timeout.as_millis().to_string())
            .set("linger.ms", "5");
    })
    .context("creating the Kafka producer")
}

/// Adds the current span's `traceparent` to Kafka headers.
pub(crate) fn inject_traceparent(headers: OwnedHeaders, traceparent: Option<&str>) -> OwnedHeaders {
    match traceparent {
        Some(tp) if !tp.is_empty() => headers.insert(rdkafka::message::Header { key: "traceparent", value: Some(tp) }),
        _ => headers,
    }
}

/// Reads `traceparent` from Kafka headers.
pub(crate) fn extract_traceparent(headers: Option<&BorrowedHeaders>) -> Option<String> {
    let headers = headers?;
    headers
        .iter()
        .find(|h| h.key == "traceparent")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// How long a metadata request of the metric samplers may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `client` gets metadata from a broker (`platform_dependency_up{dependency="kafka"}`).
/// It blocks: call it on the blocking pool.
pub(crate) fn reachable<C: rdkafka::ClientContext>(client: &rdkafka::client::Client<C>) -> bool {
    client.fetch_metadata(None, PROBE_TIMEOUT).is_ok()
}

/// Creates `topics` if they do not exist yet (no-op when `kafka.create_topics` is off).
pub async fn ensure_topics(config: &KafkaConfig, topics: &[String]) -> anyhow::Result<()> {
    ensure_topics_with(config, topics, &[]).await
}

/// Like [`ensure_topics`], creating missing topics with `topic_config` (e.g. a larger
/// `max.message.bytes` for topics whose events list every seat of a stadium).
pub async fn ensure_topics_with(
    config: &KafkaConfig,
    topics: &[String],
    topic_config: &[(&str, &str)],
) -> anyhow::Result<()> {
    if !config.create_topics || topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<KafkaContext> = create(config, |_| {}).context("creating the Kafka admin client")?;
    let new: Vec<_> = topics
        .iter()
        .map(|t| {
            topic_config.iter().fold(
                NewTopic::new(t, config.topic_partitions, TopicReplication::Fixed(config.topic_replication)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await.context("creating Kafka topics")? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A librdkafka call left waiting on a broker that is gone (a consumer's close, a lag
    /// sample) must not keep a stopping service's runtime from shutting down.
    #[test]
    fn a_call_left_waiting_does_not_hold_its_runtime_at_shutdown() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (started, running) = std::sync::mpsc::channel();
        let (release, waiting) = std::sync::mpsc::channel::<()>();
        runtime.spawn(off_runtime(move || {
            let _ = started.send(());
            let _ = waiting.recv();
        }));
        running.recv().expect("the call started");
        let (shut_down, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(runtime);
            let _ = shut_down.send(());
        });
        let stopped = done.recv_timeout(Duration::from_secs(10));
        // Ends the call either way, so that a failed run leaves no thread behind.
        drop(release);
        stopped.expect("the runtime shut down with the call still waiting");
    }

    #[test]
    fn kafka_headers_round_trip_traceparent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = inject_traceparent(OwnedHeaders::new(), Some(tp));
        let message = rdkafka::message::OwnedMessage::new(
            None,
            None,
            "t".into(),
            rdkafka::Timestamp::NotAvailable,
            0,
            0,
            Some(headers),
        );
        use rdkafka::Message as _;
        assert_eq!(extract_traceparent(message.headers().map(|h| h.as_borrowed())).as_deref(), Some(tp));
    }
}
