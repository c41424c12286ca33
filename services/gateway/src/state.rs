//! What every handler shares: the token verifier and one client per backend.

use std::time::Duration;

use ticketing_platform::auth::Verifier;
use ticketing_platform::discovery::Discovery;
use ticketing_proto::booking::v1::booking_client::BookingClient;
use ticketing_proto::catalog::v1::catalog_client::CatalogClient;
use ticketing_proto::identity::v1::identity_client::IdentityClient;
use ticketing_proto::inventory::v1::inventory_client::InventoryClient;
use ticketing_proto::notification::v1::notification_client::NotificationClient;
use ticketing_proto::payment::v1::payment_client::PaymentClient;
use tonic::transport::Channel;

use crate::config::GatewaySettings;

/// The six services, each behind a lazily connected channel with a per-call deadline.
#[derive(Clone)]
pub struct Backends {
    pub identity: IdentityClient<Channel>,
    pub catalog: CatalogClient<Channel>,
    pub inventory: InventoryClient<Channel>,
    pub booking: BookingClient<Channel>,
    pub payment: PaymentClient<Channel>,
    pub notification: NotificationClient<Channel>,
}

impl Backends {
    /// Clients for the configured addresses, balanced over their pods in a cluster.
    pub fn new(settings: &GatewaySettings, discovery: &Discovery) -> anyhow::Result<Self> {
        let at = |url: &str| discovery.channel(url, settings.backend_timeout);
        // A stadium's seat map is far above tonic's 4 MiB default.
        const LARGE: usize = 64 << 20;
        Ok(Self {
            identity: IdentityClient::new(at(&settings.identity_url)?),
            catalog: CatalogClient::new(at(&settings.catalog_url)?)
                .max_decoding_message_size(LARGE)
                .max_encoding_message_size(LARGE),
            inventory: InventoryClient::new(at(&settings.inventory_url)?).max_decoding_message_size(LARGE),
            booking: BookingClient::new(at(&settings.booking_url)?),
            payment: PaymentClient::new(at(&settings.payment_url)?),
            notification: NotificationClient::new(at(&settings.notification_url)?),
        })
    }
}

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    /// Verifies bearer tokens against identity's JWKS.
    pub verifier: Verifier,
    /// The services.
    pub backends: Backends,
    /// How long a client should wait before retrying a shed request.
    pub retry_after: Duration,
}
