//! The Redis connection against a private redis-server the tests kill and restart: no
//! command waits longer than the response timeout, and the connection comes back by itself;
//! and the memory gauges sampled from it.

use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use ticketing_platform::metrics::Metrics;
use ticketing_platform::redis::RedisConfig;
use ticketing_platform::redis::{Connection, LazyConnection};
use ticketing_platform::telemetry::TelemetryConfig;
use ticketing_testkit::redis_server::PrivateRedis;
use tokio_util::sync::CancellationToken;

use crate::support::{counter, eventually};

/// The connection's response timeout, plus room for a loaded machine.
const BOUND: Duration = Duration::from_secs(3);

fn config(server: &PrivateRedis) -> RedisConfig {
    RedisConfig { url: server.url.clone(), key_prefix: "test:".into(), ca_file: None }
}

/// Runs `command`, failing the test if it takes longer than [`BOUND`].
async fn bounded<T>(what: &str, command: impl Future<Output = T>) -> T {
    let started = Instant::now();
    // Far longer than BOUND, so a hang shows as a failed assertion, not a stuck test.
    let outcome = tokio::time::timeout(Duration::from_secs(30), command).await;
    let took = started.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    outcome.unwrap_or_else(|_| panic!("{what} hung"))
}

async fn ping(conn: &mut impl ConnectionLike) -> redis::RedisResult<String> {
    redis::cmd("PING").query_async(conn).await
}

/// The server's id for the connection, which a reconnection changes.
async fn client_id(conn: &Connection) -> i64 {
    redis::cmd("CLIENT").arg("ID").query_async(&mut conn.clone()).await.unwrap()
}

/// Polls until a PING answers, and returns how long that took.
async fn until_answered(conn: &mut Connection) -> Duration {
    let started = Instant::now();
    eventually("Redis to answer again", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move { bounded("a PING while reconnecting", ping(&mut conn)).await.ok() }
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn commands_fail_fast_while_redis_is_down_and_work_again_soon_after_it_returns() {
    let mut server = PrivateRedis::start();
    let mut conn = ticketing_platform::redis::connect(&config(&server)).await.unwrap();
    let _: () = redis::cmd("SET").arg("test:kept").arg("yes").query_async(&mut conn).await.unwrap();
    let check = ticketing_platform::readiness::redis(conn.clone());

    server.kill();
    for attempt in 0..5 {
        let failed = bounded("a PING while Redis is down", ping(&mut conn)).await;
        assert!(failed.is_err(), "attempt {attempt}: {failed:?}");
    }
    let unready = bounded("the readiness check", check()).await.expect_err("Redis is down");
    assert!(format!("{unready:#}").contains("not connected to Redis"), "{unready:#}");

    server.resume();
    let took = until_answered(&mut conn).await;
    assert!(took < BOUND, "reconnected {took:?} after Redis returned");
    bounded("the readiness check", check()).await.expect("Redis is back");

    // Data, pipelines and scripts go through the new connection (the restart emptied the
    // script cache, so the script is loaded again on the way).
    let kept: String = redis::cmd("GET").arg("test:kept").query_async(&mut conn).await.unwrap();
    assert_eq!(kept, "yes");
    let (a, b): (i64, i64) = redis::pipe().incr("test:n", 1).incr("test:n", 2).query_async(&mut conn).await.unwrap();
    assert_eq!((a, b), (1, 3));
    let doubled: i64 = redis::Script::new("return ARGV[1] * 2").arg(21).invoke_async(&mut conn).await.unwrap();
    assert_eq!(doubled, 42);
}

#[tokio::test]
async fn a_service_starts_while_redis_is_down_and_connects_when_it_comes() {
    let mut server = PrivateRedis::start();
    server.kill();
    let config = config(&server);

    let mut conn = bounded("connecting", ticketing_platform::redis::connect(&config)).await.expect("a connection");
    let lazy = LazyConnection::connect(&config).unwrap();
    let failed = bounded("a PING before Redis ever answered", ping(&mut conn)).await.expect_err("Redis is down");
    assert_eq!(failed.kind(), redis::ErrorKind::IoError, "{failed:?}");
    assert!(failed.to_string().contains("not connected to Redis"), "{failed}");
    assert!(lazy.get().is_none(), "no connection before Redis answered");

    server.resume();
    until_answered(&mut conn).await;
    let mut later = eventually("the lazy connection", Duration::from_secs(5), || async { lazy.get() }).await;
    assert_eq!(bounded("a PING", ping(&mut later)).await.unwrap(), "PONG");

    // Once it has answered, it stays handed out: commands, not `get`, report outages.
    server.kill();
    assert!(bounded("a PING while Redis is down", ping(&mut later)).await.is_err());
    assert!(lazy.get().is_some());
}

#[tokio::test]
async fn a_reply_that_does_not_come_in_time_fails_the_command_not_the_connection() {
    let server = PrivateRedis::start();
    let mut conn = ticketing_platform::redis::connect(&config(&server)).await.unwrap();
    let before = client_id(&conn).await;
    // Keeps this (private) server busy for 3 s: longer than the response timeout.
    let busy = redis::Script::new(
        "local t = redis.call('TIME') local until_us = t[1] * 1e6 + t[2] + 3e6
         repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= until_us
         return 1",
    );
    let late: redis::RedisResult<i64> = bounded("a script Redis is slow to answer", busy.invoke_async(&mut conn)).await;
    assert!(late.expect_err("no reply within the timeout").is_timeout());
    // The script ends; the same connection answers again without reconnecting.
    until_answered(&mut conn).await;
    assert_eq!(client_id(&conn).await, before);
}

/// `redis_memory_*` follow Redis's own `INFO memory`: the limit the server has (set here as
/// Memorystore and ElastiCache set theirs), and the memory its data takes, which a large
/// value raises by at least its size.
#[tokio::test]
async fn the_memory_gauges_follow_redis_used_memory_and_its_limit() {
    let server = PrivateRedis::start();
    let mut conn = ticketing_platform::redis::connect(&config(&server)).await.unwrap();
    let limit: u64 = 256 * 1024 * 1024;
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(limit).query_async(&mut conn).await.unwrap();
    let metrics = Metrics::new("test");
    metrics.configure(&TelemetryConfig { metrics_interval: Duration::from_millis(20), ..TelemetryConfig::default() });
    let stop = CancellationToken::new();
    let task = tokio::spawn(ticketing_platform::redis::watch_memory(conn.clone(), metrics.clone(), stop.clone()));
    let gauge = |name: &'static str| {
        let metrics = metrics.clone();
        move || {
            let value = counter(&metrics, name, &[("service", "test")]);
            async move { (value > 0).then_some(value) }
        }
    };

    assert_eq!(eventually("redis_memory_max_bytes", BOUND, gauge("redis_memory_max_bytes")).await, limit);
    let before = eventually("redis_memory_used_bytes", BOUND, gauge("redis_memory_used_bytes")).await;
    assert!(before < limit, "used {before} of {limit}");
    let size = 8 * 1024 * 1024;
    let _: () = redis::cmd("SET").arg("test:large").arg(vec![b'x'; size]).query_async(&mut conn).await.unwrap();
    let used = gauge("redis_memory_used_bytes");
    eventually("redis_memory_used_bytes to grow by the value's size", BOUND, || {
        let used = used();
        async move { used.await.filter(|&now| now >= before + size as u64) }
    })
    .await;

    stop.cancel();
    task.await.unwrap().unwrap();
}
