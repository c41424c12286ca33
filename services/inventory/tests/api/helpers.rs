//! Spawning inventory in-process, publishing stock through Kafka, and the invariant checks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use prost::Message as _;
use rdkafka::producer::FutureRecord;
use ticketing_inventory::config::Config;
use ticketing_platform::auth::{Role, Scope};
use ticketing_platform::kafka::KafkaConfig;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::inventory::v1 as pb;
use ticketing_proto::inventory::v1::inventory_client::InventoryClient;
use ticketing_testkit::{Spawned, TestDb, TestIssuer, TestRedis, eventually};
use tonic::transport::Channel;

pub struct TestApp {
    pub client: InventoryClient<Channel>,
    pub issuer: TestIssuer,
    pub db: TestDb,
    pub redis: TestRedis,
    pub kafka: KafkaConfig,
    /// Runs until the test ends.
    pub service: Spawned,
}

pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    ticketing_testkit::init_logging();
    let db = TestDb::new(&ticketing_inventory::migrator()).await;
    let redis = TestRedis::for_service("inventory");
    let kafka = ticketing_testkit::kafka_config();
    let issuer = TestIssuer::start().await;
    let mut config = Config::default();
    config.server = ticketing_testkit::server_config();
    config.database = db.config.clone();
    config.redis = redis.config.clone();
    config.kafka = kafka.clone();
    config.auth = issuer.auth.clone();
    config.inventory.reaper_interval = Duration::from_millis(50);
    customize(&mut config);
    let running = ticketing_inventory::startup::build(config).await.expect("inventory starts");
    let service = Spawned::start(running);
    let client = InventoryClient::new(service.channel().await);
    TestApp { client, issuer, db, redis, kafka, service }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// A published event: one general-admission category and one seated category.
pub struct Fixture {
    pub event: uuid::Uuid,
    pub ga: uuid::Uuid,
    pub ga_capacity: u32,
    pub seated: uuid::Uuid,
    /// Seats best first, with their row and position.
    pub seats: Vec<(uuid::Uuid, String, u32)>,
    pub limit: u32,
}

impl Fixture {
    /// `rows` rows of `per_row` seats, `ga` general-admission tickets, on sale now.
    pub fn new(ga: u32, rows: u32, per_row: u32, limit: u32) -> Self {
        let seats = (0..rows)
            .flat_map(|r| (0..per_row).map(move |p| (uuid::Uuid::new_v4(), format!("row-{r}"), p + 1)))
            .collect();
        Self {
            event: uuid::Uuid::new_v4(),
            ga: uuid::Uuid::new_v4(),
            ga_capacity: ga,
            seated: uuid::Uuid::new_v4(),
            seats,
            limit,
        }
    }

    pub fn seat(&self, i: usize) -> uuid::Uuid {
        self.seats[i].0
    }

    pub fn published(&self, sale: (std::time::SystemTime, std::time::SystemTime)) -> ev::EventPublished {
        let money = Some(ticketing_proto::common::v1::Money { currency: "EUR".into(), minor_units: 5000 });
        ev::EventPublished {
            event_id: self.event.to_string(),
            organizer_id: uuid::Uuid::new_v4().to_string(),
            venue_id: uuid::Uuid::new_v4().to_string(),
            name: "Test".into(),
            sale_starts_at: Some(sale.0.into()),
            sale_ends_at: Some(sale.1.into()),
            per_user_limit: self.limit,
            version: 1,
            categories: vec![
                ev::CategorySnapshot {
                    category_id: self.ga.to_string(),
                    name: "Floor".into(),
                    price: money.clone(),
                    capacity: self.ga_capacity,
                    allocation: Some(ev::category_snapshot::Allocation::GeneralAdmissionCapacity(self.ga_capacity)),
                },
                ev::CategorySnapshot {
                    category_id: self.seated.to_string(),
                    name: "Stand".into(),
                    price: money,
                    capacity: self.seats.len() as u32,
                    allocation: Some(ev::category_snapshot::Allocation::Seats(ev::CatalogSeatIds {
                        seat_ids: self.seats.iter().map(|s| s.0.to_string()).collect(),
                        row_ids: self.seats.iter().map(|s| s.1.clone()).collect(),
                        positions: self.seats.iter().map(|s| s.2).collect(),
                    })),
                },
            ],
            ..Default::default()
        }
    }

