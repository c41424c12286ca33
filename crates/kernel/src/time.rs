//! Instants on the wire: `google.protobuf.Timestamp` to and from `DateTime<Utc>`.
//!
//! A timestamp is valid when its nanos are in `0..1_000_000_000` (the protobuf spec's
//! normalized form) and its instant is one chrono can hold. Anything else is refused, never
//! clamped: a negative `nanos` read as zero would move an instant a reader compares (a
//! sale's end, an event's occurrence) without anyone noticing.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// `at` as a normalized protobuf timestamp.
pub fn to_proto(at: DateTime<Utc>) -> Timestamp {
    // chrono shows a leap second as nanos past 1e9; protobuf has no leap seconds, so the
    // instant is held at the second's last nanosecond.
    let nanos = at.timestamp_subsec_nanos().min(NANOS_PER_SECOND - 1);
    Timestamp { seconds: at.timestamp(), nanos: i32::try_from(nanos).unwrap_or(i32::MAX) }
}

/// The instant of `t`, or `None` when it is not a valid timestamp.
pub fn from_proto(t: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < NANOS_PER_SECOND)?;
    DateTime::from_timestamp(t.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_survive_the_round_trip_to_the_nanosecond() {
        let at = DateTime::from_timestamp(1_900_000_000, 123_456_789).unwrap();
        let t = to_proto(at);
        assert_eq!((t.seconds, t.nanos), (1_900_000_000, 123_456_789));
        assert_eq!(from_proto(&t), Some(at));
        let before_1970 = DateTime::from_timestamp(-1, 5).unwrap();
        assert_eq!(from_proto(&to_proto(before_1970)), Some(before_1970));
    }

    #[test]
    fn nanos_outside_one_second_and_unrepresentable_instants_are_refused() {
        for nanos in [-1, -999_999_999, 1_000_000_000, i32::MAX] {
            assert_eq!(from_proto(&Timestamp { seconds: 1_900_000_000, nanos }), None, "nanos {nanos}");
        }
        assert_eq!(from_proto(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }

    #[test]
    fn a_leap_second_is_held_at_its_last_nanosecond() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        let t = to_proto(leap);
        assert_eq!(t.nanos, 999_999_999);
        assert!(from_proto(&t).is_some());
    }
}
