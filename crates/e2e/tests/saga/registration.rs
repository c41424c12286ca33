//! Registration at the gateway (issue 16, finding 5): a limit of its own per client
//! address, and answers that reveal no accounts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_testkit::smtp::wait_for_emails;

use crate::http::Http;
use crate::platform::{Options, Platform};

const PASSWORD: &str = "a-long-enough-passphrase";

/// Registers `email` with `password`, through a trusted proxy that saw the client at `ip`.
async fn register(http: &Http, ip: &str, email: &str, password: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
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

    let emails = wait_for_emails(&p.smtp, &email, 2).await;
    let subjects: Vec<&str> = emails.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.iter().any(|s| s.starts_with("Welcome to Ticketing")), "{subjects:?}");
    assert!(subjects.contains(&"Someone tried to register your email address"), "{subjects:?}");
    let login = json!({"email": email, "password": "another-long-passphrase"});
    let (status, _, _) = http.call(Method::POST, "/v1/auth/login", None, Some(login), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the second password opens nothing");
}
