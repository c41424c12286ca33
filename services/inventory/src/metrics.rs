//! `inventory_category_seats` and `inventory_category_capacity` of the events on sale,
//! sampled every `telemetry.metrics_interval`: the sold ledger and capacities from Postgres
//! (the oversell canary compares the two), live availability and holds from Redis.

use std::collections::{HashMap, HashSet};

use prometheus::{IntGaugeVec, Opts};
use sqlx::PgPool;
use ticketing_platform::periodic::Job;

use crate::adapters::stock::Stock;

/// The per-category gauges and the series last set, so those of events that left are removed.
pub struct StockMetrics {
    pool: PgPool,
    stock: Stock,
    seats: IntGaugeVec,
    capacity: IntGaugeVec,
    max_events: usize,
    exported: HashSet<(String, String)>,
}

/// One category of a sampled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorySample {
    /// The event.
    pub event: uuid::Uuid,
    /// The category.
    pub category: uuid::Uuid,
    /// From the catalog (the ledger's copy).
    pub capacity: i64,
    /// From the sold ledger.
    pub sold: i64,
    /// Live holds (Redis).
    pub held: i64,
    /// Free to hold (Redis; capacity minus sold when Redis has not loaded the event).
    pub available: i64,
}

impl StockMetrics {
    /// Registers the gauges in `metrics`.
    pub fn new(pool: PgPool, stock: Stock, metrics: &ticketing_platform::metrics::Metrics) -> Self {
        let seats = metrics.register(
            &IntGaugeVec::new(
                Opts::new("inventory_category_seats", "Seats of an on-sale event's category, by state."),
                &["event_id", "category", "state"],
            )
            .expect("static metric definition"),
        );
        let capacity = metrics.register(
            &IntGaugeVec::new(
                Opts::new("inventory_category_capacity", "Capacity of an on-sale event's category."),
                &["event_id", "category"],
            )
            .expect("static metric definition"),
        );
        Self { pool, stock, seats, capacity, max_events: metrics.max_event_series(), exported: HashSet::new() }
    }

    /// Reads the newest `telemetry.max_event_series` events on sale (or whose sale ended less
    /// than an hour ago) and sets their gauges; removes the series of the others.
    pub async fn sample(&mut self) -> anyhow::Result<Vec<CategorySample>> {
        let rows: Vec<(uuid::Uuid, uuid::Uuid, i32, i64)> = sqlx::query_as(
            "WITH shown AS (
                 SELECT event_id FROM events
                 WHERE state IN ('published', 'on_sale', 'closed')
                   AND sale_starts_at <= now() AND sale_ends_at > now() - interval '1 hour'
                 ORDER BY sale_starts_at DESC, event_id LIMIT $1)
             SELECT c.event_id, c.category_id, c.capacity,
                    c.sold + (SELECT count(*) FROM sold_seats ss JOIN seats s USING (event_id, seat_id)
                              WHERE ss.event_id = c.event_id AND s.category_id = c.category_id)
             FROM categories c JOIN shown USING (event_id)",
        )
        .bind(i64::try_from(self.max_events).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut live: HashMap<uuid::Uuid, HashMap<uuid::Uuid, (u32, u32)>> = HashMap::new();
        for event in rows.iter().map(|r| r.0).collect::<HashSet<_>>() {
            let counts = self.stock.counts(event).await?.unwrap_or_default();
            live.insert(event, counts.into_iter().map(|(c, n)| (c, (n.available, n.held))).collect());
        }
        let samples: Vec<CategorySample> = rows
            .into_iter()
            .map(|(event, category, capacity, sold)| {
                let capacity = i64::from(capacity);
                let redis = live.get(&event).and_then(|c| c.get(&category));
                let (available, held) =
                    redis.map_or(((capacity - sold).max(0), 0), |(a, h)| (i64::from(*a), i64::from(*h)));
                CategorySample { event, category, capacity, sold, held, available }
            })
            .collect();

        let mut exported = HashSet::with_capacity(samples.len());
        for s in &samples {
            let (event, category) = (s.event.to_string(), s.category.to_string());
            for (state, value) in [("available", s.available), ("held", s.held), ("sold", s.sold)] {
                self.seats.with_label_values(&[&event, &category, state]).set(value);
            }
            self.capacity.with_label_values(&[&event, &category]).set(s.capacity);
            exported.insert((event, category));
        }
        for (event, category) in self.exported.difference(&exported) {
            for state in ["available", "held", "sold"] {
                let _ = self.seats.remove_label_values(&[event, category, state]);
            }
            let _ = self.capacity.remove_label_values(&[event, category]);
        }
        self.exported = exported;
        Ok(samples)
    }
}

/// Sampled every `telemetry.metrics_interval`.
impl Job for StockMetrics {
    async fn round(&mut self) {
        if let Err(e) = self.sample().await {
            tracing::debug!(error = format!("{e:#}"), "sampling stock metrics failed");
        }
    }
}
