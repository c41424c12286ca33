//! What the pre-scaler knows of each event's sale, folded from `catalog.events`: when it
//! opens, when it ends, and the demand to expect. Pure: the tests feed it events directly.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ticketing_platform::events::{PayloadError, dispatch};
use ticketing_proto::events::v1::{
    Envelope, EventCancelled, EventClosed, EventPublished, EventSaleStarted, EventUpdated,
};

/// One event's sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    /// When the sale opens (or opened, if it was started early by hand).
    pub starts_at: DateTime<Utc>,
    /// When it closes, if it has an end.
    pub ends_at: Option<DateTime<Utc>>,
    /// Tickets on sale: the sum of the categories' capacities.
    pub capacity: u64,
    /// The waiting room's admission rate per minute; 0 without a waiting room.
    pub admission_per_minute: u32,
    /// Closed or cancelled: no more buyers are coming.
    pub over: bool,
    /// The catalog's version of the event this reflects.
    pub version: u64,
}

impl Sale {
    /// Buyers per minute to expect at the rush: the waiting room admits exactly its rate;
    /// without one, every ticket is fought over within `rush_minutes`.
    pub fn demand_per_minute(&self, rush_minutes: u64) -> u64 {
        if self.admission_per_minute > 0 {
            u64::from(self.admission_per_minute)
        } else {
            self.capacity.div_ceil(rush_minutes.max(1)).max(1)
        }
    }
}

/// The sales of every event that has one, by event id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    sales: HashMap<String, Sale>,
    /// The capacity of events published without a sale time yet, for the update that sets one.
    unscheduled: HashMap<String, u64>,
}

fn instant(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    at.and_then(ticketing_kernel::time::from_proto)
}

impl Schedule {
    /// The known sales.
    pub fn sales(&self) -> impl Iterator<Item = (&str, &Sale)> {
        self.sales.iter().map(|(id, sale)| (id.as_str(), sale))
    }

    /// Folds one envelope from `catalog.events` in; `Ok(true)` when the schedule changed.
    /// Types it does not need are skipped; a payload that does not decode is an error.
    pub fn apply(&mut self, envelope: &Envelope) -> Result<bool, PayloadError> {
        let changed = dispatch(envelope)
            .on(|published: EventPublished| self.published(&published))
            .on(|updated: EventUpdated| self.updated(&updated))
            .on(|started: EventSaleStarted| self.sale_started(&started, instant(envelope.occurred_at.as_ref())))
            .on(|closed: EventClosed| self.over(&closed.event_id, closed.version))
            .on(|cancelled: EventCancelled| self.over(&cancelled.event_id, cancelled.version))
            .decoded()?;
        Ok(changed.unwrap_or(false))
    }

    /// An event was published; without a sale start it has nothing to pre-scale.
    pub fn published(&mut self, event: &EventPublished) -> bool {
        let capacity = event.categories.iter().map(|c| u64::from(c.capacity)).sum();
        let Some(starts_at) = instant(event.sale_starts_at.as_ref()) else {
            self.unscheduled.insert(event.event_id.clone(), capacity);
            return false;
        };
        let sale = Sale {
            starts_at,
            ends_at: instant(event.sale_ends_at.as_ref()),
            capacity,
            admission_per_minute: event.admission_per_minute,
            over: false,
            version: event.version,
        };
        self.put(&event.event_id, sale)
    }

    /// A published event's times or waiting room changed (categories never do).
    pub fn updated(&mut self, event: &EventUpdated) -> bool {
        let capacity = match (self.sales.get(&event.event_id), self.unscheduled.get(&event.event_id)) {
            (Some(known), _) => known.capacity,
            (None, Some(capacity)) => *capacity,
            (None, None) => return false,
        };
        let Some(starts_at) = instant(event.sale_starts_at.as_ref()) else {
            // The sale time was taken away: nothing to pre-scale until one is set again.
            self.unscheduled.insert(event.event_id.clone(), capacity);
            return self.sales.remove(&event.event_id).is_some();
        };
        let over = self.sales.get(&event.event_id).is_some_and(|s| s.over);
        let sale = Sale {
            starts_at,
            ends_at: instant(event.sale_ends_at.as_ref()),
            capacity,
            admission_per_minute: event.admission_per_minute,
            over,
            version: event.version,
        };
        self.unscheduled.remove(&event.event_id);
        self.put(&event.event_id, sale)
    }

    /// The sale opened, possibly early by hand: the rush starts when it really opened.
    pub fn sale_started(&mut self, event: &EventSaleStarted, occurred_at: Option<DateTime<Utc>>) -> bool {
        let Some(known) = self.sales.get(&event.event_id) else { return false };
        let planned = instant(event.sale_starts_at.as_ref()).unwrap_or(known.starts_at);
        let starts_at = occurred_at.map_or(planned, |at| at.min(planned));
        let sale = Sale { starts_at, version: event.version, ..known.clone() };
        self.put(&event.event_id, sale)
    }

