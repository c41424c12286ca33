//! Live stock and holds in Redis, one Lua script per operation.
//!
//! Every key of an event carries the hash tag `{evt:<id>}`, so an event lives on
//! one Redis Cluster slot and each script is atomic. Redis is the authority for
//! holds and live availability; [`Stock::load`] rebuilds it from the ledger.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use prometheus::{Histogram, HistogramOpts};
use redis::{AsyncCommands as _, Script};
use ticketing_platform::redis::Connection;

use crate::domain::hold::seat_lines;
use crate::domain::{Hold, HoldId, HoldLine, HoldStatus, Selection};

static HOLD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/hold.lua")));
static END: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("lua/retain.lua"), include_str!("lua/end.lua"))));
static BEGIN_CONFIRM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/begin_confirm.lua")));
static FINISH_CONFIRM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/finish_confirm.lua")));
static RESTOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/restock.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
static UNSPOOL: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("lua/retain.lua"), include_str!("lua/unspool.lua"))));
static COMMIT_LOAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/commit_load.lua")));
static RENEW_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end return redis.call('PEXPIRE', KEYS[1], ARGV[2])",
    )
});
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new("if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end return redis.call('DEL', KEYS[1])")
});

/// How long staged keys of a load outlive a loader that died before committing them.
const STAGED_TTL_MS: i64 = 10 * 60 * 1000;

/// How long an ended hold's record is kept by default: see [`Stock::retaining`].
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Why a script refused: its `{'ERR', code, detail}` reply, read once here so that
/// the service matches on this rather than on the scripts' strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `NOSTOCK`: the event's stock is not in Redis (never loaded, or lost with Redis).
    NoStock,
    /// `NOT_ON_SALE`: outside the sale window, or the event is not on sale; its state.
    NotOnSale(String),
    /// `LIMIT`: the per-user limit would be exceeded.
    LimitExceeded {
        /// Tickets the user may still hold.
        remaining: u32,
    },
    /// `SOLD_OUT`: not enough tickets left in the category.
    SoldOut {
        /// Tickets left.
        available: u32,
    },
    /// `SEAT_TAKEN`: this seat (as the request named it) is held or sold.
    SeatTaken(String),
    /// `NO_ADJACENT`: no row has this many adjacent free seats.
    NoAdjacentSeats(u32),
    /// `IDEMPOTENCY_MISMATCH`: the idempotency key was used for another request.
    IdempotencyMismatch,
    /// `UNKNOWN_CATEGORY`: this category is not the event's.
    UnknownCategory(String),
    /// `UNKNOWN_SEAT`: this seat is not the event's.
    UnknownSeat(String),
    /// `NOT_GENERAL_ADMISSION`: a quantity was asked of this seated category.
    NotGeneralAdmission(String),
    /// `NOT_SEATED`: best available seats were asked of this general-admission category.
    NotSeated(String),
    /// `NO_HOLD`: no such hold in Redis.
    NoHold,
    /// `STALE_TOKEN`: the fencing token is not the hold's.
    StaleToken,
    /// `EXPIRED`: the hold expired.
    Expired,
    /// `ENDED:<status>`: the hold already ended, in this status.
    Ended(HoldStatus),
    /// A code (or an `ENDED:` status) no script sends: a script and this reader disagree.
    Unknown {
        /// The code as the script sent it.
        code: String,
        /// Its detail.
        detail: String,
    },
}

impl Refusal {
    /// Reads a script's refusal code and detail.
    pub fn parse(code: &str, detail: &str) -> Self {
        let number = || detail.parse::<i64>().unwrap_or(0).max(0) as u32;
        match code {
            "NOSTOCK" => Self::NoStock,
            "NOT_ON_SALE" => Self::NotOnSale(detail.to_owned()),
            "LIMIT" => Self::LimitExceeded { remaining: number() },
            "SOLD_OUT" => Self::SoldOut { available: number() },
            "SEAT_TAKEN" => Self::SeatTaken(detail.to_owned()),
            "NO_ADJACENT" => Self::NoAdjacentSeats(number()),
            "IDEMPOTENCY_MISMATCH" => Self::IdempotencyMismatch,
            "UNKNOWN_CATEGORY" => Self::UnknownCategory(detail.to_owned()),
            "UNKNOWN_SEAT" => Self::UnknownSeat(detail.to_owned()),
            "NOT_GENERAL_ADMISSION" => Self::NotGeneralAdmission(detail.to_owned()),
            "NOT_SEATED" => Self::NotSeated(detail.to_owned()),
            "NO_HOLD" => Self::NoHold,
            "STALE_TOKEN" => Self::StaleToken,
            "EXPIRED" => Self::Expired,
            _ => match code.strip_prefix("ENDED:").map(str::parse::<HoldStatus>) {
                Some(Ok(status)) => Self::Ended(status),
                _ => Self::Unknown { code: code.to_owned(), detail: detail.to_owned() },
            },
        }
    }
}

