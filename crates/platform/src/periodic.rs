//! The one loop behind every "do this every so often until shutdown": sale scheduling,
//! hold expiry, reconciliation, sweeps, purges, metric sampling.
//!
//! A service's job is a [`Job`] that [`crate::App::every`] runs; the platform's own loops
//! use [`Every`] directly:
//!
//! ```ignore
//! let mut rounds = Every::new(interval, stop);
//! while rounds.tick().await {
//!     if let Err(e) = job.round().await { tracing::warn!(...) }
//! }
//! ```

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Rounds of a periodic job: the first at once, each next one `interval` after the previous
/// ended, none once `stop` is cancelled. A running round is never cut short: shutdown waits
/// for it, so a round needs no care for being stopped halfway.
pub struct Every {
    interval: Duration,
    stop: CancellationToken,
    started: bool,
}

impl Every {
    /// Rounds `interval` apart until `stop`.
    pub fn new(interval: Duration, stop: CancellationToken) -> Self {
        Self { interval, stop, started: false }
    }

    /// Waits for the next round; `false` when the job should return instead.
    pub async fn tick(&mut self) -> bool {
        if !std::mem::replace(&mut self.started, true) {
            return !self.stop.is_cancelled();
        }
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(self.interval) => true,
        }
    }
}

/// One round of a periodic job. A round reports its own failures (a log line, a metric):
/// the next round comes all the same.
pub trait Job: Send + 'static {
    /// Does the job once.
    fn round(&mut self) -> impl Future<Output = ()> + Send;
}

/// A closure making each round's future is a job.
impl<F, R> Job for F
where
    F: FnMut() -> R + Send + 'static,
    R: Future<Output = ()> + Send,
{
    fn round(&mut self) -> impl Future<Output = ()> + Send {
        self()
    }
}

/// Runs `job` in rounds `interval` apart until `stop` (see [`Every`]), counting each in
/// `done` (`platform_job_rounds_total`).
pub async fn run(mut job: impl Job, interval: Duration, stop: CancellationToken, done: prometheus::IntCounter) {
    let mut rounds = Every::new(interval, stop);
    while rounds.tick().await {
        job.round().await;
        done.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_round_is_at_once_and_none_follows_a_stop() {
        let stop = CancellationToken::new();
        let mut rounds = Every::new(Duration::from_secs(3600), stop.clone());
        let first = tokio::time::timeout(Duration::from_secs(5), rounds.tick()).await;
        assert_eq!(first.ok(), Some(true), "the first round does not wait an interval");
        stop.cancel();
        assert!(!rounds.tick().await, "a stopped job has no next round");
        let mut late = Every::new(Duration::ZERO, stop);
        assert!(!late.tick().await, "a job started after the stop has no round");
    }

    #[tokio::test]
    async fn a_job_runs_round_after_round_until_the_stop() {
        let stop = CancellationToken::new();
        let rounds = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (counted, stopper) = (rounds.clone(), stop.clone());
        let job = move || {
            let (counted, stopper) = (counted.clone(), stopper.clone());
            async move {
                if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
                    stopper.cancel();
                }
            }
        };
        let done = prometheus::IntCounter::new("rounds", "Rounds.").expect("valid");
        tokio::time::timeout(Duration::from_secs(5), run(job, Duration::ZERO, stop, done.clone()))
            .await
            .expect("stops");
        assert_eq!(rounds.load(std::sync::atomic::Ordering::SeqCst), 3, "the round in hand ends; none follows");
        assert_eq!(done.get(), 3, "each round is counted");
    }
}
