//! Creates the demo data through the services, skipping it when it is already there.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::common::v1::PageRequest;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::payment::v1 as payment;

use crate::api::{
    Account, Api, CreatedEvent, Urls, authed, channel, not_on_sale_yet, retry, unavailable, unavailable_or_in_progress,
};
use crate::plan::{self, Allocation, Cancellation, Job, Target, When};

/// What to seed against.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    #[command(flatten)]
    pub urls: Urls,
    /// The bootstrap admin, who creates the demo admins and gives the organizers their role.
    #[arg(long, env = "DEMO_ADMIN_EMAIL", default_value = "admin@ticketing.local")]
    pub admin_email: String,
    #[arg(long, env = "DEMO_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// An inventory replica configured with a short `inventory.hold_ttl`: the EXPIRED
    /// bookings are held through it (without it, they are skipped).
    #[arg(long, env = "DEMO_SHORT_HOLD_INVENTORY_URL")]
    pub short_hold_inventory_url: Option<String>,
    /// Bookings in flight at once.
    #[arg(long, default_value_t = 48)]
    pub concurrency: usize,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// The demo data was already there; nothing was created.
    pub skipped: bool,
    pub events: usize,
    /// Bookings that reached each state.
    pub reached: BTreeMap<Target, usize>,
    /// The first failures, for the log.
    pub failures: Vec<String>,
    pub failed: usize,
}

/// Everything a booking job needs.
struct Ctx {
    api: Api,
    /// The bootstrap admin's token: refunds of shows that already happened are an admin's.
    admin: String,
    short_hold: Option<inventory::inventory_client::InventoryClient<tonic::transport::Channel>>,
    users: Vec<Account>,
    events: Vec<CreatedEvent>,
    plans: Vec<plan::EventPlan>,
}

/// How long a booking may take to settle: the saga crosses Kafka twice.
const SETTLE: Duration = Duration::from_secs(180);
/// How long a new event may take to reach inventory and go on sale.
const STOCKED: Duration = Duration::from_secs(120);

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let api = Api::connect(&options.urls)?;
    let password = options.admin_password.as_deref().context("the bootstrap admin's password is required")?;
    let admin = retry(Duration::from_secs(60), unavailable, || {
        let api = api.clone();
        async move { api.login(&options.admin_email, password).await }
    })
    .await
    .context("the bootstrap admin's login")?;

    let people = plan::people();
    let accounts: Vec<Account> =
        futures::stream::iter(people.iter().map(|p| api.account(&admin, p))).buffered(8).try_collect().await?;
    let organizers = &accounts[plan::ADMINS..plan::ADMINS + plan::ORGANIZERS];
    let users = accounts[plan::ADMINS + plan::ORGANIZERS..].to_vec();

    // The marker: the first organizer's venues exist only once a seed got past the accounts.
    let list = catalog::ListVenuesRequest {
        organizer_id: organizers[0].id.clone(),
        page: Some(PageRequest { limit: 1, cursor: String::new() }),
    };
    if !api.catalog.clone().list_venues(list).await?.into_inner().venues.is_empty() {
        return top_up(api, &admin, organizers, users, options.concurrency).await;
    }

    let venue_plans = plan::venues();
    let venues: Vec<catalog::Venue> =
        futures::future::try_join_all(venue_plans.iter().map(|v| api.venue(&organizers[v.organizer].token, v))).await?;
    let plans = plan::events();
    let now = SystemTime::now();
    let events: Vec<CreatedEvent> = futures::stream::iter(plans.iter().map(|e| {
        let v = &venue_plans[e.venue];
        api.event(&organizers[v.organizer].token, &venues[e.venue], e, now)
    }))
    .buffered(4)
    .try_collect()
    .await?;

    let short_hold = match &options.short_hold_inventory_url {
        Some(url) => Some(inventory::inventory_client::InventoryClient::new(channel(url)?)),
        None => None,
    };
    let mut jobs = plan::jobs(&plans, users.len(), plan::all_targets()).map_err(|e| anyhow!(e))?;
    if short_hold.is_none() {
        jobs.retain(|j| j.target != Target::Expired);
    }
    // The expiring holds first: their clock runs while the rest are made.
    jobs.sort_by_key(|j| j.target != Target::Expired);
    let ctx = Ctx { api: api.clone(), admin: admin.clone(), short_hold, users, events, plans };
    let report = book(&ctx, jobs, options.concurrency).await;

    for (plan, event) in ctx.plans.iter().zip(&ctx.events) {
        if let When::Past { .. } = plan.when {
            let owner = &organizers[venue_plans[plan.venue].organizer];
            let close = catalog::CloseEventRequest { event_id: event.id.clone() };
            api.catalog.clone().close_event(authed(close, &owner.token)).await.context("close a past event")?;
        }
    }
    Ok(Report { events: ctx.events.len(), ..report })
}