/// A hold the script refused: why, and the reply it came as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRefused {
    /// Why: what the service decides on.
    pub refusal: Refusal,
    /// The script's code as it replied, e.g. `SOLD_OUT` (for logs and the scripts' tests).
    pub code: String,
    /// The script's detail as it replied, e.g. what is left.
    pub detail: String,
}

/// What placing a hold did.
#[derive(Debug)]
pub enum Placed {
    /// A new hold.
    Held(Hold),
    /// The idempotency key was seen before: this is the first hold.
    Replayed(HoldId),
    /// Nothing was held.
    Refused(HoldRefused),
}

/// What ending a hold did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// It ended now, as asked.
    Now,
    /// It had already ended, or is not due: its status.
    Already(HoldStatus),
    /// It is mid-confirm: the caller must check the ledger first.
    NeedsLedgerCheck,
    /// No such hold.
    Missing,
}

/// Per-category counts. Always `available + held + sold == capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Category capacity.
    pub capacity: u32,
    /// Free to hold.
    pub available: u32,
    /// In live holds.
    pub held: u32,
    /// Confirmed.
    pub sold: u32,
}

/// A seat's live state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatState {
    /// Free.
    Available,
    /// In a live hold.
    Held,
    /// Sold.
    Sold,
}

/// Everything Redis needs about one event: written by [`Stock::load`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The event.
    pub event: uuid::Uuid,
    /// `published`, `on_sale`, `closed` or `cancelled`.
    pub state: String,
    /// Sale window, ms since the epoch.
    pub sale_window_ms: (u64, u64),
    /// Tickets per user across holds and sales.
    pub per_user_limit: u32,
    /// First fencing token to hand out.
    pub fence: u64,
    /// Categories: id, seated, capacity, sold.
    pub categories: Vec<(uuid::Uuid, bool, u32, u32)>,
    /// Seats: id, category, row, position, rank.
    pub seats: Vec<(uuid::Uuid, uuid::Uuid, String, u32, u32)>,
    /// Confirmed sales (their holds): kept so restocks and reads work after a rebuild.
    pub sales: Vec<Hold>,
}

/// One loader's hold on an event's rebuild lock: see [`Stock::lock_rebuild`].
#[derive(Debug)]
pub struct RebuildLock {
    event: uuid::Uuid,
    /// Tells this holder from any later one once the lock has expired.
    token: String,
}

impl RebuildLock {
    /// The event being rebuilt.
    pub fn event(&self) -> uuid::Uuid {
        self.event
    }
}

/// What [`Stock::load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The event is in Redis now, from the snapshot.
    Now,
    /// It was loaded already (by another caller): nothing was written.
    Already,
    /// The lock had expired and may be another caller's: nothing was written.
    LockLost,
}

/// The Redis side of inventory.
#[derive(Clone)]
pub struct Stock {
    redis: Connection,
    prefix: String,
    timers: Timers,
    retention: Duration,
}

/// `redis_command_duration_seconds` of each script, resolved once.
#[derive(Clone)]
struct Timers {
    hold: Histogram,
    release: Histogram,
    expire: Histogram,
    confirm: Histogram,
    restock: Histogram,
}

impl Timers {
    fn new(timer: impl Fn(&str) -> Histogram) -> Self {
        Self {
            hold: timer("hold"),
            release: timer("release"),
            expire: timer("expire"),
            confirm: timer("confirm"),
            restock: timer("restock"),
        }
    }
}

fn strings(values: Vec<redis::Value>) -> anyhow::Result<Vec<String>> {
    values.iter().map(|v| redis::from_redis_value::<String>(v).context("script reply")).collect()
}

/// A refused hold's `{'ERR', code, detail}`.
fn hold_refused(reply: &[String]) -> HoldRefused {
    let code = reply.get(1).cloned().unwrap_or_default();
    let detail = reply.get(2).cloned().unwrap_or_default();
    HoldRefused { refusal: Refusal::parse(&code, &detail), code, detail }
}

