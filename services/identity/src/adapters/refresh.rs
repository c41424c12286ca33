//! Refresh tokens in Redis: opaque, stored hashed, rotated on every use.
//!
//! A token is `<family id>.<secret>`. A family is one login: the hash of its
//! current secret plus the set of hashes it has rotated away from. Presenting
//! a rotated secret again means it was stolen or replayed: the whole family is
//! deleted, which logs out every holder of that login.
//!
//! A family is also a session the user can see and end: it records when it began, when it
//! was last refreshed and the client's address and user agent at login, and each user's
//! families are indexed in a set (`rt:user:<user>`), pruned of ended families as it is read.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use ticketing_platform::redis::Connection;

/// Where a login came from, as the trusted edge told identity.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The client's address.
    pub address: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// A live family, as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The family id.
    pub id: String,
    /// The login.
    pub created_at: DateTime<Utc>,
    /// The last rotation, or the login.
    pub last_used_at: DateTime<Utc>,
    /// The client's address at login, if known.
    pub address: Option<String>,
    /// The client's user agent at login, if known.
    pub user_agent: Option<String>,
}

/// A freshly issued refresh token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The family (session) it starts.
    pub session: String,
    /// What the client keeps.
    pub token: String,
    /// When the family (and so this token) expires.
    pub expires_in: Duration,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Valid: here is the user and the next token.
    Rotated {
        /// The family's user.
        user_id: uuid::Uuid,
        /// The family (session).
        session: String,
        /// The replacement token.
        token: String,
        /// Time left in the family.
        expires_in: Duration,
    },
    /// A rotated token came back: the family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// The refresh-token store.
#[derive(Clone)]
pub struct RefreshTokens {
    redis: Connection,
    prefix: String,
    ttl: Duration,
}

static ROTATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local current = redis.call('HGET', KEYS[1], 'current')
if current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'current', ARGV[2], 'used', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[1])
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('PEXPIRE', KEYS[2], ttl)
  return {1, redis.call('HGET', KEYS[1], 'user'), ttl}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {2}
end
return {0}
",
    )
});

/// Deletes the family if it belongs to the user ARGV[1]; 1 if it did.
static END_SESSION: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HGET', KEYS[1], 'user') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
",
    )
});

static REVOKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'current')
if current == ARGV[1] or redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  local user = redis.call('HGET', KEYS[1], 'user')
  redis.call('DEL', KEYS[1], KEYS[2])
  return user
end
return false
",
    )
});

impl RefreshTokens {
    /// A store under `prefix` whose families live `ttl`.
    pub fn new(redis: Connection, prefix: &str, ttl: Duration) -> Self {
        Self { redis, prefix: prefix.to_owned(), ttl }
    }

    /// Starts a new family (a login) for `user_id` from `origin`.
    pub async fn issue(&self, user_id: uuid::Uuid, origin: &Origin) -> anyhow::Result<Issued> {
        let family = uuid::Uuid::new_v4().simple().to_string();
        let (secret, hash) = secret();
        let (family_key, _) = self.keys(&family);
        let (now, user) = (now_ms().to_string(), user_id.to_string());
        let mut fields = vec![("current", hash.as_str()), ("user", &user), ("created", &now), ("used", &now)];
        fields.extend(origin.address.as_deref().map(|a| ("ip", a)));
        fields.extend(origin.user_agent.as_deref().map(|ua| ("ua", ua)));
        let ttl = self.ttl.as_millis() as i64;
        let mut conn = self.redis.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(&family_key, &fields)
            .pexpire(&family_key, ttl)
            .exec_async(&mut conn)
            .await
            .context("storing a refresh token")?;
        // Not in the family's transaction: the index is on another cluster slot. A family
        // missing from it still works; it only does not show in the list.
        let index = self.index(user_id);
        redis::pipe()
            .sadd(&index, &family)
            .pexpire(&index, ttl)
            .exec_async(&mut conn)
            .await
            .context("indexing a session")?;
        Ok(Issued { token: format!("{family}.{secret}"), session: family, expires_in: self.ttl })
    }

    /// The live sessions of `user_id`; ended ones are pruned from the index.
    pub async fn sessions(&self, user_id: uuid::Uuid) -> anyhow::Result<Vec<Session>> {
        let index = self.index(user_id);
        let mut conn = self.redis.clone();
        let families: Vec<String> = redis::cmd("SMEMBERS").arg(&index).query_async(&mut conn).await?;
        let (mut live, mut ended) = (Vec::new(), Vec::new());
        for family in families {
            let fields: HashMap<String, String> =
                redis::cmd("HGETALL").arg(self.keys(&family).0).query_async(&mut conn).await?;
            if fields.get("user") != Some(&user_id.to_string()) {
                ended.push(family);
                continue;
            }
            let at = |name: &str| {
                let ms = fields.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
                DateTime::from_timestamp_millis(ms).unwrap_or_default()
            };
            live.push(Session {
                created_at: at("created"),
                last_used_at: at("used"),
                address: fields.get("ip").cloned(),
                user_agent: fields.get("ua").cloned(),
                id: family,
            });
        }
        if !ended.is_empty() {
            let _: i64 = redis::cmd("SREM").arg(&index).arg(&ended).query_async(&mut conn).await?;
        }
        live.sort_by(|a, b| b.last_used_at.cmp(&a.last_used_at).then_with(|| a.id.cmp(&b.id)));
        Ok(live)
    }

