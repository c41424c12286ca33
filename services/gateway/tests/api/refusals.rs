//! A backend's refusals and failures as the client sees them: a refusal of its own type
//! that retrying does not help, a limit that says when to retry, deadlines and retries.

use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::json;
use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::inventory::v1 as inventory;
use tonic::{Code, Status};

use crate::harness::{Gateway, on_sale, send};

/// A GA hold on an event without a waiting room.
fn hold(gateway: &Gateway) -> RequestBuilder {
    let path = format!("/v1/events/{}/holds", gateway.has_event(on_sale(None)));
    let (_, buyer) = gateway.account(Role::User);
    gateway.call(Method::POST, &path).bearer_auth(buyer).json(&json!({"category_id": "ga", "quantity": 4}))
}

#[tokio::test]
async fn sold_out_is_a_409_of_its_own_and_only_a_limiter_is_a_429() {
    let gateway = Gateway::start().await;
    let refused = ticketing_platform::status::refused("SOLD_OUT", "only 3 left");
    gateway.backends.inventory.answer::<inventory::HoldDetails>("hold", Err(refused));
    let answer = send(hold(&gateway)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::CONFLICT, "sold-out"));
    assert_eq!(
        (answer.body["title"].as_str(), answer.body["detail"].as_str()),
        (Some("Sold out"), Some("only 3 left"))
    );
    assert_eq!(answer.retry_after(), None, "retrying does not help");

    let throttled =
        ticketing_platform::status::retry_after(Code::ResourceExhausted, "slow down", Duration::from_secs(7));
    gateway.backends.inventory.answer::<inventory::HoldDetails>("hold", Err(throttled));
    let answer = send(hold(&gateway)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::TOO_MANY_REQUESTS, "rate-limited"));
    assert_eq!(answer.retry_after(), Some("7"));
}

#[tokio::test]
async fn a_backend_out_of_time_is_a_504_and_one_that_never_answers_a_503() {
    let gateway = Gateway::start_with(|c| c.gateway.backend_timeout = Duration::from_millis(300)).await;
    gateway.backends.inventory.answer::<inventory::HoldDetails>("hold", Err(Status::deadline_exceeded("too slow")));
    let answer = send(hold(&gateway)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::GATEWAY_TIMEOUT, "timeout"));
    assert_eq!(answer.retry_after(), Some("1"));
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(detail.contains("Request id") && !detail.contains("too slow"), "a server error names no cause: {detail}");

    gateway.backends.inventory.on("hold", |_: inventory::HoldRequest| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(inventory::HoldDetails::default())
    });
    let started = Instant::now();
    let answer = send(hold(&gateway)).await;
    assert_eq!((answer.status, answer.problem()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    assert!(answer.retry_after().is_some());
    assert!(started.elapsed() < Duration::from_secs(3), "the deadline cut the call: {:?}", started.elapsed());
}

#[tokio::test]
async fn only_a_call_with_an_idempotency_key_is_repeated_after_unavailable() {
    let gateway = Gateway::start().await;
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = failures.clone();
    // Fails every other call: a backend whose pod went away under the first attempt.
    gateway.backends.booking.on("create_booking", move |request: booking::CreateBookingRequest| {
        let first = failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst).is_multiple_of(2);
        let reply = booking::BookingDetails { id: "b-1".into(), hold_id: request.hold_id, ..Default::default() };
        std::future::ready(if first { Err(Status::unavailable("pod gone")) } else { Ok(reply) })
    });
    let (_, buyer) = gateway.account(Role::User);
    let book = || gateway.call(Method::POST, "/v1/bookings").bearer_auth(&buyer).json(&json!({"hold_id": "h-1"}));

    let keyed = send(book().header("idempotency-key", "book-1")).await;
    assert_eq!((keyed.status, &keyed.body["id"]), (StatusCode::CREATED, &json!("b-1")), "{keyed:?}");
    assert_eq!(gateway.backends.booking.calls("create_booking"), 2, "retried once");
    let unkeyed = send(book()).await;
    assert_eq!((unkeyed.status, unkeyed.problem()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    assert_eq!(gateway.backends.booking.calls("create_booking"), 3, "not repeated: it might book twice");
}

#[tokio::test]
async fn the_door_and_the_services_agree_on_which_idempotency_keys_are_valid() {
    let gateway = Gateway::start().await;
    gateway.backends.booking.on("create_booking", |request: booking::CreateBookingRequest| {
        std::future::ready(Ok(booking::BookingDetails {
            id: "b-1".into(),
            hold_id: request.hold_id,
            ..Default::default()
        }))
    });
    let (_, buyer) = gateway.account(Role::User);
    let keys: [&[u8]; 7] = [b"k", b"order 42", b"tab\there", &[b'x'; 255], &[b'x'; 256], "é".as_bytes(), b""];
    for key in keys {
        let header = reqwest::header::HeaderValue::from_bytes(key).expect("a header value HTTP allows");
        let request = gateway.call(Method::POST, "/v1/bookings").bearer_auth(&buyer).header("idempotency-key", header);
        let answer = send(request.json(&json!({"hold_id": "h-1"}))).await;
        // What booking and payment would make of the key (the platform's check, behind the door).
        let services = std::str::from_utf8(key)
            .is_ok_and(|k| !k.is_empty() && ticketing_platform::idempotency::validate_key(k, "key").is_ok());
        if services {
            assert_eq!(answer.status, StatusCode::CREATED, "{key:?}: {answer:?}");
        } else {
            // Refused at the door, naming the header: not passed on to come back as a key reused.
            assert_eq!((answer.status, answer.problem()), (StatusCode::BAD_REQUEST, "validation-error"), "{key:?}");
            assert_eq!(answer.body["errors"][0]["field"], "Idempotency-Key", "{key:?}: {answer:?}");
        }
    }
    assert_eq!(gateway.backends.booking.calls("create_booking"), 3, "only the valid keys reached booking");
}
