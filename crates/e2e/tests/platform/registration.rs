//! Registration at the gateway (issue 16, finding 5): a limit of its own per client
//! address, answers that reveal no accounts, and an email to verify before an account
//! may hold tickets or join a queue.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::smtp::wait_for_emails;

use crate::harness::{Options, Platform, Sale};
use crate::http::{Http, verification_token};

const PASSWORD: &str = "a-long-enough-passphrase";

/// Registers `email` with `password`, through a trusted proxy that saw the client at `ip`.
async fn register(
    http: &Http,
    ip: &str,
    email: &str,
    password: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = http
        .client
        .post(format!("{}/v1/auth/register", http.base))
        .header("X-Forwarded-For", format!("{ip}, 10.0.0.1"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("the gateway answers");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

fn fresh_email() -> String {
    format!("fan-{}@example.com", ticketing_testkit::unique())
}

/// Registrations have a budget per client address far below the general one, and on a
/// key of its own: a third from one address is refused with 429 and `Retry-After`, while
/// another address registers, and the first still logs in (its general budget is intact).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_client_address_on_its_own_key() {
    let p = Platform::start(Options {
        gateway: |g| {
            g.rate_limits.register = ticketing_gateway::config::Limit { per_second: 0.01, burst: 2 };
            g.rate_limits.trusted_proxy_hops = 2;
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let first = fresh_email();
    for email in [&first, &fresh_email()] {
        let (status, _, body) = register(&http, "198.51.100.1", email, PASSWORD).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, headers, body) = register(&http, "198.51.100.1", &fresh_email(), PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "https://ticketing.dev/problems/rate-limited", "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds");
    assert!((1..=100).contains(&wait), "one registration per 100 s: {wait}");

    let (status, _, body) = register(&http, "198.51.100.2", &fresh_email(), PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED, "another address has its own budget: {body}");
    let login = http
        .client
        .post(format!("{}/v1/auth/login", http.base))
        .header("X-Forwarded-For", "198.51.100.1, 10.0.0.1")
        .json(&json!({"email": first, "password": PASSWORD}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(login.status(), StatusCode::OK, "the address's other routes are not throttled");
}

/// A taken email is answered exactly as a new one, so nobody can list accounts by
/// registering; no second account is made, and the owner learns of the attempt by email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_taken_email_reveals_nothing_and_tells_its_owner() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let email = fresh_email();
    let new = register(&http, "198.51.100.1", &email, PASSWORD).await;
    let taken = register(&http, "198.51.100.1", &email.to_uppercase(), "another-long-passphrase").await;
    assert_eq!(new.0, StatusCode::ACCEPTED, "{}", new.2);
    assert_eq!((taken.0, &taken.2), (new.0, &new.2), "the same status and body");
    assert!(new.2.get("id").is_none() && new.2.get("email").is_none(), "no account in the answer: {}", new.2);

    // The welcome and the verification link, then the warning.
    let emails = wait_for_emails(&p.smtp, &email, 3).await;
    let subjects: Vec<&str> = emails.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert_eq!(subjects.iter().filter(|s| s.starts_with("Verify your email")).count(), 1, "{subjects:?}");
    assert!(subjects.iter().any(|s| s.starts_with("Welcome to Ticketing")), "{subjects:?}");
    assert!(subjects.contains(&"Someone tried to register your email address"), "{subjects:?}");
    let login = json!({"email": email, "password": "another-long-passphrase"});
    let (status, _, _) = http.call(Method::POST, "/v1/auth/login", None, Some(login), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the second password opens nothing");
}

async fn login(http: &Http, email: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD});
    let tokens = http.ok(Method::POST, "/v1/auth/login", None, Some(body), None).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn assert_unverified(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "https://ticketing.dev/problems/email-unverified", "{body}");
}

/// An account whose email is not verified may sign in and look around, but neither hold
/// tickets nor take a place in a waiting room: a thousand scripted accounts are a thousand
/// per-user limits and a thousand queue places otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_account_may_neither_hold_nor_queue() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let open = p.event(&organizer, 10, 2, 1_000).await;
    let queued = p.event_with(&organizer, 10, 2, 1_000, Sale { waiting_room: Some(60_000), ..Sale::default() }).await;
    let email = fresh_email();
    assert_eq!(register(&http, "198.51.100.1", &email, PASSWORD).await.0, StatusCode::ACCEPTED);
    let token = login(&http, &email).await;

    let me = http.ok(Method::GET, "/v1/me", Some(&token), None, None).await;
    assert_eq!(me["email_verified"], false, "{me}");
    let hold = json!({"category_id": open.ga, "quantity": 1});
    let path = format!("/v1/events/{}/holds", open.id);
    let (status, headers, body) = http.call(Method::POST, &path, Some(&token), Some(hold), Some("h1")).await;
    assert_unverified(status, &headers, &body);
    let path = format!("/v1/events/{}/queue", queued.id);
    let (status, headers, body) = http.call(Method::POST, &path, Some(&token), None, None).await;
    assert_unverified(status, &headers, &body);
    assert_eq!(p.counts(&open).await.iter().map(|c| c.2).sum::<u32>(), 0, "nothing held");
}

/// The whole way in: register, the link arrives by email, verifying it lets the next
/// login's token hold tickets; the link works once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_email_opens_holds_from_the_next_login_and_its_link_works_once() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 2, 1_000).await;
    let email = fresh_email();
    assert_eq!(register(&http, "198.51.100.1", &email, PASSWORD).await.0, StatusCode::ACCEPTED);
    let before = login(&http, &email).await;
    let link = verification_token(&http, &email).await;

    let verify = || json!({"token": link});
    let (status, _, body) = http.call(Method::POST, "/v1/auth/verify-email", None, Some(verify()), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, body) = http.call(Method::POST, "/v1/auth/verify-email", None, Some(verify()), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "used: {body}");
    assert_eq!(body["errors"][0]["field"], "token", "{body}");

    let path = format!("/v1/events/{}/holds", event.id);
    let hold = || Some(json!({"category_id": event.ga, "quantity": 1}));
    let (status, headers, body) = http.call(Method::POST, &path, Some(&before), hold(), Some("h1")).await;
    assert_unverified(status, &headers, &body);
    let after = login(&http, &email).await;
    let (status, _, body) = http.call(Method::POST, &path, Some(&after), hold(), Some("h2")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
