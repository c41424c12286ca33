//! Spawning the catalog in-process against a fresh database and topic namespace, with a
//! token issuer standing in for identity.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message as _;
use rdkafka::Message as _;
use ticketing_catalog::config::Config;
use ticketing_platform::auth::Role;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::catalog::v1::catalog_client::CatalogClient;
use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1::{AuditRecord, Envelope};
use ticketing_testkit::{Spawned, TestDb, TestIssuer};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

/// Who makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    OrganizerA,
    OrganizerB,
    Admin,
    User,
    Anonymous,
}

pub struct TestApp {
    pub client: CatalogClient<Channel>,
    pub db: TestDb,
    pub kafka: KafkaConfig,
    pub issuer: TestIssuer,
    pub service: Spawned,
    pub organizer_a: Uuid,
    pub organizer_b: Uuid,
    pub admin: Uuid,
    pub user: Uuid,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    ticketing_testkit::init_logging();
    let db = TestDb::new(&ticketing_catalog::migrator()).await;
    let kafka = ticketing_testkit::kafka_config();
    let issuer = TestIssuer::start().await;
    let mut config = Config::default();
    config.server = ticketing_testkit::server_config();
    config.database = db.config.clone();
    config.kafka = kafka.clone();
    config.auth = issuer.auth.clone();
    config.catalog.scheduler_interval = Duration::from_millis(100);
    customize(&mut config);
    let running = ticketing_catalog::startup::build(config).await.expect("catalog starts");
    let service = Spawned::start(running);
    // Seat maps and seat lists of a stadium exceed tonic's 4 MiB default both ways.
    let client = CatalogClient::new(service.channel().await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    TestApp {
        client,
        db,
        kafka,
        issuer,
        service,
        organizer_a: Uuid::new_v4(),
        organizer_b: Uuid::new_v4(),
        admin: Uuid::new_v4(),
        user: Uuid::new_v4(),
    }
}

pub fn ts(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

pub fn from_ts(ts: &prost_types::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32).unwrap()
}

/// `now` plus `hours`, as a timestamp.
pub fn in_hours(hours: i64) -> prost_types::Timestamp {
    ts(Utc::now() + chrono::Duration::hours(hours))
}

pub fn eur(minor_units: i64) -> Option<Money> {
    Some(Money { currency: "EUR".into(), minor_units })
}

/// The fields of an INVALID_ARGUMENT's BadRequest details.
pub fn bad_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_details_bad_request().expect("BadRequest details");
    details.field_violations.into_iter().map(|v| v.field).collect()
}

