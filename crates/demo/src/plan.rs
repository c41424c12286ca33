//! The demo data as plain values: who, where, what is on, and which bookings end in which
//! state. Pure, so the limits the services enforce can be checked without them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ticketing_proto::booking::v1::BookingStatus;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::identity::v1::Role;

/// Every demo account's email ends with this.
pub const EMAIL_DOMAIN: &str = "demo.ticketing.local";
pub const ADMIN_PASSWORD: &str = "Admin-Demo-2026!";
pub const ORGANIZER_PASSWORD: &str = "Organizer-Demo-2026!";
pub const USER_PASSWORD: &str = "User-Demo-2026!";
pub const ADMINS: usize = 2;
pub const ORGANIZERS: usize = 3;
pub const USERS: usize = 25;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// A demo account.
#[derive(Debug, Clone)]
pub struct Person {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password: &'static str,
}

/// The admins, then the organizers, then the users.
pub fn people() -> Vec<Person> {
    let person = |local: String, name: String, role, password| Person {
        email: format!("{local}@{EMAIL_DOMAIN}"),
        name,
        role,
        password,
    };
    let admins =
        (1..=ADMINS).map(|n| person(format!("admin{n}"), format!("Demo Admin {n}"), Role::Admin, ADMIN_PASSWORD));
    let organizers = ["Spree Live", "Klassik Berlin", "Stage & Park"]
        .iter()
        .enumerate()
        .map(|(i, name)| person(format!("organizer{}", i + 1), (*name).into(), Role::Organizer, ORGANIZER_PASSWORD));
    let users =
        (1..=USERS).map(|n| person(format!("user{n:02}"), format!("Demo Fan {n:02}"), Role::User, USER_PASSWORD));
    admins.chain(organizers).chain(users).collect()
}

/// A block of identical rows.
#[derive(Debug, Clone)]
pub struct SectionPlan {
    pub name: String,
    pub rows: u32,
    pub seats_per_row: u32,
}

#[derive(Debug, Clone)]
pub struct VenuePlan {
    pub name: String,
    pub address: String,
    pub city: String,
    pub country_code: &'static str,
    pub time_zone: &'static str,
    /// Index into the organizers.
    pub organizer: usize,
    pub sections: Vec<SectionPlan>,
    pub ga_areas: Vec<(String, u32)>,
}

impl VenuePlan {
    /// The seats of the named sections.
    pub fn seats_in(&self, names: &[&str]) -> u32 {
        self.sections.iter().filter(|s| names.contains(&s.name.as_str())).map(|s| s.rows * s.seats_per_row).sum()
    }

