//! The `kafka` section: connection, topic naming, consumer and producer behaviour.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, Validate};

/// Where a Kafka client gets its OAUTHBEARER tokens from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthBearer {
    /// The GCE/GKE metadata server's token of the workload's service account.
    Gcp,
    /// Amazon MSK's IAM access control, signed with the pod's IAM role (IRSA).
    Aws,
}

/// Kafka connection, topic naming and consumer behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// Prepended (with a dot) to every topic name; empty for none.
    pub topic_namespace: String,
    /// Create the service's topics (and their `.dlq`) at start if missing.
    pub create_topics: bool,
    /// Partitions of topics created at start.
    pub topic_partitions: i32,
    /// Replication factor of topics created at start.
    pub topic_replication: i32,
    /// Extra librdkafka properties (TLS, SASL). `_` in a key stands for `.`,
    /// so `security_protocol` sets `security.protocol`.
    pub properties: BTreeMap<String, String>,
    /// Where SASL/OAUTHBEARER tokens come from (`gcp`: the workload's identity on GKE; `aws`:
    /// its IAM role on EKS, for MSK's IAM access control), with
    /// `properties.sasl_mechanism = OAUTHBEARER`; unset for SASL/SCRAM, PLAIN or none.
    pub oauthbearer: Option<OAuthBearer>,
    /// How often the outbox relay polls when it found nothing to publish.
    #[serde(with = "humantime_serde")]
    pub outbox_poll_interval: Duration,
    /// Rows the relay publishes per transaction.
    pub outbox_batch_size: i64,
    /// Whether this process consumes at all. Off for a replica that must only serve calls
    /// and relay its outbox (run-local.sh's short-hold inventory, beside a replica that
    /// consumes every partition: `assign_all_partitions`).
    pub consume: bool,
    /// Attempts a consumer makes on one message before sending it to the DLQ.
    pub consumer_max_attempts: u32,
    /// First retry delay; doubles each attempt.
    #[serde(with = "humantime_serde")]
    pub consumer_retry_backoff: Duration,
    /// How long the group coordinator waits for a member's heartbeat before it evicts the
    /// member and hands its partitions to the others (`session.timeout.ms`). Heartbeats go
    /// every third of it, at most every 3s.
    #[serde(with = "humantime_serde")]
    pub consumer_session_timeout: Duration,
    /// Longest gap between two polls before librdkafka gives the member's partitions away
    /// (`max.poll.interval.ms`): the consumer polls between messages, so this bounds the
    /// handling of one message, retries included.
    #[serde(with = "humantime_serde")]
    pub consumer_max_poll_interval: Duration,
    /// How long a partition may hold unconsumed messages without its committed offset moving
    /// before a member that owns it (or owns nothing) counts as stalled: the service turns
    /// unready, `kafka_consumer_stalled` goes to 1 and the member rejoins its group afresh.
    #[serde(with = "humantime_serde")]
    pub consumer_stall_timeout: Duration,
    /// Consume every partition of the topics without joining the consumer group (offsets are
    /// still committed under the group's id), so no group coordinator is involved. Only for a
    /// single replica of the service, on a broker whose coordinator cannot be trusted (tansu
    /// 0.6, ADR 0019): two replicas would both consume everything.
    pub assign_all_partitions: bool,
    /// Static group membership (`group.instance.id`): a restarted process with the same id
    /// takes its old member's place and partitions at once, instead of joining as a new member
    /// beside a dead one until the session times out. It must be unique per replica and stable
    /// across its restarts (the local platform's service name, a StatefulSet's pod name);
    /// empty: dynamic membership.
    pub group_instance_id: String,
    /// How long the producer keeps trying to deliver a message (`message.timeout.ms`); zero
    /// for "until it is delivered" (what tansu needs: see ADR 0019).
    #[serde(with = "humantime_serde")]
    pub producer_message_timeout: Duration,
}

