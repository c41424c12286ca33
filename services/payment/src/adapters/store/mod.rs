//! Payment's Postgres tables: the booking projection, payments, refunds and the
//! webhook events already processed.
//!
//! Payments and refunds change only as the domain decides (`Payment::apply`,
//! `Refund::apply`) on a row locked in the caller's transaction, so racing writers (the
//! Charge call, the reconciler in any replica, a webhook) queue up: exactly one of them
//! moves it, and only that one publishes the event.

mod bookings;
mod payments;
mod refunds;
mod webhooks;

use std::time::Duration;

use ticketing_kernel::money::{Currency, Money};

pub use bookings::{BookingFact, apply_booking, booking};
pub use payments::{
    NewPayment, claim_open_payments, insert_payment, latest_payment, live_payment, lock_payment, payment_by_id,
    save_payment,
};
pub use refunds::{
    NewRefund, Recorded, claim_pending_refunds, lock_refund, postpone_refund, record_failed_refund, record_refund,
    refund_by_id, save_refund,
};
pub use webhooks::record_webhook;

/// An amount as stored: written from a parsed [`Money`], so a currency that no longer parses
/// is a corrupt row.
fn stored_money(currency: &str, minor_units: i64) -> anyhow::Result<Money> {
    let currency = Currency::parse(currency).map_err(|rule| anyhow::anyhow!("stored currency {currency:?} {rule}"))?;
    Ok(Money { currency, minor_units })
}

fn violates(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}

/// The next check of a claimed row: `$2` (work) + min(`$3` (base) × 2^checks, `$4` (cap)).
const LEASED: &str = "now() + make_interval(secs => $2 + LEAST($3 * power(2, LEAST(checks, 20))::float8, $4))";

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// How long a claimed row is left alone: the call itself, then a doubling wait.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// The longest the claimer may spend on it.
    pub work: Duration,
    /// The first wait after that; doubles with each check.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}
