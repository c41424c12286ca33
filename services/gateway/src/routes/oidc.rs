//! Social login with OpenID providers (ADR 0045), over identity: the browser goes to the
//! provider's authorization URL and comes back to the callback with a code and a state.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse as _;
use serde::{Deserialize, Serialize};
use ticketing_proto::identity::v1 as pb;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Tokens;
use crate::extract::ClientIp;
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start)).routes(routes!(callback))
}

/// Where to send the browser to sign in with the provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcStart {
    /// The provider's authorization URL (also in `Location`).
    pub authorization_url: String,
}

/// Begins a sign-in with a configured OpenID provider: redirects to its authorization
/// endpoint with a PKCE challenge, a state and a nonce, which work once, for
/// `identity.oidc.state_ttl` (10 minutes). The body carries the URL too, for clients that
/// do not follow redirects. Limited per client address like logins.
#[utoipa::path(get, path = "/v1/auth/oidc/{provider}/start", tag = "auth",
    params(("provider" = String, Path, description = "A provider configured in `identity.oidc.providers`")),
    responses((status = 302, body = OidcStart, description = "To the provider",
            headers(("Location" = String, description = "The provider's authorization URL"))),
        (status = 404, body = Problem, description = "No such provider"), (status = 429, body = Problem),
        (status = 502, body = Problem, description = "The provider cannot be reached")))]
async fn start(State(s): State<AppState>, Path(provider): Path<String>) -> Result<axum::response::Response, Problem> {
    let started =
        s.backends.identity.clone().start_oidc_login(pb::StartOidcLoginRequest { provider }).await.map_err(problem)?;
    let authorization_url = started.into_inner().authorization_url;
    let location = authorization_url.parse::<axum::http::HeaderValue>().map_err(|_| {
        tracing::error!("identity answered an authorization URL that is no header value");
        Problem::new(StatusCode::BAD_GATEWAY, "provider-error", "The sign-in provider failed", "")
    })?;
    Ok((StatusCode::FOUND, [(LOCATION, location)], axum::Json(OidcStart { authorization_url })).into_response())
}

/// What the provider appends to the redirect back.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The state of the sign-in, from `start`.
    state: Option<String>,
    /// Set instead of `code` when the provider or the user refused (e.g. `access_denied`).
    error: Option<String>,
    #[allow(dead_code)]
    error_description: Option<String>,
    /// The issuer (RFC 9207); identity checks the ID token's instead.
    #[allow(dead_code)]
    iss: Option<String>,
}

/// Finishes a sign-in: the provider's redirect back (or a web client passing its `code` and
/// `state` on). Identity exchanges the code, verifies the ID token against the provider's
/// keys and signs in the account linked to the provider's user; an account with the same
/// email is linked only when both the provider and the account verified it (otherwise
/// 409), and without one an account is made. The answer is a token pair, as a login's.
#[utoipa::path(get, path = "/v1/auth/oidc/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "The provider the sign-in started with"), CallbackQuery),
    responses((status = 200, body = Tokens),
        (status = 400, body = Problem, description = "An unknown, used or expired state"),
        (status = 401, body = Problem, description = "The provider refused, or its answer did not verify"),
        (status = 404, body = Problem, description = "No such provider"),
        (status = 409, body = Problem, description = "The email belongs to an account that cannot be linked"),
        (status = 502, body = Problem, description = "The provider cannot be reached")))]
async fn callback(
    State(s): State<AppState>,
    client: ClientIp,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<axum::Json<Tokens>, Problem> {
    if let Some(error) = q.error {
        // The provider's own code only (an OAuth error code, e.g. access_denied): its
        // description is its text, not ours to repeat.
        let error: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return Err(Problem::unauthenticated(format!("the sign-in provider refused: {error}")));
    }
    let message =
        pb::FinishOidcLoginRequest { provider, code: q.code.unwrap_or_default(), state: q.state.unwrap_or_default() };
    let request = client.request(&s.tokens, message).await?;
    let pair = s.backends.identity.clone().finish_oidc_login(request).await.map_err(problem)?;
    Ok(axum::Json(pair.into_inner().into()))
}

/// Identity's answer as a problem: a provider's failure is a 502, the rest as usual.
fn problem(status: tonic::Status) -> Problem {
    let reason = ticketing_platform::status::refusal_reason(&status);
    if status.code() == tonic::Code::Unavailable
        && reason.as_deref() == Some(ticketing_platform::status::OIDC_PROVIDER_FAILED)
    {
        let problem = Problem::from(status);
        return Problem {
            retry_after: problem.retry_after,
            ..Problem::new(StatusCode::BAD_GATEWAY, "provider-error", "The sign-in provider failed", problem.detail)
        };
    }
    status.into()
}
