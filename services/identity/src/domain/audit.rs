//! The audit log's entries and their hash chain (ADR 0046): pure, so the chain's rules are
//! tested without a database.
//!
//! Entry n's hash is SHA-256(entry n-1's hash || the canonical bytes of entry n's fields).
//! The canonical form is fixed here and nowhere else: integers big-endian, instants as
//! microseconds since the epoch (what Postgres keeps), each text length-prefixed, so no two
//! different entries share bytes.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash before the first entry, when retention has removed none.
pub const GENESIS: Hash = [0; 32];

/// An entry's recorded fields: what the producing service said, and when identity kept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The record's id.
    pub id: Uuid,
    /// When the action happened (to the microsecond).
    pub occurred_at: DateTime<Utc>,
    /// When identity appended it (to the microsecond).
    pub recorded_at: DateTime<Utc>,
    /// The producing service.
    pub service: String,
    /// Who acted.
    pub actor_id: Uuid,
    /// Their roles.
    pub actor_roles: Vec<String>,
    /// `<target type>.<verb>`.
    pub action: String,
    /// The target's type.
    pub target_type: String,
    /// The target's id.
    pub target_id: String,
    /// The client's address, as the edge named it.
    pub client_address: String,
    /// The client's `User-Agent`, as the edge named it.
    pub user_agent: String,
    /// The caller's peer address.
    pub peer_address: String,
    /// The target before, JSON.
    pub before: String,
    /// The target after, JSON.
    pub after: String,
    /// The request's trace id.
    pub trace_id: String,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place: 1, 2, 3…
    pub seq: i64,
    /// What it records.
    pub fields: Fields,
    /// The previous entry's hash.
    pub prev_hash: Hash,
    /// Its own.
    pub hash: Hash,
}

/// An instant as the log keeps it: to the microsecond.
pub fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

impl Fields {
    /// The bytes the hash covers, with the entry's `seq` (so entries cannot be reordered).
    pub fn canonical(&self, seq: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.before.len() + self.after.len());
        out.extend_from_slice(b"ticketing.audit.v1\0");
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.occurred_at.timestamp_micros().to_be_bytes());
        out.extend_from_slice(&self.recorded_at.timestamp_micros().to_be_bytes());
        text(&mut out, &self.service);
        out.extend_from_slice(self.actor_id.as_bytes());
        out.extend_from_slice(&(self.actor_roles.len() as u32).to_be_bytes());
        for role in &self.actor_roles {
            text(&mut out, role);
        }
        for field in [
            &self.action,
            &self.target_type,
            &self.target_id,
            &self.client_address,
            &self.user_agent,
            &self.peer_address,
            &self.before,
            &self.after,
            &self.trace_id,
        ] {
            text(&mut out, field);
        }
        out
    }

    /// The entry these fields make at `seq` after an entry hashed `prev_hash`.
    pub fn chain(self, seq: i64, prev_hash: Hash) -> Entry {
        let hash = link(&prev_hash, &self.canonical(seq));
        Entry { seq, fields: self, prev_hash, hash }
    }
}

fn text(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn link(prev_hash: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Why an entry does not chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// An entry is missing before it (its seq skips).
    #[error("entry {expected} is missing (found {found} next)")]
    Gap {
        /// The seq that should have come.
        expected: i64,
        /// The seq that came.
        found: i64,
    },
    /// Its `prev_hash` is not the previous entry's hash (one before it was altered or removed).
    #[error("its prev_hash is not the previous entry's hash")]
    Unlinked,
    /// Its hash does not match its fields (it was altered).
    #[error("its hash does not match its fields")]
    Altered,
}

/// A walk along the chain, fed entries in seq order from where it starts.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The last entry that chained (or the anchor).
    pub head_seq: i64,
    /// Its hash.
    pub head_hash: Hash,
    /// Entries checked so far.
    pub checked: i64,
}

impl Walk {
    /// A walk from the anchor `(seq, hash)`.
    pub fn from_anchor(seq: i64, hash: Hash) -> Self {
        Self { head_seq: seq, head_hash: hash, checked: 0 }
    }

