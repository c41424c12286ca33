//! Inventory, catalog, notification and payment, as booking calls them: with the caller's
//! token when acting for a buyer, with booking's own `service` token when the saga acts by
//! itself.

use ticketing_platform::auth::with_bearer;
use ticketing_platform::peers::ServiceTokens;
use ticketing_platform::telemetry::Traced;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::notification::v1 as notification;
use ticketing_proto::payment::v1 as payment;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::domain::Booking;

/// Booking's peers.
#[derive(Clone)]
pub struct Peers {
    inventory: inventory::inventory_client::InventoryClient<Traced<Channel>>,
    catalog: catalog::catalog_client::CatalogClient<Traced<Channel>>,
    notification: notification::notification_client::NotificationClient<Traced<Channel>>,
    payment: payment::payment_client::PaymentClient<Traced<Channel>>,
    tokens: ServiceTokens,
}

/// Booking's peers' channels.
pub struct Channels {
    /// Inventory's.
    pub inventory: Channel,
    /// Catalog's.
    pub catalog: Channel,
    /// Notification's.
    pub notification: Channel,
    /// Payment's.
    pub payment: Channel,
}

impl Peers {
    /// Peers over their channels, acting with `tokens` on booking's behalf; each call is a
    /// client span whose context the peer continues.
    pub fn new(channels: Channels, tokens: ServiceTokens) -> Self {
        Self {
            inventory: inventory::inventory_client::InventoryClient::new(Traced::new(channels.inventory)),
            catalog: catalog::catalog_client::CatalogClient::new(Traced::new(channels.catalog)),
            notification: notification::notification_client::NotificationClient::new(Traced::new(
                channels.notification,
            )),
            payment: payment::payment_client::PaymentClient::new(Traced::new(channels.payment)),
            tokens,
        }
    }

    /// The hold, as its holder (`token`) sees it, claimed for a booking: from now on inventory
    /// announces its end, which the saga needs to end an unpaid booking.
    pub async fn claim_hold(&self, token: &str, hold_id: &str) -> Result<inventory::HoldDetails, Status> {
        let message = inventory::GetHoldRequest { hold_id: hold_id.into(), claim: true };
        let request = with_bearer(tonic::Request::new(message), token);
        Ok(self.inventory.clone().get_hold(request).await?.into_inner())
    }

    /// The hold, as booking sees it with its `service` token.
    pub async fn hold_as_service(&self, hold_id: &str) -> Result<inventory::HoldDetails, Status> {
        let request = self.tokens.request(inventory::GetHoldRequest { hold_id: hold_id.into(), claim: false }).await?;
        Ok(self.inventory.clone().get_hold(request).await?.into_inner())
    }

    /// The event with its categories and prices.
    pub async fn event(&self, token: &str, event_id: &str) -> Result<catalog::Event, Status> {
        let message = catalog::GetEventRequest { event_id: event_id.into(), include_seat_ids: false };
        Ok(self.catalog.clone().get_event(with_bearer(tonic::Request::new(message), token)).await?.into_inner())
    }

    /// Labels of an event's seats.
    pub async fn seats(
        &self,
        token: &str,
        event_id: &str,
        seat_ids: &[String],
    ) -> Result<Vec<catalog::EventSeat>, Status> {
        let message = catalog::GetEventSeatsRequest { event_id: event_id.into(), seat_ids: seat_ids.to_vec() };
        let request = with_bearer(tonic::Request::new(message), token);
        Ok(self.catalog.clone().get_event_seats(request).await?.into_inner().seats)
    }

    /// Sells the hold for `booking` (idempotent for the same booking).
    pub async fn confirm(&self, hold_id: &str, fencing_token: u64, booking: uuid::Uuid) -> Result<(), Status> {
        let message =
            inventory::ConfirmRequest { hold_id: hold_id.into(), fencing_token, booking_id: booking.to_string() };
        self.inventory.clone().confirm(self.tokens.request(message).await?).await?;
        Ok(())
    }

    /// Releases the hold on its holder's behalf (idempotent).
    pub async fn release(&self, hold_id: &str) -> Result<(), Status> {
        let message = inventory::ReleaseRequest { hold_id: hold_id.into() };
        self.inventory.clone().release(self.tokens.request(message).await?).await?;
        Ok(())
    }

    /// Revokes the booking's tickets at the gate (idempotent), unless one was scanned and
    /// not `force`: then FAILED_PRECONDITION with reason `TICKET_SCANNED`. Returns whether
    /// someone went in on one of them.
    pub async fn revoke_tickets(&self, booking: &Booking, reason: &str, force: bool) -> Result<bool, Status> {
        let message = notification::RevokeTicketsRequest {
            booking_id: booking.id.to_string(),
            user_id: booking.user_id.to_string(),
            event_id: booking.event_id.to_string(),
            reason: reason.into(),
            force,
        };
        Ok(self.notification.clone().revoke_tickets(self.tokens.request(message).await?).await?.into_inner().attended)
    }

    /// The booking's latest payment, if it has one.
    pub async fn payment_of(&self, booking: uuid::Uuid) -> Result<Option<payment::PaymentDetails>, Status> {
        let lookup = payment::get_payment_request::Lookup::BookingId(booking.to_string());
        self.get_payment(lookup).await
    }

    /// A payment by its id, if payment knows it.
    pub async fn payment(&self, id: uuid::Uuid) -> Result<Option<payment::PaymentDetails>, Status> {
        self.get_payment(payment::get_payment_request::Lookup::PaymentId(id.to_string())).await
    }

    async fn get_payment(
        &self,
        lookup: payment::get_payment_request::Lookup,
    ) -> Result<Option<payment::PaymentDetails>, Status> {
        let request = self.tokens.request(payment::GetPaymentRequest { lookup: Some(lookup) }).await?;
        match self.payment.clone().get_payment(request).await {
            Ok(details) => Ok(Some(details.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s),
        }
    }

    /// Asks payment to refund `payment` in full under `request_id`, the id the booking's
    /// `BookingRefundRequested` carries, so that payment records one refund however it hears
    /// of it. The answer is the refund as it was first recorded.
    pub async fn refund(
        &self,
        payment: uuid::Uuid,
        amount: ticketing_proto::common::v1::Money,
        request_id: uuid::Uuid,
        reason: &str,
    ) -> Result<payment::RefundDetails, Status> {
        let message = payment::RefundRequest {
            payment_id: payment.to_string(),
            amount: Some(amount),
            idempotency_key: request_id.to_string(),
            reason: reason.into(),
        };
        Ok(self.payment.clone().refund(self.tokens.request(message).await?).await?.into_inner())
    }

    /// Returns a sold hold's tickets to stock (idempotent).
    pub async fn restock(&self, hold_id: &str, booking: uuid::Uuid) -> Result<(), Status> {
        let message = inventory::RestockRequest { hold_id: hold_id.into(), booking_id: booking.to_string() };
        self.inventory.clone().restock(self.tokens.request(message).await?).await?;
        Ok(())
    }
}
