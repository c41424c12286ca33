//! The gRPC transport: thin handlers over [`Inventory`].

pub mod convert;

use ticketing_platform::auth::{Principal, Scope};
use ticketing_proto::inventory::v1 as pb;
use ticketing_proto::inventory::v1::inventory_server::Inventory as InventoryApi;
use tonic::{Request, Response, Status};

use crate::domain::InventoryError;
use crate::service::Inventory;

/// Implements `ticketing.inventory.v1.Inventory`.
#[derive(Clone)]
pub struct Api {
    inventory: Inventory,
}

impl Api {
    /// The API over `inventory`.
    pub fn new(inventory: Inventory) -> Self {
        Self { inventory }
    }
}

#[tonic::async_trait]
impl InventoryApi for Api {
    async fn hold(&self, request: Request<pb::HoldRequest>) -> Result<Response<pb::HoldDetails>, Status> {
        let caller = Principal::of(&request)?;
        if !caller.may_buy() {
            return Err(InventoryError::EmailUnverified.into());
        }
        let r = request.into_inner();
        let event = convert::uuid("event_id", &r.event_id)?;
        let selection = convert::selection(r.selection)?;
        let hold = self.inventory.hold(caller.user_id, event, selection, &r.idempotency_key).await?;
        Ok(Response::new(hold.into()))
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Result<Response<pb::HoldDetails>, Status> {
        let caller = Principal::of(&request)?;
        let id = convert::hold_id(&request.get_ref().hold_id)?;
        Ok(Response::new(self.inventory.release(&caller, id).await?.into()))
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
