//! Payment providers' webhooks, passed to payment byte for byte: the provider's
//! signature over the raw body is their only authentication.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use ticketing_proto::payment::v1 as pb;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::RawBody;
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(payment_webhook))
}

/// The signature header of the Stripe-shaped `processor` provider: `t=<unix seconds>,v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// A webhook event payment accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// The provider's id of the event.
    pub provider_event_id: String,
    /// True when the event had been processed before (a provider's retry); nothing was done again.
    pub duplicate: bool,
}

/// Receives a payment provider's webhook. No bearer token: the `Stripe-Signature` header
/// (an HMAC of the exact body) authenticates it. A processed or replayed event answers 200,
/// so the provider stops retrying; a missing or bad signature, or a stale one, answers 400.
#[utoipa::path(post, path = "/v1/webhooks/payments/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "The provider adapter, e.g. `processor`"),
           ("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256>`")),
    request_body(content = String, content_type = "application/json",
                 description = "The provider's event, exactly as sent"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = Problem), (status = 413, body = Problem)))]
async fn payment_webhook(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<axum::Json<WebhookReceipt>, Problem> {
    if provider.is_empty() || provider.len() > 32 || !provider.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(Problem::field("provider", "must be a provider name such as processor"));
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_signature("send the provider's Stripe-Signature header"))?;
    let request = pb::HandleWebhookRequest { provider, body: body.to_vec(), signature: signature.to_owned() };
    match s.backends.payment.clone().handle_webhook(request).await {
        Ok(receipt) => {
            let r = receipt.into_inner();
            Ok(axum::Json(WebhookReceipt { provider_event_id: r.provider_event_id, duplicate: r.duplicate }))
        }
        // The sender is a provider whose request is bad, not a user to challenge with a 401.
        Err(status) if status.code() == tonic::Code::Unauthenticated => Err(bad_signature(status.message())),
        Err(status) => Err(status.into()),
    }
}

fn bad_signature(detail: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-signature", "Invalid webhook signature", detail)
}
