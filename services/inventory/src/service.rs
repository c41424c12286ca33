//! Inventory's use cases: hold, release, confirm, restock, read, and the background
//! work that expires holds and announces what ended.

use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};
use sqlx::PgPool;
use ticketing_platform::auth::{Principal, Scope};
use ticketing_platform::kafka::outbox;

use crate::adapters::coalesce::{Batching, Coalescer};
use crate::adapters::ledger::{self, Refused};
use crate::adapters::stock::{
    self, Counts, Ended, HoldRefused, HoldRequest, Loaded, Placed, RebuildLock, Refusal, SeatState, Stock,
};
use crate::config::InventorySettings;
use crate::domain::{Hold, HoldId, HoldStatus, InventoryError, Selection};
use crate::events::publish;

/// How long a replica waits for another one to finish loading an event.
const LOAD_WAIT: Duration = Duration::from_secs(15);

type Result<T> = std::result::Result<T, InventoryError>;

/// An event's live availability.
#[derive(Debug, Clone)]
pub struct Availability {
    /// Per-category counts.
    pub categories: Vec<(uuid::Uuid, Counts)>,
    /// Seat states, when asked for.
    pub seats: Vec<(uuid::Uuid, uuid::Uuid, SeatState)>,
}

/// The inventory service's state and use cases.
#[derive(Clone)]
pub struct Inventory {
    pool: PgPool,
    stock: Stock,
    coalescer: Coalescer,
    settings: InventorySettings,
    topic: String,
    holds: HoldCounters,
    ended: EndedCounters,
}

/// `inventory_holds_ended_total` by outcome: every hold ends once (I5).
#[derive(Clone)]
struct EndedCounters {
    confirmed: IntCounter,
    released: IntCounter,
    expired: IntCounter,
}

impl EndedCounters {
    fn new(metrics: &ticketing_platform::metrics::Metrics) -> Self {
        let vec = metrics.register(
            &IntCounterVec::new(Opts::new("inventory_holds_ended_total", "Holds ended, by outcome."), &["outcome"])
                .expect("static metric definition"),
        );
        let counter = |outcome: &str| vec.with_label_values(&[outcome]);
        Self { confirmed: counter("confirmed"), released: counter("released"), expired: counter("expired") }
    }
}

/// `inventory_holds_total` by result, resolved once: holds are the hot path.
#[derive(Clone)]
struct HoldCounters {
    granted: IntCounter,
    replayed: IntCounter,
    sold_out: IntCounter,
    over_limit: IntCounter,
    not_on_sale: IntCounter,
    unknown_event: IntCounter,
    invalid: IntCounter,
}

impl HoldCounters {
    fn new(metrics: &ticketing_platform::metrics::Metrics) -> Self {
        let vec = metrics.register(
            &IntCounterVec::new(Opts::new("inventory_holds_total", "Hold requests, by result."), &["result"])
                .expect("static metric definition"),
        );
        let counter = |result: &str| vec.with_label_values(&[result]);
        Self {
            granted: counter("granted"),
            replayed: counter("replayed"),
            sold_out: counter("sold_out"),
            over_limit: counter("over_limit"),
            not_on_sale: counter("not_on_sale"),
            unknown_event: counter("unknown_event"),
            invalid: counter("invalid"),
        }
    }

    /// The counter of a refused hold.
    fn refused(&self, error: &InventoryError) -> &IntCounter {
        match error {
            InventoryError::SoldOut { .. } | InventoryError::SeatTaken(_) | InventoryError::NoAdjacentSeats(_) => {
                &self.sold_out
            }
            InventoryError::LimitExceeded { .. } => &self.over_limit,
            InventoryError::NotOnSale => &self.not_on_sale,
            InventoryError::EventNotFound => &self.unknown_event,
            _ => &self.invalid,
        }
    }
}

impl Inventory {
    /// Assembles the service.
    pub fn new(
        pool: PgPool,
        stock: Stock,
        settings: InventorySettings,
        topic: String,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        let coalescer = Coalescer::start(
            stock.clone(),
            Batching {
                batches: settings.hold_batching(),
                ttl: settings.hold_ttl,
                idempotency_ttl: settings.idempotency_ttl,
            },
            metrics.register(
                &Histogram::with_opts(
                    HistogramOpts::new(
                        "inventory_hold_batch_size",
                        "Holds coalesced into one batch: one Redis script call per event in it, nearly always one.",
                    )
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
                )
                .expect("static metric definition"),
            ),
        );
        Self {
            pool,
            stock,
            coalescer,
            settings,
            topic,
            holds: HoldCounters::new(metrics),
            ended: EndedCounters::new(metrics),
        }
    }