/// Any other script's `{'ERR', code, detail}`.
fn refusal(reply: &[String]) -> Refusal {
    let part = |i: usize| reply.get(i).map_or("", String::as_str);
    Refusal::parse(part(1), part(2))
}

/// One hold's reply from `lua/hold.lua`.
fn placed(request: &HoldRequest, reply: Vec<String>, now: u64) -> anyhow::Result<Placed> {
    Ok(match reply.first().map(String::as_str) {
        Some("OK") => Placed::Held(Hold {
            id: request.id,
            user: request.user,
            status: HoldStatus::Active,
            expires_at: from_ms(reply[3].parse()?),
            fencing_token: reply[2].parse()?,
            lines: lines(&reply[4], &reply[5], &reply[6])?,
            created_at: from_ms(now),
            ended_at: None,
            booking_id: None,
        }),
        Some("DUP") => Placed::Replayed(HoldId { event: request.id.event, hold: reply[1].parse()? }),
        _ => Placed::Refused(hold_refused(&reply)),
    })
}

/// One hold to place: see [`Stock::hold_batch`].
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// The new hold's id (and so its event).
    pub id: HoldId,
    /// Who holds.
    pub user: uuid::Uuid,
    /// What to hold.
    pub selection: Selection,
    /// The caller's idempotency key, or empty.
    pub idempotency_key: String,
}

impl Stock {
    /// Stock under `prefix`.
    pub fn new(redis: Connection, prefix: &str) -> Self {
        // Unregistered histograms until `instrumented`: tests and benches need no registry.
        let unregistered = |operation: &str| {
            Histogram::with_opts(HistogramOpts::new("redis_command_duration_seconds", operation))
                .expect("static metric definition")
        };
        Self { redis, prefix: prefix.to_owned(), timers: Timers::new(unregistered), retention: DEFAULT_RETENTION }
    }

    /// Keeps an ended hold's record (for reads and replays) for `retention` after its end,
    /// or for as long as its idempotency key if that is longer; then it expires.
    pub fn retaining(self, retention: Duration) -> Self {
        Self { retention, ..self }
    }

    /// Times the scripts in `metrics`' `redis_command_duration_seconds`.
    pub fn instrumented(self, metrics: &ticketing_platform::metrics::Metrics) -> Self {
        Self { timers: Timers::new(|operation| metrics.redis_timer(operation)), ..self }
    }

    fn base(&self, event: uuid::Uuid) -> String {
        format!("{}{{evt:{}}}", self.prefix, event.simple())
    }

    fn events_key(&self) -> String {
        format!("{}inventory:events", self.prefix)
    }

    /// Places `requests`, all on `event`, in one script call: each is all or nothing,
    /// in order, as if they had come one after the other. One reply per request.
    pub async fn hold_batch(
        &self,
        event: uuid::Uuid,
        requests: &[&HoldRequest],
        ttl: Duration,
        idempotency_ttl: Duration,
        now: u64,
    ) -> anyhow::Result<Vec<Placed>> {
        let mut invocation = HOLD.key(self.base(event));
        invocation.arg(now).arg(ttl.as_millis() as u64).arg(idempotency_ttl.as_millis() as u64);
        for request in requests {
            debug_assert_eq!(request.id.event, event, "a batch is for one event");
            invocation
                .arg(request.id.hold.simple().to_string())
                .arg(request.user.simple().to_string())
                .arg(&request.idempotency_key)
                .arg(request.selection.fingerprint());
            match &request.selection {
                Selection::GeneralAdmission { category, quantity } => {
                    invocation.arg("ga").arg(2).arg(category.simple().to_string()).arg(quantity);
                }
                Selection::Seats(seats) => {
                    invocation.arg("seats").arg(seats.len());
                    for seat in seats {
                        invocation.arg(seat.simple().to_string());
                    }
                }
                Selection::BestAvailable { category, quantity, require_adjacent } => {
                    invocation
                        .arg("best")
                        .arg(3)
                        .arg(category.simple().to_string())
                        .arg(quantity)
                        .arg(u8::from(*require_adjacent));
                }
            }
        }
        let timer = self.timers.hold.start_timer();
        let replies: Vec<Vec<redis::Value>> =
            invocation.invoke_async(&mut self.redis.clone()).await.context("hold script")?;
        timer.observe_duration();
        anyhow::ensure!(
            replies.len() == requests.len(),
            "hold script: {} replies for {}",
            replies.len(),
            requests.len()
        );
        requests.iter().zip(replies).map(|(request, reply)| placed(request, strings(reply)?, now)).collect()
    }

