//! Spawning payment in-process, playing booking on `booking.events`, and reading what
//! payment publishes.

use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::producer::FutureRecord;
use ticketing_payment::config::Config;
use ticketing_platform::auth::{Role, Scope};
use ticketing_platform::kafka::KafkaConfig;
use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::payment::v1 as pb;
use ticketing_proto::payment::v1::payment_client::PaymentClient;
use ticketing_testkit::{Spawned, TestDb, TestIssuer, eventually};
use tonic::transport::Channel;

pub struct TestApp {
    pub client: PaymentClient<Channel>,
    pub issuer: TestIssuer,
    pub db: TestDb,
    pub kafka: KafkaConfig,
    /// The booking service's identity: one caller, so its idempotency keys meet.
    pub service_user: uuid::Uuid,
    producer: ticketing_platform::kafka::Producer,
    /// The service, running until the test ends.
    pub service: Spawned,
}

/// Fast timing for tests: a 1 s client deadline (room for a loaded CI machine), a 2.5 s
/// slow card, quick reconciliation.
pub fn test_config(db: &TestDb, kafka: &KafkaConfig, issuer: &TestIssuer) -> Config {
    let mut config = Config::default();
    config.server = ticketing_testkit::server_config();
    config.database = db.config.clone();
    config.kafka = kafka.clone();
    config.auth = issuer.auth.clone();
    config.payment.client_deadline = Duration::from_secs(1);
    config.payment.retry_backoff = Duration::from_millis(20);
    config.payment.reconcile_interval = Duration::from_millis(100);
    config.payment.pending_timeout = Duration::from_secs(10);
    config.payment.simulated.slow_delay = Duration::from_millis(2500);
    config
}

pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    ticketing_testkit::init_logging();
    let db = TestDb::new(&ticketing_payment::migrator()).await;
    let kafka = ticketing_testkit::kafka_config();
    let issuer = TestIssuer::start().await;
    let mut config = test_config(&db, &kafka, &issuer);
    customize(&mut config);
    let running = ticketing_payment::startup::build(config).await.expect("payment starts");
    let service = Spawned::start(running);
    let client = PaymentClient::new(service.channel().await);
    let producer = ticketing_platform::kafka::producer(&kafka).unwrap();
    TestApp { client, issuer, db, kafka, service_user: uuid::Uuid::new_v4(), producer, service }
}

/// A second replica of `app`'s service: same database, topics and consumer group.
pub async fn spawn_replica(app: &TestApp) -> Spawned {
    let config = test_config(&app.db, &app.kafka, &app.issuer);
    Spawned::start(ticketing_payment::startup::build(config).await.expect("the replica starts"))
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub fn eur(minor_units: i64) -> Option<Money> {
    Some(Money { currency: "EUR".into(), minor_units })
}

/// A booking as booking would announce it: 50 EUR, expiring in 10 minutes.
#[derive(Debug, Clone)]
pub struct Booking {
    pub id: uuid::Uuid,
    pub user: uuid::Uuid,
    pub event: uuid::Uuid,
    pub total: i64,
    pub expires_at: std::time::SystemTime,
}

impl Booking {
    pub fn new() -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            user: uuid::Uuid::new_v4(),
            event: uuid::Uuid::new_v4(),
            total: 5000,
            expires_at: std::time::SystemTime::now() + Duration::from_secs(600),
        }
    }

    pub fn created(&self) -> ev::BookingCreated {
        ev::BookingCreated {
            booking_id: self.id.to_string(),
            user_id: self.user.to_string(),
            event_id: self.event.to_string(),
            hold_id: format!("{}:{}", self.event, uuid::Uuid::new_v4()),
            line_items: vec![],
            total: eur(self.total),
            expires_at: Some(self.expires_at.into()),
        }
    }

    pub fn cancelled(&self) -> ev::BookingCancelled {
        ev::BookingCancelled {
            booking_id: self.id.to_string(),
            user_id: self.user.to_string(),
            event_id: self.event.to_string(),
            reason: ev::BookingCancellationReason::UserRequested.into(),
            ..Default::default()
        }
    }

    pub fn refund_requested(&self, payment_id: &str, amount: i64, request: &str) -> ev::BookingRefundRequested {
        ev::BookingRefundRequested {
            booking_id: self.id.to_string(),
            user_id: self.user.to_string(),
            event_id: self.event.to_string(),
            payment_id: payment_id.into(),
            amount: eur(amount),
            reason: ev::BookingCancellationReason::EventCancelled.into(),
            refund_request_id: request.into(),
            ..Default::default()
        }
    }

    pub fn charge(&self, card: &str, key: &str) -> pb::ChargeRequest {
        pb::ChargeRequest {
            booking_id: self.id.to_string(),
            amount: eur(self.total),
            card_token: card.into(),
            idempotency_key: key.into(),
        }
    }
}

impl TestApp {
    /// Publishes raw bytes on the test's `booking.events`.
    pub async fn publish_raw(&self, key: &str, payload: &[u8]) {
        let topic = self.kafka.topic("booking.events");
        self.producer
            .send(FutureRecord::to(&topic).key(key).payload(payload), Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)
            .expect("publish to booking.events");
    }

