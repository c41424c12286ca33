//! The command line every service binary shares:
//! `<service> [--config FILE] [serve|migrate|bootstrap|check]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{self, Validate};
#[cfg(feature = "postgres")]
use crate::db::DatabaseConfig;
use crate::redis::RedisConfig;
use crate::telemetry::TelemetryConfig;

/// Exit status for a bad configuration (`EX_CONFIG` from sysexits.h).
pub const EXIT_BAD_CONFIG: u8 = 78;

/// A service's embedded migrations, which `migrate` applies after the platform's.
#[cfg(feature = "postgres")]
pub use sqlx::migrate::Migrator;

/// Without the `postgres` feature a service has no migrations: `main` takes `None`.
#[cfg(not(feature = "postgres"))]
pub enum Migrator {}

#[derive(Parser)]
struct Cli {
    /// A TOML file layered between the defaults and `TICKETING_*` variables.
    #[arg(long, env = "TICKETING_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone)]
enum Command {
    /// Serve gRPC, health and metrics until SIGTERM (the default).
    Serve,
    /// Create the database if needed (and allowed), apply pending migrations, and exit.
    /// Only the `database` and `telemetry` keys are checked: the migration Job gets no
    /// other secret.
    Migrate,
    /// As an admin, give the service its own Postgres role and Redis user (the ones
    /// database.url and redis.url name), reaching its own data only, and exit. Idempotent.
    Bootstrap {
        /// The Postgres admin's URL (a superuser, or RDS's or Cloud SQL's admin user): create
        /// or update the role and database database.url names, the role owning the database.
        #[arg(long, env = "TICKETING_BOOTSTRAP_POSTGRES_URL", hide_env_values = true)]
        postgres_admin_url: Option<String>,
        /// The most connections the Postgres role may hold at once; unlimited when unset.
        #[arg(long, env = "TICKETING_BOOTSTRAP_CONNECTION_LIMIT")]
        connection_limit: Option<u32>,
        /// The Redis admin's URL (a user that may run ACL SETUSER): give the user redis.url
        /// names the service's rules, its password the URL's.
        #[arg(long, env = "TICKETING_BOOTSTRAP_REDIS_URL", hide_env_values = true)]
        redis_admin_url: Option<String>,
    },
    /// Check the whole configuration, as `serve` would, and exit.
    Check,
}

impl Command {
    /// Whether an issue with `key` stops this command: those that use part of the
    /// configuration need only that part.
    fn checks(&self, key: &str) -> bool {
        let sections: &[&str] = match self {
            Self::Serve | Self::Check => return true,
            Self::Migrate => &["database.", "telemetry."],
            Self::Bootstrap { .. } => &["database.", "redis.", "telemetry."],
        };
        sections.iter().any(|section| key.starts_with(section))
    }
}

/// A service's configuration, as the shared command line needs to see it;
/// [`service_config!`](macro@crate::service_config) implements it.
pub trait ServiceConfig: Serialize + DeserializeOwned + Validate + Send + 'static {
    /// Log settings.
    fn telemetry(&self) -> &TelemetryConfig;
    /// The service's database, if it owns one.
    #[cfg(feature = "postgres")]
    fn database(&self) -> Option<&DatabaseConfig> {
        None
    }
    /// The service's Redis, if it keeps state there.
    fn redis(&self) -> Option<&RedisConfig> {
        None
    }
}

/// Parses the command line, loads the configuration and runs `serve`, `migrate` or `bootstrap`.
/// Without the `postgres` feature, `migrate` and `bootstrap --postgres-admin-url` fail as
/// they do for a service without a database.
///
/// A bad configuration, whether found on loading or at start ([`config::ConfigError`] in
/// the error chain), exits with [`EXIT_BAD_CONFIG`] and a message naming the key; any
/// other failure exits with 1.
pub fn main<C, F, Fut>(name: &'static str, defaults: C, migrations: Option<&'static Migrator>, serve: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    let config = match config::load_checking(defaults, cli.config.as_deref(), |key| command.checks(key)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let _telemetry = crate::telemetry::init(name, config.telemetry())?;
        match command {
            Command::Serve => serve(config).await,
            Command::Check => {
                tracing::info!(service = name, "configuration accepted");
                Ok(())
            }
            Command::Migrate => migrate(name, &config, migrations).await,
            Command::Bootstrap { postgres_admin_url, connection_limit, redis_admin_url } => {
                if postgres_admin_url.is_none() && redis_admin_url.is_none() {
                    anyhow::bail!("bootstrap needs --postgres-admin-url, --redis-admin-url or both");
                }
                if let Some(admin_url) = postgres_admin_url {
                    bootstrap_database(name, &config, &admin_url, connection_limit).await?;
                }
                if let Some(admin_url) = redis_admin_url {
                    let redis = config.redis().ok_or_else(|| anyhow::anyhow!("{name} keeps nothing in Redis"))?;
                    crate::access::bootstrap_redis(&admin_url, name, redis).await?;
                    tracing::info!(service = name, "Redis user in place");
                }
                Ok(())
            }
        }
    });
    // The grace period is spent; do not wait for stragglers on the blocking pool.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service = name, error = format!("{e:#}"), "exiting after a fatal error");
            eprintln!("{name}: {e:#}");
            // Configuration found wrong only at start (a KEK that opens no stored key) is still configuration.
            if e.chain().any(|c| c.is::<config::ConfigError>()) {
                ExitCode::from(EXIT_BAD_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `migrate`: the platform's migrations and `migrations` on the service's database.
#[cfg(feature = "postgres")]
async fn migrate(name: &str, config: &impl ServiceConfig, migrations: Option<&Migrator>) -> anyhow::Result<()> {
    let database = config.database().ok_or_else(|| anyhow::anyhow!("{name} has no database to migrate"))?;
    crate::db::migrate(database, &crate::db::migrator(migrations)).await?;
    tracing::info!(service = name, "migrations applied");
    Ok(())
}

/// Without the `postgres` feature no service has a database.
#[cfg(not(feature = "postgres"))]
async fn migrate(name: &str, _: &impl ServiceConfig, _: Option<&Migrator>) -> anyhow::Result<()> {
    anyhow::bail!("{name} has no database to migrate")
}

/// `bootstrap --postgres-admin-url`: the service's own role and database.
#[cfg(feature = "postgres")]
async fn bootstrap_database(
    name: &str,
    config: &impl ServiceConfig,
    admin_url: &str,
    connection_limit: Option<u32>,
) -> anyhow::Result<()> {
    let database = config.database().ok_or_else(|| anyhow::anyhow!("{name} has no database"))?;
    crate::access::bootstrap_database(admin_url, &database.url, connection_limit).await?;
    tracing::info!(service = name, "Postgres role and database in place");
    Ok(())
}

/// Without the `postgres` feature no service has a database.
#[cfg(not(feature = "postgres"))]
async fn bootstrap_database(name: &str, _: &impl ServiceConfig, _: &str, _: Option<u32>) -> anyhow::Result<()> {
    anyhow::bail!("{name} has no database")
}
