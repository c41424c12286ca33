//! Fake gRPC peers for a service's own test suite: every platform service's API served
//! by a [`Script`] of answers per RPC (UNIMPLEMENTED when a test scripted none), keeping
//! the requests it received so that a test can tell what was asked, and which refusals
//! never reached a peer. A suite serves the ones it needs on a loopback port.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::notification::v1 as notification;
use ticketing_proto::payment::v1 as payment;
use tonic::{Request, Response, Status};

type Message = Box<dyn Any + Send>;
type Handler = Arc<dyn Fn(Message) -> BoxFuture<'static, Result<Message, Status>> + Send + Sync>;

/// One fake's scripted answers, by RPC (the generated method's name, e.g. `get_hold`).
#[derive(Clone, Default)]
pub struct Script {
    handlers: Arc<Mutex<HashMap<&'static str, Handler>>>,
    received: Arc<Mutex<HashMap<&'static str, Vec<Message>>>>,
}

impl Script {
    /// Answers `method` with what `handler` makes of each request.
    pub fn on<Req, Reply, Fut>(&self, method: &'static str, handler: impl Fn(Req) -> Fut + Send + Sync + 'static)
    where
        Req: Send + 'static,
        Reply: Send + 'static,
        Fut: Future<Output = Result<Reply, Status>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |request: Message| {
            let request = *request.downcast::<Req>().unwrap_or_else(|_| panic!("{method} takes another request"));
            let reply = handler(request);
            Box::pin(async move { reply.await.map(|r| Box::new(r) as Message) })
        });
        self.handlers.lock().unwrap_or_else(PoisonError::into_inner).insert(method, handler);
    }

    /// Answers every call of `method` with `answer`.
    pub fn answer<Reply: Clone + Send + Sync + 'static>(&self, method: &'static str, answer: Result<Reply, Status>) {
        let handler: Handler = Arc::new(move |_| {
            let answer = answer.clone().map(|r| Box::new(r) as Message);
            Box::pin(std::future::ready(answer))
        });
        self.handlers.lock().unwrap_or_else(PoisonError::into_inner).insert(method, handler);
    }

    /// How often `method` was called.
    pub fn calls(&self, method: &str) -> usize {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).get(method).map_or(0, Vec::len)
    }

    /// The requests `method` received, oldest first.
    pub fn requests<Req: Clone + 'static>(&self, method: &str) -> Vec<Req> {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        let requests = received.get(method).map(Vec::as_slice).unwrap_or_default();
        let request =
            |r: &Message| r.downcast_ref::<Req>().cloned().unwrap_or_else(|| panic!("{method} takes another"));
        requests.iter().map(request).collect()
    }

    /// Answers a call of `method` as scripted, keeping its request.
    pub async fn call<Req: Clone + Send + 'static, Reply: 'static>(
        &self,
        method: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Reply>, Status> {
        let request = request.into_inner();
        let kept: Message = Box::new(request.clone());
        self.received.lock().unwrap_or_else(PoisonError::into_inner).entry(method).or_default().push(kept);
        let handler = self.handlers.lock().unwrap_or_else(PoisonError::into_inner).get(method).cloned();
        let handler = handler.ok_or_else(|| Status::unimplemented(format!("the test scripted no {method}")))?;
        let reply = handler(Box::new(request)).await?;
        Ok(Response::new(*reply.downcast::<Reply>().unwrap_or_else(|_| panic!("{method} answers another reply"))))
    }
}

/// A service whose every RPC asks its [`Script`], but for those written out after the list.
macro_rules! fake {
    ($fake:ident: $service:path { $($method:ident($request:ty) -> $reply:ty;)* } $($own:tt)*) => {
        #[doc = concat!("A fake `", stringify!($fake), "`, answering from its [`Script`].")]
        pub struct $fake(pub Script);

        #[tonic::async_trait]
        impl $service for $fake {
            $(async fn $method(&self, request: Request<$request>) -> Result<Response<$reply>, Status> {
                self.0.call(stringify!($method), request).await
            })*
            $($own)*
        }
    };
}

