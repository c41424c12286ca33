//! Delivery guarantees: at most once per event whatever the broker redelivers, and
//! across a short Postgres outage mid-send; retries while the SMTP server is down,
//! bounded attempts, and poison messages to the DLQ.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::message::Headers as _;
use ticketing_notification::adapters::deliveries::{self, NewDelivery};
use ticketing_notification::domain::Template;
use ticketing_platform::auth::Role;
use ticketing_proto::events::v1 as ev;
use ticketing_proto::notification::v1 as pb;

use crate::helpers::*;

/// The sum of `kafka_consumer_messages_total` (every message every group finished).
async fn consumed(app: &TestApp) -> u64 {
    let (_, metrics) = app.admin_get("/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with("kafka_consumer_messages_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn every_event_delivered_twice_and_out_of_order_sends_each_email_once() {
    let app = spawn_app().await;
    let buyer = Buyer::new("edsger");
    // The event is known beforehand (catalog publishes it long before any sale), so the
    // emails can name it; its redelivery below is out of order like the rest.
    let (show, show_event) = app.publish_show_envelope("Twice").await;
    let (kept, refunded_early) = (show.confirmed(&buyer, 2), show.confirmed(&buyer, 1));
    let (unpaid, expiring) = (show.confirmed(&buyer, 1), show.confirmed(&buyer, 1));
    let cancelled = ev::BookingCancelled {
        booking_id: unpaid.booking_id.clone(),
        user_id: buyer.id.to_string(),
        event_id: show.id.to_string(),
        reason: ev::BookingCancellationReason::UserRequested as i32,
        ..Default::default()
    };
    let expired = ev::BookingExpired {
        booking_id: expiring.booking_id.clone(),
        user_id: buyer.id.to_string(),
        event_id: show.id.to_string(),
        hold_id: expiring.hold_id.clone(),
    };
    // Out of order: the refund overtakes its confirmation, and the buyer's registration
    // comes last, so every email has to wait for the address.
    let booking_events = [
        app.publish(BOOKING, &refunded_early.booking_id, &refunded(&refunded_early)).await,
        app.publish(BOOKING, &kept.booking_id, &kept).await,
        app.publish(BOOKING, &refunded_early.booking_id, &refunded_early).await,
        app.publish(BOOKING, &expired.booking_id, &expired).await,
        app.publish(BOOKING, &cancelled.booking_id, &cancelled).await,
    ];
    let refund = app.publish(PAYMENT, &refunded_early.booking_id, &refund_succeeded(&refunded_early)).await;
    let user = app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    // Everything again, in reverse.
    app.republish(IDENTITY, &user).await;
    app.republish(CATALOG, &show_event).await;
    app.republish(PAYMENT, &refund).await;
    for envelope in booking_events.iter().rev() {
        app.republish(BOOKING, envelope).await;
    }

    // records: 1 user + 1 event + 5 booking events; booking emails: 5; payment emails: 1; all twice.
    eventually("every message to be consumed", WAIT, || async { (consumed(&app).await >= 26).then_some(()) }).await;
    let emails = wait_for_emails(&app.smtp, &buyer.email, 5).await;
    // Every delivery is recorded with its message; two dispatcher rounds later any
    // duplicate would have been sent.
    app.service.wait_job_rounds("dispatcher", 2).await;
    let emails_after = emails_to(&app.smtp, &buyer.email);
    let subjects: Vec<&str> = emails_after.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(emails_after.len(), 5, "{subjects:?}");
    assert_eq!(emails.len(), 5);
    let distinct: HashSet<&str> = subjects.iter().copied().collect();
    assert_eq!(distinct.len(), 5, "no email twice: {subjects:?}");
    for subject in [
        "Welcome to Ticketing, edsger",
        "Your 2 tickets for Twice",
        "Your refund of EUR 50.00",
        "Your booking for Twice expired",
        "Your booking for Twice was cancelled",
    ] {
        assert!(distinct.contains(subject), "missing {subject:?}: {subjects:?}");
    }
    let message_ids: HashSet<&str> = emails_after.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(message_ids.len(), 5);

    // State changed once: tickets issued once, the early refund's tickets born revoked
    // (and no tickets email for them), one revocation time per booking.
    let kept_tickets = app.tickets(buyer.id, &[Role::User], booking_id(&kept)).await.unwrap();
    assert_eq!(kept_tickets.len(), 2);
    assert!(kept_tickets.iter().all(|t| t.status == pb::TicketStatus::Issued as i32));
    let early = app.tickets(buyer.id, &[Role::User], booking_id(&refunded_early)).await.unwrap();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].status, pb::TicketStatus::Revoked as i32);
    let revocations = app
        .count(
            "SELECT count(DISTINCT revoked_at) FROM (SELECT revoked_at FROM bookings WHERE booking_id = $1
             UNION ALL SELECT revoked_at FROM tickets WHERE booking_id = $1) r",
            booking_id(&refunded_early),
        )
        .await;
    assert_eq!(revocations, 1);
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(deliveries, 5);
    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(metrics.contains(r#"outcome="duplicate""#), "redeliveries are counted as duplicates:\n{metrics}");
}

#[tokio::test]
async fn an_smtp_outage_is_retried_until_the_email_is_sent() {
    let app = spawn_app().await;
    app.smtp.stop().await;
    let buyer = Buyer::new("outage");
    let envelope = app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;

    let retrying = eventually("RETRYING after two failed attempts", WAIT, || async {
        let deliveries = app.deliveries_of(&envelope).await;
        deliveries.into_iter().find(|d| d.status == pb::DeliveryStatus::Retrying as i32 && d.attempts >= 2)
    })
    .await;
    assert!(!retrying.last_error.is_empty(), "the failure is recorded");
    assert!(retrying.sent_at.is_none());
    assert!(app.smtp.messages().is_empty());

    app.smtp.resume().await;
    let sent = eventually("SENT once the server is back", WAIT, || async {
        let deliveries = app.deliveries_of(&envelope).await;
        deliveries.into_iter().find(|d| d.status == pb::DeliveryStatus::Sent as i32)
    })
    .await;
    assert!(sent.attempts > retrying.attempts, "{} attempts", sent.attempts);
    assert!(sent.sent_at.is_some());
    let emails = wait_for_emails(&app.smtp, &buyer.email, 1).await;
    assert_eq!(emails.len(), 1);
    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l.starts_with("notification_emails_total{") && l.contains(r#"result="retry""#)),
        "retries are counted:\n{metrics}"
    );
}

#[tokio::test]
async fn a_delivery_gives_up_after_its_attempts() {
    let app = spawn_with(|c| c.notification.max_attempts = 2).await;
    app.smtp.stop().await;
    let buyer = Buyer::new("giveup");
    let envelope = app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    let failed = eventually("FAILED", WAIT, || async {
        let deliveries = app.deliveries_of(&envelope).await;
        deliveries.into_iter().find(|d| d.status == pb::DeliveryStatus::Failed as i32)
    })
    .await;
    assert_eq!(failed.attempts, 2);
    assert!(!failed.last_error.is_empty());
    app.smtp.resume().await;
    app.service.wait_job_rounds("dispatcher", 2).await;
    assert!(app.smtp.messages().is_empty(), "a failed delivery is not retried");
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_and_the_consumers_keep_going() {
    let app = spawn_app().await;
    let buyer = Buyer::new("poison");
    let show = Show::new("After the poison");
    app.publish_raw(BOOKING, "junk", b"\xffnot an envelope").await;
    let mut malformed = show.confirmed(&buyer, 1);
    malformed.booking_id = "not-a-uuid".into();
    app.publish(BOOKING, "not-a-uuid", &malformed).await;
    app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    let good = show.confirmed(&buyer, 2);
    app.publish(BOOKING, &good.booking_id, &good).await;

    let emails = wait_for_emails(&app.smtp, &buyer.email, 2).await;
    assert_eq!(emails.len(), 2);
    assert!(emails.iter().any(|e| e.pngs.len() == 2), "the good booking's tickets arrived");

    // Both consumer groups of booking.events dead-lettered both bad messages.
    app.wait_for_dead_letters(4).await;
    let dlq = app.kafka.topic(&format!("{BOOKING}.dlq"));
    let messages = ticketing_testkit::read_topic(&app.kafka, &dlq, 4, Duration::from_secs(60)).await;
    assert_eq!(messages.len(), 4, "{messages:?}");
    let mut seen = HashSet::new();
    for message in &messages {
        let header = |name: &str| {
            let headers = message.headers().expect("dlq headers");
            let h = headers.iter().find(|h| h.key == name).unwrap_or_else(|| panic!("no {name} header"));
            String::from_utf8(h.value.unwrap().to_vec()).unwrap()
        };
        assert_eq!(header("dlq.original.topic"), app.kafka.topic(BOOKING));
        assert!(!header("dlq.error").is_empty());
        seen.insert((header("dlq.consumer"), message.key().map(<[u8]>::to_vec)));
    }
    assert_eq!(seen.len(), 4, "each bad message once per group: {seen:?}");
}

#[tokio::test]
async fn a_booking_of_an_unknown_user_gets_its_tickets_but_its_email_is_dead_lettered() {
    let app = spawn_with(|c| c.kafka.consumer_max_attempts = 3).await;
    let stranger = Buyer::new("stranger");
    let show = Show::new("Nobody");
    let confirmed = show.confirmed(&stranger, 2);
    app.publish(BOOKING, &confirmed.booking_id, &confirmed).await;

    // The records consumer never waits for the user: the tickets exist and admit.
    let tickets = app.wait_for_tickets(stranger.id, booking_id(&confirmed), 2).await;
    assert!(tickets.iter().all(|t| t.status == pb::TicketStatus::Issued as i32));
    app.wait_for_dead_letters(1).await;
    let dlq = app.kafka.topic(&format!("{BOOKING}.dlq"));
    let messages = ticketing_testkit::read_topic(&app.kafka, &dlq, 1, Duration::from_secs(60)).await;
    assert_eq!(messages.len(), 1);
    let error = messages[0].headers().unwrap().iter().find(|h| h.key == "dlq.error").unwrap();
    let error = String::from_utf8_lossy(error.value.unwrap());
    assert!(error.contains("is not known yet") && error.contains("retries exhausted"), "{error}");
    assert!(app.smtp.messages().is_empty());
}

#[tokio::test]
async fn a_delivery_claimed_by_a_replica_that_died_is_sent_once_its_lease_ends() {
    let app = spawn_app().await;
    app.smtp.stop().await;
    let buyer = Buyer::new("lease");
    let envelope = app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    eventually("a first failed attempt", WAIT, || async {
        let deliveries = app.deliveries_of(&envelope).await;
        deliveries.into_iter().find(|d| d.status == pb::DeliveryStatus::Retrying as i32)
    })
    .await;
    // Another replica claims it and dies mid-send: its claim holds for two seconds.
    let lease_end: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "UPDATE deliveries SET claim = gen_random_uuid(), claimed_until = now() + interval '2 seconds',
                attempts = attempts + 1, next_attempt_at = now()
          WHERE source_event_id = $1 RETURNING claimed_until",
    )
    .bind(envelope.id.parse::<uuid::Uuid>().unwrap())
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    app.smtp.resume().await;
    let sent = eventually("SENT after the lease", WAIT, || async {
        let deliveries = app.deliveries_of(&envelope).await;
        deliveries.into_iter().find(|d| d.status == pb::DeliveryStatus::Sent as i32)
    })
    .await;
    let sent_at = sent.sent_at.unwrap();
    let sent_at = chrono::DateTime::from_timestamp(sent_at.seconds, sent_at.nanos as u32).unwrap();
    assert!(sent_at >= lease_end, "sent at {sent_at}, while another replica's claim held until {lease_end}");
    assert_eq!(wait_for_emails(&app.smtp, &buyer.email, 1).await.len(), 1);
}

#[tokio::test]
async fn an_email_sent_while_postgres_goes_away_is_recorded_once_it_returns_and_not_sent_again() {
    let app = spawn_app().await;
    let buyer = Buyer::new("pgoutage");
    let accepting = app.smtp.hold_acceptance().await;
    let envelope = app.publish(IDENTITY, &buyer.id.to_string(), &buyer.registered()).await;
    eventually("the email mid-send", WAIT, || async { (!app.smtp.messages().is_empty()).then_some(()) }).await;

    // Postgres goes away between the server's acceptance and the record of SENT, for 3 s.
    app.allow_database_connections(false).await;
    drop(accepting);
    eventually("the send's outcome", WAIT, || async {
        let (_, metrics) = app.admin_get("/metrics").await;
        metrics
            .lines()
            .any(|l| l.starts_with("notification_emails_total{") && l.contains(r#"result="sent""#))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.allow_database_connections(true).await;

    let sent = eventually("SENT", WAIT, || async {
        let deliveries = app.deliveries_of(&envelope).await;
        deliveries.into_iter().find(|d| d.status == pb::DeliveryStatus::Sent as i32)
    })
    .await;
    assert_eq!(sent.attempts, 1, "recorded by the attempt that sent it");
    assert_eq!(wait_for_emails(&app.smtp, &buyer.email, 1).await.len(), 1);
}

/// A delivery's status, attempts and send time, straight from the log.
async fn logged(app: &TestApp, source: uuid::Uuid) -> (String, i32, Option<chrono::DateTime<chrono::Utc>>) {
    sqlx::query_as("SELECT status, attempts, sent_at FROM deliveries WHERE source_event_id = $1")
        .bind(source)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_send_that_could_outlast_its_claim_is_given_back_and_claimed_again_at_once() {
    // One send at a time, each bounded by half the 10 s lease; lettre would wait longer.
    let app = spawn_with(|c| {
        c.notification.dispatch_concurrency = 1;
        c.notification.smtp.timeout = Duration::from_secs(8);
    })
    .await;
    let accepting = app.smtp.hold_acceptance().await;
    // Committed together, so one claim takes both.
    let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut tx = app.db.pool.begin().await.unwrap();
    for source in [first, second] {
        let recipient = format!("{source}@example.com");
        let delivery = NewDelivery {
            source_event_id: source,
            template: Template::Welcome,
            recipient: &recipient,
            user_id: None,
            booking_id: None,
            context: serde_json::json!({ "name": "Lease", "email": recipient }),
        };
        assert!(deliveries::enqueue(&mut tx, &delivery).await.unwrap());
    }
    tx.commit().await.unwrap();
    let lease_end = eventually("the claim", WAIT, || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT claimed_until FROM deliveries WHERE source_event_id = $1",
        )
        .bind(second)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
    })
    .await;

    // The first send outlasts half the lease: the second, next in line, must not start
    // under that claim; it is given back and sent under a claim of its own, not left
    // waiting for the first claim's end (a slow batch's tail would fall a lease behind).
    eventually("the first send to time out", WAIT, || async {
        (logged(&app, first).await.0 == "retrying").then_some(())
    })
    .await;
    drop(accepting);
    let (_, attempts, sent_at) =
        eventually("the second sent", WAIT, || async { Some(logged(&app, second).await).filter(|s| s.0 == "sent") })
            .await;
    assert_eq!(attempts, 1, "given back unsent, it counts one attempt");
    assert!(sent_at.unwrap() < lease_end, "sent at {sent_at:?}: it waited for the first claim's end at {lease_end}");
}
