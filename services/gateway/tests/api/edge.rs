//! What the gateway refuses itself, before or instead of a backend: bad input, missing or
//! insufficient credentials, and how a backend's "not found" reaches the client.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_platform::auth::Role;
use ticketing_proto::inventory::v1 as inventory;
use uuid::Uuid;

use crate::harness::{Gateway, on_sale, send};

fn new_event(venue_id: &str) -> Value {
    json!({
        "venue_id": venue_id,
        "name": "Router tests live",
        "starts_at": "2030-06-01T19:00:00Z",
        "ends_at": "2030-06-01T23:00:00Z",
    })
}

#[tokio::test]
async fn bad_bodies_are_problems_listing_each_bad_field_and_reach_no_backend() {
    let gateway = Gateway::start().await;
    let (_, organizer) = gateway.account(Role::Organizer);
    let post = || gateway.call(Method::POST, "/v1/events").bearer_auth(&organizer);

    let mut body = new_event("not-a-venue");
    body["organizer_id"] = json!("nobody");
    let answer = send(post().json(&body)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::BAD_REQUEST, "validation-error"), "{answer:?}");
    let fields: Vec<&str> =
        answer.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["venue_id", "organizer_id"], "one answer names every bad field");

    let malformed = send(post().header("content-type", "application/json").body("{\"name\":")).await;
    assert_eq!((malformed.status, malformed.problem()), (StatusCode::BAD_REQUEST, "malformed-json"));
    let mistyped = send(post().json(&json!({"name": 7}))).await;
    assert_eq!((mistyped.status, mistyped.problem()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"));
    let unknown = send(post().json(&json!({"nmae": "typo"}))).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused: {unknown:?}");
    assert_eq!(gateway.backends.catalog.calls("create_event"), 0);
}

#[tokio::test]
async fn a_malformed_id_in_the_path_is_a_400_naming_it() {
    let gateway = Gateway::start().await;
    let answer = send(gateway.call(Method::GET, "/v1/events/not-a-uuid")).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::BAD_REQUEST, "validation-error"));
    assert_eq!(answer.body["errors"][0], json!({"field": "id", "detail": "must be a UUID"}));
    assert_eq!(gateway.backends.catalog.calls("get_event"), 0);
    let route = send(gateway.call(Method::GET, "/v1/no-such-route")).await;
    assert_eq!((route.status, route.problem()), (StatusCode::NOT_FOUND, "not-found"));
}

#[tokio::test]
async fn a_missing_or_foreign_token_is_a_401() {
    let gateway = Gateway::start().await;
    let body = new_event(&Uuid::new_v4().to_string());
    let anonymous = send(gateway.call(Method::POST, "/v1/events").json(&body)).await;
    assert_eq!((anonymous.status, anonymous.problem()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert_eq!(anonymous.body["detail"], "send Authorization: Bearer <access token>");

    let stranger = ticketing_testkit::TestIssuer::start().await;
    let forged = stranger.token(Uuid::new_v4(), &[Role::Admin]);
    let answer = send(gateway.call(Method::POST, "/v1/events").bearer_auth(forged).json(&body)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{answer:?}");
    assert_eq!(gateway.backends.catalog.calls("create_event"), 0);
}

#[tokio::test]
async fn a_buyer_may_not_organize_nor_an_unverified_one_queue() {
    let gateway = Gateway::start().await;
    let (_, buyer) = gateway.account(Role::User);
    let body = new_event(&Uuid::new_v4().to_string());
    let answer = send(gateway.call(Method::POST, "/v1/events").bearer_auth(&buyer).json(&body)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(answer.body["detail"], "requires the organizer role");
    assert_eq!(gateway.backends.catalog.calls("create_event"), 0);

    let unverified = gateway.issuer.unverified_token(Uuid::new_v4(), &[Role::User]);
    let path = format!("/v1/events/{}/queue", Uuid::new_v4());
    let answer = send(gateway.call(Method::POST, &path).bearer_auth(unverified)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::FORBIDDEN, "email-unverified"));
    assert_eq!(gateway.backends.catalog.calls("get_event"), 0);
}

#[tokio::test]
async fn a_backends_not_found_is_a_404_problem_with_its_detail() {
    let gateway = Gateway::start().await;
    gateway.backends.catalog.answer::<ticketing_proto::catalog::v1::Event>(
        "get_event",
        Err(tonic::Status::not_found("event 42 does not exist")),
    );
    let answer = send(gateway.call(Method::GET, &format!("/v1/events/{}", Uuid::new_v4()))).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::NOT_FOUND, "not-found"));
    assert_eq!(answer.body["detail"], "event 42 does not exist");
    assert_eq!(answer.body["title"], "Not found");
}

#[tokio::test]
async fn an_idempotency_key_is_1_to_255_visible_characters_and_goes_to_the_backend() {
    let gateway = Gateway::start().await;
    let path = format!("/v1/events/{}/holds", gateway.has_event(on_sale(None)));
    let keys = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = keys.clone();
    gateway.backends.inventory.on("hold", move |request: inventory::HoldRequest| {
        seen.lock().unwrap().push(request.idempotency_key);
        std::future::ready(Ok(inventory::HoldDetails { hold_id: "h-1".into(), ..Default::default() }))
    });
    let (_, buyer) = gateway.account(Role::User);
    let hold = |key: &str| {
        gateway
            .call(Method::POST, &path)
            .bearer_auth(&buyer)
            .header("idempotency-key", key)
            .json(&json!({"category_id": "ga", "quantity": 2}))
    };
    for bad in ["", &"k".repeat(256)] {
        let answer = send(hold(bad)).await;
        assert_eq!((answer.status, answer.problem()), (StatusCode::BAD_REQUEST, "validation-error"));
        assert_eq!(answer.body["errors"][0]["field"], "Idempotency-Key", "{answer:?}");
    }
    assert!(keys.lock().unwrap().is_empty(), "refused before inventory");
    let longest = "k".repeat(255);
    let answer = send(hold(&longest)).await;
    assert_eq!((answer.status, &answer.body["id"]), (StatusCode::CREATED, &json!("h-1")), "{answer:?}");
    assert_eq!(*keys.lock().unwrap(), [longest]);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_a_422() {
    let gateway = Gateway::start().await;
    let path = format!("/v1/events/{}/holds", gateway.has_event(on_sale(None)));
    let reused = ticketing_platform::idempotency::key_reused();
    gateway.backends.inventory.answer::<inventory::HoldDetails>("hold", Err(reused));
    let (_, buyer) = gateway.account(Role::User);
    let request = gateway
        .call(Method::POST, &path)
        .bearer_auth(&buyer)
        .header("idempotency-key", "k-1")
        .json(&json!({"seat_ids": ["s-1"]}));
    let answer = send(request).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused"));
    assert_eq!(answer.body["errors"][0]["field"], "idempotency_key");
}
