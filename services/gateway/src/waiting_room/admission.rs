//! The queue's clock: who is admitted when, from an event's rate and opening alone (no
//! worker moves the line), and where a ticket stands. Pure arithmetic, no Redis.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ticketing_proto::catalog::v1 as catalog;

use super::Standing;
use crate::routes::common::instant;

/// What the gateway needs of an event's sale, cached per replica for a few seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sale {
    /// Buyers admitted per minute; `None`: no waiting room, holds need no pass.
    pub rate: Option<u32>,
    /// When the queue opens (the sale start); early joiners are shuffled then.
    pub opens_at: DateTime<Utc>,
    /// The sale's end.
    pub closes_at: DateTime<Utc>,
    /// Published or on sale, with a sale window: the queue takes buyers.
    pub selling: bool,
}

impl From<&catalog::Event> for Sale {
    fn from(e: &catalog::Event) -> Self {
        let room = e.waiting_room.filter(|r| r.enabled && r.admission_per_minute > 0);
        let (opens_at, closes_at) = (instant(e.sale_starts_at), instant(e.sale_ends_at));
        let listed = matches!(e.status(), catalog::EventStatus::Published | catalog::EventStatus::OnSale);
        Self {
            rate: room.map(|r| r.admission_per_minute),
            opens_at: opens_at.unwrap_or(DateTime::UNIX_EPOCH),
            closes_at: closes_at.unwrap_or(DateTime::UNIX_EPOCH),
            selling: listed && opens_at.is_some() && closes_at.is_some(),
        }
    }
}

impl Sale {
    /// The clock of the sale's waiting room; `None` when it has none.
    pub fn schedule(&self) -> Option<Schedule> {
        self.rate.map(|rate| Schedule { rate, opens_at: self.opens_at })
    }
}

/// A waiting room's clock: its rate from its opening on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Buyers admitted per minute.
    pub rate: u32,
    /// When the first position is admitted.
    pub opens_at: DateTime<Utc>,
}

impl Schedule {
    /// Whether the queue has opened at `now`: positions are given from then on.
    pub fn opened(&self, now: DateTime<Utc>) -> bool {
        now >= self.opens_at
    }

    /// Positions admitted by `now`; none before opening.
    pub fn admitted_by(&self, now: DateTime<Utc>) -> u64 {
        if self.opened(now) { admitted(self.rate, positive(now - self.opens_at)) } else { 0 }
    }

    /// Buyers in the queue at `now`: positions issued (`last`) minus those admitted; before
    /// opening (no `last` yet), the `early` joiners.
    pub fn length(&self, last: Option<u64>, early: u64, now: DateTime<Utc>) -> i64 {
        let waiting = match last {
            Some(last) => last.saturating_sub(admitted(self.rate, positive(now - self.opens_at))),
            None => early,
        };
        i64::try_from(waiting).unwrap_or(i64::MAX)
    }

    /// Where a ticket stands at `now`, and how long until the opening (waiting) or its turn
    /// (queued): its `position` (0 for none yet) and the expiry of its pass (unix seconds, 0
    /// for none yet). `sign` makes the pass of an admitted ticket.
    pub fn standing(
        &self,
        position: u64,
        pass_expiry: u64,
        now: DateTime<Utc>,
        sign: impl FnOnce() -> String,
    ) -> (Standing, Option<u64>, Duration) {
        let position = Some(position).filter(|p| self.opened(now) && *p > 0);
        let expires_at = i64::try_from(pass_expiry).ok().and_then(|exp| DateTime::from_timestamp(exp, 0));
        let (standing, wait) = match (position, expires_at) {
            (None, _) => (Standing::Waiting, positive(self.opens_at - now)),
            (Some(p), _) if pass_expiry == 0 => {
                (Standing::Queued, positive(self.opens_at + admitted_after(self.rate, p) - now))
            }
            (Some(_), Some(expires_at)) if expires_at > now => {
                (Standing::Admitted { pass: sign(), expires_at }, Duration::ZERO)
            }
            (Some(_), _) => (Standing::Expired, Duration::ZERO),
        };
        (standing, position, wait)
    }
}

/// Positions admitted `elapsed` after opening: the first at opening, then one every 60/rate s.
pub fn admitted(rate: u32, elapsed: Duration) -> u64 {
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    1 + ms.saturating_mul(u64::from(rate)) / 60_000
}

