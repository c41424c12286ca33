//! `BatchAvailability`: a page of events' counts in one call, validated and bounded.

use ticketing_proto::inventory::v1 as pb;
use tonic::Code;

use crate::helpers::{Fixture, ga, spawn_app};

#[tokio::test]
async fn a_batch_answers_each_known_event_once_with_the_single_calls_counts() {
    let app = spawn_app().await;
    let (first, second) = (Fixture::new(10, 1, 4, 6), Fixture::new(5, 2, 2, 6));
    app.stock(&first, &first.on_sale_now()).await;
    app.stock(&second, &second.on_sale_now()).await;
    app.hold(uuid::Uuid::new_v4(), first.event, ga(first.ga, 3)).await.expect("hold");
    let unknown = uuid::Uuid::new_v4();

    let ids = [second.event, unknown, first.event, second.event].map(|e| e.to_string()).to_vec();
    let batch = app.client.clone().batch_availability(pb::BatchAvailabilityRequest { event_ids: ids }).await;
    let events = batch.expect("a batch").into_inner().events;
    let order: Vec<_> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(order, [second.event.to_string(), first.event.to_string()], "in order, once each, unknown left out");
    for (fixture, answered) in [(&second, &events[0]), (&first, &events[1])] {
        let single = app.availability(fixture.event).await.expect("availability");
        assert_eq!(answered.categories, single.categories, "the same counts as Availability");
        assert!(answered.seats.is_empty(), "no seat states in a batch");
    }
    let floor = events[1].categories.iter().find(|c| c.category_id == first.ga.to_string()).expect("the floor");
    assert_eq!((floor.available, floor.held, floor.sold), (7, 3, 0));
}

#[tokio::test]
async fn a_batch_of_no_too_many_or_malformed_ids_is_invalid() {
    let app = spawn_app().await;
    let ids = |n: usize| (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect::<Vec<_>>();
    let mut malformed = ids(2);
    malformed[1] = "nope".into();
    for (event_ids, field) in [(vec![], "event_ids"), (ids(101), "event_ids"), (malformed, "event_ids[1]")] {
        let status = app
            .client
            .clone()
            .batch_availability(pb::BatchAvailabilityRequest { event_ids })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = tonic_types::StatusExt::get_error_details(&status);
        let violations = details.bad_request().expect("field violations").field_violations.clone();
        assert_eq!(violations[0].field, field);
    }
    let hundred = app.client.clone().batch_availability(pb::BatchAvailabilityRequest { event_ids: ids(100) }).await;
    assert!(hundred.expect("100 is allowed").into_inner().events.is_empty(), "none is known");
}
