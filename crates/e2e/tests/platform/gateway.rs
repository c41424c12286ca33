//! The public REST API, spoken over HTTP only: the buying flow, problem documents
//! for bad input, headers, and the OpenAPI document.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::eventually_every;

use crate::harness::{Options, Platform};
use crate::http::{Http, account};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_buys_seats_through_the_rest_api() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 4, 6_000).await;
    let http = Http::new(&p);
    let token = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;

    let me = http.ok(Method::GET, "/v1/me", Some(&token), None, None).await;
    assert_eq!(me["role"], "user");
    let listed = http.ok(Method::GET, "/v1/events?q=eras&limit=5", None, None, None).await;
    assert!(listed["items"].as_array().unwrap().iter().any(|e| e["id"] == event.id.as_str()), "{listed}");
    let detail = http.ok(Method::GET, &format!("/v1/events/{}", event.id), None, None, None).await;
    assert_eq!(detail["categories"].as_array().unwrap().len(), 2);

    let body = json!({"seat_ids": [event.seats[0], event.seats[1]]});
    let path = format!("/v1/events/{}/holds", event.id);
    let (status, _, hold) = http.call(Method::POST, &path, Some(&token), Some(body.clone()), Some("hold-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let again = http.ok(Method::POST, &path, Some(&token), Some(body), Some("hold-1")).await;
    assert_eq!(again["id"], hold["id"], "an idempotent replay returns the first hold");
    let availability =
        http.ok(Method::GET, &format!("/v1/events/{}/availability?seats=true", event.id), None, None, None).await;
    let held = availability["seats"].as_array().unwrap().iter().filter(|s| s["state"] == "held").count();
    assert_eq!(held, 2);

    let (status, _, booking) = http
        .call(Method::POST, "/v1/bookings", Some(&token), Some(json!({"hold_id": hold["id"]})), Some("book-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    assert_eq!(booking["total"], json!({"currency": "EUR", "minor_units": 12_000}));
    let id = booking["id"].as_str().unwrap().to_owned();
    let paid = http
        .ok(
            Method::POST,
            &format!("/v1/bookings/{id}/payment"),
            Some(&token),
            Some(json!({"card_token": "tok_visa"})),
            Some("pay-1"),
        )
        .await;
    assert_eq!(paid["status"], "succeeded", "{paid}");

    eventually_every("the booking to be confirmed", Duration::from_secs(60), Duration::from_millis(200), || async {
        let current = http.ok(Method::GET, &format!("/v1/bookings/{id}"), Some(&token), None, None).await;
        if current["status"] == "confirmed" { Ok(()) } else { Err(current) }
    })
    .await;
    let mine = http.ok(Method::GET, "/v1/bookings?status=confirmed", Some(&token), None, None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    eventually_every("the tickets", Duration::from_secs(60), Duration::from_millis(200), || async {
        let tickets = http.ok(Method::GET, &format!("/v1/bookings/{id}/tickets"), Some(&token), None, None).await;
        if tickets.as_array().is_some_and(|t| t.len() == 2) {
            assert!(tickets[0]["code"].as_str().unwrap().split('.').count() == 3);
            return Ok(());
        }
        Err(tickets)
    })
    .await;
}

/// A bad request: name, method, path, token, body, expected status and problem kind.
type Case<'a> = (&'a str, Method, String, Option<&'a str>, Option<Value>, StatusCode, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problem_documents_never_server_errors() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let token = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let event = uuid::Uuid::new_v4();
    let huge = "x".repeat(2 << 20);
    let cases: Vec<Case> = vec![
        ("unknown route", Method::GET, "/v1/nothing".into(), None, None, StatusCode::NOT_FOUND, "not-found"),
        (
            "wrong method",
            Method::DELETE,
            "/v1/events".into(),
            None,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        ("no token", Method::GET, "/v1/me".into(), None, None, StatusCode::UNAUTHORIZED, "unauthenticated"),
        (
            "garbage token",
            Method::GET,
            "/v1/me".into(),
            Some("not.a.jwt"),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "bad uuid",
            Method::GET,
            "/v1/events/not-a-uuid".into(),
            None,
            None,
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
        (
            "bad date",
            Method::GET,
            "/v1/events?from=yesterday".into(),
            None,
            None,
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
        (
            "bad cursor",
            Method::GET,
            "/v1/events?cursor=%%%".into(),
            None,
            None,
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
        (
            "unknown query",
            Method::GET,
            "/v1/events?sort=asc".into(),
            None,
            None,
            StatusCode::BAD_REQUEST,
            "invalid-query",
        ),
        (
            "wrong type",
            Method::GET,
            "/v1/events?limit=many".into(),
            None,
            None,
            StatusCode::BAD_REQUEST,
            "invalid-query",
        ),
        ("unknown event", Method::GET, format!("/v1/events/{event}"), None, None, StatusCode::NOT_FOUND, "not-found"),
        (
            "unknown field",
            Method::POST,
            "/v1/auth/login".into(),
            None,
            Some(json!({"email": "a@b.c", "password": "x", "admin": true})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            "field of the wrong type",
            Method::POST,
            "/v1/auth/login".into(),
            None,
            Some(json!({"email": 7, "password": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            "bad email",
            Method::POST,
            "/v1/auth/register".into(),
            None,
            Some(json!({"email": "nope", "password": "a-long-enough-passphrase"})),
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
        (
            "oversized body",
            Method::POST,
            "/v1/auth/login".into(),
            None,
            Some(json!({"email": huge, "password": "x"})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "empty hold",
            Method::POST,
            format!("/v1/events/{event}/holds"),
            Some(&token),
            Some(json!({})),
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
        (
            "bad hold id",
            Method::POST,
            "/v1/bookings".into(),
            Some(&token),
            Some(json!({"hold_id": "short"})),
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
        (
            "bad booking status",
            Method::GET,
            "/v1/bookings?status=paid".into(),
            Some(&token),
            None,
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
        (
            "bad booking cursor",
            Method::GET,
            "/v1/bookings?cursor=abc".into(),
            Some(&token),
            None,
            StatusCode::BAD_REQUEST,
            "validation-error",
        ),
    ];
    for (name, method, path, token, body, status, kind) in cases {
        let (got, headers, problem) = http.call(method, &path, token, body, None).await;
        assert_eq!(got, status, "{name}: {problem}");
        assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json", "{name}");
        assert_eq!(problem["type"], format!("https://ticketing.dev/problems/{kind}"), "{name}: {problem}");
        assert_eq!(problem["status"], status.as_u16(), "{name}");
    }

    // Malformed JSON and a missing content type, which json() cannot send.
    let raw = |body: &'static str, content_type: &'static str| {
        http.client.post(format!("{}/v1/auth/login", http.base)).header("content-type", content_type).body(body).send()
    };
    assert_eq!(raw("{\"email\":", "application/json").await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(raw("email=a", "text/plain").await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_in_the_openapi_document_and_responses_carry_security_headers() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let (status, headers, doc) = http.call(Method::GET, "/openapi.json", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/auth/register", &["post"][..]),
        ("/v1/auth/verify-email", &["post"]),
        ("/v1/auth/verify-email/resend", &["post"]),
        ("/v1/auth/login", &["post"]),
        ("/v1/auth/refresh", &["post"]),
        ("/v1/auth/logout", &["post"]),
        ("/v1/me", &["get", "patch"]),
        ("/.well-known/jwks.json", &["get"]),
        ("/v1/events", &["get"]),
        ("/v1/events/{id}", &["get"]),
        ("/v1/events/{id}/availability", &["get"]),
        ("/v1/events/{id}/holds", &["post"]),
        ("/v1/holds/{id}", &["delete"]),
        ("/v1/bookings", &["get", "post"]),
        ("/v1/bookings/{id}", &["get"]),
        ("/v1/bookings/{id}/payment", &["post"]),
        ("/v1/bookings/{id}/cancel", &["post"]),
        ("/v1/bookings/{id}/tickets", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} missing from /openapi.json"
            );
        }
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    assert!(!headers["x-request-id"].is_empty(), "a request id is made up when the client sends none");

    let echoed =
        http.client.get(format!("{}/v1/events", http.base)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
    let docs = http.client.get(format!("{}/docs/", http.base)).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert!(docs.text().await.unwrap().contains("swagger"), "Swagger UI is served by the gateway itself");
    let jwks = http.ok(Method::GET, "/.well-known/jwks.json", None, None, None).await;
    assert!(!jwks["keys"].as_array().unwrap().is_empty());

    // HTTP/2 without TLS (h2c), as a TLS-terminating load balancer or a client speaks it.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let over_h2 = h2.get(format!("{}/v1/events", http.base)).send().await.expect("the gateway speaks h2c");
    assert_eq!(over_h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(over_h2.status(), StatusCode::OK);
    assert_eq!(over_h2.headers()["x-content-type-options"], "nosniff");
}

/// A tool scripts/infra.sh installs: `$env` when set, else `default`.
fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

/// Runs a checking tool; a missing tool fails the test, since CI installs them all.
fn run(program: &str, args: &[&str]) -> std::process::Output {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run ({e}); scripts/infra.sh installs it"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_passes_a_real_validator_and_swagger_ui_renders_it_in_chromium() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let spec = http.ok(Method::GET, "/openapi.json", None, None, None).await;
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("openapi-{}", ticketing_testkit::unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let validator = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.local/venv/bin/openapi-spec-validator");
    let validated = run(&tool("OPENAPI_SPEC_VALIDATOR", validator), &["--schema", "3.1", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&validated.stdout).contains("OK"), "{validated:?}");

    // The page is rendered by Swagger UI's script from /openapi.json: the API's title in the
    // DOM proves the vendored assets load and the document parses in a real browser.
    let url = format!("{}/docs/", http.base);
    let chromium = tool("CHROMIUM", "chromium");
    let headless =
        ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=15000"];
    let dom = run(&chromium, &[&headless[..], &["--dump-dom", &url]].concat());
    let dom = String::from_utf8_lossy(&dom.stdout);
    let title = spec["info"]["title"].as_str().unwrap();
    assert!(dom.contains(title) && dom.contains("opblock"), "Swagger UI did not render the API: {dom:.2000}");
    let screenshot = dir.join("docs.png");
    let shot = format!("--screenshot={}", screenshot.display());
    run(&chromium, &[&headless[..], &["--window-size=1280,2000", &shot, &url]].concat());
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a blank or missing screenshot: {} bytes", png.len());

    // GraphiQL is vendored too: its rendered container proves React and GraphiQL load from
    // the gateway alone under the page's CSP.
    let graphiql = format!("{}/graphql", http.base);
    let dom = run(&chromium, &[&headless[..], &["--dump-dom", &graphiql]].concat());
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("graphiql-container"), "GraphiQL did not render: {dom:.2000}");
    let shot = format!("--screenshot={}", dir.join("graphiql.png").display());
    run(&chromium, &[&headless[..], &["--window-size=1280,900", &shot, &graphiql]].concat());
}
