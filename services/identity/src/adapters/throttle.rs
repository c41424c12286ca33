//! Login attempt counters in Redis, per account and per client address.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use ticketing_platform::redis::Connection;

use crate::domain::throttle::LoginPolicy;

/// Refuses an attempt while either key is delayed or locked; otherwise counts it as a
/// failure up front and applies the penalty that failure would earn, all atomically.
///
/// KEYS: account key, then optionally the client-address key.
/// ARGV: now (ms), failure window (ms), address lockout threshold, lockout (ms),
/// then the account penalty per failure count (0 none, >0 delay ms, <0 lockout ms).
static BEGIN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local now = tonumber(ARGV[1])
local wait = 0
for _, key in ipairs(KEYS) do
  for _, until_ms in ipairs(redis.call('HMGET', key, 'not_before', 'locked_until')) do
    if until_ms then wait = math.max(wait, tonumber(until_ms) - now) end
  end
end
if wait > 0 then return wait end
local window, lockout = tonumber(ARGV[2]), tonumber(ARGV[4])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local penalty = tonumber(ARGV[4 + math.min(failures, #ARGV - 4)])
local keep = window
if penalty > 0 then
  redis.call('HSET', KEYS[1], 'not_before', now + penalty)
elseif penalty < 0 then
  redis.call('HSET', KEYS[1], 'locked_until', now - penalty)
  keep = math.max(keep, -penalty)
end
redis.call('PEXPIRE', KEYS[1], keep)
if KEYS[2] then
  local keep_ip = window
  if redis.call('HINCRBY', KEYS[2], 'failures', 1) >= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[2], 'locked_until', now + lockout)
    keep_ip = math.max(keep_ip, lockout)
  end
  redis.call('PEXPIRE', KEYS[2], keep_ip)
end
return 0
",
    )
});

/// The throttle store.
#[derive(Clone)]
pub struct LoginThrottle {
    redis: Connection,
    prefix: String,
    policy: LoginPolicy,
    penalties: Vec<i64>,
}

impl LoginThrottle {
    /// A store under `prefix` applying `policy`.
    pub fn new(redis: Connection, prefix: &str, policy: LoginPolicy) -> Self {
        let penalties = policy.account_penalty_table();
        Self { redis, prefix: prefix.to_owned(), policy, penalties }
    }

    /// Starts an attempt for `account` from `ip`. `Some(wait)` refuses it; `None` admits it,
    /// already counted as a failure until [`Self::succeeded`] says otherwise.
    pub async fn begin(&self, account: &str, ip: Option<&str>) -> anyhow::Result<Option<Duration>> {
        let mut script = BEGIN.prepare_invoke();
        script.key(self.account_key(account));
        if let Some(ip) = ip {
            script.key(self.ip_key(ip));
        }
        script
            .arg(now_ms())
            .arg(self.policy.failure_window.as_millis() as u64)
            .arg(self.policy.ip_lockout_failures)
            .arg(self.policy.lockout_duration.as_millis() as u64)
            .arg(&self.penalties);
        let mut conn = self.redis.clone();
        let wait: i64 = script.invoke_async(&mut conn).await.context("starting a login attempt")?;
        Ok((wait > 0).then(|| Duration::from_millis(wait as u64)))
    }

    /// Undoes the up-front failure of an attempt that succeeded: the account starts afresh
    /// and the address gets its count back.
    pub async fn succeeded(&self, account: &str, ip: Option<&str>) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        pipe.del(self.account_key(account));
        if let Some(ip) = ip {
            pipe.hincr(self.ip_key(ip), "failures", -1);
        }
        let mut conn = self.redis.clone();
        pipe.exec_async(&mut conn).await.context("resetting login throttle")?;
        Ok(())
    }

    /// Keyed by a hash, so Redis holds no email addresses.
    fn account_key(&self, account: &str) -> String {
        let digest: String = Sha256::digest(account.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}login:acct:{digest}", self.prefix)
    }

    fn ip_key(&self, ip: &str) -> String {
        format!("{}login:ip:{ip}", self.prefix)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
