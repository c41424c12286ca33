//! Catalog and inventory binaries joined by Kafka: an organizer publishes an event,
//! inventory turns `EventPublished` into stock, and buyers hold and buy from it.

use std::time::{Duration, SystemTime};

use ticketing_platform::auth::{Role, Scope};
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::catalog::v1::catalog_client::CatalogClient;
use ticketing_proto::common::v1::Money;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::inventory::v1::inventory_client::InventoryClient;
use ticketing_testkit::{TestIssuer, eventually_every};

use crate::Process;

fn at(offset: Duration, future: bool) -> Option<prost_types::Timestamp> {
    let now = SystemTime::now();
    Some((if future { now + offset } else { now - offset }).into())
}

fn org<T>(issuer: &TestIssuer, organizer: uuid::Uuid, message: T) -> tonic::Request<T> {
    issuer.authed(message, organizer, &[Role::Organizer])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_becomes_stock_buyers_can_hold_and_buy() {
    ticketing_testkit::init_logging();
    let issuer = TestIssuer::start().await;
    let kafka = ticketing_testkit::kafka_config();
    let auth = [("TICKETING_AUTH__JWKS_URL", issuer.auth.jwks_url.clone())];
    let mut catalog_process = Process::start_with("catalog", &kafka, &auth).await;
    let mut inventory_process = Process::start_with("inventory", &kafka, &auth).await;
    catalog_process.wait_serving().await;
    inventory_process.wait_serving().await;
    let mut catalog = CatalogClient::new(catalog_process.channel().await.expect("catalog channel"));
    let mut stock = InventoryClient::new(inventory_process.channel().await.expect("inventory channel"));

    let organizer = uuid::Uuid::new_v4();
    let venue = catalog
        .create_venue(org(
            &issuer,
            organizer,
            catalog::CreateVenueRequest {
                name: "Arena".into(),
                address: "1 Main St".into(),
                city: "Berlin".into(),
                country_code: "DE".into(),
                time_zone: "Europe/Berlin".into(),
                organizer_id: String::new(),
            },
        ))
        .await
        .expect("create venue")
        .into_inner();
    let rows = (1..=2)
        .map(|r| catalog::Row {
            name: r.to_string(),
            seats: (1..=5).map(|n| catalog::Seat { number: n.to_string(), ..Default::default() }).collect(),
            ..Default::default()
        })
        .collect();
    let seat_map = catalog::SeatMap {
        sections: vec![catalog::Section { name: "Block A".into(), rows, ..Default::default() }],
        general_admission_areas: vec![],
    };
    let venue = catalog
        .import_seat_map(org(
            &issuer,
            organizer,
            catalog::ImportSeatMapRequest {
                venue_id: venue.id.clone(),
                seat_map: Some(seat_map),
                expected_revision: None,
            },
        ))
        .await
        .expect("import seat map")
        .into_inner();
    let venue = catalog
        .get_venue(org(&issuer, organizer, catalog::GetVenueRequest { venue_id: venue.id, include_seat_map: true }))
        .await
        .unwrap()
        .into_inner();
    let seats: Vec<String> =
        venue.seat_map.unwrap().sections[0].rows.iter().flat_map(|r| r.seats.iter().map(|s| s.id.clone())).collect();
    assert_eq!(seats.len(), 10);

    let event = catalog
        .create_event(org(
            &issuer,
            organizer,
            catalog::CreateEventRequest {
                venue_id: venue.id.clone(),
                name: "The Eras Tour".into(),
                description: "Night one".into(),
                starts_at: at(Duration::from_secs(30 * 86400), true),
                ends_at: at(Duration::from_secs(30 * 86400 + 10800), true),
                time_zone: "Europe/Berlin".into(),
                sale_starts_at: at(Duration::from_secs(60), false),
                sale_ends_at: at(Duration::from_secs(86400), true),
                per_user_limit: Some(4),
                organizer_id: String::new(),
                waiting_room: None,
                cancellation_policy: None,
            },
        ))
        .await
        .expect("create event")
        .into_inner();
    let price = Some(Money { currency: "EUR".into(), minor_units: 8900 });
    let floor = catalog
        .create_category(org(
            &issuer,
            organizer,
            catalog::CreateCategoryRequest {
                event_id: event.id.clone(),
                name: "Floor".into(),
                description: String::new(),
                price: price.clone(),
                allocation: Some(catalog::create_category_request::Allocation::GeneralAdmission(
                    catalog::GeneralAdmissionAllocation { capacity: 50, area_id: String::new() },
                )),
            },
        ))
        .await
        .expect("GA category")
        .into_inner();
    let seated = catalog
        .create_category(org(
            &issuer,
            organizer,
            catalog::CreateCategoryRequest {
                event_id: event.id.clone(),
                name: "Block A".into(),
                description: String::new(),
                price,
                allocation: Some(catalog::create_category_request::Allocation::Seats(catalog::SeatAllocation {
                    seat_ids: seats.clone(),
                })),
            },
        ))
        .await
        .expect("seated category")
        .into_inner();
    catalog
        .publish_event(org(&issuer, organizer, catalog::PublishEventRequest { event_id: event.id.clone() }))
        .await
        .expect("publish");

    // Inventory learns of the event through Kafka alone.
    let what = "inventory to receive the published event";
    let availability = eventually_every(what, Duration::from_secs(60), Duration::from_millis(100), || {
        let (mut stock, event) = (stock.clone(), event.id.clone());
        async move {
            let request = inventory::AvailabilityRequest { event_id: event, ..Default::default() };
            stock.availability(request).await.map(tonic::Response::into_inner)
        }
    })
    .await;
    let capacity = |id: &str| availability.categories.iter().find(|c| c.category_id == id).map(|c| c.capacity);
    assert_eq!(capacity(&floor.id), Some(50));
    assert_eq!(capacity(&seated.id), Some(10));

    // A buyer holds adjacent seats and the booking service confirms them; the limit of 4 holds.
    let buyer = uuid::Uuid::new_v4();
    let best = inventory::hold_request::Selection::BestAvailable(inventory::BestAvailableSelection {
        category_id: seated.id.clone(),
        quantity: 3,
        require_adjacent: true,
    });
    let hold = stock
        .hold(issuer.authed(
            inventory::HoldRequest { event_id: event.id.clone(), selection: Some(best), idempotency_key: "k1".into() },
            buyer,
            &[Role::User],
        ))
        .await
        .expect("hold the sale has started by now")
        .into_inner();
    assert_eq!(hold.lines[0].seat_ids, seats[..3].to_vec(), "the best three seats, adjacent in row 1");
    let sold = stock
        .confirm(issuer.as_service(
            inventory::ConfirmRequest {
                hold_id: hold.hold_id.clone(),
                fencing_token: hold.fencing_token,
                booking_id: "booking-1".into(),
            },
            uuid::Uuid::new_v4(),
            &[Scope::InventoryHolds],
        ))
        .await
        .expect("confirm")
        .into_inner();
    assert_eq!(sold.status, inventory::HoldStatus::Confirmed as i32);
    let ga = inventory::hold_request::Selection::GeneralAdmission(inventory::GeneralAdmissionSelection {
        category_id: floor.id.clone(),
        quantity: 2,
    });
    let over = stock
        .hold(issuer.authed(
            inventory::HoldRequest { event_id: event.id.clone(), selection: Some(ga), idempotency_key: String::new() },
            buyer,
            &[Role::User],
        ))
        .await
        .unwrap_err();
    assert_eq!(over.code(), tonic::Code::FailedPrecondition, "3 bought + 2 exceeds the limit of 4: {over:?}");
}
