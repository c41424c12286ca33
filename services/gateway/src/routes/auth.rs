//! Accounts and tokens, over identity.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_proto::identity::v1 as pb;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::instant;
use super::dto::User;
use crate::extract::{Caller, ClientIp, Json};
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(jwks))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    #[serde(default)]
    pub display_name: String,
}

/// An email is on its way (or, to reveal nothing, might be): what `POST /v1/auth/register`
/// answers whether or not the email had an account, and the resend of a verification link.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailSent {
    /// What happens next.
    pub detail: String,
}

/// Creates an account with the `user` role. The answer is the same whether or not the
/// email already has an account, whose owner is told by email instead; it reveals no
/// accounts. Limited per client address (`gateway.rate_limits.register`).
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 202, body = EmailSent), (status = 400, body = Problem),
        (status = 429, body = Problem)))]
async fn register(
    State(s): State<AppState>,
    Json(b): Json<RegisterBody>,
) -> Result<(StatusCode, axum::Json<EmailSent>), Problem> {
    let request = pb::RegisterRequest { email: b.email, password: b.password, display_name: b.display_name };
    s.backends.identity.clone().register(request).await?;
    let detail = "An email is on its way to this address; follow its link to verify it.".to_owned();
    Ok((StatusCode::ACCEPTED, axum::Json(EmailSent { detail })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailBody {
    /// The token of the verification email's link.
    pub token: String,
}

/// Verifies the email of the account the token was mailed to. The token works once, until
/// it expires; access tokens carry `email_verified` from the next login or refresh on.
#[utoipa::path(post, path = "/v1/auth/verify-email", tag = "auth", request_body = VerifyEmailBody,
    responses((status = 204, description = "Verified"),
        (status = 400, body = Problem, description = "An unknown, used or expired token")))]
async fn verify_email(State(s): State<AppState>, Json(b): Json<VerifyEmailBody>) -> Result<StatusCode, Problem> {
    s.backends.identity.clone().verify_email(pb::VerifyEmailRequest { token: b.token }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mails the caller a new verification link, unless their email is verified already; earlier
/// links stop working. Limited per user (`gateway.rate_limits.register`).
#[utoipa::path(post, path = "/v1/auth/verify-email/resend", tag = "auth", security(("bearer" = [])),
    responses((status = 202, body = EmailSent), (status = 401, body = Problem),
        (status = 429, body = Problem)))]
async fn resend_verification(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, axum::Json<EmailSent>), Problem> {
    let request = caller.request(pb::ResendVerificationEmailRequest {});
    s.backends.identity.clone().resend_verification_email(request).await?;
    let detail = "Unless your email is verified already, a new link is on its way.".to_owned();
    Ok((StatusCode::ACCEPTED, axum::Json(EmailSent { detail })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

/// An access token (JWT, short-lived) and a refresh token (opaque, rotated on use).
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: String,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    /// Always `Bearer`.
    pub token_type: String,
}

impl From<pb::TokenPair> for Tokens {
    fn from(t: pb::TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            access_token_expires_at: instant(t.access_token_expires_at),
            refresh_token: t.refresh_token,
            refresh_token_expires_at: instant(t.refresh_token_expires_at),
            token_type: "Bearer".into(),
        }
    }
}

/// Exchanges email and password for tokens.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = Tokens), (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(s): State<AppState>,
    client: ClientIp,
    Json(b): Json<LoginBody>,
) -> Result<axum::Json<Tokens>, Problem> {
    let request = client.request(&s.tokens, pb::LoginRequest { email: b.email, password: b.password }).await?;
    let pair = s.backends.identity.clone().login(request).await?;
    Ok(axum::Json(pair.into_inner().into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// Rotates a refresh token; presenting an already rotated one revokes the whole login.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = Tokens), (status = 401, body = Problem)))]
async fn refresh(State(s): State<AppState>, Json(b): Json<RefreshBody>) -> Result<axum::Json<Tokens>, Problem> {
    let pair = s.backends.identity.clone().refresh(pb::RefreshRequest { refresh_token: b.refresh_token }).await?;
    Ok(axum::Json(pair.into_inner().into()))
}

/// Revokes the refresh token's whole login.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshBody,
    responses((status = 204), (status = 401, body = Problem)))]
async fn logout(State(s): State<AppState>, Json(b): Json<RefreshBody>) -> Result<StatusCode, Problem> {
    s.backends.identity.clone().logout(pb::LogoutRequest { refresh_token: b.refresh_token }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
async fn me(State(s): State<AppState>, caller: Caller) -> Result<axum::Json<User>, Problem> {
    let user = s.backends.identity.clone().get_me(caller.request(pb::GetMeRequest {})).await?;
    Ok(axum::Json(user.into_inner().into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    pub display_name: Option<String>,
}

/// Updates the caller's profile.
#[utoipa::path(patch, path = "/v1/me", tag = "auth", security(("bearer" = [])), request_body = UpdateMeBody,
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn update_me(
    State(s): State<AppState>,
    caller: Caller,
    Json(b): Json<UpdateMeBody>,
) -> Result<axum::Json<User>, Problem> {
    let request = caller.request(pb::UpdateMeRequest { display_name: b.display_name });
    Ok(axum::Json(s.backends.identity.clone().update_me(request).await?.into_inner().into()))
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "A JWKS document", content_type = "application/json")))]
async fn jwks(State(s): State<AppState>) -> Result<axum::response::Response, Problem> {
    let document = s.backends.identity.clone().get_jwks(pb::GetJwksRequest {}).await?.into_inner().jwks_json;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], document).into_response())
}

use axum::response::IntoResponse as _;
