//! Access-token verification against a JWKS, and the caller's [`Principal`].
//!
//! Tokens are EdDSA (Ed25519) JWTs signed by identity. [`Verifier`] caches the
//! JWKS by `kid`, refetches it periodically and when an unknown `kid` shows up
//! (rate-limited), and accepts nothing but EdDSA. [`AuthLayer`] runs it on
//! every gRPC call: no token means an anonymous call, a bad token is refused
//! with `UNAUTHENTICATED`, a good one puts a [`Principal`] in the request.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use crate::config::{ConfigIssue, Validate, check_http_url};

/// How services verify access tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Where the JWKS is served (identity's admin port in a cluster).
    pub jwks_url: String,
    /// Expected `iss` claim.
    pub issuer: String,
    /// Expected `aud` claim.
    pub audience: String,
    /// How often the JWKS is refetched even without an unknown `kid`.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// Shortest gap between two fetches triggered by unknown `kid`s.
    #[serde(with = "humantime_serde")]
    pub jwks_min_refetch_interval: Duration,
    /// Allowed clock skew when checking `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Longest lifetime (`exp - iat`) of an access token that verifiers accept.
    #[serde(with = "humantime_serde")]
    pub max_token_lifetime: Duration,
    /// Identity's gRPC address, for service tokens.
    pub identity_url: String,
    /// This workload's client id at identity (empty: it never calls on its own behalf).
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: "http://127.0.0.1:51051/.well-known/jwks.json".into(),
            issuer: "https://ticketing.local".into(),
            audience: "ticketing".into(),
            jwks_refresh_interval: Duration::from_secs(30),
            jwks_min_refetch_interval: Duration::from_secs(10),
            leeway: Duration::from_secs(30),
            max_token_lifetime: Duration::from_secs(3600),
            identity_url: "http://127.0.0.1:50051".into(),
            client_id: String::new(),
            client_secret: String::new(),
        }
    }
}

impl Validate for AuthConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        check_http_url("auth.jwks_url", &self.jwks_url, issues);
        if self.issuer.is_empty() {
            issues.push(ConfigIssue::new("auth.issuer", "must not be empty"));
        }
        if self.audience.is_empty() {
            issues.push(ConfigIssue::new("auth.audience", "must not be empty"));
        }
        if self.max_token_lifetime < Duration::from_secs(60) || self.max_token_lifetime > Duration::from_secs(86_400) {
            issues.push(ConfigIssue::new("auth.max_token_lifetime", "must be between 1m and 24h"));
        }
        check_http_url("auth.identity_url", &self.identity_url, issues);
        if self.client_id.is_empty() != self.client_secret.is_empty() {
            issues.push(ConfigIssue::new("auth.client_secret", "auth.client_id and auth.client_secret go together"));
        }
    }
}

/// A platform role. Admins manage everything, organizers their own events, users buy,
/// and services act for the platform itself (e.g. booking confirming a sale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Buys tickets.
    User,
    /// Manages their own venues and events.
    Organizer,
    /// Manages everything.
    Admin,
    /// Another platform service, calling on its own behalf.
    Service,
}

impl Role {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Organizer => "organizer",
            Self::Admin => "admin",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Self::User),
            "organizer" => Ok(Self::Organizer),
            "admin" => Ok(Self::Admin),
            "service" => Ok(Self::Service),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// A service-to-service permission a workload's token carries in its `scope` claim
/// (RFC 8693 §4.2), so that one workload's credentials open only the calls it makes. The
/// `service` role alone grants none of them; admins hold them all.
/// Its name is spelled once, in [`Scope::as_str`]; serde goes through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Scope {
    /// Read, confirm, release and restock any hold (booking's saga).
    InventoryHolds,
    /// Read any payment.
    PaymentRead,
    /// Refund any payment.
    PaymentRefund,
    /// Revoke any booking's tickets.
    TicketsRevoke,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Self; 4] = [Self::InventoryHolds, Self::PaymentRead, Self::PaymentRefund, Self::TicketsRevoke];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InventoryHolds => "inventory:holds",
            Self::PaymentRead => "payment:read",
            Self::PaymentRefund => "payment:refund",
            Self::TicketsRevoke => "tickets:revoke",
        }
    }

    /// The scope named `name`, if this build knows it.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The scopes of a space-separated `scope` claim; names this build does not know are
    /// skipped, so a newer identity can grant more without older verifiers failing.
    pub fn parse_claim(claim: &str) -> Vec<Self> {
        claim.split_ascii_whitespace().filter_map(Self::named).collect()
    }

    /// `scopes` as a `scope` claim.
    pub fn claim(scopes: &[Self]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }
}