/// The code of a call's outcome.
pub fn code<T>(result: Result<tonic::Response<T>, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// A seat map of `sections` × `rows` × `seats`, named "S<i>", "<j>", "<k>".
pub fn seat_map(sections: usize, rows: usize, seats: usize) -> pb::SeatMap {
    pb::SeatMap {
        sections: (1..=sections)
            .map(|s| pb::Section {
                name: format!("S{s}"),
                rows: (1..=rows)
                    .map(|r| pb::Row {
                        name: r.to_string(),
                        seats: (1..=seats)
                            .map(|n| pb::Seat { number: n.to_string(), accessible: n == 1, ..Default::default() })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        general_admission_areas: vec![pb::GeneralAdmissionArea {
            name: "Pit".into(),
            capacity: 500,
            id: String::new(),
        }],
    }
}

/// Every seat id of a stored map, in seat-map order.
pub fn seat_ids(map: &pb::SeatMap) -> Vec<String> {
    map.sections.iter().flat_map(|s| &s.rows).flat_map(|r| &r.seats).map(|s| s.id.clone()).collect()
}

impl TestApp {
    pub fn user_id(&self, who: Who) -> Option<Uuid> {
        match who {
            Who::OrganizerA => Some(self.organizer_a),
            Who::OrganizerB => Some(self.organizer_b),
            Who::Admin => Some(self.admin),
            Who::User => Some(self.user),
            Who::Anonymous => None,
        }
    }

    /// `message` as `who` sends it.
    pub fn req<T>(&self, who: Who, message: T) -> tonic::Request<T> {
        let roles: &[Role] = match who {
            Who::OrganizerA | Who::OrganizerB => &[Role::Organizer],
            Who::Admin => &[Role::Admin],
            Who::User => &[Role::User],
            Who::Anonymous => return tonic::Request::new(message),
        };
        self.issuer.authed(message, self.user_id(who).unwrap(), roles)
    }

    pub fn client(&self) -> CatalogClient<Channel> {
        self.client.clone()
    }

    pub async fn venue(&self, who: Who, name: &str) -> pb::Venue {
        let request = pb::CreateVenueRequest {
            name: name.into(),
            address: "Main Street 1".into(),
            city: "Berlin".into(),
            country_code: "DE".into(),
            time_zone: "Europe/Berlin".into(),
            organizer_id: String::new(),
        };
        self.client().create_venue(self.req(who, request)).await.expect("create venue").into_inner()
    }

    pub async fn import(&self, who: Who, venue_id: &str, map: pb::SeatMap) -> Result<pb::Venue, Status> {
        let request =
            pb::ImportSeatMapRequest { venue_id: venue_id.into(), seat_map: Some(map), expected_revision: None };
        self.client().import_seat_map(self.req(who, request)).await.map(tonic::Response::into_inner)
    }

    /// A valid CreateEventRequest a month ahead, its sale starting tomorrow.
    pub fn event_request(&self, venue_id: &str, name: &str) -> pb::CreateEventRequest {
        pb::CreateEventRequest {
            venue_id: venue_id.into(),
            name: name.into(),
            description: "An evening of live music.".into(),
            starts_at: Some(in_hours(24 * 30)),
            ends_at: Some(in_hours(24 * 30 + 3)),
            time_zone: String::new(),
            sale_starts_at: Some(in_hours(24)),
            sale_ends_at: Some(in_hours(24 * 29)),
            per_user_limit: None,
            organizer_id: String::new(),
            waiting_room: None,
            cancellation_policy: None,
        }
    }

    pub async fn draft(&self, who: Who, venue_id: &str) -> pb::Event {
        let request = self.event_request(venue_id, "Summer Night");
        self.client().create_event(self.req(who, request)).await.expect("create event").into_inner()
    }

    pub async fn ga_category(&self, who: Who, event_id: &str, name: &str, capacity: u32) -> pb::Category {
        let request = pb::CreateCategoryRequest {
            event_id: event_id.into(),
            name: name.into(),
            description: String::new(),
            price: eur(4_900),
            allocation: Some(pb::create_category_request::Allocation::GeneralAdmission(
                pb::GeneralAdmissionAllocation { capacity, area_id: String::new() },
            )),
        };
        self.client().create_category(self.req(who, request)).await.expect("create category").into_inner()
    }

    pub async fn seated_category(
        &self,
        who: Who,
        event_id: &str,
        name: &str,
        seat_ids: Vec<String>,
    ) -> Result<pb::Category, Status> {
        let request = pb::CreateCategoryRequest {
            event_id: event_id.into(),
            name: name.into(),
            description: String::new(),
            price: eur(9_900),
            allocation: Some(pb::create_category_request::Allocation::Seats(pb::SeatAllocation { seat_ids })),
        };
        self.client().create_category(self.req(who, request)).await.map(tonic::Response::into_inner)
    }

    pub async fn publish(&self, who: Who, event_id: &str) -> Result<pb::Event, Status> {
        let request = pb::PublishEventRequest { event_id: event_id.into() };
        self.client().publish_event(self.req(who, request)).await.map(tonic::Response::into_inner)
    }

    /// A published GA event of `who` at a new venue.
    pub async fn published_event(&self, who: Who) -> pb::Event {
        let venue = self.venue(who, "Arena").await;
        let draft = self.draft(who, &venue.id).await;
        self.ga_category(who, &draft.id, "Standing", 1_000).await;
        self.publish(who, &draft.id).await.expect("publish")
    }

    pub async fn get_event(&self, who: Who, event_id: &str) -> Result<pb::Event, Status> {
        let request = pb::GetEventRequest { event_id: event_id.into(), include_seat_ids: false };
        self.client().get_event(self.req(who, request)).await.map(tonic::Response::into_inner)
    }

    /// Waits for the relay to drain the outbox, then reads every envelope on `catalog.events`.
    pub async fn published_envelopes(&self, min: usize) -> Vec<(String, Envelope)> {
        ticketing_testkit::drained_topic(&self.db.pool, &self.kafka, "catalog.events", min)
            .await
            .iter()
            .map(|m| {
                let key = String::from_utf8(m.key().expect("keyed").to_vec()).unwrap();
                (key, Envelope::decode(m.payload().expect("payload")).unwrap())
            })
            .collect()
    }

    /// Waits for the relay to drain the outbox, then reads every record on `audit.events`,
    /// oldest first.
    pub async fn audit_records(&self, min: usize) -> Vec<AuditRecord> {
        ticketing_testkit::audit_records(&self.db.pool, &self.kafka, min).await
    }
}
