//! Browsing: full-text search, date and venue filters, and keyset pagination that neither
//! repeats nor skips events, however many share a start time.

use std::collections::HashSet;

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::common::v1::PageRequest;
use tonic::Code;

use crate::helpers::{TestApp, Who, bad_fields, spawn_app, ts};

/// Midnight UTC 40 days ahead: far enough that sales can be open, and whole days apart.
fn base() -> DateTime<Utc> {
    (Utc::now() + Duration::days(40)).duration_trunc(Duration::days(1)).unwrap()
}

/// Creates an event starting at `starts_at`, with one GA category, and publishes it.
async fn published(app: &TestApp, venue_id: &str, name: &str, description: &str, starts_at: DateTime<Utc>) -> String {
    let mut request = app.event_request(venue_id, name);
    request.description = description.into();
    request.starts_at = Some(ts(starts_at));
    request.ends_at = Some(ts(starts_at + Duration::hours(3)));
    let event = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();
    app.ga_category(Who::OrganizerA, &event.id, "Standing", 50).await;
    app.publish(Who::OrganizerA, &event.id).await.unwrap();
    event.id
}

/// Every page of `request` with `limit` events each.
async fn pages(app: &TestApp, mut request: pb::ListEventsRequest, limit: u32) -> Vec<Vec<pb::Event>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        request.page = Some(PageRequest { limit, cursor: cursor.clone() });
        let response = app.client().list_events(app.req(Who::User, request.clone())).await.unwrap().into_inner();
        pages.push(response.events);
        cursor = response.page.expect("page").next_cursor;
        if cursor.is_empty() {
            return pages;
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

/// The names of the events matching `request`, in listing order.
async fn names(app: &TestApp, request: pb::ListEventsRequest) -> Vec<String> {
    pages(app, request, 100).await.into_iter().flatten().map(|e| e.name).collect()
}

#[tokio::test]
async fn pagination_walks_every_matching_event_exactly_once_in_order() {
    let app = spawn_app().await;
    let arena = app.venue(Who::OrganizerA, "Arena").await;
    let club = app.venue(Who::OrganizerA, "Club").await;
    let mut expected = HashSet::new();
    let start = base();
    for i in 0..31 {
        let venue = if i % 2 == 0 { &arena.id } else { &club.id };
        // Only four distinct start times: page boundaries fall inside runs of equal keys.
        let starts_at = start + Duration::days(i % 4);
        expected.insert(published(&app, venue, &format!("Show {i}"), "", starts_at).await);
    }
    // Drafts and cancelled events are not listed by default.
    app.draft(Who::OrganizerA, &arena.id).await;
    let cancelled = published(&app, &club.id, "Called off", "", start).await;
    let cancel = pb::CancelEventRequest { event_id: cancelled, reason: "Ill".into() };
    app.client().cancel_event(app.req(Who::OrganizerA, cancel)).await.unwrap();

    let pages = pages(&app, pb::ListEventsRequest::default(), 4).await;
    assert_eq!(pages.len(), 8, "31 events in pages of 4");
    assert!(pages.iter().all(|p| p.len() <= 4) && pages[..7].iter().all(|p| p.len() == 4));
    let listed: Vec<String> = pages.iter().flatten().map(|e| e.id.clone()).collect();
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), listed.len(), "no event on two pages");
    assert_eq!(listed.iter().cloned().collect::<HashSet<_>>(), expected, "no event skipped or added");

    let direct: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM events WHERE status IN ('published', 'on_sale') ORDER BY starts_at, id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(listed, direct, "pages follow (starts_at, id) order");
    assert!(pages.iter().flatten().all(|e| e.categories.len() == 1), "listings carry categories and prices");
}

