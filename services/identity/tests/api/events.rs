//! `UserRegistered` reaches `identity.events` exactly once, however many relays run.

use std::collections::HashMap;
use std::time::Duration;

use prost::{Message as _, Name as _};
use rdkafka::Message as _;
use ticketing_platform::kafka::outbox::Relay;
use ticketing_platform::metrics::Metrics;
use ticketing_proto::events::v1::{Envelope, UserRegistered};
use ticketing_testkit::eventually;
use tokio_util::sync::CancellationToken;

use crate::helpers::{email, spawn_app};

#[tokio::test]
async fn user_registered_is_published_exactly_once_with_two_relays_at_once() {
    let app = spawn_app().await;
    // The service runs its own relay; a second replica's relay races it on the same outbox.
    let producer = ticketing_platform::kafka::producer(&app.kafka).unwrap();
    let second = Relay::new(app.db.pool.clone(), producer, &app.kafka, &Metrics::new("second-replica"));
    let stop = CancellationToken::new();
    let racing = tokio::spawn(second.run(stop.clone()));

    let emails: Vec<String> = (0..20).map(|_| email()).collect();
    let users = futures::future::join_all(emails.iter().map(|e| app.register(e))).await;

    eventually("the outbox rows to be published", Duration::from_secs(30), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&app.db.pool).await.unwrap();
        if left == 0 { Ok(()) } else { Err(format!("{left} rows left")) }
    })
    .await;
    stop.cancel();
    racing.await.unwrap().unwrap();

    let topic = app.kafka.topic("identity.events");
    // 20 users, each with its verification email, plus the bootstrap admin (made verified).
    let messages = ticketing_testkit::read_topic(&app.kafka, &topic, 41, Duration::from_secs(20)).await;
    let mut per_user: HashMap<String, usize> = HashMap::new();
    let mut event_ids = std::collections::HashSet::new();
    for message in &messages {
        let envelope = Envelope::decode(message.payload().unwrap()).unwrap();
        assert!(event_ids.insert(envelope.id.clone()), "event {} published twice", envelope.id);
        if envelope.r#type != UserRegistered::full_name() {
            continue;
        }
        let event: UserRegistered = ticketing_platform::events::payload(&envelope).unwrap();
        assert_eq!(message.key(), Some(event.user_id.as_bytes()), "keyed by the aggregate id");
        *per_user.entry(event.user_id).or_default() += 1;
    }
    assert_eq!(messages.len(), 41);
    for user in &users {
        assert_eq!(per_user.get(&user.id), Some(&1), "user {} published {:?} times", user.id, per_user.get(&user.id));
    }
}
