//! The gRPC transport: thin handlers over [`Inventory`].

pub mod convert;

use futures::future::join_all;
use ticketing_platform::auth::{Principal, Scope, Verifier};
use ticketing_proto::inventory::v1 as pb;
use ticketing_proto::inventory::v1::inventory_server::Inventory as InventoryApi;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::domain::InventoryError;
use crate::service::Inventory;

/// Implements `ticketing.inventory.v1.Inventory`.
#[derive(Clone)]
pub struct Api {
    inventory: Inventory,
    /// Verifies each batch item's token, as the server's auth layer verifies a call's.
    verifier: Verifier,
}

impl Api {
    /// The API over `inventory`, verifying batch items' tokens with `verifier`.
    pub fn new(inventory: Inventory, verifier: Verifier) -> Self {
        Self { inventory, verifier }
    }

    async fn hold_for(&self, caller: &Principal, r: pb::HoldRequest) -> Result<pb::HoldDetails, Status> {
        if !caller.may_buy() {
            return Err(InventoryError::EmailUnverified.into());
        }
        let event = convert::uuid("event_id", &r.event_id)?;
        let selection = convert::selection(r.selection)?;
        Ok(self.inventory.hold(caller.user_id, event, selection, &r.idempotency_key).await?.into())
    }

    async fn release_for(&self, caller: &Principal, r: &pb::ReleaseRequest) -> Result<pb::HoldDetails, Status> {
        let id = convert::hold_id(&r.hold_id)?;
        Ok(self.inventory.release(caller, id).await?.into())
    }

    /// The caller a batch item's token names, verified as a call's would be.
    async fn item_caller(&self, token: &str) -> Result<Principal, Status> {
        if token.is_empty() {
            return Err(Status::unauthenticated("an access token is required"));
        }
        Ok(self.verifier.verify(token).await?)
    }
}

/// The methods a batch's items stand for, naming their spans.
const HOLD: &str = "ticketing.inventory.v1.Inventory/Hold";
const RELEASE: &str = "ticketing.inventory.v1.Inventory/Release";

/// The span of one of a batch's items, parented on the item's own trace context.
fn item_span(method: &'static str, traceparent: &str) -> tracing::Span {
    let span = tracing::info_span!("grpc.batch_item", otel.name = method, otel.kind = "server", rpc.method = method);
    if !span.is_disabled() {
        ticketing_platform::telemetry::set_parent_from_traceparent(&span, traceparent);
    }
    span
}

#[tonic::async_trait]
impl InventoryApi for Api {
    async fn hold(&self, request: Request<pb::HoldRequest>) -> Result<Response<pb::HoldDetails>, Status> {
        let caller = Principal::of(&request)?;
        Ok(Response::new(self.hold_for(&caller, request.into_inner()).await?))
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Result<Response<pb::HoldDetails>, Status> {
        let caller = Principal::of(&request)?;
        Ok(Response::new(self.release_for(&caller, request.get_ref()).await?))
    }

    // A batch's items run concurrently, so inventory's coalescer carries their holds to
    // Redis together; each is answered in order (`convert::outcomes`).
    async fn hold_batch(
        &self,
        request: Request<pb::HoldBatchRequest>,
    ) -> Result<Response<pb::HoldBatchResponse>, Status> {
        let items = convert::batch(request.into_inner().items)?;
        let outcomes = join_all(items.into_iter().map(|item| {
            let span = item_span(HOLD, &item.traceparent);
            async move {
                let caller = self.item_caller(&item.access_token).await?;
                self.hold_for(&caller, item.hold.ok_or_else(|| convert::required("hold"))?).await
            }
            .instrument(span)
        }))
        .await;
        Ok(Response::new(pb::HoldBatchResponse { outcomes: convert::outcomes(outcomes)? }))
    }

    async fn release_batch(
        &self,
        request: Request<pb::ReleaseBatchRequest>,
    ) -> Result<Response<pb::ReleaseBatchResponse>, Status> {
        let items = convert::batch(request.into_inner().items)?;
        let outcomes = join_all(items.into_iter().map(|item| {
            let span = item_span(RELEASE, &item.traceparent);
            async move {
                let caller = self.item_caller(&item.access_token).await?;
                self.release_for(&caller, item.release.as_ref().ok_or_else(|| convert::required("release"))?).await
            }
            .instrument(span)
        }))
        .await;
        Ok(Response::new(pb::ReleaseBatchResponse { outcomes: convert::outcomes(outcomes)? }))
    }

    async fn confirm(&self, request: Request<pb::ConfirmRequest>) -> Result<Response<pb::HoldDetails>, Status> {
        Principal::with_scope(&request, Scope::InventoryHolds)?;
        let r = request.into_inner();
        let id = convert::hold_id(&r.hold_id)?;
        Ok(Response::new(self.inventory.confirm(id, r.fencing_token, &r.booking_id).await?.into()))
    }

    async fn restock(&self, request: Request<pb::RestockRequest>) -> Result<Response<pb::HoldDetails>, Status> {
        Principal::with_scope(&request, Scope::InventoryHolds)?;
        let r = request.into_inner();
        let id = convert::hold_id(&r.hold_id)?;
        Ok(Response::new(self.inventory.restock(id, &r.booking_id).await?.into()))
    }

    async fn get_hold(&self, request: Request<pb::GetHoldRequest>) -> Result<Response<pb::HoldDetails>, Status> {
        let caller = Principal::of(&request)?;
        let id = convert::hold_id(&request.get_ref().hold_id)?;
        Ok(Response::new(self.inventory.get(&caller, id, request.get_ref().claim).await?.into()))
    }

    async fn availability(
        &self,
        request: Request<pb::AvailabilityRequest>,
    ) -> Result<Response<pb::AvailabilityResponse>, Status> {
        let r = request.into_inner();
        let event = convert::uuid("event_id", &r.event_id)?;
        let only: Vec<uuid::Uuid> = r
            .category_ids
            .iter()
            .enumerate()
            .map(|(i, c)| convert::uuid(&format!("category_ids[{i}]"), c))
            .collect::<Result<_, _>>()?;
        let wanted = |c: &uuid::Uuid| only.is_empty() || only.contains(c);
        let availability = self.inventory.availability(event, r.include_seats).await?;
        Ok(Response::new(convert::availability(event, &availability, wanted)))
    }

    async fn batch_availability(
        &self,
        request: Request<pb::BatchAvailabilityRequest>,
    ) -> Result<Response<pb::BatchAvailabilityResponse>, Status> {
        let events = convert::event_ids(&request.get_ref().event_ids)?;
        let found = self.inventory.batch_availability(&events).await?;
        let events = found.iter().map(|(event, a)| convert::availability(*event, a, |_| true)).collect();
        Ok(Response::new(pb::BatchAvailabilityResponse { events }))
    }
}
