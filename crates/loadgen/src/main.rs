//! `loadgen`: the hold path under load, "hold one general-admission ticket, release it",
//! through the gateway (`POST /v1/events/{id}/holds`, `DELETE /v1/holds/{id}` over keep-alive
//! HTTP/1.1) and, as the baseline, straight to inventory's gRPC (`Hold`, `Release`).
//!
//! Closed loop (the default): each of `--clients` clients loops for `--duration`, the two kinds
//! in alternating slices. It prints holds/s, hold latency percentiles, errors by status and the
//! ratio of the two. A closed loop offers only as much load as it gets answers for, so a slow
//! answer delays the requests behind it instead of showing in their latency (coordinated
//! omission).
//!
//! Open loop (`--rates 250,500,1000,2000`): for each rate in turn, `--warmup` and then
//! `--duration` of arrivals at fixed intended instants t0 + i/rate, however the platform
//! answers. Each arrival (hold, then release) is a task of its own, at most `--clients` at once;
//! one that finds them all busy waits for a slot. A hold's latency runs from its intended start,
//! so every wait counts: in the platform, for a slot, or in the load generator itself. It prints
//! a markdown table per kind, one row per rate.
//!
//! Set-up, through the services' gRPC APIs: an organizer, `--users` buyers shared by the
//! clients, round-robin (registration hashes a password, so there are far fewer than clients),
//! and an on-sale event with ample capacity and the largest per-user limit.
//!
//! `--target logins` measures instead a login burst: `--logins` sign-ins of those buyers
//! straight to identity's gRPC, `--clients` at once (scripts/bench-memory.sh uses it: each
//! login hashes with Argon2id in 19 MiB).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use ticketing_demo::api::{Account, Api, Urls, authed, channel, ga_hold};
use ticketing_demo::plan::Person;
use ticketing_proto::identity::v1::Role;
use ticketing_proto::inventory::v1 as inventory;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

type Inventory = inventory::inventory_client::InventoryClient<tonic::transport::Channel>;

#[derive(Parser)]
#[command(about = "Hold-path load: hold → release through the gateway and straight to inventory, \
                   N clients looping or arrivals at fixed rates")]
struct Cli {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Concurrent clients; with `--rates`, the most hold → release iterations outstanding.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How long each kind is measured, in total over the rounds; with `--rates`, per rate.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// With `--target both` and no `--rates`: alternating slices of each kind.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Run before each slice (with `--rates`, each rate), not measured: connections open, caches
    /// fill.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Buyers the clients share (at most 100 clients each: the per-user limit).
    #[arg(long, default_value_t = 150)]
    users: usize,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Target::Both)]
    target: Target,
    /// Open loop: holds/s to offer, in turn, comma-separated (e.g. 250,500,1000,2000). Absent or
    /// empty: the closed loop.
    #[arg(long, value_parser = parse_rates)]
    rates: Option<Rates>,
    /// With `--target logins`: how many sign-ins.
    #[arg(long, default_value_t = 500)]
    logins: usize,
    #[command(flatten)]
    urls: Urls,
    /// An admin, who makes the load generator's organizer.
    #[arg(long, env = "DEMO_ADMIN_EMAIL", default_value = "admin@ticketing.local")]
    admin_email: String,
    #[arg(long, env = "DEMO_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Gateway,
    Direct,
    /// The direct baseline and the gateway, and their ratio (with `--rates`, a table each).
    Both,
    /// A burst of `--logins` sign-ins straight to identity, no holds.
    Logins,
}

/// `--rates`: offered holds per second, each positive.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rates(Vec<u32>);

/// Parses `--rates`: comma-separated positive whole holds/s; an empty string is no rates.
fn parse_rates(s: &str) -> Result<Rates, String> {
    if s.trim().is_empty() {
        return Ok(Rates(Vec::new()));
    }
    s.split(',')
        .map(|rate| match rate.trim().parse::<u32>() {
            Ok(0) | Err(_) => Err(format!("{rate:?} is not a positive whole number of holds/s")),
            Ok(n) => Ok(n),
        })
        .collect::<Result<_, _>>()
        .map(Rates)
}

/// The most tickets one user may hold (the catalog's ceiling); each client holds one at a time.
const PER_USER_LIMIT: u32 = 100;
const PASSWORD: &str = "Loadgen-Buyer-2026!";

