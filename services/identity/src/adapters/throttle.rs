//! Login failure counters in Redis, per account and per client address.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::domain::throttle::{LoginPolicy, Penalty};

/// The throttle store.
#[derive(Clone)]
pub struct LoginThrottle {
    redis: ConnectionManager,
    prefix: String,
    policy: LoginPolicy,
}

impl LoginThrottle {
    /// A store under `prefix` applying `policy`.
    pub fn new(redis: ConnectionManager, prefix: &str, policy: LoginPolicy) -> Self {
        Self { redis, prefix: prefix.to_owned(), policy }
    }

    /// How long until `account` may try again from `ip`; `None` when it may now.
    pub async fn blocked_for(&self, account: &str, ip: Option<&str>) -> anyhow::Result<Option<Duration>> {
        let mut conn = self.redis.clone();
        let now = now_ms();
        let mut wait = 0u64;
        for key in self.keys(account, ip) {
            let (not_before, locked_until): (Option<u64>, Option<u64>) =
                conn.hget(&key, &["not_before", "locked_until"]).await.context("reading login throttle")?;
            for until in [not_before, locked_until].into_iter().flatten() {
                wait = wait.max(until.saturating_sub(now));
            }
        }
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    /// Counts a failed attempt and applies the resulting penalties.
    pub async fn record_failure(&self, account: &str, ip: Option<&str>) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        let now = now_ms();
        for (i, key) in self.keys(account, ip).into_iter().enumerate() {
            let failures: u32 = conn.hincr(&key, "failures", 1).await.context("counting a login failure")?;
            let penalty = if i == 0 { self.policy.account_penalty(failures) } else { self.policy.ip_penalty(failures) };
            let mut keep = self.policy.failure_window;
            match penalty {
                Penalty::None => {}
                Penalty::Delay(d) => {
                    let _: () = conn.hset(&key, "not_before", now + d.as_millis() as u64).await?;
                }
                Penalty::Lockout(d) => {
                    let _: () = conn.hset(&key, "locked_until", now + d.as_millis() as u64).await?;
                    keep = keep.max(d);
                }
            }
            let _: () = conn.pexpire(&key, keep.as_millis() as i64).await?;
        }
        Ok(())
    }

    /// Forgets the account's failures after a successful login (the address keeps its count).
    pub async fn record_success(&self, account: &str) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        let _: () = conn.del(self.account_key(account)).await.context("resetting login throttle")?;
        Ok(())
    }

    fn keys(&self, account: &str, ip: Option<&str>) -> Vec<String> {
        let mut keys = vec![self.account_key(account)];
        if let Some(ip) = ip {
            keys.push(format!("{}login:ip:{ip}", self.prefix));
        }
        keys
    }

    /// Keyed by a hash, so Redis holds no email addresses.
    fn account_key(&self, account: &str) -> String {
        let digest: String = Sha256::digest(account.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}login:acct:{digest}", self.prefix)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