/// A seeded platform again: unpaid bookings expire with their holds, so when no more than
/// 100 are left PENDING_PAYMENT, makes [`Target::count`] new ones on the events on sale.
async fn top_up(
    api: Api,
    admin: &str,
    organizers: &[Account],
    users: Vec<Account>,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let mut on_sale = Vec::new();
    for organizer in organizers {
        let list = catalog::ListEventsRequest {
            organizer_id: organizer.id.clone(),
            statuses: vec![catalog::EventStatus::OnSale as i32],
            page: Some(PageRequest { limit: 100, cursor: String::new() }),
            ..Default::default()
        };
        on_sale.extend(api.catalog.clone().list_events(list).await?.into_inner().events);
    }
    let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let mut pending = 0;
    for event in &on_sale {
        let mut cursor = String::new();
        loop {
            let list = booking::ListEventBookingsRequest {
                event_id: event.id.clone(),
                statuses: vec![booking::BookingStatus::PendingPayment as i32],
                page: Some(PageRequest { limit: 100, cursor }),
            };
            let page = api.booking.clone().list_event_bookings(authed(list, admin)).await?.into_inner();
            // Those past their expiry are EXPIRED as soon as inventory's reaper gets to them.
            pending += page.bookings.iter().filter(|b| b.expires_at.is_some_and(|t| t.seconds > now)).count();
            cursor = page.page.map(|p| p.next_cursor).unwrap_or_default();
            if cursor.is_empty() {
                break;
            }
        }
    }
    let mut report = Report { skipped: true, ..Report::default() };
    if pending > 100 {
        return Ok(report);
    }
    let on_sale = with_room_for(&api, on_sale, Target::PendingPayment.count()).await?;
    if on_sale.is_empty() {
        return Ok(report);
    }
    // Enough of each event to place the bookings: the kind of each category and the limit.
    let plans: Vec<plan::EventPlan> = on_sale
        .iter()
        .map(|e| plan::EventPlan {
            name: e.name.clone(),
            description: String::new(),
            venue: 0,
            when: When::OnSale { in_days: 1 },
            per_user_limit: e.per_user_limit,
            categories: e
                .categories
                .iter()
                .map(|c| plan::CategoryPlan {
                    name: "",
                    price_cents: 0,
                    allocation: match c.allocation {
                        Some(catalog::category::Allocation::Seats(_)) => Allocation::Sections(vec![]),
                        _ => Allocation::GeneralAdmission(c.capacity),
                    },
                })
                .collect(),
            waiting_room: None,
            cancellation: Cancellation::UntilStart,
        })
        .collect();
    let events = on_sale
        .iter()
        .map(|e| CreatedEvent { id: e.id.clone(), categories: e.categories.iter().map(|c| c.id.clone()).collect() })
        .collect();
    let target = Target::PendingPayment;
    let jobs = plan::jobs(&plans, users.len(), vec![(target, target.count())]).map_err(|e| anyhow!(e))?;
    let ctx = Ctx { api, admin: admin.to_owned(), short_hold: None, users, events, plans };
    report = Report { skipped: true, ..book(&ctx, jobs, concurrency).await };
    Ok(report)
}

