//! The waiting room of events in on-sale mode (catalog's `waiting_room` setting): a queue in
//! Redis that any replica serves, admission at the event's rate computed from the clock (no
//! worker), and signed, single-use admission passes that `POST /v1/events/{id}/holds` requires.
//! The design and why it is fair: `docs/adr/0017-waiting-room.md`.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use ticketing_platform::redis::LazyConnection;
use ticketing_proto::catalog::v1 as catalog;
use uuid::Uuid;

use crate::config::WaitingRoomSettings;
use crate::problem::{Problem, Url};
use crate::routes::common::instant;
use crate::state::Backends;

/// Queue keys outlive the sale by this much, so late status polls still answer.
const KEEP_AFTER_SALE: chrono::TimeDelta = chrono::TimeDelta::days(1);
/// The `aud` of every pass: it is good for holds and nothing else.
const PASS_AUDIENCE: &str = "ticketing-holds";

/// Joins the queue or looks a ticket up, shuffling the early joiners first if the sale has
/// opened and nobody did yet; hands out the pass expiry of an admitted ticket the first time.
///
/// KEYS: 1 tickets (user → ticket), 2 owners (ticket → user), 3 early (set of tickets that
/// joined before opening), 4 positions (ticket → position), 5 last (the last position given;
/// exists once the queue opened), 6 passes (ticket → pass expiry, unix seconds), 7 joined
/// (ticket → when it joined, unix ms).
/// ARGV: 1 user, 2 `join` or `look`, 3 ticket (a new one to join with, or the one to look up),
/// 4 `1` once the sale opened, 5 shuffle seed, 6 expire-at (unix ms), 7 positions admitted now,
/// 8 the pass expiry to hand out now, 9 now (unix ms).
/// Returns {ticket, owner ('' if unknown), position (0 before opening), created, pass expiry or 0,
/// admitted now: 0 if not, else when the ticket joined (unix ms; -1 if unknown)}.
const VISIT: &str = r"
local changed = false
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[5]) == 0 then
  -- Fisher-Yates with j drawn from 52 bits of SHA-1(seed:i): every order of the early set is
  -- equally likely and unpredictable without the seed; the `last` key makes it happen once.
  local early = redis.call('SMEMBERS', KEYS[3])
  for i = #early, 2, -1 do
    local r = tonumber(string.sub(redis.sha1hex(ARGV[5] .. ':' .. i), 1, 13), 16) / 4503599627370496
    local j = math.min(math.floor(r * i) + 1, i)
    early[i], early[j] = early[j], early[i]
  end
  for i, ticket in ipairs(early) do
    redis.call('HSET', KEYS[4], ticket, i)
  end
  redis.call('SET', KEYS[5], #early)
  redis.call('DEL', KEYS[3])
  changed = true
end
local ticket, owner, created = ARGV[3], ARGV[1], 0
if ARGV[2] == 'join' then
  local existing = redis.call('HGET', KEYS[1], owner)
  if existing then
    ticket = existing
  else
    created, changed = 1, true
    redis.call('HSET', KEYS[1], owner, ticket)
    redis.call('HSET', KEYS[2], ticket, owner)
    redis.call('HSET', KEYS[7], ticket, ARGV[9])
    if redis.call('EXISTS', KEYS[5]) == 1 then
      redis.call('HSET', KEYS[4], ticket, redis.call('INCR', KEYS[5]))
    else
      redis.call('SADD', KEYS[3], ticket)
    end
  end
else
  owner = redis.call('HGET', KEYS[2], ticket) or ''
end
local position = tonumber(redis.call('HGET', KEYS[4], ticket) or 0)
local pass, admitted = 0, 0
if owner == ARGV[1] and position > 0 and position <= tonumber(ARGV[7]) then
  if redis.call('HSETNX', KEYS[6], ticket, ARGV[8]) == 1 then
    changed = true
    admitted = tonumber(redis.call('HGET', KEYS[7], ticket) or -1)
  end
  pass = tonumber(redis.call('HGET', KEYS[6], ticket))
end
if changed then
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIREAT', key, ARGV[6])
  end
end
return {ticket, owner, position, created, pass, admitted}
";

/// Marks a pass used until it expires. ARGV: 1 marker of this use (the idempotency key, `-`
/// without one), 2 expiry (unix ms). Returns 1 if now used, 2 for a replay of the use with the
/// same idempotency key, 0 if used before.
const CONSUME: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then
  return 1
end
if ARGV[1] ~= '-' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return 2
end
return 0
";

/// What the gateway needs of an event's sale, cached per replica for a few seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sale {
    /// Buyers admitted per minute; `None`: no waiting room, holds need no pass.
    pub rate: Option<u32>,
    /// When the queue opens (the sale start); early joiners are shuffled then.
    pub opens_at: DateTime<Utc>,
    /// The sale's end.
    pub closes_at: DateTime<Utc>,
    /// Published or on sale, with a sale window: the queue takes buyers.
    pub selling: bool,
}