    pub fn on_sale_now(&self) -> ev::EventPublished {
        let now = std::time::SystemTime::now();
        self.published((now - Duration::from_secs(3600), now + Duration::from_secs(3600)))
    }
}

impl TestApp {
    /// Publishes `event` on the test's `catalog.events`, as catalog would.
    pub async fn publish<M: prost::Message + prost::Name>(&self, event_id: uuid::Uuid, event: &M) {
        let producer = ticketing_platform::kafka::producer(&self.kafka).unwrap();
        let envelope = ticketing_platform::events::envelope(event_id.to_string(), event);
        let topic = self.kafka.topic("catalog.events");
        let payload = envelope.encode_to_vec();
        producer
            .send(FutureRecord::to(&topic).key(&envelope.aggregate_id).payload(&payload), Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)
            .expect("publish to catalog.events");
    }

    /// Publishes the fixture and waits until inventory has its stock.
    pub async fn stock(&self, fixture: &Fixture, event: &ev::EventPublished) {
        self.publish(fixture.event, event).await;
        let what = format!("stock for {}", fixture.event);
        eventually(&what, Duration::from_secs(30), || self.availability(fixture.event)).await;
    }

    pub async fn availability(&self, event: uuid::Uuid) -> Result<pb::AvailabilityResponse, tonic::Status> {
        let request =
            pb::AvailabilityRequest { event_id: event.to_string(), include_seats: true, category_ids: vec![] };
        self.client.clone().availability(request).await.map(tonic::Response::into_inner)
    }

    pub fn as_user<T>(&self, user: uuid::Uuid, message: T) -> tonic::Request<T> {
        self.issuer.authed(message, user, &[Role::User])
    }

    /// As booking: a workload granted the holds scope.
    pub fn as_service<T>(&self, message: T) -> tonic::Request<T> {
        self.issuer.as_service(message, uuid::Uuid::new_v4(), &[Scope::InventoryHolds])
    }

    pub async fn hold(
        &self,
        user: uuid::Uuid,
        event: uuid::Uuid,
        selection: pb::hold_request::Selection,
    ) -> Result<pb::HoldDetails, tonic::Status> {
        let request =
            pb::HoldRequest { event_id: event.to_string(), selection: Some(selection), idempotency_key: String::new() };
        self.client.clone().hold(self.as_user(user, request)).await.map(tonic::Response::into_inner)
    }

    pub async fn release(&self, user: uuid::Uuid, hold: &str) -> Result<pb::HoldDetails, tonic::Status> {
        let request = pb::ReleaseRequest { hold_id: hold.into() };
        self.client.clone().release(self.as_user(user, request)).await.map(tonic::Response::into_inner)
    }

    pub async fn confirm(&self, hold: &pb::HoldDetails, booking: &str) -> Result<pb::HoldDetails, tonic::Status> {
        let request = pb::ConfirmRequest {
            hold_id: hold.hold_id.clone(),
            fencing_token: hold.fencing_token,
            booking_id: booking.into(),
        };
        self.client.clone().confirm(self.as_service(request)).await.map(tonic::Response::into_inner)
    }

