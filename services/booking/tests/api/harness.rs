//! Booking's gRPC API, started in-process as `startup` wires it (use cases, idempotency keys,
//! token verification), on a database of its own, in front of the [`fakes`](crate::fakes),
//! with a token issuer standing in for identity. Kafka stays out: the saga's consumer, the
//! outbox relay and the workers are not started, so the events a use case committed stay
//! in the outbox for the tests to read, and [`BookingService::deliver`] hands the saga what
//! its consumer would have read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prost::{Message as _, Name};
use ticketing_booking::adapters::peers;
use ticketing_booking::config::Config;
use ticketing_booking::events::consume::Saga;
use ticketing_booking::grpc::Api;
use ticketing_booking::service::Bookings;
use ticketing_platform::auth::{Role, Verifier, with_bearer};
use ticketing_platform::discovery::Discovery;
use ticketing_platform::idempotency::IdempotencyKeys;
use ticketing_platform::kafka::consumer::Handler as _;
use ticketing_platform::peers::ServiceTokens;
use ticketing_platform::{App, db};
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::booking::v1::booking_client::BookingClient;
use ticketing_proto::booking::v1::booking_server::BookingServer;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::notification::v1 as notification;
use ticketing_proto::topics;
use ticketing_testkit::{Spawned, TestDb, TestIssuer};
use tonic::server::NamedService as _;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::fakes::Peers;

/// The fencing token inventory issues every [`hold`] with.
pub const FENCING_TOKEN: u64 = 7;

/// Booking's API on loopback, its peers faked.
pub struct BookingService {
    /// What booking's peers answer.
    pub peers: Peers,
    issuer: TestIssuer,
    client: BookingClient<Channel>,
    saga: Saga,
    known: Known,
    _service: Spawned,
    db: TestDb,
}

/// What the peers know unless a test scripts otherwise: inventory's holds, catalog's events
/// and seat labels, by id.
#[derive(Default)]
struct Known {
    holds: Arc<Mutex<HashMap<String, inventory::HoldDetails>>>,
    events: Arc<Mutex<HashMap<String, catalog::Event>>>,
    seats: Arc<Mutex<HashMap<String, catalog::EventSeat>>>,
}

fn remember<T>(known: &Mutex<HashMap<String, T>>, id: String, value: T) {
    known.lock().unwrap_or_else(PoisonError::into_inner).insert(id, value);
}

fn recall<T: Clone>(known: &Mutex<HashMap<String, T>>, id: &str) -> Option<T> {
    known.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
}

impl BookingService {
    /// Booking with its default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Booking, `configure` having the last word on its config.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        ticketing_testkit::init_logging();
        let (db, issuer, peers) =
            (TestDb::new(&ticketing_booking::migrator()).await, TestIssuer::start().await, Peers::start().await);
        let known = Known::default();
        let mut config =
            Config { server: ticketing_testkit::server_config(), database: db.config.clone(), ..Config::default() };
        config.auth.jwks_url.clone_from(&issuer.auth.jwks_url);
        let peer = format!("http://{}", peers.addr);
        config.auth.identity_url.clone_from(&peer);
        let b = &mut config.booking;
        for url in [&mut b.inventory_url, &mut b.catalog_url, &mut b.notification_url] {
            url.clone_from(&peer);
        }
        b.payment_url = peer;
        configure(&mut config);

