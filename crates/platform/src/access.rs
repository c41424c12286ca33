//! Each service's own Postgres role and Redis ACL user
//! (docs/adr/0031-a-role-and-a-user-per-service.md), so that a compromised service reaches
//! its own data and nothing else.
//!
//! The role, its password and its database are the ones the service's `database.url` names:
//! that URL is the one place they are written down, and [`bootstrap_database`] (the
//! `postgres` feature) makes Postgres agree with it, as an admin, before the service
//! migrates. The Redis user's rules come from [`redis_acl_rules`], its name and password
//! from the service's `redis.url`.

use anyhow::{Context as _, bail};
use sha2::Digest as _;

use crate::redis::RedisConfig;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::bootstrap_database;

/// A percent-encoded part of a URL.
fn decoded(part: &str) -> anyhow::Result<String> {
    Ok(percent_encoding::percent_decode_str(part).decode_utf8().context("a URL part is not UTF-8")?.into_owned())
}

/// The services that keep state in Redis and the key namespaces each owns under the
/// deployment's `redis.key_prefix`. The namespaces are disjoint: no service reads or writes
/// another's keys.
pub const REDIS_KEYSPACES: &[(&str, &[&str])] = &[
    ("gateway", &["ratelimit:", "waiting-room:"]),
    ("identity", &["rt:", "login:"]),
    // `{evt:<event>}` keeps an event's keys in one cluster slot.
    ("inventory", &["{evt:", "inventory:"]),
];

/// What every service user may run: all but the @dangerous commands (FLUSHALL, KEYS, CONFIG,
/// DEBUG, ACL, MONITOR, ...), and nothing that lists other services' key names (SCAN,
/// RANDOMKEY) or touches the scripts all users share (SCRIPT FLUSH, SCRIPT KILL). INFO, in
/// @dangerous, stays for the memory gauges ([`crate::redis::watch_memory`]).
const REDIS_COMMANDS: &[&str] =
    &["+@all", "-@dangerous", "+info", "-scan", "-randomkey", "-script|flush", "-script|kill"];

/// Commands a service needs beyond [`REDIS_COMMANDS`]: inventory finds an event's leftover
/// keys with SCAN when it rebuilds the event.
const REDIS_EXTRA_COMMANDS: &[(&str, &[&str])] = &[("inventory", &["+scan"])];

/// The keys and commands of `service`'s user: the namespaces of [`REDIS_KEYSPACES`] under
/// `key_prefix`, [`REDIS_COMMANDS`] and the service's extras; `None` when the service keeps
/// nothing in Redis.
fn redis_permissions(service: &str, key_prefix: &str) -> Option<Vec<String>> {
    let (_, namespaces) = REDIS_KEYSPACES.iter().find(|(name, _)| *name == service)?;
    let prefix = glob_escape(key_prefix);
    let extra = REDIS_EXTRA_COMMANDS.iter().filter(|(name, _)| *name == service).flat_map(|(_, c)| c.iter());
    let keys = namespaces.iter().map(|namespace| format!("~{prefix}{}*", glob_escape(namespace)));
    Some(keys.chain(REDIS_COMMANDS.iter().chain(extra).map(|c| (*c).to_owned())).collect())
}

/// The `ACL SETUSER <user>` rules for `service`'s user, which logs in with `password`, or
/// `None` when the service keeps nothing in Redis. They start with `reset`, so setting them
/// again replaces whatever the user had, and the password travels as its SHA-256. No
/// service uses pub/sub: no channel.
pub fn redis_acl_rules(service: &str, key_prefix: &str, password: &str) -> Option<Vec<String>> {
    let hash = sha2::Sha256::digest(password.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let head = ["reset".to_owned(), "on".to_owned(), format!("#{hash}"), "resetchannels".to_owned()];
    Some(head.into_iter().chain(redis_permissions(service, key_prefix)?).collect())
}

/// The same permissions as an ElastiCache access string (`aws_elasticache_user`), which
/// takes neither `reset` nor a password nor `resetchannels` (a new user there has no
/// channel anyway). `terraform/modules/eks/data.tf` holds these for the prefix `ticketing:`.
pub fn redis_access_string(service: &str, key_prefix: &str) -> Option<String> {
    Some(format!("on {}", redis_permissions(service, key_prefix)?.join(" ")))
}

/// Gives the user `config.url` names `service`'s rules ([`redis_acl_rules`]) and the URL's
/// password, as the admin at `admin_url` (over TLS with `config.ca_file` when it is
/// `rediss://`). Managed Redis that refuses ACL SETUSER (ElastiCache) takes the rules
/// from Terraform instead (docs/deploy.md).
pub async fn bootstrap_redis(admin_url: &str, service: &str, config: &RedisConfig) -> anyhow::Result<()> {
    let url = url::Url::parse(&config.url).context("parsing redis.url")?;
    let (user, password) = (decoded(url.username())?, url.password().map(decoded).transpose()?.unwrap_or_default());
    if user.is_empty() || user == "default" || password.is_empty() {
        bail!("redis.url must name the service's own user and its password (redis://user:password@host)");
    }
    let rules = redis_acl_rules(service, &config.key_prefix, &password)
        .with_context(|| format!("{service} keeps nothing in Redis"))?;
    let admin = RedisConfig { url: admin_url.to_owned(), ..config.clone() };
    let mut connection = crate::redis::client(&admin)?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis as the admin")?;
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg(rules)
        .query_async::<()>(&mut connection)
        .await
        .with_context(|| format!("ACL SETUSER {user}"))?;
    Ok(())
}

/// `s` matching itself only in a Redis glob pattern.
fn glob_escape(s: &str) -> String {
    s.chars().fold(String::with_capacity(s.len()), |mut out, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_reaches_its_own_namespaces_under_the_escaped_prefix() {
        let rules = redis_acl_rules("identity", "t[1]:", "pw").unwrap();
        let keys: Vec<&str> = rules.iter().filter(|r| r.starts_with('~')).map(String::as_str).collect();
        assert_eq!(keys, [r"~t\[1\]:rt:*", r"~t\[1\]:login:*"]);
        assert_eq!(rules[..2], ["reset", "on"]);
        assert_eq!(rules[3], "resetchannels");
        assert_eq!(rules[2].len(), 65, "the password's SHA-256, not the password");
        assert!(!rules.contains(&"+scan".to_owned()));
    }

    #[test]
    fn the_elasticache_users_in_terraform_have_these_rules() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../terraform/modules/eks/data.tf");
        let terraform = std::fs::read_to_string(path).expect("read the EKS module");
        for (service, _) in REDIS_KEYSPACES {
            let line = format!("{service:<9} = \"{}\"", redis_access_string(service, "ticketing:").unwrap());
            assert!(terraform.contains(&line), "terraform/modules/eks/data.tf lacks `{line}`");
        }
    }

    #[test]
    fn a_service_without_redis_has_no_user() {
        assert_eq!(redis_acl_rules("catalog", "p:", "pw"), None);
    }

    #[test]
    fn no_namespace_is_another_services_prefix() {
        let all: Vec<&str> = REDIS_KEYSPACES.iter().flat_map(|(_, n)| n.iter().copied()).collect();
        for a in &all {
            for b in all.iter().filter(|b| *b != a) {
                assert!(!b.starts_with(a), "{a} covers {b}");
            }
        }
    }
}
