//! Readiness: is this process fit to take traffic?
//!
//! Readiness is about the process (started, warmed up, not draining). Dependencies are
//! shared by every replica, so one that fails makes them all fail their checks at once:
//! taking every replica out of rotation for it turns a degraded service into no service
//! (and a Cloud SQL or RDS failover into a full outage). So a dependency check makes the
//! service unready only after `server.readiness_failure_threshold` consecutive failed rounds,
//! checks that a service can serve without ([`Readiness::monitor`], e.g. Postgres for
//! inventory's Redis-served holds) never do, and the checks run on their own schedule: a
//! probe reads the latest verdict and never waits on a busy pool (docs/adr/0022).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

/// One dependency check: resolves to `Err` with a reason when the dependency is unusable.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The named checks of one service and the latest verdict.
#[derive(Clone)]
pub struct Readiness {
    checks: Vec<Registered>,
    failure_threshold: u32,
    verdict: Arc<Mutex<Verdict>>,
    ready: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    metrics: Option<crate::metrics::Metrics>,
}

#[derive(Clone)]
struct Registered {
    name: &'static str,
    check: Check,
    gates: bool,
}

/// What the rounds so far concluded.
#[derive(Default)]
struct Verdict {
    /// A round has passed every gating check: the service has warmed up.
    warmed: bool,
    /// Consecutive failed rounds, by check.
    streaks: HashMap<&'static str, u32>,
    latest: Option<Report>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            checks: Vec::new(),
            failure_threshold: crate::config::DEFAULT_READINESS_FAILURE_THRESHOLD,
            verdict: Arc::default(),
            ready: Arc::default(),
            draining: Arc::default(),
            metrics: None,
        }
    }
}

/// Checks whose verdict is also `platform_dependency_up{dependency=<name>}`.
const DEPENDENCIES: [&str; 3] = ["postgres", "redis", "kafka"];

/// One check's outcome in a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: &'static str,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// Whether failing it long enough makes the service unready.
    pub gates: bool,
    /// Failed rounds in a row, this one included.
    pub consecutive_failures: u32,
}

/// The outcome of one round of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every check's outcome.
    pub checks: Vec<CheckResult>,
    /// The verdict: warmed up, and no gating check has failed the threshold of rounds in a row.
    pub ready: bool,
    /// Shutdown has begun: not ready whatever the checks say.
    pub draining: bool,
}

impl Report {
    /// Ready to take traffic.
    pub fn is_ready(&self) -> bool {
        self.ready && !self.draining
    }

    /// The check called `name`, if the service has one.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl Readiness {
    /// Readiness that reports the checks named after a dependency (`postgres`, `redis`,
    /// `kafka`) as `platform_dependency_up` in `metrics`, and turns unready after
    /// `failure_threshold` consecutive failed rounds of a gating check.
    pub fn reporting_to(metrics: crate::metrics::Metrics, failure_threshold: u32) -> Self {
        Self { metrics: Some(metrics), failure_threshold: failure_threshold.max(1), ..Self::default() }
    }

    /// Adds a named check that makes the service unready once it has failed the threshold
    /// of rounds in a row.
    pub fn add(&mut self, name: &'static str, check: Check) {
        self.checks.push(Registered { name, check, gates: true });
    }

    /// Adds a named check that is reported (in `/readyz` and its metric) but never makes
    /// the service unready: the service keeps serving what it can without the dependency.
    pub fn monitor(&mut self, name: &'static str, check: Check) {
        self.checks.push(Registered { name, check, gates: false });
    }

    /// The verdict of the latest round, without running the checks.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.is_draining()
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the service as shutting down: from now on it is never ready.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.ready.store(false, Ordering::Release);
    }

    /// The latest round's report, with the draining flag as of now; before the first round,
    /// an unready report without checks.
    pub fn latest(&self) -> Report {
        let latest = self.verdict.lock().expect("readiness lock").latest.clone();
        let mut report = latest.unwrap_or(Report { checks: Vec::new(), ready: false, draining: false });
        report.draining = self.is_draining();
        report
    }

    /// Runs every check concurrently, each bounded by a timeout, and records the verdict.
    pub async fn run(&self) -> Report {
        let outcomes = futures::future::join_all(self.checks.iter().map(|registered| async move {
            match tokio::time::timeout(CHECK_TIMEOUT, (registered.check)()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some(format!("timed out after {CHECK_TIMEOUT:?}")),
            }
        }))
        .await;
        if let Some(metrics) = &self.metrics {
            for (registered, failure) in self.checks.iter().zip(&outcomes) {
                if DEPENDENCIES.contains(&registered.name) {
                    metrics.dependency_up(registered.name, failure.is_none());
                }
            }
        }
        let mut verdict = self.verdict.lock().expect("readiness lock");
        let checks: Vec<CheckResult> = self
            .checks
            .iter()
            .zip(outcomes)
            .map(|(registered, failure)| {
                let streak = verdict.streaks.entry(registered.name).or_default();
                *streak = if failure.is_some() { *streak + 1 } else { 0 };
                CheckResult { name: registered.name, failure, gates: registered.gates, consecutive_failures: *streak }
            })
            .collect();
        verdict.warmed |= checks.iter().all(|c| !c.gates || c.failure.is_none());
        let ready =
            verdict.warmed && !checks.iter().any(|c| c.gates && c.consecutive_failures >= self.failure_threshold);
        let report = Report { checks, ready, draining: self.is_draining() };
        self.ready.store(report.is_ready(), Ordering::Release);
        verdict.latest = Some(report.clone());
        report
    }
}