        // `startup::build` as far as the API: the rest of it needs Kafka.
        let pool = db::open(&config.database, &ticketing_booking::migrator()).await.expect("open booking's database");
        let settings = &config.booking;
        let tokens = ServiceTokens::from_config(&config.auth).expect("booking's credentials").expect("a client id");
        let discovery = Discovery::from_config(&config.discovery);
        let channel = |url: &str| discovery.channel(url, settings.peer_timeout).expect("a peer address");
        let channels = peers::Channels {
            inventory: channel(&settings.inventory_url),
            catalog: channel(&settings.catalog_url),
            notification: channel(&settings.notification_url),
            payment: channel(&settings.payment_url),
        };
        let mut app = App::new("booking", config.server.clone());
        let topic = config.kafka.topic(topics::BOOKING);
        let bookings = Bookings::new(
            pool.clone(),
            peers::Peers::new(channels, tokens),
            topic,
            config.kafka.topic(topics::AUDIT),
            settings.reconcile_after,
            app.metrics(),
        );
        let keys = IdempotencyKeys::new(pool, settings.peer_timeout * 4 + Duration::from_secs(30));
        app.authenticate_with(Verifier::from_config(&config.auth));
        let routes = tonic::service::Routes::new(BookingServer::new(Api::new(bookings.clone(), keys)));
        let running = app.bind(routes, &[BookingServer::<Api>::NAME]).await.expect("booking binds");
        let service = Spawned::start(running);
        let client = BookingClient::new(service.channel().await);
        let booking = Self { peers, issuer, client, saga: Saga::new(bookings), known, _service: service, db };
        booking.cooperate();
        booking
    }

    /// Scripts the peers to do what booking asks (again, after a test scripted a failure):
    /// identity issues its `service` tokens, inventory and catalog answer with what they
    /// know, and releasing, confirming, restocking and revoking tickets succeed (nobody went
    /// in on them).
    pub fn cooperate(&self) {
        let (peers, known) = (&self.peers, &self.known);
        let token = identity::ServiceToken {
            access_token: self.issuer.service_token(Uuid::new_v4(), &[]),
            expires_at: from_now(chrono::Duration::minutes(15)),
        };
        peers.identity.answer("issue_service_token", Ok(token));
        let holds = known.holds.clone();
        peers.inventory.on("get_hold", move |r: inventory::GetHoldRequest| {
            std::future::ready(recall(&holds, &r.hold_id).ok_or_else(|| Status::not_found("no such hold")))
        });
        for method in ["release", "confirm", "restock"] {
            peers.inventory.answer(method, Ok(inventory::HoldDetails::default()));
        }
        let events = known.events.clone();
        peers.catalog.on("get_event", move |r: catalog::GetEventRequest| {
            std::future::ready(recall(&events, &r.event_id).ok_or_else(|| Status::not_found("no such event")))
        });
        let seats = known.seats.clone();
        peers.catalog.on("get_event_seats", move |r: catalog::GetEventSeatsRequest| {
            let seats = r.seat_ids.iter().filter_map(|id| recall(&seats, id)).collect();
            std::future::ready(Ok(catalog::GetEventSeatsResponse { seats }))
        });
        peers.notification.answer("revoke_tickets", Ok(notification::RevokeTicketsResponse { attended: false }));
    }

    /// A new account's id and token, its email verified, with `role`.
    pub fn account(&self, role: Role) -> (Uuid, String) {
        let user = Uuid::new_v4();
        (user, self.issuer.token(user, &[role]))
    }

    /// A client of booking's API.
    pub fn client(&self) -> BookingClient<Channel> {
        self.client.clone()
    }

    /// Catalog knows `event` (and `GetEvent` answers it) from now on.
    pub fn knows_event(&self, event: &catalog::Event) {
        remember(&self.known.events, event.id.clone(), event.clone());
    }

    /// Catalog knows `seat`'s label from now on.
    pub fn knows_seat(&self, seat: catalog::EventSeat) {
        remember(&self.known.seats, seat.seat_id.clone(), seat);
    }

    /// Inventory knows `hold` (and `GetHold` answers it) from now on; its id.
    pub fn knows_hold(&self, hold: inventory::HoldDetails) -> String {
        let id = hold.hold_id.clone();
        remember(&self.known.holds, id.clone(), hold);
        id
    }

    /// `CreateBooking` of `hold_id` as the holder of `token`, under idempotency `key`.
    pub async fn create(&self, token: &str, hold_id: &str, key: &str) -> Result<pb::BookingDetails, Status> {
        let request = pb::CreateBookingRequest { hold_id: hold_id.into(), idempotency_key: key.into() };
        Ok(self.client().create_booking(authed(token, request)).await?.into_inner())
    }

    /// `GetBooking` of `id` as the holder of `token`.
    pub async fn get(&self, token: &str, id: &str) -> Result<pb::BookingDetails, Status> {
        let request = pb::GetBookingRequest { booking_id: id.into() };
        Ok(self.client().get_booking(authed(token, request)).await?.into_inner())
    }

    /// `CancelBooking` of `id` as the holder of `token`, saying `reason`, under `key`.
    pub async fn cancel(&self, token: &str, id: &str, reason: &str, key: &str) -> Result<pb::BookingDetails, Status> {
        let request =
            pb::CancelBookingRequest { booking_id: id.into(), reason: reason.into(), idempotency_key: key.into() };
        Ok(self.client().cancel_booking(authed(token, request)).await?.into_inner())
    }

    /// A booking of `user` (the holder of `token`) for two standing tickets of `event`.
    pub async fn book(&self, (user, token): &(Uuid, String), event: &catalog::Event) -> pb::BookingDetails {
        self.knows_event(event);
        let hold = self.knows_hold(hold(*user, event, vec![standing(event, 2)]));
        self.create(token, &hold, "").await.expect("the booking is created")
    }

    /// Hands `event` to booking's saga as its consumer would, committing what it did.
    pub async fn deliver<M: prost::Message + Name>(&self, event: &M) {
        let envelope = ticketing_platform::events::envelope(Uuid::new_v4().to_string(), event);
        let mut tx = self.db.pool.begin().await.expect("a transaction");
        let handled = self.saga.handle(&mut tx, &envelope).await;
        handled.unwrap_or_else(|e| panic!("the saga failed on {}: {e}", M::full_name()));
        tx.commit().await.expect("the saga's step commits");
    }

    /// `booking` is paid (and inventory confirms its hold): the saga makes it CONFIRMED.
    pub async fn pay(&self, booking: &pb::BookingDetails) {
        let paid = ev::PaymentSucceeded {
            payment_id: Uuid::new_v4().to_string(),
            booking_id: booking.id.clone(),
            user_id: booking.user_id.clone(),
            amount: booking.total.clone(),
            ..Default::default()
        };
        self.deliver(&paid).await;
    }

    /// Catalog published `event` as `organizer`'s: the saga records who organizes it.
    pub async fn organizes(&self, organizer: Uuid, event: &str) {
        let published =
            ev::EventPublished { event_id: event.into(), organizer_id: organizer.to_string(), ..Default::default() };
        self.deliver(&published).await;
    }

    /// The events booking committed about booking `id`, oldest first.
    pub async fn outbox(&self, id: &str) -> Vec<Envelope> {
        self.outbox_of(id, false).await
    }

    /// The audit records booking committed about booking `id`, oldest first.
    pub async fn audited(&self, id: &str) -> Vec<ticketing_proto::events::v1::AuditRecord> {
        let envelopes = self.outbox_of(id, true).await;
        envelopes.iter().map(|e| ticketing_platform::events::payload(e).expect("an audit record")).collect()
    }

    /// The outbox's rows about `id`: its audit records, or its other events.
    async fn outbox_of(&self, id: &str, audit: bool) -> Vec<Envelope> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT envelope FROM outbox WHERE message_key = $1 AND (event_type = $2) = $3 ORDER BY seq",
        )
        .bind(id)
        .bind(<ticketing_proto::events::v1::AuditRecord as prost::Name>::full_name())
        .bind(audit)
        .fetch_all(&self.db.pool)
        .await
        .expect("read the outbox");
        rows.iter().map(|row| Envelope::decode(row.as_slice()).expect("an envelope")).collect()
    }

    /// The type names of the events booking committed about booking `id`, oldest first.
    pub async fn announced(&self, id: &str) -> Vec<String> {
        self.outbox(id).await.into_iter().map(|e| e.r#type).collect()
    }

    /// `GetEventSales` of `event` as the holder of `token`.
    pub async fn sales(
        &self,
        token: &str,
        event: &str,
        from: Option<prost_types::Timestamp>,
        to: Option<prost_types::Timestamp>,
        bucket: pb::SalesBucket,
    ) -> Result<pb::EventSales, Status> {
        let request = pb::GetEventSalesRequest { event_id: event.into(), from, to, bucket: bucket as i32 };
        Ok(self.client().get_event_sales(authed(token, request)).await?.into_inner())
    }

    /// Moves booking `id`'s lines in the sales ledger to `at`, as if it had sold (and been
    /// refunded) then: bucket edges need instants a test picks.
    pub async fn date_sales(&self, id: &str, at: chrono::DateTime<chrono::Utc>) {
        sqlx::query("UPDATE sales SET at = $2 WHERE booking_id = $1")
            .bind(Uuid::parse_str(id).expect("a booking id"))
            .bind(at)
            .execute(&self.db.pool)
            .await
            .expect("move the ledger's lines");
    }

    /// How many bookings booking stored.
    pub async fn stored_bookings(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM bookings").fetch_one(&self.db.pool).await.expect("count bookings")
    }
}