impl From<&catalog::Event> for Sale {
    fn from(e: &catalog::Event) -> Self {
        let room = e.waiting_room.filter(|r| r.enabled && r.admission_per_minute > 0);
        let (opens_at, closes_at) = (instant(e.sale_starts_at), instant(e.sale_ends_at));
        let listed = matches!(e.status(), catalog::EventStatus::Published | catalog::EventStatus::OnSale);
        Self {
            rate: room.map(|r| r.admission_per_minute),
            opens_at: opens_at.unwrap_or(DateTime::UNIX_EPOCH),
            closes_at: closes_at.unwrap_or(DateTime::UNIX_EPOCH),
            selling: listed && opens_at.is_some() && closes_at.is_some(),
        }
    }
}

/// Positions admitted `elapsed` after opening: the first at opening, then one every 60/rate s.
pub fn admitted(rate: u32, elapsed: Duration) -> u64 {
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    1 + ms.saturating_mul(u64::from(rate)) / 60_000
}

/// How long after opening `position` (from 1) is admitted: the inverse of [`admitted`].
pub fn admitted_after(rate: u32, position: u64) -> Duration {
    Duration::from_millis(position.saturating_sub(1).saturating_mul(60_000).div_ceil(u64::from(rate.max(1))))
}

/// Where a buyer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The sale has not opened: no position yet (early joiners are shuffled at opening).
    Waiting,
    /// In line behind others.
    Queued,
    /// Admitted: holds with this pass until it expires.
    Admitted {
        /// The signed pass.
        pass: String,
        /// Its expiry.
        expires_at: DateTime<Utc>,
    },
    /// Admitted, but the pass has expired.
    Expired,
}

/// A queue ticket's state, as the routes show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The ticket id.
    pub ticket: String,
    /// Where the buyer stands.
    pub standing: Standing,
    /// Their position, from opening on.
    pub position: Option<u64>,
    /// Until the sale opens (waiting) or until their turn (queued); zero once admitted.
    pub wait: Duration,
    /// The sale start.
    pub opens_at: DateTime<Utc>,
}

/// The claims of an admission pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    /// The buyer (user id) the pass was issued to.
    pub sub: String,
    /// The event it admits to.
    pub event: String,
    /// The queue ticket; a pass is used once per ticket.
    pub jti: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Always [`PASS_AUDIENCE`].
    pub aud: String,
}

