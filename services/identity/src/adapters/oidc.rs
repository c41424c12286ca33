//! OpenID providers (ADR 0045): discovery, the authorization URL with PKCE, state and nonce,
//! the code exchange and the ID token's verification, over `openidconnect`; and the started
//! sign-ins, kept single-use in Redis until the browser comes back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use ticketing_platform::redis::Connection;
use tokio::sync::RwLock;

use crate::config::{OidcProvider, OidcSettings};
use crate::domain::IdentityError;

/// How long a provider's discovery document and keys are used before they are fetched
/// again; an ID token signed with a key they lack fetches them at once.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The longest identity waits for a provider's answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

type Result<T> = std::result::Result<T, IdentityError>;

/// A sign-in identity started and the provider has yet to send back. Serialised in Redis
/// under its state, which the browser carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pending {
    /// The provider it was started with.
    pub provider: String,
    /// The PKCE verifier of the challenge in the authorization URL.
    pkce_verifier: String,
    /// The nonce the ID token must carry.
    nonce: String,
}

/// A started sign-in: where to send the browser, and what to keep under `state`.
pub struct Started {
    /// The provider's authorization URL.
    pub url: String,
    /// The `state` parameter in it.
    pub state: String,
    /// What the callback needs.
    pub pending: Pending,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct ProviderAccount {
    /// The provider's stable id for them (`sub`).
    pub subject: String,
    /// Their email, if shared.
    pub email: Option<String>,
    /// Whether the provider vouches for the email (`email_verified: true`).
    pub email_verified: bool,
    /// Their name, if shared.
    pub name: Option<String>,
}

/// The subject, the email, its verification and the name among the standard claims of an
/// ID token or a userinfo answer (two types with the same accessors).
macro_rules! account_of {
    ($claims:expr) => {{
        let claims = $claims;
        ProviderAccount {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified() == Some(true),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
        }
    }};
}

struct Provider {
    settings: OidcProvider,
    /// The discovery document with its keys, and when it was fetched.
    metadata: RwLock<Option<(Instant, CoreProviderMetadata)>>,
}

/// The configured providers.
#[derive(Clone)]
pub struct Providers {
    http: reqwest::Client,
    providers: Arc<BTreeMap<String, Provider>>,
}

impl Providers {
    /// The providers of `settings`; nothing is fetched until a sign-in starts.
    pub fn new(settings: &OidcSettings) -> anyhow::Result<Self> {
        // No redirects: a provider's endpoints answer themselves (and following them would
        // let a discovery document point identity anywhere).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .context("building the OpenID providers' HTTP client")?;
        let providers = settings
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), Provider { settings: p.clone(), metadata: RwLock::new(None) }))
            .collect();
        Ok(Self { http, providers: Arc::new(providers) })
    }

    /// Whether `name` is configured: [`IdentityError::UnknownProvider`] if not.
    pub fn knows(&self, name: &str) -> Result<()> {
        self.provider(name).map(|_| ())
    }

    fn provider(&self, name: &str) -> Result<&Provider> {
        self.providers.get(name).ok_or(IdentityError::UnknownProvider)
    }

    /// The authorization URL of a new sign-in with `name`: PKCE (S256), a random state and a
    /// random nonce.
    pub async fn start(&self, name: &str) -> Result<Started> {
        let provider = self.provider(name)?;
        let client = self.client(provider, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for scope in provider.settings.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            pending: Pending {
                provider: name.to_owned(),
                pkce_verifier: verifier.secret().clone(),
                nonce: nonce.secret().clone(),
            },
        })
    }

    /// Exchanges `code` for the provider's tokens and verifies the ID token (signature
    /// against the provider's keys, issuer, audience, expiry, nonce); the email comes from
    /// the ID token or else from the userinfo endpoint.
    pub async fn finish(&self, pending: Pending, code: &str) -> Result<ProviderAccount> {
        let provider = self.provider(&pending.provider)?;
        let client = self.client(provider, false).await?;
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| IdentityError::OidcProviderFailed(anyhow::anyhow!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier));
        let tokens = request.request_async(&self.http).await.map_err(|e| match e {
            // The provider's OAuth error (invalid_grant for a wrong, used or expired code).
            RequestTokenError::ServerResponse(r) => IdentityError::OidcRejected(r.error().to_string()),
            other => IdentityError::OidcProviderFailed(anyhow::Error::new(other).context("exchanging the code")),
        })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| IdentityError::OidcProviderFailed(anyhow::anyhow!("the token response has no ID token")))?;
        let nonce = Nonce::new(pending.nonce);
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => claims.clone(),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                // Perhaps signed with a key published since we fetched them: fetch once more.
                let client = self.client(provider, true).await?;
                id_token.claims(&client.id_token_verifier(), &nonce).map_err(rejected)?.clone()
            }
            Err(e) => return Err(rejected(e)),
        };
        let mut account = account_of!(&claims);
        if account.email.is_none() {
            // Providers that follow the spec to the letter put the scopes' claims only in
            // the userinfo answer for the code flow.
            let info: CoreUserInfoClaims = client
                .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
                .map_err(|e| IdentityError::OidcProviderFailed(anyhow::anyhow!("no userinfo endpoint: {e}")))?
                .request_async(&self.http)
                .await
                .map_err(|e| IdentityError::OidcProviderFailed(anyhow::Error::new(e).context("reading userinfo")))?;
            account = ProviderAccount { subject: account.subject, ..account_of!(info.standard_claims()) };
        }
        Ok(account)
    }

    /// A client for `provider` from its discovery document, fetched when missing, older
    /// than [`DISCOVERY_TTL`], or `fresh` is asked for.
    async fn client(&self, provider: &Provider, fresh: bool) -> Result<Client> {
        let cached = provider.metadata.read().await.clone();
        let metadata = match cached {
            Some((fetched, metadata)) if !fresh && fetched.elapsed() < DISCOVERY_TTL => metadata,
            _ => {
                let issuer = IssuerUrl::new(provider.settings.issuer.clone())
                    .map_err(|e| IdentityError::OidcProviderFailed(anyhow::anyhow!("issuer URL: {e}")))?;
                // Checks the document's issuer is the configured one.
                let metadata = CoreProviderMetadata::discover_async(issuer, &self.http).await.map_err(|e| {
                    IdentityError::OidcProviderFailed(anyhow::Error::new(e).context("discovering the provider"))
                })?;
                *provider.metadata.write().await = Some((Instant::now(), metadata.clone()));
                metadata
            }
        };
        let redirect = RedirectUrl::new(provider.settings.redirect_uri.clone())
            .map_err(|e| IdentityError::OidcProviderFailed(anyhow::anyhow!("redirect URI: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.settings.client_id.clone()),
            Some(ClientSecret::new(provider.settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }
}

fn rejected(e: openidconnect::ClaimsVerificationError) -> IdentityError {
    IdentityError::OidcRejected(format!("the ID token did not verify ({e})"))
}

/// Started sign-ins, under `login:oidc:<state>` in identity's Redis namespace (its ACL user
/// already owns `login:`), each living `ttl` and taken at most once.
#[derive(Clone)]
pub struct PendingLogins {
    redis: Connection,
    prefix: String,
    ttl: Duration,
}

impl PendingLogins {
    /// A store under `prefix` whose entries live `ttl`.
    pub fn new(redis: Connection, prefix: &str, ttl: Duration) -> Self {
        Self { redis, prefix: prefix.to_owned(), ttl }
    }

    fn key(&self, state: &str) -> String {
        format!("{}login:oidc:{state}", self.prefix)
    }

    /// Keeps `pending` under `state`.
    pub async fn put(&self, state: &str, pending: &Pending) -> anyhow::Result<()> {
        let value = serde_json::to_string(pending)?;
        let mut conn = self.redis.clone();
        let _: () = redis::cmd("SET")
            .arg(self.key(state))
            .arg(value)
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .context("storing a started sign-in")?;
        Ok(())
    }

    /// The sign-in started under `state`, removed so it works once; none when unknown, used
    /// or expired.
    pub async fn take(&self, state: &str) -> anyhow::Result<Option<Pending>> {
        let mut conn = self.redis.clone();
        let value: Option<String> = redis::cmd("GETDEL")
            .arg(self.key(state))
            .query_async(&mut conn)
            .await
            .context("taking a started sign-in")?;
        value.map(|v| serde_json::from_str(&v).context("a stored sign-in")).transpose()
    }
}
