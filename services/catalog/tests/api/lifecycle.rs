//! The event lifecycle: DRAFT → PUBLISHED → ON_SALE → CLOSED, CANCELLED from the first three,
//! every other step refused with FAILED_PRECONDITION naming the current status.

use std::cell::RefCell;
use std::time::Duration;

use chrono::Utc;
use ticketing_proto::catalog::v1 as pb;
use ticketing_testkit::eventually;
use tonic::{Code, Status};

use crate::helpers::{TestApp, Who, in_hours, spawn_app, ts};

#[derive(Debug, Clone, Copy)]
enum Step {
    Publish,
    StartSale,
    Close,
    Cancel,
}

async fn step(app: &TestApp, event_id: &str, step: Step) -> Result<pb::Event, Status> {
    let mut c = app.client();
    let id = event_id.to_owned();
    let result = match step {
        Step::Publish => c.publish_event(app.req(Who::OrganizerA, pb::PublishEventRequest { event_id: id })).await,
        Step::StartSale => c.start_sale(app.req(Who::OrganizerA, pb::StartSaleRequest { event_id: id })).await,
        Step::Close => c.close_event(app.req(Who::OrganizerA, pb::CloseEventRequest { event_id: id })).await,
        Step::Cancel => {
            let request = pb::CancelEventRequest { event_id: id, reason: "Storm warning".into() };
            c.cancel_event(app.req(Who::OrganizerA, request)).await
        }
    };
    result.map(tonic::Response::into_inner)
}

/// Asserts every step in `refused` fails naming `status`, and that the event did not change.
async fn refused(app: &TestApp, event_id: &str, status: &str, refused: &[Step]) {
    let before = app.get_event(Who::OrganizerA, event_id).await.unwrap();
    for s in refused {
        let error = step(app, event_id, *s).await.expect_err(&format!("{s:?} from {status} was allowed"));
        assert_eq!(error.code(), Code::FailedPrecondition, "{s:?} from {status}: {error:?}");
        assert!(error.message().contains(status), "{s:?}: message {:?} should name {status}", error.message());
    }
    let after = app.get_event(Who::OrganizerA, event_id).await.unwrap();
    assert_eq!((after.status, after.version), (before.status, before.version), "a refused step changed the event");
}

async fn ga_draft(app: &TestApp) -> pb::Event {
    let venue = app.venue(Who::OrganizerA, "Arena").await;
    let draft = app.draft(Who::OrganizerA, &venue.id).await;
    app.ga_category(Who::OrganizerA, &draft.id, "Standing", 100).await;
    draft
}

#[tokio::test]
async fn each_invalid_transition_is_refused_naming_the_current_status() {
    let app = spawn_app().await;
    let draft = ga_draft(&app).await;
    assert_eq!(draft.status, pb::EventStatus::Draft as i32);
    refused(&app, &draft.id, "DRAFT", &[Step::StartSale, Step::Close]).await;

    let published = step(&app, &draft.id, Step::Publish).await.unwrap();
    assert_eq!(published.status, pb::EventStatus::Published as i32);
    assert!(published.published_at.is_some());
    refused(&app, &draft.id, "PUBLISHED", &[Step::Publish]).await;

    let on_sale = step(&app, &draft.id, Step::StartSale).await.unwrap();
    assert_eq!(on_sale.status, pb::EventStatus::OnSale as i32);
    refused(&app, &draft.id, "ON_SALE", &[Step::Publish, Step::StartSale]).await;

    let closed = step(&app, &draft.id, Step::Close).await.unwrap();
    assert_eq!(closed.status, pb::EventStatus::Closed as i32);
    assert!(closed.version > on_sale.version && on_sale.version > published.version);
    refused(&app, &draft.id, "CLOSED", &[Step::Publish, Step::StartSale, Step::Close, Step::Cancel]).await;
    let update =
        pb::UpdateEventRequest { event_id: draft.id.clone(), name: Some("Again".into()), ..Default::default() };
    let error = app.client().update_event(app.req(Who::OrganizerA, update)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);

    // A published event may also close without ever going on sale.
    let other = ga_draft(&app).await;
    step(&app, &other.id, Step::Publish).await.unwrap();
    assert_eq!(step(&app, &other.id, Step::Close).await.unwrap().status, pb::EventStatus::Closed as i32);
}

