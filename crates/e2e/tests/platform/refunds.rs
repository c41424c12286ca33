//! Cancelling paid bookings through the REST API: the event's cancellation policy, a
//! scanned ticket that blocks the buyer's cancellation (decided atomically with check-in,
//! first writer wins), and an admin's refund by hand.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::catalog::v1::CancellationPolicy;
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::eventually_every;

use crate::harness::{Event, Options, Platform, Sale};
use crate::http::{Http, account, buy_with, path_of};

const PROBLEMS: &str = "https://ticketing.dev/problems/";

/// A confirmed booking of `selection` by `token`, paid with `card`, and its ticket codes.
async fn confirmed(http: &Http, token: &str, event: &Event, selection: Value, tickets: usize) -> (String, Vec<String>) {
    let (booking, paid) = buy_with(http, token, &event.id, selection, "tok_visa").await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    http.wait_for(&format!("/v1/bookings/{booking}"), token, |b| b["status"] == "confirmed").await;
    let issued = http
        .wait_for(&format!("/v1/bookings/{booking}/tickets"), token, |t| {
            t.as_array().is_some_and(|t| t.len() == tickets)
        })
        .await;
    let codes = issued.as_array().unwrap().iter().map(|t| path_of(t, "code")).collect();
    (booking, codes)
}

async fn cancel(http: &Http, token: &str, booking: &str, reason: &str) -> (StatusCode, Value) {
    let path = format!("/v1/bookings/{booking}/cancel");
    let (status, _, body) = http.call(Method::POST, &path, Some(token), Some(json!({"reason": reason})), None).await;
    (status, body)
}

/// Scans `code` at `event`'s gate as `gate` (the organizer), waiting while notification
/// has not yet learnt who organizes the event (it answers 403 until then).
async fn check_in(http: &Http, gate: &str, event: &Event, code: &str) -> Value {
    let body = json!({"code": code, "event_id": event.id, "gate_id": "north-1"});
    let what = "notification to learn who organizes the event";
    eventually_every(what, Duration::from_secs(60), Duration::from_millis(200), || async {
        let (status, _, answer) = http.call(Method::POST, "/v1/checkin", Some(gate), Some(body.clone()), None).await;
        if status == StatusCode::FORBIDDEN {
            return Err(format!("{status} {answer}"));
        }
        assert_eq!(status, StatusCode::OK, "{answer}");
        Ok(answer)
    })
    .await
}

async fn ticket_states(http: &Http, token: &str, booking: &str) -> Vec<String> {
    let tickets = http.ok(Method::GET, &format!("/v1/bookings/{booking}/tickets"), Some(token), None, None).await;
    tickets.as_array().unwrap().iter().map(|t| path_of(t, "status")).collect()
}

async fn seat_state(http: &Http, event: &Event, seat: usize) -> String {
    let path = format!("/v1/events/{}/availability?seats=true", event.id);
    let availability = http.ok(Method::GET, &path, None, None, None).await;
    let seats = availability["seats"].as_array().unwrap();
    let found = seats.iter().find(|s| s["seat_id"] == event.seats[seat].as_str()).expect("the seat");
    path_of(found, "state")
}