/// The event the clients hold tickets of.
struct Setup {
    event: String,
    category: String,
    users: Vec<Account>,
}

/// One client's (and then the run's) results.
struct Tally {
    /// Hold latency in microseconds, successful holds only.
    latency: Histogram<u64>,
    /// Outcomes of holds and releases by status, e.g. "hold 201", "release 200", "hold 503".
    outcomes: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"),
            outcomes: BTreeMap::new(),
        }
    }

    fn count(&mut self, outcome: String) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
    }
}

/// The figures of one measurement.
struct Summary {
    holds_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.clients == 0 || cli.users == 0 {
        bail!("--clients and --users must be positive");
    }
    if cli.clients.div_ceil(cli.users) > PER_USER_LIMIT as usize {
        bail!("--users must be at least --clients / {PER_USER_LIMIT} (the per-user limit)");
    }
    let rates = cli.rates.as_ref().map_or(&[][..], |r| &r.0);
    if !rates.is_empty() && (cli.target == Target::Logins || cli.duration.is_zero()) {
        bail!("--rates needs a hold --target and a positive --duration");
    }
    let setup = Arc::new(set_up(&cli).await?);
    if cli.target == Target::Logins {
        return logins(&cli, &setup).await;
    }
    // One channel shared by every client, as the gateway has one per backend.
    let inventory = Inventory::new(channel(&cli.urls.inventory_url)?);
    if !rates.is_empty() {
        return open_loop(&cli, &setup, rates, inventory).await;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "hold path: {} clients sharing {} users, {:?} of each kind in {} alternating slices (+{:?} warm-up each), event {}",
        cli.clients,
        setup.users.len(),
        cli.duration,
        if cli.target == Target::Both { cli.rounds.max(1) } else { 1 },
        cli.warmup,
        setup.event
    )?;
    // Both kinds run in alternating slices, so both meet the same background work: every hold
    // and release is an event that inventory relays to the broker and booking consumes, and
    // that backlog outlasts a slice.
    let rounds = if cli.target == Target::Both { cli.rounds.max(1) } else { 1 };
    let slice = cli.duration / rounds;
    let (mut direct, mut gateway) = (None::<Tally>, None::<Tally>);
    for _ in 0..rounds {
        if cli.target != Target::Gateway {
            let tally =
                run(&cli, slice, &setup, |setup, window| client(setup.clone(), window, Via::Direct(inventory.clone())))
                    .await?;
            direct.get_or_insert_with(Tally::new).merge(tally);
        }
        if cli.target != Target::Direct {
            let tally =
                run(&cli, slice, &setup, |setup, window| gateway_client(setup.clone(), window, cli.gateway.clone()))
                    .await?;
            gateway.get_or_insert_with(Tally::new).merge(tally);
        }
    }
    let measured = slice * rounds;
    let direct = direct.map(|t| report(&mut out, "direct (inventory gRPC)", &t, measured)).transpose()?;
    let gateway = gateway.map(|t| report(&mut out, "gateway (HTTP/1.1)", &t, measured)).transpose()?;
    if let (Some(d), Some(g)) = (direct, gateway) {
        writeln!(
            out,
            "gateway / direct: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
            g.holds_per_sec / d.holds_per_sec,
            g.p50.as_secs_f64() / d.p50.as_secs_f64(),
            g.p99.as_secs_f64() / d.p99.as_secs_f64()
        )?;
    }
    Ok(())
}

async fn set_up(cli: &Cli) -> anyhow::Result<Setup> {
    let api = Api::connect(&cli.urls)?;
    let admin = api.login(&cli.admin_email, &cli.admin_password).await.context("the admin's login")?;
    let person = |local: String, role| Person {
        email: format!("{local}@loadgen.ticketing.local"),
        name: "Load Generator".into(),
        role,
        password: PASSWORD,
    };
    let organizer = api.account(&admin, &person("organizer".into(), Role::Organizer)).await?;
    let buyers = (0..cli.users).map(|n| person(format!("buyer{n:04}"), Role::User));
    let users = api.accounts(&admin, buyers, 16).await?;
    let name = format!("Load test {}", humantime::format_rfc3339_seconds(SystemTime::now()));
    let sale = api.ga_sale(&organizer, &users[0], &name, 1_000_000, PER_USER_LIMIT).await?;
    Ok(Setup { event: sale.event, category: sale.category, users })
}