    /// Ends a hold as released or expired at `now`; see `lua/end.lua`.
    pub async fn end(&self, id: HoldId, outcome: HoldStatus, by: &str, force: bool, now: u64) -> anyhow::Result<Ended> {
        let timer = if outcome == HoldStatus::Expired { &self.timers.expire } else { &self.timers.release };
        let _timer = timer.start_timer();
        let reply = strings(
            END.key(self.base(id.event))
                .arg(id.hold.simple().to_string())
                .arg(now)
                .arg(outcome.as_str())
                .arg(u8::from(force))
                .arg(by)
                .arg(self.retention.as_millis() as u64)
                .invoke_async(&mut self.redis.clone())
                .await
                .context("end script")?,
        )?;
        Ok(match reply.first().map(String::as_str) {
            Some("OK") => Ended::Now,
            Some("NOOP") => Ended::Already(reply[1].parse().map_err(anyhow::Error::msg)?),
            Some("CHECK") => Ended::NeedsLedgerCheck,
            _ => Ended::Missing,
        })
    }

    /// Checks the token and parks the hold in `confirming`; returns it, or the refusal.
    pub async fn begin_confirm(
        &self,
        id: HoldId,
        token: u64,
        grace: Duration,
    ) -> anyhow::Result<Result<Hold, Refusal>> {
        let timer = self.timers.confirm.start_timer();
        let reply = strings(
            BEGIN_CONFIRM
                .key(self.base(id.event))
                .arg(id.hold.simple().to_string())
                .arg(token)
                .arg(now_ms())
                .arg(grace.as_millis() as u64)
                .invoke_async(&mut self.redis.clone())
                .await
                .context("begin-confirm script")?,
        )?;
        timer.observe_duration();
        if reply.first().map(String::as_str) != Some("OK") {
            return Ok(Err(refusal(&reply)));
        }
        Ok(Ok(Hold {
            id,
            user: reply[2].parse()?,
            status: reply[1].parse().map_err(anyhow::Error::msg)?,
            expires_at: from_ms(reply[3].parse()?),
            fencing_token: token,
            lines: lines(&reply[4], &reply[5], &reply[6])?,
            created_at: from_ms(reply[8].parse()?),
            ended_at: None,
            booking_id: Some(reply[9].clone()).filter(|b| !b.is_empty()),
        }))
    }

    /// Turns the held tickets into sold ones. `Ok(false)` when the hold is gone from Redis.
    pub async fn finish_confirm(&self, id: HoldId, booking: &str) -> anyhow::Result<bool> {
        let _timer = self.timers.confirm.start_timer();
        let reply = strings(
            FINISH_CONFIRM
                .key(self.base(id.event))
                .arg(id.hold.simple().to_string())
                .arg(booking)
                .arg(now_ms())
                .invoke_async(&mut self.redis.clone())
                .await
                .context("finish-confirm script")?,
        )?;
        Ok(reply.first().map(String::as_str) == Some("OK"))
    }

    /// Returns a confirmed hold's tickets to stock. `Ok(false)` when the hold is gone.
    pub async fn restock(&self, id: HoldId) -> anyhow::Result<bool> {
        let _timer = self.timers.restock.start_timer();
        let reply = strings(
            RESTOCK
                .key(self.base(id.event))
                .arg(id.hold.simple().to_string())
                .arg(now_ms())
                .invoke_async(&mut self.redis.clone())
                .await
                .context("restock script")?,
        )?;
        Ok(reply.first().map(String::as_str) == Some("OK"))
    }

    /// Marks a live hold as claimed for a booking, so that `end` announces its end; see
    /// `lua/claim.lua`. A hold that already ended is left alone.
    pub async fn claim(&self, id: HoldId) -> anyhow::Result<()> {
        CLAIM
            .key(format!("{}:hold:{}", self.base(id.event), id.hold.simple()))
            .invoke_async::<()>(&mut self.redis.clone())
            .await
            .context("claim script")
    }

