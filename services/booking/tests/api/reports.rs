//! Sales reports: the ledger counts a booking's tickets when it is confirmed and again when
//! it is refunded in full, per category and currency and per UTC hour or day; nothing else
//! (unpaid, cancelled or expired bookings, late payments sent back) and nothing twice. Only
//! the event's organizer and admins read it, and its window is checked.

use chrono::{DateTime, Duration, Utc};
use ticketing_kernel::time::to_proto;
use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::common::v1::Money;
use ticketing_proto::events::v1 as ev;
use tonic::Code;
use uuid::Uuid;

use crate::harness::{BookingService, authed, bad_fields, hold, on_sale, seated, standing};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("an RFC 3339 instant").with_timezone(&Utc)
}

fn ts(s: &str) -> Option<prost_types::Timestamp> {
    Some(to_proto(at(s)))
}

fn minor(money: &Option<Money>) -> i64 {
    money.as_ref().map_or(0, |m| m.minor_units)
}

/// Tickets sold, revenue, tickets refunded and refunds of one category of a report.
fn category(sales: &pb::EventSales, id: &str) -> (u64, i64, u64, i64) {
    let c = sales.categories.iter().find(|c| c.category_id == id).unwrap_or_else(|| panic!("{id} in {sales:?}"));
    (c.tickets_sold, minor(&c.revenue), c.tickets_refunded, minor(&c.refunds))
}

/// The same, summed over the series.
fn series_sum(sales: &pb::EventSales) -> (u64, i64, u64, i64) {
    sales.series.iter().fold((0, 0, 0, 0), |(t, r, tr, rf), p| {
        (t + p.tickets_sold, r + minor(&p.revenue), tr + p.tickets_refunded, rf + minor(&p.refunds))
    })
}

/// The buyer cancels their paid `booking` and payment refunds it in full.
async fn refund(service: &BookingService, buyer: &str, booking: &pb::BookingDetails) {
    let refunding = service.cancel(buyer, &booking.id, "cannot make it", "").await.expect("the buyer cancels");
    assert_eq!(refunding.status(), pb::BookingStatus::RefundPending);
    service.deliver(&refunded(&refunding)).await;
}