impl KafkaConfig {
    /// The full topic name for `base` (e.g. `identity.events`) in this namespace.
    pub fn topic(&self, base: &str) -> String {
        if self.topic_namespace.is_empty() { base.to_owned() } else { format!("{}.{base}", self.topic_namespace) }
    }

    /// `properties` under librdkafka's names (`sasl_mechanism` is `sasl.mechanism`).
    pub fn librdkafka_properties(&self) -> impl Iterator<Item = (String, &str)> {
        self.properties.iter().map(|(key, value)| (key.replace('_', "."), value.as_str()))
    }
}

impl KafkaConfig {
    /// The full consumer-group id for `base`: namespaced like topics, so deployments
    /// (and tests) sharing a cluster never join each other's groups.
    pub fn group(&self, base: &str) -> String {
        self.topic(base)
    }

    /// The longest a consumer waits between attempts on one message, in total: every
    /// retry's backoff, doubling from `consumer_retry_backoff` and capped at 30s.
    pub fn consumer_retry_wait(&self) -> Duration {
        (1..self.consumer_max_attempts)
            .scan(self.consumer_retry_backoff, |backoff, _| {
                let wait = *backoff;
                *backoff = (*backoff * 2).min(MAX_RETRY_BACKOFF);
                Some(wait)
            })
            .sum()
    }
}

/// The cap of a consumer's doubling retry backoff.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_namespace: String::new(),
            create_topics: true,
            topic_partitions: 3,
            topic_replication: 1,
            properties: BTreeMap::new(),
            oauthbearer: None,
            outbox_poll_interval: Duration::from_millis(200),
            outbox_batch_size: 100,
            consume: true,
            consumer_max_attempts: 5,
            consumer_retry_backoff: Duration::from_millis(200),
            consumer_session_timeout: Duration::from_secs(45),
            consumer_max_poll_interval: Duration::from_secs(300),
            consumer_stall_timeout: Duration::from_secs(60),
            assign_all_partitions: false,
            group_instance_id: String::new(),
            producer_message_timeout: Duration::from_secs(30),
        }
    }
}

