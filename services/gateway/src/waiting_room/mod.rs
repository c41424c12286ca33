//! The waiting room of events in on-sale mode (catalog's `waiting_room` setting): a queue in
//! Redis that any replica serves ([`queue`]), admission at the event's rate computed from the
//! clock (no worker, [`admission`]), and signed, single-use admission passes ([`passes`]) that
//! `POST /v1/events/{id}/holds` requires (the `Admission-Pass` header,
//! `crate::extract::AdmissionPass`). Its refusals are [`RoomError`]s, which `crate::problem`
//! turns into problem documents. The design and why it is fair:
//! `docs/adr/0017-waiting-room.md`.

pub mod admission;
pub mod metrics;
pub mod passes;
pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ticketing_platform::redis::LazyConnection;
use ticketing_proto::catalog::v1 as catalog;
use uuid::Uuid;

pub use self::admission::Sale;
use self::metrics::RoomMetrics;
use self::passes::Passes;
use self::queue::{Consumed, Queue, Visit};
use crate::config::WaitingRoomSettings;
use crate::state::Backends;

/// Queue keys outlive the sale by this much, so late status polls still answer.
const KEEP_AFTER_SALE: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Why the waiting room refused, or could not serve, a request.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// Catalog did not tell the event's sale.
    #[error("catalog: {}", .0.message())]
    Catalog(#[from] tonic::Status),
    /// Not connected to Redis yet.
    #[error("not connected to Redis yet")]
    NoRedis,
    /// Redis failed: the queue cannot be served, and letting everybody through would defeat it.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The event's sale is over, or it is not selling.
    #[error("the event's sale is over")]
    SaleClosed,
    /// The event's sale has no queue.
    #[error("the event has no waiting room")]
    NoWaitingRoom,
    /// No such ticket in the event's queue.
    #[error("no such ticket")]
    NoSuchTicket,
    /// Another buyer's ticket.
    #[error("another buyer's ticket")]
    NotYourTicket,
    /// A hold on `event` without a pass.
    #[error("an admission pass is required")]
    PassRequired {
        /// Whose queue to join.
        event: Uuid,
    },
    /// A pass that is not one for this buyer and event, saying why.
    #[error("invalid admission pass: {0}")]
    PassInvalid(&'static str),
    /// A pass whose time ran out.
    #[error("the admission pass expired")]
    PassExpired,
    /// A pass already used by a hold.
    #[error("the admission pass was used")]
    PassUsed,
}

/// Where a buyer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The sale has not opened: no position yet (early joiners are shuffled at opening).
    Waiting,
    /// In line behind others.
    Queued,
    /// Admitted: holds with this pass until it expires.
    Admitted {
        /// The signed pass.
        pass: String,
        /// Its expiry.
        expires_at: DateTime<Utc>,
    },
    /// Admitted, but the pass has expired.
    Expired,
}

/// A queue ticket's state, as the routes show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The ticket id.
    pub ticket: String,
    /// Where the buyer stands.
    pub standing: Standing,
    /// Their position, from opening on.
    pub position: Option<u64>,
    /// Until the sale opens (waiting) or until their turn (queued); zero once admitted.
    pub wait: Duration,
    /// The sale start.
    pub opens_at: DateTime<Utc>,
}

/// A pass marked used by a hold in flight; see [`WaitingRoom::settle`].
#[derive(Debug)]
pub struct Admission {
    key: String,
    fresh: bool,
}

/// The queue URL of `event`.
pub fn queue_url(event: Uuid) -> String {
    format!("/v1/events/{event}/queue")
}

/// The queues, the passes, and a cache of the events' sales.
#[derive(Clone)]
pub struct WaitingRoom {
    queue: Queue,
    passes: Passes,
    pass_ttl: Duration,
    sales: moka::future::Cache<Uuid, Sale>,
    metrics: Arc<RoomMetrics>,
}

impl WaitingRoom {
    /// The waiting room over `redis`, its keys under `prefix`, its metrics in `metrics`.
    pub fn new(
        redis: LazyConnection,
        prefix: &str,
        settings: &WaitingRoomSettings,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        let metrics = Arc::new(RoomMetrics::new(metrics));
        Self {
            queue: Queue::new(redis, prefix, metrics.redis.clone()),
            passes: Passes::new(&settings.pass_secret),
            pass_ttl: settings.pass_ttl,
            sales: moka::future::Cache::builder()
                .max_capacity(settings.event_cache_size)
                .time_to_live(settings.event_cache_ttl)
                .build(),
            metrics,
        }
    }

