//! Sales reports: the window and buckets of a sales time series, and what a report holds.
//! Buckets are UTC hours or days, so a series means the same to every reader whatever the
//! venue's time zone, and sums of buckets equal the totals.

use chrono::{DateTime, Duration, DurationRound as _, Utc};

use super::BookingError;

/// How long one point of a series lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// A UTC hour.
    Hour,
    /// A UTC day.
    Day,
}

impl Bucket {
    /// Its length.
    pub fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// Most buckets one series may span: a month of hours, two years of days.
    pub fn max_buckets(self) -> i64 {
        match self {
            Self::Hour => 744,
            Self::Day => 732,
        }
    }

    /// The window a request without `from` covers, ending at its `to`.
    fn default_span(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(48),
            Self::Day => Duration::days(30),
        }
    }

    /// The start of the bucket `at` falls in.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        // Hours and days divide the time since the epoch evenly (UTC has no leap seconds
        // in chrono), so this cannot fail for a valid instant.
        at.duration_trunc(self.length()).unwrap_or(at)
    }

    /// The start of the first bucket at or after `at`.
    pub fn ceil(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let floor = self.floor(at);
        if floor == at { at } else { floor + self.length() }
    }
}

/// The window of a series: whole buckets from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first bucket's start.
    pub from: DateTime<Utc>,
    /// The end of the last bucket.
    pub to: DateTime<Utc>,
    /// Their length.
    pub bucket: Bucket,
}

impl Window {
    /// The window asked for, widened to whole buckets: `to` defaults to `now`, `from` to 48
    /// hours (hourly) or 30 days (daily) before `to`. `from` must be before `to`, and the
    /// window at most [`Bucket::max_buckets`] long.
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        bucket: Bucket,
        now: DateTime<Utc>,
    ) -> Result<Self, BookingError> {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - bucket.default_span());
        if from >= to {
            return Err(BookingError::invalid("from", "must be before to"));
        }
        let window = Self { from: bucket.floor(from), to: bucket.ceil(to), bucket };
        let buckets = window.len();
        if buckets > bucket.max_buckets() {
            return Err(BookingError::invalid(
                "to",
                format!("the window spans {buckets} buckets; at most {} are allowed", bucket.max_buckets()),
            ));
        }
        Ok(window)
    }

    /// How many buckets it spans.
    pub fn len(&self) -> i64 {
        (self.to - self.from).num_seconds() / self.bucket.length().num_seconds()
    }

    /// Whether it spans none (never, once built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every bucket's start, oldest first.
    pub fn starts(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        (0..self.len()).map(|i| self.from + self.bucket.length() * i as i32)
    }
}

/// Tickets and money, sold and refunded, in one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Tickets sold.
    pub tickets_sold: u64,
    /// Their price, in minor units.
    pub revenue_minor: i64,
    /// Tickets refunded.
    pub tickets_refunded: u64,
    /// What was paid back for them, in minor units.
    pub refunds_minor: i64,
}

/// One category's sales in one currency, all time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorySales {
    /// The category.
    pub category_id: uuid::Uuid,
    /// ISO 4217 code.
    pub currency: String,
    /// What it sold and refunded.
    pub tally: Tally,
}

/// One bucket of a series in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// The bucket's start.
    pub start: DateTime<Utc>,
    /// ISO 4217 code.
    pub currency: String,
    /// What was sold and refunded in it.
    pub tally: Tally,
}

/// An event's sales report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesReport {
    /// Per category and currency, all time.
    pub categories: Vec<CategorySales>,
    /// The series' window.
    pub window: Window,
    /// Every bucket of the window in every currency the event sold in, oldest first.
    pub series: Vec<Point>,
}

