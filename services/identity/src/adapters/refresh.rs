//! Refresh tokens in Redis: opaque, stored hashed, rotated on every use.
//!
//! A token is `<family id>.<secret>`. A family is one login: the hash of its
//! current secret plus the set of hashes it has rotated away from. Presenting
//! a rotated secret again means it was stolen or replayed: the whole family is
//! deleted, which logs out every holder of that login.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use ticketing_platform::redis::Connection;

/// A freshly issued refresh token.
#[derive(Debug, Clone)]
pub struct Issued {
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
  redis.call('HSET', KEYS[1], 'current', ARGV[2])
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

static REVOKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'current')
if current == ARGV[1] or redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return redis.call('DEL', KEYS[1], KEYS[2])
end
return 0
",
    )
});

impl RefreshTokens {
    /// A store under `prefix` whose families live `ttl`.
    pub fn new(redis: Connection, prefix: &str, ttl: Duration) -> Self {
        Self { redis, prefix: prefix.to_owned(), ttl }
    }

    /// Starts a new family (a login) for `user_id`.
    pub async fn issue(&self, user_id: uuid::Uuid) -> anyhow::Result<Issued> {
        let family = uuid::Uuid::new_v4().simple().to_string();
        let (secret, hash) = secret();
        let (family_key, _) = self.keys(&family);
        let mut conn = self.redis.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(&family_key, &[("current", hash.as_str()), ("user", &user_id.to_string())])
            .pexpire(&family_key, self.ttl.as_millis() as i64)
            .exec_async(&mut conn)
            .await
            .context("storing a refresh token")?;
        Ok(Issued { token: format!("{family}.{secret}"), expires_in: self.ttl })
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
        let _: i64 = REVOKE
            .key(&family_key)
            .key(&used_key)
            .arg(hash(presented))
            .invoke_async(&mut conn)
            .await
            .context("revoking a refresh token family")?;
        Ok(())
    }

    /// The family's hash and used-set keys; the hash tag keeps both on one cluster slot.
    fn keys(&self, family: &str) -> (String, String) {
        let base = format!("{}rt:{{{family}}}", self.prefix);
        (base.clone(), format!("{base}:used"))
    }
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
    let family_ok = family.len() == 32 && family.bytes().all(|b| b.is_ascii_hexdigit());
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
