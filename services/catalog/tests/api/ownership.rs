//! Who may do what: organizers manage their own venues and events, admins everything, users
//! and anonymous callers only read, and nobody but the owner and admins learns of a draft.

use ticketing_proto::catalog::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, Who, code, seat_map, spawn_app};

#[tokio::test]
async fn organizers_manage_only_their_own_venues() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Hall A").await;
    assert_eq!(venue.organizer_id, app.organizer_a.to_string());

    let import = |who| {
        let request = pb::ImportSeatMapRequest {
            venue_id: venue.id.clone(),
            seat_map: Some(seat_map(1, 2, 3)),
            expected_revision: None,
        };
        let (mut client, request) = (app.client(), app.req(who, request));
        async move { client.import_seat_map(request).await }
    };
    assert_eq!(code(import(Who::OrganizerB).await), Code::PermissionDenied);
    assert_eq!(code(import(Who::User).await), Code::PermissionDenied);
    assert_eq!(code(import(Who::Anonymous).await), Code::Unauthenticated);
    assert_eq!(code(import(Who::OrganizerA).await), Code::Ok);
    assert_eq!(code(import(Who::Admin).await), Code::Ok);

    let event_there = |who| {
        let (mut client, request) = (app.client(), app.req(who, app.event_request(&venue.id, "Gig")));
        async move { client.create_event(request).await }
    };
    assert_eq!(code(event_there(Who::OrganizerB).await), Code::PermissionDenied, "another organizer's venue");
    assert_eq!(code(event_there(Who::User).await), Code::PermissionDenied);
    assert_eq!(code(event_there(Who::Anonymous).await), Code::Unauthenticated);
    assert_eq!(code(event_there(Who::Admin).await), Code::Ok);

    let create = |who, organizer_id: String| {
        let request = pb::CreateVenueRequest {
            name: "Club".into(),
            city: "Hamburg".into(),
            country_code: "DE".into(),
            time_zone: "Europe/Berlin".into(),
            organizer_id,
            ..Default::default()
        };
        let (mut client, request) = (app.client(), app.req(who, request));
        async move { client.create_venue(request).await }
    };
    assert_eq!(code(create(Who::User, String::new()).await), Code::PermissionDenied);
    assert_eq!(code(create(Who::Anonymous, String::new()).await), Code::Unauthenticated);
    assert_eq!(code(create(Who::OrganizerA, app.organizer_b.to_string()).await), Code::PermissionDenied);
    let for_b = create(Who::Admin, app.organizer_b.to_string()).await.expect("an admin acts for B").into_inner();
    assert_eq!(for_b.organizer_id, app.organizer_b.to_string());

    // Venues are public.
    let read = pb::GetVenueRequest { venue_id: venue.id.clone(), include_seat_map: true };
    let seen = app.client().get_venue(app.req(Who::Anonymous, read)).await.unwrap().into_inner();
    assert_eq!(seen.seat_count, 6);
}

/// Every write an organizer can make on an event or its categories, as `who`.
async fn writes(app: &TestApp, who: Who, event_id: &str, category_id: &str) -> Vec<(&'static str, Code)> {
    let c = || app.client();
    let update =
        pb::UpdateEventRequest { event_id: event_id.into(), name: Some("Renamed".into()), ..Default::default() };
    let create = pb::CreateCategoryRequest {
        event_id: event_id.into(),
        name: format!("Extra {who:?}"),
        price: crate::helpers::eur(100),
        allocation: Some(pb::create_category_request::Allocation::GeneralAdmission(pb::GeneralAdmissionAllocation {
            capacity: 5,
            area_id: String::new(),
        })),
        ..Default::default()
    };
    let change = pb::UpdateCategoryRequest {
        category_id: category_id.into(),
        description: Some("Changed".into()),
        ..Default::default()
    };
    vec![
        ("UpdateEvent", code(c().update_event(app.req(who, update)).await)),
        ("CreateCategory", code(c().create_category(app.req(who, create)).await)),
        ("UpdateCategory", code(c().update_category(app.req(who, change)).await)),
        ("StartSale", code(c().start_sale(app.req(who, pb::StartSaleRequest { event_id: event_id.into() })).await)),
        (
            "DeleteCategory",
            code(
                c().delete_category(app.req(who, pb::DeleteCategoryRequest { category_id: category_id.into() })).await,
            ),
        ),
    ]
}

