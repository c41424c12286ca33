//! Request extractors whose failures are problem documents, never plain-text 4xx
//! or 5xx: JSON bodies, the caller's token, idempotency keys, admission passes and ids in
//! paths.

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use ticketing_platform::auth::{AuthError, Principal, Role};
use ticketing_platform::peers::{CLIENT_ADDRESS, CLIENT_USER_AGENT, ServiceTokens};

use crate::problem::Problem;
use crate::state::AppState;

/// A JSON body; unknown fields, wrong types and malformed JSON are 4xx problems.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-body",
                    "The body does not match the schema",
                    e.body_text(),
                ),
                JsonRejection::JsonSyntaxError(e) => {
                    Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON", e.body_text())
                }
                JsonRejection::MissingJsonContentType(_) => Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Expected application/json",
                    "send the body as application/json",
                ),
                other => unreadable(other.status(), other.body_text()),
            }),
        }
    }
}

/// The body's exact bytes, for webhooks whose signature covers them.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| unreadable(rejection.status(), rejection.body_text()))
    }
}

/// A body that could not be read: too large (413), or cut off or otherwise broken (400).
fn unreadable(status: StatusCode, detail: String) -> Problem {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "payload-too-large", "Body too large", detail)
    } else {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Unreadable request", detail)
    }
}

/// The authenticated caller: their principal and the token to forward.
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses callers without `role` (admins always pass).
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.0.roles.iter().any(|r| *r == role || *r == Role::Admin) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("requires the {} role", role.as_str())))
        }
    }

    /// `message` as a gRPC request carrying the caller's token and, in [`CLIENT_ADDRESS`] and
    /// [`CLIENT_USER_AGENT`], where the request came from ([`IdentifyClient`]), which the
    /// services write into the audit records of privileged actions (ADR 0046).
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = ticketing_platform::auth::with_bearer(tonic::Request::new(message), &self.0.token);
        // Outside a request (a test calling a handler directly) there is no origin to name.
        let _ = ORIGIN.try_with(|origin| origin.stamp(&mut request));
        request
    }
}

tokio::task_local! {
    /// The origin of the request being handled, set by [`IdentifyClient`] around the handler.
    /// A task-local rather than a field of [`Caller`], so every call a handler makes on the
    /// caller's behalf names it without each handler having to ask for it.
    static ORIGIN: ClientOrigin;
}

/// Where a request came from: the address of [`ClientIp`] and the `User-Agent`, printable
/// ASCII cut short.
#[derive(Debug, Clone, Default)]
pub struct ClientOrigin {
    address: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    user_agent: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl ClientOrigin {
    fn of(ip: Option<std::net::IpAddr>, headers: &axum::http::HeaderMap) -> Self {
        let user_agent = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(ticketing_platform::audit::printable_user_agent);
        Self {
            address: ip.and_then(|ip| ip.to_string().parse().ok()),
            user_agent: user_agent.and_then(|ua| ua.parse().ok()),
        }
    }

    fn stamp<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(address) = &self.address {
            request.metadata_mut().insert(CLIENT_ADDRESS, address.clone());
        }
        self.stamp_user_agent(request);
    }

    fn stamp_user_agent<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(user_agent) = &self.user_agent {
            request.metadata_mut().insert(CLIENT_USER_AGENT, user_agent.clone());
        }
    }
}

/// The client's address as the rate limits see it ([`crate::ratelimit::client_ip`]), derived
/// once per request by [`IdentifyClient`], for the limits and for the calls that hand it
/// on: identity throttles logins per address, and without it every login through one
/// gateway pod would share that pod's address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

/// Middleware: puts the request's [`ClientIp`] in its extensions, reading `X-Forwarded-For`
/// as far as `hops` trusted proxies wrote it, and runs the service inside it with the
/// request's [`ClientOrigin`]. A tower service rather than `from_fn`, which would clone and
/// box everything inside it for every request.
#[derive(Clone)]
pub struct IdentifyClient<S> {
    inner: S,
    hops: usize,
}

impl IdentifyClient<()> {
    /// The layer, trusting `hops` proxies.
    pub fn layer<S>(hops: usize) -> impl tower::Layer<S, Service = IdentifyClient<S>> + Clone {
        tower::layer::layer_fn(move |inner| IdentifyClient { inner, hops })
    }
}

impl<S: tower::Service<Request>> tower::Service<Request> for IdentifyClient<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<ClientOrigin, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let peer = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let ip = crate::ratelimit::client_ip(peer, request.headers(), self.hops);
        let origin = ClientOrigin::of(ip, request.headers());
        request.extensions_mut().insert(ClientIp(ip));
        ORIGIN.scope(origin, self.inner.call(request))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().copied().unwrap_or(Self(None)))
    }
}

