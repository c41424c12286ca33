//! [`service_config!`](macro@crate::service_config): a service's `Config` declared as the shared
//! sections it reads plus its own, without writing the plumbing every service shares.
//!
//! Every section stays a field of the struct, so figment names a bad key by its whole path
//! (`database.url`, `payment.processor.base_url`); `#[serde(flatten)]` would lose that path
//! (ADR 0038).
//!
//! The shared sections, by the name a service lists them under:
//!
//! | section | type | default |
//! |---|---|---|
//! | `server` (always) | `config::ServerConfig` | `ServerConfig::with_ports(grpc_port)` |
//! | `telemetry` (always) | `telemetry::TelemetryConfig` | its `Default` |
//! | `database` | `db::DatabaseConfig` (the `postgres` feature) | `DatabaseConfig::for_service(service)` |
//! | `redis` | `redis::RedisConfig` | its `Default` |
//! | `kafka` | `kafka::KafkaConfig` (the `kafka` feature) | its `Default` |
//! | `auth` | `auth::AuthConfig` | its `Default` |
//! | `sealing` | `sealing::SealingConfig` (the `postgres` feature) | its `Default`; checked against `server.environment` |
//! | `discovery` | `discovery::DiscoveryConfig` | its `Default` |

/// Declares a service's `Config`: `server`, `telemetry`, the shared sections listed by name
/// (see the [module](mod@crate::service_config)) and the service's own sections, written with
/// their type. A section may give its default after `=`; the others take the table's default,
/// or their type's `Default`.
///
/// It writes the struct (deriving serde's `Serialize` and `Deserialize`: the service depends
/// on serde), its `Default`, [`ServiceConfig`](crate::cli::ServiceConfig), and a private
/// `validate_shared` that checks `server`, `telemetry` and the shared sections. The service
/// implements [`Validate`](crate::config::Validate) itself: `validate_shared` first, then the
/// rules of its own sections, which often read other sections too (`server.environment`,
/// `auth`).
///
/// ```ignore
/// ticketing_platform::service_config! {
///     service = "inventory";
///     grpc_port = GRPC_PORT;
///
///     /// The whole configuration.
///     pub struct Config {
///         /// The sold ledger.
///         database,
///         /// Live stock and holds.
///         redis,
///         /// Inventory's own settings.
///         inventory: InventorySettings,
///     }
/// }
///
/// impl Validate for Config {
///     fn validate(&self, issues: &mut Vec<ConfigIssue>) {
///         self.validate_shared(issues);
///         // inventory.* rules
///     }
/// }
/// ```
#[macro_export]
macro_rules! service_config {
    (
        service = $service:literal;
        grpc_port = $grpc_port:expr;

        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$doc:meta])* $section:ident $(: $own:ty)? $(= $default:expr)? ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default)]
        $vis struct $name {
            /// Ports, drain and readiness timing.
            pub server: $crate::config::ServerConfig,
            /// Logs and traces.
            pub telemetry: $crate::telemetry::TelemetryConfig,
            $( $(#[$doc])* pub $section: $crate::__service_config_section!(type $section $(: $own)?), )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self {
                    server: $crate::config::ServerConfig::with_ports($grpc_port),
                    telemetry: ::core::default::Default::default(),
                    $( $section: $crate::__service_config_section!(
                        default $service; $section $(: $own)? $(= $default)?
                    ), )*
                }
            }
        }

        impl $name {
            /// Checks `server`, `telemetry` and the shared sections, not the service's own.
            fn validate_shared(&self, issues: &mut ::std::vec::Vec<$crate::config::ConfigIssue>) {
                $crate::config::Validate::validate(&self.server, issues);
                $crate::config::Validate::validate(&self.telemetry, issues);
                $( $crate::__service_config_section!(check self, issues; $section $(: $own)?); )*
            }
        }

        impl $crate::cli::ServiceConfig for $name {
            fn telemetry(&self) -> &$crate::telemetry::TelemetryConfig {
                &self.telemetry
            }

            $( $crate::__service_config_section!(accessor $section $(: $own)?); )*
        }
    };
}

