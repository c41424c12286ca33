//! The audit log in Postgres (`audit_log`, `audit_anchor`; ADR 0046): appends serialised by a
//! table lock, queries, the walk that verifies the chain, and retention.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use crate::domain::audit::{Entry, Fields, Hash, Query, Walk};

/// How many entries a verification reads at once.
const WALK_BATCH: i64 = 1_000;

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    service: String,
    actor_id: Uuid,
    actor_roles: Vec<String>,
    action: String,
    target_type: String,
    target_id: String,
    client_address: String,
    user_agent: String,
    peer_address: String,
    before: String,
    after: String,
    trace_id: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl From<Row> for Entry {
    fn from(r: Row) -> Self {
        let hash = |bytes: Vec<u8>| Hash::try_from(bytes.as_slice()).unwrap_or_default();
        Entry {
            seq: r.seq,
            fields: Fields {
                id: r.id,
                occurred_at: r.occurred_at,
                recorded_at: r.recorded_at,
                service: r.service,
                actor_id: r.actor_id,
                actor_roles: r.actor_roles,
                action: r.action,
                target_type: r.target_type,
                target_id: r.target_id,
                client_address: r.client_address,
                user_agent: r.user_agent,
                peer_address: r.peer_address,
                before: r.before,
                after: r.after,
                trace_id: r.trace_id,
            },
            prev_hash: hash(r.prev_hash),
            hash: hash(r.hash),
        }
    }
}

const COLUMNS: &str = "seq, id, occurred_at, recorded_at, service, actor_id, actor_roles, action, target_type, \
                       target_id, client_address, user_agent, peer_address, before, after, trace_id, prev_hash, hash";

/// Appends `fields` at the head of the chain, unless an entry with its id is there already.
/// Returns the entry appended, or `None` for a repeat. Appends wait for each other (the
/// table lock), so each takes the head the previous one left.
pub async fn append(tx: &mut PgConnection, fields: Fields) -> anyhow::Result<Option<Entry>> {
    // Conflicts with itself and with the row writes of retention; reads go on.
    sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    let seen: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_log WHERE id = $1)")
        .bind(fields.id)
        .fetch_one(&mut *tx)
        .await?;
    if seen {
        return Ok(None);
    }
    let (head_seq, head_hash) = head(&mut *tx).await?;
    let entry = fields.chain(head_seq + 1, head_hash);
    let f = &entry.fields;
    sqlx::query(
        "INSERT INTO audit_log (seq, id, occurred_at, recorded_at, service, actor_id, actor_roles, action,
                                target_type, target_id, client_address, user_agent, peer_address, before, after,
                                trace_id, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(entry.seq)
    .bind(f.id)
    .bind(f.occurred_at)
    .bind(f.recorded_at)
    .bind(&f.service)
    .bind(f.actor_id)
    .bind(&f.actor_roles)
    .bind(&f.action)
    .bind(&f.target_type)
    .bind(&f.target_id)
    .bind(&f.client_address)
    .bind(&f.user_agent)
    .bind(&f.peer_address)
    .bind(&f.before)
    .bind(&f.after)
    .bind(&f.trace_id)
    .bind(entry.prev_hash.as_slice())
    .bind(entry.hash.as_slice())
    .execute(&mut *tx)
    .await
    .context("appending to the audit log")?;
    Ok(Some(entry))
}

/// The last entry's seq and hash, or the anchor's when the log is empty.
async fn head(conn: &mut PgConnection) -> anyhow::Result<(i64, Hash)> {
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *conn).await?;
    let (seq, hash) = match last {
        Some(last) => last,
        None => anchor(conn).await.map(|(seq, hash)| (seq, hash.to_vec()))?,
    };
    Ok((seq, Hash::try_from(hash.as_slice()).context("a stored hash is not 32 bytes")?))
}

/// Where the chain starts: the last entry retention removed.
pub async fn anchor(conn: &mut PgConnection) -> anyhow::Result<(i64, Hash)> {
    let (seq, hash): (i64, Vec<u8>) = sqlx::query_as("SELECT seq, hash FROM audit_anchor").fetch_one(conn).await?;
    Ok((seq, Hash::try_from(hash.as_slice()).context("the anchor's hash is not 32 bytes")?))
}

/// One page of `query`, newest first, with one entry more than the page when there is more.
pub async fn list(pool: &PgPool, query: &Query) -> anyhow::Result<Vec<Entry>> {
    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_log WHERE true"));
    if let Some(actor) = query.actor_id {
        sql.push(" AND actor_id = ").push_bind(actor);
    }
    if let Some(kind) = &query.target_type {
        sql.push(" AND target_type = ").push_bind(kind);
    }
    if let Some(id) = &query.target_id {
        sql.push(" AND target_id = ").push_bind(id);
    }
    if let Some(action) = &query.action {
        sql.push(" AND action = ").push_bind(action);
    }
    if let Some(from) = query.from {
        sql.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = query.to {
        sql.push(" AND occurred_at < ").push_bind(to);
    }
    if let Some(before) = query.before_seq {
        sql.push(" AND seq < ").push_bind(before);
    }
    sql.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(query.limit) + 1);
    let rows: Vec<Row> = sql.build_query_as().fetch_all(pool).await.context("querying the audit log")?;
    Ok(rows.into_iter().map(Entry::from).collect())
}

/// What a verification found.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The anchor it started from.
    pub anchor: (i64, Hash),
    /// How far it got: the last entry that chained, and how many did.
    pub walk: Walk,
    /// The first entry that did not chain, and why.
    pub broken: Option<(i64, crate::domain::audit::Break)>,
}

/// Walks the chain from the anchor, in one repeatable-read snapshot so appends and
/// retention running meanwhile do not show as breaks.
pub async fn verify(pool: &PgPool) -> anyhow::Result<Verification> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let anchor = anchor(&mut tx).await?;
    let mut walk = Walk::from_anchor(anchor.0, anchor.1);
    let mut after = anchor.0;
    loop {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"))
                .bind(after)
                .bind(WALK_BATCH)
                .fetch_all(&mut *tx)
                .await
                .context("reading the audit log")?;
        let Some(last) = rows.last().map(|r| r.seq) else { break };
        for entry in rows.into_iter().map(Entry::from) {
            if let Err(reason) = walk.step(&entry) {
                return Ok(Verification { anchor, walk, broken: Some((entry.seq, reason)) });
            }
        }
        after = last;
    }
    Ok(Verification { anchor, walk, broken: None })
}

/// Removes the entries recorded before `cutoff`, oldest first, moving the anchor onto the
/// last one removed, so verification starts from it. Returns how many went.
pub async fn retain(pool: &PgPool, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    // A prefix only: the newest entry recorded before the cutoff, and everything before it.
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log WHERE recorded_at < $1 ORDER BY seq DESC LIMIT 1")
            .bind(cutoff)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((seq, hash)) = last else { return Ok(0) };
    // The anchor first: the trigger lets only entries it has passed be deleted.
    sqlx::query("UPDATE audit_anchor SET seq = $1, hash = $2, moved_at = now()")
        .bind(seq)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .context("moving the audit anchor")?;
    let removed = sqlx::query("DELETE FROM audit_log WHERE seq <= $1").bind(seq).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(removed.rows_affected())
}
