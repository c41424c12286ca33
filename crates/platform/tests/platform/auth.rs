//! Token verification against a JWKS, and the gRPC auth layer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ticketing_platform::App;
use ticketing_platform::auth::AuthConfig;
use ticketing_platform::auth::{
    AuthError, Claims, JwksSource, Principal, Role, Verifier, access_token_header, with_bearer,
};
use ticketing_testkit as testkit;
use tonic::service::Routes;
use tonic_health::pb::HealthCheckRequest;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "ticketing-test";

/// An Ed25519 signing key and its `kid`.
struct Key {
    kid: String,
    signing: SigningKey,
}

impl Key {
    fn generate(kid: &str) -> Self {
        Self { kid: kid.into(), signing: SigningKey::from_bytes(&rand::random()) }
    }

    fn jwk(&self) -> serde_json::Value {
        jwk(&self.kid, &self.signing.verifying_key().to_bytes())
    }

    fn sign(&self, claims: &Claims) -> String {
        self.sign_with(&access_token_header(&self.kid), claims)
    }

    fn sign_with(&self, header: &Header, claims: &Claims) -> String {
        let der = self.signing.to_pkcs8_der().expect("PKCS#8 encoding");
        jsonwebtoken::encode(header, claims, &EncodingKey::from_ed_der(der.as_bytes())).expect("sign")
    }
}

fn jwk(kid: &str, x: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(x),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    })
}

