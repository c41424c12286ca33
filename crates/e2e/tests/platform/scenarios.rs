//! The scenarios, one test each.

use std::collections::HashMap;
use std::time::Duration;

use ticketing_proto::booking::v1 as booking;
use ticketing_proto::booking::v1::BookingStatus;
use ticketing_proto::identity::v1::Role;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::inventory::v1::hold_request::Selection;
use ticketing_proto::notification::v1 as notification;
use ticketing_proto::payment::v1 as payment;
use ticketing_testkit::eventually_every;
use ticketing_testkit::smtp::{read_qr, wait_for_emails};
use tonic::Code;

use crate::harness::{Event, Options, Platform, REGISTRATION_EMAILS, User, authed};

pub(crate) fn seats(event: &Event, indexes: &[usize]) -> Selection {
    Selection::Seats(inventory::SeatSelection { seat_ids: indexes.iter().map(|&i| event.seats[i].clone()).collect() })
}

pub(crate) fn ga(event: &Event, quantity: u32) -> Selection {
    Selection::GeneralAdmission(inventory::GeneralAdmissionSelection { category_id: event.ga.clone(), quantity })
}

async fn verify(p: &Platform, organizer: &User, event: &Event, code: &str) -> notification::VerifyTicketResponse {
    let request = notification::VerifyTicketRequest {
        code: code.into(),
        event_id: event.id.clone(),
        gate_id: "A".into(),
        require_rotating: false,
    };
    p.notification.clone().verify_ticket(authed(request, organizer)).await.expect("verify").into_inner()
}

