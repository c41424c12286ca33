//! The public REST API under `/v1`, each route documented in the OpenAPI document
//! it is registered with (utoipa-axum), so the router and `/openapi.json` cannot
//! drift apart.

pub mod auth;
pub mod bookings;
pub mod events;
pub mod holds;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// A price or amount: ISO 4217 currency and integer minor units (cents), never floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// e.g. `EUR`.
    pub currency: String,
    /// e.g. `8900` for 89.00.
    pub minor_units: i64,
}

impl From<ticketing_proto::common::v1::Money> for Money {
    fn from(m: ticketing_proto::common::v1::Money) -> Self {
        Self { currency: m.currency, minor_units: m.minor_units }
    }
}

/// A page of a listing and the cursor of the next one (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A protobuf timestamp as an RFC 3339 instant.
pub fn instant(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// An RFC 3339 instant as a protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

/// An empty string as `None`.
pub fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

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
        (name = "holds", description = "Holding tickets"),
        (name = "bookings", description = "Bookings, payment, cancellation and tickets")
    )
)]
struct ApiDoc;

/// The routes and their OpenAPI document.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(events::routes())
        .merge(holds::routes())
        .merge(bookings::routes())
}
