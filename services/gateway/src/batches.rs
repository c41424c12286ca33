//! Carries concurrent buyers' holds and releases to inventory in batches: one
//! `HoldBatch` (`ReleaseBatch`) call for whatever queued while the previous ones were out,
//! so an on-sale's thousands of holds a second cost the gateway a gRPC call per batch, not
//! per hold (docs/benchmarks.md: a tonic call was a fifth of the gateway's CPU per hold).
//!
//! Each item is its own call in all but transport: it carries the buyer's token, which
//! inventory verifies as it would the call's (a batch confers no authority), and its trace
//! context; it is answered with its hold or the status its own call would have failed
//! with, which the handlers turn into the same problem documents. A batch has one deadline
//! and one breaker permit. Holds with an idempotency key travel in batches of their own,
//! retried on UNAVAILABLE as a keyed `Hold` is (inventory replays each by its key); other
//! batches, like the calls they stand for, are never repeated.

use ticketing_platform::coalesce::{Batching, Coalescer};
use ticketing_platform::status::from_message;
use ticketing_proto::inventory::v1 as pb;
use ticketing_proto::inventory::v1::inventory_client::InventoryClient;
use tonic::Status;

use crate::extract::Caller;
use crate::resilience::{keyed, repeatable};
use crate::state::Backend;

type Answer = Result<pb::HoldDetails, Status>;
type Batches<I> = Coalescer<I, Answer>;

/// Holds and releases on their way to inventory; cloning is cheap.
#[derive(Clone)]
pub enum InventoryCalls {
    /// Each on a call of its own (`gateway.inventory_batch_size` 1).
    Single(InventoryClient<Backend>),
    /// In batches: holds without and with an idempotency key apart, and releases.
    Batched {
        holds: Batches<pb::HoldBatchItem>,
        keyed: Batches<pb::HoldBatchItem>,
        releases: Batches<pb::ReleaseBatchItem>,
    },
}

impl InventoryCalls {
    /// Calls over `client`, batched as `batching` says; `sizes` observes each batch's items,
    /// by call (`hold`, `keyed_hold`, `release`).
    pub fn start(client: InventoryClient<Backend>, batching: Batching, sizes: &prometheus::HistogramVec) -> Self {
        if batching.max_batch <= 1 {
            return Self::Single(client);
        }
        let holds = |call: &'static str, retry: bool| {
            let client = client.clone();
            Coalescer::start(call, batching, sizes.with_label_values(&[call]), move |items| {
                let mut client = client.clone();
                async move {
                    let n = items.len();
                    let request = tonic::Request::new(pb::HoldBatchRequest { items });
                    let request = if retry { repeatable(request) } else { request };
                    answers(client.hold_batch(request).await.map(|a| a.into_inner().outcomes), n)
                }
            })
        };
        let (holds, keyed) = (holds("hold", false), holds("keyed_hold", true));
        let releases = Coalescer::start("release", batching, sizes.with_label_values(&["release"]), move |items| {
            let mut client = client.clone();
            async move {
                let n = items.len();
                let request = pb::ReleaseBatchRequest { items };
                answers(client.release_batch(request).await.map(|a| a.into_inner().outcomes), n)
            }
        });
        Self::Batched { holds, keyed, releases }
    }

    /// Holds as `hold` asks, for `caller`.
    pub async fn hold(&self, caller: &Caller, hold: pb::HoldRequest) -> Answer {
        let (holds, keyed) = match self {
            Self::Single(client) => return Ok(client.clone().hold(keyed(caller.request(hold))).await?.into_inner()),
            Self::Batched { holds, keyed, .. } => (holds, keyed),
        };
        let batches = if hold.idempotency_key.is_empty() { holds } else { keyed };
        let item =
            pb::HoldBatchItem { access_token: caller.0.token.clone(), hold: Some(hold), traceparent: traceparent() };
        batches.call(item).await.unwrap_or_else(|gone| Err(Status::unavailable(gone.to_string())))
    }

    /// Releases as `release` asks, for `caller`.
    pub async fn release(&self, caller: &Caller, release: pb::ReleaseRequest) -> Answer {
        let releases = match self {
            Self::Single(client) => return Ok(client.clone().release(caller.request(release)).await?.into_inner()),
            Self::Batched { releases, .. } => releases,
        };
        let item = pb::ReleaseBatchItem {
            access_token: caller.0.token.clone(),
            release: Some(release),
            traceparent: traceparent(),
        };
        releases.call(item).await.unwrap_or_else(|gone| Err(Status::unavailable(gone.to_string())))
    }
}

/// The current span's trace context, for the item's span at inventory; empty outside a
/// recorded trace.
fn traceparent() -> String {
    ticketing_platform::telemetry::current_traceparent().unwrap_or_default()
}

/// Each of a batch's `n` items' answers: from its outcome, or the batch call's failure. A
/// batch answered with too few outcomes (a broken peer) fails the items it left out.
fn answers(outcomes: Result<Vec<pb::HoldOutcome>, Status>, n: usize) -> Vec<Answer> {
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(status) => return vec![Err(status); n],
    };
    let mut answers: Vec<Answer> = outcomes
        .into_iter()
        .take(n)
        .map(|outcome| match outcome.outcome {
            Some(pb::hold_outcome::Outcome::Hold(hold)) => Ok(hold),
            Some(pb::hold_outcome::Outcome::Error(status)) => Err(from_message(status)),
            None => Err(Status::internal("inventory answered a batch item with nothing")),
        })
        .collect();
    answers.resize_with(n, || Err(Status::internal("inventory left a batch item unanswered")));
    answers
}
