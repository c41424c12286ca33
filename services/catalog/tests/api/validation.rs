//! Bad input is INVALID_ARGUMENT with a BadRequest detail per field, never INTERNAL or a
//! database error; unknown ids are NOT_FOUND.

use ticketing_proto::catalog::v1 as pb;
use tonic::Code;

use crate::helpers::{Who, bad_fields, in_hours, spawn_app};

#[tokio::test]
async fn a_bad_event_lists_every_bad_field() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Arena").await;
    let request = pb::CreateEventRequest {
        venue_id: venue.id.clone(),
        name: "  ".into(),
        time_zone: "Mars/Olympus".into(),
        starts_at: Some(in_hours(10)),
        ends_at: Some(in_hours(5)),
        per_user_limit: Some(0),
        organizer_id: "someone".into(),
        ..Default::default()
    };
    let error = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap_err();
    assert_eq!(bad_fields(&error), ["organizer_id", "name", "per_user_limit"]);

    // Once the fields are fine, the combination and the zone are checked.
    let mut request = app.event_request(&venue.id, "Gig");
    request.ends_at = Some(in_hours(1));
    let error = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap_err();
    assert!(bad_fields(&error).contains(&"ends_at".to_owned()), "{error:?}");
    let mut request = app.event_request(&venue.id, "Gig");
    request.time_zone = "Europe/Berln".into();
    let error = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap_err();
    assert_eq!(bad_fields(&error), ["time_zone"]);
    let mut request = app.event_request(&venue.id, "Gig");
    request.time_zone = "America/Argentina/Buenos_Aires".into();
    let event = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();
    assert_eq!(event.time_zone, "America/Argentina/Buenos_Aires");
    let defaulted = app.draft(Who::OrganizerA, &venue.id).await;
    assert_eq!((defaulted.time_zone.as_str(), defaulted.per_user_limit), ("Europe/Berlin", 6));
}

#[tokio::test]
async fn garbage_is_refused_as_invalid_never_as_a_server_error() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Arena").await;

    let nul = pb::CreateVenueRequest {
        name: "Nul\0Hall".into(),
        city: "Berlin".into(),
        country_code: "Germany".into(),
        time_zone: "Europe/Berlin".into(),
        ..Default::default()
    };
    let error = app.client().create_venue(app.req(Who::OrganizerA, nul)).await.unwrap_err();
    assert_eq!(bad_fields(&error), ["name", "country_code"]);

    let mut request = app.event_request(&venue.id, "Gig");
    request.starts_at = Some(prost_types::Timestamp { seconds: 0, nanos: -1 });
    request.ends_at = Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 });
    let error = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap_err();
    assert_eq!(bad_fields(&error), ["starts_at", "ends_at"]);
    let mut request = app.event_request(&venue.id, "Gig");
    request.starts_at = Some(prost_types::Timestamp { seconds: -62_135_596_800, nanos: 0 }); // year 1
    let error = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap_err();
    assert_eq!(bad_fields(&error), ["starts_at"]);

    let error = app.get_event(Who::User, "not-an-id").await.unwrap_err();
    assert_eq!(bad_fields(&error), ["event_id"]);
    let error = app.client().list_events(pb::ListEventsRequest { query: "a\0b".into(), ..Default::default() }).await;
    assert_eq!(bad_fields(&error.unwrap_err()), ["query"]);
    let long = pb::ListEventsRequest { query: "x".repeat(201), ..Default::default() };
    assert_eq!(bad_fields(&app.client().list_events(long).await.unwrap_err()), ["query"]);

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(app.get_event(Who::Admin, &unknown).await.unwrap_err().code(), Code::NotFound);
    let venue_request = pb::GetVenueRequest { venue_id: unknown.clone(), include_seat_map: true };
    assert_eq!(app.client().get_venue(venue_request).await.unwrap_err().code(), Code::NotFound);
    let category = pb::DeleteCategoryRequest { category_id: unknown.clone() };
    assert_eq!(app.client().delete_category(app.req(Who::Admin, category)).await.unwrap_err().code(), Code::NotFound);
    let elsewhere = app.event_request(&unknown, "Gig");
    assert_eq!(
        app.client().create_event(app.req(Who::OrganizerA, elsewhere)).await.unwrap_err().code(),
        Code::NotFound
    );
}
