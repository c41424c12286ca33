//! Fake backends: catalog, inventory and booking served by tonic on one loopback port,
//! each RPC answering what its test scripted (UNIMPLEMENTED when it scripted nothing), and
//! counting its calls so that a test can tell which refusals never reached a backend.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::inventory::v1 as inventory;
use tonic::{Request, Response, Status};

type Message = Box<dyn Any + Send>;
type Handler = Arc<dyn Fn(Message) -> BoxFuture<'static, Result<Message, Status>> + Send + Sync>;

/// One backend's scripted answers, by RPC (the generated method's name, e.g. `get_event`).
#[derive(Clone, Default)]
pub struct Script {
    handlers: Arc<Mutex<HashMap<&'static str, Handler>>>,
    calls: Arc<Mutex<HashMap<&'static str, usize>>>,
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
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).get(method).copied().unwrap_or(0)
    }

    async fn call<Req: Send + 'static, Reply: 'static>(
        &self,
        method: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Reply>, Status> {
        *self.calls.lock().unwrap_or_else(PoisonError::into_inner).entry(method).or_default() += 1;
        let handler = self.handlers.lock().unwrap_or_else(PoisonError::into_inner).get(method).cloned();
        let handler = handler.ok_or_else(|| Status::unimplemented(format!("the test scripted no {method}")))?;
        let reply = handler(Box::new(request.into_inner())).await?;
        Ok(Response::new(*reply.downcast::<Reply>().unwrap_or_else(|_| panic!("{method} answers another reply"))))
    }
}

/// A backend whose every RPC asks its [`Script`].
macro_rules! fake {
    ($fake:ident: $service:path { $($method:ident($request:ty) -> $reply:ty;)* }) => {
        struct $fake(Script);

        #[tonic::async_trait]
        impl $service for $fake {
            $(async fn $method(&self, request: Request<$request>) -> Result<Response<$reply>, Status> {
                self.0.call(stringify!($method), request).await
            })*
        }
    };
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

fake!(Inventory: inventory::inventory_server::Inventory {
    hold(inventory::HoldRequest) -> inventory::HoldDetails;
    release(inventory::ReleaseRequest) -> inventory::HoldDetails;
    confirm(inventory::ConfirmRequest) -> inventory::HoldDetails;
    restock(inventory::RestockRequest) -> inventory::HoldDetails;
    get_hold(inventory::GetHoldRequest) -> inventory::HoldDetails;
    availability(inventory::AvailabilityRequest) -> inventory::AvailabilityResponse;
});

fake!(Booking: booking::booking_server::Booking {
    create_booking(booking::CreateBookingRequest) -> booking::BookingDetails;
    get_booking(booking::GetBookingRequest) -> booking::BookingDetails;
    list_my_bookings(booking::ListMyBookingsRequest) -> booking::ListBookingsResponse;
    list_event_bookings(booking::ListEventBookingsRequest) -> booking::ListBookingsResponse;
    cancel_booking(booking::CancelBookingRequest) -> booking::BookingDetails;
});

/// The fake backends and where they listen.
pub struct Backends {
    pub catalog: Script,
    pub inventory: Script,
    pub booking: Script,
    /// The one address serving all three.
    pub addr: SocketAddr,
}

impl Backends {
    /// Serves the fakes on a free loopback port until the test's runtime ends.
    pub async fn start() -> Self {
        let (catalog, inventory, booking) = (Script::default(), Script::default(), Script::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake backends");
        let addr = listener.local_addr().expect("a bound address");
        let server = tonic::transport::Server::builder()
            .add_service(catalog::catalog_server::CatalogServer::new(Catalog(catalog.clone())))
            .add_service(inventory::inventory_server::InventoryServer::new(Inventory(inventory.clone())))
            .add_service(booking::booking_server::BookingServer::new(Booking(booking.clone())))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        Self { catalog, inventory, booking, addr }
    }
}
