//! Refresh rotation and reuse detection, logout, and verification through the JWKS.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use ticketing_platform::auth::{AuthError, Claims, Role, Scope, Verifier, access_token_header};
use ticketing_proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, authed, spawn_app};

fn verifier(app: &TestApp) -> Verifier {
    let mut auth = app.config.auth.clone();
    auth.jwks_url = format!("{}/.well-known/jwks.json", app.service.admin_url());
    Verifier::from_config(&auth)
}

/// Claims like identity's, for hand-made tokens.
fn claims(app: &TestApp, sub: &str, exp_offset: i64) -> Claims {
    let issued = chrono::Utc::now().timestamp() - 10;
    Claims {
        exp: issued + 10 + exp_offset,
        ..Claims::issue(sub.into(), vec![Role::Admin], &app.config.auth, issued, std::time::Duration::ZERO)
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let (user, first) = app.user_session().await;
    let second = app.refresh(&first.refresh_token).await.expect("first rotation");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(app.me(&second.access_token).await.unwrap().id, user.id);
    let third = app.refresh(&second.refresh_token).await.expect("second rotation");

    // Replaying a rotated token is theft or a bug: the whole login is revoked.
    let reuse = app.refresh(&first.refresh_token).await.unwrap_err();
    assert_eq!(reuse.code(), Code::Unauthenticated);
    assert!(reuse.message().contains("reuse"), "{reuse:?}");
    let revoked = app.refresh(&third.refresh_token).await.unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);

    // Another login of the same user is a separate family and still works.
    let (_, other) = app.user_session().await;
    app.refresh(&other.refresh_token).await.expect("unrelated family");
}

