//! The waiting room through the router: joining, the line's order, admission passes on
//! holds, and the problems of each refusal.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::json;
use ticketing_gateway::waiting_room::passes::Passes;
use ticketing_platform::auth::Role;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::inventory::v1 as inventory;
use uuid::Uuid;

use crate::harness::{Answer, Gateway, PASS_SECRET, on_sale, send};

/// Holds 2 GA tickets of `event` with `pass` (none when `None`) and `key`.
async fn hold(gateway: &Gateway, event: &str, token: &str, pass: Option<&str>, key: Option<&str>) -> Answer {
    let mut request = gateway
        .call(Method::POST, &format!("/v1/events/{event}/holds"))
        .bearer_auth(token)
        .json(&json!({"category_id": "ga", "quantity": 2}));
    if let Some(pass) = pass {
        request = request.header("admission-pass", pass);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    send(request).await
}

fn held() -> Result<inventory::HoldDetails, tonic::Status> {
    Ok(inventory::HoldDetails { hold_id: "h-1".into(), ..Default::default() })
}

#[tokio::test]
async fn a_hold_on_a_sale_with_a_queue_needs_a_pass_and_is_told_where_to_queue() {
    let gateway = Gateway::start().await;
    gateway.backends.inventory.answer("hold", held());
    let (_, buyer) = gateway.account(Role::User);
    let id = gateway.has_event(on_sale(Some(600)));
    let answer = hold(&gateway, &id, &buyer, None, None).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::FORBIDDEN, "admission-pass-required"));
    assert_eq!(answer.body["queue_url"], format!("/v1/events/{id}/queue"));
    assert_eq!(answer.body["title"], "Admission pass required");
    assert_eq!(gateway.backends.inventory.calls("hold"), 0, "inventory never hears of it");

    let id = gateway.has_event(on_sale(None));
    let answer = hold(&gateway, &id, &buyer, None, None).await;
    assert_eq!(answer.status, StatusCode::CREATED, "a sale without a queue needs no pass: {answer:?}");
}

#[tokio::test]
async fn a_pass_admits_one_hold_and_a_failed_hold_gives_it_back() {
    let gateway = Gateway::start().await;
    let (_, buyer) = gateway.account(Role::User);
    let id = gateway.has_event(on_sale(Some(600)));
    let joined = gateway.join(&id, &buyer).await;
    assert_eq!((joined.status, joined.body["status"].as_str()), (StatusCode::CREATED, Some("admitted")), "{joined:?}");
    assert_eq!(joined.body["position"], 1);
    let again = gateway.join(&id, &buyer).await;
    assert_eq!((again.status, &again.body["ticket"]), (StatusCode::OK, &joined.body["ticket"]), "the same ticket");
    let pass = joined.body["admission_pass"].as_str().expect("an admitted buyer's pass");
    assert_eq!(again.body["admission_pass"], pass, "polls repeat the pass");

    let sold_out = ticketing_platform::status::refused("SOLD_OUT", "none left");
    gateway.backends.inventory.answer::<inventory::HoldDetails>("hold", Err(sold_out));
    let answer = hold(&gateway, &id, &buyer, Some(pass), Some("first")).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::CONFLICT, "sold-out"));

    gateway.backends.inventory.answer("hold", held());
    let answer = hold(&gateway, &id, &buyer, Some(pass), Some("second")).await;
    assert_eq!(answer.status, StatusCode::CREATED, "the failed hold gave the pass back: {answer:?}");
    let replay = hold(&gateway, &id, &buyer, Some(pass), Some("second")).await;
    assert_eq!(replay.status, StatusCode::CREATED, "a replay of the same hold goes through: {replay:?}");
    let answer = hold(&gateway, &id, &buyer, Some(pass), Some("third")).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::CONFLICT, "admission-pass-used"));
    assert_eq!(answer.body["detail"], "a pass admits one hold");
    assert_eq!(gateway.backends.inventory.calls("hold"), 3);
}

#[tokio::test]
async fn an_expired_forged_or_borrowed_pass_is_refused() {
    let gateway = Gateway::start().await;
    gateway.backends.inventory.answer("hold", held());
    let (buyer, token) = gateway.account(Role::User);
    let id: Uuid = gateway.has_event(on_sale(Some(600))).parse().unwrap();
    let passes = Passes::new(PASS_SECRET);
    let in_a_minute = (chrono::Utc::now().timestamp() + 60) as u64;
    let refusal = |answer: Answer| (answer.status, answer.problem().to_owned(), answer.body["detail"].clone());
    let forbidden = StatusCode::FORBIDDEN;

    let expired = passes.sign(buyer, id, "t-1", (chrono::Utc::now().timestamp() - 1) as u64);
    let answer = hold(&gateway, &id.to_string(), &token, Some(&expired), None).await;
    let detail = json!("the pass's time ran out; it cannot be renewed");
    assert_eq!(refusal(answer), (forbidden, "admission-pass-expired".into(), detail));

    let borrowed = passes.sign(Uuid::new_v4(), id, "t-2", in_a_minute);
    let answer = hold(&gateway, &id.to_string(), &token, Some(&borrowed), None).await;
    let detail = json!("the pass was issued to another buyer");
    assert_eq!(refusal(answer), (forbidden, "admission-pass-invalid".into(), detail));

    let elsewhere = passes.sign(buyer, Uuid::new_v4(), "t-3", in_a_minute);
    let answer = hold(&gateway, &id.to_string(), &token, Some(&elsewhere), None).await;
    assert_eq!(refusal(answer), (forbidden, "admission-pass-invalid".into(), json!("the pass is for another event")));

    let forged = Passes::new("not-the-gateways-secret-but-long-enough").sign(buyer, id, "t-4", in_a_minute);
    let answer = hold(&gateway, &id.to_string(), &token, Some(&forged), None).await;
    let detail = json!("not an admission pass of this gateway");
    assert_eq!(refusal(answer), (forbidden, "admission-pass-invalid".into(), detail));
    assert_eq!(gateway.backends.inventory.calls("hold"), 0);
}

