//! The whole platform minus the gateway, in-process: identity, catalog, inventory,
//! booking, payment and notification, each with its own database (and Redis prefix),
//! joined by one Kafka namespace and gRPC, with a real SMTP server for the emails.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use ticketing_proto::booking::v1 as booking;
use ticketing_proto::booking::v1::booking_client::BookingClient;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::catalog::v1::catalog_client::CatalogClient;
use ticketing_proto::common::v1::Money;
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::identity::v1::identity_client::IdentityClient;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::inventory::v1::inventory_client::InventoryClient;
use ticketing_proto::notification::v1::notification_client::NotificationClient;
use ticketing_proto::payment::v1 as payment;
use ticketing_proto::payment::v1::payment_client::PaymentClient;
use ticketing_testkit::smtp::SmtpSink;
use ticketing_testkit::{Spawned, TestDb, TestRedis, eventually_every};
use tonic::transport::Channel;

use crate::proxy::Proxy;

const ADMIN_EMAIL: &str = "root@ticketing.test";
const ADMIN_PASSWORD: &str = "bootstrap-admin-passphrase";
const PASSWORD: &str = "a-long-enough-passphrase";
const BOOKING_SECRET: &str = "booking-test-secret-of-at-least-32-chars";
pub const GATEWAY_SECRET: &str = "gateway-test-secret-of-at-least-32-chars";
/// The emails every [`Platform::user`] gets on registering: the welcome and the
/// verification link (sent before the harness marks the address verified).
pub const REGISTRATION_EMAILS: usize = 2;

/// How a test wants the platform.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Inventory's hold TTL.
    pub hold_ttl: Duration,
    /// A broker of the test's own, instead of the shared one.
    pub brokers: Option<&'static str>,
    /// Payment's Stripe-shaped `processor` provider with this webhook secret, instead of the
    /// simulated one. Its API address refuses connections, so charges end UNKNOWN until a
    /// signed webhook settles them.
    pub processor_webhook_secret: Option<&'static str>,
    /// How long the gateway's admission passes last.
    pub pass_ttl: Duration,
    /// Last word on the gateway's settings (rate limits, concurrency, breakers, a dead
    /// backend address), applied after the harness filled them in.
    pub gateway: fn(&mut ticketing_gateway::config::GatewaySettings),
    /// A backend (`"catalog"`, `"booking"`…) the gateway reaches through a [`Proxy`] the
    /// test can kill, stop and restart ([`Platform::proxy`]).
    pub proxied: Option<&'static str>,
    /// Last word on booking's settings (its reconciler, whether it consumes).
    pub booking: fn(&mut ticketing_booking::config::Config),
    /// The port of an OpenID provider on loopback (`ticketing_testkit::oidc`), configured
    /// in identity as the provider `test` redirecting to [`OIDC_REDIRECT_URI`].
    pub oidc_provider: Option<u16>,
}

/// The redirect URI of the provider `test`: nothing listens there; tests read the code off
/// the redirect and hand it to the gateway's callback, as a web client's page would.
pub const OIDC_REDIRECT_URI: &str = "http://127.0.0.1:9/signed-in";

impl Default for Options {
    fn default() -> Self {
        Self {
            hold_ttl: Duration::from_secs(600),
            brokers: None,
            processor_webhook_secret: None,
            pass_ttl: Duration::from_secs(600),
            gateway: |_| {},
            proxied: None,
            booking: |_| {},
            oidc_provider: None,
        }
    }
}

/// The sale of an event [`Platform::event_with`] creates.
#[derive(Debug, Clone, Copy)]
pub struct Sale {
    /// Tickets per user.
    pub limit: u32,
    /// When the sale opens, from now; `None` opened it a minute ago.
    pub opens_in: Option<Duration>,
    /// Buyers the gateway's waiting room admits per minute; `None` for no waiting room.
    pub waiting_room: Option<u32>,
    /// The event's cancellation policy; `None` for the default (until the start).
    pub cancellation: Option<catalog::CancellationPolicy>,
}

impl Default for Sale {
    fn default() -> Self {
        Self { limit: 6, opens_in: None, waiting_room: None, cancellation: None }
    }
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// A published event on sale, with a GA category and a seated one.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub ga: String,
    pub seated: String,
    pub seats: Vec<String>,
}

