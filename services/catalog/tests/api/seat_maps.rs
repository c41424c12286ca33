//! Seat-map imports: a whole stadium in one call, ids that survive re-imports, and the
//! seats of published events protected from removal.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::events::v1::{EventPublished, category_snapshot};
use tonic::Code;

use crate::helpers::{Who, bad_fields, seat_ids, seat_map, spawn_app};

/// Seat id by (section, row, number).
fn ids_by_key(map: &pb::SeatMap) -> HashMap<(String, String, String), String> {
    let mut ids = HashMap::new();
    for section in &map.sections {
        for row in &section.rows {
            for seat in &row.seats {
                ids.insert((section.name.clone(), row.name.clone(), seat.number.clone()), seat.id.clone());
            }
        }
    }
    ids
}

#[tokio::test]
async fn a_60000_seat_stadium_imports_keeps_its_ids_and_publishes_every_seat() {
    let app = spawn_app().await;
    tokio::time::timeout(Duration::from_secs(300), async {
        let venue = app.venue(Who::OrganizerA, "Olympiastadion").await;
        // 20 sections × 60 rows × 50 seats.
        let stadium = seat_map(20, 60, 50);
        let first = app.import(Who::OrganizerA, &venue.id, stadium.clone()).await.expect("import 60,000 seats");
        assert_eq!((first.seat_count, first.seat_map_revision, first.general_admission_capacity), (60_000, 1, 500));
        let first_map = first.seat_map.expect("the import returns the stored map");
        let ids = seat_ids(&first_map);
        assert_eq!(ids.len(), 60_000);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 60_000, "seat ids are unique");
        assert_eq!(first_map.sections[2].rows[11].seats[6].label, "S3, Row 12, Seat 7");
        assert!(first_map.sections[0].rows[0].seats[0].accessible);
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM seats").fetch_one(&app.db.pool).await.unwrap();
        assert_eq!(stored, 60_000);

        // The same map again: every id survives.
        let request = pb::ImportSeatMapRequest {
            venue_id: venue.id.clone(),
            seat_map: Some(stadium.clone()),
            expected_revision: Some(1),
        };
        let again = app.client().import_seat_map(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();
        assert_eq!((again.seat_count, again.seat_map_revision), (60_000, 2));
        assert_eq!(seat_ids(again.seat_map.as_ref().unwrap()), ids, "ids are stable across an identical import");

        // A stale revision is refused.
        let request = pb::ImportSeatMapRequest {
            venue_id: venue.id.clone(),
            seat_map: Some(stadium.clone()),
            expected_revision: Some(1),
        };
        let error = app.client().import_seat_map(app.req(Who::OrganizerA, request)).await.unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition);

        // Drop the last section, add a small one: the other 57,000 seats keep their ids.
        let mut changed = stadium;
        changed.sections.pop();
        changed.sections.push(seat_map(1, 1, 10).sections.remove(0));
        changed.sections.last_mut().unwrap().name = "Extra".into();
        let third = app.import(Who::OrganizerA, &venue.id, changed).await.unwrap();
        assert_eq!(third.seat_count, 57_010);
        let before = ids_by_key(&first_map);
        let after = ids_by_key(third.seat_map.as_ref().unwrap());
        assert_eq!(after.len(), 57_010);
        let kept = after.iter().filter(|(key, id)| before.get(*key) == Some(id)).count();
        assert_eq!(kept, 57_000, "every seat still in the map kept its id");
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM seats").fetch_one(&app.db.pool).await.unwrap();
        assert_eq!(stored, 57_010, "removed seats are gone");

        // The whole stadium in one category, published: inventory gets every seat in order.
        let draft = app.draft(Who::OrganizerA, &venue.id).await;
        let mut all = seat_ids(third.seat_map.as_ref().unwrap());
        all.reverse(); // the request order does not matter; the snapshot is in seat-map order
        let category = app.seated_category(Who::OrganizerA, &draft.id, "Tribune", all.clone()).await.unwrap();
        assert_eq!(category.capacity, 57_010);
        app.publish(Who::OrganizerA, &draft.id).await.unwrap();
        let messages = app.published_envelopes(1).await;
        assert_eq!(messages.len(), 1);
        let published: EventPublished = ticketing_platform::events::payload(&messages[0].1).unwrap();
        let Some(category_snapshot::Allocation::Seats(seats)) = &published.categories[0].allocation else {
            panic!("not seated: {:?}", published.categories[0].allocation)
        };
        all.reverse();
        assert_eq!(seats.seat_ids, all);
        assert_eq!(seats.positions[..3], [1, 2, 3]);
        assert_eq!((seats.row_ids.len(), seats.positions.len()), (57_010, 57_010));
    })
    .await
    .expect("the stadium test finished in time");
}

