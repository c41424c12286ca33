//! The at-least-once consumer: commit after processing, dedupe on the event id,
//! bounded retries with backoff, and a dead-letter topic for poison messages.
//!
//! Each message is handled in one Postgres transaction that also records
//! `(consumer, event id)` in `processed_events`; a redelivered event finds its
//! row and is skipped, so handlers run effectively once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus::IntCounterVec;
use prost::Message as _;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgConnection, PgPool};
use ticketing_proto::events::v1::Envelope;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::KafkaConfig;
use crate::metrics::Metrics;

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth another try (a peer or the database was unavailable).
    #[error("retryable: {0:#}")]
    Retryable(anyhow::Error),
    /// Will fail again whatever happens: the message goes to the DLQ.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

/// A required id in an event; a malformed one can never be processed, so it is
/// [`HandleError::Permanent`] and the message goes to the DLQ.
pub fn required_id(field: &str, value: &str) -> Result<uuid::Uuid, HandleError> {
    value.parse().with_context(|| format!("{field} {value:?} is not a UUID")).map_err(HandleError::Permanent)
}

/// Processes one event inside the transaction that marks it processed.
pub trait Handler: Send + Sync + 'static {
    /// Handles `event`. Writes through `tx` commit atomically with the dedupe record.
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a Envelope,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a;
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler ran and its transaction committed.
    Processed,
    /// The event id was processed before; nothing ran.
    Duplicate,
    /// The message went to the dead-letter topic.
    DeadLettered,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// A consumer group member feeding one [`Handler`].
pub struct Consumer<H> {
    group: String,
    topics: Vec<String>,
    pool: PgPool,
    producer: FutureProducer,
    handler: Arc<H>,
    config: KafkaConfig,
    outcomes: IntCounterVec,
    metrics: Metrics,
}

impl<H: Handler> Consumer<H> {
    /// A consumer in `group` (namespaced like topics) reading `topics` (full names).
    pub fn new(
        group: impl Into<String>,
        topics: Vec<String>,
        pool: PgPool,
        producer: FutureProducer,
        handler: H,
        config: &KafkaConfig,
        metrics: &Metrics,
    ) -> Self {
        Self {
            group: config.group(&group.into()),
            topics,
            pool,
            producer,
            handler: Arc::new(handler),
            config: config.clone(),
            outcomes: metrics.consumed.clone(),
            metrics: metrics.clone(),
        }
    }

