//! The waiting room, over HTTP: early joiners shuffled at opening, later ones first in first
//! out, admission at the event's rate, and admission passes that are required, bound to their
//! buyer, single-use and short-lived.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::identity::v1::Role;

use crate::harness::{Options, Platform, Sale, User};
use crate::http::Http;

/// `POST /v1/events/{event}/holds` of `body`, with the pass and the idempotency key given.
async fn hold(
    http: &Http,
    event: &str,
    user: &User,
    body: Value,
    pass: Option<&str>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request =
        http.client.post(format!("{}/v1/events/{event}/holds", http.base)).bearer_auth(&user.token).json(&body);
    if let Some(pass) = pass {
        request = request.header("Admission-Pass", pass);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The last segment of a problem's `type`.
fn kind(problem: &Value) -> &str {
    problem["type"].as_str().and_then(|t| t.rsplit('/').next()).unwrap_or_default()
}

async fn join(http: &Http, event: &str, user: &User) -> (StatusCode, Value) {
    let (status, _, body) =
        http.call(Method::POST, &format!("/v1/events/{event}/queue"), Some(&user.token), None, None).await;
    (status, body)
}

async fn look(http: &Http, event: &str, user: &User, ticket: &Value) -> Value {
    let path = format!("/v1/events/{event}/queue/{}", ticket.as_str().unwrap());
    http.ok(Method::GET, &path, Some(&user.token), None, None).await
}

/// Seconds since the Unix epoch, as the gateway's clock reads them.
fn now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_joiners_are_shuffled_at_opening_later_ones_queue_in_order_and_admission_keeps_the_rate() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let rate = 120; // two a second
    let sale = Sale { opens_in: Some(Duration::from_secs(3600)), waiting_room: Some(rate), ..Sale::default() };
    let event = p.event_with(&organizer, 100, 2, 1_000, sale).await;
    let http = Http::new(&p);
    let buyers = futures::future::join_all((0..33).map(|_| p.user(Role::User))).await;
    let (early, late) = buyers.split_at(30);

    let mut tickets = Vec::new();
    for buyer in early {
        let (status, place) = join(&http, &event.id, buyer).await;
        assert_eq!(status, StatusCode::CREATED, "{place}");
        assert_eq!(place["status"], "waiting", "{place}");
        assert!(place.get("position").is_none(), "no position before opening: {place}");
        assert!(place["estimated_wait_seconds"].as_u64().unwrap() > 3000, "waits for the opening: {place}");
        tickets.push(place["ticket"].clone());
    }
    let (status, again) = join(&http, &event.id, &early[0]).await;
    assert_eq!((status, &again["ticket"]), (StatusCode::OK, &tickets[0]), "joining twice gives the same ticket");
    let path = format!("/v1/events/{}/queue/{}", event.id, tickets[0].as_str().unwrap());
    let (status, _, problem) = http.call(Method::GET, &path, Some(&early[1].token), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the ticket's owner may look: {problem}");

    // The organizer opens the sale two seconds from now (the gateway caches the setting for 200 ms).
    let shown = http.ok(Method::GET, &format!("/v1/events/{}", event.id), None, None, None).await;
    assert_eq!(shown["waiting_room"], json!({"enabled": true, "admission_per_minute": rate}));
    let start = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
    let opens_at = start.timestamp_micros() as f64 / 1e6;
    let patch = json!({"sale_starts_at": start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)});
    let moved =
        http.ok(Method::PATCH, &format!("/v1/events/{}", event.id), Some(&organizer.token), Some(patch), None).await;
    assert_eq!(moved["waiting_room"]["admission_per_minute"], rate);
    let place = look(&http, &event.id, &early[0], &tickets[0]).await;
    assert_eq!(place["status"], "waiting");
    tokio::time::sleep(Duration::from_secs_f64((opens_at + 1.0 - now()).max(0.0))).await;

    // About a second after opening: positions 1..=3 may be in, everyone else waits their turn.
    let before = now() - opens_at;
    let mut places = Vec::new();
    for (buyer, ticket) in early.iter().zip(&tickets) {
        places.push(look(&http, &event.id, buyer, ticket).await);
    }
    let after = now() - opens_at;
    let admitted = |elapsed: f64| 1 + (elapsed * f64::from(rate) / 60.0).floor() as u64;
    let positions: Vec<u64> = places.iter().map(|p| p["position"].as_u64().expect("a position")).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=30).collect::<Vec<_>>(), "every early joiner has a distinct position 1..30");
    assert_ne!(positions, sorted, "the early joiners were not shuffled: they kept their join order");
    for (place, &position) in places.iter().zip(&positions) {
        match place["status"].as_str().unwrap() {
            "admitted" => {
                assert!(position <= admitted(after), "{position} admitted too early: {place}");
                assert!(place["admission_pass"].is_string(), "{place}");
            }
            "queued" => {
                assert!(position > admitted(before), "{position} should be in by now: {place}");
                let wait = place["estimated_wait_seconds"].as_f64().unwrap();
                let turn = (position - 1) as f64 * 60.0 / f64::from(rate);
                assert!(wait >= (turn - after).floor() && wait <= (turn - before).ceil(), "{position}: {place}");
            }
            other => panic!("{position} is {other}: {place}"),
        }
    }
    let inside = places.iter().filter(|p| p["status"] == "admitted").count() as u64;
    assert!((1..=admitted(after)).contains(&inside), "{inside} admitted {after:.2}s after opening");

    // Later joiners queue behind the early ones, in the order they came.
    for (n, buyer) in late.iter().enumerate() {
        let (status, place) = join(&http, &event.id, buyer).await;
        assert_eq!(status, StatusCode::CREATED, "{place}");
        assert_eq!((place["status"].as_str(), place["position"].as_u64()), (Some("queued"), Some(31 + n as u64)));
    }

    // Position 5's turn comes two seconds after opening, and with it its pass.
    let fifth = positions.iter().position(|&p| p == 5).unwrap();
    tokio::time::sleep(Duration::from_secs_f64((opens_at + 2.1 - now()).max(0.0))).await;
    let place = look(&http, &event.id, &early[fifth], &tickets[fifth]).await;
    assert_eq!((place["status"].as_str(), place["estimated_wait_seconds"].as_u64()), (Some("admitted"), Some(0)));
    assert!(place["admission_pass"].as_str().is_some_and(|p| p.split('.').count() == 3), "a JWT: {place}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_in_on_sale_mode_need_the_buyers_own_unused_unexpired_pass() {
    let pass_ttl = Duration::from_secs(5);
    let p = Platform::start(Options { pass_ttl, ..Options::default() }).await;
    let organizer = p.user(Role::Organizer).await;
    // Opened a minute ago at a thousand a second: whoever joins now is admitted at once.
    let queued = p.event_with(&organizer, 100, 2, 1_000, Sale { waiting_room: Some(60_000), ..Sale::default() }).await;
    let open = p.event(&organizer, 100, 2, 1_000).await;
    let http = Http::new(&p);
    let (buyer, other, slow) = (p.user(Role::User).await, p.user(Role::User).await, p.user(Role::User).await);
    let one = |category: &str| json!({"category_id": category, "quantity": 1});

    let (status, held) = hold(&http, &open.id, &buyer, one(&open.ga), None, None).await;
    assert_eq!(status, StatusCode::CREATED, "an event without a waiting room needs no pass: {held}");
    let (status, problem) = join(&http, &open.id, &buyer).await;
    assert_eq!((status, kind(&problem)), (StatusCode::CONFLICT, "no-waiting-room"), "{problem}");

    let (status, problem) = hold(&http, &queued.id, &buyer, one(&queued.ga), None, None).await;
    assert_eq!((status, kind(&problem)), (StatusCode::FORBIDDEN, "admission-pass-required"), "{problem}");
    assert_eq!(problem["queue_url"], format!("/v1/events/{}/queue", queued.id));

    let (status, place) = join(&http, &queued.id, &buyer).await;
    assert_eq!((status, place["status"].as_str()), (StatusCode::CREATED, Some("admitted")), "{place}");
    let pass = place["admission_pass"].as_str().unwrap().to_owned();
    let (status, _, problem) = http
        .call(
            Method::GET,
            &format!("/v1/events/{}/queue/{}", queued.id, place["ticket"].as_str().unwrap()),
            Some(&other.token),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another buyer's ticket: {problem}");

    let (status, problem) = hold(&http, &queued.id, &other, one(&queued.ga), Some(&pass), None).await;
    assert_eq!(
        (status, kind(&problem)),
        (StatusCode::FORBIDDEN, "admission-pass-invalid"),
        "another buyer's pass: {problem}"
    );
    let (status, problem) = hold(&http, &open.id, &buyer, one(&open.ga), Some("not.a.pass"), None).await;
    assert_eq!(status, StatusCode::CREATED, "a pass is ignored where none is needed: {problem}");
    let (status, problem) = hold(&http, &queued.id, &buyer, one(&queued.ga), Some("not.a.pass"), None).await;
    assert_eq!((status, kind(&problem)), (StatusCode::FORBIDDEN, "admission-pass-invalid"), "{problem}");

    let (status, first) = hold(&http, &queued.id, &buyer, one(&queued.ga), Some(&pass), Some("hold-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, replay) = hold(&http, &queued.id, &buyer, one(&queued.ga), Some(&pass), Some("hold-1")).await;
    assert_eq!(
        (status, &replay["id"]),
        (StatusCode::CREATED, &first["id"]),
        "an idempotent replay is not a second use"
    );
    let (status, problem) = hold(&http, &queued.id, &buyer, one(&queued.ga), Some(&pass), Some("hold-2")).await;
    assert_eq!((status, kind(&problem)), (StatusCode::CONFLICT, "admission-pass-used"), "{problem}");
    let (status, problem) = hold(&http, &queued.id, &buyer, one(&queued.ga), Some(&pass), None).await;
    assert_eq!((status, kind(&problem)), (StatusCode::CONFLICT, "admission-pass-used"), "{problem}");

    // A hold that fails (over the per-user limit) gives the pass back for another try.
    let (_, place) = join(&http, &queued.id, &other).await;
    let pass = place["admission_pass"].as_str().expect("admitted").to_owned();
    let too_many = json!({"category_id": queued.ga, "quantity": 7});
    let (status, problem) = hold(&http, &queued.id, &other, too_many, Some(&pass), None).await;
    assert!(status.is_client_error(), "{status} {problem}");
    let (status, held) = hold(&http, &queued.id, &other, one(&queued.ga), Some(&pass), None).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");

    // A pass unused until it expires is refused, and the ticket says so.
    let (_, place) = join(&http, &queued.id, &slow).await;
    let pass = place["admission_pass"].as_str().expect("admitted").to_owned();
    let ticket = place["ticket"].clone();
    tokio::time::sleep(pass_ttl + Duration::from_millis(1_100)).await;
    let (status, problem) = hold(&http, &queued.id, &slow, one(&queued.ga), Some(&pass), None).await;
    assert_eq!((status, kind(&problem)), (StatusCode::FORBIDDEN, "admission-pass-expired"), "{problem}");
    let place = look(&http, &queued.id, &slow, &ticket).await;
    assert_eq!(place["status"], "expired", "{place}");
    assert!(place.get("admission_pass").is_none(), "{place}");
}
