//! Keyset pagination shared by the services' list calls: page sizes, the next
//! cursor, and an opaque cursor for listings sorted by `(time, id)`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

/// Page size when the request names none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page; bigger requests are trimmed to it.
pub const MAX_PAGE_SIZE: u32 = 100;

/// What a malformed cursor is told.
pub const MALFORMED: &str = "is not a cursor returned by this listing";

/// The page size for a requested `limit` (0 means the default).
pub fn page_size(limit: u32) -> u32 {
    if limit == 0 { DEFAULT_PAGE_SIZE } else { limit.min(MAX_PAGE_SIZE) }
}

/// Trims `rows` (fetched with one extra) to `limit` and returns the cursor of the next page,
/// made from the last row kept, when there is one.
pub fn next_cursor<T>(rows: &mut Vec<T>, limit: u32, cursor: impl FnOnce(&T) -> String) -> Option<String> {
    let limit = limit as usize;
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(cursor)
}

/// The text inside an opaque cursor; `None` for an empty one (the first page).
pub fn decode(raw: &str) -> Result<Option<String>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| MALFORMED)?;
    String::from_utf8(bytes).map(Some).map_err(|_| MALFORMED.into())
}

/// Where a page of a listing sorted by `(time, id)` ends. The tag names the listing,
/// so a cursor of one listing is refused by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeCursor {
    /// The last row's time.
    pub at: DateTime<Utc>,
    /// The last row's id.
    pub id: uuid::Uuid,
}

impl TimeCursor {
    /// The opaque form: URL-safe base64 of `<tag>|<µs since the epoch>|<id>`.
    pub fn encode(&self, tag: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{tag}|{}|{}", self.at.timestamp_micros(), self.id))
    }

    /// Parses an opaque cursor of the `tag` listing; `None` for an empty one.
    pub fn decode(raw: &str, tag: &str) -> Result<Option<Self>, String> {
        let Some(text) = decode(raw)? else { return Ok(None) };
        let mut parts = text.splitn(3, '|');
        let (Some(found), Some(micros), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(MALFORMED.into());
        };
        if found != tag {
            return Err(MALFORMED.into());
        }
        let at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).ok_or(MALFORMED)?;
        let id = uuid::Uuid::parse_str(id).map_err(|_| MALFORMED)?;
        Ok(Some(Self { at, id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(10_000), MAX_PAGE_SIZE);
    }

    #[test]
    fn a_next_cursor_exists_only_when_a_row_was_left_over() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_cursor(&mut rows, 3, |n| n.to_string()), None);
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!(next_cursor(&mut rows, 2, |n| n.to_string()), Some("2".into()));
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn time_cursors_round_trip_and_refuse_other_listings() {
        let cursor = TimeCursor {
            at: DateTime::from_timestamp_micros(1_900_000_000_123_456).unwrap(),
            id: uuid::Uuid::now_v7(),
        };
        let encoded = cursor.encode("b1");
        assert!(encoded.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{encoded}");
        assert_eq!(TimeCursor::decode(&encoded, "b1").unwrap(), Some(cursor));
        assert_eq!(TimeCursor::decode("", "b1").unwrap(), None);
        assert!(TimeCursor::decode(&encoded, "e1").is_err());
        for bad in ["%%%", &URL_SAFE_NO_PAD.encode("b1|soon|x"), &URL_SAFE_NO_PAD.encode([0xff, 0xfe])] {
            assert!(TimeCursor::decode(bad, "b1").is_err(), "{bad:?} was accepted");
        }
    }
}