#[tokio::test]
async fn only_the_owner_and_admins_touch_an_event_and_drafts_stay_hidden() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Hall A").await;
    let draft = app.draft(Who::OrganizerA, &venue.id).await;
    let category = app.ga_category(Who::OrganizerA, &draft.id, "Standing", 100).await;

    // A draft is invisible to everyone but its organizer and admins: writes say NOT_FOUND
    // for another organizer (so ids cannot be probed), and the role check comes first for others.
    for (who, expected) in [
        (Who::OrganizerB, Code::NotFound),
        (Who::User, Code::PermissionDenied),
        (Who::Anonymous, Code::Unauthenticated),
    ] {
        for (call, got) in writes(&app, who, &draft.id, &category.id).await {
            assert_eq!(got, expected, "{who:?} {call} on a draft");
        }
        assert_eq!(code(app.publish(who, &draft.id).await.map(tonic::Response::new)), expected, "{who:?} publish");
    }
    for who in [Who::OrganizerB, Who::User, Who::Anonymous] {
        assert_eq!(app.get_event(who, &draft.id).await.unwrap_err().code(), Code::NotFound, "{who:?} reads a draft");
    }
    assert_eq!(app.get_event(Who::OrganizerA, &draft.id).await.unwrap().id, draft.id);
    assert_eq!(app.get_event(Who::Admin, &draft.id).await.unwrap().id, draft.id);

    // The owner and an admin may do everything (StartSale is refused only by the lifecycle).
    for who in [Who::OrganizerA, Who::Admin] {
        let category = app.ga_category(who, &draft.id, &format!("Own {who:?}"), 10).await;
        let outcomes = writes(&app, who, &draft.id, &category.id).await;
        let expected = [Code::Ok, Code::Ok, Code::Ok, Code::FailedPrecondition, Code::Ok];
        assert_eq!(outcomes.iter().map(|(_, c)| *c).collect::<Vec<_>>(), expected, "{who:?}: {outcomes:?}");
    }

    // Once published the event is public: others read it but still may not change it.
    let published = app.publish(Who::OrganizerA, &draft.id).await.expect("publish");
    for who in [Who::OrganizerB, Who::User, Who::Anonymous] {
        assert_eq!(app.get_event(who, &draft.id).await.unwrap().id, published.id, "{who:?} reads it");
    }
    for (who, expected) in [
        (Who::OrganizerB, Code::PermissionDenied),
        (Who::User, Code::PermissionDenied),
        (Who::Anonymous, Code::Unauthenticated),
    ] {
        for (call, got) in writes(&app, who, &draft.id, &category.id).await {
            assert_eq!(got, expected, "{who:?} {call} on a published event");
        }
        let cancel = pb::CancelEventRequest { event_id: draft.id.clone(), reason: "mine now".into() };
        assert_eq!(code(app.client().cancel_event(app.req(who, cancel)).await), expected, "{who:?} cancel");
    }
    let cancel = pb::CancelEventRequest { event_id: draft.id.clone(), reason: "Venue flooded".into() };
    let cancelled = app.client().cancel_event(app.req(Who::Admin, cancel)).await.expect("admin cancels").into_inner();
    assert_eq!(cancelled.status, pb::EventStatus::Cancelled as i32);
}

#[tokio::test]
async fn drafts_are_listed_only_for_their_organizer_and_admins() {
    let app = spawn_app().await;
    let published = app.published_event(Who::OrganizerA).await;
    let draft = app.draft(Who::OrganizerA, &published.venue_id).await;
    let list = |who| {
        let request = pb::ListEventsRequest {
            venue_id: published.venue_id.clone(),
            statuses: vec![pb::EventStatus::Draft as i32, pb::EventStatus::Published as i32],
            ..Default::default()
        };
        let client = app.client();
        let request = app.req(who, request);
        async move {
            let mut client = client;
            let events = client.list_events(request).await.unwrap().into_inner().events;
            let mut ids: Vec<String> = events.into_iter().map(|e| e.id).collect();
            ids.sort();
            ids
        }
    };
    let mut both = vec![published.id.clone(), draft.id.clone()];
    both.sort();
    assert_eq!(list(Who::OrganizerA).await, both);
    assert_eq!(list(Who::Admin).await, both);
    for who in [Who::OrganizerB, Who::User, Who::Anonymous] {
        assert_eq!(list(who).await, std::slice::from_ref(&published.id), "{who:?}");
    }
    // The default listing never shows drafts, even to their organizer.
    let default = pb::ListEventsRequest { venue_id: published.venue_id.clone(), ..Default::default() };
    let events = app.client().list_events(app.req(Who::OrganizerA, default)).await.unwrap().into_inner().events;
    assert_eq!(events.into_iter().map(|e| e.id).collect::<Vec<_>>(), std::slice::from_ref(&published.id));
}