#[tokio::test]
async fn seats_of_a_published_event_cannot_disappear() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Theatre").await;
    let map = app.import(Who::OrganizerA, &venue.id, seat_map(2, 2, 5)).await.unwrap().seat_map.unwrap();
    let ids = seat_ids(&map);
    let draft = app.draft(Who::OrganizerA, &venue.id).await;
    let category = app.seated_category(Who::OrganizerA, &draft.id, "Stalls", ids[..10].to_vec()).await.unwrap();
    assert_eq!(category.capacity, 10);

    // While the event is a draft, a re-import may drop its seats; the category shrinks.
    let smaller = seat_map(2, 1, 5);
    app.import(Who::OrganizerA, &venue.id, smaller.clone()).await.expect("drafts do not block imports");
    let event = app.get_event(Who::OrganizerA, &draft.id).await.unwrap();
    assert_eq!(event.categories[0].capacity, 5, "the draft lost the dropped row's seats");

    app.publish(Who::OrganizerA, &draft.id).await.unwrap();
    let error = app.import(Who::OrganizerA, &venue.id, seat_map(1, 1, 4)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert!(error.message().contains("PUBLISHED"), "{error:?}");
    let venue_now = app
        .client()
        .get_venue(pb::GetVenueRequest { venue_id: venue.id.clone(), include_seat_map: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(venue_now.seat_count, 10, "the refused import changed nothing");

    // Relabelling and adding seats is fine.
    let mut relabelled = smaller;
    relabelled.sections[0].rows[0].seats[0].label = "Best seat in the house".into();
    relabelled.sections[1].rows.push(pb::Row {
        name: "2".into(),
        seats: vec![pb::Seat { number: "1".into(), ..Default::default() }],
        ..Default::default()
    });
    let done = app.import(Who::OrganizerA, &venue.id, relabelled).await.unwrap();
    assert_eq!(done.seat_count, 11);
    assert_eq!(done.seat_map.unwrap().sections[0].rows[0].seats[0].id, ids[0]);
}

#[tokio::test]
async fn a_bad_seat_map_names_every_bad_field() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Theatre").await;
    let mut map = seat_map(2, 1, 3);
    map.sections[0].rows[0].seats[2].number = "2".into();
    map.sections[1].name = "S1".into();
    map.general_admission_areas[0].capacity = 0;
    let error = app.import(Who::OrganizerA, &venue.id, map).await.unwrap_err();
    assert_eq!(
        bad_fields(&error),
        [
            "seat_map.sections[0].rows[0].seats[2].number",
            "seat_map.sections[1].name",
            "seat_map.general_admission_areas[0].capacity"
        ]
    );
    let missing = pb::ImportSeatMapRequest { venue_id: venue.id.clone(), seat_map: None, expected_revision: None };
    let error = app.client().import_seat_map(app.req(Who::OrganizerA, missing)).await.unwrap_err();
    assert_eq!(bad_fields(&error), ["seat_map"]);
}

#[tokio::test]
async fn an_events_seats_are_labelled_for_tickets_with_the_visibility_of_the_event() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Club").await;
    let map = app.import(Who::OrganizerA, &venue.id, seat_map(1, 2, 3)).await.unwrap().seat_map.unwrap();
    let ids = seat_ids(&map);
    let draft = app.draft(Who::OrganizerA, &venue.id).await;
    let category = app.seated_category(Who::OrganizerA, &draft.id, "Stalls", ids[..4].to_vec()).await.unwrap();
    let ask = |who, seats: &[String]| {
        let request = pb::GetEventSeatsRequest { event_id: draft.id.clone(), seat_ids: seats.to_vec() };
        let mut client = app.client();
        let request = app.req(who, request);
        async move { client.get_event_seats(request).await.map(tonic::Response::into_inner) }
    };

    // A draft is the organizer's only.
    assert_eq!(ask(Who::Anonymous, &ids[..1]).await.unwrap_err().code(), Code::NotFound);
    app.publish(Who::OrganizerA, &draft.id).await.unwrap();

    // Seat 5 is in no category of this event: left out.
    let asked = [ids[4].clone(), ids[1].clone(), ids[0].clone()];
    let seats = ask(Who::Anonymous, &asked).await.unwrap().seats;
    let got: Vec<(&str, &str, &str)> =
        seats.iter().map(|s| (s.seat_id.as_str(), s.category_id.as_str(), s.label.as_str())).collect();
    assert_eq!(
        got,
        [
            (ids[0].as_str(), category.id.as_str(), "S1, Row 1, Seat 1"),
            (ids[1].as_str(), category.id.as_str(), "S1, Row 1, Seat 2")
        ]
    );

    let none = ask(Who::Anonymous, &[]).await.unwrap_err();
    assert_eq!(bad_fields(&none), ["seat_ids"]);
    let garbage = ask(Who::Anonymous, &["not-a-uuid".into()]).await.unwrap_err();
    assert_eq!(bad_fields(&garbage), ["seat_ids"]);
    let too_many = vec![ids[0].clone(); 101];
    assert_eq!(bad_fields(&ask(Who::Anonymous, &too_many).await.unwrap_err()), ["seat_ids"]);
}
