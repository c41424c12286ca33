//! The IANA time zones Postgres knows, loaded once and cached.
//!
//! Postgres ships the IANA database and every `timestamptz` conversion uses it, so it is the
//! authority on which names are valid, and the catalog needs no time-zone crate of its own.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::sync::OnceCell;

/// The known zone names.
#[derive(Clone)]
pub struct TimeZones {
    pool: PgPool,
    names: Arc<OnceCell<HashSet<String>>>,
}

impl TimeZones {
    /// Zones from `pool`'s server, fetched on first use (the pool may not be reachable at start).
    pub fn new(pool: PgPool) -> Self {
        Self { pool, names: Arc::new(OnceCell::new()) }
    }

    /// Whether `name` is a zone, e.g. `Europe/Berlin`.
    pub async fn contains(&self, name: &str) -> anyhow::Result<bool> {
        let names = self
            .names
            .get_or_try_init(|| async {
                // The posix/ and right/ trees duplicate every zone with other leap-second rules.
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM pg_timezone_names WHERE name NOT LIKE 'posix/%' AND name NOT LIKE 'right/%'",
                )
                .fetch_all(&self.pool)
                .await
                .context("loading the time zone names")?;
                anyhow::Ok(names.into_iter().collect::<HashSet<_>>())
            })
            .await?;
        Ok(names.contains(name))
    }
}