impl TryFrom<String> for Scope {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::named(&name).ok_or_else(|| {
            let known = Self::ALL.map(Self::as_str).join(", ");
            format!("unknown scope {name:?} (known: {known})")
        })
    }
}

impl From<Scope> for &'static str {
    fn from(scope: Scope) -> Self {
        scope.as_str()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JOSE `typ` of an access token (RFC 9068 §2.1). Verifiers refuse any other, so no
/// other JWT signed by the same key can pass for an access token (RFC 8725 §3.11).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The header of an access token signed by key `kid`.
pub fn access_token_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
    header.kid = Some(kid.to_owned());
    header
}

/// Whether a `typ` header names an access token: `at+jwt`, or the full media type
/// `application/at+jwt`, compared without regard to case (RFC 7515 §4.1.9).
fn is_access_token_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        let t = t.get(..12).filter(|p| p.eq_ignore_ascii_case("application/")).map_or(t, |_| &t[12..]);
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
    })
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// A workload's [`Scope`]s, space-separated; absent from users' tokens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Whether the user proved they read the account's email (OIDC's claim); absent from
    /// workloads' tokens, and read as `false` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The session (refresh token family) a user's token was issued for (OIDC's `sid`),
    /// so identity can tell the caller's own session from their others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Unique token id.
    pub jti: String,
}

impl Claims {
    /// The claims of an access token for `sub` with `roles`, from `auth`'s issuer for its
    /// audience, issued at `now` (seconds since the epoch) and valid for `ttl`.
    pub fn issue(sub: String, roles: Vec<Role>, auth: &AuthConfig, now: i64, ttl: Duration) -> Self {
        Self {
            sub,
            roles,
            iss: auth.issuer.clone(),
            aud: auth.audience.clone(),
            exp: now.saturating_add(ttl.as_secs() as i64),
            iat: now,
            nbf: now,
            scope: String::new(),
            email_verified: None,
            sid: None,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: uuid::Uuid,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// A workload's scopes (empty for users).
    pub scopes: Vec<Scope>,
    /// The token's `email_verified` claim (`false` when absent).
    pub email_verified: bool,
    /// The raw bearer token, forwarded on calls made on the caller's behalf.
    pub token: String,
}

impl Principal {
    /// Whether the caller may take part in a sale (hold, queue): a user who verified their
    /// email, or a workload acting for one. Accounts made in bulk without an inbox may not.
    pub fn may_buy(&self) -> bool {
        self.email_verified || self.has_role(Role::Service)
    }

    /// Whether the caller has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller may make the calls `scope` guards: a workload granted it, or an admin.
    pub fn may(&self, scope: Scope) -> bool {
        self.has_role(Role::Admin) || self.scopes.contains(&scope)
    }

    /// The caller of `request` if it [may](Self::may) use `scope`; `PERMISSION_DENIED` otherwise.
    pub fn with_scope<T>(request: &tonic::Request<T>, scope: Scope) -> Result<Self, tonic::Status> {
        let principal = Self::of(request)?;
        if principal.may(scope) {
            Ok(principal)
        } else {
            Err(tonic::Status::permission_denied(format!("the {scope} scope or the admin role is required")))
        }
    }

    /// The caller of `request`, or `UNAUTHENTICATED` for an anonymous call.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, tonic::Status> {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .ok_or_else(|| tonic::Status::unauthenticated("an access token is required"))
    }

    /// The caller of `request` if it has any of `roles`; `PERMISSION_DENIED` otherwise.
    pub fn with_any_role<T>(request: &tonic::Request<T>, roles: &[Role]) -> Result<Self, tonic::Status> {
        let principal = Self::of(request)?;
        if roles.iter().any(|r| principal.has_role(*r)) {
            Ok(principal)
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(tonic::Status::permission_denied(format!("one of the roles {names:?} is required")))
        }
    }

    /// The caller of `request` if it has `role`; `PERMISSION_DENIED` otherwise.
    pub fn with_role<T>(request: &tonic::Request<T>, role: Role) -> Result<Self, tonic::Status> {
        let principal = Self::of(request)?;
        if principal.has_role(role) {
            Ok(principal)
        } else {
            Err(tonic::Status::permission_denied(format!("the {role} role is required")))
        }
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Not a JWT, or a header we do not accept (`alg` other than EdDSA, no `kid`).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed by a key the JWKS does not have.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Not an access token (`typ`), not valid yet (`nbf`, `iat`), valid for longer than
    /// verifiers accept, or a bad signature, issuer, audience or claims.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The JWKS could not be fetched, so nothing can be verified.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable(_) => tonic::Status::unavailable(e.to_string()),
            _ => tonic::Status::unauthenticated(e.to_string()),
        }
    }
}

