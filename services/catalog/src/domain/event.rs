//! Events: the lifecycle state machine, the editable details and the rules they obey.

use std::fmt;

use chrono::{DateTime, Datelike as _, Utc};
use uuid::Uuid;

use super::category::{Allocation, Category};
use super::{CatalogError, Violations, text};

/// Tickets one user may hold and buy when the organizer sets no limit.
pub const DEFAULT_PER_USER_LIMIT: u32 = 6;
/// Highest per-user limit accepted.
pub const MAX_PER_USER_LIMIT: u32 = 100;
/// Highest waiting-room admission rate accepted, per minute.
pub const MAX_ADMISSION_PER_MINUTE: u32 = 1_000_000;
/// Longest cancellation cut-off accepted: a year before the start, in minutes.
pub const MAX_CANCELLATION_CUTOFF_MINUTES: u32 = 525_600;
const NAME_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 10_000;
const REASON_MAX: usize = 1_000;

/// Where an event is in its life. DRAFT → PUBLISHED → ON_SALE → CLOSED, or CANCELLED from any
/// status but CLOSED; CLOSED and CANCELLED are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStatus {
    /// Visible only to its organizer and admins; fully editable.
    Draft,
    /// Public with stock, but no holds until the sale starts.
    Published,
    /// Holds are accepted.
    OnSale,
    /// The sale is over.
    Closed,
    /// Called off.
    Cancelled,
}

/// A lifecycle step: what the status changes and the Kafka events are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// DRAFT → PUBLISHED.
    Publish,
    /// PUBLISHED → ON_SALE.
    StartSale,
    /// PUBLISHED or ON_SALE → CLOSED.
    Close,
    /// DRAFT, PUBLISHED or ON_SALE → CANCELLED.
    Cancel,
}

impl From<Transition> for Action {
    fn from(t: Transition) -> Self {
        match t {
            Transition::Publish => Self::Publish,
            Transition::StartSale => Self::StartSale,
            Transition::Close => Self::Close,
            Transition::Cancel => Self::Cancel,
        }
    }
}

/// Something asked of an event, checked against its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// DRAFT → PUBLISHED.
    Publish,
    /// PUBLISHED → ON_SALE.
    StartSale,
    /// PUBLISHED or ON_SALE → CLOSED.
    Close,
    /// DRAFT, PUBLISHED or ON_SALE → CANCELLED.
    Cancel,
    /// Change the event's details (not once it is final).
    Update,
    /// Add, change or remove a category (DRAFT only: published categories are stock elsewhere).
    EditCategories,
}

impl EventStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [Self::Draft, Self::Published, Self::OnSale, Self::Closed, Self::Cancelled];

    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
            Self::OnSale => "on_sale",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status stored as `value`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// The status after `action`, or why the action is refused in this status.
    pub fn apply(self, action: Action) -> Result<Self, CatalogError> {
        use Action::*;
        use EventStatus::*;
        match (self, action) {
            (Draft, Publish) => Ok(Published),
            (Published, StartSale) => Ok(OnSale),
            (Published | OnSale, Close) => Ok(Closed),
            (Draft | Published | OnSale, Cancel) => Ok(Cancelled),
            (Draft | Published | OnSale, Update) | (Draft, EditCategories) => Ok(self),
            (status, action) => Err(CatalogError::InvalidTransition { status, action }),
        }
    }
}

/// The API's names, so messages read like the enum clients see.
impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str().to_ascii_uppercase())
    }
}

/// Phrased to complete "cannot … an event that is DRAFT".
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Publish => "publish",
            Self::StartSale => "start the sale of",
            Self::Close => "close",
            Self::Cancel => "cancel",
            Self::Update => "update",
            Self::EditCategories => "change the categories of",
        })
    }
}

/// The fields an organizer edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDetails {
    /// Where it takes place.
    pub venue_id: Uuid,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Doors open.
    pub starts_at: DateTime<Utc>,
    /// The end.
    pub ends_at: DateTime<Utc>,
    /// IANA zone local times are shown in; empty on creation means "the venue's".
    pub time_zone: String,
    /// Holds accepted from (inclusive); required to publish.
    pub sale_starts_at: Option<DateTime<Utc>>,
    /// Holds accepted until (exclusive); required to publish.
    pub sale_ends_at: Option<DateTime<Utc>>,
    /// Tickets per user across holds and bookings.
    pub per_user_limit: u32,
    /// Buyers the gateway's waiting room admits per minute; `None` means no waiting room.
    pub waiting_room: Option<u32>,
    /// Until when buyers may cancel a paid booking.
    pub cancellation: CancellationPolicy,
}

