//! The public REST API under `/v1`, each route documented in the OpenAPI document
//! it is registered with (utoipa-axum), so the router and `/openapi.json` cannot
//! drift apart. What routes share is in [`common`] (helpers) and [`dto`] (body types): no
//! route module imports another.

pub mod admin;
pub mod auth;
pub mod bookings;
pub mod checkin;
pub mod common;
pub mod contract;
pub mod dto;
pub mod events;
pub mod holds;
pub mod oidc;
pub mod operations;
pub mod queue;
pub mod reports;
pub mod venues;
pub mod webhooks;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::config::GatewaySettings;
use crate::state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ticketing API",
        description = "The public API of the ticketing platform: accounts, events, holds, bookings and payments. \
                       Errors are RFC 9457 problem documents (application/problem+json)."
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::problem::Problem, crate::problem::FieldError)),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "events", description = "Browsing events and availability"),
        (name = "organizer", description = "Venues, seat maps, events and their sale, for organizers and admins"),
        (name = "waiting room", description = "Queueing for sales in on-sale mode, and admission passes"),
        (name = "holds", description = "Holding tickets"),
        (name = "bookings", description = "Bookings, payment, cancellation and tickets"),
        (name = "checkin", description = "Checking tickets in at the gate"),
        (name = "webhooks", description = "Payment providers' webhooks, authenticated by their signature"),
        (name = "admin", description = "Platform administration"),
        (name = "graphql", description = "The GraphQL read API (events, venues, availability, the caller's bookings) and GraphiQL"),
        (name = "operations", description = "Liveness and readiness for load balancers")
    )
)]
struct ApiDoc;

/// The routes and their OpenAPI document, completed with what every operation can answer
/// ([`contract::Contract`]).
pub fn api(settings: &GatewaySettings) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(oidc::routes())
        .merge(events::routes())
        .merge(reports::routes())
        .merge(queue::routes())
        .merge(holds::routes())
        .merge(bookings::routes())
        .merge(venues::routes(settings.max_seat_map_bytes))
        .merge(checkin::routes())
        .merge(webhooks::routes())
        .merge(admin::routes())
        .merge(crate::graphql::routes(&settings.graphql))
        .split_for_parts();
    contract::Contract.modify(&mut openapi);
    (router, openapi)
}