    /// Checks that `entry` continues the chain, and moves on to it.
    pub fn step(&mut self, entry: &Entry) -> Result<(), Break> {
        if entry.seq != self.head_seq + 1 {
            return Err(Break::Gap { expected: self.head_seq + 1, found: entry.seq });
        }
        if entry.prev_hash != self.head_hash {
            return Err(Break::Unlinked);
        }
        if link(&entry.prev_hash, &entry.fields.canonical(entry.seq)) != entry.hash {
            return Err(Break::Altered);
        }
        self.head_seq = entry.seq;
        self.head_hash = entry.hash;
        self.checked += 1;
        Ok(())
    }
}

/// A query of the log: filters combined with AND, newest first, a page after `before_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Entries of this actor.
    pub actor_id: Option<Uuid>,
    /// Entries about targets of this type…
    pub target_type: Option<String>,
    /// …and this id.
    pub target_id: Option<String>,
    /// Entries of this action.
    pub action: Option<String>,
    /// Occurred at or after.
    pub from: Option<DateTime<Utc>>,
    /// Occurred before.
    pub to: Option<DateTime<Utc>>,
    /// Entries before this seq (the cursor).
    pub before_seq: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// The tag of the log's cursors, so another listing's cursor is refused.
const CURSOR_TAG: &str = "audit";

/// A query's raw parts, as a request carries them (empty for absent).
#[derive(Debug, Clone, Default)]
pub struct RawQuery<'a> {
    /// A UUID.
    pub actor_id: &'a str,
    /// `[a-z_]`, at most 40.
    pub target_type: &'a str,
    /// At most 200 characters; needs `target_type`.
    pub target_id: &'a str,
    /// `[a-z_.]`, at most 80.
    pub action: &'a str,
    /// Bounds.
    pub from: Option<DateTime<Utc>>,
    /// Bounds.
    pub to: Option<DateTime<Utc>>,
    /// An opaque cursor from a previous page.
    pub cursor: &'a str,
    /// 0 for the default.
    pub limit: u32,
}

impl RawQuery<'_> {
    /// The query, or every field that is wrong.
    pub fn validate(&self) -> Result<Query, Vec<crate::domain::FieldViolation>> {
        use crate::domain::FieldViolation;
        let mut bad = Vec::new();
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let actor_id = match self.actor_id {
            "" => None,
            raw => Uuid::parse_str(raw).map_err(|_| bad.push(FieldViolation::new("actor_id", "must be a UUID"))).ok(),
        };
        let word = |s: &str, extra: char, max: usize| {
            s.len() <= max && s.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == extra)
        };
        if !word(self.target_type, '_', 40) {
            bad.push(FieldViolation::new("target_type", "must be at most 40 of a-z and _"));
        }
        if self.target_id.chars().count() > 200 {
            bad.push(FieldViolation::new("target_id", "must be at most 200 characters"));
        } else if !self.target_id.is_empty() && self.target_type.is_empty() {
            bad.push(FieldViolation::new("target_id", "needs target_type"));
        }
        if !word(self.action, '.', 80) {
            bad.push(FieldViolation::new("action", "must be at most 80 of a-z, _ and ."));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            bad.push(FieldViolation::new("to", "must be after from"));
        }
        let before_seq = match ticketing_platform::page::decode(self.cursor) {
            Ok(None) => None,
            Ok(Some(text)) => text
                .strip_prefix(CURSOR_TAG)
                .and_then(|rest| rest.strip_prefix('|'))
                .and_then(|seq| seq.parse::<i64>().ok())
                .or_else(|| {
                    bad.push(FieldViolation::new("cursor", ticketing_platform::page::MALFORMED));
                    None
                }),
            Err(e) => {
                bad.push(FieldViolation::new("cursor", e));
                None
            }
        };
        if !bad.is_empty() {
            return Err(bad);
        }
        Ok(Query {
            actor_id,
            target_type: non_empty(self.target_type),
            target_id: non_empty(self.target_id),
            action: non_empty(self.action),
            from: self.from,
            to: self.to,
            before_seq,
            limit: ticketing_platform::page::page_size(self.limit),
        })
    }
}

/// The opaque cursor of the page after the entry `seq`.
pub fn cursor(seq: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}|{seq}"))
}