/// Until when buyers may cancel a paid booking themselves for a refund. Admins may
/// always refund by hand; booking enforces the policy when a buyer cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancellationPolicy {
    /// Until this many minutes before the start (0: until the start).
    Until {
        /// Minutes before `starts_at`.
        minutes_before_start: u32,
    },
    /// Never: all sales are final.
    Never,
}

impl Default for CancellationPolicy {
    /// Buyers may cancel until the event starts: never after they could have attended.
    fn default() -> Self {
        Self::Until { minutes_before_start: 0 }
    }
}

/// A cancellation policy as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct CancellationPolicyInput {
    /// All sales final.
    pub no_buyer_cancellation: bool,
    /// Minutes before the start; ignored with `no_buyer_cancellation`.
    pub cutoff_minutes: u32,
}

impl CancellationPolicyInput {
    fn validate(self) -> Result<CancellationPolicy, String> {
        match self {
            Self { no_buyer_cancellation: true, .. } => Ok(CancellationPolicy::Never),
            Self { cutoff_minutes: minutes @ 0..=MAX_CANCELLATION_CUTOFF_MINUTES, .. } => {
                Ok(CancellationPolicy::Until { minutes_before_start: minutes })
            }
            _ => Err(format!("cutoff_minutes must be at most {MAX_CANCELLATION_CUTOFF_MINUTES} (a year)")),
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stable id.
    pub id: Uuid,
    /// Owner.
    pub organizer_id: Uuid,
    /// Editable fields.
    pub details: EventDetails,
    /// Lifecycle status.
    pub status: EventStatus,
    /// Incremented by every change.
    pub version: u64,
    /// Set on cancellation.
    pub cancellation_reason: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it left DRAFT.
    pub published_at: Option<DateTime<Utc>>,
    /// Its categories, oldest first.
    pub categories: Vec<Category>,
}

/// A CreateEvent request as received.
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    /// Admin only; empty means the caller.
    pub organizer_id: String,
    /// Where it takes place.
    pub venue_id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Required.
    pub starts_at: Option<DateTime<Utc>>,
    /// Required.
    pub ends_at: Option<DateTime<Utc>>,
    /// Empty means the venue's.
    pub time_zone: String,
    /// Optional in DRAFT.
    pub sale_starts_at: Option<DateTime<Utc>>,
    /// Optional in DRAFT.
    pub sale_ends_at: Option<DateTime<Utc>>,
    /// Absent means [`DEFAULT_PER_USER_LIMIT`].
    pub per_user_limit: Option<u32>,
    /// Absent means no waiting room.
    pub waiting_room: Option<WaitingRoomInput>,
    /// Absent means buyers may cancel until the start.
    pub cancellation_policy: Option<CancellationPolicyInput>,
}

/// A waiting-room setting as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct WaitingRoomInput {
    /// On-sale mode: holds need an admission pass.
    pub enabled: bool,
    /// Buyers admitted per minute; ignored when disabled.
    pub admission_per_minute: u32,
}

impl WaitingRoomInput {
    /// The admission rate, or `None` when disabled.
    fn validate(self) -> Result<Option<u32>, String> {
        match self {
            Self { enabled: false, .. } => Ok(None),
            Self { admission_per_minute: rate @ 1..=MAX_ADMISSION_PER_MINUTE, .. } => Ok(Some(rate)),
            _ => Err(format!("admission_per_minute must be between 1 and {MAX_ADMISSION_PER_MINUTE} when enabled")),
        }
    }
}

/// A validated CreateEvent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The owner asked for, if any.
    pub organizer_id: Option<Uuid>,
    /// The details; an empty time zone means the venue's.
    pub details: EventDetails,
}

