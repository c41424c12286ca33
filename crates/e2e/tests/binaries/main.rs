//! The service binaries, run for real: configuration errors, health, metrics and
//! graceful shutdown of each, and flows that cross services over gRPC and Kafka.
//! The binaries must be built first (`cargo build --bins`; `scripts/test.sh` does it).

mod configuration;
mod flow;
mod manifests;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ticketing_platform::kafka::KafkaConfig;
use ticketing_testkit::process::{Restartable, Spec, binary, free_port};
use ticketing_testkit::{TestDb, TestRedis, eventually_every};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICES: [&str; 7] = ["gateway", "identity", "catalog", "inventory", "booking", "payment", "notification"];
const GRACE: Duration = Duration::from_secs(10);
/// How soon after SIGTERM a service must report NOT_SERVING.
const TURN: Duration = Duration::from_millis(1500);

#[test]
fn a_bad_config_value_exits_78_naming_the_key() {
    for service in SERVICES {
        // A key every binary reads, and one of its own sections.
        let own = match service {
            "gateway" => ("TICKETING_GATEWAY__BACKEND_TIMEOUT", "0s", "gateway.backend_timeout"),
            _ => ("TICKETING_DATABASE__MAX_CONNECTIONS", "0", "database.max_connections"),
        };
        let cases = [
            ("TICKETING_SERVER__GRPC_ADDR", "not-an-address", "server.grpc_addr"),
            ("TICKETING_SERVER__SHUTDOWN_GRACE", "soon", "server.shutdown_grace"),
            own,
        ];
        for (var, value, key) in cases {
            assert_exits_78(service, var, value, key);
        }
    }
}

/// `program` with `var=value` exits 78 naming `key`.
fn assert_exits_78(program: &str, var: &str, value: &str, key: &str) {
    let output = Command::new(binary(program)).env(var, value).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{program} {var}={value}: {stderr}");
    assert!(stderr.contains(key), "{program} {var}={value} should name {key}: {stderr}");
}

/// Login throttling has delays, never a lock (ADR 0026): the lockout keys of ADR 0007 are
/// refused rather than silently ignored, and the delays' caps are checked.
#[test]
fn identity_refuses_the_removed_lockout_keys_and_bad_delay_caps() {
    let cases = [
        ("TICKETING_IDENTITY__LOGIN__LOCKOUT_FAILURES", "10", "lockout_failures"),
        ("TICKETING_IDENTITY__LOGIN__ACCOUNT_MAX_DELAY", "2h", "identity.login.account_max_delay"),
    ];
    for (var, value, key) in cases {
        assert_exits_78("identity", var, value, key);
    }
}

/// The pre-scaler, like the services: a bad value of its own section or of a shared one exits
/// 78 naming the key, before it looks for a cluster.
#[test]
fn the_prescaler_exits_78_naming_a_bad_key() {
    let cases = [
        ("TICKETING_SERVER__SHUTDOWN_GRACE", "soon", "server.shutdown_grace"),
        ("TICKETING_PRESCALER__RUSH", "1s", "prescaler.rush"),
        ("TICKETING_PRESCALER__SERVICES__GATEWAY__HPA", "Not_A_Name", "prescaler.services.gateway.hpa"),
    ];
    for (var, value, key) in cases {
        assert_exits_78("prescaler", var, value, key);
    }
}

/// Production refuses what only development may run (I9: money is real in production) or
/// what would fail at the on-sale: each binary exits 78 naming the key, and says why.
#[test]
fn production_refuses_development_settings_with_exit_78() {
    let processor = [
        ("TICKETING_PAYMENT__PROVIDER", "processor"),
        ("TICKETING_PAYMENT__PROCESSOR__BASE_URL", "https://api.processor.example"),
        ("TICKETING_PAYMENT__PROCESSOR__WEBHOOK_SECRET", "whsec_0123456789abcdef"),
    ];
    // (service, extra environment, the key named, why)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    // Behind a load balancer with no trusted hop, every buyer would share its address's limits.
    let behind_alb = [
        ("TICKETING_GATEWAY__WAITING_ROOM__PASS_SECRET", "a-production-pass-secret-of-32-bytes"),
        ("TICKETING_GATEWAY__FRONT_END", "ingress alb"),
    ];
    let pass_secret = [("TICKETING_GATEWAY__WAITING_ROOM__PASS_SECRET", "a-production-pass-secret-of-32-bytes")];
    let cases: [Case; 6] = [
        ("payment", &[], "payment.provider", "simulated provider"),
        ("payment", &processor, "payment.processor.api_key", "is required"),
        ("booking", &[], "auth.client_secret", "development secret is refused in production"),
        ("gateway", &[], "gateway.waiting_room.pass_secret", "development secret is refused in production"),
        ("gateway", &pass_secret, "auth.client_secret", "development secret is refused in production"),
        ("gateway", &behind_alb, "gateway.rate_limits.trusted_proxy_hops", "behind gateway.front_end \"ingress alb\""),
    ];
    for (service, env, key, why) in cases {
        let output = Command::new(binary(service))
            .env("TICKETING_SERVER__ENVIRONMENT", "production")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{service} in production with {env:?}: {stderr}");
        assert!(stderr.contains(&format!("`{key}`: ")), "{service} should name {key}: {stderr}");
        assert!(stderr.contains(why), "{service} should say why ({why}): {stderr}");
    }
}

