//! Hold throughput at concurrency 50, three ways, in one run:
//!
//! (a) `Hold(quantity 1)` through inventory's gRPC API, the service in-process;
//! (b) raw `redis-benchmark` running the same hold script by EVALSHA;
//! (c) the classic Postgres row lock (`SELECT … FOR UPDATE`, decrement, insert).
//!
//! Needs the local Postgres, Redis and Kafka-compatible broker (`scripts/infra.sh`)
//! and `redis-benchmark` on the PATH. Run with
//! `cargo bench -p ticketing-inventory --bench holds`; `HOLDS_BENCH_SECS` and
//! `HOLDS_BENCH_WARMUP_SECS` change the measured and warm-up durations (10 s, 2 s).
//! Figures and their analysis live in docs/benchmarks.md.

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use ticketing_inventory::adapters::{ledger, stock};
use ticketing_inventory::config::Config;
use ticketing_inventory::domain::Selection;
use ticketing_platform::auth::Role;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::inventory::v1 as pb;
use ticketing_proto::inventory::v1::inventory_client::InventoryClient;
use ticketing_testkit::{Spawned, TestDb, TestIssuer, TestRedis};
use tokio::task::JoinSet;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

/// Client tasks (and redis-benchmark clients, and Postgres connections).
const CONCURRENCY: usize = 50;
/// HTTP/2 connections the gRPC client tasks share.
const CHANNELS: usize = 4;
/// Distinct buyers, each with one pre-minted token.
const USERS: usize = 300;
/// Large enough that nothing sells out or hits the limit during a run.
const CAPACITY: u32 = 2_000_000_000;
const PER_USER_LIMIT: u32 = 1_000_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let window = Window::from_env()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "holds bench: concurrency {CONCURRENCY}, {:?} warm-up + {:?} measured; load average {}",
        window.warmup,
        window.measured,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    let db = TestDb::new(&ticketing_inventory::migrator()).await;
    let redis = TestRedis::for_service("inventory");
    let result = run(&db, &redis, window).await;
    // Holds live 10 minutes: delete them now rather than leave ~1M keys to the shared server.
    unlink_prefix(&redis).await?;
    result
}

async fn run(db: &TestDb, redis: &TestRedis, window: Window) -> anyhow::Result<()> {
    let issuer = TestIssuer::start().await;
    let mut config = Config::default();
    config.server.grpc_addr = "127.0.0.1:0".parse()?;
    config.server.admin_addr = "127.0.0.1:0".parse()?;
    config.server.shutdown_grace = Duration::from_secs(5);
    config.database = db.config.clone();
    config.redis = redis.config.clone();
    config.kafka = ticketing_testkit::kafka_config();
    config.auth = issuer.auth.clone();
    let settings = config.inventory.clone();
    // The future is large and awaited once: keep it off the stack.
    let running = Box::pin(ticketing_inventory::startup::build(config)).await.context("inventory starts")?;
    let service = Spawned::start(running);
    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(service.channel().await);
    }
    let mut client = InventoryClient::new(channels[0].clone());
    let conn = ticketing_platform::redis::connect(&redis.config).await?;
    let stock = stock::Stock::new(conn.clone(), &redis.config.key_prefix);

    // (a) through gRPC.
    let grpc_event = publish_ga_event(db, &mut client).await?;
    let tokens = (0..USERS)
        .map(|_| format!("Bearer {}", issuer.token(uuid::Uuid::new_v4(), &[Role::User])).parse())
        .collect::<Result<Vec<AsciiMetadataValue>, _>>()?;
    let verify = verification_cost(&issuer).await?;
    let before = RedisStats::read(&mut conn.clone()).await?;
    let (grpc, granted) = grpc_holds(&channels, grpc_event, &tokens, window).await?;
    let grpc_redis = RedisStats::read(&mut conn.clone()).await?.since(&before).with_holds(granted);
    ensure_held(&stock, grpc_event, granted).await?;

    // (b) raw redis-benchmark, on an event of its own loaded the same way.
    let raw_event = publish_ga_event(db, &mut client).await?;
    drop((client, channels));
    service.stop().await.context("inventory stops")?;
    let base = format!("{}{{evt:{}}}", redis.config.key_prefix, raw_event.0.simple());
    let (raw, calls, raw_redis) = redis_benchmark(conn, &base, raw_event.1, &settings, window).await?;
    ensure_held(&stock, raw_event, calls).await?;

    // (c) the Postgres row lock.
    let row_lock = row_lock(&db.config.url, window).await?;

    report(&[&grpc, &raw, &row_lock]);
    println!();
    println!("where the time goes:");
    println!("  Redis during (a): {grpc_redis}");
    println!("  Redis during (b): {raw_redis}");
    // Service replicas scale out; the event's Redis shard does not. Once enough replicas
    // feed it, each approach tops out where Redis spends one core on it.
    let (ceiling_a, ceiling_b) = (grpc_redis.ceiling(), raw_redis.ceiling());
    println!(
        "  Redis-bound ceiling (one Redis core): (a) {ceiling_a:.0}/s, (b) {ceiling_b:.0}/s; a/b = {:.2}, a/c = {:.1}",
        ceiling_a / ceiling_b,
        ceiling_a / row_lock.ops_per_sec
    );
    println!("  token verification: {:.1} us for a new token, {:.1} us for a repeated one", verify.0, verify.1);
    Ok(())
}

