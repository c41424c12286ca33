//! The at-least-once consumer: commit after processing, dedupe on the event id,
//! bounded retries with backoff, and a dead-letter topic for poison messages.
//!
//! Each message is handled in one Postgres transaction that also records
//! `(consumer, event id)` in `processed_events`; a redelivered event finds its
//! row and is skipped, so handlers run effectively once.
//!
//! A watchdog beside the member samples the group's committed offsets. When a partition
//! has had unconsumed messages without progress for `kafka.consumer_stall_timeout`, and the
//! member owns it or owns nothing, and is not busy with a message, the member is stalled
//! (a group coordinator that lost it, an assignment that never came, a fetcher that went
//! quiet; ADR 0019): the service turns unready and the member leaves and joins the group
//! again, as a new member, at once and then after a wait doubling from the stall timeout to
//! eight times it, until the partition moves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::IntCounterVec;
use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::{PgConnection, PgPool};
use ticketing_proto::events::v1::Envelope;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::kafka::metrics::ConsumerGauges;
use crate::kafka::{KafkaConfig, MAX_RETRY_BACKOFF};
use crate::kafka::{Producer, StreamConsumer};
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

/// An event that does not decode never will: it goes to the DLQ.
impl From<crate::events::PayloadError> for HandleError {
    fn from(e: crate::events::PayloadError) -> Self {
        Self::Permanent(e.into())
    }
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
    producer: Producer,
    handler: Arc<H>,
    config: KafkaConfig,
    outcomes: IntCounterVec,
    gauges: ConsumerGauges,
    metrics: Metrics,
}

/// Why [`Consumer::consume`] returned.
enum End {
    /// `stop` was cancelled.
    Stopped,
    /// The watchdog asks for a new member.
    Renew(Renewal),
}

/// Why the watchdog asks for a new member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renewal {
    /// The member is stalled: it leaves the group and joins again as a new member.
    Stalled,
    /// With `kafka.assign_all_partitions`, partitions appeared that the member does not consume.
    NewPartitions,
}