/// Signs and checks admission passes (HS256, one secret shared by every replica).
#[derive(Clone)]
pub struct Passes {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Passes {
    /// Passes signed with `secret`.
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_audience(&[PASS_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The pass of `ticket`; the same claims give the same token, so polls repeat it.
    pub fn sign(&self, user: Uuid, event: Uuid, ticket: &str, exp: u64) -> String {
        let claims = PassClaims {
            sub: user.to_string(),
            event: event.to_string(),
            jti: ticket.to_owned(),
            exp,
            aud: PASS_AUDIENCE.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The claims of `token` if it is a live pass for `user` to hold tickets of `event`.
    pub fn verify(&self, token: &str, user: Uuid, event: Uuid) -> Result<PassClaims, Problem> {
        let invalid = |detail: &str| {
            Problem::new(StatusCode::FORBIDDEN, "admission-pass-invalid", "Invalid admission pass", detail)
        };
        let claims = jsonwebtoken::decode::<PassClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => Problem::new(
                    StatusCode::FORBIDDEN,
                    "admission-pass-expired",
                    "Admission pass expired",
                    "the pass's time ran out; it cannot be renewed",
                ),
                _ => invalid("not an admission pass of this gateway"),
            })?
            .claims;
        if claims.sub != user.to_string() {
            return Err(invalid("the pass was issued to another buyer"));
        }
        if claims.event != event.to_string() {
            return Err(invalid("the pass is for another event"));
        }
        Ok(claims)
    }
}

/// A pass marked used by a hold in flight; see [`WaitingRoom::settle`].
#[derive(Debug)]
pub struct Admission {
    key: String,
    fresh: bool,
}

/// The `Admission-Pass` header, if sent.
pub struct AdmissionPass(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for AdmissionPass {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get("admission-pass") else { return Ok(Self(None)) };
        let pass = value.to_str().map_err(|_| Problem::field("Admission-Pass", "must be visible ASCII"))?;
        Ok(Self(Some(pass.to_owned())))
    }
}

/// The queue's state in Redis, the passes, and a cache of the events' settings.
#[derive(Clone)]
pub struct WaitingRoom {
    redis: LazyConnection,
    prefix: String,
    passes: Passes,
    pass_ttl: Duration,
    sales: moka::future::Cache<Uuid, Sale>,
    visit: redis::Script,
    consume: redis::Script,
    metrics: std::sync::Arc<RoomMetrics>,
}

/// One event's waiting-room counters (`event_id` capped by `telemetry.max_event_series`).
#[derive(Clone)]
pub struct EventRoom {
    label: std::sync::Arc<str>,
    joined: prometheus::IntCounter,
    admitted: prometheus::IntCounter,
    wait: prometheus::Histogram,
}

/// The waiting room's metrics; its length is sampled by [`WaitingRoom::watch`].
struct RoomMetrics {
    events: ticketing_platform::metrics::PerEvent<EventRoom>,
    length: prometheus::IntGaugeVec,
    redis: prometheus::Histogram,
}

/// Buckets of `gateway_waiting_room_wait_seconds`: 1 s to 1 h.
const WAIT_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];

impl RoomMetrics {
    fn new(metrics: &ticketing_platform::metrics::Metrics) -> Self {
        use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
        let counter = |name: &str, help: &str| {
            metrics
                .register(&IntCounterVec::new(Opts::new(name, help), &["event_id"]).expect("static metric definition"))
        };
        let joined = counter("gateway_waiting_room_joined_total", "Waiting-room tickets issued.");
        let admitted = counter("gateway_waiting_room_admitted_total", "Admission passes issued.");
        let wait = metrics.register(
            &HistogramVec::new(
                HistogramOpts::new("gateway_waiting_room_wait_seconds", "Time from joining the queue to admission.")
                    .buckets(WAIT_BUCKETS.to_vec()),
                &["event_id"],
            )
            .expect("static metric definition"),
        );
        let length = metrics.register(
            &IntGaugeVec::new(
                Opts::new("gateway_waiting_room_length", "Queue positions issued minus those admitted so far."),
                &["event_id"],
            )
            .expect("static metric definition"),
        );
        let make = (joined.clone(), admitted.clone(), wait.clone());
        let forget = (joined, admitted, wait, length.clone());
        let events = ticketing_platform::metrics::PerEvent::new(
            metrics.max_event_series(),
            move |event| EventRoom {
                label: event.into(),
                joined: make.0.with_label_values(&[event]),
                admitted: make.1.with_label_values(&[event]),
                wait: make.2.with_label_values(&[event]),
            },
            move |room: &EventRoom| {
                let label = [&*room.label];
                let _ = forget.0.remove_label_values(&label);
                let _ = forget.1.remove_label_values(&label);
                let _ = forget.2.remove_label_values(&label);
                let _ = forget.3.remove_label_values(&label);
            },
        );
        Self { events, length, redis: metrics.redis_timer("waiting_room") }
    }
}

/// Redis failing: the queue cannot be served, and letting everybody through would defeat it.
fn unavailable(e: impl std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "waiting room: Redis failed");
    Problem::unavailable("the waiting room is unavailable; retry shortly", Duration::from_secs(1))
}

fn unix_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn positive(d: chrono::TimeDelta) -> Duration {
    d.to_std().unwrap_or_default()
}

impl WaitingRoom {
    /// The waiting room over `redis`, its keys under `prefix`, its metrics in `metrics`.
    pub fn new(
        redis: LazyConnection,
        prefix: &str,
        settings: &WaitingRoomSettings,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            passes: Passes::new(&settings.pass_secret),
            pass_ttl: settings.pass_ttl,
            sales: moka::future::Cache::builder()
                .max_capacity(settings.event_cache_size)
                .time_to_live(settings.event_cache_ttl)
                .build(),
            visit: redis::Script::new(VISIT),
            consume: redis::Script::new(CONSUME),
            metrics: std::sync::Arc::new(RoomMetrics::new(metrics)),
        }
    }

