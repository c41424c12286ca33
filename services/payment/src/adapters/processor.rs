//! The processor-shaped provider: a Stripe-like HTTP API and its signed webhooks.
//!
//! - `POST /v1/charges` (JSON `amount`, `currency`, `source`, `metadata`) and
//!   `POST /v1/refunds` (`charge`, `amount`, `metadata`), each with an
//!   `Idempotency-Key` header: the processor answers a repeated key with the first
//!   result, so a retry never charges twice;
//! - `GET /v1/charges?idempotency_key=…` and `GET /v1/refunds?idempotency_key=…` list
//!   what was made under a key (how reconciliation learns an unknown outcome);
//! - every call carries `Authorization: Bearer <api key>`;
//! - a card refusal is `402` with `{"error": {"code", "message", "charge"}}`; `409`
//!   (the key is in use by a concurrent request), `429` and `5xx` are worth a retry.
//!
//! Webhooks are `{"id", "type", "created", "data": {"object": …}}` with a signature
//! header `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (several `v1` during
//! a secret rotation). Objects carry our ids in `metadata` (`payment_id`, `refund_id`).

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use serde::Deserialize;
use sha2::Sha256;

use crate::config::ProcessorSettings;
use crate::domain::Outcome;
use crate::ports::{ChargeAttempt, Provider, ProviderError, RefundAttempt, WebhookError, WebhookEvent, WebhookSubject};

/// The processor adapter.
#[derive(Clone)]
pub struct Processor {
    client: reqwest::Client,
    base_url: String,
    api_key: String,
    webhook_secret: Vec<u8>,
    tolerance: Duration,
}

