//! The saga's second line: with booking's consumers off (as when its consumer group stalls),
//! every step that waits on an event still happens, through booking's reconciler asking
//! payment and inventory itself: a paid booking is confirmed and its tickets sent, a
//! declined one cancelled with its seats freed, a cancelled one restocked and refunded.

use std::time::{Duration, Instant};

use ticketing_proto::booking::v1 as booking;
use ticketing_proto::booking::v1::BookingStatus;
use ticketing_proto::identity::v1::Role;
use ticketing_proto::payment::v1::PaymentStatus;
use ticketing_testkit::smtp::wait_for_emails;

use crate::platform::{Event, Options, Platform, authed};
use crate::scenarios::{counts_of, seats};

/// Payment, inventory and booking's own events never reach booking; its reconciler looks
/// after 2 s.
fn without_consumers(config: &mut ticketing_booking::config::Config) {
    config.kafka.consume = false;
    config.booking.peer_timeout = Duration::from_secs(1);
    config.booking.reconcile_after = Duration::from_secs(2);
}

/// `booking_reconciled_total{what}` on booking's `/metrics`.
async fn reconciled(p: &Platform, what: &str) -> u64 {
    let metrics = reqwest::get(format!("{}/metrics", p.booking_admin)).await.unwrap().text().await.unwrap();
    let series = format!("booking_reconciled_total{{what=\"{what}\",service=\"booking\"}} ");
    let line = metrics.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series}in {metrics}"));
    line[series.len()..].parse().expect("a count")
}

/// Waits until `event`'s seated category counts (available, held, sold) are `expected`.
async fn wait_counts(p: &Platform, event: &Event, expected: (u32, u32, u32)) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts_of(&p.counts(event).await, &event.seated) != expected {
        assert!(Instant::now() < deadline, "counts stayed {:?}, never {expected:?}", p.counts(event).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_consumers_booking_still_confirms_cancels_restocks_and_refunds() {
    let p = Platform::start(Options { booking: without_consumers, ..Options::default() }).await;
    let organizer = p.user(Role::Organizer).await;
    let (buyer, decliner) = (p.user(Role::User).await, p.user(Role::User).await);
    let event = p.event(&organizer, 1, 4, 5_000).await;

    // Paid: confirmed, sold once, its tickets sent.
    let hold = p.hold(&buyer, &event, seats(&event, &[0, 1])).await;
    let paid = p.book(&buyer, &hold).await;
    let charge = p.pay(&buyer, &paid, "tok_visa", "pay-1").await.expect("charge");
    assert_eq!(charge.status(), PaymentStatus::Succeeded);
    let confirmed = p.wait_status(&buyer, &paid.id, BookingStatus::Confirmed).await;
    assert_eq!(confirmed.payment_id, charge.id);
    assert_eq!(wait_for_emails(&p.smtp, &buyer.email, 2).await.len(), 2, "one ticket per seat");

    // Declined: cancelled, its hold released.
    let hold = p.hold(&decliner, &event, seats(&event, &[2])).await;
    let declined = p.book(&decliner, &hold).await;
    let charge = p.pay(&decliner, &declined, "tok_decline", "pay-2").await.expect("charge");
    assert_eq!(charge.status(), PaymentStatus::Failed);
    p.wait_status(&decliner, &declined.id, BookingStatus::Cancelled).await;
    wait_counts(&p, &event, (2, 0, 2)).await;
    assert_eq!((reconciled(&p, "payment_succeeded").await, reconciled(&p, "payment_failed").await), (1, 1));

    // Cancelled by its buyer: the seats come back and the money too.
    let cancel = booking::CancelBookingRequest {
        booking_id: paid.id.clone(),
        idempotency_key: "cancel-1".into(),
        reason: "cannot make it".into(),
    };
    let cancelled = p.booking.clone().cancel_booking(authed(cancel, &buyer)).await.expect("cancel").into_inner();
    assert_eq!(cancelled.status(), BookingStatus::RefundPending);
    wait_counts(&p, &event, (4, 0, 0)).await;
    p.wait_status(&buyer, &paid.id, BookingStatus::Refunded).await;
    assert_eq!((reconciled(&p, "restock").await, reconciled(&p, "refunded").await), (1, 1));
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds WHERE status = 'succeeded'")
        .fetch_one(&p.dbs["payment"].pool)
        .await
        .expect("payment's refunds");
    assert_eq!(refunds, 1, "asked twice (event and reconciler), refunded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_consumers_an_unpaid_booking_still_expires_with_its_hold() {
    let options = Options { hold_ttl: Duration::from_secs(1), booking: without_consumers, ..Options::default() };
    let p = Platform::start(options).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 1, 4, 5_000).await;
    let hold = p.hold(&buyer, &event, seats(&event, &[3])).await;
    let unpaid = p.book(&buyer, &hold).await;
    wait_counts(&p, &event, (4, 0, 0)).await;
    p.wait_status(&buyer, &unpaid.id, BookingStatus::Expired).await;
    assert_eq!(reconciled(&p, "hold_expired").await, 1);
}