/// The events of `on_sale` whose every category can still take its share of `bookings`
/// bookings of up to two tickets each: confirmed sales, a buyer's walkthrough or a load
/// test sell the demo events out over time, and a seed run again must not ask a sold-out
/// category for a hold (issue 14). Dropping an event gives the others more bookings, so
/// it repeats until every event left has room.
async fn with_room_for(
    api: &Api,
    on_sale: Vec<catalog::Event>,
    bookings: usize,
) -> anyhow::Result<Vec<catalog::Event>> {
    let mut least = Vec::with_capacity(on_sale.len());
    for event in &on_sale {
        let request = inventory::AvailabilityRequest { event_id: event.id.clone(), ..Default::default() };
        let answer = api.inventory.clone().availability(request).await?.into_inner();
        least.push(answer.categories.iter().map(|c| c.available as usize).min().unwrap_or(0));
    }
    let categories: Vec<usize> = on_sale.iter().map(|e| e.categories.len()).collect();
    let keep = with_room(&least, &categories, bookings);
    Ok(on_sale.into_iter().zip(keep).filter_map(|(event, keep)| keep.then_some(event)).collect())
}

/// Which events to keep, given each one's `least` available tickets in any category and its
/// number of `categories`: those that can take their share of `bookings`.
fn with_room(least: &[usize], categories: &[usize], bookings: usize) -> Vec<bool> {
    let mut keep = vec![true; least.len()];
    loop {
        let events = keep.iter().filter(|k| **k).count().max(1);
        let mut dropped = false;
        for (i, kept) in keep.iter_mut().enumerate() {
            let needed = 2 * bookings.div_ceil(events).div_ceil(categories[i].max(1));
            if *kept && least[i] < needed {
                *kept = false;
                dropped = true;
            }
        }
        if !dropped {
            return keep;
        }
    }
}

/// Makes the bookings, then waits for each to reach its state.
async fn book(ctx: &Ctx, jobs: Vec<Job>, concurrency: usize) -> Report {
    let made: Vec<(Job, anyhow::Result<booking::BookingDetails>)> =
        futures::stream::iter(jobs.into_iter().map(|job| async move { (job, make(ctx, job).await) }))
            .buffer_unordered(concurrency)
            .collect()
            .await;
    let mut report = Report::default();
    let mut settle = Vec::new();
    for (job, made) in made {
        match made {
            Ok(b) => settle.push((job, b)),
            Err(e) => report.fail(job, &e),
        }
    }
    let settled: Vec<(Job, anyhow::Result<()>)> =
        futures::stream::iter(settle.iter().map(|(job, b)| async move { (*job, settle_at(ctx, *job, b).await) }))
            .buffer_unordered(concurrency)
            .collect()
            .await;
    for (job, outcome) in settled {
        match outcome {
            Ok(()) => *report.reached.entry(job.target).or_default() += 1,
            Err(e) => report.fail(job, &e),
        }
    }
    report
}

impl Report {
    fn fail(&mut self, job: Job, e: &anyhow::Error) {
        self.failed += 1;
        if self.failures.len() < 10 {
            self.failures.push(format!("{:?} booking (event {}, user {}): {e:#}", job.target, job.event, job.user));
        }
    }
}

