//! The services' gRPC clients and the calls the seed and the load generator share:
//! accounts, venues and events.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::common::v1::Money;
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::inventory::v1 as inventory;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::plan::{Allocation, Cancellation, CategoryPlan, EventPlan, Person, VenuePlan, When};

type IdentityClient = identity::identity_client::IdentityClient<Channel>;
type CatalogClient = catalog::catalog_client::CatalogClient<Channel>;
type InventoryClient = inventory::inventory_client::InventoryClient<Channel>;
type BookingClient = ticketing_proto::booking::v1::booking_client::BookingClient<Channel>;
type PaymentClient = ticketing_proto::payment::v1::payment_client::PaymentClient<Channel>;

/// Deadline of one call; generous, because a stadium's seat map travels in one.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Seat maps and seated events of a stadium exceed tonic's 4 MiB default.
const MAX_MESSAGE: usize = 64 << 20;

/// The services' gRPC addresses.
#[derive(Debug, Clone, clap::Args)]
pub struct Urls {
    #[arg(long, env = "DEMO_IDENTITY_URL", default_value = "http://127.0.0.1:50051")]
    pub identity_url: String,
    #[arg(long, env = "DEMO_CATALOG_URL", default_value = "http://127.0.0.1:50052")]
    pub catalog_url: String,
    #[arg(long, env = "DEMO_INVENTORY_URL", default_value = "http://127.0.0.1:50053")]
    pub inventory_url: String,
    #[arg(long, env = "DEMO_BOOKING_URL", default_value = "http://127.0.0.1:50054")]
    pub booking_url: String,
    #[arg(long, env = "DEMO_PAYMENT_URL", default_value = "http://127.0.0.1:50055")]
    pub payment_url: String,
}

/// One client per service; cheap to clone.
#[derive(Clone)]
pub struct Api {
    pub identity: IdentityClient,
    pub catalog: CatalogClient,
    pub inventory: InventoryClient,
    pub booking: BookingClient,
    pub payment: PaymentClient,
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// A created event: its id and its categories' ids, in the plan's order.
#[derive(Debug, Clone)]
pub struct CreatedEvent {
    pub id: String,
    pub categories: Vec<String>,
}

/// A general-admission event on sale now, made by [`Api::ga_sale`].
#[derive(Debug, Clone)]
pub struct GaSale {
    pub event: String,
    pub category: String,
}

/// `message` with the caller's bearer token.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    ticketing_platform::auth::with_bearer(tonic::Request::new(message), token)
}

/// A channel to one service (lazily connected).
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    ticketing_platform::peers::channel(url, CALL_TIMEOUT)
}

impl Api {
    pub fn connect(urls: &Urls) -> anyhow::Result<Self> {
        Ok(Self {
            identity: IdentityClient::new(channel(&urls.identity_url)?),
            catalog: CatalogClient::new(channel(&urls.catalog_url)?)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            inventory: InventoryClient::new(channel(&urls.inventory_url)?),
            booking: BookingClient::new(channel(&urls.booking_url)?),
            payment: PaymentClient::new(channel(&urls.payment_url)?),
        })
    }

