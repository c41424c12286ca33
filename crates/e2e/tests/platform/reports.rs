//! Sales reports through the gateway: an event sells in two categories, one booking is
//! cancelled and refunded, a hold stays open; the organizer's stats then agree with
//! inventory's counts and with what payment charged and refunded, the series adds up to the
//! totals, and the CSV export lists every booking with its amounts.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::eventually_every;

use ticketing_proto::payment::v1::GetPaymentRequest;
use ticketing_proto::payment::v1::get_payment_request::Lookup;

use crate::harness::{Options, Platform, authed};
use crate::http::{Http, account, buy, path_of};

/// The minor units of `currency` in a list of money.
fn amount(list: &Value, currency: &str) -> i64 {
    let list = list.as_array().unwrap_or_else(|| panic!("a list of money: {list}"));
    list.iter().filter(|m| m["currency"] == currency).map(|m| m["minor_units"].as_i64().unwrap()).sum()
}

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("a count: {value}"))
}

/// RFC 4180 records: fields split on commas outside quotes, `""` an escaped quote, records
/// ended by CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "records end with CRLF"),
            (false, '\n') => panic!("a bare LF ends a record"),
            (false, c) => field.push(c),
        }
        if !quoted && c == '\r' {
            record.push(std::mem::take(&mut field));
            records.push(std::mem::take(&mut record));
        }
    }
    assert!(field.is_empty() && record.is_empty(), "the last record ends with CRLF");
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_an_organizers_stats_and_bookings_agree_with_inventory_and_payment() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let started = chrono::Utc::now();
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 4, 4_000).await;
    let org = Some(organizer.token.as_str());
    let stats_path = format!("/v1/events/{}/stats", event.id);
    let csv_path = format!("/v1/events/{}/bookings.csv", event.id);

    // Three buyers in two categories; the first cancels and is refunded, a fourth holds.
    let mut buyers = Vec::new();
    for _ in 0..4 {
        let token = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
        let me = http.ok(Method::GET, "/v1/me", Some(&token), None, None).await;
        buyers.push((token, path_of(&me, "id")));
    }
    let selections = [
        json!({"category_id": event.ga, "quantity": 2}),
        json!({"seat_ids": [event.seats[0], event.seats[1]]}),
        json!({"category_id": event.ga, "quantity": 1}),
    ];
    let mut charged = 0;
    let mut bookings = Vec::new();
    for ((token, _), selection) in buyers.iter().zip(selections) {
        let (booking, paid) = buy(&http, token, &event.id, selection).await;
        assert_eq!(paid["status"], "succeeded", "{paid}");
        charged += paid["amount"]["minor_units"].as_i64().unwrap();
        http.wait_for(&format!("/v1/bookings/{booking}"), token, |b| b["status"] == "confirmed").await;
        bookings.push(booking);
    }
    let (refunder, refunded) = (&buyers[0].0, &bookings[0]);
    let (status, _, cancelled) = http
        .call(Method::POST, &format!("/v1/bookings/{refunded}/cancel"), Some(refunder), Some(json!({})), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    http.wait_for(&format!("/v1/bookings/{refunded}"), refunder, |b| b["status"] == "refunded").await;
    // What payment says it gave back.
    let lookup = GetPaymentRequest { lookup: Some(Lookup::BookingId(refunded.clone())) };
    let payment = p.payment.clone().get_payment(authed(lookup, &p.admin)).await.expect("the payment").into_inner();
    let refunded_minor = payment.refunded_amount.as_ref().map_or(0, |m| m.minor_units);
    assert_eq!(refunded_minor, 8_000, "{payment:?}");
    let hold = json!({"category_id": event.ga, "quantity": 1});
    let key = format!("hold-{}", ticketing_testkit::unique());
    let (status, _, held) = http
        .call(Method::POST, &format!("/v1/events/{}/holds", event.id), Some(&buyers[3].0), Some(hold), Some(&key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");

    // Strangers see nothing; the organizer waits for the refund and the restock to show.
    let stranger = p.user(Role::Organizer).await;
    for (token, refused) in [(Some(stranger.token.as_str()), 403), (Some(buyers[1].0.as_str()), 403), (None, 401)] {
        for path in [&stats_path, &csv_path] {
            let (status, headers, problem) = http.call(Method::GET, path, token, None, None).await;
            assert_eq!(status.as_u16(), refused, "{path}: {problem}");
            assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json");
        }
    }
    let window = format!(
        "{stats_path}?bucket=hour&from={}&to={}",
        (started - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let stats =
        eventually_every("the stats to settle", Duration::from_secs(60), Duration::from_millis(200), || async {
            let (status, _, stats) = http.call(Method::GET, &window, org, None, None).await;
            assert_eq!(status, StatusCode::OK, "{stats}");
            let t = &stats["totals"];
            let settled = (number(&t["sold"]), number(&t["held"]), number(&t["tickets_refunded"])) == (3, 1, 2);
            if settled { Ok(stats) } else { Err(stats.to_string()) }
        })
        .await;

    let totals = &stats["totals"];
    assert_eq!(number(&totals["capacity"]), 14);
    assert_eq!(number(&totals["tickets_sold"]), 5, "{stats}");
    assert_eq!(amount(&totals["revenue"], "EUR"), charged, "every ticket sold was charged");
    assert_eq!(amount(&totals["refunds"], "EUR"), refunded_minor, "what payment refunded");
    assert_eq!(amount(&totals["net"], "EUR"), charged - refunded_minor);
    let categories = stats["categories"].as_array().unwrap();
    assert_eq!(categories.len(), 2, "{stats}");
    for c in categories {
        let (sold, held, available) = (number(&c["sold"]), number(&c["held"]), number(&c["available"]));
        assert_eq!(sold + held + available, number(&c["capacity"]), "{c}");
    }
    let ga = categories.iter().find(|c| c["category_id"] == event.ga.as_str()).unwrap();
    let seated = categories.iter().find(|c| c["category_id"] == event.seated.as_str()).unwrap();
    assert_eq!((number(&ga["sold"]), number(&ga["held"]), number(&ga["available"])), (1, 1, 8), "restocked: {ga}");
    assert_eq!((number(&ga["tickets_sold"]), number(&ga["tickets_refunded"])), (3, 2));
    assert_eq!((amount(&ga["revenue"], "EUR"), amount(&ga["refunds"], "EUR")), (12_000, 8_000));
    assert_eq!((number(&seated["sold"]), number(&seated["tickets_sold"])), (2, 2));
    assert_eq!(amount(&seated["net"], "EUR"), 8_000);

    // The series covers the window hour by hour and adds up to the totals.
    let series = &stats["series"];
    assert_eq!(series["bucket"], "hour");
    let points = series["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{series}");
    let sum = |field: &str| -> i64 {
        points.iter().map(|p| p[field].as_i64().or_else(|| p[field]["minor_units"].as_i64()).unwrap()).sum()
    };
    assert_eq!((sum("tickets_sold"), sum("tickets_refunded")), (5, 2));
    assert_eq!((sum("revenue"), sum("refunds")), (charged, refunded_minor));
    let (status, _, problem) = http.call(Method::GET, &format!("{stats_path}?bucket=week"), org, None, None).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("bucket")));
    let (status, _, problem) = http
        .call(
            Method::GET,
            &format!("{stats_path}?bucket=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z"),
            org,
            None,
            None,
        )
        .await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("to")), "{problem}");

    // The export: a header and one record per booking, newest first, amounts as charged.
    let response =
        http.client.get(format!("{}{csv_path}", http.base)).bearer_auth(&organizer.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    let records = parse_csv(&response.text().await.unwrap());
    assert_eq!(records[0][..4], ["booking_id", "status", "created_at", "confirmed_at"]);
    let column = |name: &str| records[0].iter().position(|c| c == name).unwrap_or_else(|| panic!("no {name}"));
    let rows = &records[1..];
    let ids: Vec<&str> = rows.iter().map(|r| r[column("booking_id")].as_str()).collect();
    assert_eq!(
        ids,
        [bookings[2].as_str(), bookings[1].as_str(), bookings[0].as_str()],
        "one per booking, newest first"
    );
    let expected =
        [("2", "refunded", "80.00", "80.00"), ("2", "confirmed", "80.00", "0.00"), ("1", "confirmed", "40.00", "0.00")];
    for (i, (quantity, status, total, refunded)) in expected.into_iter().enumerate() {
        let row = &rows[2 - i];
        assert_eq!(row.len(), records[0].len(), "{row:?}");
        let got = (
            row[column("quantity")].as_str(),
            row[column("status")].as_str(),
            row[column("total")].as_str(),
            row[column("refunded")].as_str(),
        );
        assert_eq!(got, (quantity, status, total, refunded), "{row:?}");
        assert_eq!((row[column("currency")].as_str(), row[column("user_id")].as_str()), ("EUR", buyers[i].1.as_str()));
        assert!(chrono::DateTime::parse_from_rfc3339(&row[column("confirmed_at")]).is_ok(), "{row:?}");
    }
    let seats = &rows[1][column("seats")];
    assert!(seats.contains(", ") && seats.contains("; "), "two seat labels, commas and all: {seats}");
    let net: f64 = rows
        .iter()
        .map(|r| r[column("total")].parse::<f64>().unwrap() - r[column("refunded")].parse::<f64>().unwrap())
        .sum();
    assert_eq!((net * 100.0).round() as i64, charged - refunded_minor);
}