    /// Ends `user_id`'s session `id`; `false` if they have no such session.
    pub async fn end_session(&self, user_id: uuid::Uuid, id: &str) -> anyhow::Result<bool> {
        if !is_family(id) {
            return Ok(false);
        }
        let (family_key, used_key) = self.keys(id);
        let mut conn = self.redis.clone();
        let ended: i64 = END_SESSION
            .key(&family_key)
            .key(&used_key)
            .arg(user_id.to_string())
            .invoke_async(&mut conn)
            .await
            .context("ending a session")?;
        let _: i64 = redis::cmd("SREM").arg(self.index(user_id)).arg(id).query_async(&mut conn).await?;
        Ok(ended == 1)
    }

    /// Ends every session of `user_id` but `keep`; returns how many ended.
    pub async fn end_sessions(&self, user_id: uuid::Uuid, keep: Option<&str>) -> anyhow::Result<usize> {
        let mut ended = 0;
        for session in self.sessions(user_id).await? {
            if Some(session.id.as_str()) != keep && self.end_session(user_id, &session.id).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Whether `id` is a live session of `user_id`.
    pub async fn is_live(&self, user_id: uuid::Uuid, id: &str) -> anyhow::Result<bool> {
        if !is_family(id) {
            return Ok(false);
        }
        let mut conn = self.redis.clone();
        let owner: Option<String> = redis::cmd("HGET").arg(self.keys(id).0).arg("user").query_async(&mut conn).await?;
        Ok(owner == Some(user_id.to_string()))
    }

    /// Rotates `token`: it stops working and a new one is returned.
    pub async fn rotate(&self, token: &str) -> anyhow::Result<Rotation> {
        let Some((family, presented)) = parse(token) else { return Ok(Rotation::Invalid) };
        let (family_key, used_key) = self.keys(family);
        let (next_secret, next_hash) = secret();
        let mut conn = self.redis.clone();
        let reply: Vec<redis::Value> = ROTATE
            .key(&family_key)
            .key(&used_key)
            .arg(hash(presented))
            .arg(&next_hash)
            .arg(now_ms())
            .invoke_async(&mut conn)
            .await
            .context("rotating a refresh token")?;
        let status: i64 = reply.first().map(redis::from_redis_value).transpose()?.unwrap_or(0);
        Ok(match status {
            1 => {
                let user: String = redis::from_redis_value(&reply[1])?;
                let ttl_ms: i64 = redis::from_redis_value(&reply[2])?;
                Rotation::Rotated {
                    user_id: user.parse().context("stored user id")?,
                    session: family.to_owned(),
                    token: format!("{family}.{next_secret}"),
                    expires_in: Duration::from_millis(ttl_ms.max(0) as u64),
                }
            }
            2 => Rotation::Reused,
            _ => Rotation::Invalid,
        })
    }

    /// Revokes the family of `token` (logout). Unknown tokens are ignored.
    pub async fn revoke(&self, token: &str) -> anyhow::Result<()> {
        let Some((family, presented)) = parse(token) else { return Ok(()) };
        let (family_key, used_key) = self.keys(family);
        let mut conn = self.redis.clone();
        let user: Option<String> = REVOKE
            .key(&family_key)
            .key(&used_key)
            .arg(hash(presented))
            .invoke_async(&mut conn)
            .await
            .context("revoking a refresh token family")?;
        if let Some(user) = user.and_then(|u| u.parse().ok()) {
            let _: i64 = redis::cmd("SREM").arg(self.index(user)).arg(family).query_async(&mut conn).await?;
        }
        Ok(())
    }

    /// The family's hash and used-set keys; the hash tag keeps both on one cluster slot.
    fn keys(&self, family: &str) -> (String, String) {
        let base = format!("{}rt:{{{family}}}", self.prefix);
        (base.clone(), format!("{base}:used"))
    }

    /// The set of `user_id`'s families.
    fn index(&self, user_id: uuid::Uuid) -> String {
        // Under `rt:`, the namespace identity's Redis user may touch (ADR 0031); a family's
        // key is `rt:{<hex>}`, so no family can be named like an index.
        format!("{}rt:user:{user_id}", self.prefix)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn is_family(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new random secret and its hash.
fn secret() -> (String, String) {
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = hash(&secret);
    (secret, hash)
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits a token into a well-formed family id and secret.
fn parse(token: &str) -> Option<(&str, &str)> {
    let (family, secret) = token.split_once('.')?;
    let family_ok = is_family(family);
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (family_ok && secret_ok).then_some((family, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_parse() {
        let (s, _) = secret();
        let family = uuid::Uuid::new_v4().simple().to_string();
        assert!(parse(&format!("{family}.{s}")).is_some());
        assert!(parse("").is_none());
        assert!(parse(&format!("{family}{s}")).is_none());
        assert!(parse(&format!("{{x}}.{s}")).is_none());
        assert!(parse(&format!("{family}.{s}x")).is_none());
    }
}