#[tokio::test]
async fn garbage_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    for token in ["", "nonsense", "0123456789abcdef0123456789abcdef.tooshort"] {
        let status = app.refresh(token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
    }
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let app = spawn_app().await;
    let (_, tokens) = app.user_session().await;
    let rotated = app.refresh(&tokens.refresh_token).await.unwrap();
    app.client
        .clone()
        .logout(pb::LogoutRequest { refresh_token: rotated.refresh_token.clone() })
        .await
        .expect("logout");
    assert_eq!(app.refresh(&rotated.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    // Logging out twice is fine.
    app.client.clone().logout(pb::LogoutRequest { refresh_token: rotated.refresh_token }).await.expect("idempotent");
    assert!(app.redis.keys().iter().all(|k| !k.contains(":rt:")), "family keys are gone: {:?}", app.redis.keys());
}

#[tokio::test]
async fn issued_tokens_verify_through_the_published_jwks() {
    let app = spawn_app().await;
    let (user, tokens) = app.user_session().await;

    let jwks: serde_json::Value = reqwest_json(&format!("{}/.well-known/jwks.json", app.service.admin_url())).await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(keys.len() >= 2, "the next key is published ahead of use: {jwks}");
    assert!(keys.iter().all(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519" && k["alg"] == "EdDSA"));

    let header = jsonwebtoken::decode_header(&tokens.access_token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "an access token says so (RFC 9068)");
    let principal = verifier(&app).verify(&tokens.access_token).await.expect("verifies");
    assert_eq!(principal.user_id.to_string(), user.id);
    assert_eq!(principal.roles, vec![Role::User]);

    let payload = tokens.access_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    for claim in ["sub", "roles", "iss", "aud", "exp", "iat", "nbf", "jti"] {
        assert!(claims.get(claim).is_some(), "missing {claim}: {claims}");
    }
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 15 * 60);
}

#[tokio::test]
async fn key_rotation_logs_nobody_out() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let before = app.login(crate::helpers::ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD).await.unwrap();
    let verifier = verifier(&app);
    verifier.verify(&before.access_token).await.expect("verifies before rotation");

    let rotated = app
        .client
        .clone()
        .rotate_signing_keys(authed(pb::RotateSigningKeysRequest {}, &admin.access_token))
        .await
        .expect("admin rotates")
        .into_inner();
    let after = app.login(crate::helpers::ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD).await.unwrap();
    let kid = jsonwebtoken::decode_header(&after.access_token).unwrap().kid.unwrap();
    assert_eq!(kid, rotated.active_kid);
    assert_ne!(Some(kid), jsonwebtoken::decode_header(&before.access_token).unwrap().kid);
    // The same verifier, with its cached JWKS, accepts both old and new tokens.
    verifier.verify(&before.access_token).await.expect("old token still valid");
    verifier.verify(&after.access_token).await.expect("new token valid");
    app.me(&before.access_token).await.expect("the service accepts the old token");

    let (_, user) = app.user_session().await;
    let denied = app
        .client
        .clone()
        .rotate_signing_keys(authed(pb::RotateSigningKeysRequest {}, &user.access_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_revoked_key_stops_vouching_for_its_tokens_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let (_, user) = app.user_session().await;
    let mut auth = app.config.auth.clone();
    auth.jwks_url = format!("{}/.well-known/jwks.json", app.service.admin_url());
    (auth.jwks_refresh_interval, auth.jwks_min_refetch_interval) = (Duration::ZERO, Duration::ZERO);
    let verifier = Verifier::from_config(&auth);
    verifier.verify(&user.access_token).await.expect("verifies before");
    let kid = jsonwebtoken::decode_header(&user.access_token).unwrap().kid.unwrap();
    let revoke = |kid: &str, token: &str| {
        let mut client = app.client.clone();
        let request = authed(pb::RevokeSigningKeyRequest { kid: kid.to_owned() }, token);
        async move { client.revoke_signing_key(request).await }
    };

    assert_eq!(revoke(&kid, &user.access_token).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(revoke("no-such-kid", &admin.access_token).await.unwrap_err().code(), Code::NotFound);

    let revoked = revoke(&kid, &admin.access_token).await.expect("admin revokes").into_inner();
    assert_ne!(revoked.active_kid, kid, "the next key took over");
    let jwks: serde_json::Value = reqwest_json(&format!("{}/.well-known/jwks.json", app.service.admin_url())).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(!kids.contains(&kid.as_str()), "the revoked key is unpublished: {kids:?}");
    assert_eq!(kids.len(), 2, "an active and a new next key: {kids:?}");
    assert_eq!(verifier.verify(&user.access_token).await.unwrap_err(), AuthError::UnknownKey);

    // Logging in again signs with the key that took over.
    let fresh = app.login(crate::helpers::ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD).await.unwrap();
    assert_eq!(jsonwebtoken::decode_header(&fresh.access_token).unwrap().kid.unwrap(), revoked.active_kid);
    verifier.verify(&fresh.access_token).await.expect("the new key verifies");
}

#[tokio::test]
async fn expired_unknown_key_and_unsigned_tokens_are_rejected() {
    let app = spawn_app().await;
    let (user, _) = app.user_session().await;
    let verifier = verifier(&app);

    // Expired, but otherwise perfect: signed with the real active key.
    let (kid, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT kid, sealed_private_key FROM signing_keys WHERE state = 'active'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let sealer = ticketing_platform::sealing::Sealer::new(&app.config.sealing).unwrap();
    let der =
        ticketing_platform::sealing::SealedKeys::new("identity", "signing_keys", sealer).open(&kid, &sealed).unwrap();
    let header = access_token_header(&kid);
    let expired =
        jsonwebtoken::encode(&header, &claims(&app, &user.id, -3600), &EncodingKey::from_ed_der(&der)).unwrap();
    assert_eq!(verifier.verify(&expired).await.unwrap_err(), AuthError::Expired);
    assert_eq!(app.me(&expired).await.unwrap_err().code(), Code::Unauthenticated);

    // Signed by a key identity never published.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let stranger_der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&stranger).unwrap();
    let header = access_token_header("not-a-published-kid");
    let forged =
        jsonwebtoken::encode(&header, &claims(&app, &user.id, 600), &EncodingKey::from_ed_der(stranger_der.as_bytes()))
            .unwrap();
    assert_eq!(verifier.verify(&forged).await.unwrap_err(), AuthError::UnknownKey);
    assert_eq!(app.me(&forged).await.unwrap_err().code(), Code::Unauthenticated);

    // A published kid, but the stranger's signature.
    let real_kid = jsonwebtoken::decode_header(&expired).unwrap().kid;
    let header = access_token_header(&real_kid.unwrap());
    let resigned =
        jsonwebtoken::encode(&header, &claims(&app, &user.id, 600), &EncodingKey::from_ed_der(stranger_der.as_bytes()))
            .unwrap();
    assert!(matches!(verifier.verify(&resigned).await.unwrap_err(), AuthError::Invalid(_)));

    // `alg: none`: no signature at all.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&app, &user.id, 600)).unwrap());
    let unsigned = format!("{none_header}.{body}.");
    assert!(matches!(verifier.verify(&unsigned).await.unwrap_err(), AuthError::Malformed(_)));
    assert_eq!(app.me(&unsigned).await.unwrap_err().code(), Code::Unauthenticated);
}

async fn reqwest_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().error_for_status().unwrap().json().await.unwrap()
}

#[tokio::test]
async fn workloads_exchange_client_credentials_for_service_tokens() {
    const SECRET: &str = "booking-secret-of-at-least-32-characters";
    let app = crate::helpers::spawn_with(|c| {
        c.identity.service_clients.insert("booking".into(), SECRET.into());
    })
    .await;
    let mut auth = app.config.auth.clone();
    auth.identity_url = format!("http://{}", app.service.grpc_addr);
    auth.client_id = "booking".into();
    auth.client_secret = SECRET.into();
    let tokens = ticketing_platform::peers::ServiceTokens::from_config(&auth).unwrap().expect("configured");

    let token = tokens.token().await.expect("issued");
    let principal = verifier(&app).verify(&token).await.expect("verifies");
    assert_eq!(principal.roles, [Role::Service]);
    assert_eq!(
        principal.scopes,
        [Scope::InventoryHolds, Scope::PaymentRead, Scope::PaymentRefund, Scope::TicketsRevoke],
        "booking's scopes by default"
    );
    assert_eq!(principal.user_id, ticketing_identity::service::service_subject("booking"), "a stable subject");
    assert_eq!(tokens.token().await.unwrap(), token, "reused while fresh");

    for (client_id, client_secret) in
        [("booking", "wrong-secret-wrong-secret-wrong-secret"), ("payment", SECRET), ("", "")]
    {
        let request = pb::IssueServiceTokenRequest { client_id: client_id.into(), client_secret: client_secret.into() };
        let refused = app.client.clone().issue_service_token(request).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{client_id}: {refused:?}");
    }
}
