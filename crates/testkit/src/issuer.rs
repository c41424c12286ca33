//! A stand-in for identity: an Ed25519 key, its JWKS served on a loopback port,
//! and tokens for any user and roles. Services under test verify these exactly
//! as they verify identity's.

use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType,
};
use std::time::Duration;

use jsonwebtoken::EncodingKey;
use ticketing_platform::auth::AuthConfig;
use ticketing_platform::auth::{Claims, Role, Scope, access_token_header};

/// Issues access tokens and serves their JWKS.
pub struct TestIssuer {
    /// Auth settings pointing at this issuer's JWKS.
    pub auth: AuthConfig,
    key: EncodingKey,
    kid: String,
    server: tokio::task::JoinHandle<()>,
}

impl TestIssuer {
    /// Generates a key and serves its JWKS on a free loopback port.
    pub async fn start() -> Self {
        use base64::Engine as _;
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let der = signing.to_pkcs8_der().expect("encode the test key");
        let kid = format!("test-{}", crate::unique());
        let jwks = JwkSet {
            keys: vec![Jwk {
                common: CommonParameters {
                    key_id: Some(kid.clone()),
                    key_algorithm: Some(KeyAlgorithm::EdDSA),
                    ..CommonParameters::default()
                },
                algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()),
                }),
            }],
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the JWKS server");
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("local addr"));
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let auth = AuthConfig { jwks_url: url, ..AuthConfig::default() };
        Self { auth, key: EncodingKey::from_ed_der(der.as_bytes()), kid, server }
    }

    /// A 15-minute access token for `user` with `roles`, whose email is verified.
    pub fn token(&self, user: uuid::Uuid, roles: &[Role]) -> String {
        self.sign(user, roles, &[], Some(true))
    }

    /// [`Self::token`] of a user who has not verified their email yet.
    pub fn unverified_token(&self, user: uuid::Uuid, roles: &[Role]) -> String {
        self.sign(user, roles, &[], Some(false))
    }

    /// A 15-minute token of a workload (role `service`) granted `scopes`, as identity issues
    /// to a configured service client.
    pub fn service_token(&self, workload: uuid::Uuid, scopes: &[Scope]) -> String {
        self.sign(workload, &[Role::Service], scopes, None)
    }

    /// `request` carrying a [`Self::service_token`].
    pub fn as_service<T>(&self, message: T, workload: uuid::Uuid, scopes: &[Scope]) -> tonic::Request<T> {
        ticketing_platform::auth::with_bearer(tonic::Request::new(message), &self.service_token(workload, scopes))
    }

    fn sign(&self, sub: uuid::Uuid, roles: &[Role], scopes: &[Scope], email_verified: Option<bool>) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        let claims = Claims {
            scope: Scope::claim(scopes),
            email_verified,
            ..Claims::issue(sub.to_string(), roles.to_vec(), &self.auth, now, Duration::from_secs(900))
        };
        jsonwebtoken::encode(&access_token_header(&self.kid), &claims, &self.key).expect("sign a test token")
    }

    /// `request` carrying a token for `user` with `roles`.
    pub fn authed<T>(&self, message: T, user: uuid::Uuid, roles: &[Role]) -> tonic::Request<T> {
        ticketing_platform::auth::with_bearer(tonic::Request::new(message), &self.token(user, roles))
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