    /// The sale closed or the event was cancelled.
    pub fn over(&mut self, event_id: &str, version: u64) -> bool {
        let Some(known) = self.sales.get(event_id) else { return false };
        let sale = Sale { over: true, version, ..known.clone() };
        self.put(event_id, sale)
    }

    /// Stores `sale` unless what is known is newer (a redelivered older event).
    fn put(&mut self, event_id: &str, sale: Sale) -> bool {
        match self.sales.get(event_id) {
            Some(known) if known.version > sale.version || *known == sale => false,
            _ => {
                self.sales.insert(event_id.to_owned(), sale);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketing_proto::events::v1::CategorySnapshot;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn published(version: u64) -> EventPublished {
        let category = |capacity| CategorySnapshot { capacity, ..Default::default() };
        EventPublished {
            event_id: "e1".into(),
            sale_starts_at: ts(1_000),
            sale_ends_at: ts(9_000),
            categories: vec![category(600), category(400)],
            version,
            ..Default::default()
        }
    }

    #[test]
    fn a_published_event_is_a_sale_with_its_capacity() {
        let mut schedule = Schedule::default();
        assert!(schedule.published(&published(1)));
        let sale = schedule.sales().next().unwrap().1.clone();
        assert_eq!((sale.starts_at, sale.ends_at, sale.capacity), (at(1_000), Some(at(9_000)), 1_000));
        // Without a waiting room the capacity is fought over within the rush.
        assert_eq!(sale.demand_per_minute(30), 34);
        // Redelivered: nothing changes.
        assert!(!schedule.published(&published(1)));
    }

    #[test]
    fn updates_move_the_sale_and_set_the_waiting_room_but_older_versions_do_not() {
        let mut schedule = Schedule::default();
        schedule.published(&published(1));
        let update = EventUpdated {
            event_id: "e1".into(),
            sale_starts_at: ts(2_000),
            admission_per_minute: 1_200,
            version: 3,
            ..Default::default()
        };
        assert!(schedule.updated(&update));
        let sale = schedule.sales().next().unwrap().1.clone();
        assert_eq!((sale.starts_at, sale.ends_at, sale.capacity), (at(2_000), None, 1_000));
        assert_eq!(sale.demand_per_minute(30), 1_200, "the waiting room admits exactly its rate");
        assert!(!schedule.published(&published(2)), "an older version is ignored");
        assert_eq!(schedule.sales().next().unwrap().1.starts_at, at(2_000));
    }

    #[test]
    fn an_event_published_without_a_sale_time_is_scheduled_by_the_update_that_sets_one() {
        let mut schedule = Schedule::default();
        assert!(!schedule.published(&EventPublished { sale_starts_at: None, ..published(1) }));
        assert_eq!(schedule.sales().count(), 0);
        let update =
            EventUpdated { event_id: "e1".into(), sale_starts_at: ts(5_000), version: 2, ..Default::default() };
        assert!(schedule.updated(&update));
        let sale = schedule.sales().next().unwrap().1.clone();
        assert_eq!((sale.starts_at, sale.capacity), (at(5_000), 1_000), "the capacity from the publication");
        let unset = EventUpdated { sale_starts_at: None, version: 3, ..update };
        assert!(schedule.updated(&unset), "a sale time taken away unschedules it");
        assert_eq!(schedule.sales().count(), 0);
    }

    #[test]
    fn a_sale_started_early_by_hand_rushes_from_then_and_a_closed_one_is_over() {
        let mut schedule = Schedule::default();
        schedule.published(&published(1));
        let started =
            EventSaleStarted { event_id: "e1".into(), sale_starts_at: ts(1_000), version: 2, ..Default::default() };
        assert!(schedule.sale_started(&started, Some(at(700))));
        assert_eq!(schedule.sales().next().unwrap().1.starts_at, at(700));
        assert!(schedule.over("e1", 3));
        assert!(schedule.sales().next().unwrap().1.over);
        // Events the pre-scaler never saw published are not invented.
        assert!(!schedule.over("e2", 1));
        assert_eq!(schedule.sales().count(), 1);
    }

    #[test]
    fn envelopes_are_decoded_by_type_and_others_skipped() {
        let mut schedule = Schedule::default();
        let envelope = ticketing_platform::events::envelope("e1", &published(1));
        assert!(schedule.apply(&envelope).unwrap());
        let other = ticketing_platform::events::envelope("u1", &ticketing_proto::events::v1::UserRegistered::default());
        assert!(!schedule.apply(&other).unwrap());
        let broken = Envelope { payload: vec![0xff, 0xff], ..envelope };
        assert!(schedule.apply(&broken).is_err());
    }
}
