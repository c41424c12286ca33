//! Calling other services: lazily connected channels with a deadline per call, and
//! the `service` tokens a service presents when it acts on its own behalf (a
//! consumer confirming a sale, say), obtained from identity with client credentials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ticketing_proto::identity::v1 as identity;
use tokio::sync::Mutex;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::auth::AuthConfig;
use crate::telemetry::Traced;

/// Metadata in which the edge (the gateway) tells identity the client address it derived
/// from its trusted proxies. Identity believes it only on a call carrying a trusted edge's
/// `service` token; anyone else could name any address.
pub const CLIENT_ADDRESS: &str = "x-ticketing-client-address";

/// Metadata in which the edge tells identity the client's `User-Agent` on a login, which
/// the user sees in their list of sessions; believed, like [`CLIENT_ADDRESS`], only from a
/// trusted edge.
pub const CLIENT_USER_AGENT: &str = "x-ticketing-client-user-agent";

/// A channel to `url` that connects on first use and reconnects by itself, so a
/// peer that is down at start only fails the calls made while it is down.
/// Channels that balance over a peer's pods in a cluster are made by
/// [`crate::discovery::Discovery::channel`].
pub fn channel(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(endpoint(url, timeout)?.connect_lazy())
}

/// The settings of every peer connection: `url`, a 2 s connect timeout, `timeout` per call.
pub fn endpoint(url: &str, timeout: Duration) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("peer address {url}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .tcp_nodelay(true))
}

/// This workload's `service` tokens, fetched from identity and reused until half
/// their lifetime has passed.
#[derive(Clone)]
pub struct ServiceTokens {
    client: identity::identity_client::IdentityClient<Traced<Channel>>,
    credentials: identity::IssueServiceTokenRequest,
    cached: Arc<Mutex<Option<(String, Instant)>>>,
}

impl ServiceTokens {
    /// Tokens for `auth.client_id`; `None` when the workload has no credentials.
    pub fn from_config(auth: &AuthConfig) -> anyhow::Result<Option<Self>> {
        if auth.client_id.is_empty() {
            return Ok(None);
        }
        let channel = Traced::new(channel(&auth.identity_url, Duration::from_secs(5))?);
        let client = identity::identity_client::IdentityClient::new(channel);
        let credentials = identity::IssueServiceTokenRequest {
            client_id: auth.client_id.clone(),
            client_secret: auth.client_secret.clone(),
        };
        Ok(Some(Self { client, credentials, cached: Arc::new(Mutex::new(None)) }))
    }

    /// A current token.
    pub async fn token(&self) -> Result<String, Status> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let issued = self.client.clone().issue_service_token(self.credentials.clone()).await?.into_inner();
        let seconds = issued.expires_at.map_or(0, |t| t.seconds) - chrono::Utc::now().timestamp();
        let refresh_at = Instant::now() + Duration::from_secs(u64::try_from(seconds / 2).unwrap_or(0));
        *cached = Some((issued.access_token.clone(), refresh_at));
        Ok(issued.access_token)
    }

    /// `message` as a request carrying a current token.
    pub async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, Status> {
        Ok(crate::auth::with_bearer(tonic::Request::new(message), &self.token().await?))
    }
}
