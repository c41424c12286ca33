//! The gateway's edge against clients that cost it dearly (issue 16): seat-map imports
//! refused before their body is read and bounded per replica, slow headers and bodies cut
//! off, the large public answers served from a snapshot (one backend call for a crowd,
//! `ETag`, 304, gzip, a tighter rate limit), and breakers that one client's slow calls do
//! not open.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use ticketing_proto::identity::v1::Role;

use crate::harness::{Options, Platform};
use crate::http::Http;
use crate::proxy::Phase;

/// How long a test waits for an answer that must come at once, or a deadline of one second.
const GUARD: Duration = Duration::from_secs(15);

/// A connection to the gateway on which `head` (a request line and headers) was sent.
async fn send_head(http: &Http, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(http.base.trim_start_matches("http://")).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("send the head");
    stream
}

/// Reads until the gateway closes the connection or has sent a whole answer's head and
/// `Content-Length` bytes of body; `None` when nothing came within [`GUARD`].
async fn answer(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut bytes = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            bytes.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if n == 0 || complete(&text) {
                return text;
            }
        }
    };
    let text = tokio::time::timeout(GUARD, read).await.ok()?;
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((status, text))
}

/// A whole HTTP/1.1 answer: its head and as many body bytes as it announced.
fn complete(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    body.len() >= length
}