impl Validate for KafkaConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.brokers.split(',').any(|b| b.trim().is_empty()) {
            issues.push(ConfigIssue::new("kafka.brokers", "must be a comma-separated host:port list"));
        }
        if self.topic_partitions < 1 {
            issues.push(ConfigIssue::new("kafka.topic_partitions", "must be at least 1"));
        }
        if self.topic_replication < 1 {
            issues.push(ConfigIssue::new("kafka.topic_replication", "must be at least 1"));
        }
        if self.outbox_batch_size < 1 {
            issues.push(ConfigIssue::new("kafka.outbox_batch_size", "must be at least 1"));
        }
        let oauthbearer = self
            .librdkafka_properties()
            .any(|(key, value)| key == "sasl.mechanism" && value.eq_ignore_ascii_case("OAUTHBEARER"));
        if self.oauthbearer.is_some() != oauthbearer {
            issues.push(ConfigIssue::new(
                "kafka.oauthbearer",
                "is set exactly when properties.sasl_mechanism is OAUTHBEARER (it is where those tokens come from)",
            ));
        }
        if self.outbox_poll_interval.is_zero() {
            issues.push(ConfigIssue::new("kafka.outbox_poll_interval", "must be positive"));
        }
        if self.consumer_max_attempts == 0 {
            issues.push(ConfigIssue::new("kafka.consumer_max_attempts", "must be at least 1"));
        }
        if !self.topic_namespace.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            issues.push(ConfigIssue::new("kafka.topic_namespace", "may hold only [A-Za-z0-9._-]"));
        }
        if self.consumer_session_timeout < Duration::from_secs(1)
            || self.consumer_session_timeout > Duration::from_secs(1800)
        {
            issues.push(ConfigIssue::new("kafka.consumer_session_timeout", "must be between 1s and 30m"));
        }
        if self.consumer_max_poll_interval <= self.consumer_retry_wait()
            || self.consumer_max_poll_interval < self.consumer_session_timeout
        {
            issues.push(ConfigIssue::new(
                "kafka.consumer_max_poll_interval",
                format!(
                    "must be at least kafka.consumer_session_timeout and longer than the {:?} a message's \
                     retries may wait (kafka.consumer_max_attempts, kafka.consumer_retry_backoff)",
                    self.consumer_retry_wait()
                ),
            ));
        }
        if self.consumer_stall_timeout <= self.consumer_session_timeout && !self.assign_all_partitions {
            // Shorter, a restarted member would be taken for stalled while the coordinator
            // still waits for its dead predecessor's session to end.
            issues.push(ConfigIssue::new(
                "kafka.consumer_stall_timeout",
                "must be longer than kafka.consumer_session_timeout",
            ));
        }
        let id = &self.group_instance_id;
        if id.len() > 249 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            issues.push(ConfigIssue::new("kafka.group_instance_id", "may hold only [A-Za-z0-9._-], at most 249"));
        }
        if !self.producer_message_timeout.is_zero() && self.producer_message_timeout < Duration::from_secs(1) {
            issues.push(ConfigIssue::new("kafka.producer_message_timeout", "must be zero (never) or at least 1s"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_timeouts_must_leave_room_for_each_other() {
        let kafka = |f: fn(&mut KafkaConfig)| {
            let mut kafka = KafkaConfig::default();
            f(&mut kafka);
            kafka.issue_keys()
        };
        assert_eq!(kafka(|_| {}), Vec::<String>::new());
        // Twelve attempts wait 0.2 + 0.4 + ... + 25.6 + 3 × 30 = 141s between them.
        assert_eq!(
            kafka(|k| {
                k.consumer_max_attempts = 12;
                k.consumer_max_poll_interval = Duration::from_secs(60);
            }),
            ["kafka.consumer_max_poll_interval"]
        );
        assert_eq!(kafka(|k| k.consumer_stall_timeout = Duration::from_secs(45)), ["kafka.consumer_stall_timeout"]);
        // Outside the group there is no session to wait for.
        assert_eq!(
            kafka(|k| {
                k.consumer_stall_timeout = Duration::from_secs(20);
                k.assign_all_partitions = true;
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            kafka(|k| k.consumer_session_timeout = Duration::from_millis(500)),
            ["kafka.consumer_session_timeout"]
        );
        assert_eq!(kafka(|k| k.group_instance_id = "booking 0".into()), ["kafka.group_instance_id"]);
    }

    #[test]
    fn a_producer_gives_up_after_a_second_at_least_or_never() {
        let mut kafka = KafkaConfig { producer_message_timeout: Duration::from_millis(10), ..KafkaConfig::default() };
        assert_eq!(kafka.issue_keys(), ["kafka.producer_message_timeout"]);
        kafka.producer_message_timeout = Duration::ZERO;
        assert_eq!(kafka.issue_keys(), Vec::<String>::new());
    }

    #[test]
    fn the_retry_wait_doubles_up_to_its_cap() {
        let mut kafka = KafkaConfig { consumer_retry_backoff: Duration::from_secs(10), ..KafkaConfig::default() };
        kafka.consumer_max_attempts = 1;
        assert_eq!(kafka.consumer_retry_wait(), Duration::ZERO);
        kafka.consumer_max_attempts = 5;
        assert_eq!(kafka.consumer_retry_wait(), Duration::from_secs(10 + 20 + 30 + 30));
    }

    #[test]
    fn topics_are_namespaced() {
        let mut kafka = KafkaConfig::default();
        assert_eq!(kafka.topic("identity.events"), "identity.events");
        kafka.topic_namespace = "t1".into();
        assert_eq!(kafka.topic("identity.events"), "t1.identity.events");
    }
}