/// `--logins` sign-ins of the set-up's buyers, `--clients` at once, straight to identity.
async fn logins(cli: &Cli, setup: &Setup) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let api = Api::connect(&cli.urls)?;
    let started = Instant::now();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut answers = futures::stream::iter((0..cli.logins).map(|n| {
        let (api, user) = (&api, &setup.users[n % setup.users.len()]);
        async move { api.login(&user.email, PASSWORD).await }
    }))
    .buffer_unordered(cli.clients);
    while let Some(answer) = answers.next().await {
        let outcome = answer.map_or_else(|s| format!("{:?}", s.code()), |_| "OK".to_owned());
        *outcomes.entry(outcome).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let outcomes: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    writeln!(
        std::io::stdout().lock(),
        "logins: {} in {elapsed:.1?} ({:.1}/s), {} at once; outcomes: {}",
        cli.logins,
        cli.logins as f64 / elapsed.as_secs_f64(),
        cli.clients,
        outcomes.join(", ")
    )?;
    Ok(())
}

/// Runs `--clients` clients made by `client` for the warm-up plus `duration`; merges their
/// tallies.
async fn run<F, Fut>(cli: &Cli, duration: Duration, setup: &Arc<Setup>, client: F) -> anyhow::Result<Tally>
where
    F: Fn(&Arc<Setup>, Window) -> Fut,
    Fut: Future<Output = anyhow::Result<Tally>> + Send + 'static,
{
    let start = Instant::now();
    let (from, until) = (start + cli.warmup, start + cli.warmup + duration);
    let tasks: Vec<_> =
        (0..cli.clients).map(|user| tokio::spawn(client(setup, Window { from, until, user }))).collect();
    let mut total = Tally::new();
    for task in tasks {
        total.merge(task.await??);
    }
    Ok(total)
}

/// When a client (or an open-loop arrival) counts what it does, and which user it is.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
    user: usize,
}

/// Where holds go. A clone shares the original's connections.
#[derive(Clone)]
enum Via {
    /// The gateway's HTTP API.
    Gateway { http: reqwest::Client, base: Arc<str>, holds: Arc<str>, body: Arc<serde_json::Value> },
    /// Inventory's gRPC.
    Direct(Inventory),
}

/// What a hold came to.
enum Held {
    /// The hold's id, and when its answer came.
    Ok { id: String, answered: Instant },
    /// The outcome to count, e.g. "hold 503", "hold error: timeout".
    Failed(String),
}

impl Via {
    /// Through the gateway at `base`, keeping at most `connections` idle keep-alive connections.
    fn gateway(setup: &Setup, base: &str, connections: usize) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().http1_only().pool_max_idle_per_host(connections).tcp_nodelay(true).build()?;
        Ok(Self::Gateway {
            http,
            base: base.into(),
            holds: format!("{base}/v1/events/{}/holds", setup.event).into(),
            body: Arc::new(serde_json::json!({ "category_id": setup.category, "quantity": 1 })),
        })
    }

    /// The outcome a successful hold counts as.
    fn held(&self) -> &'static str {
        match self {
            Self::Gateway { .. } => "hold 201",
            Self::Direct(_) => "hold OK",
        }
    }

    /// Holds one ticket for `token`. Errors only on an answer that makes no sense.
    async fn hold(&mut self, setup: &Setup, token: &str) -> anyhow::Result<Held> {
        match self {
            Self::Gateway { http, holds, body, .. } => {
                let answer = http.post(&**holds).bearer_auth(token).json(&**body).send().await;
                // Timed to the answer's head, before its body is read.
                let answered = Instant::now();
                match answer {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        let hold: serde_json::Value = r.json().await?;
                        let Some(id) = hold["id"].as_str() else { bail!("a 201 without a hold id") };
                        Ok(Held::Ok { id: id.to_owned(), answered })
                    }
                    Ok(r) => {
                        let status = r.status().as_u16();
                        drop(r.bytes().await);
                        Ok(Held::Failed(format!("hold {status}")))
                    }
                    Err(e) => Ok(Held::Failed(format!("hold error: {}", kind(&e)))),
                }
            }
            Self::Direct(inventory) => {
                let answer = inventory.hold(authed(ga_hold(&setup.event, &setup.category, 1), token)).await;
                let answered = Instant::now();
                Ok(match answer {
                    Ok(h) => Held::Ok { id: h.into_inner().hold_id, answered },
                    Err(s) => Held::Failed(format!("hold {:?}", s.code())),
                })
            }
        }
    }

    /// Releases hold `id`: the outcome to count if that failed.
    async fn release(&mut self, token: &str, id: String) -> Option<String> {
        match self {
            Self::Gateway { http, base, .. } => {
                match http.delete(format!("{base}/v1/holds/{id}")).bearer_auth(token).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        drop(r.bytes().await);
                        (status != 200).then(|| format!("release {status}"))
                    }
                    Err(e) => Some(format!("release error: {}", kind(&e))),
                }
            }
            Self::Direct(inventory) => inventory
                .release(authed(inventory::ReleaseRequest { hold_id: id }, token))
                .await
                .err()
                .map(|s| format!("release {:?}", s.code())),
        }
    }
}

