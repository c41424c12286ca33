//! The queue's state in Redis: one event's keys, the two scripts that change them
//! atomically (`visit.lua`, `consume.lua`), and their replies, read once here.

use chrono::{DateTime, Utc};
use redis::{FromRedisValue, RedisResult, Value};
use ticketing_platform::redis::{Connection, LazyConnection};
use uuid::Uuid;

use super::RoomError;

/// The keys `visit.lua` takes, in its order.
const VISIT_KEYS: [&str; 7] = ["tickets", "owners", "early", "positions", "last", "passes", "joined"];

/// What a visit to the queue asks of it.
pub struct Visit<'a> {
    /// The buyer.
    pub user: Uuid,
    /// Join with `ticket` (a new one; joining again keeps the first), or look `ticket` up.
    pub join: bool,
    pub ticket: &'a str,
    /// Whether the sale has opened: the first visit after it shuffles the early joiners.
    pub opened: bool,
    /// Positions admitted by now.
    pub admitted: u64,
    /// The expiry (unix seconds) of a pass handed out now.
    pub pass_expiry: u64,
    /// When the event's keys may go.
    pub keep_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// What `visit.lua` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visited {
    /// The ticket: the one looked up, or the buyer's (new or first) one.
    pub ticket: String,
    /// The ticket's owner (user id); `None`: no such ticket.
    pub owner: Option<String>,
    /// Its position; 0 before the queue opened.
    pub position: u64,
    /// The ticket joined now.
    pub created: bool,
    /// Its pass's expiry (unix seconds); 0 until it is admitted.
    pub pass_expiry: u64,
    /// Whether this visit admitted the ticket.
    pub admitted: Admitted,
}

/// Whether a visit admitted its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Not by this visit: not yet, or before.
    NotNow,
    /// Now, the ticket having joined at this instant (`None` if unknown).
    Now(Option<DateTime<Utc>>),
}

impl FromRedisValue for Visited {
    fn from_redis_value(v: &Value) -> RedisResult<Self> {
        let (ticket, owner, position, created, pass_expiry, admitted): (String, String, u64, u8, u64, i64) =
            redis::from_redis_value(v)?;
        Ok(Self {
            ticket,
            owner: Some(owner).filter(|o| !o.is_empty()),
            position,
            created: created == 1,
            pass_expiry,
            admitted: match admitted {
                0 => Admitted::NotNow,
                joined => Admitted::Now(DateTime::from_timestamp_millis(joined).filter(|_| joined > 0)),
            },
        })
    }
}

/// What `consume.lua` made of a pass's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Marked used now.
    Fresh,
    /// Used before with the same idempotency key: a replay of that use.
    Replay,
    /// Used before.
    Used,
}

impl FromRedisValue for Consumed {
    fn from_redis_value(v: &Value) -> RedisResult<Self> {
        match u8::from_redis_value(v)? {
            1 => Ok(Self::Fresh),
            2 => Ok(Self::Replay),
            0 => Ok(Self::Used),
            other => Err((redis::ErrorKind::TypeError, "consume.lua's reply", other.to_string()).into()),
        }
    }
}

/// Every event's queue, under one key prefix.
#[derive(Clone)]
pub struct Queue {
    redis: LazyConnection,
    prefix: String,
    visit: redis::Script,
    consume: redis::Script,
    timer: prometheus::Histogram,
}

