//! Coalesces concurrent holds into one hold-script call per event.
//!
//! In an on-sale thousands of holds a second land on one event. Each `EVALSHA` costs
//! Redis a fixed overhead before the script runs, and costs the service a command to
//! build, a reply to parse and a wake-up: [`ticketing_platform::coalesce`] batches them,
//! and a batch makes one script call per event in it (nearly always one).

use std::time::Duration;

use prometheus::Histogram;
use ticketing_platform::coalesce;

use super::stock::{HoldRequest, Placed, Stock, now_ms};

/// How holds are batched.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most holds in one script call, and most calls outstanding at once.
    pub batches: coalesce::Batching,
    /// Hold lifetime.
    pub ttl: Duration,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
}

/// A handle to the batching task; cloning it is cheap.
#[derive(Clone)]
pub struct Coalescer(coalesce::Coalescer<HoldRequest, anyhow::Result<Placed>>);

impl Coalescer {
    /// Starts the batching task on the current Tokio runtime; `sizes` observes the
    /// holds of each batch.
    pub fn start(stock: Stock, batching: Batching, sizes: Histogram) -> Self {
        Self(coalesce::Coalescer::start("hold", batching.batches, sizes, move |batch| {
            let stock = stock.clone();
            async move { dispatch(&stock, batching, batch).await }
        }))
    }

    /// Places one hold, in whichever batch it joins.
    pub async fn place(&self, request: HoldRequest) -> anyhow::Result<Placed> {
        self.0.call(request).await?
    }
}

/// One script call per event in `batch`, issued together; the outcomes in `batch`'s order.
async fn dispatch(stock: &Stock, batching: Batching, batch: Vec<HoldRequest>) -> Vec<anyhow::Result<Placed>> {
    // Indices into `batch`, by event.
    let mut groups: Vec<(uuid::Uuid, Vec<usize>)> = Vec::with_capacity(1);
    for (index, request) in batch.iter().enumerate() {
        let event = request.id.event;
        match groups.iter_mut().find(|(e, _)| *e == event) {
            Some((_, group)) => group.push(index),
            None => groups.push((event, vec![index])),
        }
    }
    let now = now_ms();
    let batch = &batch;
    let placed = futures::future::join_all(groups.iter().map(|(event, group)| async move {
        let requests: Vec<&HoldRequest> = group.iter().map(|&i| &batch[i]).collect();
        stock.hold_batch(*event, &requests, batching.ttl, batching.idempotency_ttl, now).await
    }))
    .await;
    let mut outcomes: Vec<Option<anyhow::Result<Placed>>> = std::iter::repeat_with(|| None).take(batch.len()).collect();
    for ((_, group), placed) in groups.iter().zip(placed) {
        match placed {
            Ok(placed) => {
                for (&index, placed) in group.iter().zip(placed) {
                    outcomes[index] = Some(Ok(placed));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                for &index in group {
                    outcomes[index] = Some(Err(anyhow::anyhow!(message.clone())));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Err(anyhow::anyhow!("the hold script gave no outcome"))))
        .collect()
}
