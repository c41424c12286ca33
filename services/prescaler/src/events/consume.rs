//! Reads `catalog.events` from the beginning on every start, outside any consumer group and
//! committing nothing: the schedule is rebuilt from the topic each time (ADR 0024). Once every
//! partition is read to the end it had when the reader started, the schedule is complete.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prost::Message as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::kafka::StreamConsumer;
use ticketing_proto::events::v1::Envelope;
use tokio_util::sync::CancellationToken;

use crate::workers::controller::Knowledge;

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the reader waits before asking again for a topic or broker that is not there.
const RETRY: Duration = Duration::from_secs(2);

/// Feeds `knowledge` from `topic` until `stop`.
pub async fn follow(
    config: KafkaConfig,
    topic: String,
    knowledge: Arc<Knowledge>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ticketing_platform::kafka::create(&config, |client| {
        client
            .set("group.id", config.group("prescaler"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
    })
    .context("creating the Kafka consumer")?;
    let consumer = Arc::new(consumer);
    // The end of each partition now: reading up to it makes the schedule complete.
    let ends = loop {
        let (member, name) = (consumer.clone(), topic.clone());
        let ends =
            tokio::task::spawn_blocking(move || ends(&member, &name)).await.context("reading the topic's ends")?;
        match ends {
            Ok(ends) if !ends.is_empty() => break ends,
            // Nothing was ever published: nothing to wait for, but the topic is watched for.
            Ok(_) => knowledge.mark_complete(),
            Err(e) => tracing::warn!(topic = %topic, error = format!("{e:#}"), "catalog events unreadable; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(RETRY) => {}
        }
    };
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment.add_partition_offset(&topic, *partition, Offset::Beginning).context("assigning")?;
    }
    consumer.assign(&assignment).context("assigning the partitions")?;
    let mut behind: HashMap<i32, i64> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    if behind.is_empty() {
        knowledge.mark_complete();
    }
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "Kafka receive failed");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // A message that is not a catalog event is skipped, not retried: nothing it could say
        // would be read differently later, and the rest of the schedule must not wait for it.
        let applied = message
            .payload()
            .context("no payload")
            .and_then(|bytes| Envelope::decode(bytes).context("not an event envelope"))
            .and_then(|envelope| knowledge.apply(&envelope).context("undecodable catalog event"));
        if let Err(e) = applied {
            tracing::warn!(topic = %topic, offset = message.offset(), error = format!("{e:#}"), "skipping a message");
        }
        if behind.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
            behind.remove(&message.partition());
            if behind.is_empty() {
                tracing::info!(topic = %topic, "catalog events read back: floors may be lowered from now on");
                knowledge.mark_complete();
            }
        }
    }
}

/// Blocking: each partition of `topic` and its high watermark; none for a topic that does
/// not exist yet.
fn ends(consumer: &StreamConsumer, topic: &str) -> anyhow::Result<HashMap<i32, i64>> {
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT).context("fetching metadata")?;
    let mut ends = HashMap::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic && t.error().is_none()) {
        for partition in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), METADATA_TIMEOUT)
                .with_context(|| format!("the end of partition {}", partition.id()))?;
            ends.insert(partition.id(), high);
        }
    }
    Ok(ends)
}