impl Queue {
    /// Queues over `redis` with their keys under `prefix`, visits timed by `timer`.
    pub fn new(redis: LazyConnection, prefix: &str, timer: prometheus::Histogram) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            visit: redis::Script::new(include_str!("visit.lua")),
            consume: redis::Script::new(include_str!("consume.lua")),
            timer,
        }
    }

    fn connection(&self) -> Result<Connection, RoomError> {
        self.redis.get().ok_or(RoomError::NoRedis)
    }

    fn key(&self, event: Uuid, name: &str) -> String {
        // The braces are a Redis Cluster hash tag: one event's keys live on one shard, as the
        // scripts need.
        format!("{}waiting-room:{{{event}}}:{name}", self.prefix)
    }

    /// Joins or looks up a ticket in `event`'s queue (see `visit.lua`).
    pub async fn visit(&self, event: Uuid, visit: Visit<'_>) -> Result<Visited, RoomError> {
        let keys = VISIT_KEYS.map(|name| self.key(event, name));
        let _timer = self.timer.start_timer();
        Ok(self
            .visit
            .key(&keys[..])
            .arg(visit.user.to_string())
            .arg(if visit.join { "join" } else { "look" })
            .arg(visit.ticket)
            .arg(u8::from(visit.opened))
            .arg(format!("{:032x}", rand::random::<u128>()))
            .arg(visit.keep_until.timestamp_millis())
            .arg(visit.admitted)
            .arg(visit.pass_expiry)
            .arg(visit.now.timestamp_millis())
            .invoke_async(&mut self.connection()?)
            .await?)
    }

    /// The key marking the pass of `event`'s `ticket` used.
    pub fn used_key(&self, event: Uuid, ticket: &str) -> String {
        self.key(event, &format!("used:{ticket}"))
    }

    /// Marks a pass used under `key` until `expiry` (unix seconds) by a hold with
    /// `idempotency_key` (empty without one), whose replays it lets through.
    pub async fn consume(&self, key: &str, idempotency_key: &str, expiry: u64) -> Result<Consumed, RoomError> {
        let marker = if idempotency_key.is_empty() { "-".to_owned() } else { format!("key:{idempotency_key}") };
        Ok(self
            .consume
            .key(key)
            .arg(marker)
            .arg(expiry.saturating_mul(1000))
            .invoke_async(&mut self.connection()?)
            .await?)
    }

    /// Gives back the pass marked used under `key`.
    pub async fn give_back(&self, key: &str) -> Result<(), RoomError> {
        Ok(redis::cmd("DEL").arg(key).query_async::<()>(&mut self.connection()?).await?)
    }

    /// The last position given in `event`'s queue (none before it opened) and the number of
    /// early joiners; `None` while Redis is not connected.
    pub async fn counts(&self, event: Uuid) -> RedisResult<Option<(Option<u64>, u64)>> {
        let Some(mut redis) = self.redis.get() else { return Ok(None) };
        let counts =
            redis::pipe().get(self.key(event, "last")).scard(self.key(event, "early")).query_async(&mut redis).await?;
        Ok(Some(counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(owner: &str, created: i64, admitted: i64) -> Value {
        let field = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        Value::Array(vec![
            field("t-1"),
            field(owner),
            Value::Int(3),
            Value::Int(created),
            Value::Int(1_700_000_000),
            Value::Int(admitted),
        ])
    }

    #[test]
    fn a_visit_reply_names_unknown_tickets_and_admissions() {
        let found = Visited::from_redis_value(&reply("u-1", 1, 1_699_999_000_000)).unwrap();
        assert_eq!(
            found,
            Visited {
                ticket: "t-1".into(),
                owner: Some("u-1".into()),
                position: 3,
                created: true,
                pass_expiry: 1_700_000_000,
                admitted: Admitted::Now(DateTime::from_timestamp_millis(1_699_999_000_000)),
            }
        );
        let unknown = Visited::from_redis_value(&reply("", 0, 0)).unwrap();
        assert_eq!((unknown.owner, unknown.created, unknown.admitted), (None, false, Admitted::NotNow));
        let joined_unknown = Visited::from_redis_value(&reply("u-1", 0, -1)).unwrap();
        assert_eq!(joined_unknown.admitted, Admitted::Now(None));
        assert!(Visited::from_redis_value(&Value::Int(1)).is_err());
    }

    #[test]
    fn a_consume_reply_is_fresh_a_replay_or_used() {
        let consumed = |n| Consumed::from_redis_value(&Value::Int(n));
        assert_eq!(
            (consumed(1).unwrap(), consumed(2).unwrap(), consumed(0).unwrap()),
            (Consumed::Fresh, Consumed::Replay, Consumed::Used)
        );
        assert!(consumed(3).is_err());
    }
}