/// How long after opening `position` (from 1) is admitted: the inverse of [`admitted`].
pub fn admitted_after(rate: u32, position: u64) -> Duration {
    Duration::from_millis(position.saturating_sub(1).saturating_mul(60_000).div_ceil(u64::from(rate.max(1))))
}

/// A span of time that may be negative, as a duration that is not: zero for the past.
fn positive(d: chrono::TimeDelta) -> Duration {
    d.to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_runs_at_the_rate_and_the_wait_is_its_inverse() {
        let rate = 120; // two a second
        assert_eq!(admitted(rate, Duration::ZERO), 1, "the first buyer goes in at opening");
        assert_eq!(admitted(rate, Duration::from_millis(499)), 1);
        assert_eq!(admitted(rate, Duration::from_millis(500)), 2);
        assert_eq!(admitted(rate, Duration::from_secs(1)), 3);
        assert_eq!(admitted(rate, Duration::from_secs(60)), 121);
        for p in [1, 2, 3, 10, 121, 1_000_001] {
            let at = admitted_after(rate, p);
            assert!(admitted(rate, at) >= p, "{p} is admitted at {at:?}");
            if !at.is_zero() {
                assert!(admitted(rate, at - Duration::from_millis(1)) < p, "{p} is not admitted before {at:?}");
            }
        }
        assert_eq!(admitted_after(7, 2), Duration::from_millis(8_572), "rounded up to the millisecond");
        assert_eq!(admitted(1_000_000, Duration::from_secs(365 * 86_400)), 525_600_000_001, "no overflow");
    }

    fn event(status: catalog::EventStatus, room: Option<catalog::WaitingRoom>) -> catalog::Event {
        catalog::Event {
            status: status as i32,
            sale_starts_at: Some(prost_types::Timestamp { seconds: 1_000, nanos: 0 }),
            sale_ends_at: Some(prost_types::Timestamp { seconds: 2_000, nanos: 0 }),
            waiting_room: room,
            ..Default::default()
        }
    }

    #[test]
    fn only_an_enabled_room_with_a_rate_needs_a_pass() {
        let on = Some(catalog::WaitingRoom { enabled: true, admission_per_minute: 600 });
        let sale = Sale::from(&event(catalog::EventStatus::OnSale, on));
        assert_eq!((sale.rate, sale.selling, sale.opens_at.timestamp()), (Some(600), true, 1_000));
        assert_eq!(sale.schedule(), Some(Schedule { rate: 600, opens_at: sale.opens_at }));
        let off = Some(catalog::WaitingRoom { enabled: false, admission_per_minute: 600 });
        assert_eq!(Sale::from(&event(catalog::EventStatus::OnSale, off)).rate, None);
        assert_eq!(Sale::from(&event(catalog::EventStatus::OnSale, None)).schedule(), None);
        assert!(!Sale::from(&event(catalog::EventStatus::Cancelled, on)).selling);
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("a valid instant")
    }

    #[test]
    fn nobody_is_admitted_before_opening_and_the_line_shortens_at_the_rate() {
        let room = Schedule { rate: 60, opens_at: at(1_000) };
        assert_eq!(room.admitted_by(at(999)), 0);
        assert_eq!(room.admitted_by(at(1_000)), 1);
        assert_eq!(room.admitted_by(at(1_009)), 10);
        assert_eq!(room.length(None, 7, at(999)), 7, "before opening: the early joiners");
        assert_eq!(room.length(Some(25), 0, at(1_009)), 15);
        assert_eq!(room.length(Some(25), 0, at(2_000)), 0, "never negative");
    }

    #[test]
    fn a_ticket_waits_for_the_opening_then_its_turn_then_holds_until_its_pass_expires() {
        let room = Schedule { rate: 60, opens_at: at(1_000) };
        let sign = || "pass".to_owned();
        assert_eq!(room.standing(0, 0, at(990), sign), (Standing::Waiting, None, Duration::from_secs(10)));
        assert_eq!(
            room.standing(4, 0, at(990), sign),
            (Standing::Waiting, None, Duration::from_secs(10)),
            "no position before opening, even if one was given"
        );
        assert_eq!(room.standing(4, 0, at(1_001), sign), (Standing::Queued, Some(4), Duration::from_secs(2)));
        let admitted = Standing::Admitted { pass: "pass".into(), expires_at: at(1_100) };
        assert_eq!(room.standing(4, 1_100, at(1_003), sign), (admitted, Some(4), Duration::ZERO));
        assert_eq!(room.standing(4, 1_100, at(1_100), sign), (Standing::Expired, Some(4), Duration::ZERO));
    }
}