    /// Holds `selection` of `event` for `user`, all or nothing.
    pub async fn hold(
        &self,
        user: uuid::Uuid,
        event: uuid::Uuid,
        selection: Selection,
        idempotency_key: &str,
    ) -> Result<Hold> {
        self.validate(&selection, idempotency_key)?;
        let request =
            HoldRequest { id: HoldId::new(event), user, selection, idempotency_key: idempotency_key.to_owned() };
        let mut placed = self.coalescer.place(request.clone()).await?;
        if matches!(&placed, Placed::Refused(r) if r.refusal == Refusal::NoStock) {
            self.ensure_loaded(event).await?;
            placed = self.coalescer.place(request).await?;
        }
        match placed {
            Placed::Held(hold) => {
                self.holds.granted.inc();
                Ok(hold)
            }
            Placed::Replayed(first) => {
                self.holds.replayed.inc();
                self.stock.get(first).await?.ok_or(InventoryError::HoldNotFound)
            }
            Placed::Refused(HoldRefused { refusal: Refusal::NoStock, .. }) => {
                Err(InventoryError::Unavailable(anyhow::anyhow!("event {event} did not load")))
            }
            Placed::Refused(r) => {
                let error = refused(r.refusal);
                self.holds.refused(&error).inc();
                Err(error)
            }
        }
    }

    fn validate(&self, selection: &Selection, idempotency_key: &str) -> Result<()> {
        let mut violations = Vec::new();
        let quantity = selection.quantity();
        if quantity == 0 || quantity > self.settings.max_quantity {
            let field = if matches!(selection, Selection::Seats(_)) { "seat_ids" } else { "quantity" };
            violations.push(ticketing_platform::status::FieldViolation::new(
                field,
                format!("must ask for between 1 and {} tickets", self.settings.max_quantity),
            ));
        }
        if let Selection::Seats(seats) = selection {
            let unique: std::collections::HashSet<_> = seats.iter().collect();
            if unique.len() != seats.len() {
                violations.push(ticketing_platform::status::FieldViolation::new("seat_ids", "must not repeat a seat"));
            }
        }
        if idempotency_key.len() > 255 || idempotency_key.contains(['|', '\n']) {
            violations.push(ticketing_platform::status::FieldViolation::new(
                "idempotency_key",
                "must be at most 255 characters without '|' or newlines",
            ));
        }
        if violations.is_empty() { Ok(()) } else { Err(InventoryError::Invalid(violations)) }
    }