impl EventInput {
    /// Checks every field and the schedule, reporting all problems at once.
    pub fn validate(self) -> Result<NewEvent, CatalogError> {
        let mut v = Violations::default();
        let organizer_id = v.check("organizer_id", text::optional_id(&self.organizer_id));
        let venue_id = v.check("venue_id", text::id(&self.venue_id));
        let name = v.check("name", text::name(&self.name, NAME_MAX));
        let description = v.check("description", text::paragraph(&self.description, DESCRIPTION_MAX));
        let time_zone = if self.time_zone.trim().is_empty() {
            Some(String::new())
        } else {
            v.check("time_zone", text::time_zone(&self.time_zone))
        };
        let starts_at = v.check("starts_at", required_instant(self.starts_at));
        let ends_at = v.check("ends_at", required_instant(self.ends_at));
        let sale_starts_at = v.check("sale_starts_at", self.sale_starts_at.map(instant).transpose());
        let sale_ends_at = v.check("sale_ends_at", self.sale_ends_at.map(instant).transpose());
        let per_user_limit =
            v.check("per_user_limit", per_user_limit(self.per_user_limit.unwrap_or(DEFAULT_PER_USER_LIMIT)));
        let waiting_room = v.check("waiting_room", self.waiting_room.unwrap_or_default().validate());
        let cancellation = v.check("cancellation_policy", self.cancellation_policy.unwrap_or_default().validate());
        let (
            Some(organizer_id),
            Some(venue_id),
            Some(name),
            Some(description),
            Some(time_zone),
            Some(starts_at),
            Some(ends_at),
            Some(sale_starts_at),
            Some(sale_ends_at),
            Some(per_user_limit),
            Some(waiting_room),
            Some(cancellation),
        ) = (
            organizer_id,
            venue_id,
            name,
            description,
            time_zone,
            starts_at,
            ends_at,
            sale_starts_at,
            sale_ends_at,
            per_user_limit,
            waiting_room,
            cancellation,
        )
        else {
            return Err(v.into_error());
        };
        let details = EventDetails {
            venue_id,
            name,
            description,
            starts_at,
            ends_at,
            time_zone,
            sale_starts_at,
            sale_ends_at,
            per_user_limit,
            waiting_room,
            cancellation,
        };
        check_schedule(&details, &mut v);
        v.finish()?;
        Ok(NewEvent { organizer_id, details })
    }
}

/// An UpdateEvent request: absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct EventPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New venue (DRAFT only).
    pub venue_id: Option<String>,
    /// New start.
    pub starts_at: Option<DateTime<Utc>>,
    /// New end.
    pub ends_at: Option<DateTime<Utc>>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// New sale start (not once ON_SALE).
    pub sale_starts_at: Option<DateTime<Utc>>,
    /// New sale end.
    pub sale_ends_at: Option<DateTime<Utc>>,
    /// New per-user limit.
    pub per_user_limit: Option<u32>,
    /// New waiting-room setting (not once ON_SALE).
    pub waiting_room: Option<WaitingRoomInput>,
    /// New cancellation policy (not once ON_SALE).
    pub cancellation_policy: Option<CancellationPolicyInput>,
}

