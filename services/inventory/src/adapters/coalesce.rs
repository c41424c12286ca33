//! Coalesces concurrent holds into one hold-script call per event.
//!
//! In an on-sale thousands of holds a second land on one event. Each `EVALSHA`
//! costs Redis a fixed overhead before the script runs, and costs the service a
//! command to build, a reply to parse and a wake-up. The coalescer keeps at most
//! `in_flight` batches outstanding on the (multiplexed, so pipelined) connection;
//! whatever arrives meanwhile forms the next batch, up to `max_batch` holds. At low
//! load each hold goes alone and at once, so nothing waits on a timer; under load
//! batches grow by themselves.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Histogram;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::stock::{HoldRequest, Placed, Stock, now_ms};

/// Holds waiting for a batch before `place` itself waits (backpressure).
const QUEUE: usize = 8192;

type Reply = oneshot::Sender<anyhow::Result<Placed>>;

/// How holds are batched.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most holds in one script call.
    pub max_batch: usize,
    /// Most script calls outstanding at once.
    pub in_flight: usize,
    /// Hold lifetime.
    pub ttl: Duration,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
}

/// A handle to the batching task; cloning it is cheap. The task ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Coalescer {
    queue: mpsc::Sender<(HoldRequest, Reply)>,
}

impl Coalescer {
    /// Starts the batching task on the current Tokio runtime; `sizes` observes the
    /// holds of each script call.
    pub fn start(stock: Stock, batching: Batching, sizes: Histogram) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(run(stock, batching, sizes, pending));
        Self { queue }
    }

    /// Places one hold, in whichever batch it joins.
    pub async fn place(&self, request: HoldRequest) -> anyhow::Result<Placed> {
        let (reply, placed) = oneshot::channel();
        self.queue.send((request, reply)).await.map_err(|_| anyhow::anyhow!("the hold coalescer has stopped"))?;
        placed.await.map_err(|_| anyhow::anyhow!("the hold coalescer dropped a hold"))?
    }
}

async fn run(stock: Stock, batching: Batching, sizes: Histogram, mut pending: mpsc::Receiver<(HoldRequest, Reply)>) {
    let permits = Arc::new(Semaphore::new(batching.in_flight));
    loop {
        // Waiting for a permit first lets the queue fill while every batch is out.
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let mut batch = Vec::with_capacity(batching.max_batch);
        if pending.recv_many(&mut batch, batching.max_batch).await == 0 {
            return;
        }
        let (stock, sizes) = (stock.clone(), sizes.clone());
        tokio::spawn(async move {
            dispatch(&stock, batching, &sizes, batch).await;
            drop(permit);
        });
    }
}

/// One script call per event in `batch` (nearly always one), issued together.
async fn dispatch(stock: &Stock, batching: Batching, sizes: &Histogram, batch: Vec<(HoldRequest, Reply)>) {
    let mut groups: Vec<(uuid::Uuid, Vec<(HoldRequest, Reply)>)> = Vec::with_capacity(1);
    for entry in batch {
        let event = entry.0.id.event;
        match groups.iter_mut().find(|(e, _)| *e == event) {
            Some((_, group)) => group.push(entry),
            None => groups.push((event, vec![entry])),
        }
    }
    let now = now_ms();
    futures::future::join_all(groups.into_iter().map(|(event, group)| async move {
        let requests: Vec<&HoldRequest> = group.iter().map(|(request, _)| request).collect();
        sizes.observe(requests.len() as f64);
        let placed = stock.hold_batch(event, &requests, batching.ttl, batching.idempotency_ttl, now).await;
        // A caller that went away (deadline, cancellation) no longer waits for its reply;
        // its hold, if placed, expires like any unconfirmed one.
        match placed {
            Ok(placed) => {
                for ((_, reply), placed) in group.into_iter().zip(placed) {
                    let _ = reply.send(Ok(placed));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                for (_, reply) in group {
                    let _ = reply.send(Err(anyhow::anyhow!(message.clone())));
                }
            }
        }
    }))
    .await;
}
