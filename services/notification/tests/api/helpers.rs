//! Spawning notification in-process against a fresh database, topic namespace and
//! SMTP sink; publishing events as the other services would; reading the emails.

use std::time::Duration;

use prost::Message as _;
use rdkafka::producer::FutureRecord;
use sqlx::Connection as _;
use ticketing_notification::config::Config;
use ticketing_platform::auth::{Role, Scope};
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::sealing::{SealedKeys, Sealer, SealingConfig};
use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;
use ticketing_proto::notification::v1 as pb;
use ticketing_proto::notification::v1::notification_client::NotificationClient;
use ticketing_testkit::{Spawned, TestDb, TestIssuer};
use tonic::transport::Channel;
use uuid::Uuid;

pub use ticketing_testkit::eventually;
pub use ticketing_testkit::smtp::{SmtpSink, emails_to, read_qr, wait_for_emails};

/// How long anything asynchronous (consumers joining, retries) may take in a test.
pub const WAIT: Duration = Duration::from_secs(60);

pub const IDENTITY: &str = "identity.events";
pub const CATALOG: &str = "catalog.events";
pub const BOOKING: &str = "booking.events";
pub const PAYMENT: &str = "payment.events";

pub struct TestApp {
    pub client: NotificationClient<Channel>,
    pub config: Config,
    pub issuer: TestIssuer,
    pub db: TestDb,
    pub kafka: KafkaConfig,
    pub smtp: SmtpSink,
    pub service: Spawned,
    producer: ticketing_platform::kafka::Producer,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Fast retries everywhere: the dispatcher's, and enough consumer attempts for an event
/// to wait a few seconds for its user.
pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    spawn_on(TestDb::new(&ticketing_notification::migrator()).await, customize).await
}

/// Like [`spawn_with`], on a database the test prepared.
pub async fn spawn_on(db: TestDb, customize: impl FnOnce(&mut Config)) -> TestApp {
    ticketing_testkit::init_logging();
    let mut kafka = ticketing_testkit::kafka_config();
    kafka.consumer_max_attempts = 10;
    kafka.consumer_retry_backoff = Duration::from_millis(50);
    let issuer = TestIssuer::start().await;
    let smtp = SmtpSink::start().await;
    let mut config = Config::default();
    config.server = ticketing_testkit::server_config();
    config.database = db.config.clone();
    config.kafka = kafka.clone();
    config.auth = issuer.auth.clone();
    let n = &mut config.notification;
    n.from = "Ticketing Test <tickets@ticketing.test>".into();
    n.smtp.host = smtp.addr.ip().to_string();
    n.smtp.port = smtp.addr.port();
    n.smtp.timeout = Duration::from_secs(2);
    n.dispatch_interval = Duration::from_millis(50);
    n.retry_backoff = Duration::from_millis(200);
    n.max_retry_backoff = Duration::from_secs(1);
    n.send_lease = Duration::from_secs(10);
    customize(&mut config);
    let running = ticketing_notification::startup::build(config.clone()).await.expect("notification starts");
    let service = Spawned::start(running);
    let client = NotificationClient::new(service.channel().await);
    let producer = ticketing_platform::kafka::producer(&kafka).unwrap();
    TestApp { client, config, issuer, db, kafka, smtp, service, producer }
}

impl TestApp {
    /// Publishes `event` on `topic` (a base name) as its service would; returns the
    /// envelope, to deliver it again.
    pub async fn publish<M: prost::Message + prost::Name>(&self, topic: &str, aggregate: &str, event: &M) -> Envelope {
        let envelope = ticketing_platform::events::envelope(aggregate, event);
        self.republish(topic, &envelope).await;
        envelope
    }

    /// Publishes `envelope` (again).
    pub async fn republish(&self, topic: &str, envelope: &Envelope) {
        self.publish_raw(topic, &envelope.aggregate_id, &envelope.encode_to_vec()).await;
    }