pub struct Platform {
    pub identity: IdentityClient<Channel>,
    pub catalog: CatalogClient<Channel>,
    pub inventory: InventoryClient<Channel>,
    pub booking: BookingClient<Channel>,
    pub payment: PaymentClient<Channel>,
    pub notification: NotificationClient<Channel>,
    pub smtp: std::sync::Arc<SmtpSink>,
    /// The gateway's public base URL, e.g. `http://127.0.0.1:1234`.
    pub http: String,
    /// The gateway's admin base URL (`/metrics`).
    pub gateway_admin: String,
    /// Booking's admin base URL (`/metrics`).
    pub booking_admin: String,
    /// What stands between the gateway and [`Options::proxied`].
    pub proxy: Option<Proxy>,
    pub kafka: ticketing_platform::kafka::KafkaConfig,
    pub admin: User,
    // Fields drop in order: services stop before their databases go.
    _services: Vec<Spawned>,
    /// Each service's database, by service name.
    pub dbs: HashMap<&'static str, TestDb>,
    /// Each Redis-using service's key prefix, by service name.
    pub redis: HashMap<&'static str, TestRedis>,
}

pub fn authed<T>(message: T, user: &User) -> tonic::Request<T> {
    ticketing_platform::auth::with_bearer(tonic::Request::new(message), &user.token)
}

fn at(offset: Duration, future: bool) -> Option<prost_types::Timestamp> {
    let now = SystemTime::now();
    Some((if future { now + offset } else { now - offset }).into())
}