/// Hex, for showing hashes.
pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(action: &str) -> Fields {
        let at = to_micros(Utc::now());
        Fields {
            id: Uuid::now_v7(),
            occurred_at: at,
            recorded_at: at,
            service: "catalog".into(),
            actor_id: Uuid::now_v7(),
            actor_roles: vec!["organizer".into()],
            action: action.into(),
            target_type: "event".into(),
            target_id: "e1".into(),
            client_address: "192.0.2.1".into(),
            user_agent: "curl/8".into(),
            peer_address: "10.0.0.1".into(),
            before: r#"{"status":"draft"}"#.into(),
            after: r#"{"status":"published"}"#.into(),
            trace_id: String::new(),
        }
    }

    fn chain(n: usize) -> Vec<Entry> {
        let mut prev = GENESIS;
        (1..=n as i64)
            .map(|seq| {
                let entry = fields("event.published").chain(seq, prev);
                prev = entry.hash;
                entry
            })
            .collect()
    }

    fn walk(entries: &[Entry], from: (i64, Hash)) -> Result<Walk, (i64, Break)> {
        let mut walk = Walk::from_anchor(from.0, from.1);
        for entry in entries {
            walk.step(entry).map_err(|b| (entry.seq, b))?;
        }
        Ok(walk)
    }

    #[test]
    fn an_untouched_chain_verifies_to_its_head() {
        let entries = chain(4);
        let walk = walk(&entries, (0, GENESIS)).unwrap();
        assert_eq!((walk.head_seq, walk.head_hash, walk.checked), (4, entries[3].hash, 4));
    }

    #[test]
    fn an_altered_field_breaks_its_entry() {
        let mut entries = chain(3);
        entries[1].fields.after = r#"{"status":"cancelled"}"#.into();
        assert_eq!(walk(&entries, (0, GENESIS)).unwrap_err(), (2, Break::Altered));
    }

    #[test]
    fn a_rehashed_altered_entry_breaks_the_next_one() {
        let mut entries = chain(3);
        entries[1].fields.actor_roles = vec!["admin".into()];
        entries[1] = entries[1].fields.clone().chain(2, entries[0].hash);
        assert_eq!(walk(&entries, (0, GENESIS)).unwrap_err(), (3, Break::Unlinked));
    }

    #[test]
    fn a_removed_entry_is_a_gap_and_reordering_breaks_the_hash() {
        let mut entries = chain(3);
        entries.remove(1);
        assert_eq!(walk(&entries, (0, GENESIS)).unwrap_err(), (3, Break::Gap { expected: 2, found: 3 }));

        let mut entries = chain(2);
        entries[1].seq = 1;
        entries[1].prev_hash = GENESIS;
        assert_eq!(walk(&entries[1..], (0, GENESIS)).unwrap_err(), (1, Break::Altered));
    }

    #[test]
    fn a_walk_starts_from_the_retention_anchor() {
        let entries = chain(5);
        let anchor = (entries[1].seq, entries[1].hash);
        assert_eq!(walk(&entries[2..], anchor).unwrap().checked, 3);
        assert!(walk(&entries[2..], (0, GENESIS)).is_err());
    }

    #[test]
    fn queries_are_validated_and_cursors_round_trip() {
        let query =
            RawQuery { target_type: "event", target_id: "e1", cursor: &cursor(42), limit: 500, ..Default::default() };
        let query = query.validate().unwrap();
        assert_eq!(query.before_seq, Some(42));
        assert_eq!(query.limit, ticketing_platform::page::MAX_PAGE_SIZE);
        assert_eq!(query.target_id.as_deref(), Some("e1"));

        let now = Utc::now();
        let bad = RawQuery {
            actor_id: "nobody",
            target_type: "Event!",
            target_id: "e1",
            action: "drop table",
            from: Some(now),
            to: Some(now),
            cursor: "%%",
            limit: 0,
        };
        let fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["actor_id", "target_type", "action", "to", "cursor"]);
        let orphan = RawQuery { target_id: "e1", ..Default::default() }.validate().unwrap_err();
        assert_eq!(orphan[0].field, "target_id");
    }

    #[test]
    fn fields_cannot_shift_into_each_other() {
        let mut a = fields("x");
        let mut b = a.clone();
        (a.target_type, a.target_id) = ("ab".into(), "c".into());
        (b.target_type, b.target_id) = ("a".into(), "bc".into());
        assert_ne!(a.canonical(1), b.canonical(1));
        assert_eq!(hex(&[0, 171]), "00ab");
    }
}