    /// Publishes a new show as catalog would, and waits until notification knows it.
    pub async fn publish_show(&self, name: &str) -> Show {
        self.publish_show_envelope(name).await.0
    }

    /// [`TestApp::publish_show`], with the envelope to deliver again.
    pub async fn publish_show_envelope(&self, name: &str) -> (Show, Envelope) {
        let show = Show::new(name);
        let envelope = self.publish(CATALOG, &show.id.to_string(), &show.published()).await;
        eventually("the event", WAIT, || async {
            let known = self.count("SELECT count(*) FROM events WHERE event_id = $1", show.id).await;
            (known == 1).then_some(())
        })
        .await;
        (show, envelope)
    }

    /// Waits until the consumers have dead-lettered `n` messages in all.
    pub async fn wait_for_dead_letters(&self, n: u64) {
        eventually("dead-lettered messages", WAIT, || async {
            let (_, metrics) = self.admin_get("/metrics").await;
            let dead: u64 = metrics
                .lines()
                .filter(|l| l.starts_with("kafka_consumer_messages_total{") && l.contains(r#"outcome="dead_lettered""#))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
                .sum();
            (dead >= n).then_some(())
        })
        .await;
    }

    /// Publishes arbitrary bytes.
    pub async fn publish_raw(&self, topic: &str, key: &str, payload: &[u8]) {
        let topic = self.kafka.topic(topic);
        self.producer
            .send(FutureRecord::to(&topic).key(key).payload(payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("publish");
    }

    pub fn authed<T>(&self, message: T, user: Uuid, roles: &[Role]) -> tonic::Request<T> {
        self.issuer.authed(message, user, roles)
    }

    pub async fn tickets(&self, user: Uuid, roles: &[Role], booking: Uuid) -> Result<Vec<pb::Ticket>, tonic::Status> {
        let request = self.authed(pb::ListTicketsRequest { booking_id: booking.to_string() }, user, roles);
        self.client.clone().list_tickets(request).await.map(|r| r.into_inner().tickets)
    }

    /// GetTicketsPdf as `user` with `roles`.
    pub async fn tickets_pdf(
        &self,
        user: Uuid,
        roles: &[Role],
        booking: Uuid,
    ) -> Result<pb::GetTicketsPdfResponse, tonic::Status> {
        let request = self.authed(pb::GetTicketsPdfRequest { booking_id: booking.to_string() }, user, roles);
        self.client.clone().get_tickets_pdf(request).await.map(tonic::Response::into_inner)
    }

    /// Waits until the booking has `n` tickets (as its owner sees them).
    pub async fn wait_for_tickets(&self, owner: Uuid, booking: Uuid, n: usize) -> Vec<pb::Ticket> {
        eventually("tickets", WAIT, || async {
            let tickets = self.tickets(owner, &[Role::User], booking).await.expect("list tickets");
            (tickets.len() == n).then_some(tickets)
        })
        .await
    }

    pub async fn verify(&self, caller: Uuid, roles: &[Role], code: &str, event: Uuid) -> pb::VerifyTicketResponse {
        self.try_verify(caller, roles, code, event).await.expect("verify")
    }

    pub async fn try_verify(
        &self,
        caller: Uuid,
        roles: &[Role],
        code: &str,
        event: Uuid,
    ) -> Result<pb::VerifyTicketResponse, tonic::Status> {
        self.try_verify_at(caller, roles, code, event, false).await
    }

    /// VerifyTicket at a gate that asks for rotating codes, or not.
    pub async fn try_verify_at(
        &self,
        caller: Uuid,
        roles: &[Role],
        code: &str,
        event: Uuid,
        require_rotating: bool,
    ) -> Result<pb::VerifyTicketResponse, tonic::Status> {
        let request = pb::VerifyTicketRequest {
            code: code.into(),
            event_id: event.to_string(),
            gate_id: "gate-1".into(),
            require_rotating,
        };
        self.client.clone().verify_ticket(self.authed(request, caller, roles)).await.map(tonic::Response::into_inner)
    }

    /// RevokeTickets for the booking of `confirmed`, as `roles`.
    pub async fn revoke(
        &self,
        roles: &[Role],
        confirmed: &ev::BookingConfirmed,
        force: bool,
    ) -> Result<pb::RevokeTicketsResponse, tonic::Status> {
        self.revoke_with(self.authed(revocation(confirmed, force), Uuid::new_v4(), roles)).await
    }

    /// [`Self::revoke`] as booking does: a workload granted the tickets:revoke scope.
    pub async fn revoke_as_booking(
        &self,
        confirmed: &ev::BookingConfirmed,
        force: bool,
    ) -> Result<pb::RevokeTicketsResponse, tonic::Status> {
        let request = revocation(confirmed, force);
        self.revoke_with(self.issuer.as_service(request, Uuid::new_v4(), &[Scope::TicketsRevoke])).await
    }

    async fn revoke_with(
        &self,
        request: tonic::Request<pb::RevokeTicketsRequest>,
    ) -> Result<pb::RevokeTicketsResponse, tonic::Status> {
        self.client.clone().revoke_tickets(request).await.map(tonic::Response::into_inner)
    }

    pub async fn deliveries(
        &self,
        caller: Uuid,
        roles: &[Role],
        subject: pb::get_delivery_status_request::Subject,
    ) -> Result<Vec<pb::Delivery>, tonic::Status> {
        let request = self.authed(pb::GetDeliveryStatusRequest { subject: Some(subject) }, caller, roles);
        self.client.clone().get_delivery_status(request).await.map(|r| r.into_inner().deliveries)
    }

    /// The deliveries `envelope` caused, as an admin sees them.
    pub async fn deliveries_of(&self, envelope: &Envelope) -> Vec<pb::Delivery> {
        let subject = pb::get_delivery_status_request::Subject::SourceEventId(envelope.id.clone());
        self.deliveries(Uuid::new_v4(), &[Role::Admin], subject).await.expect("delivery status")
    }

    /// The admin server's text at `path`.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.service.admin_url())).await.expect("admin GET");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Opens or shuts the service's database, as Postgres coming back or going away would:
    /// shut, it refuses new connections and drops those it has.
    pub async fn allow_database_connections(&self, allowed: bool) {
        let mut admin =
            sqlx::PgConnection::connect(&ticketing_testkit::database_url()).await.expect("admin connection");
        let alter = format!(r#"ALTER DATABASE "{}" ALLOW_CONNECTIONS {allowed}"#, self.db.name());
        sqlx::query(&alter).execute(&mut admin).await.expect("ALTER DATABASE");
        if !allowed {
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(self.db.name())
                .execute(&mut admin)
                .await
                .expect("terminate the database's connections");
        }
    }

    /// Rows in a table matching a condition, straight from the database.
    pub async fn count(&self, sql: &str, id: Uuid) -> i64 {
        sqlx::query_scalar(sql).bind(id).fetch_one(&self.db.pool).await.expect("count")
    }
}

/// A buyer, with the event identity would publish.
#[derive(Debug, Clone)]
pub struct Buyer {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

impl Buyer {
    pub fn new(name: &str) -> Self {
        let id = Uuid::new_v4();
        Self {
            id,
            email: format!("{}-{}@example.com", name.to_lowercase(), &id.simple().to_string()[..8]),
            name: name.into(),
        }
    }

    pub fn registered(&self) -> ev::UserRegistered {
        ev::UserRegistered {
            user_id: self.id.to_string(),
            email: self.email.clone(),
            display_name: self.name.clone(),
            role: "user".into(),
        }
    }
}

/// A published event and its organizer.
#[derive(Debug, Clone)]
pub struct Show {
    pub id: Uuid,
    pub organizer: Uuid,
    pub category: Uuid,
    pub name: String,
}

impl Show {
    pub fn new(name: &str) -> Self {
        Self { id: Uuid::new_v4(), organizer: Uuid::new_v4(), category: Uuid::new_v4(), name: name.into() }
    }

    pub fn published(&self) -> ev::EventPublished {
        ev::EventPublished {
            event_id: self.id.to_string(),
            organizer_id: self.organizer.to_string(),
            venue_id: Uuid::new_v4().to_string(),
            name: self.name.clone(),
            starts_at: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
            time_zone: "Europe/Berlin".into(),
            version: 1,
            venue_name: "Hallenstadion".into(),
            ..Default::default()
        }
    }

    /// A confirmed booking of `seats` seats by `buyer`.
    pub fn confirmed(&self, buyer: &Buyer, seats: usize) -> ev::BookingConfirmed {
        ev::BookingConfirmed {
            booking_id: Uuid::new_v4().to_string(),
            user_id: buyer.id.to_string(),
            event_id: self.id.to_string(),
            hold_id: format!("{}:{}", self.id, Uuid::new_v4()),
            payment_id: Uuid::new_v4().to_string(),
            line_items: (0..seats)
                .map(|i| ev::BookingLineItem {
                    line_item_id: Uuid::new_v4().to_string(),
                    category_id: self.category.to_string(),
                    seat_id: Uuid::new_v4().to_string(),
                    label: format!("Floor A, Row 12, Seat {}", i + 1),
                    unit_price: Some(eur(5000)),
                })
                .collect(),
            total: Some(eur(5000 * seats as i64)),
        }
    }
}

/// A buyer's confirmed booking of `seats` tickets for `show`, issued.
pub async fn issued(app: &TestApp, show: &Show, seats: usize) -> (Buyer, ev::BookingConfirmed, Vec<pb::Ticket>) {
    let buyer = Buyer::new("buyer");
    app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    let confirmed = show.confirmed(&buyer, seats);
    app.publish(BOOKING, &confirmed.booking_id, &confirmed).await;
    let tickets = app.wait_for_tickets(buyer.id, booking_id(&confirmed), seats).await;
    (buyer, confirmed, tickets)
}

pub fn result(response: &pb::VerifyTicketResponse) -> pb::VerificationResult {
    pb::VerificationResult::try_from(response.result).unwrap()
}

pub fn eur(minor_units: i64) -> Money {
    Money { currency: "EUR".into(), minor_units }
}

pub fn booking_id(confirmed: &ev::BookingConfirmed) -> Uuid {
    confirmed.booking_id.parse().unwrap()
}

pub fn refunded(confirmed: &ev::BookingConfirmed) -> ev::BookingRefunded {
    ev::BookingRefunded {
        booking_id: confirmed.booking_id.clone(),
        user_id: confirmed.user_id.clone(),
        event_id: confirmed.event_id.clone(),
        payment_id: confirmed.payment_id.clone(),
        refund_id: Uuid::new_v4().to_string(),
        amount: confirmed.total.clone(),
    }
}

pub fn refund_succeeded(confirmed: &ev::BookingConfirmed) -> ev::RefundSucceeded {
    ev::RefundSucceeded {
        refund_id: Uuid::new_v4().to_string(),
        payment_id: confirmed.payment_id.clone(),
        booking_id: confirmed.booking_id.clone(),
        user_id: confirmed.user_id.clone(),
        amount: confirmed.total.clone(),
        provider: "simulated".into(),
        fully_refunded: true,
        ..Default::default()
    }
}

fn revocation(confirmed: &ev::BookingConfirmed, force: bool) -> pb::RevokeTicketsRequest {
    pb::RevokeTicketsRequest {
        booking_id: confirmed.booking_id.clone(),
        user_id: confirmed.user_id.clone(),
        event_id: confirmed.event_id.clone(),
        reason: "cancelled".into(),
        force,
    }
}

/// The ticket signing keys as notification seals them with `sealing`.
pub fn ticket_keys(sealing: &SealingConfig) -> SealedKeys {
    SealedKeys::new("notification", "ticket_signing_keys", Sealer::new(sealing).unwrap())
}
