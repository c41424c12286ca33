//! `POST /graphql`: a read API beside REST (ADR 0041), over the same backends, tokens and
//! limits, with GraphiQL at `GET /graphql`. Events, venues and availability are public;
//! `me` is the signed-in caller's own bookings and tickets only. A backend's error is a
//! GraphQL error whose `extensions.code` is the REST problem type's name (`NOT_FOUND` for
//! `not-found`), with that `type` and `status` beside it; server errors keep their cause
//! in the log, as REST's do.

pub mod graphiql;
pub mod loaders;
pub mod types;

use async_graphql::{Context, EmptyMutation, EmptySubscription, ErrorExtensions as _, ID, Object, Result, Schema};
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use ticketing_kernel::time::to_proto;
use ticketing_platform::auth::Principal;
use ticketing_proto::catalog::v1 as catalog;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::loaders::Loaders;
use self::types::{Event, EventPage, Me, Venue};
use crate::config::GraphqlSettings;
use crate::extract::{Caller, Json, bearer};
use crate::problem::{Problem, TYPE_BASE};
use crate::routes::common::{non_empty, page};
use crate::state::AppState;

/// The schema: queries only.
pub type GraphqlSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The schema with `settings`' depth and complexity limits.
pub fn schema(settings: &GraphqlSettings) -> GraphqlSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .limit_depth(settings.max_depth)
        .limit_complexity(settings.max_complexity)
        .finish()
}

/// The schema in SDL, as `services/gateway/schema.graphql` keeps it.
pub fn sdl() -> String {
    schema(&GraphqlSettings::default()).sdl()
}

/// Who asks: anonymous (no token), signed in, or a token that failed (its problem).
pub struct Viewer(Option<std::result::Result<Principal, Problem>>);

impl Viewer {
    /// The signed-in caller; anonymous or a bad token is UNAUTHENTICATED.
    pub fn signed_in(&self) -> std::result::Result<&Principal, Problem> {
        match &self.0 {
            Some(Ok(principal)) => Ok(principal),
            Some(Err(problem)) => Err(problem.clone()),
            None => Err(Problem::unauthenticated("sign in: send Authorization: Bearer <access token>")),
        }
    }

    /// `message` on `principal`'s behalf, carrying their token.
    pub fn request<T>(principal: &Principal, message: T) -> tonic::Request<T> {
        ticketing_platform::auth::with_bearer(tonic::Request::new(message), &principal.token)
    }
}

/// A failure as a GraphQL error.
pub trait Fail<T> {
    fn fail(self) -> Result<T>;
}

impl<T, E: Into<Problem>> Fail<T> for std::result::Result<T, E> {
    fn fail(self) -> Result<T> {
        self.map_err(|e| error(e.into()))
    }
}

/// `problem` as a GraphQL error: its type's name as `code`, its `type` and `status`, and
/// `retryAfter` (seconds) when it has one. A server error says only what kind it is, as
/// REST's 5xx answers do; its cause is logged here, inside the request's trace.
fn error(problem: Problem) -> async_graphql::Error {
    let problem = if problem.status >= 500 {
        tracing::warn!(status = problem.status, kind = %problem.kind, detail = %problem.detail, "graphql: server error");
        problem.public("")
    } else {
        problem
    };
    let slug = problem.kind.strip_prefix(TYPE_BASE).unwrap_or("backend-error").to_owned();
    let message = if problem.detail.is_empty() { problem.title.to_owned() } else { problem.detail.clone() };
    async_graphql::Error::new(message).extend_with(|_, e| {
        e.set("code", code(&slug));
        e.set("type", problem.kind.clone());
        e.set("status", problem.status);
        if let Some(after) = problem.retry_after {
            e.set("retryAfter", after.as_secs_f64().ceil() as u64);
        }
    })
}

/// `not-found` as `NOT_FOUND`.
fn code(slug: &str) -> String {
    slug.to_ascii_uppercase().replace('-', "_")
}

/// The schema's root.
pub struct Query;