/// One running binary with its own database, Redis prefix and topic namespace.
pub(crate) struct Process {
    service: &'static str,
    process: Restartable,
    grpc: u16,
    admin: u16,
    _db: TestDb,
    _redis: TestRedis,
}

impl Process {
    async fn start(service: &'static str) -> Self {
        Self::start_with(service, &ticketing_testkit::kafka_config(), &[]).await
    }

    /// Starts `service` in `kafka`'s topic namespace, with extra environment.
    async fn start_with(service: &'static str, kafka: &KafkaConfig, env: &[(&str, String)]) -> Self {
        // An empty database: the service applies its own migrations at start.
        let db = TestDb::empty().await;
        // As a deployment's ACL user where the service keeps state in Redis.
        let redis = if ticketing_platform::access::REDIS_KEYSPACES.iter().any(|(name, _)| *name == service) {
            TestRedis::for_service(service)
        } else {
            TestRedis::new()
        };
        let (grpc, admin) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("e2e-{service}-{}.log", ticketing_testkit::unique()));
        let mut spec = Spec::new(binary(service));
        spec.env = ticketing_testkit::process::service_env(grpc, admin, Some(&db.config), &redis.config, kafka);
        spec.env.extend(
            [
                // Twice the time the test gives the health status to turn, so that its read
                // of /readyz, made once it turned, always finds the process still draining.
                ("TICKETING_SERVER__DRAIN_DELAY", format!("{}ms", 2 * TURN.as_millis())),
                ("TICKETING_SERVER__SHUTDOWN_GRACE", format!("{}s", GRACE.as_secs())),
                // The gateway's public API; other services ignore the key.
                ("TICKETING_GATEWAY__HTTP_ADDR", "127.0.0.1:0".to_owned()),
            ]
            .into_iter()
            .chain(env.iter().cloned())
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let process = Restartable::start(spec, log);
        Self { service, process, grpc, admin, _db: db, _redis: redis }
    }

    /// The service's log, for failure messages.
    fn log(&self) -> String {
        self.process.output()
    }

    async fn health(&self) -> Option<HealthClient<tonic::transport::Channel>> {
        Some(HealthClient::new(self.channel().await?))
    }

    async fn channel(&self) -> Option<tonic::transport::Channel> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", self.grpc)).ok()?;
        endpoint.connect().await.ok()
    }

    async fn wait_serving(&mut self) -> HealthClient<tonic::transport::Channel> {
        let what = format!("{} to become SERVING", self.service);
        // The probe reads and (checking for an exit) writes the process.
        let this = tokio::sync::Mutex::new(self);
        eventually_every(&what, Duration::from_secs(60), Duration::from_millis(100), || async {
            let mut this = this.lock().await;
            let client = this.health().await;
            if let Some(mut client) = client
                && status(&mut client).await == Some(ServingStatus::Serving)
            {
                return Some(client);
            }
            assert!(this.process.exited().is_none(), "{} exited before serving:\n{}", this.service, this.log());
            None
        })
        .await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://127.0.0.1:{}{path}", self.admin)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_file(self.process.log_path());
    }
}