    /// The seat map to import: rows numbered from 1, seats from 1, labels left to the catalog.
    pub fn seat_map(&self) -> catalog::SeatMap {
        let sections = self
            .sections
            .iter()
            .map(|s| catalog::Section {
                name: s.name.clone(),
                rows: (1..=s.rows)
                    .map(|r| catalog::Row {
                        name: r.to_string(),
                        seats: (1..=s.seats_per_row)
                            .map(|n| catalog::Seat { number: n.to_string(), ..Default::default() })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let general_admission_areas = self
            .ga_areas
            .iter()
            .map(|(name, capacity)| catalog::GeneralAdmissionArea {
                name: name.clone(),
                capacity: *capacity,
                ..Default::default()
            })
            .collect();
        catalog::SeatMap { sections, general_admission_areas }
    }
}

/// When an event happens relative to the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Began `hours_ago`; sold, then closed by the seed. The catalog requires a sale window
    /// still open at publication and a sale inside the event, so it "ends" shortly after.
    Past { hours_ago: u64 },
    /// On sale now, starting in `in_days`.
    OnSale { in_days: u64 },
    /// Published; the sale opens in `sale_in_minutes`, the event in `in_days`.
    Future { in_days: u64, sale_in_minutes: u64 },
}

/// An event's four instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub starts_at: SystemTime,
    pub ends_at: SystemTime,
    pub sale_starts_at: SystemTime,
    pub sale_ends_at: SystemTime,
}

impl When {
    pub fn times(self, now: SystemTime) -> Times {
        // Whole minutes read better in listings.
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60 * 60);
        let now = UNIX_EPOCH + Duration::from_secs(secs);
        let (after, before) = (|s: u64| now + Duration::from_secs(s), |s: u64| now - Duration::from_secs(s));
        match self {
            When::Past { hours_ago } => Times {
                starts_at: before(hours_ago * HOUR),
                ends_at: after(HOUR),
                sale_starts_at: before(30 * DAY),
                sale_ends_at: after(HOUR),
            },
            When::OnSale { in_days } => Times {
                starts_at: after(in_days * DAY),
                ends_at: after(in_days * DAY + 3 * HOUR),
                sale_starts_at: before(DAY),
                sale_ends_at: after(in_days * DAY - HOUR),
            },
            When::Future { in_days, sale_in_minutes } => Times {
                starts_at: after(in_days * DAY),
                ends_at: after(in_days * DAY + 3 * HOUR),
                sale_starts_at: after(sale_in_minutes * 60),
                sale_ends_at: after(in_days * DAY - HOUR),
            },
        }
    }

    /// Whether the seed books tickets for it.
    pub fn bookable(self) -> bool {
        !matches!(self, When::Future { .. })
    }
}

#[derive(Debug, Clone)]
pub enum Allocation {
    /// This many general-admission tickets.
    GeneralAdmission(u32),
    /// Every seat of these sections of the venue.
    Sections(Vec<&'static str>),
}

#[derive(Debug, Clone)]
pub struct CategoryPlan {
    pub name: &'static str,
    pub price_cents: i64,
    pub allocation: Allocation,
}

#[derive(Debug, Clone)]
pub struct EventPlan {
    pub name: String,
    pub description: String,
    /// Index into [`venues`]; the event belongs to the venue's organizer.
    pub venue: usize,
    pub when: When,
    pub per_user_limit: u32,
    pub categories: Vec<CategoryPlan>,
    /// The gateway's waiting room: buyers admitted per minute once the sale opens.
    pub waiting_room: Option<u32>,
    /// Until when buyers may cancel (catalog's cancellation policy).
    pub cancellation: Cancellation,
}

/// An event's cancellation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// Buyers may cancel until the event starts (the default).
    UntilStart,
    /// Until this many hours before the start.
    HoursBefore(u32),
    /// All sales final.
    Never,
}

/// The stadium: 20 blocks of 50 rows of 52 seats (52,000 seats) and a standing pitch.
pub const STADIUM: usize = 0;

pub fn venues() -> Vec<VenuePlan> {
    let sections = |names: &[&str], rows, seats_per_row| {
        names.iter().map(|n| SectionPlan { name: (*n).into(), rows, seats_per_row }).collect::<Vec<_>>()
    };
    let venue = |name: &str, address: &str, city: &str, organizer, sections, ga_areas: &[(&str, u32)]| VenuePlan {
        name: name.into(),
        address: address.into(),
        city: city.into(),
        country_code: "DE",
        time_zone: "Europe/Berlin",
        organizer,
        sections,
        ga_areas: ga_areas.iter().map(|(n, c)| ((*n).into(), *c)).collect(),
    };
    let blocks: Vec<String> = (101..=120).map(|n| format!("Block {n}")).collect();
    let blocks: Vec<&str> = blocks.iter().map(String::as_str).collect();
    vec![
        venue(
            "Olympiastadion Berlin",
            "Olympischer Platz 3",
            "Berlin",
            0,
            sections(&blocks, 50, 52),
            &[("Pitch", 12_000)],
        ),
        venue("Columbiahalle", "Columbiadamm 13", "Berlin", 0, vec![], &[("Hall", 3_500)]),
        venue(
            "Philharmonie",
            "Herbert-von-Karajan-Str. 1",
            "Berlin",
            1,
            sections(&["Parkett A", "Parkett B", "Rang Links", "Rang Rechts"], 20, 25),
            &[],
        ),
        venue("Kleine Bühne", "Oranienstr. 40", "Berlin", 1, vec![], &[("Floor", 400)]),
        venue(
            "Theater des Westens",
            "Kantstr. 12",
            "Berlin",
            2,
            sections(&["Stalls", "Circle", "Balcony"], 20, 20),
            &[],
        ),
        venue("Volkspark Open Air", "Am Friedrichshain 1", "Berlin", 2, vec![], &[("Meadow", 8_000)]),
    ]
}

pub fn events() -> Vec<EventPlan> {
    use Allocation::{GeneralAdmission as Ga, Sections};
    let c = |name, euros: i64, allocation| CategoryPlan { name, price_cents: euros * 100, allocation };
    let lower: Vec<&str> = vec![
        "Block 101",
        "Block 102",
        "Block 103",
        "Block 104",
        "Block 105",
        "Block 106",
        "Block 107",
        "Block 108",
        "Block 109",
        "Block 110",
    ];
    let upper: Vec<&str> = vec![
        "Block 111",
        "Block 112",
        "Block 113",
        "Block 114",
        "Block 115",
        "Block 116",
        "Block 117",
        "Block 118",
        "Block 119",
        "Block 120",
    ];
    let philharmonie = || {
        vec![
            c("Parkett", 79, Sections(vec!["Parkett A", "Parkett B"])),
            c("Rang", 45, Sections(vec!["Rang Links", "Rang Rechts"])),
        ]
    };
    let theater = || {
        vec![
            c("Stalls", 89, Sections(vec!["Stalls"])),
            c("Circle", 65, Sections(vec!["Circle"])),
            c("Balcony", 39, Sections(vec!["Balcony"])),
        ]
    };
    let e = |name: &str, description: &str, venue, when, per_user_limit, categories| EventPlan {
        name: name.into(),
        description: description.into(),
        venue,
        when,
        per_user_limit,
        categories,
        waiting_room: None,
        cancellation: Cancellation::UntilStart,
    };
    let past = |hours_ago| When::Past { hours_ago };
    let on_sale = |in_days| When::OnSale { in_days };
    let future = |in_days, sale_in_days: u64| When::Future { in_days, sale_in_minutes: sale_in_days * 24 * 60 };
    vec![
        // Buyers may cancel until two days before the show.
        EventPlan {
            cancellation: Cancellation::HoursBefore(48),
            ..e(
                "Summer Anthems Live",
                "The stadium show of the year.",
                STADIUM,
                on_sale(45),
                10,
                vec![
                    c("Lower Tier", 89, Sections(lower)),
                    c("Upper Tier", 59, Sections(upper)),
                    c("Pitch Standing", 79, Ga(12_000)),
                ],
            )
        },
        // All sales final (the seed books nothing before its sale).
        EventPlan {
            cancellation: Cancellation::Never,
            ..e(
                "Cup Final Watch Party",
                "The final on the big screens.",
                STADIUM,
                future(60, 14),
                6,
                vec![c("Pitch Standing", 25, Ga(12_000))],
            )
        },
        e(
            "Neon Nights: Synthwave",
            "Retro synths all night.",
            1,
            past(5),
            8,
            vec![c("Standing", 35, Ga(3_000)), c("Early Entry", 49, Ga(500))],
        ),
        e(
            "Indie Rooftop Sessions",
            "Four bands, one long evening.",
            1,
            on_sale(21),
            10,
            vec![c("Standing", 32, Ga(3_000)), c("Early Entry", 45, Ga(500))],
        ),
        e(
            "Bass Culture Warm-up",
            "Drum & bass until sunrise.",
            1,
            future(75, 10),
            6,
            vec![c("Standing", 29, Ga(3_500))],
        ),
        e("Beethoven: Symphony No. 9", "Ode to joy, with the full choir.", 2, past(4), 8, philharmonie()),
        e("Mahler Night", "Symphony No. 5.", 2, on_sale(30), 10, philharmonie()),
        e("Film Music Gala", "Scores from fifty years of cinema.", 2, future(90, 20), 6, philharmonie()),
        e("Jazz Trio Evenings", "Piano, bass and drums.", 3, on_sale(12), 10, vec![c("Standing", 22, Ga(400))]),
        e("Stand-up Open Mic", "New material, new faces.", 3, past(3), 8, vec![c("Standing", 12, Ga(400))]),
        e("Poetry Slam Finals", "The city's best, one stage.", 3, future(40, 7), 6, vec![c("Standing", 15, Ga(400))]),
        e("The Phantom of the Opera", "The musical, in German.", 4, on_sale(18), 10, theater()),
        e("Hamlet", "To be, or not to be.", 4, past(6), 8, theater()),
        // Its sale opens half an hour after the seed, through the waiting room: queue for it.
        EventPlan {
            waiting_room: Some(120),
            ..e(
                "A Midsummer Night's Dream",
                "Shakespeare's comedy. Its sale opens through the waiting room.",
                4,
                When::Future { in_days: 50, sale_in_minutes: 30 },
                6,
                theater(),
            )
        },
        e(
            "Open Air Reggae Day",
            "Sun, bass and food trucks.",
            5,
            on_sale(35),
            10,
            vec![c("Meadow", 39, Ga(7_000)), c("Front of Stage", 59, Ga(1_000))],
        ),
        e("Techno in the Park", "Twelve hours, three floors.", 5, past(8), 8, vec![c("Meadow", 45, Ga(8_000))]),
        e("Family Picnic Concert", "Bring a blanket.", 5, future(65, 12), 6, vec![c("Meadow", 18, Ga(8_000))]),
    ]
}

/// The state a booking is driven to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Left unpaid: it expires with its hold after `inventory.hold_ttl`.
    PendingPayment,
    /// Paid with `tok_visa`.
    Confirmed,
    /// Paid with `tok_decline`.
    Cancelled,
    /// Held through a replica with a short `inventory.hold_ttl`, left unpaid.
    Expired,
    /// Paid with `tok_refund_fail`, then cancelled: the refund fails.
    RefundPending,
    /// Paid with `tok_mastercard`, then cancelled.
    Refunded,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::PendingPayment,
        Target::Confirmed,
        Target::Cancelled,
        Target::Expired,
        Target::RefundPending,
        Target::Refunded,
    ];

    pub fn status(self) -> BookingStatus {
        match self {
            Target::PendingPayment => BookingStatus::PendingPayment,
            Target::Confirmed => BookingStatus::Confirmed,
            Target::Cancelled => BookingStatus::Cancelled,
            Target::Expired => BookingStatus::Expired,
            Target::RefundPending => BookingStatus::RefundPending,
            Target::Refunded => BookingStatus::Refunded,
        }
    }

    /// How many bookings the seed makes: more than 100 of each state.
    pub fn count(self) -> usize {
        if self == Target::Confirmed { 240 } else { 120 }
    }

    /// Closed events keep only settled bookings.
    fn fits(self, when: When) -> bool {
        match when {
            When::Past { .. } => !matches!(self, Target::PendingPayment | Target::Expired),
            When::OnSale { .. } => true,
            When::Future { .. } => false,
        }
    }
}