impl Event {
    /// The details after `patch`, validated against the fields and the status: once published
    /// the venue is frozen, and once ON_SALE the sale start and the waiting room are (the sale
    /// has begun; the gateway's queue was shuffled and admits at the rate since then), and so
    /// is the cancellation policy (buyers keep the terms they bought under).
    pub fn patched(&self, patch: EventPatch) -> Result<EventDetails, CatalogError> {
        self.status.apply(Action::Update)?;
        let mut v = Violations::default();
        let mut next = self.details.clone();
        let mut set = |field: &str, result: Result<(), String>| v.check(field, result);
        if let Some(raw) = &patch.name {
            set("name", text::name(raw, NAME_MAX).map(|x| next.name = x));
        }
        if let Some(raw) = &patch.description {
            set("description", text::paragraph(raw, DESCRIPTION_MAX).map(|x| next.description = x));
        }
        if let Some(raw) = &patch.venue_id {
            set("venue_id", text::id(raw).map(|x| next.venue_id = x));
        }
        if let Some(raw) = &patch.time_zone {
            set("time_zone", text::time_zone(raw).map(|x| next.time_zone = x));
        }
        if let Some(at) = patch.starts_at {
            set("starts_at", instant(at).map(|x| next.starts_at = x));
        }
        if let Some(at) = patch.ends_at {
            set("ends_at", instant(at).map(|x| next.ends_at = x));
        }
        if let Some(at) = patch.sale_starts_at {
            set("sale_starts_at", instant(at).map(|x| next.sale_starts_at = Some(x)));
        }
        if let Some(at) = patch.sale_ends_at {
            set("sale_ends_at", instant(at).map(|x| next.sale_ends_at = Some(x)));
        }
        if let Some(limit) = patch.per_user_limit {
            set("per_user_limit", per_user_limit(limit).map(|x| next.per_user_limit = x));
        }
        if let Some(room) = patch.waiting_room {
            set("waiting_room", room.validate().map(|x| next.waiting_room = x));
        }
        if let Some(policy) = patch.cancellation_policy {
            set("cancellation_policy", policy.validate().map(|x| next.cancellation = x));
        }
        if v.is_empty() {
            check_schedule(&next, &mut v);
        }
        v.finish()?;

        if next.venue_id != self.details.venue_id {
            if self.status != EventStatus::Draft {
                return Err(CatalogError::Frozen { status: self.status, what: "the venue" });
            }
            let tied = self.categories.iter().any(|c| match &c.allocation {
                Allocation::Seats(_) => true,
                Allocation::GeneralAdmission { area_id, .. } => area_id.is_some(),
            });
            if tied {
                return Err(CatalogError::Precondition(
                    "the event has categories on the current venue's seats or areas; remove them before moving it"
                        .into(),
                ));
            }
        }
        if next.sale_starts_at != self.details.sale_starts_at && self.status == EventStatus::OnSale {
            return Err(CatalogError::Frozen { status: self.status, what: "sale_starts_at" });
        }
        if next.waiting_room != self.details.waiting_room && self.status == EventStatus::OnSale {
            return Err(CatalogError::Frozen { status: self.status, what: "the waiting room" });
        }
        if next.cancellation != self.details.cancellation && self.status == EventStatus::OnSale {
            return Err(CatalogError::Frozen { status: self.status, what: "the cancellation policy" });
        }
        Ok(next)
    }

    /// Why the event cannot be published now, if it cannot.
    pub fn check_publishable(&self, now: DateTime<Utc>) -> Result<(), CatalogError> {
        self.status.apply(Action::Publish)?;
        let mut problems = Vec::new();
        match (self.details.sale_starts_at, self.details.sale_ends_at) {
            (Some(_), Some(ends)) if ends <= now => problems.push("the sale window has already ended".to_owned()),
            (Some(_), Some(_)) => {}
            _ => problems.push("sale_starts_at and sale_ends_at must both be set".to_owned()),
        }
        if self.categories.is_empty() {
            problems.push("at least one ticket category is required".to_owned());
        }
        for category in self.categories.iter().filter(|c| c.capacity == 0) {
            problems.push(format!("category {:?} has no seats (its venue's seat map lost them)", category.name));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Precondition(format!("cannot publish: {}", problems.join("; "))))
        }
    }
}

/// A cancellation reason: required, because buyers are shown it.
pub fn cancellation_reason(raw: &str) -> Result<String, CatalogError> {
    let reason = text::paragraph(raw, REASON_MAX).map_err(|e| CatalogError::invalid("reason", e))?;
    if reason.is_empty() {
        return Err(CatalogError::invalid("reason", "is required: buyers are shown it"));
    }
    Ok(reason)
}

/// An instant the catalog stores: years 1970 to 9999, which keeps Postgres and every client happy.
pub fn instant(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if !(1970..=9999).contains(&at.year()) {
        return Err("must be between the years 1970 and 9999".into());
    }
    Ok(at)
}

