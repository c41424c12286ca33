//! Dependency checks behind `/readyz` and gRPC health.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

/// One dependency check: resolves to `Err` with a reason when the dependency is unusable.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The named checks of one service and the latest verdict.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
    ready: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    metrics: Option<crate::metrics::Metrics>,
}

/// Checks whose verdict is also `platform_dependency_up{dependency=<name>}`.
const DEPENDENCIES: [&str; 3] = ["postgres", "redis", "kafka"];

/// The outcome of one round of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every check's name and its failure, if any.
    pub checks: Vec<(&'static str, Option<String>)>,
    /// Shutdown has begun: not ready whatever the checks say.
    pub draining: bool,
}

impl Report {
    /// Ready to take traffic.
    pub fn is_ready(&self) -> bool {
        !self.draining && self.checks.iter().all(|(_, failure)| failure.is_none())
    }
}

impl Readiness {
    /// Readiness that reports the checks named after a dependency (`postgres`, `redis`,
    /// `kafka`) as `platform_dependency_up` in `metrics`.
    pub fn reporting_to(metrics: crate::metrics::Metrics) -> Self {
        Self { metrics: Some(metrics), ..Self::default() }
    }

    /// Adds a named check.
    pub fn add(&mut self, name: &'static str, check: Check) {
        self.checks.push((name, check));
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

    /// Runs every check concurrently, each bounded by a timeout, and records the verdict.
    pub async fn run(&self) -> Report {
        let results = futures::future::join_all(self.checks.iter().map(|(name, check)| async move {
            let failure = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some(format!("timed out after {CHECK_TIMEOUT:?}")),
            };
            (*name, failure)
        }))
        .await;
        if let Some(metrics) = &self.metrics {
            for (name, failure) in results.iter().filter(|(name, _)| DEPENDENCIES.contains(name)) {
                metrics.dependency_up(name, failure.is_none());
            }
        }
        let report = Report { checks: results, draining: self.is_draining() };
        self.ready.store(report.is_ready(), Ordering::Release);
        report
    }
}

/// A check that runs `SELECT 1` on the pool.
pub fn postgres(pool: sqlx::PgPool) -> Check {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&pool).await?;
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
/// [`crate::kafka::consumer`]). [`crate::App::bind`] adds it when the service has consumers.
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
    use super::*;

    #[tokio::test]
    async fn one_failing_check_makes_the_service_unready() {
        let mut readiness = Readiness::default();
        readiness.add("ok", Arc::new(|| Box::pin(async { Ok(()) })));
        readiness.add("broken", Arc::new(|| Box::pin(async { anyhow::bail!("down") })));
        let report = readiness.run().await;
        assert!(!report.is_ready());
        assert_eq!(report.checks[1], ("broken", Some("down".into())));
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn dependency_checks_are_reported_as_up_or_down() {
        let metrics = crate::metrics::Metrics::new("test");
        let mut readiness = Readiness::reporting_to(metrics.clone());
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
        assert!(!readiness.run().await.is_ready());
    }
}
