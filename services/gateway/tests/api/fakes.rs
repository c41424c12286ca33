//! Fake backends: catalog, inventory, booking and notification served by tonic on one loopback port,
//! each RPC answering what its test scripted (UNIMPLEMENTED when it scripted nothing), and
//! counting its calls so that a test can tell which refusals never reached a backend.

use std::net::SocketAddr;

use ticketing_proto::booking::v1 as booking;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::notification::v1 as notification;
pub use ticketing_testkit::fakes::Script;
use ticketing_testkit::fakes::{Booking, Catalog, Inventory, Notification};

/// The fake backends and where they listen.
pub struct Backends {
    pub catalog: Script,
    pub inventory: Script,
    pub booking: Script,
    pub notification: Script,
    /// The one address serving all four.
    pub addr: SocketAddr,
}

impl Backends {
    /// Serves the fakes on a free loopback port until the test's runtime ends.
    pub async fn start() -> Self {
        let (catalog, inventory, booking) = (Script::default(), Script::default(), Script::default());
        let notification = Script::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake backends");
        let addr = listener.local_addr().expect("a bound address");
        let server = tonic::transport::Server::builder()
            .add_service(catalog::catalog_server::CatalogServer::new(Catalog(catalog.clone())))
            .add_service(inventory::inventory_server::InventoryServer::new(Inventory(inventory.clone())))
            .add_service(booking::booking_server::BookingServer::new(Booking(booking.clone())))
            .add_service(notification::notification_server::NotificationServer::new(Notification(notification.clone())))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        Self { catalog, inventory, booking, notification, addr }
    }
}
