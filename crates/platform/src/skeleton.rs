//! The running shape of a service whose features have not been built yet: it
//! starts, connects to its dependencies, serves health and metrics, and shuts
//! down cleanly. Each service leaves this module when its own issue lands.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::cli::ServiceConfig;
use crate::config::{ConfigIssue, DatabaseConfig, RedisConfig, ServerConfig, TelemetryConfig, Validate};

/// Which dependencies the service has.
#[derive(Debug, Clone, Copy)]
pub struct Dependencies {
    /// It owns a Postgres database.
    pub postgres: bool,
    /// It keeps state in Redis.
    pub redis: bool,
}

/// Configuration of a skeleton service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SkeletonConfig {
    /// Ports and shutdown.
    pub server: ServerConfig,
    /// Logs.
    pub telemetry: TelemetryConfig,
    /// The service's database (used when it has one).
    pub database: DatabaseConfig,
    /// Redis (used when the service has it).
    pub redis: RedisConfig,
}

impl Validate for SkeletonConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.server.validate(issues);
        self.telemetry.validate(issues);
        self.database.validate(issues);
        self.redis.validate(issues);
    }
}

impl ServiceConfig for SkeletonConfig {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }

    fn database(&self) -> Option<&DatabaseConfig> {
        Some(&self.database)
    }
}

/// Runs the skeleton of `name` with gRPC on `grpc_port` (admin on `grpc_port + 1000`).
pub fn main(name: &'static str, grpc_port: u16, deps: Dependencies) -> std::process::ExitCode {
    let defaults = SkeletonConfig {
        server: ServerConfig::with_ports(grpc_port),
        database: DatabaseConfig::for_service(name),
        ..SkeletonConfig::default()
    };
    crate::cli::main(name, defaults, None, move |config: SkeletonConfig| async move {
        let mut app = App::new(name, config.server.clone());
        if deps.postgres {
            let pool = crate::db::open(&config.database, &crate::db::migrator(None)).await?;
            app.check("postgres", crate::readiness::postgres(pool));
        }
        if deps.redis {
            app.check("redis", crate::readiness::redis(crate::redis::connect(&config.redis).await?));
        }
        app.bind(tonic::service::Routes::default(), &[]).await?.run_until_stopped().await
    })
}