    /// Samples `gateway_waiting_room_length` of the events whose queue this replica served,
    /// every `interval`, until `stop`. The queue is in Redis, so every replica reports the same.
    pub async fn watch(
        self,
        backends: Backends,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            self.metrics.events.expire();
            for (event, room) in self.metrics.events.events() {
                match self.length(&backends, event).await {
                    Ok(Some(length)) => self.metrics.length.with_label_values(&[&*room.label]).set(length),
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, %event, "sampling the waiting room failed"),
                }
            }
        }
    }

    /// Buyers in the queue of `event`: positions issued minus those admitted by now (before
    /// opening, the early joiners); `None` when the event has no waiting room. The sale comes
    /// from catalog when the cache has let it go: the gauge must not depend on a recent visit.
    async fn length(&self, backends: &Backends, event: Uuid) -> anyhow::Result<Option<i64>> {
        let sale = self.sale(backends, event).await.map_err(|p| anyhow::anyhow!("{}", p.detail))?;
        let (Some(rate), Some(mut redis)) = (sale.rate, self.redis.get()) else { return Ok(None) };
        let (last, early): (Option<u64>, u64) =
            redis::pipe().get(self.key(event, "last")).scard(self.key(event, "early")).query_async(&mut redis).await?;
        let now = Utc::now();
        Ok(Some(match last {
            Some(last) => {
                let admitted_now = admitted(rate, positive(now - sale.opens_at));
                i64::try_from(last.saturating_sub(admitted_now)).unwrap_or(i64::MAX)
            }
            None => i64::try_from(early).unwrap_or(i64::MAX),
        }))
    }

    fn connection(&self) -> Result<ticketing_platform::redis::Connection, Problem> {
        self.redis.get().ok_or_else(|| unavailable("not connected to Redis yet"))
    }

    /// The event's sale settings, from the cache or catalog (concurrent misses ask once).
    pub async fn sale(&self, backends: &Backends, event: Uuid) -> Result<Sale, Problem> {
        let load = async {
            let request = catalog::GetEventRequest { event_id: event.to_string(), include_seat_ids: false };
            let found = backends.catalog.clone().get_event(request).await?.into_inner();
            Ok::<_, Problem>(Sale::from(&found))
        };
        self.sales.try_get_with(event, load).await.map_err(|e| (*e).clone())
    }

    /// The queue URL of `event`.
    pub fn queue_url(event: Uuid) -> String {
        format!("/v1/events/{event}/queue")
    }

    fn key(&self, event: Uuid, name: &str) -> String {
        // The braces are a Redis Cluster hash tag: one event's keys live on one shard, as the
        // scripts need.
        format!("{}waiting-room:{{{event}}}:{name}", self.prefix)
    }

    /// Joins `user` to the queue of `event`; the second value is whether the ticket is new
    /// (joining again returns the same ticket).
    pub async fn join(&self, backends: &Backends, user: Uuid, event: Uuid) -> Result<(Place, bool), Problem> {
        let sale = self.sale(backends, event).await?;
        if !sale.selling || Utc::now() >= sale.closes_at {
            return Err(Problem::new(StatusCode::CONFLICT, "sale-closed", "Not on sale", "the event's sale is over"));
        }
        self.visit(sale, user, event, "join", &Uuid::new_v4().to_string()).await
    }

    /// Where `user`'s `ticket` in the queue of `event` stands; only its owner may look.
    pub async fn place(&self, backends: &Backends, user: Uuid, event: Uuid, ticket: Uuid) -> Result<Place, Problem> {
        let sale = self.sale(backends, event).await?;
        Ok(self.visit(sale, user, event, "look", &ticket.to_string()).await?.0)
    }

    async fn visit(
        &self,
        sale: Sale,
        user: Uuid,
        event: Uuid,
        mode: &str,
        ticket: &str,
    ) -> Result<(Place, bool), Problem> {
        let Some(rate) = sale.rate else {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "no-waiting-room",
                "No waiting room",
                "this event's sale has no queue: hold tickets directly",
            ));
        };
        let now = Utc::now();
        let opened = now >= sale.opens_at;
        let admitted_now = if opened { admitted(rate, positive(now - sale.opens_at)) } else { 0 };
        let pass_expiry = (now + self.pass_ttl).timestamp() as u64;
        let keep_until = unix_ms(sale.closes_at.max(now) + KEEP_AFTER_SALE);
        let keys =
            ["tickets", "owners", "early", "positions", "last", "passes", "joined"].map(|name| self.key(event, name));
        let timer = self.metrics.redis.start_timer();
        let (ticket, owner, position, created, pass, admitted_at): (String, String, u64, u8, u64, i64) = self
            .visit
            .key(&keys[..])
            .arg(user.to_string())
            .arg(mode)
            .arg(ticket)
            .arg(u8::from(opened))
            .arg(format!("{:032x}", rand::random::<u128>()))
            .arg(keep_until)
            .arg(admitted_now)
            .arg(pass_expiry)
            .arg(unix_ms(now))
            .invoke_async(&mut self.connection()?)
            .await
            .map_err(unavailable)?;
        drop(timer);
        if created == 1 || admitted_at != 0 {
            let room = self.metrics.events.get(event);
            if created == 1 {
                room.joined.inc();
            }
            if admitted_at != 0 {
                room.admitted.inc();
                if admitted_at > 0 {
                    room.wait.observe((unix_ms(now) - admitted_at).max(0) as f64 / 1000.0);
                }
            }
        }
        if owner.is_empty() {
            return Err(Problem::not_found("no such ticket in this event's queue"));
        }
        if owner != user.to_string() {
            return Err(Problem::forbidden("the ticket belongs to another buyer"));
        }
        let position = Some(position).filter(|p| opened && *p > 0);
        let (standing, wait) = match (position, DateTime::from_timestamp(pass as i64, 0)) {
            (None, _) => (Standing::Waiting, positive(sale.opens_at - now)),
            (Some(p), _) if pass == 0 => (Standing::Queued, positive(sale.opens_at + admitted_after(rate, p) - now)),
            (Some(_), Some(expires_at)) if expires_at > now => {
                (Standing::Admitted { pass: self.passes.sign(user, event, &ticket, pass), expires_at }, Duration::ZERO)
            }
            (Some(_), _) => (Standing::Expired, Duration::ZERO),
        };
        Ok((Place { ticket, standing, position, wait, opens_at: sale.opens_at }, created == 1))
    }

    /// Checks the caller's pass for a hold on `event` and marks it used; `None` when the event
    /// has no waiting room. A replay with the pass's first idempotency key goes through again
    /// (the hold service answers it with the first hold).
    pub async fn admit(
        &self,
        backends: &Backends,
        user: Uuid,
        event: Uuid,
        pass: Option<&str>,
        idempotency_key: &str,
    ) -> Result<Option<Admission>, Problem> {
        if self.sale(backends, event).await?.rate.is_none() {
            return Ok(None);
        }
        let Some(pass) = pass else {
            return Err(Problem {
                queue_url: Some(Box::new(Url(Self::queue_url(event)))),
                ..Problem::new(
                    StatusCode::FORBIDDEN,
                    "admission-pass-required",
                    "Admission pass required",
                    "this sale runs through a waiting room: join its queue and hold with the Admission-Pass it gives you",
                )
            });
        };
        let claims = self.passes.verify(pass, user, event)?;
        let key = self.key(event, &format!("used:{}", claims.jti));
        let marker = if idempotency_key.is_empty() { "-".to_owned() } else { format!("key:{idempotency_key}") };
        let used: u8 = self
            .consume
            .key(&key)
            .arg(marker)
            .arg(claims.exp.saturating_mul(1000))
            .invoke_async(&mut self.connection()?)
            .await
            .map_err(unavailable)?;
        match used {
            0 => Err(Problem::new(
                StatusCode::CONFLICT,
                "admission-pass-used",
                "Admission pass already used",
                "a pass admits one hold",
            )),
            fresh => Ok(Some(Admission { key, fresh: fresh == 1 })),
        }
    }

    /// After the hold: a pass whose hold failed is given back, so the buyer may try another
    /// selection before it expires (a sold-out category is not their fault).
    pub async fn settle(&self, admission: Option<Admission>, held: bool) {
        let Some(Admission { key, fresh: true }) = admission else { return };
        if held {
            return;
        }
        let given_back = match self.connection() {
            Ok(mut redis) => redis::cmd("DEL").arg(&key).query_async::<()>(&mut redis).await.map_err(|e| e.to_string()),
            Err(_) => Err("not connected".to_owned()),
        };
        if let Err(e) = given_back {
            tracing::warn!(error = e, key, "waiting room: could not give a pass back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_runs_at_the_rate_and_the_wait_is_its_inverse() {
        let rate = 120; // two a second
        assert_eq!(admitted(rate, Duration::ZERO), 1, "the first buyer goes in at opening");
        assert_eq!(admitted(rate, Duration::from_millis(499)), 1);
        assert_eq!(admitted(rate, Duration::from_millis(500)), 2);
        assert_eq!(admitted(rate, Duration::from_secs(1)), 3);
        assert_eq!(admitted(rate, Duration::from_secs(60)), 121);
        for p in [1, 2, 3, 10, 121, 1_000_001] {
            let at = admitted_after(rate, p);
            assert!(admitted(rate, at) >= p, "{p} is admitted at {at:?}");
            if !at.is_zero() {
                assert!(admitted(rate, at - Duration::from_millis(1)) < p, "{p} is not admitted before {at:?}");
            }
        }
        assert_eq!(admitted_after(7, 2), Duration::from_millis(8_572), "rounded up to the millisecond");
        assert_eq!(admitted(1_000_000, Duration::from_secs(365 * 86_400)), 525_600_000_001, "no overflow");
    }

    fn event(status: catalog::EventStatus, room: Option<catalog::WaitingRoom>) -> catalog::Event {
        catalog::Event {
            status: status as i32,
            sale_starts_at: Some(prost_types::Timestamp { seconds: 1_000, nanos: 0 }),
            sale_ends_at: Some(prost_types::Timestamp { seconds: 2_000, nanos: 0 }),
            waiting_room: room,
            ..Default::default()
        }
    }

    #[test]
    fn only_an_enabled_room_with_a_rate_needs_a_pass() {
        let on = Some(catalog::WaitingRoom { enabled: true, admission_per_minute: 600 });
        let sale = Sale::from(&event(catalog::EventStatus::OnSale, on));
        assert_eq!((sale.rate, sale.selling, sale.opens_at.timestamp()), (Some(600), true, 1_000));
        let off = Some(catalog::WaitingRoom { enabled: false, admission_per_minute: 600 });
        assert_eq!(Sale::from(&event(catalog::EventStatus::OnSale, off)).rate, None);
        assert_eq!(Sale::from(&event(catalog::EventStatus::OnSale, None)).rate, None);
        assert!(!Sale::from(&event(catalog::EventStatus::Cancelled, on)).selling);
    }

    #[test]
    fn a_pass_is_bound_to_its_buyer_and_event_and_expires() {
        let passes = Passes::new("a-test-secret-of-at-least-thirty-two-bytes");
        let (user, event) = (Uuid::new_v4(), Uuid::new_v4());
        let exp = (Utc::now().timestamp() + 60) as u64;
        let pass = passes.sign(user, event, "ticket-1", exp);
        assert_eq!(pass, passes.sign(user, event, "ticket-1", exp), "polls repeat the same pass");
        let claims = passes.verify(&pass, user, event).unwrap();
        assert_eq!((claims.jti.as_str(), claims.exp, claims.aud.as_str()), ("ticket-1", exp, PASS_AUDIENCE));

        let kind = |r: Result<PassClaims, Problem>| r.unwrap_err().kind.rsplit('/').next().unwrap().to_owned();
        assert_eq!(kind(passes.verify(&pass, Uuid::new_v4(), event)), "admission-pass-invalid");
        assert_eq!(kind(passes.verify(&pass, user, Uuid::new_v4())), "admission-pass-invalid");
        let forged = Passes::new("another-secret-of-at-least-thirty-two-bytes").sign(user, event, "t", exp);
        assert_eq!(kind(passes.verify(&forged, user, event)), "admission-pass-invalid");
        assert_eq!(kind(passes.verify("garbage", user, event)), "admission-pass-invalid");
        let old = passes.sign(user, event, "ticket-1", (Utc::now().timestamp() - 1) as u64);
        let expired = passes.verify(&old, user, event).unwrap_err();
        assert_eq!((expired.status, expired.kind.ends_with("/admission-pass-expired")), (403, true));
    }
}