fn required_instant(at: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, String> {
    at.map_or_else(|| Err("is required".into()), instant)
}

fn per_user_limit(limit: u32) -> Result<u32, String> {
    if (1..=MAX_PER_USER_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(format!("must be between 1 and {MAX_PER_USER_LIMIT}"))
    }
}

/// The event's times must be in order, and the sale must not outlast the event.
fn check_schedule(d: &EventDetails, v: &mut Violations) {
    if d.ends_at <= d.starts_at {
        v.add("ends_at", "must be after starts_at");
    }
    if let (Some(start), Some(end)) = (d.sale_starts_at, d.sale_ends_at)
        && end <= start
    {
        v.add("sale_ends_at", "must be after sale_starts_at");
    }
    if d.sale_ends_at.is_some_and(|end| end > d.ends_at) {
        v.add("sale_ends_at", "must not be after ends_at");
    }
    if d.sale_starts_at.is_some_and(|start| start >= d.ends_at) {
        v.add("sale_starts_at", "must be before ends_at");
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone as _};

    use super::*;
    use ticketing_kernel::money::Money;

    fn at(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 6, 1, 18, 0, 0).unwrap() + Duration::hours(hours)
    }

    fn input() -> EventInput {
        EventInput {
            venue_id: Uuid::new_v4().to_string(),
            name: " Summer Night ".into(),
            starts_at: Some(at(0)),
            ends_at: Some(at(4)),
            sale_starts_at: Some(at(-100)),
            sale_ends_at: Some(at(0)),
            ..EventInput::default()
        }
    }

    fn event(status: EventStatus) -> Event {
        let new = input().validate().unwrap();
        Event {
            id: Uuid::new_v4(),
            organizer_id: Uuid::new_v4(),
            details: new.details,
            status,
            version: 1,
            cancellation_reason: String::new(),
            created_at: at(-200),
            updated_at: at(-200),
            published_at: None,
            categories: vec![category(Allocation::GeneralAdmission { capacity: 100, area_id: None }, 100)],
        }
    }

    fn category(allocation: Allocation, capacity: u32) -> Category {
        Category {
            id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            name: "Floor".into(),
            description: String::new(),
            price: Money::parse("EUR", 5_000).unwrap(),
            capacity,
            allocation,
            created_at: at(-200),
            updated_at: at(-200),
        }
    }

    fn fields(error: CatalogError) -> Vec<String> {
        match error {
            CatalogError::Invalid(list) => list.into_iter().map(|v| v.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_lifecycle_allows_exactly_its_transitions() {
        use Action::*;
        use EventStatus::*;
        let allowed = [
            (Draft, Publish, Published),
            (Published, StartSale, OnSale),
            (Published, Close, Closed),
            (OnSale, Close, Closed),
            (Draft, Cancel, Cancelled),
            (Published, Cancel, Cancelled),
            (OnSale, Cancel, Cancelled),
        ];
        for status in EventStatus::ALL {
            for action in [Publish, StartSale, Close, Cancel] {
                let expected = allowed.iter().find(|(s, a, _)| *s == status && *a == action).map(|(_, _, to)| *to);
                match (status.apply(action), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{status} {action}"),
                    (Err(CatalogError::InvalidTransition { status: s, action: a }), None) => {
                        assert_eq!((s, a), (status, action));
                    }
                    (got, want) => panic!("{status} + {action:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn final_statuses_refuse_everything_and_messages_name_the_status() {
        for status in [EventStatus::Closed, EventStatus::Cancelled] {
            for action in [Action::Publish, Action::StartSale, Action::Close, Action::Cancel, Action::Update] {
                assert!(status.apply(action).is_err(), "{status} allowed {action:?}");
            }
        }
        let error = EventStatus::OnSale.apply(Action::Publish).unwrap_err();
        assert_eq!(error.to_string(), "cannot publish an event that is ON_SALE");
        let error = EventStatus::Published.apply(Action::EditCategories).unwrap_err();
        assert_eq!(error.to_string(), "cannot change the categories of an event that is PUBLISHED");
    }

    #[test]
    fn statuses_round_trip_through_storage() {
        for status in EventStatus::ALL {
            assert_eq!(EventStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(EventStatus::parse("live"), None);
    }

    #[test]
    fn a_valid_input_is_trimmed_and_defaulted() {
        let new = input().validate().unwrap();
        assert_eq!(new.details.name, "Summer Night");
        assert_eq!(new.details.per_user_limit, DEFAULT_PER_USER_LIMIT);
        assert_eq!(new.details.time_zone, "", "left for the venue's");
        assert_eq!(new.organizer_id, None);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let bad = EventInput {
            organizer_id: "me".into(),
            venue_id: String::new(),
            name: "  ".into(),
            time_zone: "Mars/Base".into(),
            starts_at: None,
            ends_at: Some(Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap()),
            per_user_limit: Some(0),
            ..EventInput::default()
        };
        let mut got = fields(bad.validate().unwrap_err());
        got.sort();
        assert_eq!(got, ["ends_at", "name", "organizer_id", "per_user_limit", "starts_at", "venue_id"]);
    }

    #[test]
    fn the_schedule_must_be_consistent() {
        let backwards = EventInput { ends_at: Some(at(-1)), ..input() };
        assert!(fields(backwards.validate().unwrap_err()).contains(&"ends_at".to_owned()));
        let empty_window = EventInput { sale_starts_at: Some(at(-1)), sale_ends_at: Some(at(-1)), ..input() };
        assert_eq!(fields(empty_window.validate().unwrap_err()), ["sale_ends_at"]);
        let outlasting = EventInput { sale_ends_at: Some(at(5)), ..input() };
        assert_eq!(fields(outlasting.validate().unwrap_err()), ["sale_ends_at"]);
        let open = EventInput { sale_starts_at: None, sale_ends_at: None, ..input() };
        assert!(open.validate().is_ok(), "a draft may leave the sale window open");
    }

    #[test]
    fn patches_respect_frozen_fields() {
        let draft = event(EventStatus::Draft);
        let moved = draft
            .patched(EventPatch { venue_id: Some(Uuid::new_v4().to_string()), ..EventPatch::default() })
            .expect("a GA-only draft may move");
        assert_ne!(moved.venue_id, draft.details.venue_id);

        let published = event(EventStatus::Published);
        let error = published
            .patched(EventPatch { venue_id: Some(Uuid::new_v4().to_string()), ..EventPatch::default() })
            .unwrap_err();
        assert!(matches!(error, CatalogError::Frozen { what: "the venue", .. }), "{error:?}");
        let postponed = published
            .patched(EventPatch { starts_at: Some(at(24)), ends_at: Some(at(28)), ..EventPatch::default() })
            .unwrap();
        assert_eq!(postponed.starts_at, at(24));

        let on_sale = event(EventStatus::OnSale);
        let error = on_sale.patched(EventPatch { sale_starts_at: Some(at(-50)), ..EventPatch::default() }).unwrap_err();
        assert!(matches!(error, CatalogError::Frozen { what: "sale_starts_at", .. }), "{error:?}");
        assert!(on_sale.patched(EventPatch { sale_ends_at: Some(at(-1)), ..EventPatch::default() }).is_ok());

        let closed = event(EventStatus::Closed);
        let error = closed.patched(EventPatch { name: Some("x".into()), ..EventPatch::default() }).unwrap_err();
        assert_eq!(error.to_string(), "cannot update an event that is CLOSED");
    }

    #[test]
    fn a_seated_draft_cannot_move_venues() {
        let mut draft = event(EventStatus::Draft);
        draft.categories = vec![category(Allocation::Seats(vec![Uuid::new_v4()]), 1)];
        let error = draft
            .patched(EventPatch { venue_id: Some(Uuid::new_v4().to_string()), ..EventPatch::default() })
            .unwrap_err();
        assert!(matches!(error, CatalogError::Precondition(_)), "{error:?}");
    }

    #[test]
    fn patches_are_validated_like_inputs() {
        let draft = event(EventStatus::Draft);
        let error = draft
            .patched(EventPatch { name: Some(String::new()), per_user_limit: Some(500), ..EventPatch::default() })
            .unwrap_err();
        assert_eq!(fields(error), ["name", "per_user_limit"]);
        let error = draft.patched(EventPatch { ends_at: Some(at(-5)), ..EventPatch::default() }).unwrap_err();
        assert!(fields(error).contains(&"ends_at".to_owned()));
    }

    #[test]
    fn a_waiting_room_needs_a_rate_when_enabled_and_freezes_when_the_sale_starts() {
        let room = |enabled, admission_per_minute| Some(WaitingRoomInput { enabled, admission_per_minute });
        assert_eq!(input().validate().unwrap().details.waiting_room, None);
        assert_eq!(
            EventInput { waiting_room: room(false, 0), ..input() }.validate().unwrap().details.waiting_room,
            None
        );
        let on = EventInput { waiting_room: room(true, 600), ..input() }.validate().unwrap();
        assert_eq!(on.details.waiting_room, Some(600));
        for rate in [0, MAX_ADMISSION_PER_MINUTE + 1] {
            let error = EventInput { waiting_room: room(true, rate), ..input() }.validate().unwrap_err();
            assert_eq!(fields(error), ["waiting_room"], "rate {rate}");
        }
        assert!(EventInput { waiting_room: room(true, MAX_ADMISSION_PER_MINUTE), ..input() }.validate().is_ok());

        let published = event(EventStatus::Published);
        let patched = published.patched(EventPatch { waiting_room: room(true, 60), ..EventPatch::default() }).unwrap();
        assert_eq!(patched.waiting_room, Some(60));
        let on_sale = event(EventStatus::OnSale);
        let error = on_sale.patched(EventPatch { waiting_room: room(true, 60), ..EventPatch::default() }).unwrap_err();
        assert!(matches!(error, CatalogError::Frozen { what: "the waiting room", .. }), "{error:?}");
        let unchanged = on_sale.patched(EventPatch { waiting_room: room(false, 5), ..EventPatch::default() });
        assert!(unchanged.is_ok(), "restating the setting is no change");
    }

    #[test]
    fn buyers_may_cancel_until_the_start_unless_the_organizer_says_otherwise_and_the_terms_freeze_on_sale() {
        let policy = |no_buyer_cancellation, cutoff_minutes| {
            Some(CancellationPolicyInput { no_buyer_cancellation, cutoff_minutes })
        };
        let until = |minutes_before_start| CancellationPolicy::Until { minutes_before_start };
        assert_eq!(input().validate().unwrap().details.cancellation, until(0));
        let two_days = EventInput { cancellation_policy: policy(false, 2880), ..input() }.validate().unwrap();
        assert_eq!(two_days.details.cancellation, until(2880));
        let never = EventInput { cancellation_policy: policy(true, 0), ..input() }.validate().unwrap();
        assert_eq!(never.details.cancellation, CancellationPolicy::Never);
        let too_long = policy(false, MAX_CANCELLATION_CUTOFF_MINUTES + 1);
        let error = EventInput { cancellation_policy: too_long, ..input() }.validate().unwrap_err();
        assert_eq!(fields(error), ["cancellation_policy"]);

        let published = event(EventStatus::Published);
        let patch = EventPatch { cancellation_policy: policy(true, 0), ..EventPatch::default() };
        assert_eq!(published.patched(patch.clone()).unwrap().cancellation, CancellationPolicy::Never);
        let error = event(EventStatus::OnSale).patched(patch).unwrap_err();
        assert!(matches!(error, CatalogError::Frozen { what: "the cancellation policy", .. }), "{error:?}");
        let restated = EventPatch { cancellation_policy: policy(false, 0), ..EventPatch::default() };
        assert!(event(EventStatus::OnSale).patched(restated).is_ok(), "restating the policy is no change");
    }

    #[test]
    fn publishing_needs_a_window_in_the_future_and_categories_with_capacity() {
        let now = at(-150);
        assert!(event(EventStatus::Draft).check_publishable(now).is_ok());
        assert!(event(EventStatus::Draft).check_publishable(at(1)).is_err(), "window over");

        let mut bare = event(EventStatus::Draft);
        bare.categories.clear();
        bare.details.sale_ends_at = None;
        let message = bare.check_publishable(now).unwrap_err().to_string();
        assert!(message.contains("sale_starts_at and sale_ends_at"), "{message}");
        assert!(message.contains("at least one ticket category"), "{message}");

        let mut emptied = event(EventStatus::Draft);
        emptied.categories = vec![category(Allocation::Seats(Vec::new()), 0)];
        assert!(emptied.check_publishable(now).unwrap_err().to_string().contains("no seats"));

        let published = event(EventStatus::Published);
        assert!(matches!(published.check_publishable(now), Err(CatalogError::InvalidTransition { .. })));
    }

    #[test]
    fn cancellation_needs_a_reason() {
        assert_eq!(cancellation_reason("  Storm warning ").unwrap(), "Storm warning");
        assert!(cancellation_reason(" ").is_err());
        assert!(cancellation_reason(&"x".repeat(1_001)).is_err());
    }
}
