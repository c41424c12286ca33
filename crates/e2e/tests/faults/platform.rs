//! The whole platform as the seven real binaries, each a child process the suite can kill,
//! pause and start again with the same command line and environment, on a private broker,
//! a private Redis and fresh databases, with a real SMTP server catching the emails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ticketing_demo::api::{Account, Api, Urls, retry, unavailable};
use ticketing_demo::plan::Person;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::redis::RedisConfig;
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::TestDb;
use ticketing_testkit::broker::PrivateBroker;
use ticketing_testkit::process::{Restartable, Spec, binary, free_port, service_env};
use ticketing_testkit::redis_server::PrivateRedis;
use ticketing_testkit::smtp::SmtpSink;

const SERVICES: [&str; 7] = ["identity", "catalog", "inventory", "booking", "payment", "notification", "gateway"];
const ADMIN_EMAIL: &str = "root@faults.test";
const ADMIN_PASSWORD: &str = "bootstrap-admin-passphrase";
const PASSWORD: &str = "a-long-enough-passphrase";
const BOOKING_SECRET: &str = "booking-faults-secret-of-at-least-32-chars";
const GATEWAY_SECRET: &str = "gateway-faults-secret-of-at-least-32-chars";
/// Each buyer may hold or own this many tickets of the event (the catalog's ceiling).
const PER_USER_LIMIT: u32 = 100;
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// One service binary and its ports.
pub struct Service {
    pub name: &'static str,
    pub process: Restartable,
    pub admin: u16,
}