async fn status(client: &mut HealthClient<tonic::transport::Channel>) -> Option<ServingStatus> {
    let response = client.check(HealthCheckRequest { service: String::new() }).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Whether `exposition` has a sample of `name`: a family name, or a series selector's prefix
/// such as `platform_dependency_up{dependency="kafka"`.
fn has_metric(exposition: &str, name: &str) -> bool {
    match name.split_once('{') {
        None => exposition.lines().any(|l| l.starts_with(&format!("# TYPE {name} "))),
        Some((family, labels)) => {
            exposition.lines().any(|l| l.starts_with(&format!("{family}{{")) && l.contains(labels))
        }
    }
}

/// The metric families (docs/observability.md) each binary exports from the start.
fn expected_metrics(service: &str) -> Vec<&'static str> {
    let mut names = vec!["grpc_server_requests_total", "http_server_requests_total"];
    if service != "gateway" {
        names.extend([
            "db_pool_connections",
            "db_pool_max_connections",
            "db_pool_acquire_duration_seconds",
            r#"platform_dependency_up{dependency="postgres""#,
            r#"platform_dependency_up{dependency="kafka""#,
        ]);
    }
    if service != "gateway" && service != "notification" {
        names.extend(["outbox_pending_messages", "outbox_oldest_pending_age_seconds"]);
    }
    if matches!(service, "gateway" | "identity" | "inventory") {
        names.extend(["redis_memory_used_bytes", "redis_memory_max_bytes"]);
    }
    match service {
        "inventory" => names.extend([
            "inventory_holds_ended_total",
            r#"redis_command_duration_seconds_bucket{operation="hold""#,
            r#"platform_dependency_up{dependency="redis""#,
            "kafka_dlq_messages",
            r#"platform_job_rounds_total{job="reaper""#,
        ]),
        "booking" => names.extend([
            "booking_payment_to_confirmed_seconds",
            r#"booking_tickets_sold_total{event_id="_other""#,
            "kafka_dlq_messages",
            r#"platform_job_rounds_total{job="reconciler""#,
        ]),
        "gateway" => names.extend([
            r#"gateway_waiting_room_joined_total{event_id="_other""#,
            r#"gateway_waiting_room_admitted_total{event_id="_other""#,
            "gateway_waiting_room_wait_seconds",
            r#"redis_command_duration_seconds_bucket{operation="waiting_room""#,
        ]),
        "identity" => names
            .extend([r#"platform_dependency_up{dependency="redis""#, r#"platform_job_rounds_total{job="key-reload""#]),
        "catalog" => names.push(r#"platform_job_rounds_total{job="sale-scheduler""#),
        "payment" => names.push(r#"platform_job_rounds_total{job="reconciler""#),
        "notification" => names.push(r#"platform_job_rounds_total{job="dispatcher""#),
        _ => {}
    }
    names
}

fn promtool_check(service: &str, exposition: &str) {
    use std::io::Write as _;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (scripts/infra.sh installs it)");
    promtool.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "{service}: promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn lifecycle(service: &'static str) {
    let mut process = Process::start(service).await;
    let mut health = process.wait_serving().await;

    let (code, body) = process.get("/healthz").await;
    assert_eq!(code, 200, "{service} /healthz: {body}");
    let (code, body) = process.get("/readyz").await;
    assert_eq!(code, 200, "{service} /readyz: {body}");
    // Sampled gauges appear after the first sample: wait for every expected family.
    let expected = expected_metrics(service);
    let what = format!("{service} to export every expected metric");
    let metrics = eventually_every(&what, Duration::from_secs(20), Duration::from_millis(200), || async {
        let (code, metrics) = process.get("/metrics").await;
        assert_eq!(code, 200);
        let missing: Vec<_> = expected.iter().filter(|name| !has_metric(&metrics, name)).collect();
        if missing.is_empty() { Ok(metrics) } else { Err(format!("{missing:?} missing from:\n{metrics}")) }
    })
    .await;
    promtool_check(service, &metrics);

    // A thread of its own waits for the exit, so the time measured is the process's,
    // not this test's scheduling.
    let mut child = process.process.take_child().expect("running");
    let signalled = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let exited = tokio::task::spawn_blocking(move || (child.wait(), Instant::now()));
    let mut saw_not_serving = false;
    while signalled.elapsed() < TURN {
        if status(&mut health).await == Some(ServingStatus::NotServing) {
            saw_not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_not_serving, "{service}: health never reported NOT_SERVING after SIGTERM");
    let (code, _) = process.get("/readyz").await;
    assert_eq!(code, 503, "{service}: /readyz must fail while draining");

    let Ok(Ok((exit, at))) = tokio::time::timeout(GRACE + Duration::from_secs(5), exited).await else {
        panic!("{service} outlived its grace period:\n{}", process.log());
    };
    let exit = exit.expect("wait for the service");
    assert!(exit.success(), "{service} exited with {exit:?}:\n{}", process.log());
    let took = at - signalled;
    assert!(took < GRACE, "{service} took {took:?} to stop:\n{}", process.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_health_and_metrics_and_drains_on_sigterm() {
    ticketing_testkit::init_logging();
    // One task each, so one service's slow step never stalls another's clock.
    for handle in SERVICES.map(|service| tokio::spawn(lifecycle(service))) {
        if let Err(e) = handle.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