fake!(Identity: identity::identity_server::Identity {
    register(identity::RegisterRequest) -> identity::RegisterResponse;
    verify_email(identity::VerifyEmailRequest) -> identity::VerifyEmailResponse;
    resend_verification_email(identity::ResendVerificationEmailRequest) -> identity::ResendVerificationEmailResponse;
    mark_email_verified(identity::MarkEmailVerifiedRequest) -> identity::User;
    login(identity::LoginRequest) -> identity::TokenPair;
    refresh(identity::RefreshRequest) -> identity::TokenPair;
    logout(identity::LogoutRequest) -> identity::LogoutResponse;
    get_me(identity::GetMeRequest) -> identity::User;
    update_me(identity::UpdateMeRequest) -> identity::User;
    set_user_role(identity::SetUserRoleRequest) -> identity::User;
    get_jwks(identity::GetJwksRequest) -> identity::GetJwksResponse;
    rotate_signing_keys(identity::RotateSigningKeysRequest) -> identity::RotateSigningKeysResponse;
    revoke_signing_key(identity::RevokeSigningKeyRequest) -> identity::RevokeSigningKeyResponse;
    issue_service_token(identity::IssueServiceTokenRequest) -> identity::ServiceToken;
    change_password(identity::ChangePasswordRequest) -> identity::ChangePasswordResponse;
    forgot_password(identity::ForgotPasswordRequest) -> identity::ForgotPasswordResponse;
    reset_password(identity::ResetPasswordRequest) -> identity::ResetPasswordResponse;
    list_sessions(identity::ListSessionsRequest) -> identity::ListSessionsResponse;
    revoke_session(identity::RevokeSessionRequest) -> identity::RevokeSessionResponse;
    delete_me(identity::DeleteMeRequest) -> identity::DeleteMeResponse;
    start_oidc_login(identity::StartOidcLoginRequest) -> identity::StartOidcLoginResponse;
    finish_oidc_login(identity::FinishOidcLoginRequest) -> identity::TokenPair;
});

fake!(Inventory: inventory::inventory_server::Inventory {
    hold(inventory::HoldRequest) -> inventory::HoldDetails;
    release(inventory::ReleaseRequest) -> inventory::HoldDetails;
    confirm(inventory::ConfirmRequest) -> inventory::HoldDetails;
    restock(inventory::RestockRequest) -> inventory::HoldDetails;
    get_hold(inventory::GetHoldRequest) -> inventory::HoldDetails;
    availability(inventory::AvailabilityRequest) -> inventory::AvailabilityResponse;
    batch_availability(inventory::BatchAvailabilityRequest) -> inventory::BatchAvailabilityResponse;
}
    // As inventory serves them: each item as its own call, here the script's `hold` or
    // `release`, so a suite scripting those serves the gateway's batches unchanged.
    async fn hold_batch(
        &self,
        request: Request<inventory::HoldBatchRequest>,
    ) -> Result<Response<inventory::HoldBatchResponse>, Status> {
        let items = request.into_inner().items;
        let calls = items.into_iter().map(|i| self.0.call("hold", Request::new(i.hold.unwrap_or_default())));
        Ok(Response::new(inventory::HoldBatchResponse { outcomes: each(calls).await? }))
    }

    async fn release_batch(
        &self,
        request: Request<inventory::ReleaseBatchRequest>,
    ) -> Result<Response<inventory::ReleaseBatchResponse>, Status> {
        let items = request.into_inner().items;
        let calls = items.into_iter().map(|i| self.0.call("release", Request::new(i.release.unwrap_or_default())));
        Ok(Response::new(inventory::ReleaseBatchResponse { outcomes: each(calls).await? }))
    }
);