/// `message` carrying `token`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    with_bearer(Request::new(message), token)
}

/// `minor_units` cents.
pub fn eur(minor_units: i64) -> Option<Money> {
    Some(Money { currency: "EUR".into(), minor_units })
}

/// `now` plus `offset` (minus, when negative), as a timestamp.
pub fn from_now(offset: chrono::Duration) -> Option<prost_types::Timestamp> {
    Some(ticketing_kernel::time::to_proto(chrono::Utc::now() + offset))
}

/// An event on sale in a month, priced in EUR: "Standing" general admission at 45.00 and
/// "Tier 1" seats at 99.00. Buyers may cancel until it starts.
pub fn on_sale() -> catalog::Event {
    let id = Uuid::new_v4().to_string();
    let category = |name: &str, minor_units| catalog::Category {
        id: Uuid::new_v4().to_string(),
        event_id: id.clone(),
        name: name.into(),
        price: eur(minor_units),
        ..Default::default()
    };
    catalog::Event {
        categories: vec![category("Standing", 4500), category("Tier 1", 9900)],
        id,
        organizer_id: Uuid::new_v4().to_string(),
        name: "Booking tests live".into(),
        status: catalog::EventStatus::OnSale as i32,
        starts_at: from_now(chrono::Duration::days(30)),
        ..Default::default()
    }
}

