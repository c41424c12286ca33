//! The real binary: bad configuration, and SIGTERM's effect on health and exit.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::test_config;

const BIN: &str = env!("CARGO_BIN_EXE_identity");

#[test]
fn a_bad_config_value_exits_non_zero_naming_the_key() {
    for (var, value, key) in [
        ("TICKETING_SERVER__GRPC_ADDR", "not-an-address", "server.grpc_addr"),
        ("TICKETING_SERVER__SHUTDOWN_GRACE", "0s", "server.shutdown_grace"),
        ("TICKETING_IDENTITY__PASSWORD_MIN_LENGTH", "3", "identity.password_min_length"),
        ("TICKETING_DATABASE__URL", "mysql://nope", "database.url"),
    ] {
        let output = Command::new(BIN).env(var, value).stdin(Stdio::null()).output().expect("run identity");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{var}={value}: {stderr}");
        assert!(stderr.contains(key), "{var}={value} should name {key}: {stderr}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn status(client: &mut HealthClient<tonic::transport::Channel>) -> Option<ServingStatus> {
    let response = client.check(HealthCheckRequest { service: String::new() }).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

#[tokio::test]
async fn sigterm_reports_not_serving_then_exits_within_the_grace_period() {
    let (config, _db, _redis, kafka) = test_config().await;
    let (grpc, admin) = (free_port(), free_port());
    let grace = Duration::from_secs(5);
    let mut child = Command::new(BIN)
        .env("TICKETING_SERVER__GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("TICKETING_SERVER__ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("TICKETING_SERVER__DRAIN_DELAY", "1500ms")
        .env("TICKETING_SERVER__SHUTDOWN_GRACE", "5s")
        .env("TICKETING_SERVER__READINESS_INTERVAL", "100ms")
        .env("TICKETING_DATABASE__URL", &config.database.url)
        .env("TICKETING_DATABASE__MIGRATE_ON_START", "false")
        .env("TICKETING_REDIS__URL", &config.redis.url)
        .env("TICKETING_REDIS__KEY_PREFIX", &config.redis.key_prefix)
        .env("TICKETING_KAFKA__BROKERS", &kafka.brokers)
        .env("TICKETING_KAFKA__TOPIC_NAMESPACE", &kafka.topic_namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start identity");

    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut client = HealthClient::new(channel);
            if status(&mut client).await == Some(ServingStatus::Serving) {
                break client;
            }
        }
        assert!(Instant::now() < deadline, "identity never became SERVING");
        assert!(child.try_wait().unwrap().is_none(), "identity exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let signalled = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let mut saw_not_serving = false;
    while signalled.elapsed() < Duration::from_secs(1) {
        if status(&mut client).await == Some(ServingStatus::NotServing) {
            saw_not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_not_serving, "health never reported NOT_SERVING during the drain");

    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if signalled.elapsed() > grace + Duration::from_secs(2) {
            child.kill().ok();
            panic!("identity did not exit within the grace period");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert!(signalled.elapsed() < grace, "exited after {:?}", signalled.elapsed());
}