#[Object]
impl Query {
    /// Published and on-sale events, soonest first: `query` searches name, description and
    /// venue; `from` and `to` bound the start; `first` is 1 to 100 (default 20); `after` is
    /// a previous page's `nextCursor`.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        venue: Option<ID>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<u32>,
        after: Option<String>,
    ) -> Result<EventPage> {
        if let Some(venue) = &venue {
            crate::extract::id("venue", venue).fail()?;
        }
        let request = catalog::ListEventsRequest {
            query: query.unwrap_or_default(),
            starts_from: from.map(to_proto),
            starts_before: to.map(to_proto),
            venue_id: venue.map(|v| v.0).unwrap_or_default(),
            page: Some(page(after, first).fail()?),
            ..Default::default()
        };
        let found = loaders(ctx).backends.catalog.clone().list_events(request).await.fail()?.into_inner();
        Ok(EventPage {
            items: found.events.into_iter().map(Into::into).collect(),
            next_cursor: found.page.and_then(|p| non_empty(p.next_cursor)),
        })
    }

    /// One event with its categories and prices.
    async fn event(&self, ctx: &Context<'_>, id: ID) -> Result<Event> {
        crate::extract::id("id", &id).fail()?;
        let request = catalog::GetEventRequest { event_id: id.0, include_seat_ids: false };
        Ok(loaders(ctx).backends.catalog.clone().get_event(request).await.fail()?.into_inner().into())
    }

    /// One venue.
    async fn venue(&self, ctx: &Context<'_>, id: ID) -> Result<Venue> {
        crate::extract::id("id", &id).fail()?;
        let request = catalog::GetVenueRequest { venue_id: id.0, include_seat_map: false };
        Ok(loaders(ctx).backends.catalog.clone().get_venue(request).await.fail()?.into_inner().into())
    }

    /// The signed-in caller; UNAUTHENTICATED without a valid bearer token.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        Ok(Me(ctx.data_unchecked::<Viewer>().signed_in().fail()?.clone()))
    }
}

fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

/// `POST /graphql` and the GraphiQL page at `GET /graphql`, documented with the REST routes.
pub fn routes(settings: &GraphqlSettings) -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(graphiql::page, execute)).layer(Extension(schema(settings)))
}

/// A GraphQL request: `query`, and optionally `operationName` and `variables`. Strict like
/// every body: a missing query, a field of the wrong type or an unknown field is a 422.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GraphqlRequest {
    query: String,
    operation_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
}

impl From<GraphqlRequest> for async_graphql::Request {
    fn from(r: GraphqlRequest) -> Self {
        let variables = async_graphql::Variables::from_json(serde_json::Value::Object(r.variables.unwrap_or_default()));
        let request = async_graphql::Request::new(r.query).variables(variables);
        match r.operation_name {
            Some(name) => request.operation_name(name),
            None => request,
        }
    }
}

/// Runs a query (queries only; `me` needs a bearer token). Always 200 with `data` and,
/// when something failed, `errors`, each with an `extensions.code` naming its problem
/// type (`NOT_FOUND`, `UNAUTHENTICATED`, `FORBIDDEN`, `UNAVAILABLE`…); a query deeper or
/// costlier than `gateway.graphql`'s limits is refused whole with `BAD_REQUEST`.
#[utoipa::path(post, path = "/graphql", tag = "graphql",
    security((), ("bearer" = [])),
    request_body(content = GraphqlRequest, content_type = "application/json"),
    responses((status = 200, description = "`{data, errors}`, as GraphQL over HTTP answers",
               body = Object, content_type = "application/json"),
              (status = 400, body = Problem)))]
async fn execute(
    State(s): State<AppState>,
    Extension(schema): Extension<GraphqlSchema>,
    headers: HeaderMap,
    caller: std::result::Result<Caller, Problem>,
    Json(request): Json<GraphqlRequest>,
) -> axum::Json<async_graphql::Response> {
    let viewer = Viewer(bearer(&headers).map(|_| caller.map(|Caller(principal)| principal)));
    let request = async_graphql::Request::from(request).data(viewer).data(Loaders::new(&s.backends));
    let mut response = schema.execute(request).await;
    // What the schema refused (syntax, validation, limits) names no problem type yet.
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_REQUEST");
            extensions.set("type", format!("{TYPE_BASE}bad-request"));
            extensions.set("status", 400);
        }
    }
    axum::Json(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema clients generate code from is kept in the repository; a change to the
    /// types must change the file in the same commit.
    #[test]
    fn the_schema_file_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let current = sdl();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &current).expect("write schema.graphql");
        }
        let kept = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            kept == current,
            "services/gateway/schema.graphql is not the schema the code serves; regenerate it with\n  \
             UPDATE_SCHEMA=1 cargo test -p ticketing-gateway --lib graphql::tests::the_schema_file_is_current\n\
             and commit the change"
        );
    }

    #[test]
    fn codes_are_the_problem_types_names() {
        for (status, code) in [
            (tonic::Status::not_found("x"), "NOT_FOUND"),
            (tonic::Status::permission_denied("x"), "FORBIDDEN"),
            (tonic::Status::unauthenticated("x"), "UNAUTHENTICATED"),
            (tonic::Status::unavailable("at 10.0.0.7:50052"), "UNAVAILABLE"),
            (tonic::Status::internal("stack trace"), "BACKEND_ERROR"),
        ] {
            let error = Err::<(), _>(status).fail().unwrap_err();
            let extensions = error.extensions.expect("extensions");
            assert_eq!(extensions.get("code"), Some(&async_graphql::Value::from(code)));
            assert!(!error.message.contains("10.0.0.7") && !error.message.contains("stack"), "{}", error.message);
        }
    }
}
