//! Fake peers: identity, inventory, catalog, notification and payment served by tonic on
//! one loopback port, each RPC answering what its test scripted (UNIMPLEMENTED when it
//! scripted nothing), and keeping the requests it received so that a test can tell what
//! booking asked, and which refusals never reached a peer.

use std::net::SocketAddr;

use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::notification::v1 as notification;
use ticketing_proto::payment::v1 as payment;
pub use ticketing_testkit::fakes::Script;
use ticketing_testkit::fakes::{Catalog, Identity, Inventory, Notification, Payment};

/// The fake peers and where they listen.
pub struct Peers {
    /// Issues booking's `service` tokens.
    pub identity: Script,
    pub inventory: Script,
    pub catalog: Script,
    pub notification: Script,
    /// Only booking's reconciler and refund step call payment, which this suite does not
    /// start: served so that booking has every peer it is built with.
    pub payment: Script,
    /// The one address serving all five.
    pub addr: SocketAddr,
}

impl Peers {
    /// Serves the fakes on a free loopback port until the test's runtime ends.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake peers");
        let peers = Self {
            identity: Script::default(),
            inventory: Script::default(),
            catalog: Script::default(),
            notification: Script::default(),
            payment: Script::default(),
            addr: listener.local_addr().expect("a bound address"),
        };
        let server = tonic::transport::Server::builder()
            .add_service(identity::identity_server::IdentityServer::new(Identity(peers.identity.clone())))
            .add_service(inventory::inventory_server::InventoryServer::new(Inventory(peers.inventory.clone())))
            .add_service(catalog::catalog_server::CatalogServer::new(Catalog(peers.catalog.clone())))
            .add_service(notification::notification_server::NotificationServer::new(Notification(
                peers.notification.clone(),
            )))
            .add_service(payment::payment_server::PaymentServer::new(Payment(peers.payment.clone())))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        peers
    }
}
