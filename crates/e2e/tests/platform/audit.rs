//! The audit trail of privileged actions (ADR 0046) through the gateway: an admin changes a
//! role and an organizer builds (venue, seat map, event, category), publishes and opens the
//! sale of an event over HTTP; the admin finds each action in `GET /v1/admin/audit` with
//! who, from where and the target before and after, and the chain verifies. Nobody else may
//! read the log.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::identity::v1::Role;

use crate::harness::{Options, Platform};
use crate::http::{Http, path_of};

const AGENT: &str = "audit-e2e/1.0 (privileged)";

fn rfc3339(from_now: Duration) -> String {
    prost_types::Timestamp::from(SystemTime::now() + from_now).to_string()
}

/// `method path` as `token` with [`AGENT`] as the `User-Agent`; the answer's body.
async fn act(http: &Http, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let mut request = http
        .client
        .request(method.clone(), format!("{}{path}", http.base))
        .bearer_auth(token)
        .header(reqwest::header::USER_AGENT, AGENT);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

/// The entries about `target`, once there are `n`, oldest first.
async fn entries_about(http: &Http, admin: &str, kind: &str, target: &str, n: usize) -> Vec<Value> {
    let path = format!("/v1/admin/audit?target_type={kind}&target_id={target}");
    let page = http.wait_for(&path, admin, |page| page["items"].as_array().is_some_and(|items| items.len() >= n)).await;
    let mut items = page["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_an_admin_sees_who_did_what_from_where_and_the_chain_holds() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let admin = p.admin.token.clone();
    let organizer = p.user(Role::Organizer).await;
    let org = organizer.token.as_str();

    // An admin makes a user an organizer, over HTTP.
    let promoted = p.user(Role::User).await;
    let role = format!("/v1/admin/users/{}/role", promoted.id);
    act(&http, Method::PUT, &role, &admin, Some(json!({"role": "organizer"}))).await;

    // An organizer builds an event over HTTP: a venue and its seat map, the event, a
    // category, then publishes it and opens its sale by hand.
    let body = json!({"name": "Audit Hall", "city": "Wien", "country_code": "AT", "time_zone": "Europe/Vienna"});
    let venue = path_of(&act(&http, Method::POST, "/v1/venues", org, Some(body)).await, "id");
    let map = json!({"sections": [], "general_admission_areas": [{"name": "Floor", "capacity": 50}]});
    let imported = act(&http, Method::PUT, &format!("/v1/venues/{venue}/seatmap"), org, Some(map)).await;
    let area = path_of(&imported["seat_map"]["general_admission_areas"][0], "id");
    let body = json!({
        "venue_id": venue, "name": "Audited Night",
        "starts_at": rfc3339(Duration::from_secs(30 * 86400)),
        "ends_at": rfc3339(Duration::from_secs(30 * 86400 + 10800)),
        "sale_starts_at": rfc3339(Duration::from_secs(7 * 86400)),
        "sale_ends_at": rfc3339(Duration::from_secs(29 * 86400)),
    });
    let event = path_of(&act(&http, Method::POST, "/v1/events", org, Some(body)).await, "id");
    let category = json!({"name": "Floor", "price": {"currency": "EUR", "minor_units": 1_000}, "capacity": 50,
                          "area_id": area});
    let category =
        path_of(&act(&http, Method::POST, &format!("/v1/events/{event}/categories"), org, Some(category)).await, "id");
    act(&http, Method::POST, &format!("/v1/events/{event}/publish"), org, None).await;
    act(&http, Method::POST, &format!("/v1/events/{event}/sale/start"), org, None).await;

    // The admin finds each, with who, what, from where, and before and after.
    let actions = entries_about(&http, &admin, "event", &event, 3).await;
    let names: Vec<&str> = actions.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(names, ["event.created", "event.published", "event.sale_opened"]);
    for entry in &actions {
        assert_eq!(entry["actor_id"], organizer.id.as_str(), "{entry}");
        assert_eq!(entry["actor_roles"], json!(["organizer"]), "{entry}");
        assert_eq!(entry["service"], "catalog", "{entry}");
        assert_eq!(entry["client_address"], "127.0.0.1", "the gateway's view of the client: {entry}");
        assert_eq!(entry["user_agent"], AGENT, "{entry}");
        assert_eq!(entry["hash"].as_str().map(str::len), Some(64), "{entry}");
    }
    assert_eq!(actions[0]["before"], Value::Null, "a creation has no before");
    assert_eq!(actions[0]["after"]["status"], "draft");
    assert_eq!(
        (actions[1]["before"]["status"].as_str(), actions[1]["after"]["status"].as_str()),
        (Some("draft"), Some("published"))
    );
    assert_eq!(actions[2]["after"]["status"], "on_sale");
    let seq = |e: &Value| e["seq"].as_i64().unwrap();
    assert!(seq(&actions[0]) < seq(&actions[1]) && seq(&actions[1]) < seq(&actions[2]), "{actions:?}");

    let venue_actions = entries_about(&http, &admin, "venue", &venue, 2).await;
    let (created, import) = (&venue_actions[0], &venue_actions[1]);
    assert_eq!(
        (created["action"].as_str(), created["after"]["name"].as_str()),
        (Some("venue.created"), Some("Audit Hall"))
    );
    assert_eq!(import["action"], "venue.seat_map_imported");
    assert_eq!(
        (import["before"]["seat_map_revision"].as_u64(), import["after"]["seat_map_revision"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(import["after"]["ga_capacity"], 50);

    let priced = entries_about(&http, &admin, "category", &category, 1).await;
    assert_eq!(priced[0]["action"], "category.created");
    assert_eq!(priced[0]["after"]["event_id"], event.as_str(), "an auditor can tell the event: {}", priced[0]);
    assert_eq!(priced[0]["after"]["price"], json!({"currency": "EUR", "minor_units": 1_000}));

    let changes = entries_about(&http, &admin, "user", &promoted.id, 1).await;
    let change = changes.last().unwrap();
    assert_eq!((change["action"].as_str(), change["service"].as_str()), (Some("user.role_changed"), Some("identity")));
    assert_eq!(change["actor_id"], path_of(&http.ok(Method::GET, "/v1/me", Some(&admin), None, None).await, "id"));
    assert_eq!(
        (change["before"]["role"].as_str(), change["after"]["role"].as_str()),
        (Some("user"), Some("organizer"))
    );
    assert_eq!((change["client_address"].as_str(), change["user_agent"].as_str()), (Some("127.0.0.1"), Some(AGENT)));

    // Filters combine; pages follow the cursor.
    let mine = http
        .ok(
            Method::GET,
            &format!("/v1/admin/audit?actor={}&action=event.published", organizer.id),
            Some(&admin),
            None,
            None,
        )
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    let first = http
        .ok(Method::GET, &format!("/v1/admin/audit?actor={}&limit=2", organizer.id), Some(&admin), None, None)
        .await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = http
        .ok(
            Method::GET,
            &format!("/v1/admin/audit?actor={}&limit=2&cursor={cursor}", organizer.id),
            Some(&admin),
            None,
            None,
        )
        .await;
    assert!(seq(&second["items"][0]) < seq(&first["items"][1]), "{first} {second}");

    let verified = http.ok(Method::GET, "/v1/admin/audit/verify", Some(&admin), None, None).await;
    assert_eq!(verified["intact"], true, "{verified}");
    assert!(verified["checked"].as_i64().unwrap() >= 5, "{verified}");
    assert!(verified["head_seq"].as_i64().unwrap() >= seq(&actions[2]), "{verified}");

    // Malformed filters are problems; nobody but an admin reads the log.
    let (status, _, problem) = http.call(Method::GET, "/v1/admin/audit?actor=someone", Some(&admin), None, None).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("actor")), "{problem}");
    let (status, _, problem) = http.call(Method::GET, "/v1/admin/audit?target_id=x", Some(&admin), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    for path in ["/v1/admin/audit", "/v1/admin/audit/verify"] {
        let (status, headers, _) = http.call(Method::GET, path, Some(org), None, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json");
    }
}
