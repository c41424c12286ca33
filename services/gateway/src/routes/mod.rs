//! The public REST API under `/v1`, each route documented in the OpenAPI document
//! it is registered with (utoipa-axum), so the router and `/openapi.json` cannot
//! drift apart.

pub mod admin;
pub mod auth;
pub mod bookings;
pub mod checkin;
pub mod contract;
pub mod events;
pub mod holds;
pub mod operations;
pub mod queue;
pub mod venues;
pub mod webhooks;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::config::GatewaySettings;
use crate::problem::{FieldError, Problem};
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

impl From<Money> for ticketing_proto::common::v1::Money {
    fn from(m: Money) -> Self {
        Self { currency: m.currency, minor_units: m.minor_units }
    }
}

/// The bad fields of a request body, gathered so that one answer lists them all.
#[derive(Debug, Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// Records a bad `field`.
    pub fn bad(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), detail: detail.into() });
    }

    /// `raw` must be a UUID.
    pub fn id(&mut self, field: &str, raw: &str) {
        if uuid::Uuid::parse_str(raw).is_err() {
            self.bad(field, "must be a UUID");
        }
    }

    /// An amount: an ISO 4217 code and non-negative minor units.
    pub fn money(&mut self, field: &str, money: &Money) {
        if money.currency.len() != 3 || !money.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            self.bad(format!("{field}.currency"), "must be an ISO 4217 code such as EUR");
        }
        if money.minor_units < 0 {
            self.bad(format!("{field}.minor_units"), "must not be negative");
        }
    }

    /// 400 listing every bad field, if any.
    pub fn check(self) -> Result<(), Problem> {
        if self.0.is_empty() { Ok(()) } else { Err(Problem::invalid(self.0)) }
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

/// Most items a page may ask for.
pub const MAX_PAGE: u32 = 100;

/// A listing's page: its cursor and a `limit` of 1 to [`MAX_PAGE`] items (absent: the
/// service's default).
pub fn page(cursor: Option<String>, limit: Option<u32>) -> Result<ticketing_proto::common::v1::PageRequest, Problem> {
    if limit.is_some_and(|l| !(1..=MAX_PAGE).contains(&l)) {
        return Err(Problem::field("limit", format!("must be 1 to {MAX_PAGE}")));
    }
    Ok(ticketing_proto::common::v1::PageRequest { limit: limit.unwrap_or(0), cursor: cursor.unwrap_or_default() })
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
        (name = "organizer", description = "Venues, seat maps, events and their sale, for organizers and admins"),
        (name = "waiting room", description = "Queueing for sales in on-sale mode, and admission passes"),
        (name = "holds", description = "Holding tickets"),
        (name = "bookings", description = "Bookings, payment, cancellation and tickets"),
        (name = "checkin", description = "Checking tickets in at the gate"),
        (name = "webhooks", description = "Payment providers' webhooks, authenticated by their signature"),
        (name = "admin", description = "Platform administration"),
        (name = "operations", description = "Liveness and readiness for load balancers")
    )
)]
struct ApiDoc;

/// The routes and their OpenAPI document, completed with what every operation can answer
/// ([`contract::Contract`]).
pub fn api(settings: &GatewaySettings) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(events::routes())
        .merge(queue::routes())
        .merge(holds::routes())
        .merge(bookings::routes())
        .merge(venues::routes(settings.max_seat_map_bytes))
        .merge(checkin::routes())
        .merge(webhooks::routes())
        .merge(admin::routes())
        .split_for_parts();
    contract::Contract.modify(&mut openapi);
    (router, openapi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_asks_for_1_to_100_items_or_the_default() {
        assert_eq!(page(None, None).unwrap().limit, 0, "the service's default");
        assert_eq!(
            page(Some("c".into()), Some(100)).unwrap(),
            ticketing_proto::common::v1::PageRequest { limit: 100, cursor: "c".into() }
        );
        for limit in [0, 101, u32::MAX] {
            let problem = page(None, Some(limit)).unwrap_err();
            assert_eq!((problem.status, problem.errors[0].field.as_str()), (400, "limit"), "{limit}");
        }
    }
}
