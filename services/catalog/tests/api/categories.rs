//! Ticket categories: prices in minor units, GA capacities on areas, and seats that belong
//! to at most one category of an event.

use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::common::v1::Money;
use tonic::Code;

use crate::helpers::{Who, bad_fields, eur, seat_ids, seat_map, spawn_app};

#[tokio::test]
async fn a_seat_belongs_to_at_most_one_category_of_an_event() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Theatre").await;
    let ids = seat_ids(&app.import(Who::OrganizerA, &venue.id, seat_map(1, 4, 10)).await.unwrap().seat_map.unwrap());
    let draft = app.draft(Who::OrganizerA, &venue.id).await;

    let front = app.seated_category(Who::OrganizerA, &draft.id, "Front", ids[0..10].to_vec()).await.unwrap();
    let error = app.seated_category(Who::OrganizerA, &draft.id, "Middle", ids[5..15].to_vec()).await.unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "{error:?}");
    assert!(error.message().contains(&front.id), "names the holder: {error:?}");
    let middle = app.seated_category(Who::OrganizerA, &draft.id, "Middle", ids[10..20].to_vec()).await.unwrap();

    // Taking a seat by update is refused alike, and leaves the category as it was.
    let grab = pb::UpdateCategoryRequest {
        category_id: middle.id.clone(),
        allocation: Some(pb::update_category_request::Allocation::Seats(pb::SeatAllocation {
            seat_ids: vec![ids[0].clone(), ids[10].clone()],
        })),
        ..Default::default()
    };
    let error = app.client().update_category(app.req(Who::OrganizerA, grab.clone())).await.unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
    let event = app.get_event(Who::OrganizerA, &draft.id).await.unwrap();
    assert_eq!(event.categories.iter().map(|c| c.capacity).collect::<Vec<_>>(), [10, 10]);

    // Once Front is gone its seats are free.
    let delete = pb::DeleteCategoryRequest { category_id: front.id.clone() };
    app.client().delete_category(app.req(Who::OrganizerA, delete)).await.unwrap();
    let regrouped = app.client().update_category(app.req(Who::OrganizerA, grab)).await.unwrap().into_inner();
    assert_eq!(regrouped.capacity, 2);

    // The same seat in another event is fine: the rule is per event.
    let other = app.draft(Who::OrganizerA, &venue.id).await;
    app.seated_category(Who::OrganizerA, &other.id, "Front", ids[0..10].to_vec()).await.unwrap();

    // And the database enforces it whatever the code does.
    let duplicate = sqlx::query(
        "INSERT INTO category_seats (event_id, seat_id, category_id) SELECT event_id, seat_id, category_id
         FROM category_seats WHERE category_id = $1::uuid LIMIT 1",
    )
    .bind(&regrouped.id)
    .execute(&app.db.pool)
    .await
    .unwrap_err();
    assert!(duplicate.to_string().contains("category_seats_pkey"), "{duplicate}");
}

#[tokio::test]
async fn categories_check_prices_areas_seats_and_names() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Club").await;
    let stored = app.import(Who::OrganizerA, &venue.id, seat_map(1, 1, 4)).await.unwrap().seat_map.unwrap();
    let area_id = stored.general_admission_areas[0].id.clone();
    let elsewhere = app.venue(Who::OrganizerA, "Elsewhere").await;
    let foreign =
        seat_ids(&app.import(Who::OrganizerA, &elsewhere.id, seat_map(1, 1, 1)).await.unwrap().seat_map.unwrap());
    let draft = app.draft(Who::OrganizerA, &venue.id).await;

    let ga = |name: &str, capacity, area_id: &str, price| pb::CreateCategoryRequest {
        event_id: draft.id.clone(),
        name: name.into(),
        description: "Standing".into(),
        price,
        allocation: Some(pb::create_category_request::Allocation::GeneralAdmission(pb::GeneralAdmissionAllocation {
            capacity,
            area_id: area_id.into(),
        })),
    };
    let pit = app.client().create_category(app.req(Who::OrganizerA, ga("Pit", 400, &area_id, eur(5_950)))).await;
    let pit = pit.unwrap().into_inner();
    assert_eq!((pit.capacity, pit.price.as_ref().unwrap().minor_units), (400, 5_950));

    let cases = [
        (ga("Pit 2", 101, &area_id, eur(1)), vec!["general_admission.capacity"]),
        (ga("Pit 2", 10, &foreign[0], eur(1)), vec!["general_admission.area_id"]),
        (ga("Dollars", 10, "", Some(Money { currency: "USD".into(), minor_units: 100 })), vec!["price.currency"]),
        // The kernel's one rule: the gateway refuses lower case too, so no path accepts it.
        (ga("Lower", 10, "", Some(Money { currency: "eur".into(), minor_units: 100 })), vec!["price.currency"]),
        (
            ga("", 0, "x", Some(Money { currency: "euro".into(), minor_units: -1 })),
            vec![
                "name",
                "price.currency",
                "price.minor_units",
                "general_admission.capacity",
                "general_admission.area_id",
            ],
        ),
    ];
    for (request, fields) in cases {
        let error = app.client().create_category(app.req(Who::OrganizerA, request)).await.unwrap_err();
        assert_eq!(bad_fields(&error), fields);
    }
    let error = app.client().create_category(app.req(Who::OrganizerA, ga("Pit", 1, "", eur(1)))).await.unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "names are unique per event");

    let error = app
        .seated_category(Who::OrganizerA, &draft.id, "Seats", vec![seat_ids(&stored)[0].clone(), foreign[0].clone()])
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&error), ["seats.seat_ids[1]"]);

    // The detail shows every category with its price; seat ids only when asked, in map order.
    let mut scrambled = seat_ids(&stored);
    scrambled.reverse();
    app.seated_category(Who::OrganizerA, &draft.id, "Seats", scrambled.clone()).await.unwrap();
    let request = pb::GetEventRequest { event_id: draft.id.clone(), include_seat_ids: true };
    let event = app.client().get_event(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();
    assert_eq!(event.categories.len(), 2);
    let Some(pb::category::Allocation::Seats(seats)) = &event.categories[1].allocation else { panic!("not seated") };
    scrambled.reverse();
    assert_eq!(seats.seat_ids, scrambled);
    assert_eq!(event.categories[1].price.as_ref().unwrap().minor_units, 9_900);
    let plain = app.get_event(Who::OrganizerA, &draft.id).await.unwrap();
    let Some(pb::category::Allocation::Seats(seats)) = &plain.categories[1].allocation else { panic!("not seated") };
    assert!(seats.seat_ids.is_empty());
    assert_eq!(plain.categories[1].capacity, 4);
}