/// Holds, books and pays (or not) as `job.target` requires; returns the booking once the
/// last call is made, without waiting for the saga.
async fn make(ctx: &Ctx, job: Job) -> anyhow::Result<booking::BookingDetails> {
    let user = &ctx.users[job.user];
    let event = &ctx.events[job.event];
    let category_id = event.categories[job.category].clone();
    use inventory::hold_request::Selection;
    let selection = match ctx.plans[job.event].categories[job.category].allocation {
        Allocation::Sections(_) => Selection::BestAvailable(inventory::BestAvailableSelection {
            category_id,
            quantity: job.quantity,
            require_adjacent: false,
        }),
        Allocation::GeneralAdmission(_) => {
            Selection::GeneralAdmission(inventory::GeneralAdmissionSelection { category_id, quantity: job.quantity })
        }
    };
    let inventory = match job.target {
        Target::Expired => ctx.short_hold.clone().context("no short-hold inventory")?,
        _ => ctx.api.inventory.clone(),
    };
    let key = uuid::Uuid::new_v4().to_string();
    // NOT_FOUND until inventory has the event's stock, FAILED_PRECONDITION until it is on sale.
    let hold = retry(STOCKED, not_on_sale_yet, || {
        let request = inventory::HoldRequest {
            event_id: event.id.clone(),
            selection: Some(selection.clone()),
            idempotency_key: key.clone(),
        };
        let mut inventory = inventory.clone();
        async move { inventory.hold(authed(request, &user.token)).await }
    })
    .await
    .context("hold")?
    .into_inner();
    // Keyed, so a retry after UNAVAILABLE (booking's pool busy) cannot book twice; within
    // the shortest hold TTL, so the hold is still there.
    let mut details = retry(Duration::from_secs(10), unavailable_or_in_progress, || {
        let create = booking::CreateBookingRequest { hold_id: hold.hold_id.clone(), idempotency_key: key.clone() };
        let mut booking = ctx.api.booking.clone();
        async move { booking.create_booking(authed(create, &user.token)).await }
    })
    .await
    .context("create booking")?
    .into_inner();

    let card = match job.target {
        Target::PendingPayment | Target::Expired => return Ok(details),
        Target::Confirmed => "tok_visa",
        Target::Cancelled => "tok_decline",
        Target::RefundPending => "tok_refund_fail",
        Target::Refunded => "tok_mastercard",
    };
    // UNAVAILABLE until payment has heard of the booking.
    retry(SETTLE, unavailable_or_in_progress, || {
        let request = payment::ChargeRequest {
            booking_id: details.id.clone(),
            amount: details.total.clone(),
            card_token: card.into(),
            idempotency_key: key.clone(),
        };
        let mut payment = ctx.api.payment.clone();
        async move { payment.charge(authed(request, &user.token)).await }
    })
    .await
    .context("charge")?;
    if matches!(job.target, Target::RefundPending | Target::Refunded) {
        wait_for(ctx, user, &details.id, booking::BookingStatus::Confirmed).await?;
        // Buyers may not cancel once a show has started: an admin refunds those by hand.
        let (token, reason) = match ctx.plans[job.event].when {
            When::Past { .. } => (&ctx.admin, "Demo: refunded by hand after the show"),
            _ => (&user.token, "Demo: plans changed"),
        };
        let cancel = booking::CancelBookingRequest {
            booking_id: details.id.clone(),
            idempotency_key: key,
            reason: reason.into(),
        };
        details = ctx.api.booking.clone().cancel_booking(authed(cancel, token)).await.context("cancel")?.into_inner();
    }
    Ok(details)
}

/// Waits until the booking is in the job's target state.
async fn settle_at(ctx: &Ctx, job: Job, b: &booking::BookingDetails) -> anyhow::Result<()> {
    wait_for(ctx, &ctx.users[job.user], &b.id, job.target.status()).await
}

async fn wait_for(ctx: &Ctx, user: &Account, id: &str, want: booking::BookingStatus) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let get = booking::GetBookingRequest { booking_id: id.into() };
        let b = ctx.api.booking.clone().get_booking(authed(get, &user.token)).await?.into_inner();
        if b.status() == want {
            return Ok(());
        }
        // Only these still move on their own towards `want`.
        use booking::BookingStatus as S;
        let moving = matches!(b.status(), S::PendingPayment | S::Confirmed | S::RefundPending);
        if !moving || Instant::now() > deadline {
            bail!("booking {id} is {:?}, not {want:?}", b.status());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_room;

    #[test]
    fn a_sold_out_event_gets_no_renewed_bookings() {
        assert_eq!(with_room(&[1000, 0, 500], &[1, 1, 2], 120), [true, false, true]);
    }

    #[test]
    fn dropping_an_event_raises_the_others_share_until_every_one_left_has_room() {
        // 120 bookings over 3 events need 80 tickets each; over the 2 left, 120 each.
        assert_eq!(with_room(&[1000, 0, 85], &[1, 1, 1], 120), [true, false, false]);
        assert_eq!(with_room(&[1000, 0, 120], &[1, 1, 1], 120), [true, false, true]);
    }

    #[test]
    fn with_every_event_sold_out_nothing_is_renewed() {
        assert_eq!(with_room(&[0, 3], &[2, 1], 120), [false, false]);
        assert!(with_room(&[], &[], 120).is_empty());
    }
}
