//! `POST /graphql` through the real gateway and services: after a purchase, an event's
//! categories and live counts agree with REST's availability, a venue comes with its seat
//! map, and `me` shows a buyer their own bookings and tickets, nobody else's.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::identity::v1::Role;

use crate::harness::{Options, Platform};
use crate::http::{Http, account, buy};

/// `query` as `token` (anonymous without one): the whole `{data, errors}` answer.
async fn graphql(http: &Http, query: &str, token: Option<&str>) -> Value {
    let body = json!({ "query": query });
    let (status, _, answer) = http.call(Method::POST, "/graphql", token, Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Each category's `(id, capacity, available, held, sold)`, sorted.
fn counts(categories: &Value, id: &str, counts: impl Fn(&Value) -> &Value) -> Vec<(String, [u64; 4])> {
    let mut found: Vec<(String, [u64; 4])> = categories
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| {
            let n = counts(c);
            let field = |name: &str| n[name].as_u64().unwrap_or_else(|| panic!("no {name} in {c}"));
            (c[id].as_str().unwrap().to_owned(), [field("capacity"), field("available"), field("held"), field("sold")])
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_reads_events_venues_and_only_the_callers_own_bookings() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 2, 4_000).await;
    let buyer = account(&http, &format!("graphql-{}@example.com", ticketing_testkit::unique())).await;
    let (booking, paid) = buy(&http, &buyer, &event.id, json!({"category_id": event.ga, "quantity": 2})).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    // Tickets are issued once the booking is confirmed, and the sale is in the counts by then.
    let tickets = http
        .wait_for(&format!("/v1/bookings/{booking}/tickets"), &buyer, |t| t.as_array().is_some_and(|t| t.len() == 2))
        .await;

    // Events of the venue, with their categories, prices and live counts, as REST says them.
    let rest = http.ok(Method::GET, &format!("/v1/events/{}", event.id), None, None, None).await;
    let venue = rest["venue_id"].as_str().unwrap().to_owned();
    let query = format!(
        r#"{{ events(venue: "{venue}", first: 10) {{ items {{ id name categories {{ id name price {{ currency minorUnits }}
             availability {{ capacity available held sold }} }} availability {{ categoryId capacity available held sold }} }} }} }}"#
    );
    let answer = graphql(&http, &query, None).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let items = answer["data"]["events"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{answer}");
    let listed = &items[0];
    assert_eq!((listed["id"].as_str(), listed["name"].as_str()), (Some(event.id.as_str()), rest["name"].as_str()));
    let availability = http.ok(Method::GET, &format!("/v1/events/{}/availability", event.id), None, None, None).await;
    let by_rest = counts(&availability["categories"], "category_id", |c| c);
    assert_eq!(counts(&listed["availability"], "categoryId", |c| c), by_rest, "the event's counts are REST's");
    assert_eq!(counts(&listed["categories"], "id", |c| &c["availability"]), by_rest, "so are each category's");
    let ga = by_rest.iter().find(|(id, _)| *id == event.ga).expect("the standing category");
    assert_eq!(ga.1, [10, 8, 0, 2], "two sold");
    let standing = listed["categories"].as_array().unwrap().iter().find(|c| c["id"] == event.ga.as_str()).unwrap();
    assert_eq!(standing["price"], json!({"currency": "EUR", "minorUnits": 4_000}));

    // The venue and its seat map, as REST's `seat_map=true` has them.
    let query = format!(
        r#"{{ venue(id: "{venue}") {{ name seatCount seatMap {{ sections {{ name rows {{ name seats {{ id label }} }} }}
             generalAdmissionAreas {{ name capacity }} }} }} }}"#
    );
    let answer = graphql(&http, &query, None).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let by_rest = http.ok(Method::GET, &format!("/v1/venues/{venue}?seat_map=true"), None, None, None).await;
    let seats = |sections: &Value| -> Vec<String> {
        let sections = sections.as_array().unwrap().iter();
        let rows = sections.flat_map(|s| s["rows"].as_array().unwrap().iter());
        rows.flat_map(|r| r["seats"].as_array().unwrap().iter()).map(|s| s["id"].as_str().unwrap().into()).collect()
    };
    let graph_venue = &answer["data"]["venue"];
    assert_eq!(graph_venue["name"], by_rest["name"]);
    assert_eq!(seats(&graph_venue["seatMap"]["sections"]), seats(&by_rest["seat_map"]["sections"]));
    assert!(seats(&graph_venue["seatMap"]["sections"]).contains(&event.seats[0]), "{graph_venue}");

    // The buyer's own bookings and tickets.
    let mine = "{ me { bookings { items { id status tickets { code } } } } }";
    let answer = graphql(&http, mine, Some(&buyer)).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let bookings = answer["data"]["me"]["bookings"]["items"].as_array().unwrap();
    assert_eq!(bookings.len(), 1, "{answer}");
    assert_eq!(
        (bookings[0]["id"].as_str(), bookings[0]["status"].as_str()),
        (Some(booking.as_str()), Some("confirmed"))
    );
    let codes = |tickets: &Value| -> Vec<String> {
        let mut codes: Vec<String> =
            tickets.as_array().unwrap().iter().map(|t| t["code"].as_str().unwrap().to_owned()).collect();
        codes.sort();
        codes
    };
    assert_eq!(codes(&bookings[0]["tickets"]), codes(&tickets), "the tickets REST lists");

    // Another user sees none of them, not even by id; anonymous `me` is UNAUTHENTICATED.
    let other = p.user(Role::User).await;
    let answer = graphql(&http, mine, Some(&other.token)).await;
    assert_eq!(answer["data"]["me"]["bookings"]["items"], json!([]), "{answer}");
    let by_id = format!(r#"{{ me {{ booking(id: "{booking}") {{ id tickets {{ code }} }} }} }}"#);
    for token in [&other.token, &organizer.token] {
        let answer = graphql(&http, &by_id, Some(token)).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "NOT_FOUND", "{answer}");
        assert_eq!(answer["data"]["me"], Value::Null, "{answer}");
    }
    let answer = graphql(&http, mine, None).await;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{answer}");
    assert_eq!(answer["data"]["me"], Value::Null, "{answer}");
}
