//! Browsing events: the validated filters of ListEvents.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event::{EventStatus, instant};
use super::page::{EventCursor, page_size};
use super::{CatalogError, Violations, text};

const QUERY_MAX: usize = 200;

/// A ListEvents request as received.
#[derive(Debug, Clone, Default)]
pub struct EventSearchInput {
    /// Free text; empty matches all.
    pub query: String,
    /// Events starting at or after this.
    pub starts_from: Option<DateTime<Utc>>,
    /// Events starting before this.
    pub starts_before: Option<DateTime<Utc>>,
    /// Empty means any venue.
    pub venue_id: String,
    /// Empty means any organizer.
    pub organizer_id: String,
    /// Empty means PUBLISHED and ON_SALE.
    pub statuses: Vec<EventStatus>,
    /// From a previous page; empty for the first.
    pub cursor: String,
    /// Page size; 0 means the default.
    pub limit: u32,
}

/// Validated ListEvents filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSearch {
    /// Free text (Postgres `websearch_to_tsquery` syntax); empty matches all.
    pub query: String,
    /// Lower bound of `starts_at`, inclusive.
    pub starts_from: Option<DateTime<Utc>>,
    /// Upper bound of `starts_at`, exclusive.
    pub starts_before: Option<DateTime<Utc>>,
    /// Only this venue.
    pub venue_id: Option<Uuid>,
    /// Only this organizer.
    pub organizer_id: Option<Uuid>,
    /// Allowed statuses, never empty.
    pub statuses: Vec<EventStatus>,
    /// Start after this key.
    pub after: Option<EventCursor>,
    /// Page size.
    pub limit: u32,
}

impl EventSearchInput {
    /// Checks every filter, reporting all problems at once.
    pub fn validate(self) -> Result<EventSearch, CatalogError> {
        let mut v = Violations::default();
        let query = v.check("query", text::line(&self.query, QUERY_MAX));
        let starts_from = v.check("starts_from", self.starts_from.map(instant).transpose());
        let starts_before = v.check("starts_before", self.starts_before.map(instant).transpose());
        let venue_id = v.check("venue_id", text::optional_id(&self.venue_id));
        let organizer_id = v.check("organizer_id", text::optional_id(&self.organizer_id));
        let after = v.check("page.cursor", EventCursor::decode(&self.cursor));
        if let (Some(Some(from)), Some(Some(before))) = (starts_from, starts_before)
            && before <= from
        {
            v.add("starts_before", "must be after starts_from");
        }
        let mut statuses = self.statuses;
        statuses.sort_by_key(|s| s.as_str());
        statuses.dedup();
        if statuses.is_empty() {
            statuses = vec![EventStatus::Published, EventStatus::OnSale];
        }
        match (query, starts_from, starts_before, venue_id, organizer_id, after) {
            (Some(query), Some(starts_from), Some(starts_before), Some(venue_id), Some(organizer_id), Some(after))
                if v.is_empty() =>
            {
                Ok(EventSearch {
                    query,
                    starts_from,
                    starts_before,
                    venue_id,
                    organizer_id,
                    statuses,
                    after,
                    limit: page_size(self.limit),
                })
            }
            _ => Err(v.into_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::page::MAX_PAGE_SIZE;

    #[test]
    fn an_empty_request_lists_public_events_with_the_default_page() {
        let search = EventSearchInput::default().validate().unwrap();
        assert_eq!(search.statuses, [EventStatus::Published, EventStatus::OnSale]);
        assert_eq!((search.query.as_str(), search.after, search.venue_id), ("", None, None));
        let big = EventSearchInput { limit: 1_000, ..EventSearchInput::default() }.validate().unwrap();
        assert_eq!(big.limit, MAX_PAGE_SIZE);
    }

    #[test]
    fn bad_filters_are_all_reported() {
        let now = Utc::now();
        let input = EventSearchInput {
            query: "rock\0".into(),
            starts_from: Some(now),
            starts_before: Some(now - Duration::hours(1)),
            venue_id: "venue".into(),
            cursor: "!!".into(),
            ..EventSearchInput::default()
        };
        let CatalogError::Invalid(list) = input.validate().unwrap_err() else { panic!("not Invalid") };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["query", "venue_id", "page.cursor", "starts_before"]);
    }
}