async fn gateway_client(setup: Arc<Setup>, window: Window, base: String) -> anyhow::Result<Tally> {
    // One keep-alive HTTP/1.1 connection per client, as a browser or app would hold.
    let via = Via::gateway(&setup, &base, 1)?;
    client(setup, window, via).await
}

/// A closed-loop client: hold → release, again and again, until the window ends.
async fn client(setup: Arc<Setup>, window: Window, mut via: Via) -> anyhow::Result<Tally> {
    let token = &setup.users[window.user % setup.users.len()].token;
    let mut tally = Tally::new();
    while Instant::now() < window.until {
        let started = Instant::now();
        let measured = started >= window.from;
        let id = match via.hold(&setup, token).await? {
            Held::Ok { id, answered } => {
                if measured {
                    tally.latency.record(micros(answered - started))?;
                    tally.count(via.held().into());
                }
                id
            }
            Held::Failed(outcome) => {
                tally.count(outcome);
                backoff().await;
                continue;
            }
        };
        if let Some(outcome) = via.release(token, id).await {
            tally.count(outcome);
        }
    }
    Ok(tally)
}

/// A failed call is not retried at once: a client spinning on instant errors would
/// measure nothing but the error path.
async fn backoff() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "other"
    }
}

/// A latency as the histograms record it: whole microseconds, at least 1.
fn micros(latency: Duration) -> u64 {
    latency.as_micros().max(1) as u64
}

fn report(out: &mut impl std::io::Write, name: &str, tally: &Tally, duration: Duration) -> anyhow::Result<Summary> {
    let h = &tally.latency;
    let us = |q: f64| Duration::from_micros(h.value_at_quantile(q));
    let summary = Summary { holds_per_sec: h.len() as f64 / duration.as_secs_f64(), p50: us(0.5), p99: us(0.99) };
    writeln!(
        out,
        "{name}: {} holds, {:.0} holds/s; hold latency p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?}",
        h.len(),
        summary.holds_per_sec,
        summary.p50,
        us(0.9),
        summary.p99,
        Duration::from_micros(h.max())
    )?;
    let outcomes: Vec<String> = tally.outcomes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    writeln!(out, "  outcomes (measured holds; every error): {}", outcomes.join(", "))?;
    Ok(summary)
}

// The open loop.

/// When arrival `i` at `rate`/s is due, after the schedule's start. Computed from the index
/// alone (not by adding intervals), so rounding never accumulates.
fn intended_offset(i: u64, rate: u32) -> Duration {
    let rate = u64::from(rate);
    // (i % rate) < rate ≤ u32::MAX, so the product fits in a u64.
    Duration::from_secs(i / rate) + Duration::from_nanos((i % rate) * 1_000_000_000 / rate)
}

/// How many arrivals at `rate`/s are due within `span` of the start: those whose
/// [`intended_offset`] is below it.
fn arrivals(span: Duration, rate: u32) -> u64 {
    let due = (span.as_nanos() * u128::from(rate)).div_ceil(1_000_000_000);
    u64::try_from(due).unwrap_or(u64::MAX)
}

