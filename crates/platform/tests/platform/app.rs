//! The service runner: gRPC health, the admin server, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ticketing_platform::App;
use ticketing_platform::config::ServerConfig;
use ticketing_platform::readiness::Check;
use ticketing_testkit as testkit;
use tonic::service::Routes;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::eventually;

const DRAIN_DELAY: Duration = Duration::from_millis(300);
const GRACE: Duration = Duration::from_secs(5);

pub fn server_config() -> ServerConfig {
    ServerConfig {
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        drain_delay: DRAIN_DELAY,
        shutdown_grace: GRACE,
        readiness_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    }
}

/// A readiness check that passes while `flag` is set.
fn flag_check(flag: Arc<AtomicBool>) -> Check {
    Arc::new(move || {
        let up = flag.load(Ordering::SeqCst);
        Box::pin(async move { if up { Ok(()) } else { anyhow::bail!("the flag is down") } })
    })
}

pub async fn health_client(addr: SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC server");
    HealthClient::new(channel)
}

async fn health(client: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let response = client.check(HealthCheckRequest { service: String::new() }).await.expect("health check answers");
    ServingStatus::try_from(response.into_inner().status).expect("a known status")
}

async fn wait_for_health(client: &mut HealthClient<tonic::transport::Channel>, want: ServingStatus) {
    eventually(&format!("gRPC health {want:?}"), Duration::from_secs(10), || {
        let mut client = client.clone();
        async move { (health(&mut client).await == want).then_some(()) }
    })
    .await;
}

pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("admin server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn health_follows_readiness_and_shutdown_drains() {
    testkit::init_logging();
    let flag = Arc::new(AtomicBool::new(true));
    let mut app = App::new("test", server_config());
    app.check("flag", flag_check(flag.clone()));
    let running = app.bind(Routes::default(), &[]).await.expect("bind");
    let (grpc_addr, admin_url) = (running.grpc_addr(), format!("http://{}", running.admin_addr()));
    assert_ne!(grpc_addr.port(), 0, "the real port is reported");
    let shutdown = running.shutdown_handle();
    let task = tokio::spawn(running.run_until_stopped());

    let mut client = health_client(grpc_addr).await;
    wait_for_health(&mut client, ServingStatus::Serving).await;
    let (status, body) = get_json(&format!("{admin_url}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["draining"], false, "{body}");
    assert_eq!(body["checks"][0]["name"], "flag", "{body}");
    assert_eq!(body["checks"][0]["ok"], true, "{body}");

    // A failing dependency makes the service unready, on both surfaces.
    flag.store(false, Ordering::SeqCst);
    wait_for_health(&mut client, ServingStatus::NotServing).await;
    let (status, body) = get_json(&format!("{admin_url}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["checks"][0]["ok"], false, "{body}");
    assert_eq!(body["checks"][0]["error"], "the flag is down", "{body}");

    // And it recovers.
    flag.store(true, Ordering::SeqCst);
    wait_for_health(&mut client, ServingStatus::Serving).await;
    assert_eq!(get_json(&format!("{admin_url}/readyz")).await.0, 200);

    // Liveness does not depend on readiness.
    let healthz = reqwest::get(format!("{admin_url}/healthz")).await.unwrap();
    assert_eq!(healthz.status().as_u16(), 200);
    assert_eq!(healthz.text().await.unwrap(), "ok");

    let metrics = reqwest::get(format!("{admin_url}/metrics")).await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("grpc_server_requests_total{"), "{text}");
    assert!(text.contains(r#"method="/grpc.health.v1.Health/Check""#), "{text}");
    assert!(text.contains(r#"route="/readyz""#), "{text}");
    assert!(text.contains(r#"service="test""#), "{text}");

    // Shutdown: NOT_SERVING at once, still answering through the drain delay, then exit.
    let started = Instant::now();
    shutdown.shutdown();
    wait_for_health(&mut client, ServingStatus::NotServing).await;
    let noticed = started.elapsed();
    assert!(noticed < DRAIN_DELAY, "health flipped after {noticed:?}, not within the drain delay");
    assert!(!task.is_finished(), "the service keeps running through the drain delay");
    let (status, body) = get_json(&format!("{admin_url}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["draining"], true, "{body}");
    // Even with the check passing, a draining service never turns SERVING again.
    assert_eq!(health(&mut client).await, ServingStatus::NotServing);

    let result = tokio::time::timeout(GRACE, task).await.expect("stops within the grace period").unwrap();
    result.expect("a clean shutdown is Ok");
    let took = started.elapsed();
    assert!(took >= DRAIN_DELAY, "stopped after {took:?}, before the drain delay was over");
    assert!(reqwest::get(format!("{admin_url}/healthz")).await.is_err(), "the admin server is closed");
}

#[tokio::test]
async fn background_tasks_stop_with_the_service() {
    let mut config = server_config();
    config.drain_delay = Duration::ZERO;
    let mut app = App::new("test", config);
    let stop = app.stop_token();
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    app.spawn("worker", async move {
        stop.cancelled().await;
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    let running = app.bind(Routes::default(), &[]).await.unwrap();
    let spawned = testkit::Spawned::start(running);
    let mut client = health_client(spawned.grpc_addr).await;
    wait_for_health(&mut client, ServingStatus::Serving).await;
    assert!(!stopped.load(Ordering::SeqCst));
    tokio::time::timeout(GRACE, spawned.stop()).await.expect("stops in time").expect("clean stop");
    assert!(stopped.load(Ordering::SeqCst), "the task saw the stop token");
}

#[tokio::test]
async fn a_failing_task_stops_the_service_with_its_error() {
    let mut config = server_config();
    // Failure skips the drain delay; a long one would show here as a timeout.
    config.drain_delay = Duration::from_secs(4);
    let mut app = App::new("test", config);
    app.spawn("doomed", async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        anyhow::bail!("the doomed task failed")
    });
    let running = app.bind(Routes::default(), &[]).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(3), running.run_until_stopped())
        .await
        .expect("the service stops soon after a task fails");
    let err = result.expect_err("the failure is the service's result");
    assert!(format!("{err:#}").contains("the doomed task failed"), "{err:#}");
}