/// What [`service_config!`] writes for one section: its type, its default, its check, and
/// the [`ServiceConfig`](crate::cli::ServiceConfig) accessor a `database` or `redis` has.
#[doc(hidden)]
#[macro_export]
macro_rules! __service_config_section {
    (type database) => {
        $crate::db::DatabaseConfig
    };
    (type redis) => {
        $crate::redis::RedisConfig
    };
    (type kafka) => {
        $crate::kafka::KafkaConfig
    };
    (type auth) => {
        $crate::auth::AuthConfig
    };
    (type sealing) => {
        $crate::sealing::SealingConfig
    };
    (type discovery) => {
        $crate::discovery::DiscoveryConfig
    };
    (type $section:ident : $own:ty) => {
        $own
    };
    (type $section:ident) => {
        ::core::compile_error!(::core::concat!(
            "`",
            ::core::stringify!($section),
            "` is no shared section: give the type of the service's own, `",
            ::core::stringify!($section),
            ": ...Settings`"
        ))
    };

    (default $service:literal; $section:ident $(: $own:ty)? = $default:expr) => {
        $default
    };
    (default $service:literal; database) => {
        $crate::db::DatabaseConfig::for_service($service)
    };
    (default $service:literal; $section:ident $(: $own:ty)?) => {
        ::core::default::Default::default()
    };

    // Production refuses the development KEK.
    (check $config:ident, $issues:ident; sealing) => {
        $config.sealing.validate_in($config.server.environment, $issues)
    };
    // The service's own sections are checked by its `Validate`.
    (check $config:ident, $issues:ident; $section:ident : $own:ty) => {};
    (check $config:ident, $issues:ident; $section:ident) => {
        $crate::config::Validate::validate(&$config.$section, $issues)
    };

    (accessor database) => {
        fn database(&self) -> ::core::option::Option<&$crate::db::DatabaseConfig> {
            ::core::option::Option::Some(&self.database)
        }
    };
    (accessor redis) => {
        fn redis(&self) -> ::core::option::Option<&$crate::redis::RedisConfig> {
            ::core::option::Option::Some(&self.redis)
        }
    };
    (accessor $($section:tt)*) => {};
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::cli::ServiceConfig;
    use crate::config::tests::load_vars;
    use crate::config::{ConfigIssue, Environment, Validate};

    crate::service_config! {
        service = "sample";
        grpc_port = 50099;

        /// A service with a database, sealed keys and a section of its own.
        pub struct Config {
            database,
            sealing,
            sample: SampleSettings,
        }
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct SampleSettings {
        limit: u32,
    }

    impl Validate for Config {
        fn validate(&self, issues: &mut Vec<ConfigIssue>) {
            self.validate_shared(issues);
            if self.sample.limit > 10 {
                issues.push(ConfigIssue::new("sample.limit", "must be at most 10"));
            }
        }
    }

    #[test]
    fn the_defaults_follow_the_service_and_its_port() {
        let config = load_vars(Config::default(), &[]).expect("defaults load");
        assert_eq!((config.server.grpc_addr.port(), config.server.admin_addr.port()), (50099, 51099));
        let database = config.database().map(|d| d.url.as_str());
        assert_eq!(database, Some("postgres://postgres@127.0.0.1:5432/ticketing_sample"));
        assert!(config.redis().is_none());
    }

    #[test]
    fn errors_name_the_whole_key() {
        let err = load_vars(Config::default(), &[("TICKETING_DATABASE__MAX_CONNECTIONS", "many")]).unwrap_err();
        assert!(err.contains("`database.max_connections`"), "{err}");
        let err = load_vars(Config::default(), &[("TICKETING_SAMPLE__LIMIT", "11")]).unwrap_err();
        assert!(err.contains("`sample.limit`"), "{err}");
    }

    #[test]
    fn the_shared_sections_are_checked_before_the_services_own() {
        let mut config = Config::default();
        config.server.environment = Environment::Production;
        config.database.url = "mysql://db".into();
        config.sample.limit = 11;
        assert_eq!(config.issue_keys(), ["database.url", "sealing.kek", "sample.limit"]);
    }
}
