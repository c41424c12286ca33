//! From the schedule to one HPA's floor: which sales are in their window now, the floor
//! their demand needs, and what to do about the HPA as it is. Pure, so every rule has a test.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Target;
use crate::domain::schedule::{Sale, Schedule};

/// When the floors go up and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Before the sale opens.
    pub lead_time: Duration,
    /// After it opens.
    pub rush: Duration,
}

impl Window {
    fn span(&self, sale: &Sale) -> (DateTime<Utc>, DateTime<Utc>) {
        let from = sale.starts_at - chrono::Duration::from_std(self.lead_time).unwrap_or(chrono::TimeDelta::MAX);
        let rush_end = sale.starts_at + chrono::Duration::from_std(self.rush).unwrap_or(chrono::TimeDelta::MAX);
        let until = sale.ends_at.map_or(rush_end, |end| end.min(rush_end)).max(sale.starts_at);
        (from, until)
    }

    fn rush_minutes(&self) -> u64 {
        self.rush.as_secs().div_ceil(60)
    }

    /// The floor `target` needs at `now`, and until when; `None` when no sale is in its window.
    pub fn want(&self, schedule: &Schedule, target: &Target, now: DateTime<Utc>) -> Option<Want> {
        let mut demand = 0u64;
        let mut until = None;
        for (_, sale) in schedule.sales().filter(|(_, s)| !s.over) {
            let (from, end) = self.span(sale);
            if from <= now && now < end {
                demand += sale.demand_per_minute(self.rush_minutes());
                until = until.max(Some(end));
            }
        }
        let replicas = demand.div_ceil(u64::from(target.buyers_per_replica.max(1)));
        Some(Want { replicas: i32::try_from(replicas).unwrap_or(i32::MAX), until: until? })
    }

    /// The next instant after `now` at which some sale's window opens or closes.
    pub fn next_change(&self, schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        schedule
            .sales()
            .filter(|(_, s)| !s.over)
            .flat_map(|(_, sale)| {
                let (from, until) = self.span(sale);
                [from, until]
            })
            .filter(|at| *at > now)
            .min()
    }
}

/// The floor the sales in their window need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Replicas for the demand, before the ceiling.
    pub replicas: i32,
    /// When the last of those windows closes.
    pub until: DateTime<Utc>,
}

/// The HPA as the API server has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// `spec.minReplicas`.
    pub min: i32,
    /// `spec.maxReplicas`.
    pub max: i32,
    /// The floor before the pre-scaler raised it, from the HPA's annotation: `Some` while raised.
    pub baseline: Option<i32>,
    /// The raised floor's end, from the HPA's annotation.
    pub until: Option<DateTime<Utc>>,
}

/// What to do to an HPA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It is as it should be.
    Keep,
    /// Set the floor to `min`, remembering `baseline` and `until` on the HPA.
    Raise {
        /// The new floor.
        min: i32,
        /// The floor to go back to.
        baseline: i32,
        /// When the raise ends.
        until: DateTime<Utc>,
    },
    /// Put the floor back to `min` (the baseline) and forget the raise.
    Restore {
        /// The baseline.
        min: i32,
    },
}

