//! Per-request batching (async-graphql's DataLoader): the fields of a query that need the
//! same backend are gathered and asked for together. Availability is one
//! `BatchAvailability` call for every event of the query; events and venues, which their
//! services serve one at a time, are asked for once each, concurrently, however many
//! fields name them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use ticketing_proto::catalog::v1 as catalog;
use ticketing_proto::inventory::v1 as inventory;
use tonic::IntoRequest as _;

use super::types::{Event, Venue};
use crate::problem::Problem;
use crate::resilience::caller_paced;
use crate::state::Backends;

/// Most events inventory's `BatchAvailability` takes in one call.
const MAX_BATCH: usize = 100;

/// One request's loaders, over the backends.
pub struct Loaders {
    pub backends: Backends,
    /// Live counts per event id.
    pub availability: DataLoader<AvailabilityLoader>,
    /// Events by id.
    pub events: DataLoader<EventLoader>,
    /// Venues (without their maps) by id.
    pub venues: DataLoader<VenueLoader>,
}

impl Loaders {
    pub fn new(backends: &Backends) -> Self {
        let spawn = |future| tokio::spawn(future);
        Self {
            backends: backends.clone(),
            availability: DataLoader::new(AvailabilityLoader(backends.clone()), spawn).max_batch_size(MAX_BATCH),
            events: DataLoader::new(EventLoader(backends.clone()), spawn),
            venues: DataLoader::new(VenueLoader(backends.clone()), spawn),
        }
    }

    /// A venue's seat map: large, read alone, and paced by its size as REST's `seat_map=true`.
    pub async fn seat_map(&self, venue: String) -> Result<catalog::SeatMap, Problem> {
        let request = caller_paced(catalog::GetVenueRequest { venue_id: venue, include_seat_map: true }.into_request());
        let venue = self.backends.catalog.clone().get_venue(request).await?.into_inner();
        Ok(venue.seat_map.unwrap_or_default())
    }
}

/// Inventory's counts of many events in one call.
pub struct AvailabilityLoader(Backends);

impl Loader<String> for AvailabilityLoader {
    type Value = Arc<Vec<inventory::CategoryAvailability>>;
    type Error = Problem;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Problem> {
        // Ids the service would refuse would fail the whole batch: they have no counts.
        let event_ids: Vec<String> = keys.iter().filter(|k| uuid::Uuid::parse_str(k).is_ok()).cloned().collect();
        if event_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let request = inventory::BatchAvailabilityRequest { event_ids };
        let found = self.0.inventory.clone().batch_availability(request).await?.into_inner();
        Ok(found.events.into_iter().map(|e| (e.event_id, Arc::new(e.categories))).collect())
    }
}

/// Catalog's events, each asked for once.
pub struct EventLoader(Backends);

impl Loader<String> for EventLoader {
    type Value = Arc<Event>;
    type Error = Problem;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Problem> {
        each(keys, |id| {
            let mut catalog = self.0.catalog.clone();
            async move {
                let request = catalog::GetEventRequest { event_id: id, include_seat_ids: false };
                Ok(Arc::new(catalog.get_event(request).await?.into_inner().into()))
            }
        })
        .await
    }
}

/// Catalog's venues, each asked for once.
pub struct VenueLoader(Backends);

impl Loader<String> for VenueLoader {
    type Value = Venue;
    type Error = Problem;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Problem> {
        each(keys, |id| {
            let mut catalog = self.0.catalog.clone();
            async move {
                let request = catalog::GetVenueRequest { venue_id: id, include_seat_map: false };
                Ok(catalog.get_venue(request).await?.into_inner().into())
            }
        })
        .await
    }
}

/// `load` of every key at once; a key not found is left out (the field is null), any other
/// failure fails them all.
async fn each<V, F, Fut>(keys: &[String], load: F) -> Result<HashMap<String, V>, Problem>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<V, tonic::Status>>,
{
    let loads = keys.iter().map(|key| {
        let loading = load(key.clone());
        async move { (key.clone(), loading.await) }
    });
    let mut found = HashMap::with_capacity(keys.len());
    for (key, loaded) in futures::future::join_all(loads).await {
        match loaded {
            Ok(value) => {
                found.insert(key, value);
            }
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(status.into()),
        }
    }
    Ok(found)
}
