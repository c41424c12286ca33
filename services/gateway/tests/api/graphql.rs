//! `POST /graphql` in front of the fakes: availability batched into one inventory call,
//! depth, complexity and size limits, backend errors as GraphQL errors with the REST
//! problem types' codes, `me` for the signed-in caller's own bookings only, and the REST
//! reads' rate limits. GraphiQL at `GET /graphql` loads nothing from elsewhere, and its
//! files go gzipped to a client that takes gzip.

use std::future::ready;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_gateway::config::Limit;
use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::notification::v1 as notification;
use uuid::Uuid;

use crate::harness::{Answer, Gateway, on_sale, send};

impl Gateway {
    /// `query` to `POST /graphql`, with `token` when given.
    async fn graphql(&self, query: &str, token: Option<&str>) -> Answer {
        let request = self.call(Method::POST, "/graphql").json(&json!({ "query": query }));
        send(match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
        .await
    }
}

/// The `extensions.code` of each error.
fn codes(answer: &Answer) -> Vec<&str> {
    let errors = answer.body["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
    errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("none")).collect()
}

/// An event on sale with one category.
fn event(n: usize) -> catalog::Event {
    let event = on_sale(None);
    let category = catalog::Category {
        id: Uuid::new_v4().to_string(),
        event_id: event.id.clone(),
        name: format!("Floor {n}"),
        capacity: 100,
        price: Some(ticketing_proto::common::v1::Money { currency: "EUR".into(), minor_units: 5000 }),
        ..Default::default()
    };
    catalog::Event { venue_id: Uuid::new_v4().to_string(), categories: vec![category], ..event }
}

#[tokio::test]
async fn a_page_of_events_with_availability_is_one_inventory_call() {
    let gateway = Gateway::start().await;
    let events: Vec<catalog::Event> = (0..7).map(event).collect();
    let listed = catalog::ListEventsResponse { events: events.clone(), page: None };
    gateway.backends.catalog.answer("list_events", Ok(listed));
    // Each event has sold as many as its place in the page; the last is unknown to inventory.
    let known: Vec<catalog::Event> = events[..6].to_vec();
    gateway.backends.inventory.on("batch_availability", move |r: inventory::BatchAvailabilityRequest| {
        let answered = known.iter().enumerate().filter(|(_, e)| r.event_ids.contains(&e.id));
        let events = answered
            .map(|(sold, e)| inventory::AvailabilityResponse {
                event_id: e.id.clone(),
                categories: vec![inventory::CategoryAvailability {
                    category_id: e.categories[0].id.clone(),
                    capacity: 100,
                    available: 100 - sold as u32,
                    held: 0,
                    sold: sold as u32,
                }],
                ..Default::default()
            })
            .collect();
        ready(Ok(inventory::BatchAvailabilityResponse { events }))
    });

    let query = "{ events(first: 7) { items { id availability { sold } categories { name availability { sold } } } } }";
    let answer = gateway.graphql(query, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.get("errors").is_none(), "{}", answer.body);
    let items = answer.body["data"]["events"]["items"].as_array().expect("events");
    assert_eq!(items.len(), 7);
    for (n, item) in items.iter().enumerate().take(6) {
        assert_eq!(item["availability"][0]["sold"], n, "{item}");
        assert_eq!(item["categories"][0]["availability"]["sold"], n, "{item}");
    }
    assert_eq!(items[6]["availability"], Value::Null, "no stock yet: null, not an error");
    assert_eq!(gateway.backends.inventory.calls("batch_availability"), 1, "one call for the whole page");
    assert_eq!(gateway.backends.inventory.calls("availability"), 0);
    let asked = gateway.backends.inventory.requests::<inventory::BatchAvailabilityRequest>("batch_availability");
    assert_eq!(asked[0].event_ids.len(), 7, "each event once, though two fields ask for it");
}

#[tokio::test]
async fn too_deep_too_costly_or_too_large_queries_are_refused_before_any_backend() {
    let gateway = Gateway::start_with(|c| c.gateway.graphql.max_complexity = 1000).await;
    // GraphiQL's introspection nests `ofType` nine times: 14 levels, within the default 20.
    let of_type = |levels: usize| "ofType { ".repeat(levels) + "name" + &" }".repeat(levels);
    let introspection = format!("{{ __schema {{ types {{ fields {{ type {{ {} }} }} }} }} }}", of_type(9));
    let answer = gateway.graphql(&introspection, None).await;
    assert!(answer.body.get("errors").is_none(), "introspection is allowed: {}", answer.body);
    assert!(answer.body["data"]["__schema"]["types"].as_array().is_some_and(|t| !t.is_empty()));

    let deep = format!("{{ __schema {{ types {{ fields {{ type {{ {} }} }} }} }} }}", of_type(17));
    let answer = gateway.graphql(&deep, None).await;
    assert_eq!((answer.status, codes(&answer)), (StatusCode::OK, vec!["BAD_REQUEST"]), "{}", answer.body);
    assert!(answer.body["errors"][0]["message"].as_str().unwrap().contains("deep"), "{}", answer.body);

    let costly = "{ events(first: 100) { items { venue { seatMap { sections { name } } } } } }";
    let answer = gateway.graphql(costly, None).await;
    assert_eq!(codes(&answer), ["BAD_REQUEST"], "{}", answer.body);
    assert!(answer.body["errors"][0]["message"].as_str().unwrap().contains("complex"), "{}", answer.body);
    assert_eq!(answer.body["data"], Value::Null);

    let post = |body: Value| gateway.call(Method::POST, "/graphql").json(&body);
    for body in [
        json!({}),
        json!({"query": 7}),
        json!({"query": "{ events { items { id } } }", "vars": {}}),
        json!({"query": "{ events { items { id } } }", "variables": [1]}),
    ] {
        let answer = send(post(body.clone())).await;
        assert_eq!((answer.status, answer.problem()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"), "{body}");
    }
    let with_variables = json!({"query": "query Q($n: Int) { events(first: $n) { items { id } } }",
                                "operationName": "Q", "variables": {"n": 0}});
    let answer = send(post(with_variables)).await;
    assert_eq!(codes(&answer), ["VALIDATION_ERROR"], "variables reach the query: {}", answer.body);
    let malformed = gateway.graphql("{ events { ", None).await;
    assert_eq!(codes(&malformed), ["BAD_REQUEST"], "{}", malformed.body);
    let huge = format!("{{ events {{ items {{ id }} }} }} # {}", "x".repeat(2 << 20));
    let answer = gateway.graphql(&huge, None).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"));
    assert_eq!(gateway.backends.catalog.calls("list_events"), 0);
}

#[tokio::test]
async fn backend_errors_carry_the_rest_problem_types_and_say_nothing_internal() {
    let gateway = Gateway::start().await;
    let known = gateway.has_event(event(0));
    let missing = Uuid::new_v4();
    let answer = gateway.graphql(&format!(r#"{{ event(id: "{missing}") {{ name }} }}"#), None).await;
    assert_eq!(codes(&answer), ["NOT_FOUND"], "{}", answer.body);
    let extensions = &answer.body["errors"][0]["extensions"];
    assert_eq!(
        (extensions["status"].as_u64(), extensions["type"].as_str()),
        (Some(404), Some("https://ticketing.dev/problems/not-found"))
    );
    let answer = gateway.graphql(r#"{ event(id: "nope") { name } }"#, None).await;
    assert_eq!(codes(&answer), ["VALIDATION_ERROR"], "{}", answer.body);
    assert_eq!(gateway.backends.catalog.calls("get_event"), 1, "a malformed id reaches no backend");

    let down = tonic::Status::unavailable("connect to 10.3.0.7:50053 refused");
    gateway.backends.inventory.answer::<inventory::BatchAvailabilityResponse>("batch_availability", Err(down));
    let answer =
        gateway.graphql(&format!(r#"{{ event(id: "{known}") {{ name availability {{ sold }} }} }}"#), None).await;
    assert_eq!(codes(&answer), ["UNAVAILABLE"], "{}", answer.body);
    assert_eq!(answer.body["data"]["event"]["name"], "Router tests live", "the rest of the answer stands");
    let error = &answer.body["errors"][0];
    assert!(!error["message"].as_str().unwrap().contains("10.3.0.7"), "{error}");
    assert!(error["extensions"]["retryAfter"].as_u64().is_some_and(|s| s >= 1), "as REST's Retry-After: {error}");
    assert_eq!(error["path"], json!(["event", "availability"]));
}

#[tokio::test]
async fn me_is_the_callers_own_bookings_and_needs_a_token() {
    let gateway = Gateway::start().await;
    let (buyer, token) = gateway.account(Role::User);
    let (_, organizer) = gateway.account(Role::Organizer);
    let booking_of = |user: Uuid| booking::BookingDetails {
        id: Uuid::new_v4().to_string(),
        user_id: user.to_string(),
        event_id: Uuid::new_v4().to_string(),
        status: booking::BookingStatus::Confirmed as i32,
        ..Default::default()
    };
    let (own, others) = (booking_of(buyer), booking_of(Uuid::new_v4()));
    // A service that listed another's booking by mistake must not make `me` show it.
    let listed = booking::ListBookingsResponse { bookings: vec![own.clone(), others.clone()], page: None };
    gateway.backends.booking.answer("list_my_bookings", Ok(listed));
    let by_id = [own.clone(), others.clone()];
    gateway.backends.booking.on("get_booking", move |r: booking::GetBookingRequest| {
        ready(by_id.iter().find(|b| b.id == r.booking_id).cloned().ok_or_else(|| tonic::Status::not_found("no")))
    });
    gateway.backends.notification.on("list_tickets", |r: notification::ListTicketsRequest| {
        let ticket = notification::Ticket {
            id: Uuid::new_v4().to_string(),
            code: format!("code-of-{}", r.booking_id),
            ..Default::default()
        };
        ready(Ok(notification::ListTicketsResponse { tickets: vec![ticket] }))
    });

    let mine = gateway.graphql("{ me { id bookings { items { id status tickets { code } } } } }", Some(&token)).await;
    assert!(mine.body.get("errors").is_none(), "{}", mine.body);
    assert_eq!(mine.body["data"]["me"]["id"], buyer.to_string());
    let items = mine.body["data"]["me"]["bookings"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the caller's own: {items:?}");
    assert_eq!((items[0]["id"].as_str(), items[0]["status"].as_str()), (Some(own.id.as_str()), Some("confirmed")));
    assert_eq!(items[0]["tickets"][0]["code"], format!("code-of-{}", own.id));
    let asked = gateway.backends.notification.requests::<notification::ListTicketsRequest>("list_tickets");
    assert_eq!(asked.iter().map(|r| r.booking_id.as_str()).collect::<Vec<_>>(), [own.id.as_str()]);

    // The event's organizer may read another's booking over REST, but it is not theirs.
    for (token, id) in [(&token, &others.id), (&organizer, &own.id)] {
        let answer = gateway.graphql(&format!(r#"{{ me {{ booking(id: "{id}") {{ id }} }} }}"#), Some(token)).await;
        assert_eq!(codes(&answer), ["NOT_FOUND"], "{}", answer.body);
    }

    let anonymous = gateway.graphql("{ me { bookings { items { id } } } }", None).await;
    assert_eq!((anonymous.status, codes(&anonymous)), (StatusCode::OK, vec!["UNAUTHENTICATED"]), "{}", anonymous.body);
    assert_eq!(anonymous.body["data"]["me"], Value::Null);
    let forged = gateway.graphql("{ me { id } }", Some("not.a.token")).await;
    assert_eq!(codes(&forged), ["UNAUTHENTICATED"], "{}", forged.body);
    assert_eq!(gateway.backends.booking.calls("list_my_bookings"), 1, "refused callers reach no backend");
}

#[tokio::test]
async fn graphql_requests_count_against_the_rate_limits() {
    let gateway = Gateway::start_with(|c| c.gateway.rate_limits.ip = Limit { per_second: 0.01, burst: 2 }).await;
    gateway.backends.catalog.answer("list_events", Ok(catalog::ListEventsResponse::default()));
    // Until the gateway reaches Redis it lets requests through unchecked.
    let refused = ticketing_testkit::eventually("a 429", Duration::from_secs(10), || async {
        let answer = gateway.graphql("{ events { items { id } } }", None).await;
        (answer.status == StatusCode::TOO_MANY_REQUESTS).then_some(answer)
    })
    .await;
    assert_eq!(refused.problem(), "rate-limited");
    assert!(refused.retry_after().is_some());
}

#[tokio::test]
async fn graphiql_is_served_from_here_under_a_self_only_policy() {
    let gateway = Gateway::start().await;
    let page = gateway.call(Method::GET, "/graphql").send().await.expect("the page");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unpkg"), "{csp}");
    let html = page.text().await.unwrap();
    let scripts: Vec<&str> = html.split('"').filter(|p| p.starts_with("/graphql/assets/")).collect();
    assert_eq!(scripts.len(), 5, "{html}");
    for script in scripts {
        let asset = gateway.call(Method::GET, script).send().await.expect("an asset");
        assert_eq!(asset.status(), StatusCode::OK, "{script}");
    }
    let missing = send(gateway.call(Method::GET, "/graphql/assets/nope.js")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graphiqls_files_go_gzipped_to_clients_that_take_gzip_and_plain_to_the_rest() {
    let gateway = Gateway::start().await;
    let vendored = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/graphiql/graphiql.min.js")).unwrap();
    let get = |path: &str, accepted: Option<&'static str>| {
        let request = gateway.call(Method::GET, path);
        let request = match accepted {
            Some(accepted) => request.header("accept-encoding", accepted),
            None => request,
        };
        async move {
            let response = request.send().await.expect("the gateway answers");
            assert_eq!(response.status(), StatusCode::OK, "{accepted:?}");
            let headers = response.headers().clone();
            let vary =
                headers.get_all("vary").iter().any(|v| v.to_str().unwrap().eq_ignore_ascii_case("accept-encoding"));
            assert!(vary, "a cache keeps each coding apart: {headers:?}");
            let body = response.bytes().await.expect("a body");
            assert_eq!(headers["content-length"], body.len().to_string().as_str(), "{accepted:?}");
            (headers.get("content-encoding").map(|e| e.to_str().unwrap().to_owned()), headers, body)
        }
    };
    let inflate = |gz: &[u8]| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut bytes).expect("gzip");
        bytes
    };

    let script = "/graphql/assets/graphiql.min.js";
    let (encoding, headers, gz) = get(script, Some("gzip, br")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert!(gz.len() < vendored.len() / 3, "{} bytes gzipped", gz.len());
    assert!(inflate(&gz) == vendored, "gzipped once, to exactly the vendored file");
    for accepted in [Some("identity"), Some("gzip;q=0, br"), None] {
        let (encoding, headers, plain) = get(script, accepted).await;
        assert_eq!(encoding, None, "{accepted:?}");
        assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
        assert!(plain == vendored, "the vendored file as it is, for {accepted:?}");
    }

    // Swagger UI's, the same way.
    let (encoding, _, gz) = get("/docs/swagger-ui.css", Some("deflate, gzip;q=0.5")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let (encoding, headers, plain) = get("/docs/swagger-ui.css", None).await;
    assert_eq!(encoding, None);
    assert_eq!(headers["content-type"], "text/css; charset=utf-8");
    assert!(plain.starts_with(b".swagger-ui") && inflate(&gz) == plain, "{:?}", &plain[..40]);
}
