//! What the catalog records on `audit.events`: one record per privileged change, written in
//! the change's transaction, with its actor and the target's state before and after.

use serde_json::{Value, json};
use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::catalog::v1::update_category_request::Allocation;
use ticketing_proto::events::v1::AuditRecord;
use tonic::Code;

use crate::helpers::{Who, code, eur, seat_ids, seat_map, spawn_app};

#[tokio::test]
async fn each_privileged_change_is_recorded_on_audit_events_with_its_actor_and_states() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Hall").await;
    app.import(Who::OrganizerA, &venue.id, seat_map(1, 1, 2)).await.unwrap();
    let draft = app.draft(Who::OrganizerA, &venue.id).await;
    let standing = app.ga_category(Who::OrganizerA, &draft.id, "Standing", 10).await;
    app.publish(Who::OrganizerA, &draft.id).await.unwrap();
    let cancel = pb::CancelEventRequest { event_id: draft.id.clone(), reason: "Storm warning".into() };
    app.client().cancel_event(app.req(Who::Admin, cancel)).await.unwrap();

    let records = app.audit_records(6).await;
    let actions: Vec<(&str, &str)> = records.iter().map(|r| (r.action.as_str(), r.target_id.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("venue.created", venue.id.as_str()),
            ("venue.seat_map_imported", venue.id.as_str()),
            ("event.created", draft.id.as_str()),
            ("category.created", standing.id.as_str()),
            ("event.published", draft.id.as_str()),
            ("event.cancelled", draft.id.as_str()),
        ]
    );
    let organizer = app.organizer_a.to_string();
    assert!(records[..5].iter().all(|r| r.actor_id == organizer && r.actor_roles == ["organizer"]), "{records:?}");
    assert_eq!(records[1].before, r#"{"ga_capacity":0,"seat_count":0,"seat_map_revision":0}"#);
    assert_eq!(records[2].before, "", "a creation has no before");
    let cancelled = &records[5];
    assert_eq!((cancelled.service.as_str(), cancelled.actor_roles.as_slice()), ("catalog", &["admin".to_owned()][..]));
    assert_eq!(cancelled.before, r#"{"status":"published"}"#);
    assert_eq!(cancelled.after, r#"{"reason":"Storm warning","status":"cancelled"}"#);
}

#[tokio::test]
async fn venues_event_edits_and_categories_are_recorded_with_what_changed_and_no_ops_are_not() {
    let app = spawn_app().await;
    let venue = app.venue(Who::OrganizerA, "Hall").await;
    let ids = seat_ids(&app.import(Who::OrganizerA, &venue.id, seat_map(1, 1, 4)).await.unwrap().seat_map.unwrap());
    let draft = app.draft(Who::OrganizerA, &venue.id).await;

    let rename = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        name: Some("Premiere".into()),
        per_user_limit: Some(4),
        ..Default::default()
    };
    let renamed = app.client().update_event(app.req(Who::OrganizerA, rename.clone())).await.unwrap().into_inner();
    // The same edit again changes nothing; one against an old version is refused.
    let unchanged = app.client().update_event(app.req(Who::OrganizerA, rename)).await.unwrap().into_inner();
    assert_eq!(unchanged.version, renamed.version);
    let stale = pb::UpdateEventRequest {
        event_id: draft.id.clone(),
        expected_version: Some(draft.version),
        name: Some("Encore".into()),
        ..Default::default()
    };
    assert_eq!(code(app.client().update_event(app.req(Who::OrganizerA, stale)).await), Code::FailedPrecondition);

    let standing = app.ga_category(Who::OrganizerA, &draft.id, "Standing", 10).await;
    let stalls = app.seated_category(Who::OrganizerA, &draft.id, "Stalls", ids[..2].to_vec()).await.unwrap();
    let reprice = pb::UpdateCategoryRequest {
        category_id: standing.id.clone(),
        price: eur(5_900),
        allocation: Some(Allocation::GeneralAdmission(pb::GeneralAdmissionAllocation {
            capacity: 20,
            area_id: String::new(),
        })),
        ..Default::default()
    };
    app.client().update_category(app.req(Who::Admin, reprice)).await.unwrap();
    let same_name = pb::UpdateCategoryRequest {
        category_id: standing.id.clone(),
        name: Some("Standing".into()),
        ..Default::default()
    };
    app.client().update_category(app.req(Who::OrganizerA, same_name)).await.unwrap();
    // As many seats, other ones: the state kept looks the same, yet the change is recorded.
    let moved = pb::UpdateCategoryRequest {
        category_id: stalls.id.clone(),
        allocation: Some(Allocation::Seats(pb::SeatAllocation { seat_ids: ids[2..].to_vec() })),
        ..Default::default()
    };
    app.client().update_category(app.req(Who::OrganizerA, moved)).await.unwrap();
    let delete = pb::DeleteCategoryRequest { category_id: stalls.id.clone() };
    app.client().delete_category(app.req(Who::OrganizerA, delete)).await.unwrap();
    app.publish(Who::OrganizerA, &draft.id).await.unwrap();
    // A published event's categories are fixed: refused changes leave no record.
    let late = pb::UpdateCategoryRequest { category_id: standing.id.clone(), price: eur(9_900), ..Default::default() };
    assert_eq!(code(app.client().update_category(app.req(Who::OrganizerA, late)).await), Code::FailedPrecondition);
    let late = pb::DeleteCategoryRequest { category_id: standing.id.clone() };
    assert_eq!(code(app.client().delete_category(app.req(Who::OrganizerA, late)).await), Code::FailedPrecondition);

    let records = app.audit_records(10).await;
    let actions: Vec<(&str, &str, &str)> =
        records.iter().map(|r| (r.action.as_str(), r.target_type.as_str(), r.target_id.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("venue.created", "venue", venue.id.as_str()),
            ("venue.seat_map_imported", "venue", venue.id.as_str()),
            ("event.created", "event", draft.id.as_str()),
            ("event.updated", "event", draft.id.as_str()),
            ("category.created", "category", standing.id.as_str()),
            ("category.created", "category", stalls.id.as_str()),
            ("category.updated", "category", standing.id.as_str()),
            ("category.updated", "category", stalls.id.as_str()),
            ("category.deleted", "category", stalls.id.as_str()),
            ("event.published", "event", draft.id.as_str()),
        ]
    );
    let actors: Vec<(String, Vec<String>)> =
        records.iter().map(|r| (r.actor_id.clone(), r.actor_roles.clone())).collect();
    let (organizer, admin) = (
        (app.organizer_a.to_string(), vec!["organizer".to_owned()]),
        (app.admin.to_string(), vec!["admin".to_owned()]),
    );
    let mut expected = vec![organizer; 10];
    expected[6] = admin;
    assert_eq!(actors, expected);
    assert!(records.iter().all(|r| r.service == "catalog"));

    let venue_state = json!({
        "name": "Hall",
        "organizer_id": app.organizer_a,
        "address": "Main Street 1",
        "city": "Berlin",
        "country_code": "DE",
        "time_zone": "Europe/Berlin",
    });
    assert_eq!(states(&records[0]), (Value::Null, venue_state));
    assert_eq!(
        states(&records[3]),
        (
            json!({"name": "Summer Night", "per_user_limit": 6, "version": draft.version}),
            json!({"name": "Premiere", "per_user_limit": 4, "version": renamed.version}),
        ),
        "only what changed, and the versions"
    );
    let category = |name: &str, minor_units: i64, allocation: &str, capacity: u32| {
        json!({
            "event_id": draft.id,
            "name": name,
            "description": "",
            "price": {"currency": "EUR", "minor_units": minor_units},
            "allocation": allocation,
            "capacity": capacity,
            "area_id": null,
        })
    };
    let stalls_state = category("Stalls", 9_900, "seats", 2);
    assert_eq!(states(&records[4]), (Value::Null, category("Standing", 4_900, "general_admission", 10)));
    assert_eq!(states(&records[5]), (Value::Null, stalls_state.clone()));
    assert_eq!(
        states(&records[6]),
        (category("Standing", 4_900, "general_admission", 10), category("Standing", 5_900, "general_admission", 20))
    );
    assert_eq!(states(&records[7]), (stalls_state.clone(), stalls_state.clone()));
    assert_eq!(states(&records[8]), (stalls_state, json!({"event_id": draft.id, "deleted": true})));
}

/// A record's before (null when it has none) and after, parsed.
fn states(record: &AuditRecord) -> (Value, Value) {
    let parse = |text: &str| if text.is_empty() { Value::Null } else { serde_json::from_str(text).unwrap() };
    (parse(&record.before), parse(&record.after))
}
