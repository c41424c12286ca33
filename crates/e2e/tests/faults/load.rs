//! Purchase load through the gateway, as buyers' apps make it: each worker loops hold →
//! book → pay with `tok_visa` → read the booking, over keep-alive HTTP, retrying a step with
//! the same `Idempotency-Key` when told to wait (503, 429 or 409 with `Retry-After`).
//! Every answer is counted, and every one a buyer must never see is kept as a violation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::platform::Shop;

/// Longest a buyer keeps retrying one step before abandoning the purchase.
const STEP_PATIENCE: Duration = Duration::from_secs(60);
/// Longest a buyer waits before retrying, whatever `Retry-After` says.
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// Pause between a buyer's purchases.
const THINK: Duration = Duration::from_millis(100);

/// A payment the gateway answered `succeeded`.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub booking: String,
    pub payment: String,
    pub at: Instant,
}

/// What the buyers saw.
#[derive(Default)]
pub struct Seen {
    /// `"<step> <status>"` → how many, e.g. `"pay 200"`, `"book 503"`, `"hold error: connect"`.
    pub statuses: BTreeMap<String, u64>,
    pub accepted: Vec<Accepted>,
    /// Answers no buyer may see: any 5xx but 503, a 503 without `Retry-After`, no answer at all.
    pub violations: Vec<String>,
    /// Purchases given up: refused (4xx) or still failing after the step's patience.
    pub abandoned: u64,
    /// The first problem (`title: detail`) of each outcome but a 2xx.
    pub problems: BTreeMap<String, String>,
}

