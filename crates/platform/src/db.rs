//! The Postgres pool and each service's embedded migrations.
//!
//! Platform tables (outbox, processed events) use versions below 1000; services
//! number theirs by timestamp, so one migrator runs both in order.

use std::borrow::Cow;

use anyhow::Context as _;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, Validate};

/// The service's own Postgres database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://` URL of the service's database.
    pub url: String,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Run pending migrations at start (development); production runs `<service> migrate`.
    pub migrate_on_start: bool,
}

impl DatabaseConfig {
    /// Defaults pointing at the local server's `ticketing_<service>` database.
    pub fn for_service(service: &str) -> Self {
        Self {
            url: format!("postgres://postgres@127.0.0.1:5432/ticketing_{service}"),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            migrate_on_start: true,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self::for_service("service")
    }
}

impl Validate for DatabaseConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            issues.push(ConfigIssue::new("database.url", "must be a postgres:// URL"));
        }
        if self.max_connections == 0 {
            issues.push(ConfigIssue::new("database.max_connections", "must be at least 1"));
        }
        if self.acquire_timeout.is_zero() {
            issues.push(ConfigIssue::new("database.acquire_timeout", "must be positive"));
        }
    }
}

static PLATFORM: Migrator = sqlx::migrate!("./migrations");

/// `at` as a `timestamptz` column keeps it (to the microsecond): what a service answers or
/// signs is then exactly what a later read gives back.
pub fn stored(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    at.trunc_subsecs(6)
}

/// The platform's migrations followed by `service`'s own (pass `None` for none yet).
pub fn migrator(service: Option<&Migrator>) -> Migrator {
    let mut migrations: Vec<_> = PLATFORM.migrations.iter().cloned().collect();
    if let Some(service) = service {
        migrations.extend(service.migrations.iter().cloned());
    }
    migrations.sort_by_key(|m| m.version);
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// A pool for `config`. Connections open lazily, so a service starts (unready) while
/// Postgres is down and becomes ready when it is back.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = config.url.parse().context("parsing database.url")?;
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_lazy_with(options))
}

/// The service's pool, after applying `migrator` when `database.migrate_on_start` is set.
pub async fn open(config: &DatabaseConfig, migrator: &Migrator) -> anyhow::Result<PgPool> {
    if config.migrate_on_start {
        migrate(config, migrator).await?;
    }
    pool(config)
}

/// Applies pending migrations, creating the database first if it is missing and the role
/// may (a local superuser URL); a service's own role may not, so its database comes from
/// `<service> bootstrap` ([`crate::access::bootstrap_database`]). Safe to run from several
/// replicas at once: sqlx takes an advisory lock.
pub async fn migrate(config: &DatabaseConfig, migrator: &Migrator) -> anyhow::Result<()> {
    let options: PgConnectOptions = config.url.parse().context("parsing database.url")?;
    // One connection, not a pool: a pool retries a refused connection until its acquire
    // timeout, and a migration Job should fail at once and let Kubernetes retry it.
    let mut conn = match PgConnection::connect_with(&options).await {
        Err(e) if sqlstate(&e).as_deref() == Some(UNDEFINED_DATABASE) => {
            create_database(config).await?;
            PgConnection::connect_with(&options).await.context("connecting to Postgres")?
        }
        connected => connected.context("connecting to Postgres")?,
    };
    migrator.run(&mut conn).await.context("applying migrations")?;
    conn.close().await.ok();
    Ok(())
}

const UNDEFINED_DATABASE: &str = "3D000";
const DUPLICATE_DATABASE: &str = "42P04";
const INSUFFICIENT_PRIVILEGE: &str = "42501";

async fn create_database(config: &DatabaseConfig) -> anyhow::Result<()> {
    match Postgres::create_database(&config.url).await {
        Err(e) => match sqlstate(&e).as_deref() {
            // Another replica created it first.
            Some(DUPLICATE_DATABASE) => Ok(()),
            Some(INSUFFICIENT_PRIVILEGE) => Err(e).context(
                "database.url's database does not exist and its role may not create it; \
                 run `<service> bootstrap` as an admin first (docs/deploy.md)",
            ),
            _ => Err(e).context("creating the database"),
        },
        Ok(()) => Ok(()),
    }
}

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|e| e.code()).map(|code| code.into_owned())
}

/// Samples `db_pool_connections`, `db_pool_max_connections` and, by timing one acquire,
/// `db_pool_acquire_duration_seconds` every `telemetry.metrics_interval` until `stop`.
/// sqlx has no acquire hook, so the histogram is a sample of what callers wait, not every wait.
pub async fn watch(
    pool: PgPool,
    metrics: crate::metrics::Metrics,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let gauges = metrics.pool_metrics().clone();
    gauges.max.set(i64::from(pool.options().get_max_connections()));
    let mut rounds = crate::periodic::Every::new(metrics.interval(), stop);
    while rounds.tick().await {
        sample_pool(&pool, &gauges).await;
    }
    Ok(())
}

async fn sample_pool(pool: &PgPool, gauges: &crate::metrics::PoolMetrics) {
    let started = std::time::Instant::now();
    // A failed acquire (Postgres down) waited the acquire timeout: that is what callers see too.
    let acquired = pool.acquire().await;
    gauges.acquire.observe(started.elapsed().as_secs_f64());
    drop(acquired);
    let (size, idle) = (pool.size(), pool.num_idle() as u32);
    gauges.idle.set(i64::from(idle));
    gauges.in_use.set(i64::from(size.saturating_sub(idle)));
}