    /// Signs in; the access token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String, Status> {
        let request = identity::LoginRequest { email: email.into(), password: password.into() };
        Ok(self.identity.clone().login(request).await?.into_inner().access_token)
    }

    /// Registers `person` unless the email is taken, marks its email verified and gives it
    /// its role (as `admin`), and signs it in: idempotent, so a second seed finds the same
    /// accounts.
    pub async fn account(&self, admin: &str, person: &Person) -> anyhow::Result<Account> {
        let register = identity::RegisterRequest {
            email: person.email.clone(),
            password: person.password.into(),
            display_name: person.name.clone(),
        };
        // A taken email is answered as a new one: the login below finds the account.
        self.identity.clone().register(register).await.with_context(|| format!("register {}", person.email))?;
        let mut token = self.login(&person.email, person.password).await.context("login")?;
        let me = self.identity.clone().get_me(authed(identity::GetMeRequest {}, &token)).await?.into_inner();
        let mut changed = false;
        // Demo and load-test accounts have no inbox: they come verified.
        if !me.email_verified {
            let verify = identity::MarkEmailVerifiedRequest { user_id: me.id.clone() };
            self.identity.clone().mark_email_verified(authed(verify, admin)).await.context("mark verified")?;
            changed = true;
        }
        if me.role != person.role as i32 {
            let set = identity::SetUserRoleRequest { user_id: me.id.clone(), role: person.role as i32 };
            self.identity.clone().set_user_role(authed(set, admin)).await.context("set role")?;
            changed = true;
        }
        if changed {
            // The role and `email_verified` travel in the token: sign in again to carry them.
            token = self.login(&person.email, person.password).await.context("login")?;
        }
        Ok(Account { id: me.id, email: person.email.clone(), token })
    }

    /// [`Api::account`] for each of `people`, `concurrency` at a time (registration hashes a
    /// password: a few at once keep identity responsive).
    pub async fn accounts(
        &self,
        admin: &str,
        people: impl IntoIterator<Item = Person>,
        concurrency: usize,
    ) -> anyhow::Result<Vec<Account>> {
        futures::stream::iter(people.into_iter().map(|person| async move { self.account(admin, &person).await }))
            .buffered(concurrency)
            .try_collect()
            .await
    }

    /// Creates the venue and imports its seat map in one call; returns the venue with seat ids.
    pub async fn venue(&self, owner: &str, plan: &VenuePlan) -> anyhow::Result<catalog::Venue> {
        let mut catalog = self.catalog.clone();
        let create = catalog::CreateVenueRequest {
            name: plan.name.clone(),
            address: plan.address.clone(),
            city: plan.city.clone(),
            country_code: plan.country_code.into(),
            time_zone: plan.time_zone.into(),
            organizer_id: String::new(),
        };
        let venue = catalog.create_venue(authed(create, owner)).await.context("create venue")?.into_inner();
        let import = catalog::ImportSeatMapRequest {
            venue_id: venue.id,
            seat_map: Some(plan.seat_map()),
            expected_revision: None,
        };
        let venue = catalog.import_seat_map(authed(import, owner)).await.context("import seat map")?.into_inner();
        Ok(venue)
    }

    /// Creates the event with its categories at `venue` (as returned by [`Api::venue`]) and
    /// publishes it; the catalog's scheduler starts the sale when `sale_starts_at` is due.
    pub async fn event(
        &self,
        owner: &str,
        venue: &catalog::Venue,
        plan: &EventPlan,
        now: SystemTime,
    ) -> anyhow::Result<CreatedEvent> {
        let mut catalog = self.catalog.clone();
        let times = plan.when.times(now);
        let create = catalog::CreateEventRequest {
            venue_id: venue.id.clone(),
            name: plan.name.clone(),
            description: plan.description.clone(),
            starts_at: Some(times.starts_at.into()),
            ends_at: Some(times.ends_at.into()),
            time_zone: String::new(),
            sale_starts_at: Some(times.sale_starts_at.into()),
            sale_ends_at: Some(times.sale_ends_at.into()),
            per_user_limit: Some(plan.per_user_limit),
            organizer_id: String::new(),
            waiting_room: plan
                .waiting_room
                .map(|admission_per_minute| catalog::WaitingRoom { enabled: true, admission_per_minute }),
            cancellation_policy: Some(match plan.cancellation {
                Cancellation::UntilStart => catalog::CancellationPolicy::default(),
                Cancellation::HoursBefore(hours) => {
                    catalog::CancellationPolicy { no_buyer_cancellation: false, cutoff_minutes: hours * 60 }
                }
                Cancellation::Never => catalog::CancellationPolicy { no_buyer_cancellation: true, cutoff_minutes: 0 },
            }),
        };
        let event = catalog.create_event(authed(create, owner)).await.context("create event")?.into_inner();
        let map = venue.seat_map.clone().unwrap_or_default();
        let mut categories = Vec::with_capacity(plan.categories.len());
        for c in &plan.categories {
            use catalog::create_category_request::Allocation as A;
            let allocation = match &c.allocation {
                Allocation::GeneralAdmission(capacity) => A::GeneralAdmission(catalog::GeneralAdmissionAllocation {
                    capacity: *capacity,
                    area_id: String::new(),
                }),
                Allocation::Sections(names) => {
                    let seat_ids: Vec<String> = map
                        .sections
                        .iter()
                        .filter(|s| names.contains(&s.name.as_str()))
                        .flat_map(|s| s.rows.iter().flat_map(|r| r.seats.iter().map(|seat| seat.id.clone())))
                        .collect();
                    if seat_ids.is_empty() {
                        bail!("category {:?}: venue {:?} has no sections {names:?}", c.name, venue.name);
                    }
                    A::Seats(catalog::SeatAllocation { seat_ids })
                }
            };
            let create = catalog::CreateCategoryRequest {
                event_id: event.id.clone(),
                name: c.name.into(),
                description: String::new(),
                price: Some(Money { currency: "EUR".into(), minor_units: c.price_cents }),
                allocation: Some(allocation),
            };
            let category = catalog.create_category(authed(create, owner)).await.context("create category")?;
            categories.push(category.into_inner().id);
        }
        let publish = catalog::PublishEventRequest { event_id: event.id.clone() };
        catalog.publish_event(authed(publish, owner)).await.with_context(|| format!("publish {:?}", plan.name))?;
        if matches!(plan.when, When::Past { .. } | When::OnSale { .. }) {
            // Sooner than the scheduler's next round; it may have won the race, which is fine.
            let start = catalog::StartSaleRequest { event_id: event.id.clone() };
            match catalog.start_sale(authed(start, owner)).await {
                Ok(_) => {}
                Err(s) if s.code() == Code::FailedPrecondition => {}
                Err(s) => return Err(s).context("start sale"),
            }
        }
        Ok(CreatedEvent { id: event.id, categories })
    }

    /// A general-admission event of `organizer`'s, on sale now at a venue of its own, with
    /// `capacity` tickets at EUR 10 and at most `per_user_limit` per buyer; returns once
    /// inventory sells it (a hold by `buyer` is granted, then released), so load can start.
    pub async fn ga_sale(
        &self,
        organizer: &Account,
        buyer: &Account,
        name: &str,
        capacity: u32,
        per_user_limit: u32,
    ) -> anyhow::Result<GaSale> {
        let venue = VenuePlan {
            name: format!("{name} Hall"),
            address: "1 Benchmark Way".into(),
            city: "Berlin".into(),
            country_code: "DE",
            time_zone: "Europe/Berlin",
            organizer: 0,
            sections: vec![],
            ga_areas: vec![("Floor".into(), capacity)],
        };
        let plan = EventPlan {
            name: name.into(),
            description: "Made for a load run.".into(),
            venue: 0,
            when: When::OnSale { in_days: 30 },
            per_user_limit,
            categories: vec![CategoryPlan {
                name: "Floor",
                price_cents: 1000,
                allocation: Allocation::GeneralAdmission(capacity),
            }],
            waiting_room: None,
            cancellation: Cancellation::UntilStart,
        };
        let venue = self.venue(&organizer.token, &venue).await?;
        let event = self.event(&organizer.token, &venue, &plan, SystemTime::now()).await?;
        let sale = GaSale { event: event.id, category: event.categories[0].clone() };
        // Ready once inventory has the stock and the sale has started.
        let hold = retry(Duration::from_secs(120), not_on_sale_yet, || {
            let mut inventory = self.inventory.clone();
            let request = ga_hold(&sale.event, &sale.category, 1);
            async move { inventory.hold(authed(request, &buyer.token)).await }
        })
        .await
        .context("the event never went on sale")?
        .into_inner();
        let release = inventory::ReleaseRequest { hold_id: hold.hold_id };
        self.inventory.clone().release(authed(release, &buyer.token)).await.context("release the probe hold")?;
        Ok(sale)
    }
}