/// Redis counters read from INFO, to tell Redis's share of a hold from the caller's.
/// The server is shared: other clients' traffic during a run shows up here too.
#[derive(Default)]
struct RedisStats {
    evalsha_calls: f64,
    /// Time spent inside EVALSHA, script included.
    evalsha_usec: f64,
    /// Socket reads: EVALSHA calls per read is how deeply calls are pipelined.
    reads: f64,
    /// Server CPU, user plus system, in seconds.
    cpu: f64,
    /// Holds placed while the counters ran.
    holds: f64,
}

impl RedisStats {
    async fn read(conn: &mut ticketing_platform::redis::Connection) -> anyhow::Result<Self> {
        let info: String = redis::cmd("INFO").arg("all").query_async(conn).await?;
        let mut stats = Self::default();
        for line in info.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let number = |v: &str| v.trim().parse::<f64>().unwrap_or(0.0);
            match key {
                "cmdstat_evalsha" => {
                    for field in value.split(',') {
                        match field.split_once('=') {
                            Some(("calls", v)) => stats.evalsha_calls = number(v),
                            Some(("usec", v)) => stats.evalsha_usec = number(v),
                            _ => {}
                        }
                    }
                }
                "total_reads_processed" => stats.reads = number(value),
                "used_cpu_user" | "used_cpu_sys" => stats.cpu += number(value),
                _ => {}
            }
        }
        Ok(stats)
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            evalsha_calls: self.evalsha_calls - before.evalsha_calls,
            evalsha_usec: self.evalsha_usec - before.evalsha_usec,
            reads: self.reads - before.reads,
            cpu: self.cpu - before.cpu,
            holds: 0.0,
        }
    }
}

impl RedisStats {
    /// The same counters, knowing that `holds` holds were placed meanwhile.
    fn with_holds(self, holds: u64) -> Self {
        Self { holds: holds as f64, ..self }
    }

    /// Holds per second at 100 % of one Redis core.
    fn ceiling(&self) -> f64 {
        self.holds / self.cpu.max(1e-9)
    }
}

impl std::fmt::Display for RedisStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (holds, calls) = (self.holds.max(1.0), self.evalsha_calls.max(1.0));
        write!(
            f,
            "{:.1} us CPU per hold ({:.1} us in EVALSHA), {:.1} holds per EVALSHA, {:.1} EVALSHA per socket read",
            self.cpu * 1e6 / holds,
            self.evalsha_usec / holds,
            holds / calls,
            calls / self.reads.max(1.0)
        )
    }
}

/// Mean cost of `Verifier::verify`, the auth layer's work on every call: for tokens
/// it has not seen, and for one token seen before.
async fn verification_cost(issuer: &TestIssuer) -> anyhow::Result<(f64, f64)> {
    const N: usize = 2000;
    let verifier = ticketing_platform::auth::Verifier::from_config(&issuer.auth);
    let tokens: Vec<String> = (0..N).map(|_| issuer.token(uuid::Uuid::new_v4(), &[Role::User])).collect();
    verifier.verify(&tokens[0]).await?; // fetches the JWKS
    let mean = |started: Instant, n: usize| started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for token in &tokens[1..] {
        verifier.verify(token).await?;
    }
    let new = mean(started, N - 1);
    let started = Instant::now();
    for _ in 0..N {
        verifier.verify(&tokens[0]).await?;
    }
    Ok((new, mean(started, N)))
}

/// Warm-up and measured durations.
#[derive(Clone, Copy)]
struct Window {
    warmup: Duration,
    measured: Duration,
}