/// `quantity` standing tickets of `event`.
pub fn standing(event: &catalog::Event, quantity: u32) -> inventory::HoldLine {
    inventory::HoldLine { category_id: event.categories[0].id.clone(), quantity, seat_ids: Vec::new() }
}

/// `seats` of `event`'s seated category.
pub fn seated(event: &catalog::Event, seats: &[&str]) -> inventory::HoldLine {
    let seat_ids: Vec<String> = seats.iter().map(|&s| s.to_owned()).collect();
    inventory::HoldLine { category_id: event.categories[1].id.clone(), quantity: seat_ids.len() as u32, seat_ids }
}

/// An active hold of `user` on `event`, holding `lines`, expiring in ten minutes.
pub fn hold(user: Uuid, event: &catalog::Event, lines: Vec<inventory::HoldLine>) -> inventory::HoldDetails {
    inventory::HoldDetails {
        // Inventory's hold ids are 64 hex digits.
        hold_id: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        event_id: event.id.clone(),
        user_id: user.to_string(),
        status: inventory::HoldStatus::Active as i32,
        expires_at: from_now(chrono::Duration::minutes(10)),
        fencing_token: FENCING_TOKEN,
        lines,
        created_at: from_now(chrono::Duration::zero()),
        ..Default::default()
    }
}

/// The fields an INVALID_ARGUMENT names in its BadRequest details.
pub fn bad_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_details_bad_request().expect("BadRequest details");
    details.field_violations.into_iter().map(|v| v.field).collect()
}
