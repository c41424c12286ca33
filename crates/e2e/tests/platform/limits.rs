//! The gateway protecting itself and the platform: rate limits in Redis (login, per
//! user), load shedding past its concurrency limit, and per-backend circuit breakers; and
//! refusals of the business (sold out, over the limit) that are conflicts, never 429s (I8).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use ticketing_proto::identity::v1::Role;

use crate::harness::{Options, Platform, Sale};
use crate::http::{Http, account};

const PASSWORD: &str = "a-long-enough-passphrase";

fn assert_problem(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value, code: u16, kind: &str) {
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], format!("https://ticketing.dev/problems/{kind}"), "{body}");
}

/// `Retry-After` in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers["retry-after"].to_str().unwrap().parse().expect("Retry-After is whole seconds")
}

async fn register(http: &Http) -> String {
    let email = format!("fan-{}@example.com", ticketing_testkit::unique());
    let body = json!({"email": email, "password": PASSWORD});
    http.ok(Method::POST, "/v1/auth/register", None, Some(body), None).await;
    email
}

/// Logs in as `email`, through a trusted proxy that saw the client at `ip`.
async fn login(http: &Http, email: &str, ip: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = http
        .client
        .post(format!("{}/v1/auth/login", http.base))
        .header("X-Forwarded-For", format!("{ip}, 10.0.0.1"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("the gateway answers");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_limited_per_ip_and_per_email_and_allowed_again_after_retry_after() {
    let p = Platform::start(Options {
        gateway: |g| {
            g.rate_limits.login = ticketing_gateway::config::Limit { per_second: 0.5, burst: 2 };
            // A load balancer in front: the client is the entry it appended.
            g.rate_limits.trusted_proxy_hops = 2;
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let (alice, bob) = (register(&http).await, register(&http).await);

    let (status, headers, _) = login(&http, &alice, "198.51.100.1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["ratelimit-limit"], "2");
    assert_eq!(headers["ratelimit-remaining"], "1");
    assert_eq!(login(&http, &alice, "198.51.100.1").await.0, StatusCode::OK);
    let (status, headers, body) = login(&http, &alice, "198.51.100.1").await;
    assert_problem(status, &headers, &body, 429, "rate-limited");
    let wait = retry_after(&headers);
    assert!((1..=2).contains(&wait), "one login per 2 s: {wait}");
    assert_eq!(headers["ratelimit-remaining"], "0");

    // The email's limit follows it to other addresses; the address's limit covers other emails.
    assert_eq!(login(&http, &alice, "198.51.100.2").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&http, &bob, "198.51.100.1").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&http, &bob, "198.51.100.3").await.0, StatusCode::OK, "another email from another address");

    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(login(&http, &alice, "198.51.100.3").await.0, StatusCode::OK, "allowed again after Retry-After");
}

/// identity's per-address login throttle state (ADR 0026): each address's hash.
async fn throttled_addresses(p: &Platform) -> BTreeMap<String, HashMap<String, String>> {
    let redis = &p.redis["identity"];
    let client = redis::Client::open(redis.config.url.as_str()).expect("identity's Redis URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("identity's Redis");
    let mut addresses = BTreeMap::new();
    for key in redis.keys() {
        if let Some((_, ip)) = key.split_once("login:ip:") {
            let state: HashMap<String, String> = redis::AsyncCommands::hgetall(&mut conn, &key).await.unwrap();
            addresses.insert(ip.to_owned(), state);
        }
    }
    addresses
}

/// identity throttles password guessing per client address (ADR 0026): the gateway hands it
/// the address its own limits key on, never its own pod's, which every buyer would share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_counts_failed_logins_against_the_clients_address() {
    let p = Platform::start(Options { gateway: |g| g.rate_limits.trusted_proxy_hops = 2, ..Options::default() }).await;
    let http = Http::new(&p);
    let email = register(&http).await;
    let before = throttled_addresses(&p).await;
    let response = http
        .client
        .post(format!("{}/v1/auth/login", http.base))
        // A forged entry, then what GKE's load balancer appends: the client and its own address.
        .header("X-Forwarded-For", "192.0.2.99, 198.51.100.77, 34.117.0.1")
        .json(&json!({"email": email, "password": "not-the-passphrase"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let mut after = throttled_addresses(&p).await;
    after.retain(|ip, state| before.get(ip) != Some(state));
    let counted: Vec<&String> = after.keys().collect();
    assert_eq!(counted, ["198.51.100.77"], "the addresses the failure counted against");
}

/// Two buyers behind one gateway and its trusted proxies are two clients to identity: one
/// guessing wrong is slowed with 429 and `Retry-After`, the other, on the very same
/// account, logs in at once (ADR 0026).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_from_two_addresses_behind_one_gateway_are_throttled_independently() {
    let p = Platform::start(Options {
        gateway: |g| {
            g.rate_limits.trusted_proxy_hops = 2;
            // Identity's throttle is under test here, not the gateway's own login limit.
            g.rate_limits.login = ticketing_gateway::config::Limit { per_second: 100.0, burst: 100 };
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let email = register(&http).await;
    let guess = |ip: &'static str| {
        let (http, email) = (&http, email.clone());
        async move {
            let response = http
                .client
                .post(format!("{}/v1/auth/login", http.base))
                .header("X-Forwarded-For", format!("{ip}, 10.0.0.1"))
                .json(&json!({"email": email, "password": "not-the-passphrase"}))
                .send()
                .await
                .expect("the gateway answers");
            let (status, headers) = (response.status(), response.headers().clone());
            (status, headers, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Identity lets a few guesses through for free, then delays the next: guess on until told to wait.
    let mut guesses = 0;
    let (headers, body) = loop {
        let (status, headers, body) = guess("198.51.100.1").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break (headers, body);
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        guesses += 1;
        assert!(guesses <= 10, "identity never slowed the guesser");
    };
    assert_problem(StatusCode::TOO_MANY_REQUESTS, &headers, &body, 429, "rate-limited");
    assert!(retry_after(&headers) >= 1);
    assert!(headers.get("ratelimit-limit").is_none(), "identity's refusal, not the gateway limiter's");

    let (status, _, body) = login(&http, &email, "198.51.100.2").await;
    assert_eq!(status, StatusCode::OK, "the owner at another address is not slowed: {body}");
}

/// Only the gateway's word on the client's address counts: a caller reaching identity
/// directly, whatever it claims, is throttled as the address it connects from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_claimed_without_the_gateways_token_is_ignored() {
    let p = Platform::start(Options::default()).await;
    let before = throttled_addresses(&p).await;
    for token in [None, Some(p.admin.token.as_str())] {
        let message = ticketing_proto::identity::v1::LoginRequest {
            email: format!("nobody-{}@example.com", ticketing_testkit::unique()),
            password: "not-the-passphrase".into(),
        };
        let mut request = match token {
            Some(token) => ticketing_platform::auth::with_bearer(tonic::Request::new(message), token),
            None => tonic::Request::new(message),
        };
        request.metadata_mut().insert("x-forwarded-for", "192.0.2.50".parse().unwrap());
        request.metadata_mut().insert(ticketing_platform::peers::CLIENT_ADDRESS, "192.0.2.51".parse().unwrap());
        let status = p.identity.clone().login(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    let mut after = throttled_addresses(&p).await;
    after.retain(|ip, state| before.get(ip) != Some(state));
    let counted: Vec<&String> = after.keys().collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert!(counted[0].parse::<std::net::IpAddr>().unwrap().is_loopback(), "the peer, not a claim: {counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_has_a_limit_of_their_own_and_bad_tokens_fall_back_to_the_ip_limit() {
    let p = Platform::start(Options {
        gateway: |g| g.rate_limits.user = ticketing_gateway::config::Limit { per_second: 1.0, burst: 3 },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let one = account(&http, &format!("one-{}@example.com", ticketing_testkit::unique())).await;
    let two = account(&http, &format!("two-{}@example.com", ticketing_testkit::unique())).await;

    for _ in 0..3 {
        http.ok(Method::GET, "/v1/me", Some(&one), None, None).await;
    }
    let (status, headers, body) = http.call(Method::GET, "/v1/me", Some(&one), None, None).await;
    assert_problem(status, &headers, &body, 429, "rate-limited");
    assert_eq!(retry_after(&headers), 1);
    assert_eq!(headers["ratelimit-limit"], "3", "the user's limit binds, not the IP's");

    // Another user, and anonymous calls from the same address, are not held back.
    for _ in 0..3 {
        http.ok(Method::GET, "/v1/me", Some(&two), None, None).await;
    }
    http.ok(Method::GET, "/v1/events", None, None, None).await;
    // An invalid token is limited by IP only, and still answered 401 by its route.
    for _ in 0..5 {
        let (status, headers, body) = http.call(Method::GET, "/v1/me", Some("not-a-token"), None, None).await;
        assert_problem(status, &headers, &body, 401, "unauthenticated");
    }
}

/// A 409 refusal with its own problem type and nothing of a rate limit about it.
fn assert_refusal(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value, kind: &str) {
    assert_problem(status, headers, body, 409, kind);
    for header in ["retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(!headers.contains_key(header), "{kind} carries {header}: {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_409s_of_their_own_type_and_only_the_limiter_answers_429() {
    let p = Platform::start(Options {
        gateway: |g| g.rate_limits.user = ticketing_gateway::config::Limit { per_second: 0.1, burst: 25 },
        ..Options::default()
    })
    .await;
    let organizer = p.user(Role::Organizer).await;
    // Three standing tickets, one row of four seats, four tickets per buyer.
    let event = p.event_with_limit(&organizer, 3, 4, 5_000, 4).await;
    let later = p
        .event_with(&organizer, 3, 1, 5_000, Sale { opens_in: Some(Duration::from_secs(3600)), ..Sale::default() })
        .await;
    let http = Http::new(&p);
    let alice = account(&http, &format!("alice-{}@example.com", ticketing_testkit::unique())).await;
    let bob = account(&http, &format!("bob-{}@example.com", ticketing_testkit::unique())).await;
    let holds = format!("/v1/events/{}/holds", event.id);
    let hold = |token: &str, body: Value, key: Option<&str>| {
        let (token, key, holds) = (token.to_owned(), key.map(str::to_owned), holds.clone());
        let http = &http;
        async move { http.call(Method::POST, &holds, Some(&token), Some(body), key.as_deref()).await }
    };

    // Alice takes the second seat: the row has no three adjacent free seats left.
    let (status, _, _) = hold(&alice, json!({"seat_ids": [event.seats[1]]}), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, body) = hold(&bob, json!({"seat_ids": [event.seats[1]]}), None).await;
    assert_refusal(status, &headers, &body, "seat-taken");
    let adjacent =
        json!({"category_id": event.seated, "quantity": 3, "best_available": true, "require_adjacent": true});
    let (status, headers, body) = hold(&bob, adjacent, None).await;
    assert_refusal(status, &headers, &body, "no-adjacent-seats");
    let (status, headers, body) = hold(&bob, json!({"category_id": event.ga, "quantity": 4}), None).await;
    assert_refusal(status, &headers, &body, "sold-out");
    assert!(body["detail"].as_str().unwrap().contains("3 left"), "{body}");
    // Alice's seat and three standing tickets make her limit of four; one more is over it.
    let (status, _, body) = hold(&alice, json!({"category_id": event.ga, "quantity": 3}), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, headers, body) = hold(&alice, json!({"seat_ids": [event.seats[3]]}), None).await;
    assert_refusal(status, &headers, &body, "limit-exceeded");
    let path = format!("/v1/events/{}/holds", later.id);
    let (status, headers, body) =
        http.call(Method::POST, &path, Some(&bob), Some(json!({"category_id": later.ga, "quantity": 1})), None).await;
    assert_refusal(status, &headers, &body, "not-on-sale");

    // A replay with the same key and body gets the first hold; a different body is a 422.
    let seat = json!({"seat_ids": [event.seats[3]]});
    let (status, _, first) = hold(&bob, seat.clone(), Some("bob-hold-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, _, again) = hold(&bob, seat, Some("bob-hold-1")).await;
    assert_eq!((status, &again["id"]), (StatusCode::CREATED, &first["id"]), "{again}");
    let (status, headers, body) = hold(&bob, json!({"seat_ids": [event.seats[2]]}), Some("bob-hold-1")).await;
    assert_problem(status, &headers, &body, 422, "idempotency-key-reused");

    // Only the limiter says 429: Bob's 25-request burst runs out.
    let mut calls = 0;
    let (status, headers, body) = loop {
        let answer = http.call(Method::GET, "/v1/me", Some(&bob), None, None).await;
        calls += 1;
        if answer.0 != StatusCode::OK || calls > 30 {
            break answer;
        }
    };
    assert_problem(status, &headers, &body, 429, "rate-limited");
    assert!(retry_after(&headers) >= 1 && headers.contains_key("ratelimit-limit"), "{headers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_the_gateway_sheds_load_at_once_instead_of_queueing() {
    let p = Platform::start(Options {
        gateway: |g| {
            g.max_concurrency = 2;
            g.rate_limits.enabled = false;
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let email = register(&http).await;

    // Logins hash a password: slow enough that a crowd of them exceeds two at a time.
    let calls = (0..40).map(|_| {
        let (client, url, email) = (http.client.clone(), format!("{}/v1/auth/login", http.base), email.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = client.post(url).json(&json!({"email": email, "password": PASSWORD})).send().await.unwrap();
            let (status, headers) = (response.status(), response.headers().clone());
            let body: Value = response.json().await.unwrap();
            (status, headers, body, started.elapsed())
        })
    });
    let (mut served, mut shed) = (0, 0);
    for call in calls.collect::<Vec<_>>() {
        let (status, headers, body, elapsed) = call.await.unwrap();
        match status {
            StatusCode::OK => served += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_problem(status, &headers, &body, 503, "unavailable");
                assert!(retry_after(&headers) >= 1);
                assert!(elapsed < Duration::from_secs(2), "shed at once, not queued: {elapsed:?}");
                shed += 1;
            }
            other => panic!("only 200 or 503 expected, got {other}: {body}"),
        }
    }
    assert!(served >= 2 && shed >= 1, "served {served}, shed {shed}");
}

async fn breaker_state(p: &Platform, backend: &str) -> String {
    let metrics = reqwest::get(format!("{}/metrics", p.gateway_admin)).await.unwrap().text().await.unwrap();
    let series = format!("gateway_circuit_breaker_state{{backend=\"{backend}\",service=\"gateway\"}} ");
    let line = metrics.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series}in {metrics}"));
    line[series.len()..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_opens_its_breaker_and_fails_fast_while_the_others_serve() {
    let p = Platform::start(Options {
        gateway: |g| {
            // Nothing listens there: every call to catalog is refused.
            g.catalog_url = "http://127.0.0.1:1".into();
            g.circuit_breaker.consecutive_failures = 3;
            g.circuit_breaker.cool_down = Duration::from_secs(60);
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let token = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let event = format!("/v1/events/{}", uuid::Uuid::new_v4());
    assert_eq!(breaker_state(&p, "catalog").await, "0");

    // A read is retried, each attempt failing, until the breaker opens.
    let (status, headers, body) = http.call(Method::GET, &event, None, None, None).await;
    assert_problem(status, &headers, &body, 503, "unavailable");
    assert!(!body["detail"].as_str().unwrap().contains("127.0.0.1:1"), "no backend address: {body}");
    assert_eq!(breaker_state(&p, "catalog").await, "2");

    let started = Instant::now();
    let (status, headers, body) = http.call(Method::GET, &event, None, None, None).await;
    assert_problem(status, &headers, &body, 503, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(1), "failed fast: {:?}", started.elapsed());
    assert!((1..=60).contains(&retry_after(&headers)), "{headers:?}");
    // The answer names the request, never the cause (issue 16): that is in the log.
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(headers["x-request-id"].to_str().unwrap()), "{body}");
    assert!(!detail.contains("catalog") && !detail.contains("127.0.0.1"), "{body}");

    // The other backends are unaffected.
    http.ok(Method::GET, "/v1/me", Some(&token), None, None).await;
    http.ok(Method::GET, "/v1/bookings", Some(&token), None, None).await;
    let (status, _, body) = http.call(Method::GET, &format!("{event}/availability"), None, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "inventory answers: {body}");
    for backend in ["identity", "inventory", "booking"] {
        assert_eq!(breaker_state(&p, backend).await, "0", "{backend}");
    }
}