    /// Publishes `event` about `booking` as booking would; returns the envelope id.
    pub async fn publish<M: prost::Message + prost::Name>(&self, booking: uuid::Uuid, event: &M) -> String {
        let envelope = ticketing_platform::events::envelope(booking.to_string(), event);
        self.publish_raw(&envelope.aggregate_id, &envelope.encode_to_vec()).await;
        envelope.id
    }

    /// Publishes an already built envelope again (a redelivery).
    pub async fn republish(&self, envelope: &ev::Envelope) {
        self.publish_raw(&envelope.aggregate_id, &envelope.encode_to_vec()).await;
    }

    /// The projected status of a booking, if payment knows it.
    pub async fn booking_status(&self, booking: uuid::Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM bookings WHERE id = $1")
            .bind(booking)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
    }

    /// Waits until payment's projection of `booking` reaches `status`.
    pub async fn wait_booking(&self, booking: uuid::Uuid, status: &str) {
        let what = format!("booking {booking} to become {status}");
        eventually(&what, Duration::from_secs(30), || async {
            let current = self.booking_status(booking).await;
            if current.as_deref() == Some(status) { Ok(()) } else { Err(format!("{current:?}")) }
        })
        .await;
    }

    /// Announces a booking and waits until payment knows it.
    pub async fn create_booking(&self, booking: &Booking) {
        self.publish(booking.id, &booking.created()).await;
        self.wait_booking(booking.id, "pending_payment").await;
    }

    pub fn as_user<T>(&self, user: uuid::Uuid, message: T) -> tonic::Request<T> {
        self.issuer.authed(message, user, &[Role::User])
    }

    /// As booking: a workload granted reading and refunding payments.
    pub fn as_service<T>(&self, message: T) -> tonic::Request<T> {
        self.issuer.as_service(message, self.service_user, &[Scope::PaymentRead, Scope::PaymentRefund])
    }

    pub async fn charge(
        &self,
        user: uuid::Uuid,
        request: pb::ChargeRequest,
    ) -> Result<pb::PaymentDetails, tonic::Status> {
        self.client.clone().charge(self.as_user(user, request)).await.map(tonic::Response::into_inner)
    }

    pub async fn payment(&self, id: &str) -> pb::PaymentDetails {
        let request = pb::GetPaymentRequest { lookup: Some(pb::get_payment_request::Lookup::PaymentId(id.into())) };
        self.client.clone().get_payment(self.as_service(request)).await.expect("get payment").into_inner()
    }

    /// Polls the payment until it reaches `status`.
    pub async fn wait_payment(&self, id: &str, status: pb::PaymentStatus, within: Duration) -> pb::PaymentDetails {
        eventually(&format!("payment {id} to become {status:?}"), within, || async {
            let payment = self.payment(id).await;
            if payment.status == status as i32 { Ok(payment) } else { Err(format!("{:?}", payment.status())) }
        })
        .await
    }

    pub async fn refund(
        &self,
        payment: &str,
        amount: Option<i64>,
        key: &str,
    ) -> Result<pb::RefundDetails, tonic::Status> {
        let request = pb::RefundRequest {
            payment_id: payment.into(),
            amount: amount.and_then(eur),
            idempotency_key: key.into(),
            reason: "test".into(),
        };
        self.client.clone().refund(self.as_service(request)).await.map(tonic::Response::into_inner)
    }

    /// Charges at the simulated provider's ledger.
    pub async fn ledger_charges(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM simulated_charges").fetch_one(&self.db.pool).await.unwrap()
    }

    /// Every event on `payment.events` about `booking`, once at least `min` arrived (or
    /// 30 s passed) and the topic has been quiet for half a second.
    pub async fn payment_events(&self, booking: uuid::Uuid, min: usize) -> Vec<ev::Envelope> {
        let topic = self.kafka.topic("payment.events");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = ticketing_testkit::read_topic(&self.kafka, &topic, min, Duration::from_secs(10)).await;
            let events: Vec<ev::Envelope> = messages
                .iter()
                .filter_map(|m| ev::Envelope::decode(m.payload()?).ok())
                .filter(|e| e.aggregate_id == booking.to_string())
                .collect();
            if events.len() >= min || Instant::now() > deadline {
                return events;
            }
        }
    }

    /// Every record on `audit.events` once the relay drained the outbox, oldest first.
    pub async fn audit_records(&self) -> Vec<ev::AuditRecord> {
        ticketing_testkit::audit_records(&self.db.pool, &self.kafka, 1).await
    }

    /// Every message that reached the DLQ of `booking.events`.
    pub async fn dead_letters(&self, min: usize) -> Vec<rdkafka::message::OwnedMessage> {
        let topic = format!("{}.dlq", self.kafka.topic("booking.events"));
        ticketing_testkit::read_topic(&self.kafka, &topic, min, Duration::from_secs(30)).await
    }
}

/// The names of the events, in order.
pub fn types(events: &[ev::Envelope]) -> Vec<&str> {
    events.iter().map(|e| e.r#type.trim_start_matches("ticketing.events.v1.")).collect()
}

/// The event's payload.
pub fn decode<M: prost::Message + prost::Name + Default>(event: &ev::Envelope) -> M {
    ticketing_platform::events::payload(event).expect("payload of the expected type")
}