    /// Samples `gateway_waiting_room_length` of the events whose queue this replica served,
    /// every `interval`, until `stop`. The queue is in Redis, so every replica reports the same.
    pub async fn watch(
        self,
        backends: Backends,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            for (event, room) in self.metrics.events() {
                match self.length(&backends, event).await {
                    Ok(Some(length)) => self.metrics.set_length(&room, length),
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, %event, "sampling the waiting room failed"),
                }
            }
        }
    }

    /// Buyers in the queue of `event` ([`admission::Schedule::length`]); `None` when the
    /// event has no waiting room. The sale comes from catalog when the cache has let it go:
    /// the gauge must not depend on a recent visit.
    async fn length(&self, backends: &Backends, event: Uuid) -> anyhow::Result<Option<i64>> {
        let Some(schedule) = self.sale(backends, event).await?.schedule() else { return Ok(None) };
        let Some((last, early)) = self.queue.counts(event).await? else { return Ok(None) };
        Ok(Some(schedule.length(last, early, Utc::now())))
    }

    /// The event's sale settings, from the cache or catalog (concurrent misses ask once).
    pub async fn sale(&self, backends: &Backends, event: Uuid) -> Result<Sale, RoomError> {
        let load = async {
            let request = catalog::GetEventRequest { event_id: event.to_string(), include_seat_ids: false };
            let found = backends.catalog.clone().get_event(request).await?.into_inner();
            Ok::<_, tonic::Status>(Sale::from(&found))
        };
        self.sales.try_get_with(event, load).await.map_err(|e| RoomError::Catalog((*e).clone()))
    }

    /// Joins `user` to the queue of `event`; the second value is whether the ticket is new
    /// (joining again returns the same ticket).
    pub async fn join(&self, backends: &Backends, user: Uuid, event: Uuid) -> Result<(Place, bool), RoomError> {
        let sale = self.sale(backends, event).await?;
        if !sale.selling || Utc::now() >= sale.closes_at {
            return Err(RoomError::SaleClosed);
        }
        self.visit(sale, user, event, true, &Uuid::new_v4().to_string()).await
    }

    /// Where `user`'s `ticket` in the queue of `event` stands; only its owner may look.
    pub async fn place(&self, backends: &Backends, user: Uuid, event: Uuid, ticket: Uuid) -> Result<Place, RoomError> {
        let sale = self.sale(backends, event).await?;
        Ok(self.visit(sale, user, event, false, &ticket.to_string()).await?.0)
    }

    async fn visit(
        &self,
        sale: Sale,
        user: Uuid,
        event: Uuid,
        join: bool,
        ticket: &str,
    ) -> Result<(Place, bool), RoomError> {
        let schedule = sale.schedule().ok_or(RoomError::NoWaitingRoom)?;
        let now = Utc::now();
        let pass_expiry = (now + self.pass_ttl).timestamp() as u64;
        let visit = Visit {
            user,
            join,
            ticket,
            opened: schedule.opened(now),
            admitted: schedule.admitted_by(now),
            pass_expiry,
            keep_until: sale.closes_at.max(now) + KEEP_AFTER_SALE,
            now,
        };
        let visited = self.queue.visit(event, visit).await?;
        self.metrics.visited(event, &visited, now);
        match &visited.owner {
            None => return Err(RoomError::NoSuchTicket),
            Some(owner) if *owner != user.to_string() => return Err(RoomError::NotYourTicket),
            Some(_) => {}
        }
        let ticket = visited.ticket;
        let (standing, position, wait) = schedule.standing(visited.position, visited.pass_expiry, now, || {
            self.passes.sign(user, event, &ticket, visited.pass_expiry)
        });
        Ok((Place { ticket, standing, position, wait, opens_at: sale.opens_at }, visited.created))
    }

    /// Checks the caller's pass for a hold on `event` and marks it used; `None` when the event
    /// has no waiting room. A replay with the pass's first idempotency key goes through again
    /// (the hold service answers it with the first hold).
    pub async fn admit(
        &self,
        backends: &Backends,
        user: Uuid,
        event: Uuid,
        pass: Option<&str>,
        idempotency_key: &str,
    ) -> Result<Option<Admission>, RoomError> {
        if self.sale(backends, event).await?.rate.is_none() {
            return Ok(None);
        }
        let pass = pass.ok_or(RoomError::PassRequired { event })?;
        let claims = self.passes.verify(pass, user, event)?;
        let key = self.queue.used_key(event, &claims.jti);
        match self.queue.consume(&key, idempotency_key, claims.exp).await? {
            Consumed::Used => Err(RoomError::PassUsed),
            consumed => Ok(Some(Admission { key, fresh: consumed == Consumed::Fresh })),
        }
    }

    /// After the hold: a pass whose hold failed is given back, so the buyer may try another
    /// selection before it expires (a sold-out category is not their fault).
    pub async fn settle(&self, admission: Option<Admission>, held: bool) {
        let Some(Admission { key, fresh: true }) = admission else { return };
        if held {
            return;
        }
        if let Err(e) = self.queue.give_back(&key).await {
            tracing::warn!(error = %e, key, "waiting room: could not give a pass back");
        }
    }
}
