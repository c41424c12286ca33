//! The waiting room's metrics: per event, tickets issued, passes issued, the wait between
//! them and the queue's length (sampled by [`super::WaitingRoom::watch`]); and its Redis time.

use chrono::{DateTime, Utc};
use ticketing_platform::metrics::{Metrics, PerEvent};
use uuid::Uuid;

use super::queue::{Admitted, Visited};

/// Buckets of `gateway_waiting_room_wait_seconds`: 1 s to 1 h.
const WAIT_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];

/// One event's waiting-room counters (`event_id` capped by `telemetry.max_event_series`).
#[derive(Clone)]
pub struct EventRoom {
    label: std::sync::Arc<str>,
    joined: prometheus::IntCounter,
    admitted: prometheus::IntCounter,
    wait: prometheus::Histogram,
}

/// The waiting room's metrics.
pub struct RoomMetrics {
    events: PerEvent<EventRoom>,
    length: prometheus::IntGaugeVec,
    /// Time spent in Redis per visit.
    pub redis: prometheus::Histogram,
}

impl RoomMetrics {
    /// Registers the metrics in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
        let counter = |name: &str, help: &str| {
            metrics
                .register(&IntCounterVec::new(Opts::new(name, help), &["event_id"]).expect("static metric definition"))
        };
        let joined = counter("gateway_waiting_room_joined_total", "Waiting-room tickets issued.");
        let admitted = counter("gateway_waiting_room_admitted_total", "Admission passes issued.");
        let wait = metrics.register(
            &HistogramVec::new(
                HistogramOpts::new("gateway_waiting_room_wait_seconds", "Time from joining the queue to admission.")
                    .buckets(WAIT_BUCKETS.to_vec()),
                &["event_id"],
            )
            .expect("static metric definition"),
        );
        let length = metrics.register(
            &IntGaugeVec::new(
                Opts::new("gateway_waiting_room_length", "Queue positions issued minus those admitted so far."),
                &["event_id"],
            )
            .expect("static metric definition"),
        );
        let make = (joined.clone(), admitted.clone(), wait.clone());
        let forget = (joined, admitted, wait, length.clone());
        let events = PerEvent::new(
            metrics.max_event_series(),
            move |event| EventRoom {
                label: event.into(),
                joined: make.0.with_label_values(&[event]),
                admitted: make.1.with_label_values(&[event]),
                wait: make.2.with_label_values(&[event]),
            },
            move |room: &EventRoom| {
                let label = [&*room.label];
                let _ = forget.0.remove_label_values(&label);
                let _ = forget.1.remove_label_values(&label);
                let _ = forget.2.remove_label_values(&label);
                let _ = forget.3.remove_label_values(&label);
            },
        );
        Self { events, length, redis: metrics.redis_timer("waiting_room") }
    }

    /// Counts what a visit to `event`'s queue at `now` did: a ticket issued, a pass issued
    /// and how long its buyer waited for it.
    pub fn visited(&self, event: Uuid, visited: &Visited, now: DateTime<Utc>) {
        if !visited.created && visited.admitted == Admitted::NotNow {
            return;
        }
        let room = self.events.get(event);
        if visited.created {
            room.joined.inc();
        }
        if let Admitted::Now(joined) = visited.admitted {
            room.admitted.inc();
            if let Some(joined) = joined {
                room.wait.observe((now - joined).num_milliseconds().max(0) as f64 / 1000.0);
            }
        }
    }

    /// The events whose queue this replica served lately, after letting go of the idle ones.
    pub fn events(&self) -> Vec<(Uuid, EventRoom)> {
        self.events.expire();
        self.events.events()
    }

    /// Sets the length of `room`'s queue.
    pub fn set_length(&self, room: &EventRoom, length: i64) {
        self.length.with_label_values(&[&*room.label]).set(length);
    }
}