pub(crate) fn counts_of(counts: &[(String, u32, u32, u32)], category: &str) -> (u32, u32, u32) {
    counts.iter().find(|c| c.0 == category).map(|c| (c.1, c.2, c.3)).expect("category counts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_tickets_arrive_and_each_admits_once() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 7_500).await;

    let hold = p.hold(&buyer, &event, seats(&event, &[1, 2])).await;
    let created = p.book(&buyer, &hold).await;
    assert_eq!((created.status(), created.user_id.as_str()), (BookingStatus::PendingPayment, buyer.id.as_str()));
    assert_eq!(created.total.as_ref().unwrap().minor_units, 15_000);
    let labels: Vec<&str> = created.line_items.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(labels, ["Block A, Row 1, Seat 2", "Block A, Row 1, Seat 3"], "labels come from the seat map");
    let again = booking::CreateBookingRequest { hold_id: hold.hold_id.clone(), idempotency_key: String::new() };
    let twice = p.booking.clone().create_booking(authed(again, &buyer)).await.unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists, "a hold backs one booking");

    let paid = p.pay(&buyer, &created, "tok_visa", "pay-1").await.expect("charge");
    assert_eq!(paid.status(), payment::PaymentStatus::Succeeded);
    let confirmed = p.wait_status(&buyer, &created.id, BookingStatus::Confirmed).await;
    assert_eq!(confirmed.payment_id, paid.id);
    assert_eq!(counts_of(&p.counts(&event).await, &event.seated), (2, 0, 2), "two seats sold");

    // The email carries one QR ticket per seat; each admits once.
    let emails = wait_for_emails(&p.smtp, &buyer.email, REGISTRATION_EMAILS + 1).await;
    let tickets_email = emails.iter().find(|e| !e.pngs.is_empty()).expect("an email with tickets");
    assert_eq!(tickets_email.pngs.len(), 2, "{:?}", tickets_email.subject);
    for png in &tickets_email.pngs {
        let code = read_qr(png);
        let first = verify(&p, &organizer, &event, &code).await;
        assert_eq!(first.result(), notification::VerificationResult::Valid);
        let second = verify(&p, &organizer, &event, &code).await;
        assert_eq!(second.result(), notification::VerificationResult::AlreadyScanned);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_cancels_the_booking_and_frees_the_seats() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let hold = p.hold(&buyer, &event, seats(&event, &[0])).await;
    let created = p.book(&buyer, &hold).await;

    let declined = p.pay(&buyer, &created, "tok_decline", "pay-1").await.expect("a decline is an answer");
    assert_eq!(declined.status(), payment::PaymentStatus::Failed);
    let cancelled = p.wait_status(&buyer, &created.id, BookingStatus::Cancelled).await;
    assert!(cancelled.cancellation_reason.contains("declined"), "{}", cancelled.cancellation_reason);
    eventually_every("the seat to come back", Duration::from_secs(30), Duration::from_millis(100), || async {
        (counts_of(&p.counts(&event).await, &event.seated) == (4, 0, 0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_booking_expires_with_its_hold_and_the_seats_return() {
    let p = Platform::start(Options { hold_ttl: Duration::from_secs(2), ..Options::default() }).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let hold = p.hold(&buyer, &event, ga(&event, 3)).await;
    let created = p.book(&buyer, &hold).await;
    assert_eq!(counts_of(&p.counts(&event).await, &event.ga), (7, 3, 0));

    p.wait_status(&buyer, &created.id, BookingStatus::Expired).await;
    assert_eq!(counts_of(&p.counts(&event).await, &event.ga), (10, 0, 0), "the tickets are back");
    let late = p.pay(&buyer, &created, "tok_visa", "pay-late").await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "an expired booking cannot be paid: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_lands_after_expiry_is_refunded_and_sells_nothing() {
    let p = Platform::start(Options { hold_ttl: Duration::from_secs(3), ..Options::default() }).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let hold = p.hold(&buyer, &event, seats(&event, &[3])).await;
    let created = p.book(&buyer, &hold).await;

    // The slow card answers after the client deadline; the charge lands at the provider,
    // reconciliation finds it succeeded, by which time the hold has expired.
    let paid = p.pay(&buyer, &created, "tok_slow", "pay-slow").await;
    let payment_id = match paid {
        Ok(details) => details.id,
        Err(status) => panic!("the slow card is answered as UNKNOWN, not refused: {status:?}"),
    };
    p.wait_status(&buyer, &created.id, BookingStatus::Expired).await;
    // One minute for both waits.
    let patience = Duration::from_secs(60);
    let started = std::time::Instant::now();
    eventually_every("the late payment to be recorded", patience, Duration::from_millis(200), || async {
        (p.booking(&buyer, &created.id).await.payment_id == payment_id).then_some(())
    })
    .await;
    assert_eq!(p.booking(&buyer, &created.id).await.status(), BookingStatus::Expired, "it stays expired");
    let left = patience.saturating_sub(started.elapsed());
    eventually_every("the payment to be refunded", left, Duration::from_millis(200), || async {
        let request = payment::GetPaymentRequest {
            lookup: Some(payment::get_payment_request::Lookup::PaymentId(payment_id.clone())),
        };
        let current = p.payment.clone().get_payment(authed(request, &buyer)).await.expect("payment").into_inner();
        let status = current.status();
        if status == payment::PaymentStatus::Refunded { Ok(()) } else { Err(format!("{status:?}")) }
    })
    .await;
    assert_eq!(counts_of(&p.counts(&event).await, &event.seated), (4, 0, 0), "no seat sold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_confirmed_booking_voids_the_tickets_then_returns_the_seats_and_refunds_it() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let hold = p.hold(&buyer, &event, seats(&event, &[0, 1])).await;
    let created = p.book(&buyer, &hold).await;
    p.pay(&buyer, &created, "tok_visa", "pay-1").await.expect("charge");
    p.wait_status(&buyer, &created.id, BookingStatus::Confirmed).await;
    let emails = wait_for_emails(&p.smtp, &buyer.email, REGISTRATION_EMAILS + 1).await;
    let codes: Vec<String> = emails.iter().flat_map(|e| e.pngs.iter().map(|png| read_qr(png))).collect();
    assert_eq!(codes.len(), 2);

    let cancel = booking::CancelBookingRequest {
        booking_id: created.id.clone(),
        idempotency_key: "cancel-1".into(),
        reason: "cannot make it".into(),
    };
    let pending = p.booking.clone().cancel_booking(authed(cancel.clone(), &buyer)).await.expect("cancel").into_inner();
    assert_eq!(pending.status(), BookingStatus::RefundPending);
    let replay = p.booking.clone().cancel_booking(authed(cancel, &buyer)).await.expect("replay").into_inner();
    assert_eq!(replay, pending, "the same key replays the first answer");
    // The tickets left the gate before the answer came back (I7) ...
    for code in &codes {
        let answer = verify(&p, &organizer, &event, code).await;
        assert_eq!(answer.result(), notification::VerificationResult::Revoked);
    }
    // ... and only then do the seats go back on sale, once the refund request is committed.
    eventually_every("the seats to come back", Duration::from_secs(60), Duration::from_millis(100), || async {
        let counts = p.counts(&event).await;
        if counts_of(&counts, &event.seated) == (4, 0, 0) { Ok(()) } else { Err(format!("{counts:?}")) }
    })
    .await;
    p.wait_status(&buyer, &created.id, BookingStatus::Refunded).await;
}

/// Seats of `event` bought by `buyer` through the whole saga; returns the booking.
async fn purchase(p: &Platform, buyer: &User, event: &Event, seat: usize) -> booking::BookingDetails {
    let hold = p.hold(buyer, event, seats(event, &[seat])).await;
    let created = p.book(buyer, &hold).await;
    p.pay(buyer, &created, "tok_visa", &format!("pay-{seat}")).await.expect("charge");
    p.wait_status(buyer, &created.id, BookingStatus::Confirmed).await
}

pub(crate) async fn count(p: &Platform, service: &str, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&p.dbs[service].pool).await.expect(sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_pay_requests_charge_once_and_agree() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let hold = p.hold(&buyer, &event, seats(&event, &[2])).await;
    let created = p.book(&buyer, &hold).await;
    // Payment must know the booking before the race, or every request is told to retry.
    let known = format!("SELECT count(*) FROM bookings WHERE id = '{}'", created.id);
    eventually_every("payment to hear of the booking", Duration::from_secs(30), Duration::from_millis(50), || async {
        (count(&p, "payment", &known).await > 0).then_some(())
    })
    .await;

    let attempts = (0..1000).map(|i| {
        let (p, buyer, created) = (&p, &buyer, &created);
        async move {
            let key = format!("key-{}", i % 20);
            (key.clone(), p.pay(buyer, created, "tok_visa", &key).await)
        }
    });
    let results = futures::future::join_all(attempts).await;
    let first: payment::PaymentDetails = {
        let request = payment::GetPaymentRequest {
            lookup: Some(payment::get_payment_request::Lookup::BookingId(created.id.clone())),
        };
        p.payment.clone().get_payment(authed(request, &buyer)).await.expect("the payment").into_inner()
    };
    let mut by_key: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for (key, result) in results {
        match result {
            Ok(details) => {
                assert_eq!(details.id, first.id, "every success is the one payment");
                by_key.entry(key).or_default().push(details.id);
            }
            Err(s) => assert!(matches!(s.code(), Code::FailedPrecondition | Code::Aborted), "{key}: {s:?}"),
        }
    }
    assert_eq!(count(&p, "payment", "SELECT count(*) FROM simulated_charges").await, 1, "one charge at the provider");
    assert_eq!(count(&p, "payment", "SELECT count(*) FROM payments WHERE status = 'succeeded'").await, 1);
    let confirmed = p.wait_status(&buyer, &created.id, BookingStatus::Confirmed).await;
    assert_eq!(confirmed.payment_id, first.id);
}

/// What a redelivered event must not change: rows of each service and the stock.
type Snapshot = (i64, i64, i64, i64, i64, i64, Vec<(String, u32, u32, u32)>);

async fn snapshot(p: &Platform, event: &Event) -> Snapshot {
    (
        count(p, "booking", "SELECT count(*) FROM bookings").await,
        count(p, "booking", "SELECT count(*) FROM processed_events").await,
        count(p, "payment", "SELECT count(*) FROM payments").await,
        count(p, "payment", "SELECT count(*) FROM refunds").await,
        count(p, "payment", "SELECT count(*) FROM simulated_charges").await,
        count(p, "notification", "SELECT count(*) FROM deliveries").await,
        p.counts(event).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_delivered_again_in_reverse_changes_nothing() {
    use rdkafka::Message as _;
    use rdkafka::producer::FutureRecord;

    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let kept = purchase(&p, &buyer, &event, 0).await;
    let cancelled = purchase(&p, &buyer, &event, 1).await;
    // Registration's and both tickets emails first: a booking cancelled (so revoked) before
    // its confirmation was handled rightly gets no tickets email, and this test counts them.
    wait_for_emails(&p.smtp, &buyer.email, REGISTRATION_EMAILS + 2).await;
    let cancel = booking::CancelBookingRequest { booking_id: cancelled.id.clone(), ..Default::default() };
    p.booking.clone().cancel_booking(authed(cancel, &buyer)).await.expect("cancel");
    p.wait_status(&buyer, &cancelled.id, BookingStatus::Refunded).await;
    let emails = wait_for_emails(&p.smtp, &buyer.email, REGISTRATION_EMAILS + 3).await.len();

    let before = snapshot(&p, &event).await;

    // Every event every consumer reads, again, newest first.
    let producer = ticketing_platform::kafka::producer(&p.kafka).expect("producer");
    let consumed = p.consumed().await;
    let mut replayed = HashMap::new();
    for base in ["identity.events", "catalog.events", "inventory.events", "booking.events", "payment.events"] {
        let topic = p.kafka.topic(base);
        let messages = ticketing_testkit::read_topic(&p.kafka, &topic, 1, Duration::from_secs(10)).await;
        for m in messages.iter().rev() {
            let mut record = FutureRecord::to(&topic).payload(m.payload().unwrap_or_default());
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("republish");
            *replayed.entry(topic.clone()).or_insert(0u64) += 1;
        }
    }
    assert!(replayed.values().sum::<u64>() >= 15, "only {replayed:?} events replayed");
    let read = |topic: &String| consumed.keys().any(|(_, _, read)| read == topic);
    assert!(replayed.keys().all(read), "every replayed topic has a group to wait for: {consumed:?}");
    // Quiescence, not a pause: every group that had read a topic has finished every message
    // replayed on it (whatever it made of them).
    ticketing_testkit::eventually("every group to finish the replay", Duration::from_secs(60), || async {
        let now = p.consumed().await;
        let behind: Vec<_> = consumed
            .iter()
            .filter(|&(key, &before)| {
                now.get(key).copied().unwrap_or(0) < before + replayed.get(&key.2).copied().unwrap_or(0)
            })
            .map(|(key, _)| key)
            .collect();
        if behind.is_empty() { Ok(()) } else { Err(format!("behind: {behind:?}")) }
    })
    .await;

    let after = snapshot(&p, &event).await;
    // Booking's processed_events grows by nothing: every replay is a known event id.
    assert_eq!(after, before, "a redelivered event changed something");
    assert_eq!(wait_for_emails(&p.smtp, &buyer.email, emails).await.len(), emails, "no email twice");
    assert_eq!(p.booking(&buyer, &kept.id).await.status(), BookingStatus::Confirmed);
    assert_eq!(p.booking(&buyer, &cancelled.id).await.status(), BookingStatus::Refunded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dead_letter_topic_and_the_saga_goes_on() {
    use rdkafka::producer::FutureRecord;

    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;

    let topic = p.kafka.topic("payment.events");
    let producer = ticketing_platform::kafka::producer(&p.kafka).expect("producer");
    let record = FutureRecord::to(&topic).key("poison").payload(&b"\x08\x96\x01 not an envelope"[..]);
    producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("publish poison");

    let confirmed = purchase(&p, &buyer, &event, 3).await;
    assert_eq!(confirmed.status(), BookingStatus::Confirmed, "the consumer kept going");
    let dlq = format!("{topic}{}", ticketing_platform::kafka::DLQ_SUFFIX);
    let dead = ticketing_testkit::read_topic(&p.kafka, &dlq, 1, Duration::from_secs(60)).await;
    assert!(!dead.is_empty(), "the poison message reached {dlq}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_complete_through_a_broker_outage_with_nothing_lost_or_applied_twice() {
    use futures::StreamExt as _;
    const PURCHASES: usize = 200;
    const BUYERS: usize = 10;

    let mut broker = tokio::task::spawn_blocking(ticketing_testkit::broker::PrivateBroker::start).await.unwrap();
    let address: &'static str = Box::leak(broker.address.clone().into_boxed_str());
    let p = Platform::start(Options { brokers: Some(address), ..Options::default() }).await;
    let organizer = p.user(Role::Organizer).await;
    let mut buyers = Vec::new();
    for _ in 0..BUYERS {
        buyers.push(p.user(Role::User).await);
    }
    let event = p.event_with_limit(&organizer, PURCHASES as u32, 1, 2_500, (PURCHASES / BUYERS) as u32).await;

    // The broker goes away a few seconds into the run and comes back later, storage intact.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done_at_outage = done.clone();
    let outage = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.stop();
        let before = done_at_outage.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let broker = tokio::task::spawn_blocking(move || {
            broker.resume();
            broker
        })
        .await
        .unwrap();
        (broker, before)
    });
    let purchases = futures::stream::iter(0..PURCHASES)
        .map(|i| {
            let (p, buyer, event, done) = (&p, &buyers[i % BUYERS], &event, &done);
            async move {
                let hold = p.hold(buyer, event, ga(event, 1)).await;
                let created = p.book(buyer, &hold).await;
                p.pay(buyer, &created, "tok_visa", &format!("pay-{i}")).await.expect("charge");
                let id = p.wait_status(buyer, &created.id, BookingStatus::Confirmed).await.id;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                id
            }
        })
        .buffer_unordered(20)
        .collect::<Vec<String>>()
        .await;
    let (resumed, done_before_outage) = outage.await.unwrap();
    assert!(done_before_outage < PURCHASES, "the outage came after the run ({done_before_outage} done)");
    assert_eq!(purchases.len(), PURCHASES, "every purchase completed");

    assert_eq!(counts_of(&p.counts(&event).await, &event.ga), (0, 0, PURCHASES as u32), "every ticket sold once");
    let paid = count(&p, "payment", "SELECT count(*) FROM payments WHERE status = 'succeeded'").await;
    assert_eq!(paid, PURCHASES as i64, "one payment per booking");
    assert_eq!(count(&p, "payment", "SELECT count(*) FROM simulated_charges").await, PURCHASES as i64);
    let confirmed = count(&p, "booking", "SELECT count(*) FROM bookings WHERE status = 'confirmed'").await;
    assert_eq!(confirmed, PURCHASES as i64);
    // No event lost: every confirmation reached notification, and each was applied once.
    let tickets = "SELECT count(*) FROM deliveries WHERE template = 'booking_confirmed'";
    eventually_every("every tickets email", Duration::from_secs(60), Duration::from_millis(200), || async {
        let sent = count(&p, "notification", tickets).await;
        if sent >= PURCHASES as i64 { Ok(()) } else { Err(format!("{sent} of {PURCHASES}")) }
    })
    .await;
    assert_eq!(count(&p, "notification", tickets).await, PURCHASES as i64, "one tickets email per booking");
    let issued = count(&p, "notification", "SELECT count(*) FROM tickets").await;
    assert_eq!(issued, PURCHASES as i64, "one ticket per line item, never two");
    p.stop().await;
    drop(resumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_event_refunds_paid_bookings_and_cancels_unpaid_ones() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let paid = purchase(&p, &buyer, &event, 0).await;
    let hold = p.hold(&buyer, &event, seats(&event, &[1])).await;
    let unpaid = p.book(&buyer, &hold).await;

    let cancel =
        ticketing_proto::catalog::v1::CancelEventRequest { event_id: event.id.clone(), reason: "storm".into() };
    p.catalog.clone().cancel_event(authed(cancel, &organizer)).await.expect("cancel the event");

    p.wait_status(&buyer, &unpaid.id, BookingStatus::Cancelled).await;
    let refunded = p.wait_status(&buyer, &paid.id, BookingStatus::Refunded).await;
    assert!(refunded.cancellation_reason.contains("event was cancelled"), "{}", refunded.cancellation_reason);
    let request = payment::GetPaymentRequest {
        lookup: Some(payment::get_payment_request::Lookup::PaymentId(paid.payment_id.clone())),
    };
    let money = p.payment.clone().get_payment(authed(request, &buyer)).await.expect("payment").into_inner();
    assert_eq!(money.status(), payment::PaymentStatus::Refunded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_page_through_their_bookings_and_organizers_through_their_events() {
    let p = Platform::start(Options::default()).await;
    let organizer = p.user(Role::Organizer).await;
    let other_organizer = p.user(Role::Organizer).await;
    let buyer = p.user(Role::User).await;
    let stranger = p.user(Role::User).await;
    let event = p.event(&organizer, 10, 4, 5_000).await;
    let mut made = Vec::new();
    for _ in 0..5 {
        let hold = p.hold(&buyer, &event, ga(&event, 1)).await;
        made.push(p.book(&buyer, &hold).await.id);
    }
    made.reverse(); // newest first

    let page = |cursor: String| booking::ListMyBookingsRequest {
        statuses: vec![],
        page: Some(ticketing_proto::common::v1::PageRequest { limit: 2, cursor }),
    };
    let (mut seen, mut cursor) = (Vec::new(), String::new());
    loop {
        let answer = p.booking.clone().list_my_bookings(authed(page(cursor), &buyer)).await.unwrap().into_inner();
        seen.extend(answer.bookings.iter().map(|b| b.id.clone()));
        cursor = answer.page.unwrap_or_default().next_cursor;
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(seen, made, "every booking once, newest first");
    let theirs = p.booking.clone().list_my_bookings(authed(page(String::new()), &stranger)).await.unwrap();
    assert!(theirs.into_inner().bookings.is_empty(), "a buyer sees only their own");
    let garbage = p.booking.clone().list_my_bookings(authed(page("not-a-cursor".into()), &buyer)).await;
    assert_eq!(garbage.unwrap_err().code(), Code::InvalidArgument);

    let of_event = |who: &User| {
        let request = booking::ListEventBookingsRequest { event_id: event.id.clone(), ..Default::default() };
        let mut client = p.booking.clone();
        let request = authed(request, who);
        async move { client.list_event_bookings(request).await.map(tonic::Response::into_inner) }
    };
    // Booking learns the organizer from EventPublished, asynchronously.
    let what = "booking to let the organizer list their event";
    let listed = eventually_every(what, Duration::from_secs(30), Duration::from_millis(100), || async {
        match of_event(&organizer).await {
            Ok(answer) => Ok(answer),
            Err(s) if s.code() == Code::PermissionDenied => Err(format!("{s:?}")),
            Err(s) => panic!("the organizer cannot list their event: {s:?}"),
        }
    })
    .await;
    assert_eq!(listed.bookings.len(), 5);
    assert_eq!(of_event(&other_organizer).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(of_event(&buyer).await.unwrap_err().code(), Code::PermissionDenied);
    let get = booking::GetBookingRequest { booking_id: made[0].clone() };
    assert!(p.booking.clone().get_booking(authed(get.clone(), &organizer)).await.is_ok(), "the organizer sees it");
    let hidden = p.booking.clone().get_booking(authed(get, &stranger)).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "a stranger does not");
}