/// What one rate's arrivals record, shared by their tasks.
struct Counts {
    /// Latency of the successful holds intended in the window; every failed hold or release,
    /// warm-up included (as the closed loop counts them).
    tally: Tally,
    /// Successful holds answered within the window.
    answered: u64,
}

/// One offered rate's results: a row of the table.
struct Row {
    rate: u32,
    window: Duration,
    counts: Counts,
    /// Arrivals intended in the window that found every slot busy.
    waited: u64,
}

/// The open loop: each of `rates` in turn, through each kind `--target` names, then a table
/// per kind.
async fn open_loop(cli: &Cli, setup: &Arc<Setup>, rates: &[u32], inventory: Inventory) -> anyhow::Result<()> {
    let mut kinds = Vec::new();
    if cli.target != Target::Gateway {
        kinds.push(("direct (inventory gRPC)", Via::Direct(inventory), Vec::new()));
    }
    if cli.target != Target::Direct {
        // One pool shared by the arrivals; the slots keep it to `--clients` connections.
        kinds.push(("gateway (HTTP/1.1)", Via::gateway(setup, &cli.gateway, cli.clients)?, Vec::new()));
    }
    let rates_list: Vec<String> = rates.iter().map(u32::to_string).collect();
    writeln!(
        std::io::stdout().lock(),
        "hold path, open loop: {} holds/s offered in turn, at most {} iterations outstanding, {} users, \
         {:?} measured per rate (+{:?} warm-up), event {}\n\
         latency: from each hold's intended start (t0 + i/rate) to its answer, for the holds intended in the \
         window; achieved: successful holds answered in the window / window; errors: every failed hold or \
         release at that rate, warm-up included; waited: arrivals in the window that found every slot busy",
        rates_list.join(","),
        cli.clients,
        setup.users.len(),
        cli.duration,
        cli.warmup,
        setup.event
    )?;
    // At each rate both kinds run back to back, so both meet that rate's background work.
    for &rate in rates {
        for (_, via, rows) in &mut kinds {
            rows.push(open_rate(cli, setup, via, rate).await?);
        }
    }
    let mut out = std::io::stdout().lock();
    for (name, via, rows) in &kinds {
        writeln!(out, "{name}, open loop:")?;
        writeln!(out, "{}", table(rows, via.held()))?;
    }
    Ok(())
}