    /// Deletes every Redis key of this test at once, as a Redis restart without
    /// persistence would (the server is shared, so FLUSHALL is not an option). As the admin:
    /// inventory's own user may not run KEYS.
    pub fn flush_redis(&self) {
        let client = redis::Client::open(ticketing_testkit::redis_url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let script = redis::Script::new(
            "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('UNLINK', k) end return 0",
        );
        let _: i64 = script.arg(format!("{}*", self.redis.config.key_prefix)).invoke(&mut conn).unwrap();
    }

    /// Waits until no hold of the event is live (every one confirmed or ended).
    pub async fn wait_until_nothing_held(&self, event: uuid::Uuid, within: Duration) {
        eventually("nothing held", within, || async {
            let held: u32 =
                self.availability(event).await.expect("availability").categories.iter().map(|c| c.held).sum();
            if held == 0 { Ok(()) } else { Err(format!("{held} tickets still held")) }
        })
        .await;
    }

    /// The invariants of the architecture, checked between Redis and the ledger:
    /// I1 sold + held + available = capacity; I2 no seat sold or held twice;
    /// I6 no user over the limit; and the ledger agrees with Redis.
    pub async fn check_invariants(&self, fixture: &Fixture, holds: &[pb::HoldDetails]) {
        let availability = self.availability(fixture.event).await.expect("availability");
        for c in &availability.categories {
            assert_eq!(c.sold + c.held + c.available, c.capacity, "I1 broken for {c:?}");
        }
        let redis_sold: HashMap<String, u32> =
            availability.categories.iter().map(|c| (c.category_id.clone(), c.sold)).collect();

        // The ledger agrees with Redis on what is sold.
        let ga_sold: i32 = sqlx::query_scalar("SELECT sold FROM categories WHERE event_id = $1 AND category_id = $2")
            .bind(fixture.event)
            .bind(fixture.ga)
            .fetch_one(&self.db.pool)
            .await
            .unwrap();
        assert_eq!(redis_sold[&fixture.ga.to_string()], ga_sold as u32, "GA sold: Redis vs ledger");
        let sold_seats: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT seat_id FROM sold_seats WHERE event_id = $1")
            .bind(fixture.event)
            .fetch_all(&self.db.pool)
            .await
            .unwrap();
        assert_eq!(redis_sold[&fixture.seated.to_string()], sold_seats.len() as u32, "seats sold: Redis vs ledger");
        let redis_sold_seats: HashSet<uuid::Uuid> = availability
            .seats
            .iter()
            .filter(|s| s.state == pb::SeatState::Sold as i32)
            .map(|s| s.seat_id.parse().unwrap())
            .collect();
        assert_eq!(redis_sold_seats, sold_seats.iter().copied().collect(), "sold seats: Redis vs ledger");

        // No seat in two live or sold holds; every held seat belongs to a live hold.
        let mut covered = HashSet::new();
        for hold in holds
            .iter()
            .filter(|h| h.status == pb::HoldStatus::Active as i32 || h.status == pb::HoldStatus::Confirmed as i32)
        {
            for seat in hold.lines.iter().flat_map(|l| &l.seat_ids) {
                assert!(covered.insert(seat.clone()), "I2 broken: seat {seat} covered twice");
            }
        }

        // Per-user sales never exceed the limit.
        let over: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
            "SELECT user_id, sum(quantity)::bigint FROM sales WHERE event_id = $1 AND state = 'sold'
             GROUP BY user_id HAVING sum(quantity) > $2",
        )
        .bind(fixture.event)
        .bind(fixture.limit as i64)
        .fetch_all(&self.db.pool)
        .await
        .unwrap();
        assert!(over.is_empty(), "I6 broken: {over:?}");
    }
}

pub fn ga(category: uuid::Uuid, quantity: u32) -> pb::hold_request::Selection {
    pb::hold_request::Selection::GeneralAdmission(pb::GeneralAdmissionSelection {
        category_id: category.to_string(),
        quantity,
    })
}

pub fn seats(seats: &[uuid::Uuid]) -> pb::hold_request::Selection {
    pb::hold_request::Selection::Seats(pb::SeatSelection {
        seat_ids: seats.iter().map(uuid::Uuid::to_string).collect(),
    })
}

pub fn best(category: uuid::Uuid, quantity: u32, require_adjacent: bool) -> pb::hold_request::Selection {
    pb::hold_request::Selection::BestAvailable(pb::BestAvailableSelection {
        category_id: category.to_string(),
        quantity,
        require_adjacent,
    })
}