/// Where the verifier gets its keys.
pub type JwksSource = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<JwkSet>> + Send + Sync>;

/// Fetches the JWKS from `url` over HTTP.
pub fn http_jwks(url: String) -> JwksSource {
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a plain HTTP client always builds");
    Arc::new(move || {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            let set = client.get(&url).send().await?.error_for_status()?.json::<JwkSet>().await?;
            Ok(set)
        })
    })
}

/// Most verified tokens remembered at once.
const VERIFIED_CACHE_CAP: usize = 100_000;

/// Verifies access tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    source: JwksSource,
    validation: Validation,
    /// Tokens already verified, with their expiry: a buyer sends the same token with
    /// every request, and the signature check is the costliest step of a hold.
    verified: std::sync::RwLock<HashMap<String, (Principal, i64)>>,
    keys: RwLock<Keys>,
    fetching: Mutex<()>,
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    /// When the keys are next due for a refetch, in milliseconds since `started`: checked on
    /// every verification, cached or not, so a withdrawn key stops vouching for the tokens
    /// it signed within the refresh interval even when no new token comes along.
    refresh_due_ms: AtomicU64,
    started: Instant,
    /// Longest `exp - iat` accepted, in seconds.
    max_lifetime: i64,
    /// Allowed clock skew, in seconds.
    leeway: i64,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// Last successful fetch: drives the periodic refresh.
    fetched_at: Option<Instant>,
    /// Last fetch attempt, successful or not: rate-limits fetches for unknown kids.
    attempted_at: Option<Instant>,
}