fn refunded(booking: &pb::BookingDetails) -> ev::RefundSucceeded {
    ev::RefundSucceeded {
        refund_id: Uuid::new_v4().to_string(),
        payment_id: booking.payment_id.clone(),
        booking_id: booking.id.clone(),
        user_id: booking.user_id.clone(),
        amount: booking.total.clone(),
        fully_refunded: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn sales_count_confirmed_tickets_and_full_refunds_per_category() {
    let service = BookingService::start().await;
    let event = on_sale();
    let (standing_id, seated_id) = (event.categories[0].id.clone(), event.categories[1].id.clone());
    let (organizer, token) = service.account(Role::Organizer);
    service.organizes(organizer, &event.id).await;
    let (a, b, c) = (service.account(Role::User), service.account(Role::User), service.account(Role::User));

    // Two standing tickets at 45.00, paid, then cancelled and refunded.
    let returned = service.book(&a, &event).await;
    service.pay(&returned).await;
    refund(&service, &a.1, &returned).await;
    // One standing ticket and two seats at 99.00, paid.
    let seats = [Uuid::new_v4().to_string(), Uuid::new_v4().to_string()];
    let lines = vec![standing(&event, 1), seated(&event, &[seats[0].as_str(), seats[1].as_str()])];
    let held = service.knows_hold(hold(b.0, &event, lines));
    let kept = service.create(&b.1, &held, "").await.expect("the booking");
    service.pay(&kept).await;
    // Never paid, and cancelled before paying: not sales.
    let unpaid = service.book(&c, &event).await;
    let dropped = service.book(&c, &event).await;
    service.cancel(&c.1, &dropped.id, "", "").await.expect("cancelled unpaid");

    let now = Utc::now();
    let (from, to) = (Some(to_proto(now - Duration::hours(1))), Some(to_proto(now + Duration::hours(1))));
    let sales = service.sales(&token, &event.id, from, to, pb::SalesBucket::Hour).await.expect("the report");
    assert_eq!(sales.categories.len(), 2, "{sales:?}");
    assert_eq!(category(&sales, &standing_id), (3, 3 * 4500, 2, 2 * 4500));
    assert_eq!(category(&sales, &seated_id), (2, 2 * 9900, 0, 0));
    assert!(sales.categories.iter().all(|c| c.revenue.as_ref().unwrap().currency == "EUR"));
    // Every hour of the window, widened to whole hours; the series adds up to the totals.
    assert_eq!(sales.bucket(), pb::SalesBucket::Hour);
    assert!(matches!(sales.series.len(), 2 | 3), "{:?}", sales.series);
    assert_eq!(series_sum(&sales), (5, 3 * 4500 + 2 * 9900, 2, 2 * 4500));

    // What the CSV export reads of each booking.
    let request = pb::ListEventBookingsRequest { event_id: event.id.clone(), ..Default::default() };
    let listed = service.client().list_event_bookings(authed(&token, request)).await.expect("listed").into_inner();
    let find = |id: &str| listed.bookings.iter().find(|b| b.id == id).expect("listed").clone();
    let (returned, kept, unpaid) = (find(&returned.id), find(&kept.id), find(&unpaid.id));
    assert_eq!(returned.status(), pb::BookingStatus::Refunded);
    assert!(returned.confirmed_at.is_some() && kept.confirmed_at.is_some() && unpaid.confirmed_at.is_none());
    assert_eq!((minor(&returned.refunded), minor(&kept.refunded), minor(&unpaid.refunded)), (9000, 0, 0));
    assert_eq!(returned.refunded.unwrap().currency, "EUR");
}

#[tokio::test]
async fn a_refund_counts_once_and_a_late_payment_sent_back_not_at_all() {
    let service = BookingService::start().await;
    let event = on_sale();
    let (organizer, token) = service.account(Role::Organizer);
    service.organizes(organizer, &event.id).await;
    let buyer = service.account(Role::User);

    let booking = service.book(&buyer, &event).await;
    service.pay(&booking).await;
    let refunding = service.cancel(&buyer.1, &booking.id, "", "").await.expect("cancelled");
    let once = refunded(&refunding);
    service.deliver(&once).await;
    // Redelivered under another envelope id, and a second refund event of the same booking.
    service.deliver(&once).await;
    service.deliver(&refunded(&refunding)).await;

    // Paid after its hold expired: the payment goes back, nothing was sold.
    let late = service.book(&buyer, &event).await;
    service.deliver(&ev::HoldExpired { hold_id: late.hold_id.clone(), ..Default::default() }).await;
    service.pay(&late).await;
    let late_now = service.get(&buyer.1, &late.id).await.expect("the booking");
    assert_eq!(late_now.status(), pb::BookingStatus::Expired);
    service.deliver(&ev::RefundSucceeded { payment_id: late_now.payment_id.clone(), ..refunded(&late_now) }).await;

    let sales = service.sales(&token, &event.id, None, None, pb::SalesBucket::Unspecified).await.expect("the report");
    assert_eq!(category(&sales, &event.categories[0].id), (2, 9000, 2, 9000));
    assert_eq!(sales.bucket(), pb::SalesBucket::Day, "days unless asked otherwise");
    assert_eq!(sales.series.len(), 31, "the last 30 days, widened to whole days");
    assert_eq!(series_sum(&sales), (2, 9000, 2, 9000));
    let late_now = service.get(&buyer.1, &late.id).await.expect("the booking");
    assert_eq!((late_now.confirmed_at, minor(&late_now.refunded)), (None, 0));
}

#[tokio::test]
async fn buckets_are_utc_hours_and_days_from_their_start_up_to_but_not_including_their_end() {
    let service = BookingService::start().await;
    let event = on_sale();
    let (organizer, token) = service.account(Role::Organizer);
    service.organizes(organizer, &event.id).await;
    let buyer = service.account(Role::User);
    let mut bookings = Vec::new();
    for when in ["2026-06-01T10:59:59.999999Z", "2026-06-01T11:00:00Z", "2026-06-02T00:00:00Z"] {
        let booking = service.book(&buyer, &event).await;
        service.pay(&booking).await;
        service.date_sales(&booking.id, at(when)).await;
        bookings.push(booking);
    }

    // From 10:30 (rounded down to 10:00) to midnight, exclusive: the third sale is outside.
    let hourly = service
        .sales(&token, &event.id, ts("2026-06-01T10:30:00Z"), ts("2026-06-02T00:00:00Z"), pb::SalesBucket::Hour)
        .await
        .expect("the report");
    assert_eq!((hourly.from, hourly.to), (ts("2026-06-01T10:00:00Z"), ts("2026-06-02T00:00:00Z")));
    assert_eq!(hourly.series.len(), 14);
    let tickets: Vec<(Option<prost_types::Timestamp>, u64)> =
        hourly.series.iter().filter(|p| p.tickets_sold > 0).map(|p| (p.start, p.tickets_sold)).collect();
    assert_eq!(tickets, [(ts("2026-06-01T10:00:00Z"), 2), (ts("2026-06-01T11:00:00Z"), 2)]);
    assert_eq!(minor(&hourly.series[0].revenue), 9000);
    assert!(hourly.series[2..].iter().all(|p| minor(&p.revenue) == 0 && p.revenue.is_some()), "zeros, in EUR");

    // `to` a microsecond past midnight takes the whole next day.
    let daily = service
        .sales(&token, &event.id, ts("2026-06-01T00:00:00Z"), ts("2026-06-02T00:00:00.000001Z"), pb::SalesBucket::Day)
        .await
        .expect("the report");
    let days: Vec<u64> = daily.series.iter().map(|p| p.tickets_sold).collect();
    assert_eq!(days, [4, 2]);
    assert_eq!(daily.to, ts("2026-06-03T00:00:00Z"));
    // The totals are all time, whatever the window.
    assert_eq!(category(&daily, &event.categories[0].id), (6, 6 * 4500, 0, 0));
}

#[tokio::test]
async fn only_the_events_organizer_and_admins_read_its_sales_over_a_checked_window() {
    let service = BookingService::start().await;
    let event = on_sale();
    let (organizer, token) = service.account(Role::Organizer);
    service.organizes(organizer, &event.id).await;
    let day = pb::SalesBucket::Day;

    for (who, role) in [("another organizer", Role::Organizer), ("a buyer", Role::User)] {
        let (_, other) = service.account(role);
        let refused = service.sales(&other, &event.id, None, None, day).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{who}: {refused:?}");
    }
    let (_, admin) = service.account(Role::Admin);
    let empty = service.sales(&admin, &event.id, None, None, day).await.expect("an admin reads it");
    assert!(empty.categories.is_empty() && empty.series.is_empty(), "nothing sold, no currency: {empty:?}");

    // An event booking has not heard of: the catalog says who organizes it.
    let draft = on_sale();
    let (owner, owner_token) = service.account(Role::Organizer);
    service.knows_event(&pb_event_of(&draft, owner));
    service.sales(&owner_token, &draft.id, None, None, day).await.expect("the catalog's organizer reads it");
    let refused = service.sales(&token, &draft.id, None, None, day).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let unknown = Uuid::new_v4().to_string();
    assert_eq!(service.sales(&token, &unknown, None, None, day).await.unwrap_err().code(), Code::PermissionDenied);

    let bad = |from: &str, to: &str, bucket| {
        let (service, token, event) = (&service, &token, &event.id);
        let (from, to) = (ts(from), ts(to));
        async move { bad_fields(&service.sales(token, event, from, to, bucket).await.unwrap_err()) }
    };
    assert_eq!(bad("2026-06-02T00:00:00Z", "2026-06-01T00:00:00Z", day).await, ["from"]);
    assert_eq!(bad("2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z", day).await, ["from"]);
    assert_eq!(bad("2026-01-01T00:00:00Z", "2026-02-01T00:00:01Z", pb::SalesBucket::Hour).await, ["to"]);
    assert_eq!(bad("2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z", day).await, ["to"]);
    let request = pb::GetEventSalesRequest { event_id: event.id.clone(), bucket: 99, ..Default::default() };
    assert_eq!(bad_fields(&service.client().get_event_sales(authed(&token, request)).await.unwrap_err()), ["bucket"]);
    let refused = service.sales(&token, "not-an-id", None, None, day).await.unwrap_err();
    assert_eq!(bad_fields(&refused), ["event_id"]);
}

/// `event` as the catalog answers it, organized by `organizer`.
fn pb_event_of(event: &ticketing_proto::catalog::v1::Event, organizer: Uuid) -> ticketing_proto::catalog::v1::Event {
    ticketing_proto::catalog::v1::Event { organizer_id: organizer.to_string(), ..event.clone() }
}
