//! The gRPC transport: thin handlers over [`Catalog`].

pub mod convert;

use ticketing_proto::catalog::v1 as pb;
use ticketing_proto::catalog::v1::catalog_server::Catalog as CatalogApi;
use ticketing_proto::common::v1::{PageRequest, PageResponse};
use tonic::{Request, Response, Status};

use crate::domain::CatalogError;
use crate::domain::event::{EventInput, EventPatch};
use crate::domain::search::EventSearchInput;
use crate::domain::venue::VenueInput;
use crate::service::Catalog;
use convert::{caller, instants};

/// Implements `ticketing.catalog.v1.Catalog`.
#[derive(Clone)]
pub struct Api {
    catalog: Catalog,
}

impl Api {
    /// The API over `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }
}

fn page(request: Option<PageRequest>) -> PageRequest {
    request.unwrap_or_default()
}

fn next_page(next_cursor: Option<String>) -> Option<PageResponse> {
    Some(PageResponse { next_cursor: next_cursor.unwrap_or_default() })
}

#[tonic::async_trait]
impl CatalogApi for Api {
    async fn create_venue(&self, request: Request<pb::CreateVenueRequest>) -> Result<Response<pb::Venue>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let input = VenueInput {
            organizer_id: r.organizer_id,
            name: r.name,
            address: r.address,
            city: r.city,
            country_code: r.country_code,
            time_zone: r.time_zone,
        };
        let venue = self.catalog.create_venue(&caller, input).await?;
        Ok(Response::new(convert::venue(venue, None)))
    }

    async fn get_venue(&self, request: Request<pb::GetVenueRequest>) -> Result<Response<pb::Venue>, Status> {
        let r = request.into_inner();
        let (venue, map) = self.catalog.venue(&r.venue_id, r.include_seat_map).await?;
        Ok(Response::new(convert::venue(venue, map)))
    }

    async fn list_venues(
        &self,
        request: Request<pb::ListVenuesRequest>,
    ) -> Result<Response<pb::ListVenuesResponse>, Status> {
        let r = request.into_inner();
        let page = page(r.page);
        let (venues, next) = self.catalog.venues(&r.organizer_id, &page.cursor, page.limit).await?;
        Ok(Response::new(pb::ListVenuesResponse {
            venues: venues.into_iter().map(|v| convert::venue(v, None)).collect(),
            page: next_page(next),
        }))
    }

    async fn import_seat_map(&self, request: Request<pb::ImportSeatMapRequest>) -> Result<Response<pb::Venue>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        // A missing map would otherwise read as "remove every seat".
        let map = r.seat_map.ok_or_else(|| CatalogError::invalid("seat_map", "is required"))?;
        let (venue, map) = self.catalog.import_seat_map(&caller, &r.venue_id, &map.into(), r.expected_revision).await?;
        Ok(Response::new(convert::venue(venue, Some(map))))
    }

    async fn create_event(&self, request: Request<pb::CreateEventRequest>) -> Result<Response<pb::Event>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let [starts_at, ends_at, sale_starts_at, sale_ends_at] = instants([
            ("starts_at", r.starts_at.as_ref()),
            ("ends_at", r.ends_at.as_ref()),
            ("sale_starts_at", r.sale_starts_at.as_ref()),
            ("sale_ends_at", r.sale_ends_at.as_ref()),
        ])?;
        let input = EventInput {
            organizer_id: r.organizer_id,
            venue_id: r.venue_id,
            name: r.name,
            description: r.description,
            starts_at,
            ends_at,
            time_zone: r.time_zone,
            sale_starts_at,
            sale_ends_at,
            per_user_limit: r.per_user_limit,
            waiting_room: r.waiting_room.map(convert::waiting_room),
            cancellation_policy: r.cancellation_policy.map(convert::cancellation_policy),
        };
        Ok(Response::new(self.catalog.create_event(&caller, input).await?.into()))
    }

    async fn update_event(&self, request: Request<pb::UpdateEventRequest>) -> Result<Response<pb::Event>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let [starts_at, ends_at, sale_starts_at, sale_ends_at] = instants([
            ("starts_at", r.starts_at.as_ref()),
            ("ends_at", r.ends_at.as_ref()),
            ("sale_starts_at", r.sale_starts_at.as_ref()),
            ("sale_ends_at", r.sale_ends_at.as_ref()),
        ])?;
        let patch = EventPatch {
            name: r.name,
            description: r.description,
            venue_id: r.venue_id,
            starts_at,
            ends_at,
            time_zone: r.time_zone,
            sale_starts_at,
            sale_ends_at,
            per_user_limit: r.per_user_limit,
            waiting_room: r.waiting_room.map(convert::waiting_room),
            cancellation_policy: r.cancellation_policy.map(convert::cancellation_policy),
        };
        let event = self.catalog.update_event(&caller, &r.event_id, r.expected_version, patch).await?;
        Ok(Response::new(event.into()))
    }

    async fn get_event(&self, request: Request<pb::GetEventRequest>) -> Result<Response<pb::Event>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        Ok(Response::new(self.catalog.event(&caller, &r.event_id, r.include_seat_ids).await?.into()))
    }

    async fn get_event_seats(
        &self,
        request: Request<pb::GetEventSeatsRequest>,
    ) -> Result<Response<pb::GetEventSeatsResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let seats = self.catalog.event_seats(&caller, &r.event_id, &r.seat_ids).await?;
        let seats = seats
            .into_iter()
            .map(|(seat, category, label, accessible)| pb::EventSeat {
                seat_id: seat.to_string(),
                category_id: category.to_string(),
                label,
                accessible,
            })
            .collect();
        Ok(Response::new(pb::GetEventSeatsResponse { seats }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let [starts_from, starts_before] =
            instants([("starts_from", r.starts_from.as_ref()), ("starts_before", r.starts_before.as_ref())])?;
        let statuses = r.statuses.into_iter().map(convert::status_from_proto).collect::<Result<_, _>>()?;
        let page = page(r.page);
        let input = EventSearchInput {
            query: r.query,
            starts_from,
            starts_before,
            venue_id: r.venue_id,
            organizer_id: r.organizer_id,
            statuses,
            cursor: page.cursor,
            limit: page.limit,
        };
        let (events, next) = self.catalog.events(&caller, input).await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(Into::into).collect(),
            page: next_page(next),
        }))
    }

    async fn publish_event(&self, request: Request<pb::PublishEventRequest>) -> Result<Response<pb::Event>, Status> {
        let caller = caller(&request);
        Ok(Response::new(self.catalog.publish(&caller, &request.into_inner().event_id).await?.into()))
    }

    async fn start_sale(&self, request: Request<pb::StartSaleRequest>) -> Result<Response<pb::Event>, Status> {
        let caller = caller(&request);
        Ok(Response::new(self.catalog.start_sale(&caller, &request.into_inner().event_id).await?.into()))
    }

    async fn close_event(&self, request: Request<pb::CloseEventRequest>) -> Result<Response<pb::Event>, Status> {
        let caller = caller(&request);
        Ok(Response::new(self.catalog.close(&caller, &request.into_inner().event_id).await?.into()))
    }

    async fn cancel_event(&self, request: Request<pb::CancelEventRequest>) -> Result<Response<pb::Event>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        Ok(Response::new(self.catalog.cancel(&caller, &r.event_id, &r.reason).await?.into()))
    }

    async fn create_category(
        &self,
        request: Request<pb::CreateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let event_id = r.event_id.clone();
        Ok(Response::new(self.catalog.create_category(&caller, &event_id, r.into()).await?.into()))
    }

    async fn update_category(
        &self,
        request: Request<pb::UpdateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let category_id = r.category_id.clone();
        Ok(Response::new(self.catalog.update_category(&caller, &category_id, r.into()).await?.into()))
    }

    async fn delete_category(
        &self,
        request: Request<pb::DeleteCategoryRequest>,
    ) -> Result<Response<pb::DeleteCategoryResponse>, Status> {
        let caller = caller(&request);
        self.catalog.delete_category(&caller, &request.into_inner().category_id).await?;
        Ok(Response::new(pb::DeleteCategoryResponse {}))
    }
}
