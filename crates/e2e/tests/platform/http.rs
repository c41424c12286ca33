//! Speaking HTTP to the gateway, as clients do.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_testkit::eventually_every;

use crate::harness::Platform;

pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
    /// Where the platform's emails arrive.
    pub smtp: std::sync::Arc<ticketing_testkit::smtp::SmtpSink>,
}

impl Http {
    pub fn new(p: &Platform) -> Self {
        // No pooled connections: after a 413 the server closes the connection while the
        // client may still be writing, and a reused connection would then fail the next call.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("an HTTP client");
        Self { base: p.http.clone(), client, smtp: p.smtp.clone() }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the gateway answers");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap_or_default();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Value {
        let (status, _, value) = self.call(method.clone(), path, token, body, key).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    /// Polls `GET path` until `done` holds for the answer.
    pub async fn wait_for(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let what = format!("GET {path} to get there");
        eventually_every(&what, Duration::from_secs(60), Duration::from_millis(100), || async {
            let (status, _, value) = self.call(Method::GET, path, Some(token), None, None).await;
            if status.is_success() && done(&value) { Ok(value) } else { Err(format!("{status} {value}")) }
        })
        .await
    }
}

/// Registers through the gateway, verifies the email with the link it was sent, and logs
/// in; returns the access token.
pub async fn account(http: &Http, email: &str) -> String {
    let password = "a-long-enough-passphrase";
    let body = json!({"email": email, "password": password, "display_name": "Fan"});
    let (status, _, accepted) = http.call(Method::POST, "/v1/auth/register", None, Some(body), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let token = verification_token(http, email).await;
    let (status, _, answer) =
        http.call(Method::POST, "/v1/auth/verify-email", None, Some(json!({"token": token})), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let tokens =
        http.ok(Method::POST, "/v1/auth/login", None, Some(json!({"email": email, "password": password})), None).await;
    assert_eq!(tokens["token_type"], "Bearer");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The token of the newest verification email to `email`, once it arrived.
pub async fn verification_token(http: &Http, email: &str) -> String {
    const CODE: &str = "Or enter this code in the app: ";
    let what = format!("a verification email to {email}");
    eventually_every(&what, Duration::from_secs(60), Duration::from_millis(50), || async {
        let emails = ticketing_testkit::smtp::emails_to(&http.smtp, email);
        let token = emails.iter().rev().find_map(|e| e.text.lines().find_map(|l| l.strip_prefix(CODE)));
        token.map(|token| token.trim().to_owned())
    })
    .await
}

/// A string field of `value`.
pub fn path_of(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("no {field} in {value}")).to_owned()
}

/// Holds `selection` of `event` (retrying while inventory has no stock yet), books it and
/// pays with `tok_visa`; returns the booking id and the payment.
pub async fn buy(http: &Http, token: &str, event: &str, selection: Value) -> (String, Value) {
    buy_with(http, token, event, selection, "tok_visa").await
}

/// [`buy`], paying with `card`.
pub async fn buy_with(http: &Http, token: &str, event: &str, selection: Value, card: &str) -> (String, Value) {
    let path = format!("/v1/events/{event}/holds");
    let key = format!("hold-{}", ticketing_testkit::unique());
    let hold = eventually_every("a hold", Duration::from_secs(60), Duration::from_millis(200), || async {
        let (status, _, hold) = http.call(Method::POST, &path, Some(token), Some(selection.clone()), Some(&key)).await;
        match status {
            StatusCode::CREATED => Ok(hold),
            // Inventory learns of the event through Kafka, and holds wait for the sale window.
            StatusCode::NOT_FOUND | StatusCode::CONFLICT => Err(format!("hold: {status} {hold}")),
            _ => panic!("hold: {status} {hold}"),
        }
    })
    .await;
    let body = json!({"hold_id": hold["id"]});
    let (status, _, booking) = http.call(Method::POST, "/v1/bookings", Some(token), Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let id = path_of(&booking, "id");
    let pay = json!({"card_token": card});
    let paid = http.ok(Method::POST, &format!("/v1/bookings/{id}/payment"), Some(token), Some(pay), Some(&id)).await;
    (id, paid)
}
