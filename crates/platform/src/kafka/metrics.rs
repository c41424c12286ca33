//! The outbox relay's and the consumers' metrics. The labelled vectors are registered up
//! front (a vector without series exports nothing); the outbox's plain gauges only once a
//! service has an outbox, so a service without one reports no zeros.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// One service's Kafka metrics, shared by its relays and consumers.
pub(crate) struct KafkaMetrics {
    registry: Registry,
    /// Outbox rows relayed, by result; shared by every relay of the service.
    pub(crate) outbox_relayed: IntCounterVec,
    /// Consumed messages, by group, topic and outcome; shared by every consumer.
    pub(crate) consumed: IntCounterVec,
    outbox: OnceLock<OutboxGauges>,
    pub(crate) consumer_lag: IntGaugeVec,
    consumer_assigned: IntGaugeVec,
    consumer_stalled: IntGaugeVec,
    consumer_rejoins: IntCounterVec,
    /// Every consumer group of the service, whose stall readiness reads.
    consumer_stalls: Mutex<Vec<(String, ConsumerGauges)>>,
    pub(crate) dlq: IntGaugeVec,
}

/// `outbox_pending_messages` and `outbox_oldest_pending_age_seconds`.
#[derive(Clone)]
pub(crate) struct OutboxGauges {
    pub(crate) pending: IntGauge,
    pub(crate) oldest_age: Gauge,
}

/// The watchdog's view of one consumer group: `kafka_consumer_assigned_partitions`,
/// `kafka_consumer_stalled`, `kafka_consumer_rejoins_total`, and why the member is stalled
/// (`None`: it is not), which the service's readiness check reads.
#[derive(Clone)]
pub(crate) struct ConsumerGauges {
    pub(crate) assigned: IntGauge,
    stalled: IntGauge,
    pub(crate) rejoins: IntCounter,
    stall: Arc<Mutex<Option<String>>>,
}

impl ConsumerGauges {
    /// Records whether the member is stalled, and why.
    pub(crate) fn set_stall(&self, reason: Option<String>) {
        self.stalled.set(i64::from(reason.is_some()));
        *self.stall.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    /// Why the member is stalled, if it is.
    pub(crate) fn stall(&self) -> Option<String> {
        self.stall.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl KafkaMetrics {
    /// The vectors, registered in `registry`.
    pub(crate) fn new(registry: &Registry) -> Self {
        let register = |collector: Box<dyn prometheus::core::Collector>| {
            registry.register(collector).expect("registered once");
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
            register(Box::new(vec.clone()));
            vec
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
            register(Box::new(vec.clone()));
            vec
        };
        Self {
            registry: registry.clone(),
            outbox_relayed: counter_vec(
                "outbox_relay_messages_total",
                "Outbox rows the relay tried to publish, by result.",
                &["result"],
            ),
            consumed: counter_vec(
                "kafka_consumer_messages_total",
                "Consumed messages, by group, topic and outcome.",
                &["group", "topic", "outcome"],
            ),
            outbox: OnceLock::new(),
            consumer_lag: gauge_vec(
                "kafka_consumer_lag_messages",
                "High watermark minus the committed offset, for the partitions this replica owns.",
                &["group", "topic", "partition"],
            ),
            consumer_assigned: gauge_vec(
                "kafka_consumer_assigned_partitions",
                "Partitions assigned to this replica's member of the group (all of them with kafka.assign_all_partitions).",
                &["group"],
            ),
            consumer_stalled: gauge_vec(
                "kafka_consumer_stalled",
                "1 while a partition has had unconsumed messages and no progress for kafka.consumer_stall_timeout \
                 and this replica's member owns it or owns nothing, else 0.",
                &["group"],
            ),
            consumer_rejoins: counter_vec(
                "kafka_consumer_rejoins_total",
                "Times a stalled member left its group and joined it again as a new member.",
                &["group"],
            ),
            consumer_stalls: Mutex::default(),
            dlq: gauge_vec(
                "kafka_dlq_messages",
                "Messages in a dead-letter topic (high minus low watermark).",
                &["topic"],
            ),
        }
    }

    /// The gauges of consumer group `group`, at zero, on the list [`Self::consumer_stalls`] reads.
    pub(crate) fn consumer(&self, group: &str) -> ConsumerGauges {
        let gauges = ConsumerGauges {
            assigned: self.consumer_assigned.with_label_values(&[group]),
            stalled: self.consumer_stalled.with_label_values(&[group]),
            rejoins: self.consumer_rejoins.with_label_values(&[group]),
            stall: Arc::default(),
        };
        gauges.set_stall(None);
        self.consumer_stalls.lock().unwrap_or_else(PoisonError::into_inner).push((group.to_owned(), gauges.clone()));
        gauges
    }

    /// The service's consumer groups, each with why it is stalled (`None`: it is not).
    pub(crate) fn consumer_stalls(&self) -> Vec<(String, Option<String>)> {
        let stalls = self.consumer_stalls.lock().unwrap_or_else(PoisonError::into_inner);
        stalls.iter().map(|(group, gauges)| (group.clone(), gauges.stall())).collect()
    }

    pub(crate) fn outbox_gauges(&self) -> &OutboxGauges {
        self.outbox.get_or_init(|| {
            let pending =
                IntGauge::new("outbox_pending_messages", "Unpublished outbox rows.").expect("static metric definition");
            let oldest_age = Gauge::new(
                "outbox_oldest_pending_age_seconds",
                "Age of the oldest unpublished outbox row; 0 when there is none.",
            )
            .expect("static metric definition");
            self.registry.register(Box::new(pending.clone())).expect("registered once");
            self.registry.register(Box::new(oldest_age.clone())).expect("registered once");
            OutboxGauges { pending, oldest_age }
        })
    }
}