/// A batch's outcomes from its items' calls, in order; UNAVAILABLE for the call when every
/// item was, as inventory answers.
async fn each(
    calls: impl Iterator<Item = impl Future<Output = Result<Response<inventory::HoldDetails>, Status>>>,
) -> Result<Vec<inventory::HoldOutcome>, Status> {
    use inventory::hold_outcome::Outcome;
    let answers = futures::future::join_all(calls).await;
    if let Some(Err(first)) = answers.first()
        && answers.iter().all(|a| a.as_ref().is_err_and(|s| s.code() == tonic::Code::Unavailable))
    {
        return Err(first.clone());
    }
    let outcome = |answer: Result<Response<inventory::HoldDetails>, Status>| inventory::HoldOutcome {
        outcome: Some(match answer {
            Ok(hold) => Outcome::Hold(hold.into_inner()),
            Err(status) => Outcome::Error(ticketing_platform::status::to_message(&status)),
        }),
    };
    Ok(answers.into_iter().map(outcome).collect())
}

fake!(Catalog: catalog::catalog_server::Catalog {
    create_venue(catalog::CreateVenueRequest) -> catalog::Venue;
    get_venue(catalog::GetVenueRequest) -> catalog::Venue;
    list_venues(catalog::ListVenuesRequest) -> catalog::ListVenuesResponse;
    import_seat_map(catalog::ImportSeatMapRequest) -> catalog::Venue;
    create_event(catalog::CreateEventRequest) -> catalog::Event;
    update_event(catalog::UpdateEventRequest) -> catalog::Event;
    get_event(catalog::GetEventRequest) -> catalog::Event;
    get_event_seats(catalog::GetEventSeatsRequest) -> catalog::GetEventSeatsResponse;
    list_events(catalog::ListEventsRequest) -> catalog::ListEventsResponse;
    publish_event(catalog::PublishEventRequest) -> catalog::Event;
    start_sale(catalog::StartSaleRequest) -> catalog::Event;
    close_event(catalog::CloseEventRequest) -> catalog::Event;
    cancel_event(catalog::CancelEventRequest) -> catalog::Event;
    create_category(catalog::CreateCategoryRequest) -> catalog::Category;
    update_category(catalog::UpdateCategoryRequest) -> catalog::Category;
    delete_category(catalog::DeleteCategoryRequest) -> catalog::DeleteCategoryResponse;
});

fake!(Notification: notification::notification_server::Notification {
    get_delivery_status(notification::GetDeliveryStatusRequest) -> notification::GetDeliveryStatusResponse;
    list_tickets(notification::ListTicketsRequest) -> notification::ListTicketsResponse;
    get_tickets_pdf(notification::GetTicketsPdfRequest) -> notification::GetTicketsPdfResponse;
    verify_ticket(notification::VerifyTicketRequest) -> notification::VerifyTicketResponse;
    revoke_tickets(notification::RevokeTicketsRequest) -> notification::RevokeTicketsResponse;
    get_ticket_signing_keys(notification::GetTicketSigningKeysRequest) -> notification::GetTicketSigningKeysResponse;
    rotate_ticket_signing_key(notification::RotateTicketSigningKeyRequest)
        -> notification::RotateTicketSigningKeyResponse;
});

fake!(Payment: payment::payment_server::Payment {
    charge(payment::ChargeRequest) -> payment::PaymentDetails;
    get_payment(payment::GetPaymentRequest) -> payment::PaymentDetails;
    refund(payment::RefundRequest) -> payment::RefundDetails;
    handle_webhook(payment::HandleWebhookRequest) -> payment::HandleWebhookResponse;
});

fake!(Booking: booking::booking_server::Booking {
    create_booking(booking::CreateBookingRequest) -> booking::BookingDetails;
    get_booking(booking::GetBookingRequest) -> booking::BookingDetails;
    list_my_bookings(booking::ListMyBookingsRequest) -> booking::ListBookingsResponse;
    list_event_bookings(booking::ListEventBookingsRequest) -> booking::ListBookingsResponse;
    cancel_booking(booking::CancelBookingRequest) -> booking::BookingDetails;
    get_event_sales(booking::GetEventSalesRequest) -> booking::EventSales;
});
