//! Organizer and admin routes, check-in and payment webhooks over HTTP: an event built and
//! sold entirely through the REST API, the RBAC matrix of every route the gateway serves,
//! tickets checked in at the gate, and signed provider webhooks.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use ticketing_notification::domain::rotating;
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::eventually_every;

use crate::harness::{Event, Options, Platform, User};
use crate::http::{Http, account, buy, path_of};

const PASSWORD: &str = "a-long-enough-passphrase";
const WEBHOOK_SECRET: &str = "whsec_e2e_0123456789abcdef";
/// The gateway's default `gateway.max_body_bytes`.
const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// An instant `offset` from now, as RFC 3339.
fn rfc3339(offset: Duration, future: bool) -> String {
    let now = SystemTime::now();
    prost_types::Timestamp::from(if future { now + offset } else { now - offset }).to_string()
}

/// `sections` × `rows` × `seats` seats with stadium-length labels, and one standing area.
fn stadium(sections: usize, rows: usize, seats: usize) -> Value {
    let row = |s: usize, r: usize| {
        let seats: Vec<Value> = (1..=seats)
            .map(|n| {
                let label = format!("North Stand Upper Tier, Block {s}, Row {r}, Seat {n}");
                json!({"number": n.to_string(), "label": label, "accessible": n == 1})
            })
            .collect();
        json!({"name": r.to_string(), "seats": seats})
    };
    let sections: Vec<Value> = (1..=sections)
        .map(|s| json!({"name": format!("Block {s}"), "rows": (1..=rows).map(|r| row(s, r)).collect::<Vec<_>>()}))
        .collect();
    json!({"sections": sections, "general_admission_areas": [{"name": "Standing", "capacity": 500}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_an_organizer_builds_and_sells_an_event_through_the_rest_api() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);

    // An account becomes an organizer through the admin route, and signs in again for the role.
    let email = format!("organizer-{}@example.com", ticketing_testkit::unique());
    let token = account(&http, &email).await;
    let me = http.ok(Method::GET, "/v1/me", Some(&token), None, None).await;
    let role = format!("/v1/admin/users/{}/role", path_of(&me, "id"));
    let (status, _, _) = http.call(Method::POST, "/v1/venues", Some(&token), Some(json!({})), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a body without the required fields");
    let promoted = http.ok(Method::PUT, &role, Some(&p.admin.token), Some(json!({"role": "organizer"})), None).await;
    assert_eq!(promoted["role"], "organizer");
    let login = json!({"email": email, "password": PASSWORD});
    let organizer = path_of(&http.ok(Method::POST, "/v1/auth/login", None, Some(login), None).await, "access_token");
    let org = Some(organizer.as_str());

    let body = json!({"name": "Olympiastadion", "address": "Olympischer Platz 3", "city": "Berlin",
                      "country_code": "DE", "time_zone": "Europe/Berlin"});
    let (status, _, venue) = http.call(Method::POST, "/v1/venues", org, Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{venue}");
    assert_eq!(venue["seat_map_revision"], 0);
    let venue_path = format!("/v1/venues/{}", path_of(&venue, "id"));

    // 12,000 seats: well above the default body limit, within the seat map's own.
    let map = stadium(8, 50, 30);
    assert!(serde_json::to_vec(&map).unwrap().len() > DEFAULT_BODY_LIMIT, "the seat map must exercise the limit");
    let (status, _, imported) = http.call(Method::PUT, &format!("{venue_path}/seatmap"), org, Some(map), None).await;
    assert_eq!(status, StatusCode::OK, "{imported:.500}");
    assert_eq!(
        (imported["seat_count"].as_u64(), imported["general_admission_capacity"].as_u64()),
        (Some(12_000), Some(500))
    );
    assert_eq!(imported["seat_map_revision"], 1);
    let row = &imported["seat_map"]["sections"][0]["rows"][0]["seats"];
    let seat_ids: Vec<String> = row.as_array().unwrap().iter().map(|s| path_of(s, "id")).collect();
    assert_eq!(seat_ids.len(), 30);
    let area = path_of(&imported["seat_map"]["general_admission_areas"][0], "id");

    // Optimistic concurrency: an import based on revision 0 is refused and changes nothing.
    let stale = json!({"sections": [], "general_admission_areas": [], "expected_revision": 0});
    let (status, _, problem) = http.call(Method::PUT, &format!("{venue_path}/seatmap"), org, Some(stale), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "https://ticketing.dev/problems/conflict");
    let fetched = http.ok(Method::GET, &format!("{venue_path}?seat_map=true"), None, None, None).await;
    assert_eq!(fetched["seat_count"], 12_000);
    assert_eq!(fetched["seat_map"]["sections"][0]["rows"][0]["seats"][0]["id"], seat_ids[0].as_str());

    // The sale window opens shortly: the organizer opens the sale by hand before the
    // catalog's scheduler would.
    let sale_start = SystemTime::now() + Duration::from_secs(15);
    let body = json!({
        "venue_id": venue["id"], "name": "Stadium Night", "description": "Built over HTTP",
        "starts_at": rfc3339(Duration::from_secs(30 * 86400), true),
        "ends_at": rfc3339(Duration::from_secs(30 * 86400 + 10800), true),
        "sale_starts_at": prost_types::Timestamp::from(sale_start).to_string(),
        "sale_ends_at": rfc3339(Duration::from_secs(86400), true),
        "per_user_limit": 4,
    });
    let (status, _, event) = http.call(Method::POST, "/v1/events", org, Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert_eq!((event["status"].as_str(), event["time_zone"].as_str()), (Some("draft"), Some("Europe/Berlin")));
    let id = path_of(&event, "id");
    let event_path = format!("/v1/events/{id}");
    let version = event["version"].as_u64().unwrap();

    let stale = json!({"expected_version": version + 1, "name": "Lost update"});
    let (status, _, problem) = http.call(Method::PATCH, &event_path, org, Some(stale), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let patch = json!({"expected_version": version, "name": "Stadium Night II"});
    let patched = http.ok(Method::PATCH, &event_path, org, Some(patch), None).await;
    assert_eq!(
        (patched["name"].as_str(), patched["description"].as_str()),
        (Some("Stadium Night II"), Some("Built over HTTP"))
    );
    assert!(patched["version"].as_u64().unwrap() > version);

    let categories = format!("{event_path}/categories");
    let price = json!({"currency": "EUR", "minor_units": 5_000});
    let ga = json!({"name": "Standing", "price": price, "capacity": 100, "area_id": area});
    let (status, _, standing) = http.call(Method::POST, &categories, org, Some(ga), None).await;
    assert_eq!(status, StatusCode::CREATED, "{standing}");
    assert_eq!((standing["kind"].as_str(), standing["capacity"].as_u64()), (Some("general_admission"), Some(100)));
    let both = json!({"name": "Both", "price": {"currency": "EUR", "minor_units": 1}, "capacity": 1, "seat_ids": []});
    let (status, _, problem) = http.call(Method::POST, &categories, org, Some(both), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let seated =
        json!({"name": "Block 1, Row 1", "price": {"currency": "EUR", "minor_units": 8_000}, "seat_ids": seat_ids});
    let (status, _, block) = http.call(Method::POST, &categories, org, Some(seated), None).await;
    assert_eq!(status, StatusCode::CREATED, "{block}");
    assert_eq!((block["kind"].as_str(), block["capacity"].as_u64()), (Some("seated"), Some(30)));

    let published = http.ok(Method::POST, &format!("{event_path}/publish"), org, None, None).await;
    assert_eq!(published["status"], "published");
    let on_sale = http.ok(Method::POST, &format!("{event_path}/sale/start"), org, None, None).await;
    assert_eq!(on_sale["status"], "on_sale");
    let listed = http.ok(Method::GET, &event_path, None, None, None).await;
    assert_eq!(listed["categories"].as_array().unwrap().len(), 2);

    // A buyer holds two seats and standing tickets in one go, books and pays over HTTP.
    let buyer = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let (booking, paid) = buy(&http, &buyer, &id, json!({"seat_ids": [seat_ids[0], seat_ids[1]]})).await;
    assert!(SystemTime::now() >= sale_start, "a hold was taken before the sale window opened");
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["amount"], json!({"currency": "EUR", "minor_units": 16_000}));
    http.wait_for(&format!("/v1/bookings/{booking}"), &buyer, |b| b["status"] == "confirmed").await;
    let (_, paid) = buy(&http, &buyer, &id, json!({"category_id": standing["id"], "quantity": 2})).await;
    assert_eq!(paid["amount"], json!({"currency": "EUR", "minor_units": 10_000}));
    let availability = http.ok(Method::GET, &format!("{event_path}/availability"), None, None, None).await;
    let seats = availability["categories"].as_array().unwrap().iter().find(|c| c["category_id"] == block["id"]);
    assert_eq!(seats.unwrap()["sold"], 2, "{availability}");
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    User,
    /// An organizer who does not own the event or venue.
    Stranger,
    /// The organizer who owns the event and venue.
    Owner,
    Admin,
}

/// Who a route lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    /// Any signed-in account.
    SignedIn,
    /// Organizers and admins.
    Organizer,
    /// The owning organizer and admins.
    Owner,
    Admin,
}

impl Access {
    /// The refusal `who` gets, or `None` when let in.
    fn refusal(self, who: Who) -> Option<StatusCode> {
        let allowed = match self {
            Access::Public => true,
            Access::SignedIn => who != Who::Anonymous,
            Access::Organizer => matches!(who, Who::Stranger | Who::Owner | Who::Admin),
            Access::Owner => matches!(who, Who::Owner | Who::Admin),
            Access::Admin => who == Who::Admin,
        };
        match (allowed, who) {
            (true, _) => None,
            (false, Who::Anonymous) => Some(StatusCode::UNAUTHORIZED),
            (false, _) => Some(StatusCode::FORBIDDEN),
        }
    }
}

enum Body {
    None,
    Json(Value),
    /// A registration with a fresh email.
    NewAccount,
    /// A fresh email without an account (each address has a small budget of its own).
    UnknownEmail,
    /// A refresh token not used yet.
    RefreshToken,
}

/// One row of the matrix: a route as `/openapi.json` names it, a concrete path, who may
/// call it and what those let in get (ids are well-formed, so never a 400 but a 404, 409,
/// 422 or success; webhooks without a signature are 400 for everyone).
struct Row {
    method: Method,
    route: &'static str,
    path: String,
    access: Access,
    allowed: &'static [u16],
    body: Body,
}

/// A row whose path is `route` with its parameter (`{id}`, `{ticket}` or `{provider}`) set to `param`.
fn row(method: Method, route: &'static str, param: &str, access: Access, allowed: &'static [u16], body: Body) -> Row {
    let path = ["{id}", "{ticket}", "{provider}"].iter().fold(route.to_owned(), |path, p| path.replace(p, param));
    Row { method, route, path, access, allowed, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_every_route_lets_in_exactly_the_roles_the_matrix_says() {
    use Access::*;
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let (user, owner, stranger) =
        (p.user(Role::User).await, p.user(Role::Organizer).await, p.user(Role::Organizer).await);
    let event = p.event(&owner, 5, 2, 1_000).await;
    let e = &event.id;
    let venue = path_of(&http.ok(Method::GET, &format!("/v1/events/{e}"), None, None, None).await, "venue_id");
    // Check-in needs notification to know the event's organizer, learned from catalog's events.
    let checkin = json!({"code": "garbage", "event_id": e});
    let what = format!("notification to learn who organizes {e}");
    eventually_every(&what, Duration::from_secs(60), Duration::from_millis(200), || async {
        let (status, _, _) =
            http.call(Method::POST, "/v1/checkin", Some(&owner.token), Some(checkin.clone()), None).await;
        (status != StatusCode::FORBIDDEN).then_some(())
    })
    .await;
    // A cancelled event: every change its owner and admins may attempt is a 409, not a change.
    let cancelled = http
        .ok(Method::POST, &format!("/v1/events/{e}/cancel"), Some(&owner.token), Some(json!({"reason": "rain"})), None)
        .await;
    assert_eq!(cancelled["status"], "cancelled");

    // Refresh and logout each spend a refresh token per call.
    let mut refresh_tokens = Vec::new();
    for _ in 0..10 {
        let login = identity::LoginRequest { email: user.email.clone(), password: PASSWORD.into() };
        refresh_tokens.push(p.identity.clone().login(login).await.expect("login").into_inner().refresh_token);
    }
    let (nobody, hold) = (uuid::Uuid::new_v4().to_string(), "ab".repeat(32));
    let (nobody, hold, venue) = (nobody.as_str(), hold.as_str(), venue.as_str());
    let login = Body::Json(json!({"email": user.email, "password": PASSWORD}));
    let (starts, ends) =
        (rfc3339(Duration::from_secs(86400 * 40), true), rfc3339(Duration::from_secs(86400 * 41), true));
    let new_event = Body::Json(json!({"venue_id": venue, "name": "Matrix", "starts_at": starts, "ends_at": ends}));
    let new_venue = Body::Json(json!({"name": "Hall", "city": "Köln", "country_code": "DE", "time_zone": "UTC"}));
    let price = json!({"currency": "EUR", "minor_units": 100});
    let json = |value: Value| Body::Json(value);
    #[rustfmt::skip]
    let rows = vec![
        row(Method::POST, "/v1/auth/register", "", Public, &[202], Body::NewAccount),
        row(Method::POST, "/v1/auth/verify-email", "", Public, &[400], json(json!({"token": "not-a-token"}))),
        // Everyone here is verified already: nothing is sent, and the answer says so for all.
        row(Method::POST, "/v1/auth/verify-email/resend", "", SignedIn, &[202], Body::None),
        row(Method::POST, "/v1/auth/login", "", Public, &[200], login),
        row(Method::POST, "/v1/auth/refresh", "", Public, &[200], Body::RefreshToken),
        row(Method::POST, "/v1/auth/logout", "", Public, &[204], Body::RefreshToken),
        row(Method::GET, "/v1/me", "", SignedIn, &[200], Body::None),
        row(Method::PATCH, "/v1/me", "", SignedIn, &[200], json(json!({"display_name": "Matrix"}))),
        // Account self-service, answered without harming the shared accounts: wrong passwords
        // (one guess per caller's account, well inside the login throttle's free failures).
        row(Method::POST, "/v1/me/password", "", SignedIn, &[403],
            json(json!({"current_password": "not-the-passphrase", "new_password": "another-long-passphrase"}))),
        row(Method::DELETE, "/v1/me", "", SignedIn, &[403], json(json!({"password": "not-the-passphrase"}))),
        row(Method::GET, "/v1/me/sessions", "", SignedIn, &[200], Body::None),
        row(Method::DELETE, "/v1/me/sessions/{id}", &nobody.replace('-', ""), SignedIn, &[404], Body::None),
        row(Method::POST, "/v1/auth/password/forgot", "", Public, &[202], Body::UnknownEmail),
        row(Method::POST, "/v1/auth/password/reset", "", Public, &[400],
            json(json!({"token": "not-a-token", "new_password": "another-long-passphrase"}))),
        // Social login (ADR 0045): no provider is configured here, so every caller gets the
        // unknown provider's 404 (identity's API tests sign in with a real provider).
        row(Method::GET, "/v1/auth/oidc/{provider}/start", "nope", Public, &[404], Body::None),
        row(Method::GET, "/v1/auth/oidc/{provider}/callback", "nope", Public, &[404], Body::None),
        row(Method::GET, "/.well-known/jwks.json", "", Public, &[200], Body::None),
        row(Method::GET, "/healthz", "", Public, &[200], Body::None),
        row(Method::GET, "/readyz", "", Public, &[200], Body::None),
        row(Method::PUT, "/v1/admin/users/{id}/role", nobody, Admin, &[404], json(json!({"role": "user"}))),
        row(Method::GET, "/v1/admin/audit", "", Admin, &[200], Body::None),
        row(Method::GET, "/v1/admin/audit/verify", "", Admin, &[200], Body::None),
        row(Method::GET, "/v1/events", "", Public, &[200], Body::None),
        row(Method::POST, "/v1/events", "", Owner, &[201], new_event),
        row(Method::GET, "/v1/events/{id}", e, Public, &[200], Body::None),
        row(Method::PATCH, "/v1/events/{id}", e, Owner, &[409], json(json!({"expected_version": 999_999}))),
        row(Method::GET, "/v1/events/{id}/availability", e, Public, &[200], Body::None),
        row(Method::GET, "/v1/events/{id}/stats", e, Owner, &[200], Body::None),
        row(Method::GET, "/v1/events/{id}/bookings.csv", e, Owner, &[200], Body::None),
        row(Method::POST, "/v1/events/{id}/categories", e, Owner, &[409],
            json(json!({"name": "More", "price": price, "capacity": 1}))),
        row(Method::POST, "/v1/events/{id}/publish", e, Owner, &[409], Body::None),
        row(Method::POST, "/v1/events/{id}/sale/start", e, Owner, &[409], Body::None),
        row(Method::POST, "/v1/events/{id}/sale/close", e, Owner, &[409], Body::None),
        row(Method::POST, "/v1/events/{id}/cancel", e, Owner, &[409], json(json!({"reason": "again"}))),
        row(Method::POST, "/v1/events/{id}/queue", nobody, SignedIn, &[404], Body::None),
        row(Method::GET, "/v1/events/{id}/queue/{ticket}", nobody, SignedIn, &[404], Body::None),
        row(Method::POST, "/v1/events/{id}/holds", nobody, SignedIn, &[404],
            json(json!({"category_id": event.ga, "quantity": 1}))),
        row(Method::DELETE, "/v1/holds/{id}", hold, SignedIn, &[404], Body::None),
        row(Method::POST, "/v1/venues", "", Organizer, &[201], new_venue),
        row(Method::GET, "/v1/venues/{id}", venue, Public, &[200], Body::None),
        row(Method::PUT, "/v1/venues/{id}/seatmap", venue, Owner, &[409],
            json(json!({"sections": [], "expected_revision": 999_999}))),
        row(Method::POST, "/v1/bookings", "", SignedIn, &[404], json(json!({"hold_id": hold}))),
        row(Method::GET, "/v1/bookings", "", SignedIn, &[200], Body::None),
        row(Method::GET, "/v1/bookings/{id}", nobody, SignedIn, &[404], Body::None),
        row(Method::POST, "/v1/bookings/{id}/payment", nobody, SignedIn, &[404],
            json(json!({"card_token": "tok_visa"}))),
        row(Method::POST, "/v1/bookings/{id}/cancel", nobody, SignedIn, &[404], json(json!({"reason": "no"}))),
        // Notification knows no booking by that id, so it has no tickets.
        row(Method::GET, "/v1/bookings/{id}/tickets", nobody, SignedIn, &[200], Body::None),
        // Only the owner prints a booking's tickets; for anyone else it does not exist.
        row(Method::GET, "/v1/bookings/{id}/tickets.pdf", nobody, SignedIn, &[404], Body::None),
        row(Method::POST, "/v1/checkin", "", Owner, &[422], json(checkin)),
        row(Method::POST, "/v1/webhooks/payments/{provider}", "processor", Public, &[400],
            json(json!({"id": "evt_1"}))),
        row(Method::POST, "/graphql", "", Public, &[200], json(json!({"query": "{ events(first: 1) { items { id } } }"}))),
        row(Method::GET, "/graphql", "", Public, &[200], Body::None),
    ];

    // The table covers exactly what the gateway serves.
    let doc = http.ok(Method::GET, "/openapi.json", None, None, None).await;
    let served: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .filter(|(method, _)| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()))
        .collect();
    let covered: BTreeSet<(String, String)> =
        rows.iter().map(|r| (r.method.as_str().to_owned(), r.route.to_owned())).collect();
    assert_eq!(covered.len(), rows.len(), "a route has two rows");
    let missing: Vec<_> = served.difference(&covered).collect();
    assert!(missing.is_empty(), "routes without an RBAC row: {missing:?}");
    let unserved: Vec<_> = covered.difference(&served).collect();
    assert!(unserved.is_empty(), "RBAC rows for routes not in /openapi.json: {unserved:?}");

    let callers = [
        (Who::Anonymous, None),
        (Who::User, Some(user.token.as_str())),
        (Who::Stranger, Some(stranger.token.as_str())),
        (Who::Owner, Some(owner.token.as_str())),
        (Who::Admin, Some(p.admin.token.as_str())),
    ];
    let mut failures = Vec::new();
    for r in &rows {
        for (who, token) in callers {
            let body = match &r.body {
                Body::None => None,
                Body::Json(body) => Some(body.clone()),
                Body::NewAccount => Some(json!({"email": format!("m-{}@example.com", ticketing_testkit::unique()),
                                                "password": PASSWORD})),
                Body::RefreshToken => Some(json!({"refresh_token": refresh_tokens.pop().unwrap()})),
                Body::UnknownEmail => Some(json!({"email": format!("m-{}@example.com", ticketing_testkit::unique())})),
            };
            let (status, headers, answer) = http.call(r.method.clone(), &r.path, token, body, None).await;
            let ok = match r.access.refusal(who) {
                Some(refused) => {
                    status == refused && headers[reqwest::header::CONTENT_TYPE] == "application/problem+json"
                }
                None => r.allowed.contains(&status.as_u16()),
            };
            if !ok {
                failures.push(format!("{} {} as {who:?}: {status} {answer:.300}", r.method, r.path));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls broke the matrix:\n{}",
        failures.len(),
        rows.len() * 5,
        failures.join("\n")
    );
}

/// Two tickets of a new event, bought by a new buyer, as the buyer lists them.
struct Sold {
    organizer: User,
    event: Event,
    buyer: String,
    tickets_path: String,
    tickets: Value,
}

async fn two_tickets_sold(p: &Platform, http: &Http) -> Sold {
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 2, 4_000).await;
    let buyer = account(http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let (booking, paid) = buy(http, &buyer, &event.id, json!({"category_id": event.ga, "quantity": 2})).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let tickets_path = format!("/v1/bookings/{booking}/tickets");
    let tickets = http.wait_for(&tickets_path, &buyer, |t| t.as_array().is_some_and(|t| t.len() == 2)).await;
    Sold { organizer, event, buyer, tickets_path, tickets }
}

/// The first check-in at `organizer`'s event: notification learns the event's organizer
/// from catalog's events, and refuses until then.
async fn first_check_in(http: &Http, organizer: &User, scan: Value) -> Value {
    let what = "notification to learn who organizes the event";
    eventually_every(what, Duration::from_secs(60), Duration::from_millis(200), || async {
        let (status, _, answer) =
            http.call(Method::POST, "/v1/checkin", Some(&organizer.token), Some(scan.clone()), None).await;
        if status == StatusCode::FORBIDDEN {
            return Err(format!("{status} {answer}"));
        }
        assert_eq!(status, StatusCode::OK, "{answer}");
        Ok(answer)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_a_ticket_checks_in_once_and_forgeries_are_refused() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let Sold { organizer, event, buyer, tickets_path, tickets } = two_tickets_sold(&p, &http).await;
    let (first, second) = (path_of(&tickets[0], "code"), path_of(&tickets[1], "code"));
    let scan = |code: &str| json!({"code": code, "event_id": event.id, "gate_id": "north-1"});

    let (status, _, problem) = http.call(Method::POST, "/v1/checkin", Some(&buyer), Some(scan(&first)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a buyer is no gate: {problem}");
    let admitted = first_check_in(&http, &organizer, scan(&first)).await;
    assert_eq!((admitted["admit"].as_bool(), admitted["result"].as_str()), (Some(true), Some("valid")), "{admitted}");
    assert_eq!(admitted["ticket"]["status"], "scanned");

    let again = http.ok(Method::POST, "/v1/checkin", Some(&organizer.token), Some(scan(&first)), None).await;
    assert_eq!((again["admit"].as_bool(), again["result"].as_str()), (Some(false), Some("already_scanned")), "{again}");
    assert!(again["ticket"]["scanned_at"].is_string(), "the first scan's time is shown: {again}");

    // A forged signature and plain garbage are no tickets, and do not use up the real one.
    let (head, signature) = second.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &signature[1..]);
    for code in [forged.as_str(), "garbage", "a.b.c"] {
        let (status, headers, problem) =
            http.call(Method::POST, "/v1/checkin", Some(&organizer.token), Some(scan(code)), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{code}: {problem}");
        assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(problem["type"], "https://ticketing.dev/problems/invalid-ticket", "{problem}");
    }
    let (status, _, problem) = http
        .call(Method::POST, "/v1/checkin", Some(&organizer.token), Some(json!({"code": second, "event_id": "x"})), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let valid = http.ok(Method::POST, "/v1/checkin", Some(&p.admin.token), Some(scan(&second)), None).await;
    assert_eq!(valid["result"], "valid", "an admin checks in too: {valid}");

    let tickets = http.ok(Method::GET, &tickets_path, Some(&buyer), None, None).await;
    assert!(tickets.as_array().unwrap().iter().all(|t| t["status"] == "scanned"), "{tickets}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_a_gate_asking_for_rotating_codes_refuses_screenshots_and_static_codes() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let Sold { organizer, event, tickets_path, tickets, .. } = two_tickets_sold(&p, &http).await;
    let rotation = &tickets[0]["rotation"];
    let parameters = (rotation["period_seconds"].as_u64(), rotation["digits"].as_u64(), rotation["algorithm"].as_str());
    assert_eq!(parameters, (Some(15), Some(8), Some("SHA256")), "{tickets}");

    // Nobody else gets the secret: a stranger is refused, an admin sees the tickets without it.
    let stranger = account(&http, &format!("other-{}@example.com", ticketing_testkit::unique())).await;
    let (status, _, problem) = http.call(Method::GET, &tickets_path, Some(&stranger), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let as_admin = http.ok(Method::GET, &tickets_path, Some(&p.admin.token), None, None).await;
    assert!(as_admin.as_array().unwrap().iter().all(|t| t.get("rotation").is_none()), "{as_admin}");

    // What the owner's app shows `ago` seconds before now.
    let shown = |ticket: &Value, ago: i64| {
        let secret = rotating::from_base32(ticket["rotation"]["secret"].as_str().unwrap()).unwrap();
        let at = chrono::Utc::now() - chrono::Duration::seconds(ago);
        rotating::code(ticket["code"].as_str().unwrap(), &secret, at)
    };
    let scan = |code: String, rotating_only: bool| json!({"code": code, "event_id": event.id, "gate_id": "east-2", "require_rotating": rotating_only});
    let static_code = path_of(&tickets[0], "code");
    let refused = first_check_in(&http, &organizer, scan(static_code.clone(), true)).await;
    let verdict = |answer: &Value| (answer["admit"].as_bool(), answer["result"].as_str().map(str::to_owned));
    assert_eq!(verdict(&refused), (Some(false), Some("rotating_code_required".into())), "{refused}");
    let check = |body: Value| http.ok(Method::POST, "/v1/checkin", Some(&organizer.token), Some(body), None);
    // A screenshot from a minute ago is stale at any gate.
    for rotating_only in [true, false] {
        let stale = check(scan(shown(&tickets[0], 60), rotating_only)).await;
        assert_eq!(verdict(&stale), (Some(false), Some("stale_code".into())), "{stale}");
        assert_eq!(stale["ticket"]["status"], "issued", "a refused scan uses nothing up: {stale}");
    }
    let admitted = check(scan(shown(&tickets[0], 0), true)).await;
    assert_eq!(verdict(&admitted), (Some(true), Some("valid".into())), "{admitted}");
    let again = check(scan(shown(&tickets[0], 0), true)).await;
    assert_eq!(verdict(&again), (Some(false), Some("already_scanned".into())), "{again}");
    // A gate that takes static codes still admits the emailed one.
    let offline = check(scan(path_of(&tickets[1], "code"), false)).await;
    assert_eq!(verdict(&offline), (Some(true), Some("valid".into())), "{offline}");

    let bad = json!({"code": static_code, "event_id": event.id, "require_rotating": "yes"});
    let (status, headers, problem) =
        http.call(Method::POST, "/v1/checkin", Some(&organizer.token), Some(bad), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json");
}

/// A `Stripe-Signature` header for `body` under `secret`, made now.
fn sign(secret: &str, body: &[u8]) -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_a_signed_webhook_settles_a_payment_once_and_forgeries_are_refused() {
    let p = Platform::start(Options { processor_webhook_secret: Some(WEBHOOK_SECRET), ..Options::default() }).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 2, 2_500).await;
    let buyer = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    // The processor cannot be reached: the charge's outcome is unknown until it calls back.
    let (booking, paid) = buy(&http, &buyer, &event.id, json!({"category_id": event.ga, "quantity": 1})).await;
    assert_eq!(paid["status"], "unknown", "{paid}");

    let provider_event = format!("evt_{}", ticketing_testkit::unique());
    let body = serde_json::to_vec(&json!({
        "id": provider_event, "type": "charge.succeeded",
        "data": {"object": {"id": "ch_e2e", "status": "succeeded", "metadata": {"payment_id": paid["id"]}}},
    }))
    .unwrap();
    let post_to = |provider: &str, body: Vec<u8>, signature: Option<String>| {
        let url = format!("{}/v1/webhooks/payments/{provider}", http.base);
        let mut request = http.client.post(url).header("content-type", "application/json").body(body);
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        async move {
            let response = request.send().await.expect("the gateway answers");
            (response.status(), response.json::<Value>().await.unwrap_or_default())
        }
    };
    let post = |body, signature| post_to("processor", body, signature);

    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    for (name, body, signature) in [
        ("unsigned", body.clone(), None),
        ("another secret", body.clone(), Some(sign("whsec_someone_else_entirely", &body))),
        ("a changed body", tampered, Some(sign(WEBHOOK_SECRET, &body))),
        ("garbage", body.clone(), Some("t=1,v1=zz".into())),
    ] {
        let (status, problem) = post(body, signature).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {problem}");
        assert_eq!(problem["type"], "https://ticketing.dev/problems/invalid-signature", "{name}: {problem}");
    }
    let booked = http.ok(Method::GET, &format!("/v1/bookings/{booking}"), Some(&buyer), None, None).await;
    assert_eq!(booked["status"], "pending_payment", "a refused webhook settles nothing");

    let signature = sign(WEBHOOK_SECRET, &body);
    let (status, receipt) = post(body.clone(), Some(signature.clone())).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt, json!({"provider_event_id": provider_event, "duplicate": false}));
    http.wait_for(&format!("/v1/bookings/{booking}"), &buyer, |b| b["status"] == "confirmed").await;

    // The provider retries: acknowledged again, done once.
    let (status, receipt) = post(body.clone(), Some(signature)).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["duplicate"], true);
    let (status, problem) = post_to("simulated", body.clone(), Some(sign(WEBHOOK_SECRET, &body))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a provider that is not configured: {problem}");
}