#[tokio::test]
async fn the_line_moves_at_the_events_rate_and_waits_for_the_opening() {
    let gateway = Gateway::start().await;
    // Opened a minute ago at one a minute: positions 1 and 2 are in, 3 waits about a minute.
    let id = gateway.has_event(on_sale(Some(1)));
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(gateway.join(&id, &gateway.account(Role::User).1).await);
    }
    let standing: Vec<_> = answers.iter().map(|a| (a.body["status"].as_str(), a.body["position"].as_u64())).collect();
    assert_eq!(standing, [(Some("admitted"), Some(1)), (Some("admitted"), Some(2)), (Some("queued"), Some(3))]);
    let wait = answers[2].body["estimated_wait_seconds"].as_u64().unwrap();
    assert!((1..=60).contains(&wait), "position 3 goes in two minutes after opening: {wait}");
    assert!(answers[2].body.get("admission_pass").is_none());

    let later = catalog::Event {
        sale_starts_at: Some((SystemTime::now() + Duration::from_secs(3600)).into()),
        sale_ends_at: Some((SystemTime::now() + Duration::from_secs(7200)).into()),
        ..on_sale(Some(1))
    };
    let id = gateway.has_event(later);
    let early = gateway.join(&id, &gateway.account(Role::User).1).await;
    assert_eq!((early.status, early.body["status"].as_str()), (StatusCode::CREATED, Some("waiting")));
    assert!(early.body.get("position").is_none(), "early joiners get a place at the opening: {early:?}");
    assert!(early.body["estimated_wait_seconds"].as_u64().unwrap() > 3500);
}

#[tokio::test]
async fn only_its_owner_may_look_at_a_ticket_and_an_unknown_one_is_404() {
    let gateway = Gateway::start().await;
    let id = gateway.has_event(on_sale(Some(600)));
    let (_, owner) = gateway.account(Role::User);
    let joined = gateway.join(&id, &owner).await;
    let status_url = joined.body["status_url"].as_str().unwrap().to_owned();
    assert_eq!(status_url, format!("/v1/events/{id}/queue/{}", joined.body["ticket"].as_str().unwrap()));

    let look = |token: &str, path: &str| send(gateway.call(Method::GET, path).bearer_auth(token));
    let mine = look(&owner, &status_url).await;
    assert_eq!((mine.status, &mine.body["ticket"]), (StatusCode::OK, &joined.body["ticket"]));
    let theirs = look(&gateway.account(Role::User).1, &status_url).await;
    assert_eq!((theirs.status, theirs.problem()), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(theirs.body["detail"], "the ticket belongs to another buyer");
    let unknown = look(&owner, &format!("/v1/events/{id}/queue/{}", Uuid::new_v4())).await;
    assert_eq!((unknown.status, unknown.problem()), (StatusCode::NOT_FOUND, "not-found"));
    assert_eq!(unknown.body["detail"], "no such ticket in this event's queue");
    let malformed = look(&owner, &format!("/v1/events/{id}/queue/not-a-ticket")).await;
    assert_eq!((malformed.status, &malformed.body["errors"][0]["field"]), (StatusCode::BAD_REQUEST, &json!("ticket")));
}

#[tokio::test]
async fn the_queue_refuses_sales_without_one_sales_that_ended_and_unknown_events() {
    let gateway = Gateway::start().await;
    let (_, buyer) = gateway.account(Role::User);
    let join = |event: catalog::Event| {
        let id = gateway.has_event(event);
        let request = gateway.call(Method::POST, &format!("/v1/events/{id}/queue")).bearer_auth(&buyer);
        send(request)
    };
    let answer = join(on_sale(None)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::CONFLICT, "no-waiting-room"));
    assert_eq!(answer.body["detail"], "this event's sale has no queue: hold tickets directly");
    let ended = catalog::Event { sale_ends_at: Some(SystemTime::now().into()), ..on_sale(Some(600)) };
    let answer = join(ended).await;
    assert_eq!(
        (answer.status, answer.problem(), answer.body["title"].as_str()),
        (StatusCode::CONFLICT, "sale-closed", Some("Not on sale"))
    );
    let path = format!("/v1/events/{}/queue", Uuid::new_v4());
    let answer = send(gateway.call(Method::POST, &path).bearer_auth(&buyer)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::NOT_FOUND, "not-found"), "catalog's 404");
}

#[tokio::test]
async fn without_redis_the_queue_and_its_holds_are_503_with_retry_after() {
    let gateway = Gateway::start_with(|c| c.redis.url = "redis://127.0.0.1:1".into()).await;
    gateway.backends.inventory.answer("hold", held());
    let (buyer, token) = gateway.account(Role::User);
    let id: Uuid = gateway.has_event(on_sale(Some(600))).parse().unwrap();
    let answer = send(gateway.call(Method::POST, &format!("/v1/events/{id}/queue")).bearer_auth(&token)).await;
    assert_eq!(
        (answer.status, answer.problem(), answer.retry_after()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Some("1"))
    );
    let pass = Passes::new(PASS_SECRET).sign(buyer, id, "t-1", (chrono::Utc::now().timestamp() + 60) as u64);
    let answer = hold(&gateway, &id.to_string(), &token, Some(&pass), None).await;
    assert_eq!((answer.status, answer.retry_after()), (StatusCode::SERVICE_UNAVAILABLE, Some("1")));
    assert_eq!(gateway.backends.inventory.calls("hold"), 0, "a queue it cannot check lets nobody through");
}
