//! The gRPC transport: thin handlers over [`Notification`].

pub mod convert;

use ticketing_platform::auth::Principal;
use ticketing_proto::notification::v1 as pb;
use ticketing_proto::notification::v1::notification_server::Notification as NotificationApi;
use tonic::{Request, Response, Status};

use crate::service::{Notification, Revocation, Scan, Subject};

/// Implements `ticketing.notification.v1.Notification`.
#[derive(Clone)]
pub struct Api {
    notification: Notification,
}

impl Api {
    /// The API over `notification`.
    pub fn new(notification: Notification) -> Self {
        Self { notification }
    }
}

#[tonic::async_trait]
impl NotificationApi for Api {
    async fn get_delivery_status(
        &self,
        request: Request<pb::GetDeliveryStatusRequest>,
    ) -> Result<Response<pb::GetDeliveryStatusResponse>, Status> {
        use pb::get_delivery_status_request::Subject as S;
        let caller = Principal::of(&request)?;
        let subject = match &request.get_ref().subject {
            Some(S::SourceEventId(id)) => Subject::SourceEvent(convert::uuid("source_event_id", id)?),
            Some(S::BookingId(id)) => Subject::Booking(convert::uuid("booking_id", id)?),
            None => return Err(convert::invalid("subject", "one of source_event_id or booking_id is required")),
        };
        let deliveries = self.notification.deliveries(&caller, subject).await?;
        Ok(Response::new(pb::GetDeliveryStatusResponse {
            deliveries: deliveries.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let booking = convert::uuid("booking_id", &request.get_ref().booking_id)?;
        let tickets = self.notification.tickets(&caller, booking).await?;
        Ok(Response::new(pb::ListTicketsResponse { tickets: tickets.into_iter().map(Into::into).collect() }))
    }

    async fn get_tickets_pdf(
        &self,
        request: Request<pb::GetTicketsPdfRequest>,
    ) -> Result<Response<pb::GetTicketsPdfResponse>, Status> {
        let caller = Principal::of(&request)?;
        let booking = convert::uuid("booking_id", &request.get_ref().booking_id)?;
        let printed = self.notification.tickets_pdf(&caller, booking).await?;
        Ok(Response::new(pb::GetTicketsPdfResponse {
            filename: printed.filename,
            pages: u32::try_from(printed.pages).unwrap_or(u32::MAX),
            pdf: printed.pdf,
        }))
    }

    async fn verify_ticket(
        &self,
        request: Request<pb::VerifyTicketRequest>,
    ) -> Result<Response<pb::VerifyTicketResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let mut violations = Vec::new();
        if r.code.trim().is_empty() {
            violations.push(convert::violation("code", "is required"));
        } else if r.code.len() > convert::MAX_CODE_LEN {
            violations.push(convert::violation("code", "is too long to be a ticket code"));
        }
        let event = r.event_id.parse::<uuid::Uuid>().ok();
        if event.is_none() {
            violations.push(convert::violation("event_id", "must be a UUID"));
        }
        if r.gate_id.len() > 200 {
            violations.push(convert::violation("gate_id", "must be at most 200 bytes"));
        }
        let (Some(event), true) = (event, violations.is_empty()) else {
            return Err(convert::invalid_all(&violations));
        };
        let scan = Scan { code: &r.code, event, gate: &r.gate_id, require_rotating: r.require_rotating };
        let verification = self.notification.verify(&caller, &scan, chrono::Utc::now()).await?;
        Ok(Response::new(verification.into()))
    }

    async fn revoke_tickets(
        &self,
        request: Request<pb::RevokeTicketsRequest>,
    ) -> Result<Response<pb::RevokeTicketsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let booking = r.booking_id.parse::<uuid::Uuid>();
        let user = r.user_id.parse::<uuid::Uuid>();
        let event = Some(r.event_id.as_str()).filter(|e| !e.is_empty()).map(str::parse::<uuid::Uuid>).transpose();
        let mut violations = Vec::new();
        for (field, bad) in [("booking_id", booking.is_err()), ("user_id", user.is_err()), ("event_id", event.is_err())]
        {
            if bad {
                violations.push(convert::violation(field, "must be a UUID"));
            }
        }
        if r.reason.chars().count() > 500 {
            violations.push(convert::violation("reason", "must be at most 500 characters"));
        }
        let (Ok(booking), Ok(user), Ok(event), true) = (booking, user, event, violations.is_empty()) else {
            return Err(convert::invalid_all(&violations));
        };
        let revocation = Revocation { booking, user, event, reason: &r.reason, force: r.force };
        let attended = self.notification.revoke(&caller, &revocation).await?;
        Ok(Response::new(pb::RevokeTicketsResponse { attended }))
    }

    async fn get_ticket_signing_keys(
        &self,
        _request: Request<pb::GetTicketSigningKeysRequest>,
    ) -> Result<Response<pb::GetTicketSigningKeysResponse>, Status> {
        let jwks = self.notification.jwks().await?;
        Ok(Response::new(pb::GetTicketSigningKeysResponse { jwks_json: jwks.to_string() }))
    }

    async fn rotate_ticket_signing_key(
        &self,
        request: Request<pb::RotateTicketSigningKeyRequest>,
    ) -> Result<Response<pb::RotateTicketSigningKeyResponse>, Status> {
        let caller = Principal::of(&request)?;
        let (active_kid, retired_kid) = self.notification.rotate_keys(&caller).await?;
        Ok(Response::new(pb::RotateTicketSigningKeyResponse { active_kid, retired_kid }))
    }
}