fn assert_refused(status: StatusCode, problem: &Value, kind: &str) {
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], format!("{PROBLEMS}{kind}"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_cancel_only_within_the_events_policy_and_admins_refund_by_hand_with_a_reason() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    // The events start in 30 days: a 31-day cut-off has passed already.
    let past_cutoff = CancellationPolicy { no_buyer_cancellation: false, cutoff_minutes: 31 * 24 * 60 };
    let all_final = CancellationPolicy { no_buyer_cancellation: true, cutoff_minutes: 0 };
    let with = |policy| Sale { cancellation: Some(policy), ..Sale::default() };
    let late = p.event_with(&organizer, 10, 1, 5_000, with(past_cutoff)).await;
    let strict = p.event_with(&organizer, 10, 1, 5_000, with(all_final)).await;
    let open = p.event(&organizer, 10, 1, 5_000).await;
    let detail = http.ok(Method::GET, &format!("/v1/events/{}", late.id), None, None, None).await;
    assert_eq!(detail["cancellation_policy"], json!({"no_buyer_cancellation": false, "cutoff_minutes": 44_640}));
    let buyer = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let ga = |event: &Event| json!({"category_id": event.ga, "quantity": 1});

    for (event, words) in [(&late, "could be cancelled until"), (&strict, "all sales are final")] {
        let (booking, _) = confirmed(&http, &buyer, event, ga(event), 1).await;
        let (status, problem) = cancel(&http, &buyer, &booking, "cannot make it").await;
        assert_refused(status, &problem, "cancellation-closed");
        assert!(problem["detail"].as_str().unwrap().contains(words), "{problem}");
        let kept = http.ok(Method::GET, &format!("/v1/bookings/{booking}"), Some(&buyer), None, None).await;
        assert_eq!(kept["status"], "confirmed", "a refusal changes nothing");
        assert_eq!(ticket_states(&http, &buyer, &booking).await, ["issued"]);

        // An admin refunds by hand, and must say why.
        let (status, problem) = cancel(&http, &p.admin.token, &booking, " ").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "reason", "{problem}");
        let (status, refunded) = cancel(&http, &p.admin.token, &booking, "venue flooded; goodwill refund").await;
        assert_eq!(status, StatusCode::OK, "{refunded}");
        assert_eq!(refunded["status"], "refund_pending");
        assert_eq!(ticket_states(&http, &buyer, &booking).await, ["revoked"]);
        http.wait_for(&format!("/v1/bookings/{booking}"), &buyer, |b| b["status"] == "refunded").await;
    }

    let (booking, _) = confirmed(&http, &buyer, &open, ga(&open), 1).await;
    let (status, cancelled) = cancel(&http, &buyer, &booking, "").await;
    assert_eq!((status, &cancelled["status"]), (StatusCode::OK, &json!("refund_pending")), "{cancelled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanned_ticket_blocks_the_buyers_cancellation_and_an_admins_refund_keeps_its_seats_off_sale() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 1, 4, 5_000).await;
    let buyer = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let seats = |i: &[usize]| json!({"seat_ids": i.iter().map(|&i| event.seats[i].clone()).collect::<Vec<_>>()});
    let (attended, codes) = confirmed(&http, &buyer, &event, seats(&[0, 1]), 2).await;

    let admitted = check_in(&http, &organizer.token, &event, &codes[0]).await;
    assert_eq!(admitted["result"], "valid", "{admitted}");
    let (status, problem) = cancel(&http, &buyer, &attended, "left early").await;
    assert_refused(status, &problem, "ticket-scanned");
    let kept = http.ok(Method::GET, &format!("/v1/bookings/{attended}"), Some(&buyer), None, None).await;
    assert_eq!(kept["status"], "confirmed");
    assert_eq!(ticket_states(&http, &buyer, &attended).await, ["scanned", "issued"], "the other ticket still admits");

    let (status, refunded) = cancel(&http, &p.admin.token, &attended, "double-charged at the box office").await;
    assert_eq!((status, &refunded["status"]), (StatusCode::OK, &json!("refund_pending")), "{refunded}");
    assert_eq!(ticket_states(&http, &buyer, &attended).await, ["revoked", "revoked"]);
    let second = check_in(&http, &organizer.token, &event, &codes[1]).await;
    assert_eq!((second["admit"].as_bool(), second["result"].as_str()), (Some(false), Some("revoked")), "{second}");

    // Someone sat in seat 0, so the refund puts neither seat back on sale. The test broker
    // has one partition, so booking handles refund requests in order: once a later buyer's
    // cancelled seat is back, the admin's refund request has been handled too.
    let other = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let (later, _) = confirmed(&http, &other, &event, seats(&[2]), 1).await;
    let (status, _) = cancel(&http, &other, &later, "").await;
    assert_eq!(status, StatusCode::OK);
    let what = "the later cancellation's seat to come back";
    eventually_every(what, Duration::from_secs(60), Duration::from_millis(200), || async {
        (seat_state(&http, &event, 2).await == "available").then_some(())
    })
    .await;
    assert_eq!(
        (seat_state(&http, &event, 0).await, seat_state(&http, &event, 1).await),
        ("sold".into(), "sold".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_racing_a_check_in_lets_exactly_one_win() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event_with_limit(&organizer, 20, 1, 5_000, 20).await;
    let buyer = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    // Notification learns the event's organizer through Kafka: let a first scan through.
    let (_, codes) = confirmed(&http, &buyer, &event, json!({"category_id": event.ga, "quantity": 1}), 1).await;
    check_in(&http, &organizer.token, &event, &codes[0]).await;
    for round in 0..8u64 {
        let (booking, codes) =
            confirmed(&http, &buyer, &event, json!({"category_id": event.ga, "quantity": 1}), 1).await;
        let scan = json!({"code": codes[0], "event_id": event.id, "gate_id": "north-1"});
        // A scan is one call and a cancellation several: stagger the scan so that either
        // may get to the tickets first.
        let lag = Duration::from_millis(3 * round);
        let ((cancelled, problem), (_, _, answer)) = tokio::join!(cancel(&http, &buyer, &booking, "race"), async {
            tokio::time::sleep(lag).await;
            http.call(Method::POST, "/v1/checkin", Some(&organizer.token), Some(scan), None).await
        });
        let state = http.ok(Method::GET, &format!("/v1/bookings/{booking}"), Some(&buyer), None, None).await;
        let tickets = ticket_states(&http, &buyer, &booking).await;
        if answer["admit"] == true {
            assert_refused(cancelled, &problem, "ticket-scanned");
            assert_eq!((&state["status"], tickets), (&json!("confirmed"), vec!["scanned".to_owned()]), "{round}");
        } else {
            assert_eq!(cancelled, StatusCode::OK, "round {round}: neither won: {problem} {answer}");
            assert_eq!(answer["result"], "revoked", "round {round}: {answer}");
            assert_eq!((&state["status"], tickets), (&json!("refund_pending"), vec!["revoked".to_owned()]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_left_half_done_by_a_dead_replica_is_finished_by_the_sweeper() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 1, 2, 5_000).await;
    let buyer = account(&http, &format!("fan-{}@example.com", ticketing_testkit::unique())).await;
    let (booking, _) = confirmed(&http, &buyer, &event, json!({"seat_ids": [event.seats[0]]}), 1).await;

    // What a replica leaves when it dies right after recording the request: the booking
    // still CONFIRMED, its tickets still valid, the request older than the sweeper's age.
    let recorded = sqlx::query(
        "UPDATE bookings SET cancel_requested_at = now() - interval '1 hour', cancel_requested_by = user_id,
                             cancel_detail = 'replica died' WHERE id = $1::uuid AND status = 'confirmed'",
    )
    .bind(&booking)
    .execute(&p.dbs["booking"].pool)
    .await
    .expect("record a cancellation request");
    assert_eq!(recorded.rows_affected(), 1);

    http.wait_for(&format!("/v1/bookings/{booking}"), &buyer, |b| b["status"] == "refund_pending").await;
    assert_eq!(ticket_states(&http, &buyer, &booking).await, ["revoked"]);
    let what = "the seat to come back on sale";
    eventually_every(what, Duration::from_secs(60), Duration::from_millis(200), || async {
        (seat_state(&http, &event, 0).await == "available").then_some(())
    })
    .await;
}