/// A check that runs `SELECT 1` on an idle connection of the pool, or opens one. A pool
/// whose every connection is in use counts as up: it is busy serving, and waiting for a
/// connection would fail readiness exactly when the service is busiest.
#[cfg(feature = "postgres")]
pub fn postgres(pool: sqlx::PgPool) -> Check {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let mut conn = match pool.try_acquire() {
                Some(conn) => conn,
                None if pool.size() >= pool.options().get_max_connections() => return Ok(()),
                None => pool.acquire().await?,
            };
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            Ok(())
        })
    })
}

/// A check that sends `PING` to Redis.
pub fn redis(conn: crate::redis::Connection) -> Check {
    Arc::new(move || {
        let mut conn = conn.clone();
        Box::pin(async move {
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
    })
}

/// A check that fails while one of the service's consumer groups is stalled: a partition has
/// had unconsumed messages and no progress for `kafka.consumer_stall_timeout` (see
/// `kafka::consumer`). [`crate::App::bind`] adds it when the service has consumers.
pub fn kafka_consumers(metrics: crate::metrics::Metrics) -> Check {
    Arc::new(move || {
        let stalled: Vec<String> = metrics
            .consumer_stalls()
            .into_iter()
            .filter_map(|(group, reason)| Some(format!("{group}: {}", reason?)))
            .collect();
        Box::pin(
            async move { if stalled.is_empty() { Ok(()) } else { anyhow::bail!("stalled: {}", stalled.join("; ")) } },
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    fn flag(up: &Arc<AtomicBool>) -> Check {
        let up = up.clone();
        Arc::new(move || {
            let up = up.load(Ordering::SeqCst);
            Box::pin(async move { if up { Ok(()) } else { anyhow::bail!("down") } })
        })
    }

    fn with_threshold(threshold: u32) -> Readiness {
        Readiness::reporting_to(crate::metrics::Metrics::new("test"), threshold)
    }

    #[tokio::test]
    async fn a_gating_check_makes_the_service_unready_only_after_the_threshold_of_failed_rounds() {
        let up = Arc::new(AtomicBool::new(true));
        let mut readiness = with_threshold(3);
        readiness.add("ok", Arc::new(|| Box::pin(async { Ok(()) })));
        readiness.add("flaky", flag(&up));
        assert!(readiness.run().await.is_ready());

        up.store(false, Ordering::SeqCst);
        for round in 1..=2 {
            let report = readiness.run().await;
            assert!(report.is_ready(), "round {round}: {report:?}");
            assert_eq!(report.check("flaky").unwrap().consecutive_failures, round);
        }
        let report = readiness.run().await;
        assert!(!report.is_ready(), "{report:?}");
        assert_eq!(report.check("flaky").unwrap().failure.as_deref(), Some("down"));
        assert!(!readiness.is_ready());
        assert_eq!(readiness.latest(), report);

        // One passing round brings it back.
        up.store(true, Ordering::SeqCst);
        let report = readiness.run().await;
        assert!(report.is_ready(), "{report:?}");
        assert_eq!(report.check("flaky").unwrap().consecutive_failures, 0);
    }

    #[tokio::test]
    async fn a_service_is_unready_until_a_round_passes_every_gating_check() {
        let up = Arc::new(AtomicBool::new(false));
        let mut readiness = with_threshold(100);
        readiness.add("dependency", flag(&up));
        assert!(!readiness.latest().is_ready(), "no round has run yet");
        assert!(!readiness.run().await.is_ready(), "never warmed up, whatever the threshold");
        up.store(true, Ordering::SeqCst);
        assert!(readiness.run().await.is_ready());
    }

    #[tokio::test]
    async fn a_monitored_check_is_reported_but_never_makes_the_service_unready() {
        let metrics = crate::metrics::Metrics::new("test");
        let mut readiness = Readiness::reporting_to(metrics.clone(), 1);
        readiness.add("redis", Arc::new(|| Box::pin(async { Ok(()) })));
        readiness.monitor("postgres", Arc::new(|| Box::pin(async { anyhow::bail!("failing over") })));
        for _ in 0..3 {
            let report = readiness.run().await;
            assert!(report.is_ready(), "{report:?}");
            let postgres = report.check("postgres").unwrap();
            assert!(!postgres.gates && postgres.failure.is_some(), "{postgres:?}");
        }
        let text = metrics.render();
        assert!(text.contains(r#"platform_dependency_up{dependency="postgres",service="test"} 0"#), "{text}");
    }

    #[tokio::test]
    async fn dependency_checks_are_reported_as_up_or_down() {
        let metrics = crate::metrics::Metrics::new("test");
        let mut readiness = Readiness::reporting_to(metrics.clone(), 1);
        readiness.add("postgres", Arc::new(|| Box::pin(async { Ok(()) })));
        readiness.add("redis", Arc::new(|| Box::pin(async { anyhow::bail!("down") })));
        readiness.add("jwks", Arc::new(|| Box::pin(async { Ok(()) })));
        readiness.run().await;
        let text = metrics.render();
        assert!(text.contains(r#"platform_dependency_up{dependency="postgres",service="test"} 1"#), "{text}");
        assert!(text.contains(r#"platform_dependency_up{dependency="redis",service="test"} 0"#), "{text}");
        assert!(!text.contains("jwks"), "{text}");
    }

    #[tokio::test]
    async fn draining_overrides_healthy_checks() {
        let mut readiness = Readiness::default();
        readiness.add("ok", Arc::new(|| Box::pin(async { Ok(()) })));
        assert!(readiness.run().await.is_ready());
        readiness.start_draining();
        assert!(!readiness.is_ready());
        assert!(readiness.latest().draining);
        assert!(!readiness.run().await.is_ready());
    }
}
