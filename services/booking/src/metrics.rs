//! Tickets sold and revenue per event (`event_id` capped by `telemetry.max_event_series`), and
//! the time from payment to CONFIRMED, the SLI of the `payment_to_confirmed_latency` SLO.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use prometheus::{CounterVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};
use ticketing_kernel::money::major_units;
use ticketing_platform::metrics::{LATENCY_BUCKETS, Metrics, PerEvent};

use crate::domain::Booking;

/// One event's handles: its tickets counter, its label, and the currencies it was sold in.
#[derive(Clone)]
struct EventSales {
    label: Arc<str>,
    tickets: IntCounter,
    currencies: Arc<Mutex<HashSet<String>>>,
}

/// Booking's sales metrics.
#[derive(Clone)]
pub struct SalesMetrics {
    to_confirmed: Histogram,
    revenue: CounterVec,
    events: Arc<PerEvent<EventSales>>,
}

impl SalesMetrics {
    /// Registers the metrics in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let to_confirmed = metrics.register(
            &Histogram::with_opts(
                HistogramOpts::new(
                    "booking_payment_to_confirmed_seconds",
                    "From the PaymentSucceeded event to the booking's CONFIRMED.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("static metric definition"),
        );
        let tickets = metrics.register(
            &IntCounterVec::new(
                Opts::new("booking_tickets_sold_total", "Tickets of bookings entering CONFIRMED."),
                &["event_id"],
            )
            .expect("static metric definition"),
        );
        let revenue = metrics.register(
            &CounterVec::new(
                Opts::new("booking_revenue_total", "Price of the tickets sold, in the currency's major unit."),
                &["event_id", "currency"],
            )
            .expect("static metric definition"),
        );
        let (make, forget, revenue_forget) = (tickets.clone(), tickets, revenue.clone());
        let events = PerEvent::new(
            metrics.max_event_series(),
            move |event| EventSales {
                label: event.into(),
                tickets: make.with_label_values(&[event]),
                currencies: Arc::default(),
            },
            move |sales: &EventSales| {
                let _ = forget.remove_label_values(&[&*sales.label]);
                for currency in sales.currencies.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                    let _ = revenue_forget.remove_label_values(&[&*sales.label, currency.as_str()]);
                }
            },
        );
        Self { to_confirmed, revenue, events: Arc::new(events) }
    }

    /// Records `booking` entering CONFIRMED for a payment that succeeded at `paid_at`.
    pub fn confirmed(&self, booking: &Booking, paid_at: Option<DateTime<Utc>>) {
        if let Some(paid_at) = paid_at {
            self.to_confirmed.observe((Utc::now() - paid_at).to_std().unwrap_or_default().as_secs_f64());
        }
        let sales = self.events.get(booking.event_id);
        sales.tickets.inc_by(booking.line_items.len() as u64);
        sales.currencies.lock().unwrap_or_else(PoisonError::into_inner).insert(booking.currency.clone());
        // A counter only grows; a booking's total is never negative anyway.
        let amount = major_units(&booking.currency, booking.total_minor.max(0));
        self.revenue.with_label_values(&[&*sales.label, booking.currency.as_str()]).inc_by(amount);
    }
}
