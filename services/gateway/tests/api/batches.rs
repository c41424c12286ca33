//! Holds carried to inventory in batches: concurrent buyers share calls yet each gets the
//! answer of their own hold; a failed batch is repeated only when every hold in it has an
//! idempotency key; and batch size 1 calls inventory once per hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use ticketing_platform::auth::Role;
use ticketing_proto::inventory::v1 as inventory;
use tonic::Status;

use crate::harness::{Gateway, on_sale, send};

/// Inventory answering a GA hold of `q` tickets with hold `h-<q>`, but for 3: sold out.
fn holds_by_quantity(gateway: &Gateway, pause: Duration) {
    gateway.backends.inventory.on("hold", move |request: inventory::HoldRequest| async move {
        tokio::time::sleep(pause).await;
        let Some(inventory::hold_request::Selection::GeneralAdmission(ga)) = request.selection else {
            return Err(Status::invalid_argument("GA only"));
        };
        if ga.quantity == 3 {
            return Err(ticketing_platform::status::refused("SOLD_OUT", "2 left"));
        }
        Ok(inventory::HoldDetails { hold_id: format!("h-{}", ga.quantity), ..Default::default() })
    });
}

/// How many batches of `call` the gateway sent, and with how many items in all.
fn batches(metrics: &str, call: &str) -> (u64, u64) {
    let value = |name: &str| {
        let prefix = format!("gateway_inventory_batch_size_{name}{{call=\"{call}\",service=\"gateway\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.parse::<f64>().expect("a count") as u64)
    };
    (value("count"), value("sum"))
}

#[tokio::test]
async fn concurrent_holds_share_calls_and_each_gets_its_own_answer() {
    let gateway = Gateway::start_with(|c| c.gateway.inventory_batches_in_flight = 1).await;
    holds_by_quantity(&gateway, Duration::from_millis(50));
    let path = format!("/v1/events/{}/holds", gateway.has_event(on_sale(None)));
    let answers = futures::future::join_all((0..24u32).map(|i| {
        let (_, buyer) = gateway.account(Role::User);
        let body = json!({"category_id": "ga", "quantity": i % 4 + 1});
        send(gateway.call(Method::POST, &path).bearer_auth(buyer).json(&body))
    }))
    .await;
    for (i, answer) in answers.iter().enumerate() {
        let quantity = i % 4 + 1;
        if quantity == 3 {
            assert_eq!((answer.status, answer.problem()), (StatusCode::CONFLICT, "sold-out"), "{answer:?}");
            assert_eq!(answer.body["detail"], json!("2 left"));
        } else {
            assert_eq!((answer.status, &answer.body["id"]), (StatusCode::CREATED, &json!(format!("h-{quantity}"))));
        }
    }
    let (calls, holds) = batches(&gateway.metrics().await, "hold");
    assert_eq!(holds, 24, "every hold went in a batch");
    assert!(calls < 24, "holds arriving while a batch was out shared the next: {calls} calls");
}

#[tokio::test]
async fn only_a_batch_of_holds_with_idempotency_keys_is_repeated_after_unavailable() {
    let gateway = Gateway::start().await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let attempted = attempts.clone();
    // Fails every other call: a pod that went away under the first attempt.
    gateway.backends.inventory.on("hold", move |_: inventory::HoldRequest| {
        let first = attempted.fetch_add(1, Ordering::SeqCst).is_multiple_of(2);
        let held = inventory::HoldDetails { hold_id: "h-1".into(), ..Default::default() };
        std::future::ready(if first { Err(Status::unavailable("pod gone")) } else { Ok(held) })
    });
    let path = format!("/v1/events/{}/holds", gateway.has_event(on_sale(None)));
    let (_, buyer) = gateway.account(Role::User);
    let hold =
        || gateway.call(Method::POST, &path).bearer_auth(&buyer).json(&json!({"category_id": "ga", "quantity": 1}));

    let keyed = send(hold().header("idempotency-key", "hold-1")).await;
    assert_eq!((keyed.status, &keyed.body["id"]), (StatusCode::CREATED, &json!("h-1")), "{keyed:?}");
    assert_eq!(gateway.backends.inventory.calls("hold"), 2, "retried once");
    let unkeyed = send(hold()).await;
    assert_eq!((unkeyed.status, unkeyed.problem()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    assert_eq!(gateway.backends.inventory.calls("hold"), 3, "not repeated: it might hold twice");
    let metrics = gateway.metrics().await;
    assert_eq!(batches(&metrics, "keyed_hold"), (1, 1), "one batch of its own, repeated as a keyed hold is");
    assert_eq!(batches(&metrics, "hold"), (1, 1));
}

#[tokio::test]
async fn at_batch_size_one_every_hold_and_release_is_a_call_of_its_own() {
    let gateway = Gateway::start_with(|c| c.gateway.inventory_batch_size = 1).await;
    holds_by_quantity(&gateway, Duration::ZERO);
    gateway.backends.inventory.on("release", |request: inventory::ReleaseRequest| {
        std::future::ready(Ok(inventory::HoldDetails { hold_id: request.hold_id, ..Default::default() }))
    });
    let path = format!("/v1/events/{}/holds", gateway.has_event(on_sale(None)));
    let (_, buyer) = gateway.account(Role::User);
    let held =
        send(gateway.call(Method::POST, &path).bearer_auth(&buyer).json(&json!({"category_id": "ga", "quantity": 2})))
            .await;
    assert_eq!((held.status, &held.body["id"]), (StatusCode::CREATED, &json!("h-2")));
    let refused =
        send(gateway.call(Method::POST, &path).bearer_auth(&buyer).json(&json!({"category_id": "ga", "quantity": 3})))
            .await;
    assert_eq!((refused.status, refused.problem()), (StatusCode::CONFLICT, "sold-out"));
    let released = send(gateway.call(Method::DELETE, "/v1/holds/h-2").bearer_auth(&buyer)).await;
    assert_eq!((released.status, &released.body["id"]), (StatusCode::OK, &json!("h-2")));
    assert_eq!((gateway.backends.inventory.calls("hold"), gateway.backends.inventory.calls("release")), (2, 1));
    let metrics = gateway.metrics().await;
    for call in ["hold", "keyed_hold", "release"] {
        assert_eq!(batches(&metrics, call), (0, 0), "no {call} batches");
    }
}