impl<H: Handler> Consumer<H> {
    /// A consumer in `group` (namespaced like topics) reading `topics` (full names). Make it
    /// before [`crate::App::bind`], so the service's readiness includes it.
    pub fn new(
        group: impl Into<String>,
        topics: Vec<String>,
        pool: PgPool,
        producer: Producer,
        handler: H,
        config: &KafkaConfig,
        metrics: &Metrics,
    ) -> Self {
        let group = config.group(&group.into());
        Self {
            gauges: metrics.kafka().consumer(&group),
            group,
            topics,
            pool,
            producer,
            handler: Arc::new(handler),
            config: config.clone(),
            outcomes: metrics.kafka().consumed.clone(),
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
        // Every outcome's series exists from the start, at zero: dashboards and alerts on
        // duplicates and dead letters see "none", not "no data".
        for topic in &self.topics {
            for outcome in [Outcome::Processed, Outcome::Duplicate, Outcome::DeadLettered] {
                self.outcomes.with_label_values(&[self.group.as_str(), topic, outcome.label()]);
            }
        }
        let (member_tx, member_rx) = watch::channel(None);
        // One pending request is enough: the member it renews is gone once it is read.
        let (renew_tx, mut renew) = mpsc::channel(1);
        let watchdog = Watchdog {
            member: member_rx,
            group: self.group.clone(),
            topics: self.topics.clone(),
            dlqs: self.topics.iter().map(|t| format!("{t}{}", crate::kafka::DLQ_SUFFIX)).collect(),
            metrics: self.metrics.clone(),
            gauges: self.gauges.clone(),
            busy: Arc::new(AtomicBool::new(false)),
            renew: renew_tx,
            stall_timeout: self.config.consumer_stall_timeout,
            assign_all: self.config.assign_all_partitions,
        };
        let busy = watchdog.busy.clone();
        // Aborted when this loop returns, so a stopped consumer reports no lag.
        let _watchdog = AbortOnDrop(tokio::spawn(watchdog.watch()));
        loop {
            let member = self.join().await?;
            member_tx.send_replace(Some(member.clone()));
            let end = self.consume(&member, &stop, &mut renew, &busy).await;
            member_tx.send_replace(None);
            // Closing leaves the group (a dynamic member does) and blocks until the broker
            // answers, for as long as it does not: waited for up to a session timeout, so that
            // neither a new member nor a stopping service waits on a broker that is gone.
            let closed = crate::kafka::off_runtime(move || drop(member));
            let _ = tokio::time::timeout(self.config.consumer_session_timeout, closed).await;
            match end {
                End::Stopped => return Ok(()),
                End::Renew(Renewal::Stalled) => self.gauges.rejoins.inc(),
                End::Renew(_) => {}
            }
        }
    }

    /// A new member of the group, subscribed to the topics; with `kafka.assign_all_partitions`,
    /// a consumer of every partition they have now, outside the group.
    async fn join(&self) -> anyhow::Result<Arc<StreamConsumer>> {
        let config = &self.config;
        let millis = |d: Duration| d.as_millis().to_string();
        let consumer: StreamConsumer = crate::kafka::create(config, |client| {
            client
                .set("group.id", &self.group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", millis(config.consumer_session_timeout))
                .set("heartbeat.interval.ms", millis((config.consumer_session_timeout / 3).min(Duration::from_secs(3))))
                .set("max.poll.interval.ms", millis(config.consumer_max_poll_interval));
            if !config.group_instance_id.is_empty() {
                client.set("group.instance.id", &config.group_instance_id);
            }
        })
        .context("creating the Kafka consumer")?;
        let consumer = Arc::new(consumer);
        if config.assign_all_partitions {
            // Topics that do not exist yet, or a broker that does not answer now: the watchdog
            // calls for a new member once their partitions show.
            let (member, topics) = (consumer.clone(), self.topics.clone());
            crate::kafka::off_runtime(move || {
                let mut all = TopicPartitionList::new();
                for (topic, partitions) in partition_counts(&member, &topics).unwrap_or_default() {
                    for partition in 0..partitions {
                        all.add_partition_offset(&topic, partition, Offset::Stored)?;
                    }
                }
                member.assign(&all)
            })
            .await
            .context("assigning partitions")?
            .context("assigning partitions")?;
        } else {
            let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics).context("subscribing")?;
        }
        Ok(consumer)
    }

    /// Feeds `consumer`'s messages to the handler until `stop` or the watchdog's request
    /// for a new member.
    async fn consume(
        &self,
        consumer: &StreamConsumer,
        stop: &CancellationToken,
        renew: &mut mpsc::Receiver<Renewal>,
        busy: &AtomicBool,
    ) -> End {
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return End::Stopped,
                Some(renewal) = renew.recv() => return End::Renew(renewal),
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
            busy.store(true, Ordering::Release);
            let outcome = self.process(&message, stop).await;
            busy.store(false, Ordering::Release);
            let Some(outcome) = outcome else {
                // Stopped mid-retry: leave the offset uncommitted so it is redelivered.
                return End::Stopped;
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
        let parent = super::extract_traceparent(message.headers()).unwrap_or_else(|| envelope.traceparent.clone());
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
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
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
            // The producer may be told to never give up on a message (kafka.producer_message_timeout).
            let sent = tokio::select! {
                () = stop.cancelled() => return None,
                sent = self.producer.send(record, Duration::from_secs(5)) => sent,
            };
            match sent {
                Ok(_) => return Some(Outcome::DeadLettered),
                Err((e, _)) => tracing::warn!(topic = %dlq, error = %e, "DLQ publish failed; retrying"),
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
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

/// How long one offset or watermark request of the watchdog may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Samples the group's progress for the current member: `kafka_consumer_lag_messages` of the
/// partitions it owns, `kafka_dlq_messages` of the consumed topics' dead-letter topics,
/// `kafka_consumer_assigned_partitions`, and whether the member is stalled.
struct Watchdog {
    member: watch::Receiver<Option<Arc<StreamConsumer>>>,
    group: String,
    topics: Vec<String>,
    dlqs: Vec<String>,
    metrics: Metrics,
    gauges: ConsumerGauges,
    /// Set while the member handles a message: a partition waiting on it is not stalled.
    busy: Arc<AtomicBool>,
    /// Asks the consume loop for a new member.
    renew: mpsc::Sender<Renewal>,
    stall_timeout: Duration,
    /// `kafka.assign_all_partitions`: partitions the member does not own are new ones.
    assign_all: bool,
}

impl Watchdog {
    async fn watch(self) {
        // Often enough to notice a stall within a third of its timeout past it.
        let interval = self.metrics.interval().min(self.stall_timeout / 3);
        let mut owned: HashSet<(String, i32)> = HashSet::new();
        let mut progress = Progress::default();
        // Rejoining right away, then after a doubling wait while the stall lasts.
        let mut backoff = self.stall_timeout;
        let mut next_rejoin = Instant::now();
        loop {
            let member = self.member.borrow().clone();
            if let Some(consumer) = member {
                let (topics, dlqs) = (self.topics.clone(), self.dlqs.clone());
                let sample =
                    crate::kafka::off_runtime(move || sample(&consumer, &topics, &dlqs)).await.unwrap_or_default();
                self.report(&sample, &mut owned);
                let now = Instant::now();
                let stall = self.judge(&sample, &mut progress, now);
                match &stall {
                    Some(reason) if now >= next_rejoin => {
                        tracing::warn!(group = %self.group, reason = %reason, "consumer stalled: rejoining the group");
                        next_rejoin = now + backoff;
                        backoff = (backoff * 2).min(self.stall_timeout * 8);
                        let _ = self.renew.try_send(Renewal::Stalled);
                    }
                    Some(_) => {}
                    None => {
                        if self.gauges.stall().is_some() {
                            tracing::info!(group = %self.group, "consumer progressing again");
                        }
                        backoff = self.stall_timeout;
                    }
                }
                self.gauges.set_stall(stall);
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Why the member is stalled after `sample`, if it is.
    fn judge(&self, sample: &Sample, progress: &mut Progress, now: Instant) -> Option<String> {
        if !sample.reachable {
            // Time without a broker does not count: its outage is not the member's stall.
            progress.forget();
            return None;
        }
        let Some(partitions) = &sample.partitions else {
            // The offsets could not be read this time: the next sample judges.
            return self.gauges.stall();
        };
        if self.assign_all && partitions.iter().any(|p| !p.owned) {
            tracing::info!(group = %self.group, "new partitions: consuming them with a new member");
            let _ = self.renew.try_send(Renewal::NewPartitions);
            return self.gauges.stall();
        }
        let stuck = progress.observe(partitions, now, self.stall_timeout);
        verdict(&stuck, sample.assigned, self.busy.load(Ordering::Acquire))
    }

    /// Exports one sample's lag, DLQ sizes, assignment and broker reachability.
    fn report(&self, sample: &Sample, owned: &mut HashSet<(String, i32)>) {
        self.metrics.dependency_up("kafka", sample.reachable);
        if !sample.reachable {
            return;
        }
        self.gauges.assigned.set(sample.assigned as i64);
        let gauges = &self.metrics.kafka().consumer_lag;
        let lags: Vec<_> = sample.partitions.iter().flatten().filter(|p| p.owned).collect();
        let now: HashSet<(String, i32)> = lags.iter().map(|p| (p.topic.clone(), p.partition)).collect();
        // Partitions revoked since the last sample: another replica reports them now.
        for (topic, partition) in owned.difference(&now) {
            let _ = gauges.remove_label_values(&[&self.group, topic, &partition.to_string()]);
        }
        for p in &lags {
            gauges.with_label_values(&[&self.group, &p.topic, &p.partition.to_string()]).set(p.lag());
        }
        *owned = now;
        for (topic, messages) in &sample.dlq {
            self.metrics.kafka().dlq.with_label_values(&[topic]).set(*messages);
        }
    }
}

/// Why the member is stalled, if it is: a stuck partition that it owns, or any stuck
/// partition while it owns none, and no message in hand.
fn verdict(stuck: &[(&PartitionLag, Duration)], assigned: usize, busy: bool) -> Option<String> {
    if busy {
        return None;
    }
    let mine: Vec<String> = stuck
        .iter()
        .filter(|(p, _)| p.owned || assigned == 0)
        .map(|(p, idle)| format!("{}[{}] has {} unconsumed for {}s", p.topic, p.partition, p.lag(), idle.as_secs()))
        .collect();
    if mine.is_empty() {
        return None;
    }
    let owner = if assigned == 0 { "no partition is assigned to this member" } else { "this member owns it" };
    Some(format!("{} ({owner})", mine.join(", ")))
}

/// The group's position on one partition of a consumed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionLag {
    topic: String,
    partition: i32,
    /// The committed offset (the low watermark before the first commit, or below it).
    position: i64,
    high: i64,
    /// Assigned to this member.
    owned: bool,
}

impl PartitionLag {
    fn lag(&self) -> i64 {
        (self.high - self.position).max(0)
    }
}

/// One sample of the group's partitions.
#[derive(Debug, Default)]
struct Sample {
    /// A broker answered a metadata request.
    reachable: bool,
    /// Partitions assigned to the member.
    assigned: usize,
    /// Every partition of the consumed topics; `None` when the offsets could not be read.
    partitions: Option<Vec<PartitionLag>>,
    /// Messages in each dead-letter topic that exists.
    dlq: Vec<(String, i64)>,
}

/// Since when each partition with unconsumed messages has kept its position.
#[derive(Debug, Default)]
struct Progress {
    since: HashMap<(String, i32), (i64, Instant)>,
}

impl Progress {
    /// Records `partitions`' positions at `now`; returns those with unconsumed messages whose
    /// position has not moved for `timeout`, with how long.
    fn observe<'a>(
        &mut self,
        partitions: &'a [PartitionLag],
        now: Instant,
        timeout: Duration,
    ) -> Vec<(&'a PartitionLag, Duration)> {
        let mut since = HashMap::new();
        let mut stuck = Vec::new();
        for p in partitions.iter().filter(|p| p.lag() > 0) {
            let key = (p.topic.clone(), p.partition);
            let started = match self.since.get(&key) {
                Some(&(position, started)) if position == p.position => started,
                _ => now,
            };
            if now.duration_since(started) >= timeout {
                stuck.push((p, now.duration_since(started)));
            }
            since.insert(key, (p.position, started));
        }
        self.since = since;
        stuck
    }

    /// Forgets every position: what follows starts the clocks afresh.
    fn forget(&mut self) {
        self.since.clear();
    }
}

/// Blocking: the partition count of each of `topics` that exists; `None` when no broker
/// answers. One topic at a time: a shared development broker may hold thousands.
fn partition_counts(consumer: &StreamConsumer, topics: &[String]) -> Option<Vec<(String, i32)>> {
    let mut counts = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), crate::kafka::PROBE_TIMEOUT).ok()?;
        counts.extend(
            metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| (t.name().to_owned(), t.partitions().len() as i32)),
        );
    }
    Some(counts)
}

/// Blocking: librdkafka's metadata, offset and watermark requests.
fn sample(consumer: &StreamConsumer, topics: &[String], dlqs: &[String]) -> Sample {
    let mut sample = Sample::default();
    let all: Vec<String> = topics.iter().chain(dlqs).cloned().collect();
    let Some(metadata) = partition_counts(consumer, &all) else { return sample };
    sample.reachable = true;
    let owned: HashSet<(String, i32)> = consumer
        .assignment()
        .map(|a| a.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect())
        .unwrap_or_default();
    sample.assigned = owned.len();
    let mut all = TopicPartitionList::new();
    for (topic, partitions) in metadata.iter().filter(|(t, _)| topics.contains(t)) {
        for partition in 0..*partitions {
            all.add_partition(topic, partition);
        }
    }
    sample.partitions = consumer.committed_offsets(all, SAMPLE_TIMEOUT).ok().and_then(|committed| {
        committed
            .elements()
            .iter()
            .map(|e| {
                let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), SAMPLE_TIMEOUT).ok()?;
                // Nothing committed yet: everything still in the partition is unconsumed.
                let position = match e.offset() {
                    Offset::Offset(offset) => offset.max(low),
                    _ => low,
                };
                let owned = owned.contains(&(e.topic().to_owned(), e.partition()));
                Some(PartitionLag { topic: e.topic().to_owned(), partition: e.partition(), position, high, owned })
            })
            .collect()
    });
    for (dlq, partitions) in metadata.iter().filter(|(t, _)| dlqs.contains(t)) {
        let messages = (0..*partitions)
            .filter_map(|p| consumer.fetch_watermarks(dlq, p, SAMPLE_TIMEOUT).ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(partition: i32, position: i64, high: i64, owned: bool) -> PartitionLag {
        PartitionLag { topic: "t".into(), partition, position, high, owned }
    }

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[test]
    fn a_partition_is_stuck_once_its_position_has_not_moved_for_the_timeout() {
        let mut progress = Progress::default();
        let start = Instant::now();
        let waiting = [partition(0, 5, 9, true), partition(1, 3, 3, true)];
        assert!(progress.observe(&waiting, start, TIMEOUT).is_empty());
        assert!(progress.observe(&waiting, start + TIMEOUT / 2, TIMEOUT).is_empty());
        let stuck = progress.observe(&waiting, start + TIMEOUT, TIMEOUT);
        // Partition 1 has nothing left to consume: never stuck.
        assert_eq!(stuck, [(&waiting[0], TIMEOUT)]);

        // It moved: the clock starts again.
        let moved = [partition(0, 6, 9, true)];
        assert!(progress.observe(&moved, start + TIMEOUT * 2, TIMEOUT).is_empty());
        assert!(progress.observe(&moved, start + TIMEOUT * 5 / 2, TIMEOUT).is_empty());
        assert_eq!(progress.observe(&moved, start + TIMEOUT * 3, TIMEOUT).len(), 1);
    }

    #[test]
    fn time_without_a_broker_does_not_count() {
        let mut progress = Progress::default();
        let start = Instant::now();
        let waiting = [partition(0, 5, 9, true)];
        progress.observe(&waiting, start, TIMEOUT);
        progress.forget();
        assert!(progress.observe(&waiting, start + TIMEOUT * 2, TIMEOUT).is_empty());
    }

    #[test]
    fn a_member_is_stalled_by_a_stuck_partition_it_owns_or_by_any_while_it_owns_none() {
        let mine = partition(0, 5, 9, true);
        let theirs = partition(1, 5, 9, false);
        let idle = Duration::from_secs(61);
        let reason = verdict(&[(&mine, idle)], 1, false).expect("stalled");
        assert_eq!(reason, "t[0] has 4 unconsumed for 61s (this member owns it)");
        // Another member's partition: that member's watchdog answers for it.
        assert_eq!(verdict(&[(&theirs, idle)], 1, false), None);
        let reason = verdict(&[(&theirs, idle)], 0, false).expect("stalled");
        assert!(reason.ends_with("(no partition is assigned to this member)"), "{reason}");
        // A message in hand holds the partitions back, within the retries' bound.
        assert_eq!(verdict(&[(&mine, idle)], 1, true), None);
        assert_eq!(verdict(&[], 0, false), None);
    }
}
