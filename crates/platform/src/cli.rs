//! The command line every service binary shares: `<service> [--config FILE] [serve|migrate|check]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::migrate::Migrator;

use crate::config::{self, DatabaseConfig, TelemetryConfig, Validate};

/// Exit status for a bad configuration (`EX_CONFIG` from sysexits.h).
pub const EXIT_BAD_CONFIG: u8 = 78;

#[derive(Parser)]
struct Cli {
    /// A TOML file layered between the defaults and `TICKETING_*` variables.
    #[arg(long, env = "TICKETING_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone, Copy)]
enum Command {
    /// Serve gRPC, health and metrics until SIGTERM (the default).
    Serve,
    /// Create the database if needed, apply pending migrations, and exit. Only the
    /// `database` and `telemetry` keys are checked: the migration Job gets no other secret.
    Migrate,
    /// Check the whole configuration, as `serve` would, and exit.
    Check,
}

impl Command {
    /// Whether an issue with `key` stops this command.
    fn checks(self, key: &str) -> bool {
        match self {
            Self::Serve | Self::Check => true,
            Self::Migrate => ["database.", "telemetry."].iter().any(|section| key.starts_with(section)),
        }
    }
}

/// A service's configuration, as the shared command line needs to see it.
pub trait ServiceConfig: Serialize + DeserializeOwned + Validate + Send + 'static {
    /// Log settings.
    fn telemetry(&self) -> &TelemetryConfig;
    /// The service's database, if it owns one.
    fn database(&self) -> Option<&DatabaseConfig>;
}

/// Parses the command line, loads the configuration and runs `serve` or `migrate`.
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
            Command::Migrate => {
                let database = config.database().ok_or_else(|| anyhow::anyhow!("{name} has no database to migrate"))?;
                crate::db::migrate(database, &crate::db::migrator(migrations)).await?;
                tracing::info!(service = name, "migrations applied");
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
