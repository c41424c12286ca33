//! Login attempt counters in Redis: per account and client address, per account, and per
//! client address (ADR 0026).

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use ticketing_platform::redis::Connection;

use crate::domain::throttle::{LoginPolicy, Ramp};

/// Refuses an attempt, returning the wait, while any key's `not_before` is in the future;
/// otherwise counts it as a failure on every key up front and sets the delay each count
/// earns, all atomically.
///
/// KEYS: the counters. ARGV: now (ms), failure window (ms), then per key its free
/// failures, the number n of its delays and those n delays (ms), the last repeating.
static BEGIN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local now = tonumber(ARGV[1])
local wait = 0
for _, key in ipairs(KEYS) do
  local not_before = redis.call('HGET', key, 'not_before')
  if not_before then wait = math.max(wait, tonumber(not_before) - now) end
end
if wait > 0 then return wait end
local at = 3
for _, key in ipairs(KEYS) do
  local free, n = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  local counted = redis.call('HINCRBY', key, 'failures', 1) - free
  if counted > 0 then
    redis.call('HSET', key, 'not_before', now + tonumber(ARGV[at + 1 + math.min(counted, n)]))
  end
  redis.call('PEXPIRE', key, ARGV[2])
  at = at + 2 + n
end
return 0
",
    )
});

/// Undoes an attempt's up-front failure: deletes the first key, takes one failure off the
/// others (a key that expired meanwhile is not brought back, forever, at -1).
static SUCCEEDED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  if redis.call('HINCRBY', KEYS[i], 'failures', -1) < 0 then redis.call('DEL', KEYS[i]) end
end
",
    )
});

/// The throttle store.
#[derive(Clone)]
pub struct LoginThrottle {
    redis: Connection,
    prefix: String,
    window: Duration,
    /// The pair's, the account's and the address's schedules, in the order of the keys.
    ramps: [Ramp; 3],
}

impl LoginThrottle {
    /// A store under `prefix` applying `policy`.
    pub fn new(redis: Connection, prefix: &str, policy: &LoginPolicy) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            window: policy.failure_window,
            ramps: [policy.pair(), policy.account(), policy.address()],
        }
    }

    /// Starts an attempt for `account` from `ip`. `Some(wait)` refuses it; `None` admits it,
    /// already counted as a failure until [`Self::succeeded`] says otherwise.
    pub async fn begin(&self, account: &str, ip: &str) -> anyhow::Result<Option<Duration>> {
        let mut script = BEGIN.prepare_invoke();
        script.arg(now_ms()).arg(millis(self.window));
        for (key, ramp) in self.keys(account, ip).into_iter().zip(&self.ramps) {
            script
                .key(key)
                .arg(ramp.free)
                .arg(ramp.delays.len())
                .arg(ramp.delays.iter().map(|d| millis(*d)).collect::<Vec<_>>());
        }
        let mut conn = self.redis.clone();
        let wait: i64 = script.invoke_async(&mut conn).await.context("starting a login attempt")?;
        Ok((wait > 0).then(|| Duration::from_millis(wait as u64)))
    }

    /// Undoes the up-front failure of an attempt that succeeded: the owner's own typos from
    /// this address are forgiven; the account and the address get their count back, but
    /// keep what others failed on them.
    pub async fn succeeded(&self, account: &str, ip: &str) -> anyhow::Result<()> {
        let mut script = SUCCEEDED.prepare_invoke();
        for key in self.keys(account, ip) {
            script.key(key);
        }
        let mut conn = self.redis.clone();
        script.invoke_async::<()>(&mut conn).await.context("resetting login throttle")?;
        Ok(())
    }

    /// The pair's, the account's and the address's keys. Accounts are keyed by a hash, so
    /// Redis holds no email addresses.
    fn keys(&self, account: &str, ip: &str) -> [String; 3] {
        let digest: String = Sha256::digest(account.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect();
        let prefix = &self.prefix;
        [
            format!("{prefix}login:pair:{digest}:{ip}"),
            format!("{prefix}login:acct:{digest}"),
            format!("{prefix}login:ip:{ip}"),
        ]
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
