//! The gateway while a backend dies, stalls and comes back: clients only ever see an
//! answer, a 4xx or a 503 with `Retry-After` (never a 502 or 504 for a backend that is
//! restarting), reads and keyed writes are retried through a short restart, and calls
//! succeed again once it is back.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use ticketing_testkit::eventually_every;

use crate::harness::{Options, Platform};
use crate::http::{Http, account};
use crate::proxy::Phase;

/// The calls a client keeps making to booking: a read, a keyed write and an unkeyed write
/// (both refused with 404 while booking is up: the hold does not exist).
async fn calls(http: &Http, token: &str) -> Vec<(String, StatusCode, Option<String>)> {
    let hold = json!({ "hold_id": "ab".repeat(32) });
    let key = uuid::Uuid::new_v4().to_string();
    let mut answers = Vec::new();
    for (what, method, path, body, key) in [
        ("list", Method::GET, "/v1/bookings", None, None),
        ("keyed create", Method::POST, "/v1/bookings", Some(hold.clone()), Some(key.as_str())),
        ("unkeyed create", Method::POST, "/v1/bookings", Some(hold), None),
    ] {
        let (status, headers, _) = http.call(method, path, Some(token), body, key).await;
        let retry_after = headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        answers.push((what.to_owned(), status, retry_after));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_stopped_and_restarted_gets_503s_with_retry_after_never_502_or_504() {
    let p = Platform::start(Options {
        proxied: Some("booking"),
        gateway: |g| {
            g.backend_timeout = Duration::from_secs(1);
            // The clients below call as fast as they can; this test is not about the limiter.
            g.rate_limits.enabled = false;
            g.circuit_breaker.cool_down = Duration::from_millis(500);
            // The short restart below must not open it: that read is to be retried through.
            g.circuit_breaker.consecutive_failures = 20;
        },
        ..Options::default()
    })
    .await;
    let proxy = p.proxy.as_ref().expect("booking behind a proxy");
    let http = Http::new(&p);
    let token = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    for (what, status, _) in calls(&http, &token).await {
        assert!(matches!(status.as_u16(), 200 | 404), "{what} while booking is up: {status}");
    }

    // A restart shorter than the deadline: the read is retried through it and answers.
    proxy.set(Phase::Down);
    let read = tokio::spawn({
        let http = Http::new(&p);
        let token = token.clone();
        async move { http.call(Method::GET, "/v1/bookings", Some(&token), None, None).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set(Phase::Up);
    assert_eq!(read.await.unwrap(), StatusCode::OK, "a read retried through a short restart");

    // Clients keep calling while booking is killed, restarted, stopped past the deadline,
    // and killed while stopped (the calls on its connections reset under them).
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let http = Http::new(&p);
            let token = token.clone();
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(7);
                let mut seen = Vec::new();
                while Instant::now() < until {
                    seen.extend(calls(&http, &token).await);
                }
                seen
            })
        })
        .collect();
    for (phase, hold) in [
        (Phase::Up, 500),
        (Phase::Down, 1500),
        (Phase::Up, 1000),
        (Phase::Stopped, 1500),
        (Phase::Up, 1000),
        (Phase::Stopped, 300),
        (Phase::Down, 1000),
        (Phase::Up, 0),
    ] {
        proxy.set(phase);
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }
    let mut unavailable = 0;
    for client in clients {
        for (what, status, retry_after) in client.await.unwrap() {
            match status.as_u16() {
                200 | 404 => {}
                503 => {
                    let after: u64 = retry_after.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
                    assert!(after >= 1, "{what}: a 503 without Retry-After");
                    unavailable += 1;
                }
                other => panic!("{what}: {other} while booking restarted"),
            }
        }
    }
    assert!(unavailable > 0, "the clients never met the outages");

    // Back: every call answers again once the breaker lets calls through.
    eventually_every("booking to serve again", Duration::from_secs(10), Duration::from_millis(100), || async {
        let answers = calls(&http, &token).await;
        let served = answers.iter().all(|(_, status, _)| matches!(status.as_u16(), 200 | 404));
        if served { Ok(()) } else { Err(format!("{answers:?}")) }
    })
    .await;
}