/// One booking to make: `quantity` tickets of a category for a user (index into the users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub event: usize,
    pub category: usize,
    pub user: usize,
    pub quantity: u32,
    pub target: Target,
}

/// [`Target::count`] bookings of each state.
pub fn all_targets() -> Vec<(Target, usize)> {
    Target::ALL.iter().map(|t| (*t, t.count())).collect()
}

/// Spreads `targets` (a number of bookings per state) over the bookable events, their
/// categories and the users, interleaving the states and keeping every user within each
/// event's per-user limit (counting every booking, settled or not).
pub fn jobs(events: &[EventPlan], users: usize, targets: Vec<(Target, usize)>) -> Result<Vec<Job>, String> {
    let mut remaining = targets;
    let mut used: HashMap<(usize, usize), u32> = HashMap::new();
    let mut per_event: HashMap<usize, usize> = HashMap::new();
    let mut jobs = Vec::new();
    // Per target, so each state spreads over all its events.
    let mut turns: HashMap<Target, usize> = HashMap::new();
    while remaining.iter().any(|(_, n)| *n > 0) {
        for (target, left) in remaining.iter_mut().filter(|(_, n)| *n > 0) {
            *left -= 1;
            let eligible: Vec<usize> = (0..events.len()).filter(|&i| target.fits(events[i].when)).collect();
            if eligible.is_empty() {
                return Err(format!("no event can take a {target:?} booking"));
            }
            let turn = turns.entry(*target).or_default();
            let event = eligible[*turn % eligible.len()];
            *turn += 1;
            let plan = &events[event];
            let n = per_event.entry(event).or_default();
            let category = *n % plan.categories.len();
            let quantity = 1 + (*n / plan.categories.len() % 2) as u32;
            let start = *n % users;
            *n += 1;
            let user = (0..users)
                .map(|k| (start + k) % users)
                .find(|&u| used.get(&(event, u)).copied().unwrap_or(0) + quantity <= plan.per_user_limit)
                .ok_or_else(|| format!("{:?}: every user is at the per-user limit", plan.name))?;
            *used.entry((event, user)).or_default() += quantity;
            jobs.push(Job { event, category, user, quantity, target: *target });
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounts_are_two_admins_three_organizers_and_25_users_with_distinct_emails() {
        let people = people();
        let count = |role| people.iter().filter(|p| p.role == role).count();
        assert_eq!((count(Role::Admin), count(Role::Organizer), count(Role::User)), (ADMINS, ORGANIZERS, USERS));
        let emails: std::collections::HashSet<_> = people.iter().map(|p| &p.email).collect();
        assert_eq!(emails.len(), people.len());
    }

    #[test]
    fn the_catalogue_has_past_on_sale_and_future_events_and_a_stadium() {
        let (venues, events) = (venues(), events());
        assert!(events.len() >= 15);
        for kind in [0, 1, 2] {
            let n = events
                .iter()
                .filter(|e| match e.when {
                    When::Past { .. } => kind == 0,
                    When::OnSale { .. } => kind == 1,
                    When::Future { .. } => kind == 2,
                })
                .count();
            assert!(n >= 3, "kind {kind}: {n} events");
        }
        let stadium = &venues[STADIUM];
        assert!(stadium.seats_in(&stadium.sections.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()) >= 50_000);
        assert!(venues.iter().any(|v| v.sections.is_empty()), "a general-admission venue");
    }

    #[test]
    fn every_event_time_is_in_the_order_the_catalog_requires() {
        let now = SystemTime::now();
        for event in events() {
            let t = event.when.times(now);
            assert!(t.starts_at < t.ends_at, "{}", event.name);
            assert!(t.sale_starts_at < t.sale_ends_at && t.sale_ends_at <= t.ends_at, "{}", event.name);
            assert!(t.sale_ends_at > now, "{}: the sale must still be open when published", event.name);
            assert_eq!(event.when.bookable(), t.sale_starts_at <= now, "{}", event.name);
        }
    }

    #[test]
    fn the_bookings_cover_every_state_and_respect_limits_and_capacities() {
        let (venues, events) = (venues(), events());
        let jobs = jobs(&events, USERS, all_targets()).unwrap();
        for target in Target::ALL {
            assert!(jobs.iter().filter(|j| j.target == target).count() > 100, "{target:?}");
        }
        let mut per_user: HashMap<(usize, usize), u32> = HashMap::new();
        let mut per_category: HashMap<(usize, usize), u32> = HashMap::new();
        for j in &jobs {
            let event = &events[j.event];
            assert!(j.target.fits(event.when), "{j:?} on {}", event.name);
            *per_user.entry((j.event, j.user)).or_default() += j.quantity;
            *per_category.entry((j.event, j.category)).or_default() += j.quantity;
            assert!(j.user < USERS);
        }
        for ((event, _), n) in per_user {
            assert!(n <= events[event].per_user_limit, "{}: {n}", events[event].name);
        }
        for ((event, category), n) in per_category {
            let plan = &events[event].categories[category];
            let capacity = match &plan.allocation {
                Allocation::GeneralAdmission(c) => *c,
                Allocation::Sections(names) => venues[events[event].venue].seats_in(names),
            };
            assert!(n <= capacity, "{}/{}: {n} > {capacity}", events[event].name, plan.name);
        }
    }
}