    /// The hold, if Redis has it.
    pub async fn get(&self, id: HoldId) -> anyhow::Result<Option<Hold>> {
        let key = format!("{}:hold:{}", self.base(id.event), id.hold.simple());
        let h: HashMap<String, String> = self.redis.clone().hgetall(&key).await.context("reading a hold")?;
        if h.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| h.get(name).cloned().unwrap_or_default();
        let num = |name: &str| field(name).parse::<u64>().unwrap_or(0);
        Ok(Some(Hold {
            id,
            user: field("user").parse().context("hold user")?,
            status: field("status").parse().map_err(anyhow::Error::msg)?,
            expires_at: from_ms(num("exp")),
            fencing_token: num("token"),
            lines: lines(&field("ga"), &field("seats"), &field("seatcats"))?,
            created_at: from_ms(num("created")),
            ended_at: h.get("ended").and_then(|v| v.parse().ok()).map(from_ms),
            booking_id: h.get("booking").cloned().filter(|b| !b.is_empty()),
        }))
    }

    /// Who ended the hold (`by` of [`Stock::end`]), if recorded.
    pub async fn ended_by(&self, id: HoldId) -> anyhow::Result<Option<String>> {
        let key = format!("{}:hold:{}", self.base(id.event), id.hold.simple());
        Ok(self.redis.clone().hget(&key, "by").await?)
    }

    /// Whether the event's stock is in Redis.
    pub async fn is_loaded(&self, event: uuid::Uuid) -> anyhow::Result<bool> {
        Ok(self.redis.clone().exists(format!("{}:meta", self.base(event))).await?)
    }

    /// Per-category counts; `None` when the event is not loaded.
    pub async fn counts(&self, event: uuid::Uuid) -> anyhow::Result<Option<Vec<(uuid::Uuid, Counts)>>> {
        let base = self.base(event);
        let mut conn = self.redis.clone();
        let categories: Vec<String> = conn.smembers(format!("{base}:cats")).await?;
        if categories.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for category in &categories {
            pipe.hget(format!("{base}:cat:{category}"), &["cap", "avail", "held", "sold"]);
        }
        let rows: Vec<(u32, u32, u32, u32)> = pipe.query_async(&mut conn).await.context("reading counts")?;
        let mut counts = Vec::with_capacity(rows.len());
        for (category, (capacity, available, held, sold)) in categories.iter().zip(rows) {
            counts.push((category.parse()?, Counts { capacity, available, held, sold }));
        }
        counts.sort_by_key(|(c, _)| *c);
        Ok(Some(counts))
    }

    /// Every seat's category and state.
    pub async fn seat_states(&self, event: uuid::Uuid) -> anyhow::Result<Vec<(uuid::Uuid, uuid::Uuid, SeatState)>> {
        let base = self.base(event);
        let mut conn = self.redis.clone();
        let (info, taken): (HashMap<String, String>, HashMap<String, String>) = redis::pipe()
            .hgetall(format!("{base}:seatinfo"))
            .hgetall(format!("{base}:seat"))
            .query_async(&mut conn)
            .await
            .context("reading seat states")?;
        let mut seats = Vec::with_capacity(info.len());
        for (seat, value) in info {
            let category = value.split('|').next().unwrap_or_default();
            let state = match taken.get(&seat).map(|v| v.as_bytes().first()) {
                Some(Some(b'S')) => SeatState::Sold,
                Some(_) => SeatState::Held,
                None => SeatState::Available,
            };
            seats.push((seat.parse()?, category.parse()?, state));
        }
        seats.sort_by_key(|(seat, _, _)| *seat);
        Ok(seats)
    }

    /// Events with stock in Redis (for the reaper and the spool).
    pub async fn events(&self) -> anyhow::Result<Vec<uuid::Uuid>> {
        let members: Vec<String> = self.redis.clone().smembers(self.events_key()).await?;
        Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
    }

    /// Holds of `event` due to expire by `now`.
    pub async fn due(&self, event: uuid::Uuid, now: u64, limit: isize) -> anyhow::Result<Vec<HoldId>> {
        let holds: Vec<String> = self
            .redis
            .clone()
            .zrangebyscore_limit(format!("{}:expiry", self.base(event)), "-inf", now, 0, limit)
            .await?;
        Ok(holds.iter().filter_map(|h| h.parse().ok()).map(|hold| HoldId { event, hold }).collect())
    }

    /// Up to `n` spooled announcements (`<outcome>:<hold>`) of `event`.
    pub async fn spooled(&self, event: uuid::Uuid, n: isize) -> anyhow::Result<Vec<String>> {
        Ok(self.redis.clone().lrange(format!("{}:spool", self.base(event)), 0, n - 1).await?)
    }

