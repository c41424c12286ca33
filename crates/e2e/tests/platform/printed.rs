//! Printed tickets end to end: a buyer downloads `tickets.pdf`, poppler renders its pages
//! as a printer would, the QR code read off each page admits at the gate once, and nobody
//! but the buyer can download it.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::json;
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::eventually_every;

use crate::harness::{Options, Platform};
use crate::http::{Http, account, buy, path_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_tickets_are_one_page_each_and_their_codes_admit_once() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 2, 4_000).await;
    let buyer = account(&http, &format!("printer-{}@example.com", ticketing_testkit::unique())).await;
    let (booking, paid) = buy(&http, &buyer, &event.id, json!({"category_id": event.ga, "quantity": 3})).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let tickets = http
        .wait_for(&format!("/v1/bookings/{booking}/tickets"), &buyer, |t| t.as_array().is_some_and(|t| t.len() == 3))
        .await;
    let listed: Vec<String> = tickets.as_array().unwrap().iter().map(|t| path_of(t, "code")).collect();

    // The event's name and venue come from catalog's events, on another topic than the
    // booking's: notification has them once it knows the organizer, who may then check in.
    let garbage = json!({"code": "garbage", "event_id": event.id});
    let what = "notification to learn the event";
    eventually_every(what, Duration::from_secs(60), Duration::from_millis(200), || async {
        let (status, _, answer) =
            http.call(Method::POST, "/v1/checkin", Some(&organizer.token), Some(garbage.clone()), None).await;
        if status == StatusCode::UNPROCESSABLE_ENTITY { Ok(()) } else { Err(format!("{status} {answer}")) }
    })
    .await;

    let pdf_path = format!("/v1/bookings/{booking}/tickets.pdf");
    let response = download(&http, &pdf_path, &buyer).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"tickets-{booking}.pdf\"").as_str()
    );
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-store", "no shared cache keeps the tickets");
    let pdf = response.bytes().await.unwrap();

    // Only its owner prints it: another buyer and even an admin are told it does not exist.
    let stranger = account(&http, &format!("stranger-{}@example.com", ticketing_testkit::unique())).await;
    for (who, token) in [("another buyer", stranger.as_str()), ("an admin", p.admin.token.as_str())] {
        let (status, headers, problem) = http.call(Method::GET, &pdf_path, Some(token), None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {problem}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    }

    // Rendered like a printer would: one page per ticket, each QR code the ticket's code.
    let printed = ticketing_testkit::pdf::qr_codes(&pdf);
    assert_eq!(printed, listed, "a page per ticket, each with its static code, in the booking's order");
    let text = ticketing_testkit::pdf::text(&pdf);
    for expected in ["The Eras Tour", "Arena", &booking, "Fan", "TICKET 1 OF 3"] {
        assert!(text.contains(expected), "{expected:?} is not printed:\n{text}");
    }

    // The code read off paper admits once, at a gate that takes printed tickets.
    let scan = json!({"code": printed[0], "event_id": event.id, "gate_id": "print-1"});
    let admitted = http.ok(Method::POST, "/v1/checkin", Some(&organizer.token), Some(scan.clone()), None).await;
    assert_eq!((admitted["admit"].as_bool(), admitted["result"].as_str()), (Some(true), Some("valid")), "{admitted}");
    let again = http.ok(Method::POST, "/v1/checkin", Some(&organizer.token), Some(scan), None).await;
    assert_eq!((again["admit"].as_bool(), again["result"].as_str()), (Some(false), Some("already_scanned")), "{again}");
}

async fn download(http: &Http, path: &str, token: &str) -> reqwest::Response {
    http.client.get(format!("{}{path}", http.base)).bearer_auth(token).send().await.expect("the gateway answers")
}