/// Offers `rate` holds/s through `via` for the warm-up plus `--duration`, at most `--clients`
/// at once, and waits for the last of them.
async fn open_rate(cli: &Cli, setup: &Arc<Setup>, via: &Via, rate: u32) -> anyhow::Result<Row> {
    let slots = Arc::new(Semaphore::new(cli.clients));
    let counts = Arc::new(Mutex::new(Counts { tally: Tally::new(), answered: 0 }));
    let mut tasks = JoinSet::new();
    let mut waited = 0;
    let t0 = Instant::now();
    let (from, until) = (t0 + cli.warmup, t0 + cli.warmup + cli.duration);
    for i in 0..arrivals(cli.warmup + cli.duration, rate) {
        // Tokio's timer ticks in milliseconds: above 1,000/s arrivals leave in small bursts, and
        // one that leaves late keeps its intended start all the same.
        let intended = t0 + intended_offset(i, rate);
        tokio::time::sleep_until(intended.into()).await;
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                waited += u64::from(intended >= from);
                slots.clone().acquire_owned().await?
            }
        };
        // Reaps the finished ones as it goes, so a failure ends the run early.
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
        let window = Window { from, until, user: i as usize % setup.users.len() };
        let (via, setup, counts) = (via.clone(), setup.clone(), counts.clone());
        tasks.spawn(async move {
            let _slot = slot;
            arrival(via, &setup, window, intended, &counts).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let counts = std::mem::replace(&mut *lock(&counts), Counts { tally: Tally::new(), answered: 0 });
    Ok(Row { rate, window: cli.duration, counts, waited })
}

/// One open-loop arrival: hold, then release (not timed). The hold is timed from `intended`.
async fn arrival(
    mut via: Via,
    setup: &Setup,
    window: Window,
    intended: Instant,
    counts: &Mutex<Counts>,
) -> anyhow::Result<()> {
    let token = &setup.users[window.user].token;
    let id = match via.hold(setup, token).await? {
        Held::Ok { id, answered } => {
            let mut counts = lock(counts);
            if intended >= window.from {
                // An overloaded rate's latencies beyond the histogram's 60 s count as 60 s
                // rather than end the run.
                counts.tally.latency.saturating_record(micros(answered.saturating_duration_since(intended)));
                counts.tally.count(via.held().into());
            }
            counts.answered += u64::from((window.from..window.until).contains(&answered));
            id
        }
        Held::Failed(outcome) => {
            lock(counts).tally.count(outcome);
            return Ok(());
        }
    };
    if let Some(outcome) = via.release(token, id).await {
        lock(counts).tally.count(outcome);
    }
    Ok(())
}

/// The counts, even if a task panicked holding them (its panic ends the run anyway).
fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The open loop's markdown table, one row per rate; `ok` is the outcome of a successful hold.
fn table(rows: &[Row], ok: &str) -> String {
    let mut table = String::from(
        "| offered holds/s | achieved holds/s | p50 | p90 | p99 | p99.9 | max | errors | waited for a slot |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|---:|",
    );
    for row in rows {
        let h = &row.counts.tally.latency;
        // No successful hold: no latency to show (rather than 0).
        let us = |v: u64| if h.is_empty() { "-".to_owned() } else { format!("{:.1?}", Duration::from_micros(v)) };
        let at = |q: f64| us(h.value_at_quantile(q));
        table += &format!(
            "\n| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            row.rate,
            row.counts.answered as f64 / row.window.as_secs_f64(),
            at(0.5),
            at(0.9),
            at(0.99),
            at(0.999),
            us(h.max()),
            errors(&row.counts.tally.outcomes, ok),
            row.waited
        );
    }
    table
}

/// The errors cell: failed holds and releases, in total and by outcome.
fn errors(outcomes: &BTreeMap<String, u64>, ok: &str) -> String {
    let failed: Vec<String> = outcomes.iter().filter(|(k, _)| *k != ok).map(|(k, n)| format!("{k}: {n}")).collect();
    let total: u64 = outcomes.iter().filter(|(k, _)| *k != ok).map(|(_, n)| n).sum();
    if failed.is_empty() { "0".to_owned() } else { format!("{total} ({})", failed.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn rates(list: &[u32]) -> Result<Rates, String> {
        Ok(Rates(list.to_vec()))
    }

    #[test]
    fn rates_are_positive_whole_holds_per_second() {
        assert_eq!(parse_rates("250,500,1000,2000"), rates(&[250, 500, 1000, 2000]));
        assert_eq!(parse_rates(" 250 , 500 "), rates(&[250, 500]));
        assert_eq!(parse_rates("2000,250"), rates(&[2000, 250]), "kept in the order given");
        assert_eq!(parse_rates(""), rates(&[]));
        assert_eq!(parse_rates("  "), rates(&[]));
        for bad in ["0", "250,0", "250,", ",250", "-5", "1.5", "fast", "250;500", "4294967296"] {
            assert!(parse_rates(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_command_line_takes_rates() {
        Cli::command().debug_assert();
        let parse = |extra: &[&str]| {
            let args = ["loadgen", "--admin-password", "x"].into_iter().chain(extra.iter().copied());
            Cli::try_parse_from(args).map(|cli| cli.rates)
        };
        assert_eq!(parse(&[]).unwrap(), None, "no --rates: the closed loop");
        assert_eq!(parse(&["--rates", ""]).unwrap(), Some(Rates(vec![])));
        assert_eq!(parse(&["--rates", "250,1000"]).unwrap(), Some(Rates(vec![250, 1000])));
        assert!(parse(&["--rates", "250,0"]).is_err());
    }

    #[test]
    fn arrival_i_is_due_at_i_over_rate() {
        assert_eq!(intended_offset(0, 250), Duration::ZERO);
        assert_eq!(intended_offset(1, 250), Duration::from_millis(4));
        assert_eq!(intended_offset(1000, 1000), Duration::from_secs(1));
        assert_eq!(intended_offset(2500, 2000), Duration::from_millis(1250));
        // A third of a second is not a whole number of nanoseconds, but the error stays below
        // 1 ns however far the schedule runs.
        assert_eq!(intended_offset(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(intended_offset(2, 3), Duration::from_nanos(666_666_666));
        assert_eq!(intended_offset(3, 3), Duration::from_secs(1));
        assert_eq!(
            intended_offset(3_000_000_001, 3),
            Duration::from_secs(1_000_000_000) + Duration::from_nanos(333_333_333)
        );
        // The largest rate does not overflow.
        assert_eq!(intended_offset(u64::from(u32::MAX) - 1, u32::MAX), Duration::from_nanos(999_999_999));
    }

    #[test]
    fn arrivals_are_evenly_spaced() {
        for rate in [1, 3, 7, 250, 1000, 2000, 44_100] {
            let interval = Duration::from_secs(1) / rate;
            for i in 0..10_000 {
                let gap = intended_offset(i + 1, rate) - intended_offset(i, rate);
                assert!(gap.abs_diff(interval) <= Duration::from_nanos(1), "rate {rate}, arrival {i}: gap {gap:?}");
            }
        }
    }

    #[test]
    fn a_span_holds_rate_times_its_length_of_arrivals() {
        assert_eq!(arrivals(Duration::ZERO, 1000), 0);
        assert_eq!(arrivals(Duration::from_secs(1), 1000), 1000);
        assert_eq!(arrivals(Duration::from_micros(1_000_500), 1000), 1001);
        assert_eq!(arrivals(Duration::from_secs(1), 3), 3);
        // The defaults at 1,000/s: 3,000 warm-up arrivals, then 30,000 measured.
        let (warmup, duration) = (Duration::from_secs(3), Duration::from_secs(30));
        assert_eq!(arrivals(warmup, 1000), 3000);
        assert_eq!(arrivals(warmup + duration, 1000) - arrivals(warmup, 1000), 30_000);
        // Exactly the arrivals due before the span's end.
        for rate in [1, 3, 7, 250, 2000] {
            for span in [0, 1, 333, 334, 999, 1000, 1001, 4321].map(Duration::from_millis) {
                let n = arrivals(span, rate);
                assert!(n == 0 || intended_offset(n - 1, rate) < span, "rate {rate}, span {span:?}");
                assert!(intended_offset(n, rate) >= span, "rate {rate}, span {span:?}");
            }
        }
    }

    #[test]
    fn errors_are_every_outcome_but_a_successful_hold() {
        let mut tally = Tally::new();
        assert_eq!(errors(&tally.outcomes, "hold 201"), "0");
        for _ in 0..5 {
            tally.count("hold 201".into());
        }
        assert_eq!(errors(&tally.outcomes, "hold 201"), "0");
        tally.count("hold 503".into());
        tally.count("release error: timeout".into());
        tally.count("hold 503".into());
        assert_eq!(errors(&tally.outcomes, "hold 201"), "3 (hold 503: 2, release error: timeout: 1)");
        assert_eq!(errors(&tally.outcomes, "hold OK"), "8 (hold 201: 5, hold 503: 2, release error: timeout: 1)");
    }

    #[test]
    fn the_table_has_a_row_per_rate() {
        let window = Duration::from_secs(2);
        // 1..=1,000 µs: below 2,048 the histogram is exact.
        let mut held = Counts { tally: Tally::new(), answered: 1_999 };
        for us in 1..=1000 {
            held.tally.latency.record(us).unwrap();
            held.tally.count("hold 201".into());
        }
        let mut refused = Counts { tally: Tally::new(), answered: 0 };
        refused.tally.count("hold 503".into());
        let rows = [
            Row { rate: 1000, window, counts: held, waited: 0 },
            Row { rate: 2000, window, counts: refused, waited: 17 },
        ];
        let table = table(&rows, "hold 201");
        assert_eq!(
            table.lines().collect::<Vec<_>>(),
            [
                "| offered holds/s | achieved holds/s | p50 | p90 | p99 | p99.9 | max | errors | waited for a slot |",
                "|---:|---:|---:|---:|---:|---:|---:|---|---:|",
                "| 1000 | 1000 | 500.0µs | 900.0µs | 990.0µs | 999.0µs | 1.0ms | 0 | 0 |",
                "| 2000 | 0 | - | - | - | - | - | 1 (hold 503: 1) | 17 |",
            ]
        );
    }
}