impl ClientIp {
    /// `message` for identity on the gateway's own behalf, naming the client's address in
    /// [`CLIENT_ADDRESS`] and its `User-Agent` in [`CLIENT_USER_AGENT`] (a session's list
    /// shows it): identity believes them only with the gateway's token.
    pub async fn request<T>(&self, tokens: &ServiceTokens, message: T) -> Result<tonic::Request<T>, Problem> {
        let mut request = tokens.request(message).await.map_err(|status| {
            tracing::error!(code = ?status.code(), message = status.message(), "no service token for the gateway");
            Problem::unavailable("cannot reach identity now", std::time::Duration::from_secs(1))
        })?;
        if let Some(value) = self.0.and_then(|ip| ip.to_string().parse().ok()) {
            request.metadata_mut().insert(CLIENT_ADDRESS, value);
        }
        // The agent IdentifyClient already read and cleaned for this request.
        let _ = ORIGIN.try_with(|origin| origin.stamp_user_agent(&mut request));
        Ok(request)
    }
}

/// The caller the rate limiter already verified from this request's own token.
#[derive(Clone)]
pub struct Verified(pub Principal);

/// The bearer token of `Authorization`, if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if let Some(Verified(principal)) = parts.extensions.remove::<Verified>() {
            return Ok(Self(principal));
        }
        let token = bearer(&parts.headers)
            .ok_or_else(|| Problem::unauthenticated("send Authorization: Bearer <access token>"))?;
        match state.verifier.verify(token).await {
            Ok(principal) => Ok(Self(principal)),
            Err(AuthError::KeysUnavailable(e)) => {
                Err(Problem::unavailable(format!("cannot verify tokens now: {e}"), std::time::Duration::from_secs(2)))
            }
            Err(e) => Err(Problem::unauthenticated(e.to_string())),
        }
    }
}

/// The `Idempotency-Key` header, or empty when absent.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(Self(String::new())) };
        use ticketing_kernel::idempotency::{KEY_RULE, is_valid_key};
        // The kernel's rule, which the services apply too: a key let through here is never
        // refused behind (the gateway could only report that as a key reused).
        match value.to_str() {
            Ok(key) if is_valid_key(key) => Ok(Self(key.to_owned())),
            _ => Err(Problem::field("Idempotency-Key", KEY_RULE)),
        }
    }
}

/// The `Admission-Pass` header of a hold, if sent ([`crate::waiting_room`]).
pub struct AdmissionPass(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for AdmissionPass {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get("admission-pass") else { return Ok(Self(None)) };
        let pass = value.to_str().map_err(|_| Problem::field("Admission-Pass", "must be visible ASCII"))?;
        Ok(Self(Some(pass.to_owned())))
    }
}

/// A path's `{id}`, which must be a UUID: a malformed one is a 400 naming `id`.
pub struct PathId {
    /// As the client sent it, which is what the backends are called with.
    pub raw: String,
    /// Parsed.
    pub uuid: uuid::Uuid,
}

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Problem::field("id", rejection.body_text()))?;
        let uuid = id("id", &raw)?;
        Ok(Self { raw, uuid })
    }
}

/// Parses an id from the path; a malformed one is a 400 naming the parameter.
pub fn id(name: &str, raw: &str) -> Result<uuid::Uuid, Problem> {
    uuid::Uuid::parse_str(raw).map_err(|_| Problem::field(name, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    /// What `GET /things/{id}` answers through a router whose handler takes a [`PathId`].
    async fn get_thing(id: &str) -> (StatusCode, serde_json::Value) {
        let router = axum::Router::new().route(
            "/things/{id}",
            get(|PathId { raw, uuid }: PathId| async move { format!("{raw} {}", uuid.as_hyphenated()) }),
        );
        let request = axum::http::Request::get(format!("/things/{id}")).body(Body::empty()).expect("a request");
        let response = router.oneshot(request).await.expect("the router answers");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("a body");
        let body = serde_json::from_slice(&body).unwrap_or_else(|_| String::from_utf8_lossy(&body).into());
        (status, body)
    }

    #[tokio::test]
    async fn a_path_id_must_be_a_uuid_and_a_bad_one_is_a_problem_naming_it() {
        let good = "0f8c2a5e-8a4c-4a57-9d63-2a3f4b1c9e10";
        assert_eq!(get_thing(good).await, (StatusCode::OK, serde_json::Value::String(format!("{good} {good}"))));
        let (status, problem) = get_thing("not-a-uuid").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "id", "{problem}");
        assert_eq!(problem["errors"][0]["detail"], "must be a UUID", "{problem}");
    }
}