impl Processor {
    /// An adapter for `settings`; each HTTP request is cut off after `deadline`.
    pub fn new(settings: &ProcessorSettings, deadline: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(deadline)
            .connect_timeout(deadline)
            .user_agent(concat!("ticketing-payment/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            api_key: settings.api_key.clone(),
            webhook_secret: settings.webhook_secret.as_bytes().to_vec(),
            tolerance: settings.webhook_tolerance,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Result<T, Refusal>, ProviderError> {
        let response =
            request.bearer_auth(&self.api_key).send().await.map_err(|e| {
                ProviderError::new(if e.is_timeout() { "timeout" } else { "connection" }, e.to_string())
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| ProviderError::new("connection", e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map(Ok)
                .map_err(|e| ProviderError::new("bad_response", format!("unreadable {status} answer: {e}")));
        }
        let error = serde_json::from_slice::<ErrorBody>(&body).map(|b| b.error).unwrap_or_default();
        let message = error.message.clone().unwrap_or_else(|| format!("HTTP {status}"));
        match status {
            // Refused for good: nothing was charged (or refunded).
            StatusCode::PAYMENT_REQUIRED
            | StatusCode::BAD_REQUEST
            | StatusCode::NOT_FOUND
            | StatusCode::UNPROCESSABLE_ENTITY => Ok(Err(Refusal {
                reference: error.charge.unwrap_or_default(),
                code: error.code.unwrap_or_else(|| {
                    if status == StatusCode::PAYMENT_REQUIRED { "card_declined" } else { "invalid_request" }.into()
                }),
                message,
            })),
            // Our credentials are wrong: an operator must fix them; the card is not at fault.
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(ProviderError::new("authentication_failed", message))
            }
            StatusCode::CONFLICT => Err(ProviderError::new("idempotency_conflict", message)),
            StatusCode::TOO_MANY_REQUESTS => Err(ProviderError::new("rate_limited", message)),
            _ => Err(ProviderError::new("processor_error", message)),
        }
    }

    async fn find<T: serde::de::DeserializeOwned + Into<Outcome>>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Option<Outcome>, ProviderError> {
        let request = self.client.get(self.url(path)).query(&[("idempotency_key", key)]);
        match self.send::<List<T>>(request).await? {
            Ok(list) => Ok(list.data.into_iter().next().map(Into::into)),
            Err(refusal) => Err(ProviderError::new(refusal.code, refusal.message)),
        }
    }
}

/// A definite refusal.
struct Refusal {
    reference: String,
    code: String,
    message: String,
}

impl From<Refusal> for Outcome {
    fn from(r: Refusal) -> Self {
        Outcome::Failed { reference: r.reference, code: r.code, message: r.message }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    charge: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ApiError,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

/// A charge object.
#[derive(Debug, Deserialize)]
struct Charge {
    id: String,
    status: String,
    #[serde(default)]
    failure_code: Option<String>,
    #[serde(default)]
    failure_message: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

impl From<Charge> for Outcome {
    fn from(c: Charge) -> Self {
        match c.status.as_str() {
            "succeeded" => Outcome::Succeeded { reference: c.id },
            "failed" => Outcome::Failed {
                reference: c.id,
                code: c.failure_code.unwrap_or_else(|| "card_declined".into()),
                message: c.failure_message.unwrap_or_default(),
            },
            _ => Outcome::Processing { reference: c.id },
        }
    }
}

/// A refund object.
#[derive(Debug, Deserialize)]
struct RefundObject {
    id: String,
    status: String,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

impl From<RefundObject> for Outcome {
    fn from(r: RefundObject) -> Self {
        match r.status.as_str() {
            "succeeded" => Outcome::Succeeded { reference: r.id },
            "failed" | "canceled" => Outcome::Failed {
                reference: r.id,
                code: r.failure_reason.clone().unwrap_or_else(|| "refund_failed".into()),
                message: r.failure_reason.unwrap_or_default(),
            },
            _ => Outcome::Processing { reference: r.id },
        }
    }
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

#[tonic::async_trait]
impl Provider for Processor {
    fn name(&self) -> &'static str {
        "processor"
    }

    async fn charge(&self, attempt: &ChargeAttempt) -> Result<Outcome, ProviderError> {
        let body = serde_json::json!({
            "amount": attempt.amount.minor_units,
            "currency": attempt.amount.currency.as_str().to_ascii_lowercase(),
            "source": attempt.card_token,
            "metadata": {"payment_id": attempt.payment_id.to_string(), "booking_id": attempt.booking_id.to_string()},
        });
        let request = self.client.post(self.url("/v1/charges")).header("Idempotency-Key", &attempt.key).json(&body);
        Ok(self.send::<Charge>(request).await?.map_or_else(Outcome::from, Outcome::from))
    }

    async fn find_charge(&self, key: &str) -> Result<Option<Outcome>, ProviderError> {
        self.find::<Charge>("/v1/charges", key).await
    }

    async fn refund(&self, attempt: &RefundAttempt) -> Result<Outcome, ProviderError> {
        let body = serde_json::json!({
            "charge": attempt.charge_reference,
            "amount": attempt.amount.minor_units,
            "metadata": {"refund_id": attempt.refund_id.to_string(), "payment_id": attempt.payment_id.to_string()},
        });
        let request = self.client.post(self.url("/v1/refunds")).header("Idempotency-Key", &attempt.key).json(&body);
        Ok(self.send::<RefundObject>(request).await?.map_or_else(Outcome::from, Outcome::from))
    }

    async fn find_refund(&self, key: &str) -> Result<Option<Outcome>, ProviderError> {
        self.find::<RefundObject>("/v1/refunds", key).await
    }

    fn webhook(&self, body: &[u8], signature: &str) -> Result<WebhookEvent, WebhookError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        verify_signature(&self.webhook_secret, signature, body, now as i64, self.tolerance)?;
        parse_event(body)
    }
}

/// Checks a `t=<unix>,v1=<hex>` signature of `body` made with `secret`, and that `t` is
/// within `tolerance` of `now`. The signature is checked first: an unsigned timestamp
/// proves nothing.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.extend(hex::decode(sig).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else { return Err(WebhookError::BadSignature) };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Constant-time comparisons, one per offered signature.
    if !signatures.iter().any(|sig| mac.clone().verify_slice(sig).is_ok()) {
        return Err(WebhookError::BadSignature);
    }
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

fn metadata_id(metadata: &HashMap<String, String>, key: &str) -> Result<uuid::Uuid, WebhookError> {
    metadata
        .get(key)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| WebhookError::Malformed(format!("metadata.{key} is missing or not a UUID")))
}

/// Parses an authenticated webhook body.
fn parse_event(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let event: Event = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let object = event.data.object;
    let malformed = |e: serde_json::Error| WebhookError::Malformed(e.to_string());
    let subject = match event.kind.as_str() {
        "charge.succeeded" | "charge.failed" => {
            let charge: Charge = serde_json::from_value(object).map_err(malformed)?;
            WebhookSubject::Charge { payment_id: metadata_id(&charge.metadata, "payment_id")?, outcome: charge.into() }
        }
        "refund.succeeded" | "refund.failed" => {
            let refund: RefundObject = serde_json::from_value(object).map_err(malformed)?;
            WebhookSubject::Refund { refund_id: metadata_id(&refund.metadata, "refund_id")?, outcome: refund.into() }
        }
        _ => WebhookSubject::Ignored,
    };
    if event.id.is_empty() {
        return Err(WebhookError::Malformed("the event has no id".into()));
    }
    Ok(WebhookEvent { id: event.id, kind: event.kind, subject })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_0123456789";

    fn sign(t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_and_timestamps_are_checked() {
        let body = br#"{"id":"evt_1"}"#;
        let tolerance = Duration::from_secs(300);
        let now = 1_800_000_000;
        assert_eq!(verify_signature(SECRET, &sign(now - 10, body), body, now, tolerance), Ok(()));
        let rotated = format!("t={now},v1=00ff,{}", sign(now, body).split_once(',').unwrap().1);
        assert_eq!(verify_signature(SECRET, &rotated, body, now, tolerance), Ok(()), "any v1 may match");
        assert_eq!(
            verify_signature(SECRET, &sign(now, body), br#"{"id":"evt_2"}"#, now, tolerance),
            Err(WebhookError::BadSignature),
            "the body is covered"
        );
        assert_eq!(
            verify_signature(b"another secret", &sign(now, body), body, now, tolerance),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(SECRET, &sign(now - 301, body), body, now, tolerance),
            Err(WebhookError::Stale),
            "too old"
        );
        assert_eq!(verify_signature(SECRET, &sign(now + 301, body), body, now, tolerance), Err(WebhookError::Stale));
        let forged_time = sign(now - 1000, body).replace(&format!("t={}", now - 1000), &format!("t={now}"));
        assert_eq!(verify_signature(SECRET, &forged_time, body, now, tolerance), Err(WebhookError::BadSignature));
        for header in ["", "v1=abcd", "t=1,v1=zz", "garbage"] {
            assert_eq!(verify_signature(SECRET, header, body, now, tolerance), Err(WebhookError::BadSignature));
        }
    }

    #[test]
    fn events_name_our_payments_and_refunds() {
        let payment = uuid::Uuid::new_v4();
        let body = serde_json::json!({"id": "evt_1", "type": "charge.failed", "created": 1, "data": {"object": {
            "id": "ch_1", "object": "charge", "status": "failed", "failure_code": "card_declined",
            "metadata": {"payment_id": payment.to_string()}}}});
        let event = parse_event(body.to_string().as_bytes()).unwrap();
        assert_eq!(event.kind, "charge.failed");
        assert_eq!(
            event.subject,
            WebhookSubject::Charge {
                payment_id: payment,
                outcome: Outcome::Failed {
                    reference: "ch_1".into(),
                    code: "card_declined".into(),
                    message: String::new()
                }
            }
        );
        let other = serde_json::json!({"id": "evt_2", "type": "customer.created", "data": {"object": {}}});
        assert_eq!(parse_event(other.to_string().as_bytes()).unwrap().subject, WebhookSubject::Ignored);
        let anonymous = serde_json::json!({"id": "evt_3", "type": "charge.succeeded", "data": {"object": {
            "id": "ch_1", "status": "succeeded", "metadata": {}}}});
        assert!(matches!(parse_event(anonymous.to_string().as_bytes()), Err(WebhookError::Malformed(_))));
        assert!(matches!(parse_event(b"not json"), Err(WebhookError::Malformed(_))));
    }
}
