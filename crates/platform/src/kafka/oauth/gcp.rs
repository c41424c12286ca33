//! `gcp`: Google Cloud Managed Service for Apache Kafka accepts the workload's OAuth 2.0
//! access token (from the GKE metadata server, i.e. Workload Identity) wrapped the way
//! Google's own client handlers wrap it: an unsigned JWT-shaped string whose header names
//! `GOOG_OAUTH2_TOKEN`, whose payload carries the expiry and the service account's email, and
//! whose third part is the access token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rdkafka::client::OAuthToken;
use serde::Deserialize;

use super::{EXPIRY_MARGIN, TokenError, http_client};

/// The GCE/GKE metadata server: `GCE_METADATA_HOST` (what Google's client libraries honour),
/// else `metadata.google.internal`.
pub(super) struct GcpMetadata {
    base: String,
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
    expires_in: u64,
}

impl GcpMetadata {
    pub(super) fn from_env() -> Self {
        let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
        Self { base: format!("http://{host}/computeMetadata/v1/instance/service-accounts/default") }
    }

    pub(super) async fn fetch(&self) -> Result<OAuthToken, TokenError> {
        let http = TokenError::http(&self.base);
        let client = http_client(&self.base)?;
        let get = |path: &str| client.get(format!("{}/{path}", self.base)).header("Metadata-Flavor", "Google").send();
        let token: AccessToken =
            get("token").await.and_then(|r| r.error_for_status()).map_err(http)?.json().await.map_err(http)?;
        let email = get("email").await.and_then(|r| r.error_for_status()).map_err(http)?.text().await.map_err(http)?;
        let lifetime = Duration::from_secs(token.expires_in);
        if lifetime <= EXPIRY_MARGIN {
            return Err(TokenError::Expiring(lifetime));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok(wrap(&token.access_token, email.trim(), now, now + lifetime))
    }
}

/// Google's wrapping of an access token for Managed Kafka (see the module's comment).
fn wrap(access_token: &str, email: &str, now: Duration, expiry: Duration) -> OAuthToken {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"GOOG_OAUTH2_TOKEN"}"#);
    let claims = serde_json::json!({
        "exp": expiry.as_secs(),
        "iat": now.as_secs(),
        "iss": "Google",
        "sub": email,
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(access_token));
    OAuthToken { token, principal_name: email.to_owned(), lifetime_ms: expiry.as_millis() as i64 }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;

    use std::sync::Arc;

    use super::super::Source;
    use super::*;

    const PATH: &str = "/computeMetadata/v1/instance/service-accounts/default";

    /// A metadata server that, like Google's, refuses requests without `Metadata-Flavor`.
    async fn metadata_server(expires_in: u64) -> String {
        let flavoured = |headers: &HeaderMap| headers.get("metadata-flavor").is_some_and(|v| v == "Google");
        let app = Router::new()
            .route(
                &format!("{PATH}/token"),
                get(move |headers: HeaderMap| async move {
                    if !flavoured(&headers) {
                        return Err(StatusCode::FORBIDDEN);
                    }
                    Ok(axum::Json(serde_json::json!({
                        "access_token": "ya29.secret", "expires_in": expires_in, "token_type": "Bearer"
                    })))
                }),
            )
            .route(
                &format!("{PATH}/email"),
                get(move |headers: HeaderMap| async move {
                    if flavoured(&headers) {
                        Ok("inventory@project.iam.gserviceaccount.com")
                    } else {
                        Err(StatusCode::FORBIDDEN)
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}{PATH}")
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    // Called from a Tokio worker, as librdkafka's refresh is when a StreamConsumer polls (the
    // fetch blocks that worker: the fake server needs another one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gcp_token_wraps_the_workloads_access_token_for_managed_kafka() {
        let source = Arc::new(Source::Gcp(GcpMetadata { base: metadata_server(3599).await }));
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;

        let token = source.token().expect("a token");

        let parts: Vec<_> = token.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(decode(parts[0]), serde_json::json!({"typ": "JWT", "alg": "GOOG_OAUTH2_TOKEN"}));
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "Google");
        assert_eq!(claims["sub"], "inventory@project.iam.gserviceaccount.com");
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), b"ya29.secret");
        assert_eq!(token.principal_name, "inventory@project.iam.gserviceaccount.com");
        let lifetime = token.lifetime_ms - before;
        assert!((3_590_000..=3_600_000).contains(&lifetime), "expires {lifetime} ms after the fetch");
        assert_eq!(claims["exp"].as_i64().unwrap(), token.lifetime_ms / 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_about_to_expire_or_a_refused_fetch_is_an_error_not_a_bad_token() {
        let expiring = Arc::new(Source::Gcp(GcpMetadata { base: metadata_server(30).await }));
        assert!(matches!(expiring.token(), Err(TokenError::Expiring(_))));

        let nowhere = Arc::new(Source::Gcp(GcpMetadata { base: format!("{}/missing", metadata_server(3599).await) }));
        let err = nowhere.token().err().expect("no token from a missing path");
        assert!(matches!(err, TokenError::Http { .. }), "{err}");
    }
}