impl Service {
    /// Waits until the service is ready; starts it again when it exited because its port was
    /// taken (`free_port` claims ports no test and no outgoing connection takes, but a program
    /// outside the suite may still bind one between the claim and the service's bind).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let started = Instant::now();
        let mut rebinds = 0;
        while !ready(self.admin).await {
            if let Some(exit) = self.process.exited() {
                let output = self.process.output();
                assert!(
                    output.contains("Address already in use") && rebinds < 5,
                    "{} exited ({exit}) before it was ready:\n{}",
                    self.name,
                    tail(&output, 40)
                );
                rebinds += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.process.resume();
            }
            assert!(
                started.elapsed() < timeout,
                "{} was not ready within {timeout:?}:\n{}",
                self.name,
                tail(&self.process.output(), 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        started.elapsed()
    }
}

/// The event the buyers race for, and the buyers.
#[derive(Clone)]
pub struct Shop {
    pub event: String,
    pub category: String,
    pub buyers: Vec<Account>,
}

/// The running platform, and what the suite needs to fault it and read its facts.
pub struct Platform {
    /// By name; dropped (killed) before the databases and servers they use.
    pub services: BTreeMap<&'static str, Service>,
    pub dbs: BTreeMap<&'static str, TestDb>,
    pub broker: PrivateBroker,
    pub redis: PrivateRedis,
    pub smtp: SmtpSink,
    /// The gateway's public base URL.
    pub http: String,
    /// Where the services' logs are kept; removed when the test passes.
    pub logs: PathBuf,
    /// When the platform was ready: the origin of every time the suite prints.
    pub t0: Instant,
    api: Api,
}

impl Platform {
    /// Starts the platform for the test `name` and waits until every service is ready.
    pub async fn start(name: &str) -> Self {
        let logs =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{name}-{}", ticketing_testkit::unique()));
        std::fs::create_dir_all(&logs).expect("the log directory");
        let broker = tokio::task::spawn_blocking(PrivateBroker::start).await.expect("the private broker");
        let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.expect("the private Redis");
        let smtp = SmtpSink::start().await;
        let kafka = KafkaConfig {
            brokers: broker.address.clone(),
            topic_namespace: format!("f{}", ticketing_testkit::unique()),
            // The local platform's settings for tansu (run-local.sh, ADR 0019): its group
            // coordinator can strand a restarted member, and a timed-out produce kills its storage.
            assign_all_partitions: true,
            producer_message_timeout: Duration::ZERO,
            consumer_stall_timeout: Duration::from_secs(20),
            ..KafkaConfig::default()
        };
        let redis_config = RedisConfig { url: redis.url.clone(), key_prefix: "faults:".into(), ca_file: None };
        let mut dbs = BTreeMap::new();
        for service in SERVICES.into_iter().filter(|s| *s != "gateway") {
            dbs.insert(service, TestDb::empty().await);
        }
        let ports: BTreeMap<&str, (u16, u16)> = SERVICES.iter().map(|s| (*s, (free_port(), free_port()))).collect();
        let url = |service: &str| format!("http://127.0.0.1:{}", ports[service].0);
        let http_port = free_port();
        let (identity_grpc, identity_admin) = ports["identity"];

        let mut services = BTreeMap::new();
        for service in SERVICES {
            let (grpc, admin) = ports[service];
            let mut spec = Spec::new(binary(service));
            spec.env = service_env(grpc, admin, dbs.get(service).map(|db| &db.config), &redis_config, &kafka);
            let common = [
                // Plain lines without colour codes: the logs are for people reading them.
                ("TICKETING_TELEMETRY__LOG_JSON", "false".to_owned()),
                ("NO_COLOR", "1".to_owned()),
                ("TICKETING_DATABASE__MAX_CONNECTIONS", "8".to_owned()),
                ("TICKETING_AUTH__JWKS_URL", format!("http://127.0.0.1:{identity_admin}/.well-known/jwks.json")),
                ("TICKETING_AUTH__IDENTITY_URL", format!("http://127.0.0.1:{identity_grpc}")),
            ];
            let own = settings(service, &url, smtp.addr, http_port);
            spec.env.extend(common.into_iter().chain(own).map(|(k, v)| (k.to_owned(), v)));
            let process = Restartable::start(spec, logs.join(format!("{service}.log")));
            services.insert(service, Service { name: service, process, admin });
        }
        for service in services.values_mut() {
            service.wait_ready(READY_TIMEOUT).await;
        }
        let urls = Urls {
            identity_url: url("identity"),
            catalog_url: url("catalog"),
            inventory_url: url("inventory"),
            booking_url: url("booking"),
            payment_url: url("payment"),
        };
        let api = Api::connect(&urls).expect("the services' gRPC clients");
        Self {
            services,
            dbs,
            broker,
            redis,
            smtp,
            http: format!("http://127.0.0.1:{http_port}"),
            logs,
            t0: Instant::now(),
            api,
        }
    }

    pub fn service(&mut self, name: &str) -> &mut Service {
        self.services.get_mut(name).unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Seconds since the platform was ready, for messages.
    pub fn at(&self, instant: Instant) -> String {
        format!("+{:.1}s", instant.saturating_duration_since(self.t0).as_secs_f64())
    }

    /// An organizer's general-admission event on sale now and `buyers` signed-in buyers.
    pub async fn shop(&self, buyers: usize) -> Shop {
        let api = &self.api;
        let admin = retry(Duration::from_secs(30), unavailable, || api.login(ADMIN_EMAIL, ADMIN_PASSWORD))
            .await
            .expect("the bootstrap admin signs in");
        let person = |local: String, role| Person {
            email: format!("{local}@faults.test"),
            name: "Fault Injector".into(),
            role,
            password: PASSWORD,
        };
        let organizer = api.account(&admin, &person("organizer".into(), Role::Organizer)).await.expect("organizer");
        let people = (0..buyers).map(|n| person(format!("buyer{n:03}"), Role::User));
        let buyers = api.accounts(&admin, people, 4).await.expect("the buyers' accounts");
        let sale = api
            .ga_sale(&organizer, &buyers[0], "Fault injection", 100_000, PER_USER_LIMIT)
            .await
            .expect("an event on sale");
        Shop { event: sale.event, category: sale.category, buyers }
    }

    /// The last `lines` lines of each service's log that report trouble, for a failure message.
    pub fn troubles(&self, lines: usize) -> String {
        let mut out = String::new();
        for service in self.services.values() {
            let output = service.process.output();
            let bad: Vec<&str> = output
                .lines()
                .filter(|l| {
                    l.contains(" WARN ")
                        || l.contains(" ERROR ")
                        || l.contains("restarted by the test")
                        || l.contains("SESSTMOUT")
                        || l.contains("panicked")
                })
                .collect();
            let shown = &bad[bad.len().saturating_sub(lines)..];
            out.push_str(&format!("---- {} ({} trouble lines, last {}):\n", service.name, bad.len(), shown.len()));
            for line in shown {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Each service's own settings beyond [`service_env`]: its peers, secrets and the bounds the
/// suite's deadline needs.
fn settings(
    service: &str,
    url: &impl Fn(&str) -> String,
    smtp: SocketAddr,
    http_port: u16,
) -> Vec<(&'static str, String)> {
    match service {
        "identity" => vec![
            ("TICKETING_IDENTITY__BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("TICKETING_IDENTITY__BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("TICKETING_IDENTITY__SERVICE_CLIENTS__BOOKING", BOOKING_SECRET.into()),
            ("TICKETING_IDENTITY__SERVICE_CLIENTS__GATEWAY", GATEWAY_SECRET.into()),
        ],
        "booking" => vec![
            ("TICKETING_AUTH__CLIENT_ID", "booking".into()),
            ("TICKETING_AUTH__CLIENT_SECRET", BOOKING_SECRET.into()),
            ("TICKETING_BOOKING__INVENTORY_URL", url("inventory")),
            ("TICKETING_BOOKING__CATALOG_URL", url("catalog")),
            ("TICKETING_BOOKING__NOTIFICATION_URL", url("notification")),
            // Booking's reconciler asks payment about bookings left unpaid (issue 13);
            // a booking without one ignores it.
            ("TICKETING_BOOKING__PAYMENT_URL", url("payment")),
        ],
        "payment" => vec![
            // A charge in flight when its replica dies is settled by the reconciler
            // after this (2m by default): within the suite's 60 s deadline.
            ("TICKETING_PAYMENT__PENDING_TIMEOUT", "20s".into()),
            ("TICKETING_PAYMENT__RECONCILE_INTERVAL", "1s".into()),
        ],
        "notification" => vec![
            ("TICKETING_NOTIFICATION__SMTP__HOST", smtp.ip().to_string()),
            ("TICKETING_NOTIFICATION__SMTP__PORT", smtp.port().to_string()),
            ("TICKETING_NOTIFICATION__SMTP__TIMEOUT", "5s".into()),
            ("TICKETING_NOTIFICATION__DISPATCH_INTERVAL", "100ms".into()),
            // An email claimed by a replica that died is sent again after the lease
            // (2m by default): within the suite's deadline.
            ("TICKETING_NOTIFICATION__SEND_LEASE", "15s".into()),
        ],
        "gateway" => vec![
            ("TICKETING_AUTH__CLIENT_ID", "gateway".into()),
            ("TICKETING_AUTH__CLIENT_SECRET", GATEWAY_SECRET.into()),
            ("TICKETING_GATEWAY__HTTP_ADDR", format!("127.0.0.1:{http_port}")),
            ("TICKETING_GATEWAY__IDENTITY_URL", url("identity")),
            ("TICKETING_GATEWAY__CATALOG_URL", url("catalog")),
            ("TICKETING_GATEWAY__INVENTORY_URL", url("inventory")),
            ("TICKETING_GATEWAY__BOOKING_URL", url("booking")),
            ("TICKETING_GATEWAY__PAYMENT_URL", url("payment")),
            ("TICKETING_GATEWAY__NOTIFICATION_URL", url("notification")),
            // Every buyer comes from 127.0.0.1: the per-IP limit would refuse the
            // load, and rate limits are not what this suite is about.
            ("TICKETING_GATEWAY__RATE_LIMITS__IP__PER_SECOND", "5000".into()),
            ("TICKETING_GATEWAY__RATE_LIMITS__IP__BURST", "5000".into()),
        ],
        _ => vec![],
    }
}

/// Whether the `/readyz` of the admin port `admin` answers 200 within a second.
pub async fn ready(admin: u16) -> bool {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().expect("an HTTP client");
    client.get(format!("http://127.0.0.1:{admin}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The series behind the saga's alerts (docs/observability.md): what an SRE's Prometheus
/// would have seen of the fault.
const SIGNALS: [&str; 5] = [
    "booking_reconciled_total",
    "kafka_consumer_rejoins_total",
    "kafka_consumer_stalled",
    "kafka_dlq_messages",
    "kafka_consumer_messages_total{",
];

impl Platform {
    /// The non-zero samples of [`SIGNALS`] on every service's `/metrics` (dead-lettered
    /// messages only, of the consumed ones), as `service: series value`. A restarted service
    /// counts from its restart.
    pub async fn signals(&self) -> Vec<String> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
        let mut found = Vec::new();
        for service in self.services.values() {
            let url = format!("http://127.0.0.1:{}/metrics", service.admin);
            let Ok(text) = async { client.get(&url).send().await?.text().await }.await else {
                found.push(format!("{}: /metrics did not answer", service.name));
                continue;
            };
            found.extend(
                text.lines()
                    .filter(|line| SIGNALS.iter().any(|s| line.starts_with(s)))
                    .filter(|line| !line.starts_with("kafka_consumer_messages_total") || line.contains("dead_lettered"))
                    .filter_map(|line| line.rsplit_once(' '))
                    .filter(|(_, value)| value.parse::<f64>().is_ok_and(|v| v != 0.0))
                    .map(|(series, value)| format!("{}: {series} {value}", service.name)),
            );
        }
        found
    }
}