/// A hold of `quantity` general-admission tickets of `category`.
pub fn ga_hold(event: &str, category: &str, quantity: u32) -> inventory::HoldRequest {
    inventory::HoldRequest {
        event_id: event.into(),
        selection: Some(inventory::hold_request::Selection::GeneralAdmission(inventory::GeneralAdmissionSelection {
            category_id: category.into(),
            quantity,
        })),
        idempotency_key: String::new(),
    }
}

/// A service that is up but not ready for the call yet.
pub fn unavailable(s: &Status) -> bool {
    s.code() == Code::Unavailable
}

/// [`unavailable`], or ABORTED: an earlier attempt with the same idempotency key is still
/// running (it outlived its call's deadline on a busy machine, and the server finishes it
/// anyway). The key makes the repeat safe; it replays the first attempt's answer.
pub fn unavailable_or_in_progress(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Aborted)
}

/// A hold refused because inventory has not stocked the event yet (NOT_FOUND) or its sale
/// has not opened yet; sold out and over the limit are final.
pub fn not_on_sale_yet(s: &Status) -> bool {
    match s.code() {
        Code::NotFound | Code::Unavailable => true,
        Code::FailedPrecondition => ticketing_platform::status::refusal_reason(s).as_deref() == Some("NOT_ON_SALE"),
        _ => false,
    }
}

/// Retries `call` while it fails in a way `transient` accepts, for at most `within`: the
/// saga's consumers make a new event, booking or payment known to the next service a
/// moment after the call that created it returns.
pub async fn retry<T, F, Fut>(within: Duration, transient: fn(&Status) -> bool, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(50);
    loop {
        match call().await {
            Err(s) if transient(&s) && Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}
