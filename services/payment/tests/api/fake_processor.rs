//! A local stand-in for the card processor's HTTP API, shaped like the real one:
//! bearer API key, `Idempotency-Key` dedupe (a repeat gets the first answer, a
//! concurrent repeat `409`), `402` card errors, lookups by key, and signed webhooks.
//!
//! | card | charge |
//! |---|---|
//! | `tok_visa` | succeeds |
//! | `tok_decline` | `402 card_declined` |
//! | `tok_processor_error` | `500` on the first attempt per key, then succeeds |
//! | `tok_slow` | recorded as succeeded at once, answered after the slow delay |
//! | `tok_pending` | `200` with status `pending`; a webhook settles it later |
//!
//! A refund of a `tok_pending` charge is `pending` too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

pub const API_KEY: &str = "sk_test_fake_processor";
pub const WEBHOOK_SECRET: &str = "whsec_fake_processor_secret";

type Answer = (StatusCode, Json<Value>);

#[derive(Default)]
struct Ledger {
    /// Answers by idempotency key, replayed to repeats.
    charges: HashMap<String, (StatusCode, Value)>,
    refunds: HashMap<String, (StatusCode, Value)>,
    in_flight: HashSet<String>,
    failed_once: HashSet<String>,
    /// `(path, idempotency key)` of every POST, in order.
    posts: Vec<(String, String)>,
}

pub struct FakeProcessor {
    pub url: String,
    slow: Duration,
    ledger: Mutex<Ledger>,
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str, charge: Option<&str>) -> (StatusCode, Value) {
    (status, json!({"error": {"type": kind, "code": code, "message": message, "charge": charge}}))
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_KEY}"))
}

/// The idempotency key of an authorized POST, or the refusal.
fn admit(headers: &HeaderMap) -> Result<String, Answer> {
    let refuse = |(status, body): (StatusCode, Value)| (status, Json(body));
    if !authorized(headers) {
        return Err(refuse(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "bad key",
            None,
        )));
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    key.ok_or_else(|| refuse(error(StatusCode::BAD_REQUEST, "invalid_request_error", "missing_key", "no key", None)))
}

impl FakeProcessor {
    /// Serves the fake on a free loopback port; `tok_slow` answers after `slow`.
    pub async fn start(slow: Duration) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Arc::new(Self { url, slow, ledger: Mutex::new(Ledger::default()) });
        let app = Router::new()
            .route("/v1/charges", post(create_charge).get(list_charges))
            .route("/v1/refunds", post(create_refund).get(list_refunds))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    /// Every POST as `(path, idempotency key)`.
    pub fn posts(&self) -> Vec<(String, String)> {
        self.ledger.lock().unwrap().posts.clone()
    }

    /// Charges the processor holds (one per idempotency key).
    pub fn charge_count(&self) -> usize {
        self.ledger.lock().unwrap().charges.values().filter(|(_, body)| body.get("object").is_some()).count()
    }

    /// The charge object made for our payment, as the processor has it.
    pub fn charge_of(&self, payment_id: &str) -> Value {
        let ledger = self.ledger.lock().unwrap();
        ledger
            .charges
            .values()
            .map(|(_, body)| body.clone())
            .find(|body| body["metadata"]["payment_id"] == payment_id)
            .expect("the processor has the charge")
    }

    /// The refund object made for our refund.
    pub fn refund_of(&self, refund_id: &str) -> Value {
        let ledger = self.ledger.lock().unwrap();
        ledger
            .refunds
            .values()
            .map(|(_, body)| body.clone())
            .find(|body| body["metadata"]["refund_id"] == refund_id)
            .expect("the processor has the refund")
    }