fn jwk_set(keys: Vec<serde_json::Value>) -> JwkSet {
    serde_json::from_value(serde_json::json!({ "keys": keys })).expect("a valid JWKS")
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(user_id: uuid::Uuid) -> Claims {
    Claims::issue(
        user_id.to_string(),
        vec![Role::User, Role::Organizer],
        &auth_config(Duration::from_secs(60)),
        now(),
        Duration::from_secs(600),
    )
}

/// A JWKS source serving whatever `keys` holds, counting fetches.
struct Source {
    keys: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
    /// While set, fetches fail as if identity were down.
    down: Arc<AtomicBool>,
}

impl Source {
    fn new(set: JwkSet) -> (Self, JwksSource) {
        let source = Self {
            keys: Arc::new(Mutex::new(set)),
            fetches: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
        };
        let (keys, fetches, down) = (source.keys.clone(), source.fetches.clone(), source.down.clone());
        let fetch: JwksSource = Arc::new(move || {
            fetches.fetch_add(1, Ordering::SeqCst);
            let set = keys.lock().unwrap().clone();
            let down = down.load(Ordering::SeqCst);
            Box::pin(async move {
                anyhow::ensure!(!down, "identity is down");
                Ok(set)
            })
        });
        (source, fetch)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
    }
}

fn auth_config(min_refetch: Duration) -> AuthConfig {
    AuthConfig {
        jwks_refresh_interval: Duration::from_secs(300),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_min_refetch_interval: min_refetch,
        leeway: Duration::from_secs(5),
        ..AuthConfig::default()
    }
}

fn verifier(set: JwkSet) -> (Verifier, Source) {
    let (source, fetch) = Source::new(set);
    (Verifier::new(&auth_config(Duration::from_secs(60)), fetch), source)
}

#[tokio::test]
async fn a_valid_token_verifies_into_its_principal() {
    let key = Key::generate("k1");
    let (verifier, source) = verifier(jwk_set(vec![key.jwk()]));
    let user_id = uuid::Uuid::new_v4();
    let token = key.sign(&claims(user_id));

    let principal = verifier.verify(&token).await.expect("a valid token");
    assert_eq!(
        principal,
        Principal {
            user_id,
            roles: vec![Role::User, Role::Organizer],
            scopes: Vec::new(),
            email_verified: false,
            token: token.clone(),
        }
    );
    assert!(principal.has_role(Role::Organizer));
    assert!(!principal.has_role(Role::Admin));
    // The keys are cached.
    verifier.verify(&token).await.expect("still valid");
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let key = Key::generate("k1");
    let (verifier, _source) = verifier(jwk_set(vec![key.jwk()]));
    let mut expired = claims(uuid::Uuid::new_v4());
    expired.iat = now() - 3600;
    expired.exp = now() - 60; // beyond the 5 s leeway
    assert_eq!(verifier.verify(&key.sign(&expired)).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn wrong_audience_issuer_signature_or_subject_are_invalid() {
    let key = Key::generate("k1");
    let (verifier, _source) = verifier(jwk_set(vec![key.jwk()]));
    let good = claims(uuid::Uuid::new_v4());

    let wrong_audience = Claims { aud: "someone-else".into(), ..good.clone() };
    let wrong_issuer = Claims { iss: "https://evil.test".into(), ..good.clone() };
    let not_a_user = Claims { sub: "not-a-uuid".into(), ..good.clone() };
    for claims in [wrong_audience, wrong_issuer, not_a_user] {
        let result = verifier.verify(&key.sign(&claims)).await;
        assert!(matches!(result, Err(AuthError::Invalid(_))), "{claims:?}: {result:?}");
    }

    // Same kid, another key: the signature does not verify.
    let impostor = Key::generate("k1");
    let result = verifier.verify(&impostor.sign(&good)).await;
    assert!(matches!(result, Err(AuthError::Invalid(_))), "{result:?}");

    // A valid token with its payload swapped.
    let token = key.sign(&good);
    let admin = Claims { roles: vec![Role::Admin], ..good.clone() };
    let forged_payload = key.sign(&admin).split('.').nth(1).unwrap().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let result = verifier.verify(&tampered).await;
    assert!(matches!(result, Err(AuthError::Invalid(_))), "{result:?}");
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_interval() {
    let key = Key::generate("k1");
    let (source, fetch) = Source::new(jwk_set(vec![key.jwk()]));
    let min_refetch = Duration::from_millis(500);
    let verifier = Verifier::new(&auth_config(min_refetch), fetch);
    let good = claims(uuid::Uuid::new_v4());
    verifier.verify(&key.sign(&good)).await.expect("a valid token");
    assert_eq!(source.fetches(), 1);

    // Signed by a key the JWKS does not have: one refetch at most per interval.
    let stranger = Key::generate("k2");
    assert_eq!(verifier.verify(&stranger.sign(&good)).await, Err(AuthError::UnknownKey));
    assert_eq!(verifier.verify(&stranger.sign(&good)).await, Err(AuthError::UnknownKey));
    assert_eq!(source.fetches(), 1, "unknown kids within the interval do not refetch");

    // Identity rotates in the new key; once the interval is over, the next unknown kid refetches.
    source.keys.lock().unwrap().keys.push(serde_json::from_value(stranger.jwk()).unwrap());
    let principal = eventually_verifies(&verifier, &stranger.sign(&good), min_refetch * 10).await;
    assert_eq!(principal.user_id.to_string(), good.sub);
    assert_eq!(source.fetches(), 2, "exactly one refetch picked up the new key");
    // The old key still works, from the cache.
    verifier.verify(&key.sign(&good)).await.expect("the old key still verifies");
    assert_eq!(source.fetches(), 2);
}

async fn eventually_verifies(verifier: &Verifier, token: &str, timeout: Duration) -> Principal {
    crate::support::eventually("the rotated key to verify", timeout, || async {
        match verifier.verify(token).await {
            Ok(principal) => Some(principal),
            Err(AuthError::UnknownKey) => None,
            Err(e) => panic!("unexpected error: {e}"),
        }
    })
    .await
}

#[tokio::test]
async fn a_first_unknown_kid_fetches_once_and_then_is_rate_limited() {
    let key = Key::generate("k1");
    let (verifier, source) = verifier(jwk_set(vec![key.jwk()]));
    let stranger = Key::generate("unknown");
    let token = stranger.sign(&claims(uuid::Uuid::new_v4()));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
    assert_eq!(source.fetches(), 1, "nothing cached yet, so the first call fetches");
    for _ in 0..5 {
        assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
    }
    assert_eq!(source.fetches(), 1, "a flood of unknown kids does not refetch");
}

#[tokio::test]
async fn unsigned_and_foreign_algorithm_tokens_are_malformed() {
    let key = Key::generate("k1");
    let (verifier, source) = verifier(jwk_set(vec![key.jwk()]));
    let claims = claims(uuid::Uuid::new_v4());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let result = verifier.verify(&format!("{none_header}.{payload}.")).await;
    assert!(matches!(result, Err(AuthError::Malformed(_))), "alg none: {result:?}");

    let hs256 = jsonwebtoken::encode(
        &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
        &claims,
        &EncodingKey::from_secret(b"the public key, maybe"),
    )
    .unwrap();
    let result = verifier.verify(&hs256).await;
    assert!(matches!(result, Err(AuthError::Malformed(_))), "HS256: {result:?}");

    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_der(key.signing.to_pkcs8_der().unwrap().as_bytes()),
    )
    .unwrap();
    assert_eq!(verifier.verify(&no_kid).await, Err(AuthError::Malformed("no kid".into())));

    for garbage in ["", "abc", "a.b.c", "..."] {
        let result = verifier.verify(garbage).await;
        assert!(matches!(result, Err(AuthError::Malformed(_))), "{garbage:?}: {result:?}");
    }
    assert_eq!(source.fetches(), 0, "malformed tokens never reach the JWKS");
}

#[tokio::test]
async fn only_access_tokens_already_valid_and_short_lived_are_accepted() {
    let key = Key::generate("k1");
    let (verifier, _source) = verifier(jwk_set(vec![key.jwk()]));
    let good = claims(uuid::Uuid::new_v4());
    let media_type = Header { typ: Some("application/AT+JWT".into()), ..access_token_header("k1") };
    verifier.verify(&key.sign_with(&media_type, &good)).await.expect("the full media type is the same type");

    // Another kind of JWT signed by the same key: an ID token, or no type at all.
    for typ in [Some("JWT"), Some("id_token+jwt"), None] {
        let header = Header { typ: typ.map(Into::into), ..access_token_header("k1") };
        let result = verifier.verify(&key.sign_with(&header, &good)).await;
        assert!(matches!(result, Err(AuthError::Invalid(_))), "typ {typ:?}: {result:?}");
    }

    // Not valid yet, issued in the future, or valid for longer than the 1 h verifiers accept.
    let not_yet = Claims { nbf: now() + 120, ..good.clone() };
    let from_the_future = Claims { iat: now() + 120, nbf: now(), ..good.clone() };
    let long_lived = Claims { exp: now() + 3600 * 24 * 30, ..good.clone() };
    for claims in [not_yet, from_the_future, long_lived] {
        let result = verifier.verify(&key.sign(&claims)).await;
        assert!(matches!(result, Err(AuthError::Invalid(_))), "{claims:?}: {result:?}");
    }
}

#[tokio::test]
async fn a_jwk_with_a_short_key_is_skipped() {
    let key = Key::generate("good");
    let short = Key::generate("short");
    let set = jwk_set(vec![jwk("short", &[7u8; 10]), key.jwk()]);
    let (verifier, _source) = verifier(set);
    let claims = claims(uuid::Uuid::new_v4());
    assert_eq!(verifier.verify(&short.sign(&claims)).await, Err(AuthError::UnknownKey));
    verifier.verify(&key.sign(&claims)).await.expect("the good key in the same set still works");
}

#[tokio::test]
async fn keys_unavailable_when_the_jwks_cannot_be_fetched() {
    let key = Key::generate("k1");
    let (verifier, source) = verifier(jwk_set(vec![key.jwk()]));
    source.go_down();
    let result = verifier.verify(&key.sign(&claims(uuid::Uuid::new_v4()))).await;
    assert!(matches!(&result, Err(AuthError::KeysUnavailable(e)) if e.contains("identity is down")), "{result:?}");
    assert_eq!(tonic::Status::from(result.unwrap_err()).code(), tonic::Code::Unavailable);
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_jwks_is_down() {
    let key = Key::generate("k1");
    let (source, fetch) = Source::new(jwk_set(vec![key.jwk()]));
    let config =
        AuthConfig { jwks_refresh_interval: Duration::from_millis(300), ..auth_config(Duration::from_millis(150)) };
    let verifier = Verifier::new(&config, fetch);
    let token = key.sign(&claims(uuid::Uuid::new_v4()));
    verifier.verify(&token).await.expect("a valid token");
    assert_eq!(source.fetches(), 1);

    source.go_down();
    // Fresh tokens each time: an already verified token would be answered from the cache.
    let fresh = || key.sign(&claims(uuid::Uuid::new_v4()));
    // Once the keys are stale a call refetches, fails, and still verifies with the cached key.
    crate::support::eventually("a failed refresh", Duration::from_secs(5), || async {
        verifier.verify(&fresh()).await.expect("cached keys still verify");
        (source.fetches() == 2).then_some(())
    })
    .await;
    // The failure is not retried on every call...
    verifier.verify(&fresh()).await.expect("cached keys still verify");
    assert_eq!(source.fetches(), 2, "no retry right after a failure");
    // ...but again after the minimum gap.
    crate::support::eventually("a retried refresh", Duration::from_secs(5), || async {
        verifier.verify(&fresh()).await.expect("cached keys still verify");
        (source.fetches() == 3).then_some(())
    })
    .await;
}

/// A flood of forged kids must not hammer identity, least of all while it is down.
#[tokio::test]
async fn unknown_kids_stay_rate_limited_while_the_jwks_is_down() {
    let key = Key::generate("k1");
    let (source, fetch) = Source::new(jwk_set(vec![key.jwk()]));
    let verifier = Verifier::new(&auth_config(Duration::from_millis(200)), fetch);
    let good = claims(uuid::Uuid::new_v4());
    verifier.verify(&key.sign(&good)).await.expect("a valid token");
    source.go_down();

    let forged = Key::generate("forged").sign(&good);
    // After the minimum gap, one unknown kid may refetch (and the fetch fails).
    crate::support::eventually("a refetch for the unknown kid", Duration::from_secs(5), || async {
        assert_eq!(verifier.verify(&forged).await, Err(AuthError::UnknownKey));
        (source.fetches() == 2).then_some(())
    })
    .await;
    for _ in 0..3 {
        assert_eq!(verifier.verify(&forged).await, Err(AuthError::UnknownKey));
    }
    assert_eq!(source.fetches(), 2, "unknown kids refetched within the minimum gap");
}

#[tokio::test]
async fn the_grpc_layer_refuses_bad_tokens_and_lets_anonymous_calls_through() {
    testkit::init_logging();
    let key = Key::generate("k1");
    let (verifier, _source) = verifier(jwk_set(vec![key.jwk()]));
    let mut app = App::new("test", crate::app::server_config());
    app.authenticate_with(verifier);
    let spawned = testkit::Spawned::start(app.bind(Routes::default(), &[]).await.unwrap());
    let mut client = crate::app::health_client(spawned.grpc_addr).await;
    let request = || tonic::Request::new(HealthCheckRequest { service: String::new() });

    client.check(request()).await.expect("an anonymous call passes");
    let valid = key.sign(&claims(uuid::Uuid::new_v4()));
    client.check(with_bearer(request(), &valid)).await.expect("a valid token passes");

    let stranger = Key::generate("k2").sign(&claims(uuid::Uuid::new_v4()));
    let status = client.check(with_bearer(request(), &stranger)).await.expect_err("an unknown key is refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    let mut basic = request();
    basic.metadata_mut().insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let status = client.check(basic).await.expect_err("a non-bearer scheme is refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    tokio::time::timeout(Duration::from_secs(5), spawned.stop()).await.expect("stops").expect("clean stop");
}

#[tokio::test]
async fn verified_tokens_are_cached_until_their_key_leaves_the_jwks() {
    let (old, new) = (Key::generate("old"), Key::generate("new"));
    let (source, fetch) = Source::new(jwk_set(vec![old.jwk()]));
    let verifier = Verifier::new(&auth_config(Duration::ZERO), fetch);
    let token = old.sign(&claims(uuid::Uuid::new_v4()));
    verifier.verify(&token).await.expect("verifies");
    let fetched = source.fetches();
    for _ in 0..5 {
        verifier.verify(&token).await.expect("still valid");
    }
    assert_eq!(source.fetches(), fetched, "cached verifications fetch nothing");

    // The old key is withdrawn (compromised): the next refetch must void its tokens.
    *source.keys.lock().unwrap() = jwk_set(vec![new.jwk()]);
    verifier.verify(&new.sign(&claims(uuid::Uuid::new_v4()))).await.expect("the new key is fetched");
    assert_eq!(verifier.verify(&token).await.unwrap_err(), AuthError::UnknownKey);
}

#[tokio::test]
async fn a_withdrawn_key_voids_cached_tokens_at_the_next_periodic_refresh() {
    let key = Key::generate("compromised");
    let (source, fetch) = Source::new(jwk_set(vec![key.jwk()]));
    let config = AuthConfig { jwks_refresh_interval: Duration::from_millis(20), ..auth_config(Duration::ZERO) };
    let verifier = Verifier::new(&config, fetch);
    let token = key.sign(&claims(uuid::Uuid::new_v4()));
    verifier.verify(&token).await.expect("verifies");

    // The key is revoked, and no token signed by another key comes along to make the
    // verifier look: the cached verification must still end once the keys are due again.
    *source.keys.lock().unwrap() = jwk_set(vec![]);
    testkit::eventually_every(
        "a token of the withdrawn key to be refused",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || async { verifier.verify(&token).await.is_err().then_some(()) },
    )
    .await;
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
}

#[test]
fn scopes_read_and_write_their_claim_names_and_refuse_unknown_ones() {
    use ticketing_platform::auth::Scope;
    let scopes: Vec<Scope> = serde_json::from_str(r#"["payment:refund", "inventory:holds"]"#).expect("known scopes");
    assert_eq!(scopes, [Scope::PaymentRefund, Scope::InventoryHolds]);
    assert_eq!(serde_json::to_string(&scopes).unwrap(), r#"["payment:refund","inventory:holds"]"#);
    let unknown = serde_json::from_str::<Scope>(r#""payment:everything""#).unwrap_err().to_string();
    assert!(
        unknown.contains(r#"unknown scope "payment:everything""#) && unknown.contains("tickets:revoke"),
        "{unknown}"
    );
}