impl Platform {
    pub async fn start(options: Options) -> Self {
        ticketing_testkit::init_logging();
        let mut kafka = ticketing_testkit::kafka_config();
        kafka.consumer_retry_backoff = Duration::from_millis(50);
        kafka.outbox_poll_interval = Duration::from_millis(50);
        if let Some(brokers) = options.brokers {
            kafka.brokers = brokers.into();
        }
        let smtp = std::sync::Arc::new(SmtpSink::start().await);
        let (mut services, mut dbs, mut redises) = (Vec::new(), HashMap::new(), HashMap::new());

        // identity first: every other service verifies its tokens.
        let db = TestDb::new(&ticketing_identity::migrator()).await;
        let redis = TestRedis::for_service("identity");
        let mut config = ticketing_identity::config::Config::default();
        config.server = ticketing_testkit::server_config();
        config.database = db.config.clone();
        config.redis = redis.config.clone();
        config.kafka = kafka.clone();
        config.identity.bootstrap_admin_email = ADMIN_EMAIL.into();
        config.identity.bootstrap_admin_password = ADMIN_PASSWORD.into();
        config.identity.service_clients.insert("booking".into(), BOOKING_SECRET.into());
        config.identity.service_clients.insert("gateway".into(), GATEWAY_SECRET.into());
        if let Some(port) = options.oidc_provider {
            let provider = ticketing_identity::config::OidcProvider {
                issuer: format!("http://127.0.0.1:{port}"),
                client_id: ticketing_testkit::oidc::CLIENT_ID.into(),
                client_secret: ticketing_testkit::oidc::CLIENT_SECRET.into(),
                redirect_uri: OIDC_REDIRECT_URI.into(),
                ..Default::default()
            };
            config.identity.oidc.providers.insert("test".into(), provider);
        }
        let identity =
            Spawned::start(Box::pin(ticketing_identity::startup::build(config.clone())).await.expect("identity"));
        let mut auth = config.auth.clone();
        auth.jwks_url = format!("{}/.well-known/jwks.json", identity.admin_url());
        auth.identity_url = format!("http://{}", identity.grpc_addr);
        let identity_client = IdentityClient::new(identity.channel().await);
        services.push(identity);
        dbs.insert("identity", db);
        redises.insert("identity", redis);

        let db = TestDb::new(&ticketing_catalog::migrator()).await;
        let mut config = ticketing_catalog::config::Config::default();
        config.server = ticketing_testkit::server_config();
        config.database = db.config.clone();
        config.kafka = kafka.clone();
        config.auth = auth.clone();
        let catalog = Spawned::start(Box::pin(ticketing_catalog::startup::build(config)).await.expect("catalog"));
        let catalog_url = format!("http://{}", catalog.grpc_addr);
        let catalog_client = CatalogClient::new(catalog.channel().await);
        services.push(catalog);
        dbs.insert("catalog", db);

        let db = TestDb::new(&ticketing_inventory::migrator()).await;
        let redis = TestRedis::for_service("inventory");
        let mut config = ticketing_inventory::config::Config::default();
        config.server = ticketing_testkit::server_config();
        config.database = db.config.clone();
        config.redis = redis.config.clone();
        config.kafka = kafka.clone();
        config.auth = auth.clone();
        config.inventory.hold_ttl = options.hold_ttl;
        config.inventory.reaper_interval = Duration::from_millis(50);
        let inventory = Spawned::start(Box::pin(ticketing_inventory::startup::build(config)).await.expect("inventory"));
        let inventory_url = format!("http://{}", inventory.grpc_addr);
        let inventory_client = InventoryClient::new(inventory.channel().await);
        services.push(inventory);
        dbs.insert("inventory", db);
        redises.insert("inventory", redis);

        // Before booking, which revokes tickets through it; listed after payment below.
        let db = TestDb::new(&ticketing_notification::migrator()).await;
        let mut config = ticketing_notification::config::Config::default();
        config.server = ticketing_testkit::server_config();
        config.database = db.config.clone();
        config.kafka = kafka.clone();
        config.auth = auth.clone();
        let n = &mut config.notification;
        n.from = "Ticketing Test <tickets@ticketing.test>".into();
        n.smtp.host = smtp.addr.ip().to_string();
        n.smtp.port = smtp.addr.port();
        n.dispatch_interval = Duration::from_millis(50);
        n.retry_backoff = Duration::from_millis(200);
        n.max_retry_backoff = Duration::from_secs(1);
        let notification =
            Spawned::start(Box::pin(ticketing_notification::startup::build(config)).await.expect("notification"));
        let notification_url = format!("http://{}", notification.grpc_addr);
        let notification_client = NotificationClient::new(notification.channel().await);
        dbs.insert("notification", db);

        // Before booking, whose reconciler asks it about payments; listed after booking below.
        let db = TestDb::new(&ticketing_payment::migrator()).await;
        let mut config = ticketing_payment::config::Config::default();
        config.server = ticketing_testkit::server_config();
        config.database = db.config.clone();
        config.kafka = kafka.clone();
        config.auth = auth.clone();
        config.payment.client_deadline = Duration::from_secs(1);
        config.payment.retry_backoff = Duration::from_millis(20);
        config.payment.reconcile_interval = Duration::from_millis(100);
        if let Some(secret) = options.processor_webhook_secret {
            config.payment.provider = ticketing_payment::config::ProviderKind::Processor;
            config.payment.processor.base_url = "http://127.0.0.1:9".into();
            config.payment.processor.api_key = "sk_test_e2e".into();
            config.payment.processor.webhook_secret = secret.into();
        }
        let payment = Spawned::start(Box::pin(ticketing_payment::startup::build(config)).await.expect("payment"));
        let payment_client = PaymentClient::new(payment.channel().await);
        let payment_addr = payment.grpc_addr;
        dbs.insert("payment", db);

        let db = TestDb::new(&ticketing_booking::migrator()).await;
        let mut config = ticketing_booking::config::Config::default();
        config.server = ticketing_testkit::server_config();
        config.database = db.config.clone();
        config.kafka = kafka.clone();
        config.auth = auth.clone();
        config.auth.client_id = "booking".into();
        config.auth.client_secret = BOOKING_SECRET.into();
        config.booking.inventory_url = inventory_url;
        config.booking.catalog_url = catalog_url;
        config.booking.notification_url = notification_url;
        config.booking.payment_url = format!("http://{payment_addr}");
        (options.booking)(&mut config);
        let booking = Spawned::start(Box::pin(ticketing_booking::startup::build(config)).await.expect("booking"));
        let booking_client = BookingClient::new(booking.channel().await);
        let booking_admin = booking.admin_url();
        services.push(booking);
        dbs.insert("booking", db);
        services.push(payment);
        services.push(notification);

        let mut config = ticketing_gateway::config::Config {
            server: ticketing_testkit::server_config(),
            auth: ticketing_platform::auth::AuthConfig {
                client_id: "gateway".into(),
                client_secret: GATEWAY_SECRET.into(),
                ..auth.clone()
            },
            ..Default::default()
        };
        let redis = TestRedis::for_service("gateway");
        config.redis = redis.config.clone();
        redises.insert("gateway", redis);
        let g = &mut config.gateway;
        // Short, so a test that moves a sale's opening sees it soon.
        g.waiting_room.event_cache_ttl = Duration::from_millis(200);
        g.waiting_room.pass_ttl = options.pass_ttl;
        g.http_addr = "127.0.0.1:0".parse().unwrap();
        g.identity_url = auth.identity_url.clone();
        g.catalog_url = format!("http://{}", services[1].grpc_addr);
        g.inventory_url = format!("http://{}", services[2].grpc_addr);
        g.booking_url = format!("http://{}", services[3].grpc_addr);
        g.payment_url = format!("http://{}", services[4].grpc_addr);
        g.notification_url = format!("http://{}", services[5].grpc_addr);
        (options.gateway)(&mut config.gateway);
        let proxy = match options.proxied {
            Some(backend) => {
                let g = &mut config.gateway;
                let url = match backend {
                    "identity" => &mut g.identity_url,
                    "catalog" => &mut g.catalog_url,
                    "inventory" => &mut g.inventory_url,
                    "booking" => &mut g.booking_url,
                    "payment" => &mut g.payment_url,
                    "notification" => &mut g.notification_url,
                    other => panic!("no backend {other}"),
                };
                let upstream = url.trim_start_matches("http://").parse().expect("a backend's address");
                let proxy = Proxy::start(upstream).await;
                *url = format!("http://{}", proxy.addr);
                Some(proxy)
            }
            None => None,
        };
        let gateway = Box::pin(ticketing_gateway::startup::build(config)).await.expect("gateway");
        let http = format!("http://{}", gateway.http_addr);
        let gateway = Spawned::start(gateway.running);
        let gateway_admin = gateway.admin_url();
        services.push(gateway);

        let login = identity::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() };
        let pair = identity_client.clone().login(login).await.expect("admin login").into_inner();
        let me = identity_client
            .clone()
            .get_me(ticketing_platform::auth::with_bearer(
                tonic::Request::new(identity::GetMeRequest {}),
                &pair.access_token,
            ))
            .await
            .expect("admin me")
            .into_inner();
        let admin = User { id: me.id, email: ADMIN_EMAIL.into(), token: pair.access_token };
        // Later services stop first.
        services.reverse();
        Self {
            identity: identity_client,
            catalog: catalog_client,
            inventory: inventory_client,
            booking: booking_client,
            payment: payment_client,
            notification: notification_client,
            smtp,
            http,
            gateway_admin,
            booking_admin,
            proxy,
            kafka,
            admin,
            _services: services,
            dbs,
            redis: redises,
        }
    }

    /// A new account with `role`, signed in.
    pub async fn user(&self, role: identity::Role) -> User {
        let email = format!("user-{}@example.com", ticketing_testkit::unique());
        let register =
            identity::RegisterRequest { email: email.clone(), password: PASSWORD.into(), display_name: "Fan".into() };
        self.identity.clone().register(register).await.expect("register");
        let mut user = User { id: String::new(), email: email.clone(), token: self.login(&email).await };
        let me = self.identity.clone().get_me(authed(identity::GetMeRequest {}, &user)).await.expect("me");
        user.id = me.into_inner().id;
        // Verified without the email, which tests of the email itself read instead.
        let verify = identity::MarkEmailVerifiedRequest { user_id: user.id.clone() };
        self.identity.clone().mark_email_verified(authed(verify, &self.admin)).await.expect("mark verified");
        if role != identity::Role::User {
            let set = identity::SetUserRoleRequest { user_id: user.id.clone(), role: role as i32 };
            self.identity.clone().set_user_role(authed(set, &self.admin)).await.expect("set role");
        }
        // The role and `email_verified` travel in the token.
        user.token = self.login(&email).await;
        user
    }

    /// An access token of the account `email` (with the harness's password).
    pub async fn login(&self, email: &str) -> String {
        let login = identity::LoginRequest { email: email.into(), password: PASSWORD.into() };
        self.identity.clone().login(login).await.expect("login").into_inner().access_token
    }

    /// An event on sale now: `ga` general-admission tickets and a row of `seats` seats,
    /// each at `price` minor units of EUR; returns once inventory has its stock.
    pub async fn event(&self, organizer: &User, ga: u32, seats: u32, price: i64) -> Event {
        self.event_with_limit(organizer, ga, seats, price, 6).await
    }

    /// [`Platform::event`] with a per-user limit of `limit` tickets.
    pub async fn event_with_limit(&self, organizer: &User, ga: u32, seats: u32, price: i64, limit: u32) -> Event {
        self.event_with(organizer, ga, seats, price, Sale { limit, ..Sale::default() }).await
    }

    /// [`Platform::event`] with `sale`'s limit, opening and waiting room; published, and on sale
    /// once it opens.
    pub async fn event_with(&self, organizer: &User, ga: u32, seats: u32, price: i64, sale: Sale) -> Event {
        let mut catalog = self.catalog.clone();
        let venue = catalog::CreateVenueRequest {
            name: "Arena".into(),
            address: "1 Main St".into(),
            city: "Berlin".into(),
            country_code: "DE".into(),
            time_zone: "Europe/Berlin".into(),
            organizer_id: String::new(),
        };
        let venue = catalog.create_venue(authed(venue, organizer)).await.expect("venue").into_inner();
        let row = catalog::Row {
            name: "1".into(),
            seats: (1..=seats).map(|n| catalog::Seat { number: n.to_string(), ..Default::default() }).collect(),
            ..Default::default()
        };
        let map = catalog::SeatMap {
            sections: vec![catalog::Section { name: "Block A".into(), rows: vec![row], ..Default::default() }],
            general_admission_areas: vec![],
        };
        let import =
            catalog::ImportSeatMapRequest { venue_id: venue.id.clone(), seat_map: Some(map), expected_revision: None };
        catalog.import_seat_map(authed(import, organizer)).await.expect("seat map");
        let get = catalog::GetVenueRequest { venue_id: venue.id.clone(), include_seat_map: true };
        let venue = catalog.get_venue(authed(get, organizer)).await.unwrap().into_inner();
        let seat_ids: Vec<String> =
            venue.seat_map.unwrap().sections[0].rows[0].seats.iter().map(|s| s.id.clone()).collect();
        let create = catalog::CreateEventRequest {
            venue_id: venue.id.clone(),
            name: "The Eras Tour".into(),
            description: "Night one".into(),
            starts_at: at(Duration::from_secs(30 * 86400), true),
            ends_at: at(Duration::from_secs(30 * 86400 + 10800), true),
            time_zone: "Europe/Berlin".into(),
            sale_starts_at: sale.opens_in.map_or_else(|| at(Duration::from_secs(60), false), |d| at(d, true)),
            sale_ends_at: at(Duration::from_secs(86400), true),
            per_user_limit: Some(sale.limit),
            organizer_id: String::new(),
            waiting_room: sale
                .waiting_room
                .map(|admission_per_minute| catalog::WaitingRoom { enabled: true, admission_per_minute }),
            cancellation_policy: sale.cancellation,
        };
        let event = catalog.create_event(authed(create, organizer)).await.expect("event").into_inner();
        let money = Some(Money { currency: "EUR".into(), minor_units: price });
        let category = |name: &str, allocation| catalog::CreateCategoryRequest {
            event_id: event.id.clone(),
            name: name.into(),
            description: String::new(),
            price: money.clone(),
            allocation: Some(allocation),
        };
        use catalog::create_category_request::Allocation;
        let floor = category(
            "Floor",
            Allocation::GeneralAdmission(catalog::GeneralAdmissionAllocation { capacity: ga, area_id: String::new() }),
        );
        let floor = catalog.create_category(authed(floor, organizer)).await.expect("GA").into_inner();
        let block = category("Block A", Allocation::Seats(catalog::SeatAllocation { seat_ids: seat_ids.clone() }));
        let block = catalog.create_category(authed(block, organizer)).await.expect("seated").into_inner();
        let publish = catalog::PublishEventRequest { event_id: event.id.clone() };
        catalog.publish_event(authed(publish, organizer)).await.expect("publish");

        // Inventory learns of the event through Kafka alone.
        let what = format!("inventory to stock event {}", event.id);
        eventually_every(&what, Duration::from_secs(60), Duration::from_millis(100), || async {
            let ask = inventory::AvailabilityRequest { event_id: event.id.clone(), ..Default::default() };
            self.inventory.clone().availability(ask).await.map(drop)
        })
        .await;
        Event { id: event.id, ga: floor.id, seated: block.id, seats: seat_ids }
    }

    /// Holds `selection` for `user`.
    pub async fn hold(
        &self,
        user: &User,
        event: &Event,
        selection: inventory::hold_request::Selection,
    ) -> inventory::HoldDetails {
        let request = inventory::HoldRequest {
            event_id: event.id.clone(),
            selection: Some(selection),
            idempotency_key: String::new(),
        };
        self.inventory.clone().hold(authed(request, user)).await.expect("hold").into_inner()
    }

    /// A PENDING_PAYMENT booking of `hold`.
    pub async fn book(&self, user: &User, hold: &inventory::HoldDetails) -> booking::BookingDetails {
        let request = booking::CreateBookingRequest { hold_id: hold.hold_id.clone(), idempotency_key: String::new() };
        self.booking.clone().create_booking(authed(request, user)).await.expect("create booking").into_inner()
    }

    /// Charges `booking` with `card`, retrying while payment has not heard of the booking yet.
    pub async fn pay(
        &self,
        user: &User,
        booking: &booking::BookingDetails,
        card: &str,
        key: &str,
    ) -> Result<payment::PaymentDetails, tonic::Status> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let request = payment::ChargeRequest {
                booking_id: booking.id.clone(),
                amount: booking.total.clone(),
                card_token: card.into(),
                idempotency_key: key.into(),
            };
            match self.payment.clone().charge(authed(request, user)).await {
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other.map(tonic::Response::into_inner),
            }
        }
    }

    /// The booking as its buyer sees it.
    pub async fn booking(&self, user: &User, id: &str) -> booking::BookingDetails {
        let request = booking::GetBookingRequest { booking_id: id.into() };
        self.booking.clone().get_booking(authed(request, user)).await.expect("get booking").into_inner()
    }

    /// Waits until the booking reaches `status`.
    pub async fn wait_status(&self, user: &User, id: &str, status: booking::BookingStatus) -> booking::BookingDetails {
        let what = format!("booking {id} to become {status:?}");
        eventually_every(&what, Duration::from_secs(60), Duration::from_millis(100), || async {
            let b = self.booking(user, id).await;
            if b.status == status as i32 { Ok(b) } else { Err(format!("{:?}", b.status())) }
        })
        .await
    }

    /// Stops every service and waits until each has finished, its consumers closed. A test
    /// with a broker of its own calls this before the broker goes: closing a consumer
    /// waits for its broker, so a platform dropped after its broker never finishes
    /// shutting down and holds the test past its timeout.
    pub async fn stop(self) {
        // A service's own shutdown error is not what these tests assert.
        futures::future::join_all(self._services.into_iter().map(Spawned::stop)).await;
    }

    /// The messages each consumer group has finished, whatever their outcome, by (its
    /// service's admin URL, group, topic): `kafka_consumer_messages_total` of every service.
    pub async fn consumed(&self) -> HashMap<(String, String, String), u64> {
        let mut consumed = HashMap::new();
        for service in &self._services {
            let url = service.admin_url();
            let text = reqwest::get(format!("{url}/metrics")).await.expect("metrics").text().await.expect("a body");
            for line in text.lines().filter(|l| l.starts_with("kafka_consumer_messages_total{")) {
                let label = |name: &str| {
                    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                    Some(line[start..].split('"').next()?.to_owned())
                };
                let (Some(group), Some(topic)) = (label("group"), label("topic")) else { continue };
                let count = line.rsplit_once(' ').and_then(|(_, n)| n.parse::<u64>().ok()).unwrap_or(0);
                *consumed.entry((url.clone(), group, topic)).or_default() += count;
            }
        }
        consumed
    }

    /// Per-category (available, held, sold) of `event`.
    pub async fn counts(&self, event: &Event) -> Vec<(String, u32, u32, u32)> {
        let ask = inventory::AvailabilityRequest { event_id: event.id.clone(), ..Default::default() };
        let availability = self.inventory.clone().availability(ask).await.expect("availability").into_inner();
        availability.categories.iter().map(|c| (c.category_id.clone(), c.available, c.held, c.sold)).collect()
    }
}