    /// A webhook event as the processor would send it, signed at `t` (unix seconds):
    /// `(body, signature header)`.
    pub fn webhook_at(id: &str, kind: &str, object: Value, t: i64) -> (Vec<u8>, String) {
        let body =
            serde_json::to_vec(&json!({"id": id, "type": kind, "created": t, "data": {"object": object}})).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&body);
        (body, format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes())))
    }

    /// Like [`FakeProcessor::webhook_at`], signed now.
    pub fn webhook(id: &str, kind: &str, object: Value) -> (Vec<u8>, String) {
        Self::webhook_at(id, kind, object, now())
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

async fn create_charge(State(fake): State<Arc<FakeProcessor>>, headers: HeaderMap, Json(body): Json<Value>) -> Answer {
    let key = match admit(&headers) {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let token = body["source"].as_str().unwrap_or_default().to_owned();
    let slow = {
        let mut ledger = fake.ledger.lock().unwrap();
        ledger.posts.push(("/v1/charges".into(), key.clone()));
        if let Some((status, body)) = ledger.charges.get(&key) {
            return (*status, Json(body.clone()));
        }
        if !ledger.in_flight.insert(key.clone()) {
            let (status, body) = error(StatusCode::CONFLICT, "idempotency_error", "in_use", "key in use", None);
            return (status, Json(body));
        }
        if token == "tok_processor_error" && ledger.failed_once.insert(key.clone()) {
            ledger.in_flight.remove(&key);
            let (status, body) = error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "processor_error", "boom", None);
            return (status, Json(body));
        }
        let charge_id = id("ch");
        let charge = |status: &str, code: Value| {
            json!({"id": charge_id, "object": "charge", "amount": body["amount"], "currency": body["currency"],
                   "status": status, "failure_code": code, "failure_message": Value::Null,
                   "source": token, "metadata": body["metadata"]})
        };
        let answer = match token.as_str() {
            "tok_visa" | "tok_processor_error" | "tok_slow" => (StatusCode::OK, charge("succeeded", Value::Null)),
            "tok_pending" => (StatusCode::OK, charge("pending", Value::Null)),
            "tok_decline" => {
                // Like a real processor, the failed charge exists too.
                ledger
                    .charges
                    .insert(format!("{key}#failed"), (StatusCode::OK, charge("failed", json!("card_declined"))));
                error(
                    StatusCode::PAYMENT_REQUIRED,
                    "card_error",
                    "card_declined",
                    "Your card was declined.",
                    Some(&charge_id),
                )
            }
            _ => error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_card_token", "No such token.", None),
        };
        // Recorded at once: a slow charge has landed even though its answer is late.
        ledger.charges.insert(key.clone(), answer);
        ledger.in_flight.remove(&key);
        token == "tok_slow"
    };
    if slow {
        tokio::time::sleep(fake.slow).await;
    }
    let (status, body) = fake.ledger.lock().unwrap().charges[&key].clone();
    (status, Json(body))
}

async fn create_refund(State(fake): State<Arc<FakeProcessor>>, headers: HeaderMap, Json(body): Json<Value>) -> Answer {
    let key = match admit(&headers) {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let mut ledger = fake.ledger.lock().unwrap();
    ledger.posts.push(("/v1/refunds".into(), key.clone()));
    if let Some((status, body)) = ledger.refunds.get(&key) {
        return (*status, Json(body.clone()));
    }
    let charge_id = body["charge"].as_str().unwrap_or_default();
    let charge =
        ledger.charges.values().map(|(_, c)| c.clone()).find(|c| c["id"] == charge_id && c["object"] == "charge");
    let answer = match charge {
        None => error(StatusCode::NOT_FOUND, "invalid_request_error", "resource_missing", "No such charge.", None),
        Some(charge) => {
            let refunded: i64 = ledger
                .refunds
                .values()
                .filter(|(_, r)| r["charge"] == charge_id && r["status"] != "failed")
                .map(|(_, r)| r["amount"].as_i64().unwrap_or(0))
                .sum();
            let amount = body["amount"].as_i64().unwrap_or(0);
            if amount + refunded > charge["amount"].as_i64().unwrap_or(0) {
                error(StatusCode::BAD_REQUEST, "invalid_request_error", "amount_too_large", "Too much.", None)
            } else {
                let status = if charge["source"] == "tok_pending" { "pending" } else { "succeeded" };
                (
                    StatusCode::OK,
                    json!({"id": id("re"), "object": "refund", "charge": charge_id, "amount": amount,
                           "currency": charge["currency"], "status": status, "metadata": body["metadata"]}),
                )
            }
        }
    };
    ledger.refunds.insert(key, answer.clone());
    (answer.0, Json(answer.1))
}

#[derive(serde::Deserialize)]
struct ByKey {
    idempotency_key: String,
}

fn list(found: Option<&(StatusCode, Value)>) -> Answer {
    let data: Vec<Value> =
        found.filter(|(status, _)| status.is_success()).map(|(_, body)| body.clone()).into_iter().collect();
    (StatusCode::OK, Json(json!({"object": "list", "data": data})))
}

async fn list_charges(State(fake): State<Arc<FakeProcessor>>, headers: HeaderMap, Query(q): Query<ByKey>) -> Answer {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"message": "bad key"}})));
    }
    let ledger = fake.ledger.lock().unwrap();
    // A declined charge is listed as the failed charge it is.
    list(ledger.charges.get(&format!("{}#failed", q.idempotency_key)).or(ledger.charges.get(&q.idempotency_key)))
}

async fn list_refunds(State(fake): State<Arc<FakeProcessor>>, headers: HeaderMap, Query(q): Query<ByKey>) -> Answer {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"message": "bad key"}})));
    }
    list(fake.ledger.lock().unwrap().refunds.get(&q.idempotency_key))
}