    /// Consumes until `stop` is cancelled. The message in hand is finished first.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        if !self.config.consume {
            tracing::info!(group = %self.group, "kafka.consume is off: not joining the group");
            stop.cancelled().await;
            return Ok(());
        }
        let consumer: StreamConsumer = crate::kafka::client_config(&self.config)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .context("creating the Kafka consumer")?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).context("subscribing")?;
        // Every outcome's series exists from the start, at zero: dashboards and alerts on
        // duplicates and dead letters see "none", not "no data".
        for topic in &topics {
            for outcome in [Outcome::Processed, Outcome::Duplicate, Outcome::DeadLettered] {
                self.outcomes.with_label_values(&[self.group.as_str(), topic, outcome.label()]);
            }
        }
        let consumer = Arc::new(consumer);
        let lag = Lag {
            consumer: consumer.clone(),
            group: self.group.clone(),
            dlqs: self.topics.iter().map(|t| format!("{t}{}", crate::kafka::DLQ_SUFFIX)).collect(),
            metrics: self.metrics.clone(),
        };
        // Aborted when this loop returns, so a stopped consumer reports no lag.
        let _lag = AbortOnDrop(tokio::spawn(lag.watch()));
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(group = %self.group, error = %e, "Kafka receive failed");
                    tokio::time::sleep(self.config.consumer_retry_backoff).await;
                    continue;
                }
            };
            let Some(outcome) = self.process(&message, &stop).await else {
                // Stopped mid-retry: leave the offset uncommitted so it is redelivered.
                return Ok(());
            };
            self.outcomes.with_label_values(&[&self.group, message.topic(), outcome.label()]).inc();
            // Commit only after the outcome is durable; a lost commit means a redelivery,
            // which the dedupe table absorbs.
            if let Err(e) = consumer.commit_message(&message, CommitMode::Async) {
                tracing::warn!(group = %self.group, error = %e, "offset commit failed");
            }
        }
    }

    /// Handles one message with retries; `None` when `stop` interrupted it.
    async fn process(&self, message: &BorrowedMessage<'_>, stop: &CancellationToken) -> Option<Outcome> {
        let envelope = match decode(message) {
            Ok(envelope) => envelope,
            Err(e) => return self.dead_letter(message, &e, stop).await,
        };
        let span = tracing::info_span!(
            "kafka.consume",
            otel.kind = "consumer",
            service.name = %self.metrics.service(),
            messaging.destination = message.topic(),
            messaging.consumer.group.name = %self.group,
            event.id = %envelope.id,
            event.type = %envelope.r#type,
        );
        let parent = crate::telemetry::extract_kafka(message.headers()).unwrap_or_else(|| envelope.traceparent.clone());
        crate::telemetry::set_parent_from_traceparent(&span, &parent);

        let mut backoff = self.config.consumer_retry_backoff;
        for attempt in 1..=self.config.consumer_max_attempts {
            let result = self.handle_once(&envelope).instrument(span.clone()).await;
            match result {
                Ok(outcome) => return Some(outcome),
                Err(HandleError::Permanent(e)) => return self.dead_letter(message, &e, stop).await,
                Err(HandleError::Retryable(e)) if attempt == self.config.consumer_max_attempts => {
                    return self.dead_letter(message, &e.context("retries exhausted"), stop).await;
                }
                Err(HandleError::Retryable(e)) => {
                    tracing::warn!(parent: &span, attempt, error = format!("{e:#}"), "handler failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        unreachable!("the last attempt always returns")
    }

    async fn handle_once(&self, envelope: &Envelope) -> Result<Outcome, HandleError> {
        let event_id = uuid::Uuid::parse_str(&envelope.id)
            .map_err(|e| HandleError::Permanent(anyhow::Error::new(e).context("event id is not a UUID")))?;
        let retryable = |e: sqlx::Error| HandleError::Retryable(e.into());
        let mut tx = self.pool.begin().await.map_err(retryable)?;
        let fresh =
            sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&self.group)
                .bind(event_id)
                .execute(&mut *tx)
                .await
                .map_err(retryable)?
                .rows_affected()
                == 1;
        if !fresh {
            return Ok(Outcome::Duplicate);
        }
        self.handler.handle(&mut tx, envelope).await?;
        tx.commit().await.map_err(retryable)?;
        Ok(Outcome::Processed)
    }

    /// Copies the message to `<topic>.dlq` with the reason in headers. Retries until it
    /// succeeds, because committing past a message that is not dead-lettered would lose it.
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        error: &anyhow::Error,
        stop: &CancellationToken,
    ) -> Option<Outcome> {
        let dlq = format!("{}{}", message.topic(), crate::kafka::DLQ_SUFFIX);
        let reason = format!("{error:#}");
        tracing::error!(group = %self.group, topic = message.topic(), offset = message.offset(), error = %reason, "dead-lettering message");
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(Header { key: h.key, value: h.value });
            }
        }
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = headers
            .insert(Header { key: "dlq.error", value: Some(&reason) })
            .insert(Header { key: "dlq.consumer", value: Some(&self.group) })
            .insert(Header { key: "dlq.original.topic", value: Some(message.topic()) })
            .insert(Header { key: "dlq.original.partition", value: Some(&partition) })
            .insert(Header { key: "dlq.original.offset", value: Some(&offset) });
        let mut backoff = self.config.consumer_retry_backoff;
        loop {
            let mut record = FutureRecord::to(&dlq).headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            match self.producer.send(record, Duration::from_secs(5)).await {
                Ok(_) => return Some(Outcome::DeadLettered),
                Err((e, _)) => tracing::warn!(topic = %dlq, error = %e, "DLQ publish failed; retrying"),
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long one metadata, offset or watermark request of the lag sampler may take.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);

/// Samples `kafka_consumer_lag_messages` of the partitions the replica owns and
/// `kafka_dlq_messages` of the consumed topics' dead-letter topics.
struct Lag {
    consumer: Arc<StreamConsumer>,
    group: String,
    dlqs: Vec<String>,
    metrics: Metrics,
}

/// One sample: lag per owned (topic, partition), messages per DLQ, and whether a broker answered.
#[derive(Debug, Default)]
struct LagSample {
    lag: Vec<(String, i32, i64)>,
    dlq: Vec<(String, i64)>,
    reachable: bool,
}

impl Lag {
    async fn watch(self) {
        let mut owned: std::collections::HashSet<(String, i32)> = std::collections::HashSet::new();
        loop {
            let (consumer, dlqs) = (self.consumer.clone(), self.dlqs.clone());
            let sample = tokio::task::spawn_blocking(move || sample_lag(&consumer, &dlqs)).await.unwrap_or_default();
            self.metrics.dependency_up("kafka", sample.reachable);
            let gauges = self.metrics.consumer_lag();
            let now: std::collections::HashSet<(String, i32)> =
                sample.lag.iter().map(|(topic, partition, _)| (topic.clone(), *partition)).collect();
            // Partitions revoked since the last sample: another replica reports them now.
            for (topic, partition) in owned.difference(&now) {
                let _ = gauges.remove_label_values(&[&self.group, topic, &partition.to_string()]);
            }
            for (topic, partition, lag) in &sample.lag {
                gauges.with_label_values(&[&self.group, topic, &partition.to_string()]).set(*lag);
            }
            owned = now;
            for (topic, messages) in &sample.dlq {
                self.metrics.dlq().with_label_values(&[topic]).set(*messages);
            }
            tokio::time::sleep(self.metrics.interval()).await;
        }
    }
}

/// Blocking: librdkafka's offset and watermark requests.
fn sample_lag(consumer: &StreamConsumer, dlqs: &[String]) -> LagSample {
    let mut sample = LagSample::default();
    let Ok(metadata) = consumer.fetch_metadata(None, LAG_TIMEOUT) else { return sample };
    sample.reachable = true;
    if let Ok(assignment) = consumer.assignment()
        && assignment.count() > 0
        && let Ok(committed) = consumer.committed_offsets(assignment, LAG_TIMEOUT)
    {
        for element in committed.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, LAG_TIMEOUT) else { continue };
            // Nothing committed yet: everything still in the partition is unconsumed.
            let from = match element.offset() {
                rdkafka::Offset::Offset(offset) => offset.max(low),
                _ => low,
            };
            sample.lag.push((topic.to_owned(), partition, (high - from).max(0)));
        }
    }
    for dlq in dlqs {
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == dlq) else { continue };
        let messages = topic
            .partitions()
            .iter()
            .filter_map(|p| consumer.fetch_watermarks(dlq, p.id(), LAG_TIMEOUT).ok())
            .map(|(low, high)| (high - low).max(0))
            .sum();
        sample.dlq.push((dlq.clone(), messages));
    }
    sample
}

fn decode(message: &BorrowedMessage<'_>) -> anyhow::Result<Envelope> {
    let payload = message.payload().context("message has no payload")?;
    Envelope::decode(payload).context("payload is not an event envelope")
}