#[tokio::test]
async fn cancelled_is_terminal_from_every_status_that_allows_it() {
    let app = spawn_app().await;
    for steps_before in [&[][..], &[Step::Publish], &[Step::Publish, Step::StartSale]] {
        let event = ga_draft(&app).await;
        for s in steps_before {
            step(&app, &event.id, *s).await.unwrap();
        }
        let cancelled = step(&app, &event.id, Step::Cancel).await.unwrap();
        assert_eq!(cancelled.status, pb::EventStatus::Cancelled as i32, "after {steps_before:?}");
        assert_eq!(cancelled.cancellation_reason, "Storm warning");
        refused(&app, &event.id, "CANCELLED", &[Step::Publish, Step::StartSale, Step::Close, Step::Cancel]).await;
        let update =
            pb::UpdateEventRequest { event_id: event.id.clone(), name: Some("Back".into()), ..Default::default() };
        assert_eq!(
            app.client().update_event(app.req(Who::OrganizerA, update)).await.unwrap_err().code(),
            Code::FailedPrecondition
        );
    }
    let event = ga_draft(&app).await;
    let no_reason = pb::CancelEventRequest { event_id: event.id.clone(), reason: "  ".into() };
    let error = app.client().cancel_event(app.req(Who::OrganizerA, no_reason)).await.unwrap_err();
    assert_eq!(crate::helpers::bad_fields(&error), ["reason"]);
}

#[tokio::test]
async fn publishing_needs_categories_and_a_sale_window_and_freezes_categories() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Arena").await;
    let mut request = app.event_request(&venue.id, "Open Air");
    request.sale_starts_at = None;
    request.sale_ends_at = None;
    let draft = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();

    let error = app.publish(Who::OrganizerA, &draft.id).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("at least one ticket category"), "{error:?}");
    assert!(error.message().contains("sale_starts_at and sale_ends_at"), "{error:?}");

    app.ga_category(Who::OrganizerA, &draft.id, "Standing", 100).await;
    let window = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        sale_starts_at: Some(in_hours(1)),
        sale_ends_at: Some(in_hours(2)),
        ..Default::default()
    };
    app.client().update_event(app.req(Who::OrganizerA, window)).await.unwrap();
    let published = app.publish(Who::OrganizerA, &draft.id).await.unwrap();

    let more = pb::CreateCategoryRequest {
        event_id: draft.id.clone(),
        name: "Late".into(),
        price: crate::helpers::eur(1),
        allocation: Some(pb::create_category_request::Allocation::GeneralAdmission(pb::GeneralAdmissionAllocation {
            capacity: 1,
            area_id: String::new(),
        })),
        ..Default::default()
    };
    let error = app.client().create_category(app.req(Who::OrganizerA, more)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("PUBLISHED"), "{error:?}");

    let other_venue = app.venue(Who::OrganizerA, "Club").await;
    let moving =
        pb::UpdateEventRequest { event_id: draft.id.clone(), venue_id: Some(other_venue.id), ..Default::default() };
    let error = app.client().update_event(app.req(Who::OrganizerA, moving)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");

    // Other fields may still change (a postponement), optimistic concurrency included.
    let stale = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        expected_version: Some(published.version - 1),
        name: Some("Open Air (postponed)".into()),
        ..Default::default()
    };
    assert_eq!(
        app.client().update_event(app.req(Who::OrganizerA, stale)).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let fresh = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        expected_version: Some(published.version),
        name: Some("Open Air (postponed)".into()),
        ..Default::default()
    };
    let renamed = app.client().update_event(app.req(Who::OrganizerA, fresh)).await.unwrap().into_inner();
    assert_eq!((renamed.name.as_str(), renamed.version), ("Open Air (postponed)", published.version + 1));
}

#[tokio::test]
async fn the_scheduler_starts_and_closes_sales_on_time() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Arena").await;
    let mut request = app.event_request(&venue.id, "Flash Sale");
    let now = Utc::now();
    // Wide enough that a loaded machine still publishes before the window ends.
    request.sale_starts_at = Some(ts(now + chrono::Duration::seconds(3)));
    request.sale_ends_at = Some(ts(now + chrono::Duration::seconds(6)));
    let draft = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();
    app.ga_category(Who::OrganizerA, &draft.id, "Standing", 100).await;
    app.publish(Who::OrganizerA, &draft.id).await.unwrap();

    let seen = RefCell::new(vec![pb::EventStatus::Published as i32]);
    eventually("the scheduler to close the sale", Duration::from_secs(30), || async {
        let status = app.get_event(Who::Anonymous, &draft.id).await.unwrap().status;
        let mut seen = seen.borrow_mut();
        if status != *seen.last().unwrap() {
            seen.push(status);
        }
        if status == pb::EventStatus::Closed as i32 { Ok(()) } else { Err(format!("{seen:?}")) }
    })
    .await;
    let seen = seen.into_inner();
    let expected = [pb::EventStatus::Published, pb::EventStatus::OnSale, pb::EventStatus::Closed].map(|s| s as i32);
    assert_eq!(seen, expected);
    assert!(Utc::now() >= now + chrono::Duration::seconds(6), "closed before sale_ends_at");

    let messages = app.published_envelopes(3).await;
    let types: Vec<&str> = messages.iter().map(|(_, e)| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ticketing.events.v1.EventPublished",
            "ticketing.events.v1.EventSaleStarted",
            "ticketing.events.v1.EventClosed"
        ]
    );
    let started: ticketing_proto::events::v1::EventSaleStarted =
        ticketing_platform::events::payload(&messages[1].1).unwrap();
    assert_eq!(started.started_by, "", "the scheduler, not a user, started it");
    let closed: ticketing_proto::events::v1::EventClosed = ticketing_platform::events::payload(&messages[2].1).unwrap();
    assert_eq!(closed.closed_by, "");
}