/// What to do with `observed`, given what the sales `want`. The floor is absolute (never the
/// current floor plus something), so deciding again after a restart or a lost answer gives
/// the same floor, never one past `ceiling` or the HPA's own `maxReplicas`. Until the
/// schedule is `complete` (the topic read to its end since the start), a raised floor is
/// never lowered: a sale not read back yet must not lose its pods.
pub fn decide(observed: Observed, want: Option<Want>, ceiling: i32, complete: bool) -> Decision {
    let baseline = observed.baseline.unwrap_or(observed.min);
    let held = !complete && observed.baseline.is_some();
    let floor = match want {
        None if held => return Decision::Keep,
        None => baseline,
        Some(want) if held => want.replicas.max(observed.min),
        Some(want) => want.replicas,
    };
    let floor = floor.min(ceiling.min(observed.max)).max(baseline);
    match want {
        Some(want) if floor > baseline => {
            let until = if held { observed.until.map_or(want.until, |u| u.max(want.until)) } else { want.until };
            let unchanged =
                observed.min == floor && observed.baseline == Some(baseline) && observed.until == Some(until);
            if unchanged { Decision::Keep } else { Decision::Raise { min: floor, baseline, until } }
        }
        _ if observed.baseline.is_some() || observed.min != baseline => Decision::Restore { min: baseline },
        _ => Decision::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketing_proto::events::v1::{CategorySnapshot, EventPublished};

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    const WINDOW: Window = Window { lead_time: Duration::from_secs(10 * 60), rush: Duration::from_secs(30 * 60) };

    fn target() -> Target {
        Target { hpa: "ticketing-gateway".into(), ceiling: 12, buyers_per_replica: 100 }
    }

    fn schedule(sales: &[(&str, i64, u32)]) -> Schedule {
        let mut schedule = Schedule::default();
        for (id, opens, admission) in sales {
            schedule.published(&EventPublished {
                event_id: (*id).into(),
                sale_starts_at: Some(prost_types::Timestamp { seconds: at(*opens).timestamp(), nanos: 0 }),
                categories: vec![CategorySnapshot { capacity: 3_000, ..Default::default() }],
                admission_per_minute: *admission,
                version: 1,
                ..Default::default()
            });
        }
        schedule
    }

    #[test]
    fn floors_rise_a_lead_time_ahead_and_fall_after_the_rush() {
        let s = schedule(&[("a", 60, 500)]);
        assert_eq!(WINDOW.want(&s, &target(), at(49)), None, "before the lead time");
        assert_eq!(WINDOW.want(&s, &target(), at(50)), Some(Want { replicas: 5, until: at(90) }));
        assert_eq!(WINDOW.want(&s, &target(), at(89)).map(|w| w.replicas), Some(5));
        assert_eq!(WINDOW.want(&s, &target(), at(90)), None, "after the rush");
        assert_eq!(WINDOW.next_change(&s, at(0)), Some(at(50)));
        assert_eq!(WINDOW.next_change(&s, at(50)), Some(at(90)));
        assert_eq!(WINDOW.next_change(&s, at(90)), None);
    }

    #[test]
    fn overlapping_sales_add_up_and_capacity_stands_in_for_a_missing_waiting_room() {
        // 3,000 tickets over a 30-minute rush: 100 buyers a minute; plus 450 admitted a minute.
        let s = schedule(&[("a", 60, 0), ("b", 70, 450)]);
        assert_eq!(WINDOW.want(&s, &target(), at(65)), Some(Want { replicas: 6, until: at(100) }));
    }

    fn observed(min: i32, baseline: Option<i32>, until: Option<DateTime<Utc>>) -> Observed {
        Observed { min, max: 20, baseline, until }
    }

    #[test]
    fn a_raise_is_absolute_and_stops_at_the_ceiling_and_max_replicas() {
        let want = Some(Want { replicas: 50, until: at(90) });
        let raise = Decision::Raise { min: 12, baseline: 2, until: at(90) };
        assert_eq!(decide(observed(2, None, None), want, 12, true), raise);
        // Decided again on the raised HPA (a restart, a resync): nothing to do, never 12 + 12.
        assert_eq!(decide(observed(12, Some(2), Some(at(90))), want, 12, true), Decision::Keep);
        assert_eq!(decide(observed(12, Some(2), Some(at(90))), want, 12, false), Decision::Keep);
        let small_max = Observed { max: 8, ..observed(2, None, None) };
        assert_eq!(decide(small_max, want, 12, true), Decision::Raise { min: 8, baseline: 2, until: at(90) });
        // Demand below the baseline raises nothing.
        assert_eq!(
            decide(observed(4, None, None), Some(Want { replicas: 3, until: at(90) }), 12, true),
            Decision::Keep
        );
    }

    #[test]
    fn after_the_rush_the_baseline_comes_back_and_someone_elses_lowering_is_undone() {
        assert_eq!(decide(observed(12, Some(2), Some(at(90))), None, 12, true), Decision::Restore { min: 2 });
        assert_eq!(decide(observed(2, None, None), None, 12, true), Decision::Keep);
        // A helm upgrade put the chart's floor back mid-sale: raised again, baseline kept.
        let want = Some(Want { replicas: 6, until: at(90) });
        assert_eq!(
            decide(observed(2, Some(2), Some(at(90))), want, 12, true),
            Decision::Raise { min: 6, baseline: 2, until: at(90) }
        );
    }

    #[test]
    fn before_the_topic_is_read_back_a_raised_floor_is_held_never_lowered() {
        let raised = observed(10, Some(2), Some(at(90)));
        assert_eq!(decide(raised, None, 12, false), Decision::Keep);
        // What was read so far wants less: the floor stays where it was.
        assert_eq!(decide(raised, Some(Want { replicas: 4, until: at(80) }), 12, false), Decision::Keep);
        // ...or more, up to the ceiling, and the later end.
        assert_eq!(
            decide(raised, Some(Want { replicas: 11, until: at(120) }), 12, false),
            Decision::Raise { min: 11, baseline: 2, until: at(120) }
        );
        // Read back: the schedule is the truth again.
        assert_eq!(
            decide(raised, Some(Want { replicas: 4, until: at(80) }), 12, true),
            Decision::Raise { min: 4, baseline: 2, until: at(80) }
        );
    }
}
