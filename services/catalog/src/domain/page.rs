//! Keyset pagination: page sizes and opaque cursors.
//!
//! A cursor is the URL-safe base64 (no padding) of the last row's sort key, tagged with the
//! listing it belongs to and a format version: `e1|<starts_at µs since the epoch>|<event id>`
//! for events, `v1|<venue id>|<name>` for venues. Keys are unique (they end in or contain the
//! id), so pages never overlap or skip rows, however many rows share a start time or name.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use ticketing_platform::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, next_cursor, page_size};
use ticketing_platform::page::{MALFORMED, decode};

/// Where a page of events ends: events sort by `(starts_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    /// The last row's start.
    pub starts_at: DateTime<Utc>,
    /// The last row's id.
    pub id: Uuid,
}

/// Where a page of venues ends: venues sort by `(name, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueCursor {
    /// The last row's name.
    pub name: String,
    /// The last row's id.
    pub id: Uuid,
}

impl EventCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("e1|{}|{}", self.starts_at.timestamp_micros(), self.id))
    }

    /// Parses an opaque cursor; `None` for an empty one (the first page).
    pub fn decode(raw: &str) -> Result<Option<Self>, String> {
        let Some(text) = decode(raw)? else { return Ok(None) };
        let mut parts = text.splitn(3, '|');
        let (Some("e1"), Some(micros), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(MALFORMED.into());
        };
        let starts_at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).ok_or(MALFORMED)?;
        let id = Uuid::parse_str(id).map_err(|_| MALFORMED)?;
        Ok(Some(Self { starts_at, id }))
    }
}

impl VenueCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1|{}|{}", self.id, self.name))
    }

    /// Parses an opaque cursor; `None` for an empty one (the first page).
    pub fn decode(raw: &str) -> Result<Option<Self>, String> {
        let Some(text) = decode(raw)? else { return Ok(None) };
        let mut parts = text.splitn(3, '|');
        let (Some("v1"), Some(id), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(MALFORMED.into());
        };
        let id = Uuid::parse_str(id).map_err(|_| MALFORMED)?;
        Ok(Some(Self { name: name.to_owned(), id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_to_the_microsecond() {
        let starts_at = DateTime::from_timestamp_micros(1_900_000_000_123_456).unwrap();
        let cursor = EventCursor { starts_at, id: Uuid::now_v7() };
        let encoded = cursor.encode();
        assert!(encoded.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{encoded}");
        assert_eq!(EventCursor::decode(&encoded).unwrap(), Some(cursor));
        assert_eq!(EventCursor::decode("").unwrap(), None);

        let venue = VenueCursor { name: "Hall | with | pipes".into(), id: Uuid::new_v4() };
        assert_eq!(VenueCursor::decode(&venue.encode()).unwrap(), Some(venue));
    }

    #[test]
    fn malformed_or_foreign_cursors_are_refused() {
        let venue = VenueCursor { name: "Hall".into(), id: Uuid::new_v4() }.encode();
        let event = EventCursor { starts_at: Utc::now(), id: Uuid::new_v4() }.encode();
        for bad in ["%%%", "not base64!", &URL_SAFE_NO_PAD.encode("e1|soon|x"), &URL_SAFE_NO_PAD.encode([0xff, 0xfe])] {
            assert!(EventCursor::decode(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(EventCursor::decode(&venue).is_err(), "a venue cursor is not an event cursor");
        assert!(VenueCursor::decode(&event).is_err(), "an event cursor is not a venue cursor");
    }
}