    /// Makes sure Redis has the event, rebuilding it from the ledger when missing.
    /// One replica rebuilds; the others wait for it.
    pub async fn ensure_loaded(&self, event: uuid::Uuid) -> Result<()> {
        let deadline = Instant::now() + LOAD_WAIT;
        while !self.stock.is_loaded(event).await? {
            if let Some(lock) = self.stock.lock_rebuild(event, LOAD_WAIT).await? {
                match self.load(lock).await? {
                    Loaded::Now | Loaded::Already => return Ok(()),
                    // Another caller took the lock over: wait for its load.
                    Loaded::LockLost => {}
                }
            }
            if Instant::now() > deadline {
                return Err(InventoryError::Unavailable(anyhow::anyhow!("event {event} is still loading")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Loads the event of `lock` from the ledger, renewing the lock while it takes.
    async fn load(&self, lock: RebuildLock) -> Result<Loaded> {
        let event = lock.event();
        // Another caller may have loaded it between our check and the lock: that load
        // would win anyway (`Stock::load` never overwrites one), so skip the snapshot.
        if self.stock.is_loaded(event).await? {
            self.stock.unlock_rebuild(lock).await?;
            return Ok(Loaded::Already);
        }
        let Some(snapshot) = ledger::snapshot(&self.pool, event).await? else {
            self.stock.unlock_rebuild(lock).await?;
            return Err(InventoryError::EventNotFound);
        };
        tracing::info!(%event, seats = snapshot.seats.len(), sales = snapshot.sales.len(), "loading stock into Redis");
        let loading = self.stock.load(&lock, &snapshot);
        tokio::pin!(loading);
        let every = LOAD_WAIT / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let loaded = loop {
            tokio::select! {
                loaded = &mut loading => break loaded?,
                _ = renew.tick() => {
                    if !self.stock.renew_rebuild(&lock, LOAD_WAIT).await? {
                        tracing::warn!(%event, "the rebuild lock expired mid-load; this load will write nothing");
                    }
                }
            }
        };
        if loaded == Loaded::LockLost {
            tracing::warn!(%event, "lost the rebuild lock: another caller loads the event");
        }
        Ok(loaded)
    }

    /// Reads a hold from Redis, or from the ledger when Redis lost it.
    async fn find(&self, id: HoldId) -> Result<Hold> {
        if let Some(hold) = self.stock.get(id).await? {
            return Ok(hold);
        }
        let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
        ledger::sale(&mut conn, id).await?.ok_or(InventoryError::HoldNotFound)
    }

    /// Ends the caller's active hold. Idempotent; a confirmed hold cannot be released.
    pub async fn release(&self, caller: &Principal, id: HoldId) -> Result<Hold> {
        let hold = self.find(id).await?;
        authorize(caller, &hold)?;
        match self.stock.end(id, HoldStatus::Released, &caller.user_id.to_string(), false, stock::now_ms()).await? {
            Ended::Now => self.ended.released.inc(),
            Ended::Already(HoldStatus::Released | HoldStatus::Expired) => {}
            Ended::Already(status) => return Err(InventoryError::Ended(status.as_str())),
            Ended::NeedsLedgerCheck => return Err(InventoryError::Ended("being confirmed")),
            Ended::Missing => return Err(InventoryError::Ended(hold.status.as_str())),
        }
        self.find(id).await
    }

    /// Turns a live hold into a sale for `booking`. Idempotent for the same booking.
    pub async fn confirm(&self, id: HoldId, token: u64, booking: &str) -> Result<Hold> {
        if booking.is_empty() || booking.len() > 100 {
            return Err(InventoryError::invalid("booking_id", "must be 1 to 100 characters"));
        }
        let hold = match self.stock.begin_confirm(id, token, self.settings.confirm_grace).await? {
            Ok(hold) => hold,
            Err(refusal) => return self.confirm_refused(id, token, booking, &refusal).await,
        };
        if hold.status == HoldStatus::Confirmed {
            return match hold.booking_id.as_deref() {
                Some(b) if b == booking => Ok(hold),
                _ => Err(InventoryError::Ended("confirmed")),
            };
        }

        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        match ledger::record_sale(&mut tx, &hold, booking).await? {
            Ok(recorded) => {
                if recorded {
                    outbox::enqueue(&mut tx, &self.topic, &publish::confirmed(id, &hold, token, booking)).await?;
                }
                tx.commit().await.map_err(anyhow::Error::from)?;
                if recorded {
                    self.ended.confirmed.inc();
                }
            }
            Err(refused) => {
                drop(tx);
                // The ledger said no: give the tickets back rather than leave them parked.
                if self.stock.end(id, HoldStatus::Released, "ledger", true, stock::now_ms()).await? == Ended::Now {
                    self.ended.released.inc();
                }
                return Err(match refused {
                    Refused::StaleToken => InventoryError::StaleToken,
                    Refused::OtherBooking(_) => InventoryError::Ended("confirmed"),
                    Refused::SeatSold => InventoryError::LedgerConflict("a seat is already sold".into()),
                    Refused::Oversold(category) => {
                        InventoryError::LedgerConflict(format!("category {category} is sold out"))
                    }
                });
            }
        }
        // Redis may have lost the hold since (a flush): the ledger already has the sale,
        // and the next rebuild shows it as sold.
        self.stock.finish_confirm(id, booking).await?;
        Ok(Hold { status: HoldStatus::Confirmed, booking_id: Some(booking.to_owned()), ..hold })
    }

    async fn confirm_refused(&self, id: HoldId, token: u64, booking: &str, refusal: &Refusal) -> Result<Hold> {
        match refusal {
            Refusal::NoHold => {
                // Redis may have been rebuilt after the sale; the ledger remembers it.
                let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
                match ledger::sale(&mut conn, id).await? {
                    Some(sale) if sale.fencing_token != token => Err(InventoryError::StaleToken),
                    Some(sale) if sale.booking_id.as_deref() == Some(booking) => Ok(sale),
                    Some(_) => Err(InventoryError::Ended("confirmed")),
                    None => Err(InventoryError::HoldNotFound),
                }
            }
            Refusal::StaleToken => Err(InventoryError::StaleToken),
            Refusal::Expired => Err(InventoryError::Expired),
            Refusal::Ended(status) => Err(InventoryError::Ended(status.as_str())),
            other => Err(InventoryError::Unavailable(anyhow::anyhow!("unexpected confirm refusal {other:?}"))),
        }
    }

    /// Returns the tickets of a confirmed hold to stock (its booking was refunded). Idempotent.
    pub async fn restock(&self, id: HoldId, booking: &str) -> Result<Hold> {
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        let Some((sale, changed)) = ledger::restock(&mut tx, id, booking).await? else {
            return Err(InventoryError::HoldNotFound);
        };
        if changed {
            outbox::enqueue(&mut tx, &self.topic, &publish::restocked(id, &sale, booking)).await?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        self.stock.restock(id).await?;
        Ok(sale)
    }

    /// A hold, for its owner, a service or an admin. With `claim` (a booking is about to be
    /// made of it) its end is announced from then on; the hold is read again after the claim,
    /// so a hold that ended in between is returned ended, and nothing is booked of it.
    pub async fn get(&self, caller: &Principal, id: HoldId, claim: bool) -> Result<Hold> {
        let hold = self.find(id).await?;
        authorize(caller, &hold)?;
        if claim && matches!(hold.status, HoldStatus::Active | HoldStatus::Confirming) {
            self.stock.claim(id).await?;
            return self.find(id).await;
        }
        Ok(hold)
    }

    /// Live counts (and seat states when asked for) of `event`.
    pub async fn availability(&self, event: uuid::Uuid, include_seats: bool) -> Result<Availability> {
        let categories = match self.stock.counts(event).await? {
            Some(counts) => counts,
            None => {
                self.ensure_loaded(event).await?;
                self.stock.counts(event).await?.ok_or(InventoryError::EventNotFound)?
            }
        };
        let seats = if include_seats { self.stock.seat_states(event).await? } else { Vec::new() };
        Ok(Availability { categories, seats })
    }

    /// Live counts of each of `events` (distinct), read concurrently; an event without
    /// stock is left out, so that one unknown event does not fail a page of them.
    pub async fn batch_availability(&self, events: &[uuid::Uuid]) -> Result<Vec<(uuid::Uuid, Availability)>> {
        let reads = events.iter().map(|&event| async move { (event, self.availability(event, false).await) });
        let mut found = Vec::with_capacity(events.len());
        for (event, availability) in futures::future::join_all(reads).await {
            match availability {
                Ok(availability) => found.push((event, availability)),
                Err(InventoryError::EventNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// Expires every due hold of every loaded event; returns how many ended.
    /// Expiries run concurrently (the multiplexed connection pipelines them) and a full
    /// batch is followed by another at once, so a flash sale's expiries keep pace.
    pub async fn reap(&self) -> anyhow::Result<usize> {
        const BATCH: isize = 500;
        let now = stock::now_ms();
        let mut ended = 0;
        for event in self.stock.events().await? {
            loop {
                let due = self.stock.due(event, now, BATCH).await?;
                let mut results = Vec::with_capacity(due.len());
                for chunk in due.chunks(64) {
                    let expiries: Vec<_> = chunk.iter().map(|id| self.expire(*id)).collect();
                    results.extend(futures::future::join_all(expiries).await);
                }
                let mut progressed = false;
                for result in results {
                    let now_ended = result?;
                    progressed |= now_ended;
                    ended += usize::from(now_ended);
                }
                // Holds parked mid-confirm stay due without ending; do not spin on them.
                if (due.len() as isize) < BATCH || !progressed {
                    break;
                }
            }
        }
        Ok(ended)
    }

    async fn expire(&self, id: HoldId) -> anyhow::Result<bool> {
        let expired = self.expire_once(id).await?;
        if expired {
            self.ended.expired.inc();
        }
        Ok(expired)
    }

    async fn expire_once(&self, id: HoldId) -> anyhow::Result<bool> {
        match self.stock.end(id, HoldStatus::Expired, "", false, stock::now_ms()).await? {
            Ended::Now => Ok(true),
            Ended::NeedsLedgerCheck => {
                // Stuck mid-confirm past its grace: the ledger decides how it ends.
                let mut conn = self.pool.acquire().await?;
                match ledger::sale(&mut conn, id).await? {
                    Some(sale) => {
                        self.stock.finish_confirm(id, sale.booking_id.as_deref().unwrap_or_default()).await?;
                        Ok(false)
                    }
                    None => Ok(self.stock.end(id, HoldStatus::Expired, "", true, stock::now_ms()).await? == Ended::Now),
                }
            }
            Ended::Already(_) | Ended::Missing => Ok(false),
        }
    }

    /// Moves spooled release and expiry announcements into the outbox; returns how many.
    pub async fn drain_spool(&self) -> anyhow::Result<usize> {
        let mut moved = 0;
        for event in self.stock.events().await? {
            let entries = self.stock.spooled(event, 200).await?;
            if entries.is_empty() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for entry in &entries {
                let Some((outcome, hold)) = entry.split_once(':') else { continue };
                let id = HoldId { event, hold: hold.parse()? };
                let Some(hold) = self.stock.get(id).await? else { continue };
                let released_by = match outcome {
                    "released" => Some(self.stock.ended_by(id).await?.unwrap_or_default()),
                    _ => None,
                };
                let envelope = publish::ended(entry, id, &hold, released_by);
                outbox::enqueue(&mut tx, &self.topic, &envelope).await?;
            }
            tx.commit().await?;
            self.stock.unspool(event, &entries).await?;
            moved += entries.len();
        }
        Ok(moved)
    }

    /// The Redis side, for the catalog-event consumer and tests.
    pub fn stock(&self) -> &Stock {
        &self.stock
    }
}

fn authorize(caller: &Principal, hold: &Hold) -> Result<()> {
    if caller.user_id == hold.user || caller.may(Scope::InventoryHolds) {
        Ok(())
    } else {
        Err(InventoryError::Forbidden)
    }
}

/// The domain error for a hold script's refusal.
fn refused(refusal: Refusal) -> InventoryError {
    match refusal {
        Refusal::NoStock => InventoryError::EventNotFound,
        Refusal::NotOnSale(_) => InventoryError::NotOnSale,
        Refusal::LimitExceeded { remaining } => InventoryError::LimitExceeded { remaining },
        Refusal::SoldOut { available } => InventoryError::SoldOut { available },
        Refusal::SeatTaken(seat) => InventoryError::SeatTaken(seat),
        Refusal::NoAdjacentSeats(quantity) => InventoryError::NoAdjacentSeats(quantity),
        Refusal::IdempotencyMismatch => InventoryError::IdempotencyMismatch,
        Refusal::UnknownCategory(_) => InventoryError::invalid("category_id", "is not a category of this event"),
        Refusal::UnknownSeat(seat) => {
            InventoryError::invalid("seat_ids", format!("{seat} is not a seat of this event"))
        }
        Refusal::NotGeneralAdmission(_) => InventoryError::invalid("category_id", "is a seated category: choose seats"),
        Refusal::NotSeated(_) => InventoryError::invalid("category_id", "is a general-admission category"),
        other => InventoryError::Unavailable(anyhow::anyhow!("unexpected hold refusal {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_refusals_become_the_errors_they_always_were() {
        let cases = [
            ("NOSTOCK", "", "event not found"),
            ("NOT_ON_SALE", "closed", "the event is not on sale"),
            ("LIMIT", "1", "per-user ticket limit reached: 1 more allowed"),
            ("SOLD_OUT", "2", "not enough tickets available: 2 left"),
            ("SEAT_TAKEN", "s1", "seat s1 is not available"),
            ("NO_ADJACENT", "3", "no 3 adjacent seats are available in one row"),
            ("IDEMPOTENCY_MISMATCH", "", "the idempotency key was already used for a different request"),
            ("UNKNOWN_CATEGORY", "c", "invalid request: category_id: is not a category of this event"),
            ("UNKNOWN_SEAT", "s2", "invalid request: seat_ids: s2 is not a seat of this event"),
            ("NOT_GENERAL_ADMISSION", "c", "invalid request: category_id: is a seated category: choose seats"),
            ("NOT_SEATED", "c", "invalid request: category_id: is a general-admission category"),
            ("WHAT", "", "temporarily unavailable"),
        ];
        for (code, detail, message) in cases {
            assert_eq!(refused(Refusal::parse(code, detail)).to_string(), message, "{code}");
        }
    }
}
