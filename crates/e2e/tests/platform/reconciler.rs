//! The saga's second line: with booking's consumers off (as when its consumer group stalls),
//! every step that waits on an event still happens, through booking's reconciler asking
//! payment and inventory itself: a paid booking is confirmed and its tickets sent, a
//! declined one cancelled with its seats freed, a cancelled one restocked and refunded, an
//! unpaid one expired. And when the late events come after all, nothing happens twice.

use std::time::Duration;

use prost::{Message as _, Name as _};
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::booking::v1::BookingStatus;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;
use ticketing_proto::identity::v1::Role;
use ticketing_proto::payment::v1::PaymentStatus;
use ticketing_testkit::eventually_every;
use ticketing_testkit::smtp::wait_for_emails;

use crate::harness::{Event, Options, Platform, REGISTRATION_EMAILS, authed};
use crate::scenarios::{count, counts_of, ga, seats};

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
    let what = format!("counts {expected:?}");
    eventually_every(&what, Duration::from_secs(60), Duration::from_millis(100), || async {
        let counts = p.counts(event).await;
        if counts_of(&counts, &event.seated) == expected { Ok(()) } else { Err(format!("{counts:?}")) }
    })
    .await;
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
    let emails = wait_for_emails(&p.smtp, &buyer.email, REGISTRATION_EMAILS + 1).await;
    assert_eq!(emails.len(), REGISTRATION_EMAILS + 1, "one tickets email");
    assert_eq!(emails.iter().map(|e| e.pngs.len()).sum::<usize>(), 2, "one ticket per seat");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_stuck_in_a_broker_outage_confirm_through_the_reconciler_and_their_late_events_change_nothing() {
    const PAID: usize = 8;
    let mut broker = tokio::task::spawn_blocking(ticketing_testkit::broker::PrivateBroker::start).await.unwrap();
    let address: &'static str = Box::leak(broker.address.clone().into_boxed_str());
    let booking: fn(&mut ticketing_booking::config::Config) = |c| {
        c.booking.peer_timeout = Duration::from_secs(1);
        c.booking.reconcile_after = Duration::from_secs(2);
    };
    let p = Platform::start(Options { brokers: Some(address), booking, ..Options::default() }).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event_with_limit(&organizer, PAID as u32, 1, 2_500, PAID as u32).await;
    let mut bookings = Vec::new();
    for _ in 0..PAID {
        let hold = p.hold(&buyer, &event, ga(&event, 1)).await;
        bookings.push(p.book(&buyer, &hold).await);
    }
    // Payment must know the bookings to charge them; then the broker goes.
    eventually_every(
        "payment to hear of the bookings",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async { (count(&p, "payment", "SELECT count(*) FROM bookings").await >= PAID as i64).then_some(()) },
    )
    .await;
    broker.stop();

    // Their PaymentSucceeded wait in payment's outbox; booking learns from payment itself.
    for (i, created) in bookings.iter().enumerate() {
        let charge = p.pay(&buyer, created, "tok_visa", &format!("pay-{i}")).await.expect("charge");
        assert_eq!(charge.status(), PaymentStatus::Succeeded);
    }
    for created in &bookings {
        p.wait_status(&buyer, &created.id, BookingStatus::Confirmed).await;
    }
    assert_eq!(reconciled(&p, "payment_succeeded").await, PAID as u64);
    assert_eq!(counts_of(&p.counts(&event).await, &event.ga), (0, 0, PAID as u32), "sold once each");

    // The broker is back: the late events reach booking and change nothing.
    let resumed = tokio::task::spawn_blocking(move || {
        broker.resume();
        broker
    })
    .await
    .unwrap();
    let topic = p.kafka.topic("payment.events");
    let late: Vec<uuid::Uuid> = ticketing_testkit::read_topic(&p.kafka, &topic, PAID, Duration::from_secs(60))
        .await
        .iter()
        .filter_map(|m| Envelope::decode(rdkafka::Message::payload(m)?).ok())
        .filter(|e| e.r#type == ev::PaymentSucceeded::full_name())
        .map(|e| e.id.parse().expect("a UUID event id"))
        .collect();
    assert_eq!(late.len(), PAID, "one PaymentSucceeded per charge");
    eventually_every(
        "booking to consume the late events",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let consumed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE event_id = ANY($1)")
                .bind(&late)
                .fetch_one(&p.dbs["booking"].pool)
                .await
                .expect("booking's processed events");
            if consumed == PAID as i64 { Ok(()) } else { Err(format!("{consumed} consumed")) }
        },
    )
    .await;
    let emails = "SELECT count(*) FROM deliveries WHERE template = 'booking_confirmed'";
    eventually_every("every tickets email", Duration::from_secs(60), Duration::from_millis(200), || async {
        let sent = count(&p, "notification", emails).await;
        if sent >= PAID as i64 { Ok(()) } else { Err(format!("{sent} of {PAID}")) }
    })
    .await;
    let announced =
        ticketing_testkit::read_topic(&p.kafka, &p.kafka.topic("booking.events"), 2 * PAID, Duration::from_secs(60))
            .await
            .iter()
            .filter_map(|m| Envelope::decode(rdkafka::Message::payload(m)?).ok())
            .filter(|e| e.r#type == ev::BookingConfirmed::full_name())
            .count();
    assert_eq!(announced, PAID, "one BookingConfirmed per booking");
    assert_eq!(count(&p, "notification", emails).await, PAID as i64, "one tickets email per booking");
    assert_eq!(count(&p, "notification", "SELECT count(*) FROM tickets").await, PAID as i64, "never two tickets");
    assert_eq!(count(&p, "booking", "SELECT count(*) FROM bookings WHERE status = 'confirmed'").await, PAID as i64);
    assert_eq!(count(&p, "payment", "SELECT count(*) FROM simulated_charges").await, PAID as i64, "charged once");
    assert_eq!(reconciled(&p, "payment_succeeded").await, PAID as u64, "the late events did it again nowhere");
    assert_eq!(counts_of(&p.counts(&event).await, &event.ga), (0, 0, PAID as u32));
    p.stop().await;
    drop(resumed);
}
