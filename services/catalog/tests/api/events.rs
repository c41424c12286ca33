//! What other services hear on `catalog.events`: one message per change, keyed by the event
//! id, published through the outbox only when the change committed.

use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::events::v1::{
    CategorySnapshot, EventCancelled, EventPublished, EventSaleStarted, EventUpdated, category_snapshot,
};

use crate::helpers::{Who, from_ts, seat_ids, seat_map, spawn_app};

#[tokio::test]
async fn each_change_is_announced_exactly_once_with_what_inventory_needs() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Theatre").await;
    let map = app.import(Who::OrganizerA, &venue.id, seat_map(2, 2, 3)).await.unwrap().seat_map.unwrap();
    let ids = seat_ids(&map);
    let draft = app.draft(Who::OrganizerA, &venue.id).await;
    let standing = app.ga_category(Who::OrganizerA, &draft.id, "Standing", 250).await;
    // Requested out of order: the snapshot lists seats best first, in seat-map order.
    let chosen = vec![ids[7].clone(), ids[1].clone(), ids[0].clone(), ids[6].clone()];
    let seated = app.seated_category(Who::OrganizerA, &draft.id, "Stalls", chosen).await.unwrap();
    // Draft edits are private: nothing is announced for them.
    let rename =
        pb::UpdateEventRequest { event_id: draft.id.clone(), name: Some("Premiere".into()), ..Default::default() };
    app.client().update_event(app.req(Who::OrganizerA, rename)).await.unwrap();

    let published = app.publish(Who::OrganizerA, &draft.id).await.unwrap();
    let postpone = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        description: Some("Now with an encore".into()),
        waiting_room: Some(pb::WaitingRoom { enabled: true, admission_per_minute: 1_200 }),
        ..Default::default()
    };
    app.client().update_event(app.req(Who::Admin, postpone)).await.unwrap();
    app.client()
        .start_sale(app.req(Who::OrganizerA, pb::StartSaleRequest { event_id: draft.id.clone() }))
        .await
        .unwrap();
    let cancel = pb::CancelEventRequest { event_id: draft.id.clone(), reason: "Lead singer ill".into() };
    let cancelled = app.client().cancel_event(app.req(Who::OrganizerA, cancel)).await.unwrap().into_inner();

    let messages = app.published_envelopes(4).await;
    let types: Vec<&str> = messages.iter().map(|(_, e)| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ticketing.events.v1.EventPublished",
            "ticketing.events.v1.EventUpdated",
            "ticketing.events.v1.EventSaleStarted",
            "ticketing.events.v1.EventCancelled"
        ]
    );
    assert!(messages.iter().all(|(key, e)| key == &draft.id && e.aggregate_id == draft.id), "keyed by the event id");

    let event: EventPublished = ticketing_platform::events::payload(&messages[0].1).unwrap();
    assert_eq!((event.event_id.as_str(), event.name.as_str()), (draft.id.as_str(), "Premiere"));
    assert_eq!((event.organizer_id, event.venue_id), (app.organizer_a.to_string(), venue.id.clone()));
    assert_eq!(event.venue_name, venue.name, "tickets print the venue's name");
    assert_eq!(
        (event.per_user_limit, event.version, event.time_zone.as_str()),
        (6, published.version, "Europe/Berlin")
    );
    assert_eq!(from_ts(event.sale_starts_at.as_ref().unwrap()), from_ts(published.sale_starts_at.as_ref().unwrap()));
    assert_eq!(event.categories.len(), 2);
    assert_eq!(event.admission_per_minute, 0, "published without a waiting room");
    let CategorySnapshot { category_id, capacity, price, allocation, .. } = &event.categories[0];
    assert_eq!((category_id, *capacity), (&standing.id, 250));
    assert_eq!(price.as_ref().map(|p| (p.currency.as_str(), p.minor_units)), Some(("EUR", 4_900)));
    assert_eq!(allocation, &Some(category_snapshot::Allocation::GeneralAdmissionCapacity(250)));

    let seats = &event.categories[1];
    assert_eq!((seats.category_id.as_str(), seats.capacity), (seated.id.as_str(), 4));
    let Some(category_snapshot::Allocation::Seats(seats)) = &seats.allocation else { panic!("not seated") };
    assert_eq!(seats.seat_ids, [ids[0].clone(), ids[1].clone(), ids[6].clone(), ids[7].clone()]);
    let row = |s: usize, r: usize| map.sections[s].rows[r].id.clone();
    assert_eq!(seats.row_ids, [row(0, 0), row(0, 0), row(1, 0), row(1, 0)]);
    assert_eq!(seats.positions, [1, 2, 1, 2], "adjacent seats share a row and differ by one");

    let updated: EventUpdated = ticketing_platform::events::payload(&messages[1].1).unwrap();
    assert_eq!((updated.description.as_str(), updated.name.as_str()), ("Now with an encore", "Premiere"));
    assert_eq!((updated.updated_by, updated.version), (app.admin.to_string(), published.version + 1));
    assert_eq!(updated.admission_per_minute, 1_200, "the pre-scaler reads the demand from it");
    assert_eq!(updated.venue_name, venue.name);
    let started: EventSaleStarted = ticketing_platform::events::payload(&messages[2].1).unwrap();
    assert_eq!(started.started_by, app.organizer_a.to_string());
    let called_off: EventCancelled = ticketing_platform::events::payload(&messages[3].1).unwrap();
    assert_eq!(called_off.reason, "Lead singer ill");
    assert_eq!((called_off.version, called_off.cancelled_by), (cancelled.version, app.organizer_a.to_string()));

    let ids: std::collections::HashSet<_> = messages.iter().map(|(_, e)| e.id.clone()).collect();
    assert_eq!(ids.len(), 4, "every event has its own id");
}

#[tokio::test]
async fn a_refused_change_announces_nothing() {
    let app = spawn_app().await;
    let published = app.published_event(Who::OrganizerA).await;
    let again = app.publish(Who::OrganizerA, &published.id).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    let stranger = pb::CancelEventRequest { event_id: published.id.clone(), reason: "mine".into() };
    app.client().cancel_event(app.req(Who::OrganizerB, stranger)).await.unwrap_err();
    let messages = app.published_envelopes(1).await;
    assert_eq!(messages.len(), 1, "only the one EventPublished: {messages:?}");
}