    /// Removes announcements that are safely in the outbox; their holds' records then
    /// expire like those of holds nobody claimed.
    pub async fn unspool(&self, event: uuid::Uuid, entries: &[String]) -> anyhow::Result<()> {
        let mut invocation = UNSPOOL.key(self.base(event));
        invocation.arg(now_ms()).arg(self.retention.as_millis() as u64).arg(entries);
        invocation.invoke_async::<()>(&mut self.redis.clone()).await.context("unspool script")
    }

    /// Updates the sale window, limit and state of a loaded event (no-op when not loaded).
    pub async fn update_meta(
        &self,
        event: uuid::Uuid,
        state: &str,
        window_ms: (u64, u64),
        limit: u32,
    ) -> anyhow::Result<()> {
        let key = format!("{}:meta", self.base(event));
        let mut conn = self.redis.clone();
        if conn.exists(&key).await? {
            let fields = [
                ("state", state.to_owned()),
                ("sale_start", window_ms.0.to_string()),
                ("sale_end", window_ms.1.to_string()),
                ("limit", limit.to_string()),
            ];
            let _: () = conn.hset_multiple(&key, &fields).await?;
        }
        Ok(())
    }

    /// Takes the per-event rebuild lock for `ttl`; `None` while another caller holds it.
    pub async fn lock_rebuild(&self, event: uuid::Uuid, ttl: Duration) -> anyhow::Result<Option<RebuildLock>> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}:rebuilding", self.base(event)))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(set.map(|_| RebuildLock { event, token }))
    }

    /// Extends the lock to `ttl` from now; `false` when it expired and is no longer ours.
    pub async fn renew_rebuild(&self, lock: &RebuildLock, ttl: Duration) -> anyhow::Result<bool> {
        let renewed: i64 = RENEW_LOCK
            .key(format!("{}:rebuilding", self.base(lock.event)))
            .arg(&lock.token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Gives up the lock without loading (if it is still ours).
    pub async fn unlock_rebuild(&self, lock: RebuildLock) -> anyhow::Result<()> {
        let _: i64 = UNLOCK
            .key(format!("{}:rebuilding", self.base(lock.event)))
            .arg(&lock.token)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Replaces whatever Redis has left of the event with `snapshot` and gives up the lock.
    ///
    /// The snapshot is written to staging keys first, then one script checks that the
    /// lock is still ours and the event still not loaded, drops the leftovers and renames
    /// the staged keys into place: scripts never see half an event, and a load that
    /// outlived its lock, or raced another, writes nothing (`lua/commit_load.lua`).
    pub async fn load(&self, lock: &RebuildLock, snapshot: &Snapshot) -> anyhow::Result<Loaded> {
        anyhow::ensure!(lock.event == snapshot.event, "a snapshot of another event");
        let base = self.base(snapshot.event);
        let stage = format!("{base}:load:{}", lock.token);
        let mut conn = self.redis.clone();
        // Leftovers of a partial loss (holds are lost with Redis; the ledger is not). A
        // scan of the keyspace: this runs only when Redis lost the event.
        let mut stale: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{base}:*"))
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut conn)
                .await
                .context("listing stale keys")?;
            stale.extend(keys.into_iter().filter(|key| !key.ends_with(":rebuilding") && !key.starts_with(&stage)));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut staged = Staging::new(stage);
        staged.write(snapshot);
        staged.pipe.exec_async(&mut conn).await.context("staging the event")?;
        let Staging { stage, suffixes, .. } = staged;
        let outcome: String = COMMIT_LOAD
            .key(&base)
            .key(&stage)
            .key(self.events_key())
            .arg(&lock.token)
            .arg(snapshot.event.to_string())
            .arg(stale.len())
            .arg(&stale)
            .arg(&suffixes)
            .invoke_async(&mut conn)
            .await
            .context("loading the event")?;
        Ok(match outcome.as_str() {
            "OK" => Loaded::Now,
            "LOADED" => Loaded::Already,
            "LOST" => Loaded::LockLost,
            other => anyhow::bail!("the load script answered {other:?}"),
        })
    }
}

/// An event's keys as [`Stock::load`] stages them: written under the staging base, and
/// each suffix listed once for the commit to rename into place.
struct Staging {
    stage: String,
    suffixes: Vec<String>,
    listed: std::collections::HashSet<String>,
    pipe: redis::Pipeline,
}

impl Staging {
    fn new(stage: String) -> Self {
        Self { stage, suffixes: Vec::new(), listed: std::collections::HashSet::new(), pipe: redis::pipe() }
    }

    /// The staged key of `suffix`, listed for the commit the first time it is asked for.
    fn key(&mut self, suffix: String) -> String {
        let key = format!("{}{suffix}", self.stage);
        if self.listed.insert(suffix.clone()) {
            self.suffixes.push(suffix);
        }
        key
    }

    /// Queues the writes of `snapshot`, the layout the scripts read; the staged keys
    /// expire unless the commit comes first (it makes them persist).
    fn write(&mut self, snapshot: &Snapshot) {
        let cats = self.key(":cats".to_owned());
        for (category, seated, capacity, sold) in &snapshot.categories {
            let c = category.simple().to_string();
            let counts = self.key(format!(":cat:{c}"));
            self.pipe.sadd(&cats, &c).ignore();
            self.pipe
                .hset_multiple(
                    counts,
                    &[
                        ("kind", if *seated { "seated".to_owned() } else { "ga".to_owned() }),
                        ("cap", capacity.to_string()),
                        ("avail", (capacity - sold).to_string()),
                        ("held", "0".to_owned()),
                        ("sold", sold.to_string()),
                    ],
                )
                .ignore();
        }

        let sold_seats: HashMap<uuid::Uuid, HoldId> = snapshot
            .sales
            .iter()
            .flat_map(|sale| sale.lines.iter().flat_map(move |l| l.seat_ids.iter().map(move |s| (*s, sale.id))))
            .collect();
        let free: HashMap<uuid::Uuid, String> = snapshot
            .seats
            .iter()
            .map(|(_, category, ..)| *category)
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .map(|category| (category, format!(":free:{}", category.simple())))
            .collect();
        let (seatinfo, taken) = (self.key(":seatinfo".to_owned()), self.key(":seat".to_owned()));
        for chunk in snapshot.seats.chunks(2000) {
            let info: Vec<(String, String)> = chunk
                .iter()
                .map(|(seat, category, row, position, rank)| {
                    (seat.simple().to_string(), format!("{}|{row}|{position}|{rank}", category.simple()))
                })
                .collect();
            self.pipe.hset_multiple(&seatinfo, &info).ignore();
            for (seat, category, _, _, rank) in chunk {
                match sold_seats.get(seat) {
                    Some(hold) => {
                        self.pipe.hset(&taken, seat.simple().to_string(), format!("S:{}", hold.hold.simple())).ignore();
                    }
                    None => {
                        let key = self.key(free[category].clone());
                        self.pipe.zadd(key, seat.simple().to_string(), rank).ignore();
                    }
                }
            }
        }

        let mut per_user: HashMap<uuid::Uuid, u32> = HashMap::new();
        for sale in &snapshot.sales {
            *per_user.entry(sale.user).or_default() += sale.quantity();
            let (ga, seats, cats) = encode_lines(&sale.lines);
            let key = self.key(format!(":hold:{}", sale.id.hold.simple()));
            self.pipe
                .hset_multiple(
                    key,
                    &[
                        ("user", sale.user.simple().to_string()),
                        ("status", sale.status.as_str().to_owned()),
                        ("exp", "0".to_owned()),
                        ("token", sale.fencing_token.to_string()),
                        ("created", "0".to_owned()),
                        ("ga", ga),
                        ("seats", seats),
                        ("seatcats", cats),
                        ("qty", sale.quantity().to_string()),
                        ("booking", sale.booking_id.clone().unwrap_or_default()),
                    ],
                )
                .ignore();
        }
        for (user, quantity) in per_user {
            let key = self.key(format!(":user:{}", user.simple()));
            self.pipe.set(key, quantity).ignore();
        }
        let fence = self.key(":fence".to_owned());
        self.pipe.set(fence, snapshot.fence).ignore();
        let meta = self.key(":meta".to_owned());
        self.pipe
            .hset_multiple(
                meta,
                &[
                    ("state", snapshot.state.clone()),
                    ("sale_start", snapshot.sale_window_ms.0.to_string()),
                    ("sale_end", snapshot.sale_window_ms.1.to_string()),
                    ("limit", snapshot.per_user_limit.to_string()),
                ],
            )
            .ignore();
        for suffix in &self.suffixes {
            self.pipe.pexpire(format!("{}{suffix}", self.stage), STAGED_TTL_MS).ignore();
        }
    }
}

/// Hold lines as the scripts store them: `cat:qty` for general admission, and
/// parallel comma-separated seat and category lists.
fn encode_lines(lines: &[HoldLine]) -> (String, String, String) {
    let mut ga = String::new();
    let (mut seats, mut cats) = (Vec::new(), Vec::new());
    for line in lines {
        if line.seat_ids.is_empty() {
            ga = format!("{}:{}", line.category_id.simple(), line.quantity);
        }
        for seat in &line.seat_ids {
            seats.push(seat.simple().to_string());
            cats.push(line.category_id.simple().to_string());
        }
    }
    (ga, seats.join(","), cats.join(","))
}

/// The inverse of [`encode_lines`].
fn lines(ga: &str, seats: &str, cats: &str) -> anyhow::Result<Vec<HoldLine>> {
    if let Some((category, quantity)) = ga.split_once(':') {
        return Ok(vec![HoldLine {
            category_id: category.parse()?,
            quantity: quantity.parse()?,
            seat_ids: Vec::new(),
        }]);
    }
    let pairs: Vec<(uuid::Uuid, uuid::Uuid)> = seats
        .split(',')
        .zip(cats.split(','))
        .filter(|(s, _)| !s.is_empty())
        .map(|(s, c)| Ok((s.parse()?, c.parse()?)))
        .collect::<anyhow::Result<_>>()?;
    Ok(seat_lines(&pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_the_script_encoding() {
        let (c1, c2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let seated = vec![
            HoldLine { category_id: c1, quantity: 2, seat_ids: vec![uuid::Uuid::new_v4(), uuid::Uuid::new_v4()] },
            HoldLine { category_id: c2, quantity: 1, seat_ids: vec![uuid::Uuid::new_v4()] },
        ];
        let (ga, seats, cats) = encode_lines(&seated);
        assert_eq!(lines(&ga, &seats, &cats).unwrap(), seated);
        let general = vec![HoldLine { category_id: c1, quantity: 4, seat_ids: Vec::new() }];
        let (ga, seats, cats) = encode_lines(&general);
        assert_eq!(lines(&ga, &seats, &cats).unwrap(), general);
    }

    #[test]
    fn every_code_the_scripts_refuse_with_is_known() {
        let sources = [
            include_str!("lua/hold.lua"),
            include_str!("lua/end.lua"),
            include_str!("lua/begin_confirm.lua"),
            include_str!("lua/finish_confirm.lua"),
            include_str!("lua/restock.lua"),
            include_str!("lua/claim.lua"),
        ];
        let mut codes: Vec<&str> = sources
            .iter()
            .flat_map(|source| source.split("{'ERR', '").skip(1))
            .filter_map(|rest| rest.split_once('\'').map(|(code, _)| code))
            .collect();
        codes.sort_unstable();
        codes.dedup();
        assert!(codes.len() >= 15, "the scripts' codes were found: {codes:?}");
        for code in codes {
            // `'ENDED:' .. status`: any status a hold can end in.
            let code = if code.starts_with("ENDED:") { "ENDED:released" } else { code };
            let refusal = Refusal::parse(code, "1");
            assert!(!matches!(refusal, Refusal::Unknown { .. }), "{code} is read as {refusal:?}");
        }
    }

    #[test]
    fn refusals_are_read_once_and_unknown_codes_are_not_guessed() {
        assert_eq!(Refusal::parse("SOLD_OUT", "2"), Refusal::SoldOut { available: 2 });
        assert_eq!(Refusal::parse("LIMIT", "-1"), Refusal::LimitExceeded { remaining: 0 });
        assert_eq!(Refusal::parse("NO_ADJACENT", "x"), Refusal::NoAdjacentSeats(0));
        assert_eq!(Refusal::parse("SEAT_TAKEN", "abc"), Refusal::SeatTaken("abc".into()));
        assert_eq!(Refusal::parse("ENDED:confirmed", ""), Refusal::Ended(HoldStatus::Confirmed));
        for (code, detail) in [("ENDED:gone", ""), ("ENDED:", ""), ("NOPE", "x"), ("", "")] {
            assert_eq!(
                Refusal::parse(code, detail),
                Refusal::Unknown { code: code.into(), detail: detail.into() },
                "{code:?}"
            );
        }
        let reply = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            hold_refused(&reply(&["ERR", "SOLD_OUT", "1"])),
            HoldRefused { refusal: Refusal::SoldOut { available: 1 }, code: "SOLD_OUT".into(), detail: "1".into() }
        );
        assert_eq!(refusal(&reply(&["ERR", "NO_HOLD"])), Refusal::NoHold);
        assert_eq!(refusal(&reply(&["ERR"])), Refusal::Unknown { code: String::new(), detail: String::new() });
    }
}
