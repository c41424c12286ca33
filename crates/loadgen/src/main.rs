//! `loadgen`: the hold path under load. Each of `--clients` clients loops "hold one
//! general-admission ticket, release it" for `--duration`, through the gateway
//! (`POST /v1/events/{id}/holds`, `DELETE /v1/holds/{id}` over keep-alive HTTP/1.1) and,
//! in the same run as the baseline, straight to inventory's gRPC (`Hold`, `Release`), in
//! alternating slices. It prints holds/s, hold latency percentiles, errors by status and the
//! ratio of the two.
//!
//! Set-up, through the services' gRPC APIs: an organizer, `--users` buyers shared by the
//! clients (registration hashes a password, so there are far fewer than clients), and an
//! on-sale event with ample capacity and the largest per-user limit.
//!
//! `--target logins` measures instead a login burst: `--logins` sign-ins of those buyers
//! straight to identity's gRPC, `--clients` at once (scripts/bench-memory.sh uses it: each
//! login hashes with Argon2id in 19 MiB).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use ticketing_demo::api::{Account, Api, Urls, authed, channel, ga_hold};
use ticketing_demo::plan::Person;
use ticketing_proto::identity::v1::Role;
use ticketing_proto::inventory::v1 as inventory;

#[derive(Parser)]
#[command(about = "Hold-path load: N clients looping hold → release, through the gateway and straight to inventory")]
struct Cli {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How long each kind is measured, in total over the rounds.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// With `--target both`: alternating slices of each kind.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Run before each slice, not measured: connections open, caches fill.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Buyers the clients share (at most 100 clients each: the per-user limit).
    #[arg(long, default_value_t = 150)]
    users: usize,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Target::Both)]
    target: Target,
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
    /// The direct baseline and the gateway, and their ratio.
    Both,
    /// A burst of `--logins` sign-ins straight to identity, no holds.
    Logins,
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
    let setup = Arc::new(set_up(&cli).await?);
    if cli.target == Target::Logins {
        return logins(&cli, &setup).await;
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
    // One channel shared by every client, as the gateway has one per backend.
    let inventory = inventory::inventory_client::InventoryClient::new(channel(&cli.urls.inventory_url)?);
    let (mut direct, mut gateway) = (None::<Tally>, None::<Tally>);
    for _ in 0..rounds {
        if cli.target != Target::Gateway {
            let tally =
                run(&cli, slice, &setup, |setup, client| direct_client(setup.clone(), client, inventory.clone()))
                    .await?;
            direct.get_or_insert_with(Tally::new).merge(tally);
        }
        if cli.target != Target::Direct {
            let tally =
                run(&cli, slice, &setup, |setup, client| gateway_client(setup.clone(), client, cli.gateway.clone()))
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

/// When a client counts what it does, and which user it is.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
    user: usize,
}

async fn gateway_client(setup: Arc<Setup>, window: Window, base: String) -> anyhow::Result<Tally> {
    // One keep-alive HTTP/1.1 connection per client, as a browser or app would hold.
    let http = reqwest::Client::builder().http1_only().pool_max_idle_per_host(1).tcp_nodelay(true).build()?;
    let token = &setup.users[window.user % setup.users.len()].token;
    let holds = format!("{base}/v1/events/{}/holds", setup.event);
    let body = serde_json::json!({ "category_id": setup.category, "quantity": 1 });
    let mut tally = Tally::new();
    while Instant::now() < window.until {
        let started = Instant::now();
        let measured = started >= window.from;
        let answer = http.post(&holds).bearer_auth(token).json(&body).send().await;
        let elapsed = started.elapsed();
        let hold_id = match answer {
            Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                let hold: serde_json::Value = r.json().await?;
                hold["id"].as_str().map(str::to_owned)
            }
            Ok(r) => {
                let status = r.status().as_u16();
                drop(r.bytes().await);
                tally.count(format!("hold {status}"));
                backoff().await;
                continue;
            }
            Err(e) => {
                tally.count(format!("hold error: {}", kind(&e)));
                backoff().await;
                continue;
            }
        };
        if measured {
            tally.latency.record(elapsed.as_micros().max(1) as u64)?;
            tally.count("hold 201".into());
        }
        let Some(id) = hold_id else { bail!("a 201 without a hold id") };
        match http.delete(format!("{base}/v1/holds/{id}")).bearer_auth(token).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                drop(r.bytes().await);
                if status != 200 {
                    tally.count(format!("release {status}"));
                }
            }
            Err(e) => tally.count(format!("release error: {}", kind(&e))),
        }
    }
    Ok(tally)
}

async fn direct_client(
    setup: Arc<Setup>,
    window: Window,
    mut inventory: inventory::inventory_client::InventoryClient<tonic::transport::Channel>,
) -> anyhow::Result<Tally> {
    let token = &setup.users[window.user % setup.users.len()].token;
    let mut tally = Tally::new();
    while Instant::now() < window.until {
        let started = Instant::now();
        let measured = started >= window.from;
        let answer = inventory.hold(authed(ga_hold(&setup.event, &setup.category, 1), token)).await;
        let elapsed = started.elapsed();
        let hold = match answer {
            Ok(h) => h.into_inner(),
            Err(s) => {
                tally.count(format!("hold {:?}", s.code()));
                backoff().await;
                continue;
            }
        };
        if measured {
            tally.latency.record(elapsed.as_micros().max(1) as u64)?;
            tally.count("hold OK".into());
        }
        if let Err(s) = inventory.release(authed(inventory::ReleaseRequest { hold_id: hold.hold_id }, token)).await {
            tally.count(format!("release {:?}", s.code()));
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