impl Window {
    fn from_env() -> anyhow::Result<Self> {
        let secs = |name: &str, default: u64| -> anyhow::Result<Duration> {
            let value = std::env::var(name).map_or(Ok(default), |v| v.parse().with_context(|| name.to_owned()))?;
            Ok(Duration::from_secs(value))
        };
        Ok(Self { warmup: secs("HOLDS_BENCH_WARMUP_SECS", 2)?, measured: secs("HOLDS_BENCH_SECS", 10)? })
    }
}

/// One client task's clock: whether to start another call, and the latencies of
/// calls started after the warm-up.
struct Recorder {
    measure_from: Instant,
    end: Instant,
    latencies: Vec<Duration>,
    calls: u64,
}

impl Recorder {
    fn new(started: Instant, window: Window) -> Self {
        let measure_from = started + window.warmup;
        Self { measure_from, end: measure_from + window.measured, latencies: Vec::new(), calls: 0 }
    }

    /// The start of the next call, or `None` once the window has closed.
    fn start(&self) -> Option<Instant> {
        Some(Instant::now()).filter(|now| *now < self.end)
    }

    fn done(&mut self, started: Instant) {
        self.calls += 1;
        if started >= self.measure_from {
            self.latencies.push(started.elapsed());
        }
    }
}

/// Throughput and latency of one approach.
struct Figures {
    name: &'static str,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Joins the client tasks; figures over the measured part, and every call made.
async fn collect(
    name: &'static str,
    mut tasks: JoinSet<anyhow::Result<Recorder>>,
    window: Window,
) -> anyhow::Result<(Figures, u64)> {
    let (mut latencies, mut calls) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        let recorder = joined??;
        latencies.extend(recorder.latencies);
        calls += recorder.calls;
    }
    anyhow::ensure!(!latencies.is_empty(), "{name}: no call completed in the measured window");
    latencies.sort_unstable();
    let quantile = |q: f64| {
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1].as_secs_f64() * 1e3
    };
    let figures = Figures {
        name,
        ops_per_sec: latencies.len() as f64 / window.measured.as_secs_f64(),
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
    };
    Ok((figures, calls))
}