impl SalesReport {
    /// A report of `categories`, with `points` (the buckets something happened in) spread
    /// over every bucket of `window`, zeros where nothing happened.
    pub fn new(categories: Vec<CategorySales>, window: Window, points: Vec<Point>) -> Self {
        let mut currencies: Vec<&str> = categories.iter().map(|c| c.currency.as_str()).collect();
        currencies.sort_unstable();
        currencies.dedup();
        let series = window
            .starts()
            .flat_map(|start| {
                let points = &points;
                currencies.iter().map(move |&currency| Point {
                    start,
                    currency: currency.to_owned(),
                    tally: points
                        .iter()
                        .find(|p| p.start == start && p.currency == currency)
                        .map(|p| p.tally)
                        .unwrap_or_default(),
                })
            })
            .collect();
        Self { categories, window, series }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn buckets_are_utc_hours_and_days_with_their_edges_in_the_later_one() {
        assert_eq!(Bucket::Hour.floor(at("2026-12-04T10:59:59.999999Z")), at("2026-12-04T10:00:00Z"));
        assert_eq!(Bucket::Hour.floor(at("2026-12-04T11:00:00Z")), at("2026-12-04T11:00:00Z"));
        assert_eq!(Bucket::Day.floor(at("2026-12-04T23:59:59.999999Z")), at("2026-12-04T00:00:00Z"));
        assert_eq!(Bucket::Day.floor(at("2026-12-05T00:00:00Z")), at("2026-12-05T00:00:00Z"));
        // A time zone ahead of UTC: still UTC's day.
        assert_eq!(Bucket::Day.floor(at("2026-12-05T00:30:00+01:00")), at("2026-12-04T00:00:00Z"));
        assert_eq!(Bucket::Hour.ceil(at("2026-12-04T10:00:00Z")), at("2026-12-04T10:00:00Z"));
        assert_eq!(Bucket::Hour.ceil(at("2026-12-04T10:00:00.000001Z")), at("2026-12-04T11:00:00Z"));
    }

    #[test]
    fn a_window_is_widened_to_whole_buckets_and_bounded() {
        let now = at("2026-12-04T10:30:00Z");
        let w = Window::new(Some(at("2026-12-04T08:15:00Z")), None, Bucket::Hour, now).unwrap();
        assert_eq!((w.from, w.to, w.len()), (at("2026-12-04T08:00:00Z"), at("2026-12-04T11:00:00Z"), 3));
        assert_eq!(w.starts().last(), Some(at("2026-12-04T10:00:00Z")));
        let w = Window::new(None, None, Bucket::Day, now).unwrap();
        assert_eq!((w.from, w.to, w.len()), (at("2026-11-04T00:00:00Z"), at("2026-12-05T00:00:00Z"), 31));

        let refused =
            |from: &str, to: &str, bucket| Window::new(Some(at(from)), Some(at(to)), bucket, now).unwrap_err();
        for (from, to) in
            [("2026-12-04T10:00:00Z", "2026-12-04T10:00:00Z"), ("2026-12-05T00:00:00Z", "2026-12-04T00:00:00Z")]
        {
            assert!(matches!(refused(from, to, Bucket::Hour), BookingError::Invalid(v) if v[0].field == "from"));
        }
        // 31 days of hours are fine, a minute more is not; two years of days likewise.
        assert_eq!(
            Window::new(Some(at("2026-01-01T00:00:00Z")), Some(at("2026-02-01T00:00:00Z")), Bucket::Hour, now)
                .unwrap()
                .len(),
            744
        );
        let too_long = refused("2026-01-01T00:00:00Z", "2026-02-01T00:01:00Z", Bucket::Hour);
        assert!(matches!(too_long, BookingError::Invalid(v) if v[0].field == "to"));
        assert!(
            Window::new(Some(at("2025-01-01T00:00:00Z")), Some(at("2027-01-01T00:00:00Z")), Bucket::Day, now).is_ok()
        );
        assert!(matches!(
            refused("2024-01-01T00:00:00Z", "2027-01-01T00:00:00Z", Bucket::Day),
            BookingError::Invalid(_)
        ));
    }

    #[test]
    fn a_series_lists_every_bucket_in_every_currency_sold_in() {
        let now = at("2026-12-04T10:30:00Z");
        let window = Window::new(Some(at("2026-12-04T08:00:00Z")), None, Bucket::Hour, now).unwrap();
        let tally = Tally { tickets_sold: 2, revenue_minor: 9000, ..Tally::default() };
        let category = CategorySales { category_id: uuid::Uuid::nil(), currency: "EUR".into(), tally };
        let point = Point { start: at("2026-12-04T09:00:00Z"), currency: "EUR".into(), tally };
        let report = SalesReport::new(vec![category], window, vec![point.clone()]);
        assert_eq!(report.series.len(), 3);
        assert_eq!(report.series[1], point);
        assert_eq!((report.series[0].tally, report.series[2].tally), (Tally::default(), Tally::default()));
        assert!(SalesReport::new(Vec::new(), window, Vec::new()).series.is_empty(), "nothing sold, no currency");
    }
}