#[tokio::test]
async fn search_by_text_date_range_and_venue() {
    let app = spawn_app().await;
    let arena = app.venue(Who::OrganizerA, "Arena Berlin").await;
    let club = app.venue(Who::OrganizerA, "Blue Note Club").await;
    let start = base();
    let day = |n| start + Duration::days(n);
    published(&app, &arena.id, "Rock Night", "Loud guitars all night", day(10)).await;
    published(&app, &club.id, "Jazz Brunch", "Smooth saxophones, whisky on the rocks", day(12)).await;
    published(&app, &club.id, "Classical Evening", "Strings and winds", day(14)).await;
    published(&app, &club.id, "Rock Opera", "A story in three acts", day(20)).await;
    let mut hidden = app.event_request(&arena.id, "Rock Legends");
    hidden.starts_at = Some(ts(day(11)));
    hidden.ends_at = Some(ts(day(11) + Duration::hours(2)));
    app.client().create_event(app.req(Who::OrganizerA, hidden)).await.unwrap();

    let search = |query: &str| pb::ListEventsRequest { query: query.into(), ..Default::default() };
    assert_eq!(names(&app, search("rock")).await, ["Rock Night", "Jazz Brunch", "Rock Opera"], "name and stemmed text");
    assert_eq!(
        names(&app, search("blue note")).await,
        ["Jazz Brunch", "Classical Evening", "Rock Opera"],
        "venue name"
    );
    assert_eq!(names(&app, search("\"rock night\"")).await, ["Rock Night"], "phrase");
    assert_eq!(names(&app, search("rock -opera")).await, ["Rock Night", "Jazz Brunch"], "exclusion");
    assert!(names(&app, search("polka")).await.is_empty());

    let in_club = pb::ListEventsRequest { venue_id: club.id.clone(), ..search("rock") };
    assert_eq!(names(&app, in_club).await, ["Jazz Brunch", "Rock Opera"]);
    let window = pb::ListEventsRequest {
        starts_from: Some(ts(day(11))),
        starts_before: Some(ts(day(14))),
        ..Default::default()
    };
    assert_eq!(names(&app, window).await, ["Jazz Brunch"], "from is inclusive, before exclusive");
    let from = pb::ListEventsRequest { starts_from: Some(ts(day(14))), ..Default::default() };
    assert_eq!(names(&app, from).await, ["Classical Evening", "Rock Opera"]);
    let before = pb::ListEventsRequest { starts_before: Some(ts(day(14))), ..search("rock") };
    assert_eq!(names(&app, before).await, ["Rock Night", "Jazz Brunch"]);
}

#[tokio::test]
async fn malformed_cursors_and_filters_are_invalid_arguments() {
    let app = spawn_app().await;
    let list = |request: pb::ListEventsRequest| {
        let mut client = app.client();
        async move { client.list_events(request).await.unwrap_err() }
    };
    let page = |cursor: &str| Some(PageRequest { limit: 5, cursor: cursor.into() });
    for cursor in
        ["garbage!", "ZTF8MTIzfG5vdC1hLXV1aWQ", "djF8MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwfEFyZW5h"]
    {
        let error = list(pb::ListEventsRequest { page: page(cursor), ..Default::default() }).await;
        assert_eq!(bad_fields(&error), ["page.cursor"], "{cursor}");
    }
    let error = list(pb::ListEventsRequest { statuses: vec![42], ..Default::default() }).await;
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = list(pb::ListEventsRequest {
        venue_id: "arena".into(),
        starts_from: Some(ts(base())),
        starts_before: Some(ts(base() - Duration::days(1))),
        ..Default::default()
    })
    .await;
    assert_eq!(bad_fields(&error), ["venue_id", "starts_before"]);

    // Venues page the same way.
    for i in 0..5 {
        app.venue(Who::OrganizerA, &format!("Hall {i}")).await;
    }
    app.venue(Who::OrganizerB, "Hall B").await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let request = pb::ListVenuesRequest {
            organizer_id: app.organizer_a.to_string(),
            page: Some(PageRequest { limit: 2, cursor }),
        };
        let response = app.client().list_venues(request).await.unwrap().into_inner();
        seen.extend(response.venues.into_iter().map(|v| v.name));
        cursor = response.page.unwrap().next_cursor;
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["Hall 0", "Hall 1", "Hall 2", "Hall 3", "Hall 4"]);
    let error = app
        .client()
        .list_venues(pb::ListVenuesRequest { organizer_id: String::new(), page: page("ZTF8MXwy") })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&error), ["page.cursor"], "an event cursor is not a venue cursor");
}