/// The buyers at work.
pub struct Load {
    record: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` buyers' apps against the gateway at `base`; worker `w` buys as buyers
    /// `w`, `w + workers`, … in turn, so no buyer nears the per-user limit.
    pub fn start(base: &str, shop: &Shop, workers: usize, t0: Instant) -> Self {
        let record = Arc::new(Mutex::new(Seen::default()));
        let stop = CancellationToken::new();
        let shop = Arc::new(shop.clone());
        let workers = (0..workers)
            .map(|w| {
                let buyer = Buyer {
                    http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client"),
                    base: base.to_owned(),
                    record: record.clone(),
                    stop: stop.clone(),
                    t0,
                };
                let shop = shop.clone();
                tokio::spawn(async move {
                    let mine: Vec<&str> =
                        shop.buyers.iter().skip(w).step_by(workers).map(|b| b.token.as_str()).collect();
                    for token in mine.iter().cycle() {
                        if buyer.stop.is_cancelled() {
                            return;
                        }
                        buyer.purchase(token, &shop.event, &shop.category).await;
                        tokio::time::sleep(THINK).await;
                    }
                })
            })
            .collect();
        Self { record, stop, workers }
    }

    /// Payments accepted so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.record.lock().unwrap().accepted.clone()
    }

    /// Waits until `n` payments were accepted after `since`, or `within` passed; returns when
    /// the first was accepted and how many there were.
    pub async fn wait_accepted_after(&self, since: Instant, n: usize, within: Duration) -> (Option<Instant>, usize) {
        let deadline = Instant::now() + within;
        loop {
            let after: Vec<Instant> = self.accepted().iter().map(|a| a.at).filter(|at| *at >= since).collect();
            if after.len() >= n || Instant::now() >= deadline {
                return (after.iter().min().copied(), after.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the buyers (each abandons its purchase at the next answer) and returns what they saw.
    pub async fn stop(self) -> Seen {
        self.stop.cancel();
        for worker in self.workers {
            worker.await.expect("a buyer panicked");
        }
        std::mem::take(&mut *self.record.lock().unwrap())
    }
}

struct Buyer {
    http: reqwest::Client,
    base: String,
    record: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    t0: Instant,
}

impl Buyer {
    async fn purchase(&self, token: &str, event: &str, category: &str) {
        let key = ticketing_testkit::unique();
        let body = json!({"category_id": category, "quantity": 1});
        let path = format!("/v1/events/{event}/holds");
        let Some(hold) = self.step("hold", Method::POST, &path, token, Some(body), &format!("hold-{key}")).await else {
            return;
        };
        let body = json!({"hold_id": hold["id"]});
        let Some(booking) =
            self.step("book", Method::POST, "/v1/bookings", token, Some(body), &format!("book-{key}")).await
        else {
            return;
        };
        let booking = booking["id"].as_str().expect("a created booking has an id");
        let body = json!({"card_token": "tok_visa"});
        let path = format!("/v1/bookings/{booking}/payment");
        let Some(paid) = self.step("pay", Method::POST, &path, token, Some(body), &format!("pay-{key}")).await else {
            return;
        };
        if paid["status"] == "succeeded" {
            let payment = paid["id"].as_str().unwrap_or_default().to_owned();
            let accepted = Accepted { booking: booking.to_owned(), payment, at: Instant::now() };
            self.record.lock().unwrap().accepted.push(accepted);
        } else {
            self.count(format!("pay {}", paid["status"].as_str().unwrap_or("?")));
        }
        // The buyer's app shows the booking once: a read through the gateway during the fault.
        self.send("read", Method::GET, &format!("/v1/bookings/{booking}"), token, None, None).await;
    }

    /// One step, retried with the same key while the platform asks the buyer to wait or
    /// fails in a way it must not; `None` when the purchase is abandoned.
    async fn step(
        &self,
        name: &str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        key: &str,
    ) -> Option<Value> {
        let started = Instant::now();
        loop {
            let (status, answer) = self.send(name, method.clone(), path, token, body.clone(), Some(key)).await;
            let pause = match (status, answer.retry_after) {
                (Some(status), _) if status.is_success() => return Some(answer.body),
                (Some(status), Some(after)) if asks_to_wait(status) => after,
                // A refusal (sold out, over the limit, expired): the buyer gives up on it.
                (Some(status), _) if status.is_client_error() => {
                    self.record.lock().unwrap().abandoned += 1;
                    return None;
                }
                // Already a violation (see `send`); the buyer tries again, as apps do.
                _ => Duration::from_secs(1),
            };
            if self.stop.is_cancelled() || started.elapsed() > STEP_PATIENCE {
                self.record.lock().unwrap().abandoned += 1;
                return None;
            }
            tokio::time::sleep(pause.min(MAX_PAUSE)).await;
        }
    }

    /// Sends one request of `step`, counts its answer and keeps it as a violation when no
    /// buyer may see it; the status (none when the gateway did not answer) and the answer.
    async fn send(
        &self,
        step: &str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (Option<StatusCode>, Answer) {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, answer) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = response.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                (Some(status), Answer { retry_after, body })
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "error"
                };
                (None, Answer { retry_after: None, body: Value::String(format!("error: {kind}")) })
            }
        };
        let seen =
            status.map_or_else(|| answer.body.as_str().unwrap_or_default().to_owned(), |s| s.as_u16().to_string());
        let outcome = format!("{step} {seen}");
        self.count(outcome.clone());
        if !status.is_some_and(|s| s.is_success()) {
            let problem = match (answer.body["title"].as_str(), answer.body["detail"].as_str()) {
                (Some(title), Some(detail)) => format!("{title}: {detail}"),
                _ => answer.body.to_string(),
            };
            self.record.lock().unwrap().problems.entry(outcome).or_insert(problem);
        }
        let fine = status.is_some_and(|s| !s.is_server_error() || (asks_to_wait(s) && answer.retry_after.is_some()));
        if !fine {
            let mut body = answer.body.to_string();
            body.truncate(300);
            self.violation(format!(
                "+{:.1}s {step} {method} {path}: {seen} (Retry-After: {:?}) {body}",
                self.t0.elapsed().as_secs_f64(),
                answer.retry_after
            ));
        }
        (status, answer)
    }

    fn count(&self, outcome: String) {
        *self.record.lock().unwrap().statuses.entry(outcome).or_default() += 1;
    }

    fn violation(&self, what: String) {
        self.record.lock().unwrap().violations.push(what);
    }
}

struct Answer {
    retry_after: Option<Duration>,
    body: Value,
}

/// The statuses that tell a buyer to come back after `Retry-After`: overloaded or
/// restarting (503), rate-limited (429), the same key still in progress (409).
fn asks_to_wait(status: StatusCode) -> bool {
    matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS | StatusCode::CONFLICT)
}