/// Stores a general-admission event on sale now, as the catalog consumer would, and
/// has inventory load it into Redis. Returns the event and its category.
async fn publish_ga_event(
    db: &TestDb,
    client: &mut InventoryClient<Channel>,
) -> anyhow::Result<(uuid::Uuid, uuid::Uuid)> {
    let (event, category) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let now = SystemTime::now();
    let published = ev::EventPublished {
        event_id: event.to_string(),
        organizer_id: uuid::Uuid::new_v4().to_string(),
        venue_id: uuid::Uuid::new_v4().to_string(),
        name: "Holds bench".into(),
        sale_starts_at: Some((now - Duration::from_secs(3600)).into()),
        sale_ends_at: Some((now + Duration::from_secs(24 * 3600)).into()),
        per_user_limit: PER_USER_LIMIT,
        version: 1,
        categories: vec![ev::CategorySnapshot {
            category_id: category.to_string(),
            name: "Floor".into(),
            capacity: CAPACITY,
            allocation: Some(ev::category_snapshot::Allocation::GeneralAdmissionCapacity(CAPACITY)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut tx = db.pool.begin().await?;
    ledger::insert_stock(&mut tx, &published).await?;
    tx.commit().await?;
    let request = pb::AvailabilityRequest { event_id: event.to_string(), include_seats: false, category_ids: vec![] };
    client.availability(request).await.context("loading the event")?;
    Ok((event, category))
}

/// Fails unless exactly `calls` tickets of the event are held: every call succeeded.
async fn ensure_held(
    stock: &stock::Stock,
    (event, category): (uuid::Uuid, uuid::Uuid),
    calls: u64,
) -> anyhow::Result<()> {
    let counts = stock.counts(event).await?.context("event not loaded")?;
    let held = counts.iter().find(|(c, _)| *c == category).map_or(0, |(_, n)| u64::from(n.held));
    anyhow::ensure!(held == calls, "{calls} holds made but {held} tickets held: some calls were refused");
    Ok(())
}

/// (a): `CONCURRENCY` tasks calling Hold back to back, users round-robin.
async fn grpc_holds(
    channels: &[Channel],
    (event, category): (uuid::Uuid, uuid::Uuid),
    tokens: &[AsciiMetadataValue],
    window: Window,
) -> anyhow::Result<(Figures, u64)> {
    let hold = pb::HoldRequest {
        event_id: event.to_string(),
        selection: Some(pb::hold_request::Selection::GeneralAdmission(pb::GeneralAdmissionSelection {
            category_id: category.to_string(),
            quantity: 1,
        })),
        idempotency_key: String::new(),
    };
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for task in 0..CONCURRENCY {
        let mut client = InventoryClient::new(channels[task % channels.len()].clone());
        let (hold, tokens) = (hold.clone(), tokens.to_vec());
        tasks.spawn(async move {
            let mut recorder = Recorder::new(started, window);
            let mut user = task;
            while let Some(call) = recorder.start() {
                let mut request = tonic::Request::new(hold.clone());
                request.metadata_mut().insert("authorization", tokens[user % tokens.len()].clone());
                client.hold(request).await.context("Hold")?;
                recorder.done(call);
                user += CONCURRENCY;
            }
            Ok(recorder)
        });
    }
    collect("(a) gRPC Hold", tasks, window).await
}

/// (b): `redis-benchmark` EVALSHA of the hold script with the arguments `Stock::hold_batch`
/// passes for a GA hold of 1, hold and user ids randomized. Returns the figures, how
/// many calls were made (warm-up included) and Redis's counters over the measured run.
async fn redis_benchmark(
    mut conn: ticketing_platform::redis::Connection,
    base: &str,
    category: uuid::Uuid,
    settings: &ticketing_inventory::config::InventorySettings,
    window: Window,
) -> anyhow::Result<(Figures, u64, RedisStats)> {
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(include_str!("../src/adapters/lua/hold.lua"))
        .query_async(&mut conn)
        .await?;
    let fingerprint = Selection::GeneralAdmission { category, quantity: 1 }.fingerprint();
    // KEYS[1] and ARGV of lua/hold.lua for one GA hold, no idempotency key, as
    // `Stock::hold_batch` sends a batch of one.
    let args = |hold: &str, user: &str| -> Vec<String> {
        let fixed =
            [stock::now_ms(), settings.hold_ttl.as_millis() as u64, settings.idempotency_ttl.as_millis() as u64];
        let mut args = vec!["EVALSHA".to_owned(), sha.clone(), "1".to_owned(), base.to_owned()];
        args.extend(fixed.map(|n| n.to_string()));
        args.extend([hold, user, "", fingerprint.as_str(), "ga", "2"].map(str::to_owned));
        args.extend([category.simple().to_string(), "1".to_owned()]);
        args
    };

    // One real call first: it must hold, not come back as an error or a refusal.
    let probe = args(&uuid::Uuid::new_v4().simple().to_string(), &uuid::Uuid::new_v4().simple().to_string());
    let reply: Vec<Vec<redis::Value>> = redis::cmd(&probe[0]).arg(&probe[1..]).query_async(&mut conn).await?;
    let status = reply.first().and_then(|r| r.first()).map(redis::from_redis_value::<String>).transpose()?;
    anyhow::ensure!(status.as_deref() == Some("OK"), "the hold script answered {reply:?}");

    // 20 zeros and a 12-digit random number: as long as the 32 hex digits of a uuid.
    let randomized = "00000000000000000000__rand_int__";
    let command = args(randomized, randomized);
    let info = redis::IntoConnectionInfo::into_connection_info(ticketing_testkit::redis_url().as_str())?;
    let redis::ConnectionAddr::Tcp(host, port) = info.addr else { anyhow::bail!("redis-benchmark needs TCP") };
    let (port, clients) = (port.to_string(), CONCURRENCY.to_string());
    let run = |requests: u64| {
        let mut process = std::process::Command::new("redis-benchmark");
        // Unpipelined (-P 1), like one gRPC call per hold; -r randomizes __rand_int__.
        process.args(["-h", host.as_str(), "-p", &port, "-c", &clients, "-P", "1", "-r", "1000000000", "--csv"]);
        process.arg("-n").arg(requests.to_string()).args(&command);
        async move {
            let output =
                tokio::task::spawn_blocking(move || process.output()).await?.context("running redis-benchmark")?;
            anyhow::ensure!(output.status.success(), "redis-benchmark: {}", String::from_utf8_lossy(&output.stderr));
            parse_csv(&String::from_utf8_lossy(&output.stdout))
        }
    };
    // The warm-up run also sizes the measured one to last about `window.measured`.
    let warmup = (CONCURRENCY as u64 * 400).max(1);
    let calibration = run(warmup).await?;
    let requests = ((calibration.ops_per_sec * window.measured.as_secs_f64()) as u64).max(10_000);
    let before = RedisStats::read(&mut conn).await?;
    let figures = run(requests).await?;
    let stats = RedisStats::read(&mut conn).await?.since(&before);
    Ok((figures, 1 + warmup + requests, stats.with_holds(requests)))
}

/// The last row of `redis-benchmark --csv`: `"test","rps","avg_latency_ms",…`.
fn parse_csv(output: &str) -> anyhow::Result<Figures> {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let [.., header, row] = lines.as_slice() else { anyhow::bail!("unexpected redis-benchmark output: {output}") };
    // The test name (first column) is the command line itself: index columns from the end.
    let fields = |line: &str| line.rsplit(',').map(|f| f.trim_matches('"').to_owned()).collect::<Vec<_>>();
    let (names, values) = (fields(header), fields(row));
    let column = |name: &str| -> anyhow::Result<f64> {
        let i = names.iter().position(|n| n == name).with_context(|| format!("no {name} column: {output}"))?;
        values[i].parse().with_context(|| format!("{name} in {row}"))
    };
    Ok(Figures {
        name: "(b) redis-benchmark EVALSHA",
        ops_per_sec: column("rps")?,
        p50_ms: column("p50_latency_ms")?,
        p99_ms: column("p99_latency_ms")?,
    })
}

/// (c): lock the event row, decrement, insert a booking, commit; 50 connections.
async fn row_lock(url: &str, window: Window) -> anyhow::Result<Figures> {
    let pool = PgPoolOptions::new()
        .max_connections(CONCURRENCY as u32)
        .min_connections(CONCURRENCY as u32)
        .connect(url)
        .await?;
    for statement in [
        "CREATE TABLE bench_events (id bigint PRIMARY KEY, available bigint NOT NULL)",
        "CREATE TABLE bench_bookings (id bigserial PRIMARY KEY, event_id bigint NOT NULL, user_id uuid NOT NULL,
         booked_at timestamptz NOT NULL DEFAULT now())",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    sqlx::query("INSERT INTO bench_events (id, available) VALUES (1, $1)")
        .bind(i64::from(CAPACITY))
        .execute(&pool)
        .await?;

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut recorder = Recorder::new(started, window);
            while let Some(call) = recorder.start() {
                let mut tx = pool.begin().await?;
                let available: i64 = sqlx::query_scalar("SELECT available FROM bench_events WHERE id = $1 FOR UPDATE")
                    .bind(1_i64)
                    .fetch_one(&mut *tx)
                    .await?;
                anyhow::ensure!(available > 0, "sold out");
                sqlx::query("UPDATE bench_events SET available = available - 1 WHERE id = $1")
                    .bind(1_i64)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO bench_bookings (event_id, user_id) VALUES ($1, $2)")
                    .bind(1_i64)
                    .bind(uuid::Uuid::new_v4())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                recorder.done(call);
            }
            Ok(recorder)
        });
    }
    let (figures, calls) = collect("(c) Postgres FOR UPDATE", tasks, window).await?;
    let booked: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_bookings").fetch_one(&pool).await?;
    anyhow::ensure!(booked as u64 == calls, "{calls} transactions committed but {booked} bookings stored");
    pool.close().await;
    Ok(figures)
}

fn report(figures: &[&Figures]) {
    println!();
    println!("{:<30} {:>12} {:>10} {:>10}", "approach (concurrency 50)", "ops/s", "p50 ms", "p99 ms");
    for f in figures {
        println!("{:<30} {:>12.0} {:>10.3} {:>10.3}", f.name, f.ops_per_sec, f.p50_ms, f.p99_ms);
    }
    let [a, b, c] = figures else { return };
    println!();
    for (ratio, value, goal) in
        [("a/b", a.ops_per_sec / b.ops_per_sec, 1.0), ("a/c", a.ops_per_sec / c.ops_per_sec, 40.0)]
    {
        let verdict = if value >= goal { "met" } else { "NOT met" };
        println!("{ratio} = {value:>7.2}   goal >= {goal:<4}  {verdict}");
    }
}

/// Deletes every key under the bench's prefix, a batch at a time (UNLINK frees in the background).
async fn unlink_prefix(redis: &TestRedis) -> anyhow::Result<()> {
    let mut conn = ticketing_platform::redis::connect(&redis.config).await?;
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", redis.config.key_prefix))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let () = redis::cmd("UNLINK").arg(keys).query_async(&mut conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