#[tokio::test]
async fn the_waiting_room_is_stored_validated_and_frozen_once_on_sale() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Stadium").await;
    let room = |enabled, admission_per_minute| Some(pb::WaitingRoom { enabled, admission_per_minute });
    let off = app.draft(Who::OrganizerA, &venue.id).await;
    assert_eq!(off.waiting_room, room(false, 0), "absent means none");

    let mut request = app.event_request(&venue.id, "Big Sale");
    request.waiting_room = room(true, 0);
    let error = app.client().create_event(app.req(Who::OrganizerA, request.clone())).await.unwrap_err();
    assert_eq!(crate::helpers::bad_fields(&error), ["waiting_room"]);
    request.waiting_room = room(true, 1_200);
    let draft = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();
    assert_eq!(draft.waiting_room, room(true, 1_200));
    app.ga_category(Who::OrganizerA, &draft.id, "Standing", 100).await;
    app.publish(Who::OrganizerA, &draft.id).await.unwrap();

    // Until the sale starts the organizer may retune it; the stored value is what GetEvent shows.
    let bad = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        waiting_room: room(true, 1_000_001),
        ..Default::default()
    };
    let error = app.client().update_event(app.req(Who::OrganizerA, bad)).await.unwrap_err();
    assert_eq!(crate::helpers::bad_fields(&error), ["waiting_room"]);
    let retune =
        pb::UpdateEventRequest { event_id: draft.id.clone(), waiting_room: room(true, 60), ..Default::default() };
    app.client().update_event(app.req(Who::OrganizerA, retune)).await.unwrap();
    let renamed =
        pb::UpdateEventRequest { event_id: draft.id.clone(), name: Some("Bigger Sale".into()), ..Default::default() };
    let kept = app.client().update_event(app.req(Who::OrganizerA, renamed)).await.unwrap().into_inner();
    assert_eq!(kept.waiting_room, room(true, 60), "an absent field leaves it as it is");
    assert_eq!(app.get_event(Who::Anonymous, &draft.id).await.unwrap().waiting_room, room(true, 60));

    app.client()
        .start_sale(app.req(Who::OrganizerA, pb::StartSaleRequest { event_id: draft.id.clone() }))
        .await
        .unwrap();
    let late =
        pb::UpdateEventRequest { event_id: draft.id.clone(), waiting_room: room(false, 0), ..Default::default() };
    let error = app.client().update_event(app.req(Who::OrganizerA, late)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("waiting room"), "{error:?}");
    assert_eq!(app.get_event(Who::Anonymous, &draft.id).await.unwrap().waiting_room, room(true, 60));
}

#[tokio::test]
async fn the_cancellation_policy_defaults_to_the_start_is_stored_and_freezes_when_the_sale_starts() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Hall").await;
    let policy =
        |no_buyer_cancellation, cutoff_minutes| Some(pb::CancellationPolicy { no_buyer_cancellation, cutoff_minutes });

    let default = app.draft(Who::OrganizerA, &venue.id).await;
    assert_eq!(default.cancellation_policy, policy(false, 0), "absent means until the start");

    let mut request = app.event_request(&venue.id, "Strict terms");
    request.cancellation_policy = policy(false, 525_601);
    let error = app.client().create_event(app.req(Who::OrganizerA, request.clone())).await.unwrap_err();
    assert_eq!(crate::helpers::bad_fields(&error), ["cancellation_policy"]);
    request.cancellation_policy = policy(false, 48 * 60);
    let draft = app.client().create_event(app.req(Who::OrganizerA, request)).await.unwrap().into_inner();
    assert_eq!(draft.cancellation_policy, policy(false, 2_880));
    app.ga_category(Who::OrganizerA, &draft.id, "Standing", 100).await;
    app.publish(Who::OrganizerA, &draft.id).await.unwrap();

    let final_sale = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        cancellation_policy: policy(true, 0),
        ..Default::default()
    };
    app.client().update_event(app.req(Who::OrganizerA, final_sale.clone())).await.unwrap();
    assert_eq!(app.get_event(Who::Anonymous, &draft.id).await.unwrap().cancellation_policy, policy(true, 0));

    app.client()
        .start_sale(app.req(Who::OrganizerA, pb::StartSaleRequest { event_id: draft.id.clone() }))
        .await
        .unwrap();
    let loosen = pb::UpdateEventRequest { cancellation_policy: policy(false, 0), ..final_sale };
    let error = app.client().update_event(app.req(Who::OrganizerA, loosen)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("cancellation policy"), "{error:?}");
    assert_eq!(app.get_event(Who::Anonymous, &draft.id).await.unwrap().cancellation_policy, policy(true, 0));
}
