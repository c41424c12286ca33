//! The transactional outbox and its relay.
//!
//! A service writes events with [`enqueue`] inside the transaction that makes
//! the change, so an event exists if and only if the change committed. The
//! [`Relay`] publishes rows and deletes them. Each batch is claimed with
//! `FOR UPDATE SKIP LOCKED`, so any number of replicas can relay at once
//! without publishing a row twice; a crash between publish and delete
//! republishes it, which consumers absorb by deduplicating on the event id.

use std::time::Duration;

use anyhow::Context as _;
use prometheus::IntCounterVec;
use prost::Message as _;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureRecord, Producer as _};
use sqlx::{PgConnection, PgPool};
use ticketing_proto::events::v1::Envelope;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Adds `envelope` to the outbox for `topic`, inside the caller's transaction.
/// Idempotent on the envelope id: enqueuing the same event twice stores it once.
pub async fn enqueue(conn: &mut PgConnection, topic: &str, envelope: &Envelope) -> anyhow::Result<()> {
    let event_id = uuid::Uuid::parse_str(&envelope.id).context("envelope id is not a UUID")?;
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, envelope, traceparent)
         VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''))
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(topic)
    .bind(&envelope.aggregate_id)
    .bind(&envelope.r#type)
    .bind(envelope.encode_to_vec())
    .bind(&envelope.traceparent)
    .execute(conn)
    .await
    .context("writing to the outbox")?;
    Ok(())
}

/// Publishes outbox rows to Kafka.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    producer: super::Producer,
    batch_size: i64,
    poll_interval: Duration,
    published: IntCounterVec,
    metrics: Metrics,
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    topic: String,
    message_key: String,
    envelope: Vec<u8>,
    traceparent: Option<String>,
}

impl Relay {
    /// A relay draining `pool`'s outbox through `producer`.
    pub fn new(pool: PgPool, producer: super::Producer, config: &crate::kafka::KafkaConfig, metrics: &Metrics) -> Self {
        Self {
            pool,
            producer,
            batch_size: config.outbox_batch_size,
            poll_interval: config.outbox_poll_interval,
            published: metrics.kafka().outbox_relayed.clone(),
            metrics: metrics.clone(),
        }
    }

    /// Relays until `stop` is cancelled. Broker or database errors are logged and retried.
    /// Beside it, samples the backlog and the broker connection every `telemetry.metrics_interval`,
    /// in a loop of its own so a relay stuck on an unreachable broker still reports its backlog.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let backlog = async {
            loop {
                if let Err(e) = self.sample_backlog().await {
                    tracing::debug!(error = format!("{e:#}"), "sampling the outbox backlog failed");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(self.metrics.interval()) => {}
                }
            }
        };
        // Apart from the backlog: an unreachable broker makes the probe wait its timeout.
        let broker = async {
            loop {
                let producer = self.producer.clone();
                let up = crate::kafka::off_runtime(move || crate::kafka::reachable(producer.client())).await;
                self.metrics.dependency_up("kafka", up.unwrap_or(false));
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(self.metrics.interval()) => {}
                }
            }
        };
        let ((), (), result) = tokio::join!(backlog, broker, self.relay(&stop));
        result
    }

    /// Sets `outbox_pending_messages` and `outbox_oldest_pending_age_seconds` from the table.
    pub async fn sample_backlog(&self) -> anyhow::Result<()> {
        let (pending, age): (i64, f64) = sqlx::query_as(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM outbox",
        )
        .fetch_one(&self.pool)
        .await
        .context("reading the outbox backlog")?;
        let gauges = self.metrics.kafka().outbox_gauges();
        gauges.pending.set(pending);
        gauges.oldest_age.set(age.max(0.0));
        Ok(())
    }

    async fn relay(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut backoff = self.poll_interval;
        loop {
            // Cancelled mid-batch, the transaction rolls back: the rows stay, and whatever the
            // producer still delivers is published again later (consumers dedupe).
            let published = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                published = self.publish_batch() => published,
            };
            let wait = match published {
                Ok(n) if n as i64 >= self.batch_size => Duration::ZERO,
                Ok(_) => {
                    backoff = self.poll_interval;
                    self.poll_interval
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "outbox relay batch failed");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    backoff
                }
            };
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Claims up to one batch, publishes it and deletes what was acknowledged.
    /// Returns how many rows were published.
    pub async fn publish_batch(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await.context("starting the relay transaction")?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, topic, message_key, envelope, traceparent FROM outbox
             ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.batch_size)
        .fetch_all(&mut *tx)
        .await
        .context("claiming outbox rows")?;
        if rows.is_empty() {
            return Ok(0);
        }

        // Send the whole batch before awaiting: the producer pipelines it and keeps order.
        let deliveries: Vec<_> = rows
            .iter()
            .map(|row| {
                // A producer span, child of the context that wrote the row; its context is the
                // message's `traceparent`, so consumers' spans descend from it.
                let span = tracing::info_span!(
                    "kafka.publish",
                    otel.kind = "producer",
                    service.name = %self.metrics.service(),
                    messaging.destination = %row.topic,
                );
                crate::telemetry::set_parent_from_traceparent(&span, row.traceparent.as_deref().unwrap_or_default());
                // Without a tracing subscriber there is no span: pass the row's context on.
                let traceparent = crate::telemetry::traceparent_of(&span).or_else(|| row.traceparent.clone());
                let headers = super::inject_traceparent(OwnedHeaders::new(), traceparent.as_deref());
                let record = FutureRecord::to(&row.topic).key(&row.message_key).payload(&row.envelope).headers(headers);
                tracing::Instrument::instrument(self.producer.send(record, Duration::from_secs(5)), span)
            })
            .collect();
        let results = futures::future::join_all(deliveries).await;

        let mut done = Vec::with_capacity(rows.len());
        let mut first_error = None;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(_) => done.push(row.seq),
                Err((e, _)) => {
                    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1")
                        .bind(row.seq)
                        .bind(e.to_string())
                        .execute(&mut *tx)
                        .await
                        .context("recording a failed publish")?;
                    first_error.get_or_insert(e);
                }
            }
        }
        sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
            .bind(&done)
            .execute(&mut *tx)
            .await
            .context("deleting published outbox rows")?;
        tx.commit().await.context("committing the relay transaction")?;

        self.published.with_label_values(&["published"]).inc_by(done.len() as u64);
        if let Some(e) = first_error {
            self.published.with_label_values(&["failed"]).inc_by((rows.len() - done.len()) as u64);
            return Err(anyhow::Error::new(e).context("publishing outbox rows"));
        }
        Ok(done.len())
    }
}