fn seat_map_head(venue: &str, token: Option<&str>, length: usize) -> String {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!(
        "PUT /v1/venues/{venue}/seatmap HTTP/1.1\r\nHost: gateway\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

/// How long the seat-map test's gateway waits for a body: long enough to see a slow import
/// hold the slot, short enough to wait for its 408.
const BODY_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_map_imports_are_refused_before_the_body_and_bounded_and_slow_clients_cut_off() {
    let p = Platform::start(Options {
        gateway: |g| {
            g.max_seat_map_imports = 1;
            g.header_read_timeout = Duration::from_secs(1);
            g.body_read_timeout = BODY_DEADLINE;
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let body = json!({"name": "Hall", "city": "Berlin", "country_code": "DE", "time_zone": "Europe/Berlin"});
    let venue = http.ok(Method::POST, "/v1/venues", Some(&organizer.token), Some(body), None).await;
    let venue = venue["id"].as_str().expect("a venue id").to_owned();

    // 10 MB announced, none sent: a buyer and an anonymous caller are refused at once,
    // which they could not be if the gateway waited for the body first.
    for (token, status) in [(Some(buyer.token.as_str()), 403), (None, 401)] {
        let mut stream = send_head(&http, &seat_map_head(&venue, token, 10_000_000)).await;
        let (got, text) = answer(&mut stream).await.expect("refused without the body being read");
        assert_eq!(got, status, "{text}");
        assert!(text.to_ascii_lowercase().contains("content-type: application/problem+json"), "{text}");
    }

    // An organizer's import whose body is slow holds the replica's one import slot …
    let path = format!("/v1/venues/{venue}/seatmap");
    let small = json!({"general_admission_areas": [{"name": "Floor", "capacity": 100}]});
    let import = || http.call(Method::PUT, &path, Some(&organizer.token), Some(small.clone()), None);
    // The slot is held only until the slow body's deadline; on a loaded machine the probes
    // may miss that window (an import that won the race to the slot can take longer than
    // it), so a missed window is tried again with a new slow import.
    let mut windows = 0;
    let (mut slow, headers, problem) = loop {
        windows += 1;
        assert!(windows <= 5, "no import was refused for want of a slot in {} windows", windows - 1);
        let opened = tokio::time::Instant::now();
        let mut slow = send_head(&http, &seat_map_head(&venue, Some(&organizer.token), 1000)).await;
        slow.write_all(b"{\"sections\": [").await.expect("part of the body");
        let refused = loop {
            let (status, headers, problem) = import().await;
            match status {
                StatusCode::SERVICE_UNAVAILABLE => break Some((headers, problem)),
                StatusCode::OK if opened.elapsed() < BODY_DEADLINE => tokio::time::sleep(ticketing_testkit::POLL).await,
                StatusCode::OK => break None,
                other => panic!("an import answered {other}: {problem}"),
            }
        };
        if let Some((headers, problem)) = refused {
            break (slow, headers, problem);
        }
    };
    assert_eq!(problem["type"], "https://ticketing.dev/problems/unavailable", "{problem}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    // … until its body is past the deadline: a 408, and the slot is free again.
    let (status, text) = answer(&mut slow).await.expect("the slow body is cut off");
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("https://ticketing.dev/problems/request-timeout"), "{text}");
    ticketing_testkit::eventually("an import after the slot came free", GUARD, || async {
        (import().await.0 == StatusCode::OK).then_some(())
    })
    .await;

    // Headers that never end: the connection is closed.
    let mut stream = send_head(&http, "GET /v1/events HTTP/1.1\r\nHost: gateway\r\nX-Slow: 1\r\n").await;
    assert!(answer(&mut stream).await.is_some(), "a connection whose headers never end is closed");
}

/// `name{labels}` from the gateway's metrics, 0 when absent.
async fn metric(p: &Platform, series: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", p.gateway_admin)).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_gets_the_large_answers_from_one_snapshot_with_etags_gzip_and_a_tighter_limit() {
    const HEAVY_BURST: u32 = 24;
    let p = Platform::start(Options {
        gateway: |g| {
            g.snapshot_ttl = Duration::from_secs(60);
            g.rate_limits.heavy = ticketing_gateway::config::Limit { per_second: 0.001, burst: HEAVY_BURST };
            // Checked every time, even on a loaded machine (the limiter fails open when slow).
            g.rate_limits.redis_timeout = Duration::from_secs(1);
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 4, 6_000).await;
    let light = format!("/v1/events/{}/availability", event.id);
    // Inventory learns of the event through Kafka.
    http.wait_for(&light, &organizer.token, |a| a["categories"].as_array().is_some_and(|c| c.len() == 2)).await;

    let seats = format!("{light}?seats=true");
    let crowd = (0..20).map(|_| http.call(Method::GET, &seats, None, None, None));
    let answers = futures::future::join_all(crowd).await;
    let etag = answers[0].1.get("etag").expect("an ETag").to_str().unwrap().to_owned();
    for (status, headers, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(headers["etag"], etag.as_str());
        assert_eq!(body["seats"].as_array().map(Vec::len), Some(4), "{body}");
    }
    let loads = metric(&p, "gateway_snapshot_loads_total{kind=\"availability\",service=\"gateway\"}").await;
    assert_eq!(loads, 1.0, "twenty requests, one backend call");

    let response =
        http.client.get(format!("{}{seats}", http.base)).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());

    let plain = http.client.get(format!("{}{seats}", http.base)).send().await.unwrap().bytes().await.unwrap();
    let gzipped =
        http.client.get(format!("{}{seats}", http.base)).header("Accept-Encoding", "gzip").send().await.unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert!(gzipped.bytes().await.unwrap().len() < plain.len(), "compressed");

    let venue = http.ok(Method::GET, &format!("/v1/events/{}", event.id), None, None, None).await;
    let venue = format!("/v1/venues/{}?seat_map=true", venue["venue_id"].as_str().expect("a venue id"));
    let (status, headers, map) = http.call(Method::GET, &venue, None, None, None).await;
    assert_eq!(status, StatusCode::OK, "{map}");
    assert!(map["seat_map"]["sections"].is_array() && headers.contains_key("etag"), "{headers:?} {map}");

    // 24 large answers asked so far: the next is over the limit, the small one is not.
    let (status, headers, problem) = http.call(Method::GET, &seats, None, None, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(http.call(Method::GET, &light, None, None, None).await.0, StatusCode::OK);
}

async fn breaker_state(p: &Platform, backend: &str) -> f64 {
    metric(p, &format!("gateway_circuit_breaker_state{{backend=\"{backend}\",service=\"gateway\"}}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_a_client_chose_do_not_open_a_breaker_but_slow_cheap_ones_do() {
    let p = Platform::start(Options {
        proxied: Some("catalog"),
        gateway: |g| {
            g.backend_timeout = Duration::from_secs(1);
            g.circuit_breaker.consecutive_failures = 2;
            g.circuit_breaker.cool_down = Duration::from_secs(60);
        },
        ..Options::default()
    })
    .await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let body = json!({"name": "Arena", "city": "Lyon", "country_code": "FR", "time_zone": "Europe/Paris"});
    let venue = http.ok(Method::POST, "/v1/venues", Some(&organizer.token), Some(body), None).await;
    let import = format!("/v1/venues/{}/seatmap", venue["id"].as_str().expect("a venue id"));

    // Catalog stops answering: every import runs out of time, and says nothing of catalog.
    p.proxy.as_ref().expect("a proxy").set(Phase::Stopped);
    let map = json!({"general_admission_areas": [{"name": "Floor", "capacity": 100}]});
    for _ in 0..4 {
        let (status, _, problem) =
            http.call(Method::PUT, &import, Some(&organizer.token), Some(map.clone()), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    }
    assert_eq!(breaker_state(&p, "catalog").await, 0.0, "an organizer's slow imports leave the breaker closed");

    // A cheap read that runs out of time does say something: the breaker opens.
    let event = format!("/v1/events/{}", uuid::Uuid::new_v4());
    for _ in 0..2 {
        assert_eq!(http.call(Method::GET, &event, None, None, None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(breaker_state(&p, "catalog").await, 2.0, "open");
}
