//! The gateway's configuration: the common sections plus `gateway.*`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::cli::ServiceConfig;
use ticketing_platform::config::{
    AuthConfig, ConfigIssue, DiscoveryConfig, RedisConfig, ServerConfig, TelemetryConfig, Validate, check_http_url,
};

/// The gateway's gRPC port (health only); its admin port is this plus 1000.
pub const GRPC_PORT: u16 = 50050;

/// Everything the gateway reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Ports and shutdown.
    pub server: ServerConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Rate limits and the waiting room.
    pub redis: RedisConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// The gateway's own settings.
    pub gateway: GatewaySettings,
    /// How the services' pods are found.
    pub discovery: DiscoveryConfig,
}

/// Settings only the gateway has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewaySettings {
    /// Where the public REST API listens.
    pub http_addr: SocketAddr,
    /// The services' gRPC addresses.
    pub identity_url: String,
    /// Catalog.
    pub catalog_url: String,
    /// Inventory.
    pub inventory_url: String,
    /// Booking.
    pub booking_url: String,
    /// Payment.
    pub payment_url: String,
    /// Notification.
    pub notification_url: String,
    /// Deadline of each backend call.
    #[serde(with = "humantime_serde")]
    pub backend_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS (`*` for any); empty disables CORS.
    pub cors_origins: Vec<String>,
    /// Requests served at once; beyond it the gateway sheds load with 503 at once.
    pub max_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_ports(GRPC_PORT),
            telemetry: TelemetryConfig::default(),
            redis: RedisConfig::default(),
            auth: AuthConfig::default(),
            gateway: GatewaySettings::default(),
            discovery: DiscoveryConfig::default(),
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            identity_url: "http://127.0.0.1:50051".into(),
            catalog_url: "http://127.0.0.1:50052".into(),
            inventory_url: "http://127.0.0.1:50053".into(),
            booking_url: "http://127.0.0.1:50054".into(),
            payment_url: "http://127.0.0.1:50055".into(),
            notification_url: "http://127.0.0.1:50056".into(),
            backend_timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            cors_origins: Vec::new(),
            max_concurrency: 2048,
        }
    }
}

impl GatewaySettings {
    /// The backend URLs with their keys.
    pub fn backends(&self) -> [(&'static str, &str); 6] {
        [
            ("gateway.identity_url", &self.identity_url),
            ("gateway.catalog_url", &self.catalog_url),
            ("gateway.inventory_url", &self.inventory_url),
            ("gateway.booking_url", &self.booking_url),
            ("gateway.payment_url", &self.payment_url),
            ("gateway.notification_url", &self.notification_url),
        ]
    }
}

impl Validate for Config {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.server.validate(issues);
        self.telemetry.validate(issues);
        self.redis.validate(issues);
        self.auth.validate(issues);
        self.discovery.validate(issues);
        let g = &self.gateway;
        for (key, url) in g.backends() {
            check_http_url(key, url, issues);
        }
        if g.http_addr == self.server.grpc_addr || g.http_addr == self.server.admin_addr {
            issues.push(ConfigIssue::new("gateway.http_addr", "must differ from the gRPC and admin addresses"));
        }
        if g.backend_timeout < Duration::from_millis(10) || g.backend_timeout > Duration::from_secs(60) {
            issues.push(ConfigIssue::new("gateway.backend_timeout", "must be between 10ms and 60s"));
        }
        if g.max_body_bytes < 1024 || g.max_body_bytes > 64 << 20 {
            issues.push(ConfigIssue::new("gateway.max_body_bytes", "must be between 1 KiB and 64 MiB"));
        }
        if g.max_concurrency == 0 || g.max_concurrency > 1_000_000 {
            issues.push(ConfigIssue::new("gateway.max_concurrency", "must be between 1 and 1,000,000"));
        }
        for origin in &g.cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                issues.push(ConfigIssue::new("gateway.cors_origins", format!("{origin:?} is not an origin")));
            }
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }

    fn database(&self) -> Option<&ticketing_platform::config::DatabaseConfig> {
        None
    }
}
