//! What every handler shares: the token verifier and one client per backend.

use std::sync::Arc;
use std::time::Duration;

use ticketing_platform::auth::Verifier;
use ticketing_platform::discovery::Discovery;
use ticketing_platform::telemetry::Traced;
use ticketing_proto::audit::v1::audit_client::AuditClient;
use ticketing_proto::booking::v1::booking_client::BookingClient;
use ticketing_proto::catalog::v1::catalog_client::CatalogClient;
use ticketing_proto::identity::v1::identity_client::IdentityClient;
use ticketing_proto::inventory::v1::inventory_client::InventoryClient;
use ticketing_proto::notification::v1::notification_client::NotificationClient;
use ticketing_proto::payment::v1::payment_client::PaymentClient;
use tonic::transport::Channel;

use crate::config::GatewaySettings;
use crate::resilience::{Guard, Guarded};

/// A backend's channel behind its circuit breaker, retrying calls safe to repeat; each
/// attempt is a client span whose context the backend continues.
pub type Backend = Guarded<Traced<Channel>>;

/// The six services, each behind a lazily connected channel with a per-call deadline.
#[derive(Clone)]
pub struct Backends {
    pub identity: IdentityClient<Backend>,
    /// Identity's audit log, over identity's channel and breaker.
    pub audit: AuditClient<Backend>,
    pub catalog: CatalogClient<Backend>,
    pub inventory: InventoryClient<Backend>,
    /// Holds and releases, carried to inventory in batches.
    pub inventory_calls: crate::batches::InventoryCalls,
    pub booking: BookingClient<Backend>,
    pub payment: PaymentClient<Backend>,
    pub notification: NotificationClient<Backend>,
}

impl Backends {
    /// Clients for the configured addresses, balanced over their pods in a cluster, each
    /// behind a breaker whose state `metrics` shows as `gateway_circuit_breaker_state`.
    pub fn new(
        settings: &GatewaySettings,
        discovery: &Discovery,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> anyhow::Result<Self> {
        let states = metrics.register(&prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "gateway_circuit_breaker_state",
                "Each backend's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ),
            &["backend"],
        )?);
        let retries = metrics.register(&prometheus::IntCounterVec::new(
            prometheus::Opts::new("gateway_backend_retries_total", "Backend calls repeated after UNAVAILABLE."),
            &["backend"],
        )?);
        let at = |name: &'static str, url: &str| -> anyhow::Result<Backend> {
            let guard = Guard::new(
                name,
                settings.circuit_breaker,
                settings.backend_timeout,
                states.with_label_values(&[name]),
                retries.with_label_values(&[name]),
            );
            Ok(Guarded::new(Traced::new(discovery.channel(url, settings.backend_timeout)?), guard))
        };
        // A stadium's seat map is far above tonic's 4 MiB default.
        const LARGE: usize = 64 << 20;
        let identity = at("identity", &settings.identity_url)?;
        let inventory =
            InventoryClient::new(at("inventory", &settings.inventory_url)?).max_decoding_message_size(LARGE);
        let sizes = metrics.register(&prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "gateway_inventory_batch_size",
                "Holds or releases carried to inventory in one call, by call (hold, keyed_hold, release).",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            &["call"],
        )?);
        Ok(Self {
            audit: AuditClient::new(identity.clone()),
            identity: IdentityClient::new(identity),
            catalog: CatalogClient::new(at("catalog", &settings.catalog_url)?)
                .max_decoding_message_size(LARGE)
                .max_encoding_message_size(LARGE),
            inventory_calls: crate::batches::InventoryCalls::start(
                inventory.clone(),
                settings.inventory_batching(),
                &sizes,
            ),
            inventory,
            booking: BookingClient::new(at("booking", &settings.booking_url)?),
            payment: PaymentClient::new(at("payment", &settings.payment_url)?),
            notification: NotificationClient::new(at("notification", &settings.notification_url)?),
        })
    }
}

/// Shared by all handlers. Axum clones the state for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// Verifies bearer tokens against identity's JWKS.
    pub verifier: Verifier,
    /// The services.
    pub backends: Backends,
    /// How long a client should wait before retrying a shed request.
    pub retry_after: Duration,
    /// Queues and admission passes of events in on-sale mode.
    pub waiting_room: crate::waiting_room::WaitingRoom,
    /// What `/readyz` reports.
    pub readiness: ticketing_platform::readiness::Readiness,
    /// The gateway's own `service` tokens, which vouch to identity for the client
    /// addresses it hands on.
    pub tokens: ticketing_platform::peers::ServiceTokens,
    /// Seat-map imports this replica may parse at once (`gateway.max_seat_map_imports`).
    pub seat_map_imports: Arc<tokio::sync::Semaphore>,
    /// The large public answers, shared by the requests of a few seconds.
    pub snapshots: crate::snapshot::Snapshots,
}
