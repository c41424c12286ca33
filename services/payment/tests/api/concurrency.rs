//! I3 under contention: a thousand concurrent Charge calls for one booking, with
//! repeated and distinct idempotency keys, charge the card exactly once.

use std::collections::HashMap;
use std::time::Duration;

use ticketing_proto::payment::v1 as pb;
use tonic::Code;

use crate::helpers::{Booking, spawn_with, types};

const REQUESTS: usize = 1000;
const KEYS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_charges_for_one_booking_charge_once() {
    let app = spawn_with(|c| {
        c.database.max_connections = 16;
        c.database.acquire_timeout = Duration::from_secs(60);
        // A thousand calls queue for sixteen connections: give the provider call time.
        c.payment.client_deadline = Duration::from_secs(5);
        c.payment.simulated.slow_delay = Duration::from_secs(10);
        c.payment.pending_timeout = Duration::from_secs(60);
    })
    .await;
    let booking = Booking::new();
    app.create_booking(&booking).await;

    let app = std::sync::Arc::new(app);
    let calls: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (app, booking) = (app.clone(), booking.clone());
            // Every key is used 40 times, interleaved with the others.
            let key = format!("key-{}", i % KEYS);
            tokio::spawn(async move {
                let result = app.charge(booking.user, booking.charge("tok_visa", &key)).await;
                (key, result)
            })
        })
        .collect();
    let mut by_key: HashMap<String, Vec<Result<pb::PaymentDetails, tonic::Status>>> = HashMap::new();
    for call in futures::future::join_all(calls).await {
        let (key, result) = call.unwrap();
        by_key.entry(key).or_default().push(result);
    }

    let mut winners = Vec::new();
    let (mut aborted, mut refused) = (0, 0);
    for (key, results) in &by_key {
        // Per key: every answer that is not "in progress, retry" is the same answer.
        let settled: Vec<_> = results.iter().filter(|r| !matches!(r, Err(s) if s.code() == Code::Aborted)).collect();
        aborted += results.len() - settled.len();
        let first = settled.first().unwrap_or_else(|| panic!("{key}: every call was aborted"));
        for other in &settled {
            match (first, other) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{key}: a replay differs from the first answer"),
                (Err(a), Err(b)) => {
                    assert_eq!((a.code(), a.message()), (b.code(), b.message()), "{key}: a replayed error differs")
                }
                (a, b) => panic!("{key}: answers disagree: {a:?} vs {b:?}"),
            }
        }
        match first {
            Ok(payment) => winners.push(payment.clone()),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{key}: {status:?}");
                refused += 1;
            }
        }
    }
    let ids: Vec<&str> = winners.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(winners.len(), 1, "exactly one key got a payment: {ids:?}");
    let payment = &winners[0];
    assert_eq!(payment.status(), pb::PaymentStatus::Succeeded);
    assert_eq!(refused, KEYS - 1, "every other key found the booking charged");
    tracing::info!(aborted, "calls told to retry");

    assert_eq!(app.ledger_charges().await, 1, "exactly one charge at the provider");
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM payments").fetch_all(&app.db.pool).await.unwrap();
    assert_eq!(rows, [(payment.id.parse().unwrap(), "succeeded".to_owned())], "one payment row");
    let events = app.payment_events(booking.id, 1).await;
    assert_eq!(types(&events), ["PaymentSucceeded"], "one event");
}