impl Verifier {
    /// A verifier for `config`'s issuer and audience, with keys from `source`.
    pub fn new(config: &AuthConfig, source: JwksSource) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway.as_secs();
        Self {
            inner: Arc::new(Inner {
                source,
                validation,
                verified: std::sync::RwLock::new(HashMap::new()),
                keys: RwLock::new(Keys::default()),
                fetching: Mutex::new(()),
                refresh_interval: config.jwks_refresh_interval,
                min_refetch_interval: config.jwks_min_refetch_interval,
                refresh_due_ms: AtomicU64::new(u64::MAX),
                started: Instant::now(),
                max_lifetime: config.max_token_lifetime.as_secs() as i64,
                leeway: config.leeway.as_secs() as i64,
            }),
        }
    }

    /// A verifier fetching the JWKS from `config.jwks_url`.
    pub fn from_config(config: &AuthConfig) -> Self {
        Self::new(config, http_jwks(config.jwks_url.clone()))
    }

    /// Verifies `token` and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.refresh_if_due().await;
        let now = jsonwebtoken::get_current_timestamp() as i64;
        if let Some((principal, exp)) = self.inner.verified.read().expect("cache lock").get(token)
            && *exp > now
        {
            return Ok(principal.clone());
        }
        self.verify_signed(token).await
    }

    async fn verify_signed(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Malformed(format!("alg {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Malformed("no kid".into()))?;
        if !is_access_token_type(header.typ.as_deref()) {
            return Err(AuthError::Invalid(format!("typ must be {ACCESS_TOKEN_TYPE}")));
        }
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.inner.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        })?;
        let claims = &data.claims;
        // A stolen long-lived token stays useful for long: refuse what identity would not issue.
        if claims.exp.saturating_sub(claims.iat) > self.inner.max_lifetime {
            return Err(AuthError::Invalid("valid for longer than accepted".into()));
        }
        if claims.iat > jsonwebtoken::get_current_timestamp() as i64 + self.inner.leeway {
            return Err(AuthError::Invalid("issued in the future".into()));
        }
        let user_id =
            uuid::Uuid::parse_str(&data.claims.sub).map_err(|_| AuthError::Invalid("sub is not a user id".into()))?;
        let scopes = Scope::parse_claim(&data.claims.scope);
        let email_verified = data.claims.email_verified.unwrap_or(false);
        let principal =
            Principal { user_id, roles: data.claims.roles, scopes, email_verified, token: token.to_owned() };
        let mut verified = self.inner.verified.write().expect("cache lock");
        // Bounded: past the cap start afresh rather than track recency on the hot path.
        if verified.len() >= VERIFIED_CACHE_CAP {
            verified.clear();
        }
        verified.insert(token.to_owned(), (principal.clone(), data.claims.exp));
        Ok(principal)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        {
            let keys = self.inner.keys.read().await;
            let stale = keys.fetched_at.is_none_or(|t| t.elapsed() >= self.inner.refresh_interval);
            if let Some(key) = keys.by_kid.get(kid).filter(|_| !stale) {
                return Ok(key.clone());
            }
        }
        self.refresh(Some(kid)).await?;
        self.inner.keys.read().await.by_kid.get(kid).cloned().ok_or(AuthError::UnknownKey)
    }

    /// The periodic refetch, so that a revoked key stops vouching for cached verifications.
    /// Due only once keys were fetched; a failed refetch keeps the cached keys.
    async fn refresh_if_due(&self) {
        if self.inner.millis() >= self.inner.refresh_due_ms.load(Ordering::Relaxed) {
            let _ = self.refresh(None).await;
        }
    }

    /// Refetches the JWKS unless another caller just did, or `kid` (the key a lookup
    /// missed) arrived meanwhile.
    async fn refresh(&self, kid: Option<&str>) -> Result<(), AuthError> {
        let _fetching = self.inner.fetching.lock().await;
        {
            let keys = self.inner.keys.read().await;
            let known = kid.is_some_and(|kid| keys.by_kid.contains_key(kid));
            let fresh = keys.fetched_at.is_some_and(|t| t.elapsed() < self.inner.refresh_interval);
            // Fetch at most once per minimum gap, whether the last attempt worked or not, so
            // neither forged kids nor an identity outage turn every request into a fetch.
            let recently_tried = keys.attempted_at.is_some_and(|t| t.elapsed() < self.inner.min_refetch_interval);
            if (fresh && known) || recently_tried {
                return Ok(());
            }
        }
        let result = (self.inner.source)().await;
        let mut keys = self.inner.keys.write().await;
        keys.attempted_at = Some(Instant::now());
        // Before the first good fetch there is nothing cached to refresh: lookups fetch.
        let next = match (&result, keys.fetched_at) {
            (Ok(_), _) => Some(self.inner.refresh_interval),
            (Err(_), Some(_)) => Some(self.inner.min_refetch_interval),
            (Err(_), None) => None,
        };
        if let Some(next) = next {
            self.inner.refresh_due_ms.store(self.inner.millis() + next.as_millis() as u64, Ordering::Relaxed);
        }
        match result {
            Ok(set) => {
                let by_kid = decoding_keys(&set);
                // A key that left the set must stop vouching for tokens at once.
                if keys.by_kid.keys().any(|kid| !by_kid.contains_key(kid)) {
                    self.inner.verified.write().expect("cache lock").clear();
                }
                keys.by_kid = by_kid;
                keys.fetched_at = keys.attempted_at;
                Ok(())
            }
            Err(e) if keys.by_kid.is_empty() => Err(AuthError::KeysUnavailable(format!("{e:#}"))),
            Err(e) => {
                // Keep serving with the keys we have; the next attempt waits the minimum gap.
                tracing::warn!(error = format!("{e:#}"), "JWKS refresh failed; keeping cached keys");
                Ok(())
            }
        }
    }
}

impl Inner {
    fn millis(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// The usable Ed25519 keys of `set`, by kid. Others are skipped.
fn decoding_keys(set: &JwkSet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else { return None };
            if params.curve != EllipticCurve::Ed25519 {
                return None;
            }
            // jsonwebtoken slices the first 32 bytes unchecked; refuse anything else here.
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&params.x).ok()?;
            (raw.len() == 32).then(|| (kid, DecodingKey::from_ed_der(&raw)))
        })
        .collect()
}

/// Tower layer running a [`Verifier`] on every gRPC request.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Verifier,
}

impl AuthLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth { inner, verifier: self.verifier.clone() }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    verifier: Verifier,
}

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Take the service that was polled ready; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let token = match bearer(request.headers()) {
                Ok(token) => token,
                Err(status) => return Ok(status.into_http()),
            };
            if let Some(token) = token {
                match verifier.verify(&token).await {
                    Ok(principal) => {
                        request.extensions_mut().insert(principal);
                    }
                    Err(e) => return Ok(tonic::Status::from(e).into_http()),
                }
            }
            inner.call(request).await
        })
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<Option<String>, tonic::Status> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| tonic::Status::unauthenticated("malformed authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(tonic::Status::unauthenticated("authorization must be `Bearer <token>`")),
    }
}

/// Adds `authorization: Bearer <token>` to an outgoing request.
pub fn with_bearer<T>(mut request: tonic::Request<T>, token: &str) -> tonic::Request<T> {
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
