//! The catalog reader against the test broker: a fresh topic with events already on it is
//! read from the beginning, and the schedule is complete once the reader reached its end.

use std::time::Duration;

use prost::Message as _;
use rdkafka::producer::FutureRecord;
use ticketing_platform::events::envelope;
use ticketing_platform::metrics::Metrics;
use ticketing_prescaler::events::consume::follow;
use ticketing_prescaler::workers::controller::Knowledge;
use ticketing_proto::events::v1::{EventClosed, EventPublished};
use ticketing_testkit::eventually;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_restarted_reader_rebuilds_the_schedule_from_the_beginning_of_the_topic() {
    let config = ticketing_testkit::kafka_config();
    let topic = config.topic(ticketing_proto::topics::CATALOG);
    ticketing_platform::kafka::ensure_topics(&config, std::slice::from_ref(&topic)).await.unwrap();
    let producer = ticketing_platform::kafka::producer(&config).unwrap();
    let (open, closed) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    let sale = |id: &str| EventPublished {
        event_id: id.into(),
        sale_starts_at: Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 }),
        admission_per_minute: 600,
        version: 1,
        ..Default::default()
    };
    let events = [
        envelope(&open, &sale(&open)),
        envelope(&closed, &sale(&closed)),
        envelope(&closed, &EventClosed { event_id: closed.clone(), version: 2, ..Default::default() }),
    ];
    for event in &events {
        let payload = event.encode_to_vec();
        let record = FutureRecord::to(&topic).key(&event.aggregate_id).payload(&payload);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }

    // Twice, as after a restart: each reader starts from nothing and reads everything back.
    for _ in 0..2 {
        let knowledge = Knowledge::new(&Metrics::new("prescaler"));
        let stop = CancellationToken::new();
        let reader = tokio::spawn(follow(config.clone(), topic.clone(), knowledge.clone(), stop.clone()));
        eventually("the schedule read back", Duration::from_secs(30), || async {
            knowledge.is_complete().then_some(())
        })
        .await;
        let schedule = knowledge.schedule();
        let mut sales: Vec<(String, bool, u32)> =
            schedule.sales().map(|(id, s)| (id.to_owned(), s.over, s.admission_per_minute)).collect();
        sales.sort();
        let mut expected = vec![(open.clone(), false, 600), (closed.clone(), true, 600)];
        expected.sort();
        assert_eq!(sales, expected);
        stop.cancel();
        reader.await.unwrap().unwrap();
    }
}
