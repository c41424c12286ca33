//! Coalesces concurrent calls into batches: one round trip for many callers.
//!
//! Each call to Redis costs a fixed overhead (a command to build, a reply to parse, two
//! syscalls and a wake-up on each side) that dwarfs a small script's own work. A
//! [`Coalescer`] keeps at most `in_flight` batches outstanding; whatever arrives meanwhile
//! forms the next batch, up to `max_batch` items. At low load each call goes alone and at
//! once, so nothing waits on a timer; under load batches grow by themselves. Inventory's
//! holds and the gateway's rate-limit checks go through one each.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// Calls waiting for a batch before [`Coalescer::call`] itself waits (backpressure).
const QUEUE: usize = 8192;

/// How calls are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most items in one batch; 1 sends each alone.
    pub max_batch: usize,
    /// Most batches outstanding at once.
    pub in_flight: usize,
}

impl Batching {
    /// Largest configurable batch.
    pub const MAX_BATCH: usize = 1000;
    /// Most configurable batches in flight.
    pub const MAX_IN_FLIGHT: usize = 64;

    /// Checks configured batching, naming the keys it came from in each issue.
    pub fn validate(
        &self,
        max_batch_key: &'static str,
        in_flight_key: &'static str,
        issues: &mut Vec<crate::config::ConfigIssue>,
    ) {
        use crate::config::ConfigIssue;
        if !(1..=Self::MAX_BATCH).contains(&self.max_batch) {
            issues.push(ConfigIssue::new(max_batch_key, format!("must be between 1 and {}", Self::MAX_BATCH)));
        }
        if !(1..=Self::MAX_IN_FLIGHT).contains(&self.in_flight) {
            issues.push(ConfigIssue::new(in_flight_key, format!("must be between 1 and {}", Self::MAX_IN_FLIGHT)));
        }
    }
}

/// The coalescer stopped, or its batch gave no answer for this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} coalescer gave no answer")]
pub struct NoAnswer(pub &'static str);

/// A handle to the batching task; cloning it is cheap. The task ends when the last
/// handle is dropped.
pub struct Coalescer<I, O> {
    name: &'static str,
    queue: mpsc::Sender<(I, oneshot::Sender<O>)>,
}

impl<I, O> Clone for Coalescer<I, O> {
    fn clone(&self) -> Self {
        Self { name: self.name, queue: self.queue.clone() }
    }
}

impl<I: Send + 'static, O: Send + 'static> Coalescer<I, O> {
    /// Starts the batching task on the current Tokio runtime. `run` answers a batch with
    /// one output per item, in order; `sizes` observes the items of each batch.
    pub fn start<F, Fut>(name: &'static str, batching: Batching, sizes: prometheus::Histogram, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(batches(batching, sizes, pending, run));
        Self { name, queue }
    }

    /// `item`'s output, from whichever batch it joins.
    pub async fn call(&self, item: I) -> Result<O, NoAnswer> {
        let (reply, output) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| NoAnswer(self.name))?;
        output.await.map_err(|_| NoAnswer(self.name))
    }
}

async fn batches<I, O, F, Fut>(
    batching: Batching,
    sizes: prometheus::Histogram,
    mut pending: mpsc::Receiver<(I, oneshot::Sender<O>)>,
    run: F,
) where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<O>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(batching.in_flight.max(1)));
    let max_batch = batching.max_batch.max(1);
    loop {
        // Waiting for a permit first lets the queue fill while every batch is out.
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let mut batch = Vec::with_capacity(max_batch);
        if pending.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        sizes.observe(batch.len() as f64);
        let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
        let outputs = run(items);
        tokio::spawn(async move {
            // A caller that went away (deadline, cancellation) no longer waits for its
            // output; one that `run` left without an output gets `NoAnswer`.
            for (reply, output) in replies.into_iter().zip(outputs.await) {
                let _ = reply.send(output);
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    fn sizes() -> prometheus::Histogram {
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("sizes", "batch sizes")).unwrap()
    }

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_each_gets_its_own_output() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let batching = Batching { max_batch: 16, in_flight: 1 };
        let coalescer = Coalescer::start("test", batching, sizes(), move |items: Vec<u32>| {
            log.lock().unwrap().push(items.len());
            async move {
                // Long enough for the other calls to queue behind the first batch.
                tokio::time::sleep(Duration::from_millis(50)).await;
                items.into_iter().map(|i| i * 10).collect::<Vec<_>>()
            }
        });
        let calls = (0..40).map(|i| {
            let coalescer = coalescer.clone();
            tokio::spawn(async move { coalescer.call(i).await })
        });
        let outputs: Vec<u32> =
            futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(outputs, (0..40).map(|i| i * 10).collect::<Vec<_>>());
        let sizes = seen.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(sizes.iter().all(|&n| n <= 16), "{sizes:?}");
        assert!(sizes.len() < 40, "calls that queued meanwhile were batched: {sizes:?}");
    }

    #[tokio::test]
    async fn a_call_the_batch_leaves_unanswered_gets_no_answer() {
        let batching = Batching { max_batch: 1, in_flight: 1 };
        let coalescer = Coalescer::start("test", batching, sizes(), |_: Vec<u32>| async { Vec::<u32>::new() });
        assert_eq!(coalescer.call(1).await, Err(NoAnswer("test")));
    }
}
