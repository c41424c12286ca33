//! The gRPC transport: thin handlers over [`Payments`], with Stripe-style idempotency
//! keys on Charge and Refund.

pub mod convert;

use ticketing_platform::audit::Actor;
use ticketing_platform::auth::{self, Principal};
use ticketing_platform::idempotency::{IdempotencyKeys, Scope, validate_key};
use ticketing_proto::payment::v1 as pb;
use ticketing_proto::payment::v1::payment_server::Payment as PaymentApi;
use tonic::{Request, Response, Status};

use crate::service::{Lookup, Payments};

/// Largest webhook body accepted.
const MAX_WEBHOOK_BYTES: usize = 1 << 20;

/// Implements `ticketing.payment.v1.Payment`.
#[derive(Clone)]
pub struct Api {
    payments: Payments,
    keys: IdempotencyKeys,
}

impl Api {
    /// The API over `payments`, remembering idempotency keys in `keys`.
    pub fn new(payments: Payments, keys: IdempotencyKeys) -> Self {
        Self { payments, keys }
    }
}

/// Runs `work` on a task of its own, so a caller that hangs up mid-charge does not cut
/// it short between the provider's answer and the commit that records it. The task stays
/// in the call's span, so the events it announces continue the caller's trace.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(tracing::Instrument::in_current_span(work)).await.map_err(|e| {
        tracing::error!(error = %e, "a payment task failed");
        Status::internal("the request failed")
    })?
}

#[tonic::async_trait]
impl PaymentApi for Api {
    async fn charge(&self, request: Request<pb::ChargeRequest>) -> Result<Response<pb::PaymentDetails>, Status> {
        let caller = Principal::of(&request)?;
        let request = request.into_inner();
        validate_key(&request.idempotency_key, "idempotency_key")?;
        let input = convert::charge_input(&request)?;
        let api = self.clone();
        detached(async move {
            let key = request.idempotency_key.clone();
            let scope = Scope { operation: "payment.Charge", caller: caller.user_id, key: &key };
            let unkeyed = pb::ChargeRequest { idempotency_key: String::new(), ..request };
            let work = async {
                let payment = api.payments.charge(caller.user_id, input).await?;
                Ok(payment.into())
            };
            api.keys.once(scope, &unkeyed, work).await
        })
        .await
        .map(Response::new)
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::PaymentDetails>, Status> {
        let caller = Principal::of(&request)?;
        use pb::get_payment_request::Lookup as L;
        let lookup = match &request.get_ref().lookup {
            Some(L::PaymentId(id)) => Lookup::Payment(convert::uuid("payment_id", id)?),
            Some(L::BookingId(id)) => Lookup::Booking(convert::uuid("booking_id", id)?),
            None => return Err(convert::invalid("lookup", "one of payment_id or booking_id is required")),
        };
        Ok(Response::new(self.payments.get(&caller, lookup).await?.into()))
    }

    async fn refund(&self, request: Request<pb::RefundRequest>) -> Result<Response<pb::RefundDetails>, Status> {
        let caller = Principal::with_scope(&request, auth::Scope::PaymentRefund)?;
        // An admin's refund is a privileged action; booking's (a workload's) is its saga's.
        let actor = (!caller.has_role(auth::Role::Service)).then(|| Actor::of(&caller, &request));
        let request = request.into_inner();
        validate_key(&request.idempotency_key, "idempotency_key")?;
        let input = convert::refund_input(&request)?;
        let api = self.clone();
        detached(async move {
            let key = request.idempotency_key.clone();
            let scope = Scope { operation: "payment.Refund", caller: caller.user_id, key: &key };
            let unkeyed = pb::RefundRequest { idempotency_key: String::new(), ..request };
            let work = async {
                let (refund, payment) = api.payments.refund(input, actor.as_ref()).await?;
                Ok(convert::refund_details(refund, &payment))
            };
            api.keys.once(scope, &unkeyed, work).await
        })
        .await
        .map(Response::new)
    }

    async fn handle_webhook(
        &self,
        request: Request<pb::HandleWebhookRequest>,
    ) -> Result<Response<pb::HandleWebhookResponse>, Status> {
        let r = request.into_inner();
        if r.body.len() > MAX_WEBHOOK_BYTES {
            return Err(convert::invalid("body", "must be at most 1 MiB"));
        }
        if r.signature.is_empty() {
            return Err(Status::unauthenticated("the webhook is not signed"));
        }
        let (provider_event_id, duplicate) = self.payments.handle_webhook(&r.provider, &r.body, &r.signature).await?;
        Ok(Response::new(pb::HandleWebhookResponse { provider_event_id, duplicate }))
    }
}
