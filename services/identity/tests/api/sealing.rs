//! Signing keys are stored sealed with the KEK (ADR 0032).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ticketing_identity::config::Config;
use ticketing_platform::config::ConfigError;
use ticketing_platform::sealing::{DEVELOPMENT_KEK, SealedKeys, Sealer, SealingConfig};
use ticketing_testkit::TestDb;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, spawn_app, start, test_config};

/// The migration that seals the keys.
const SEALING: i64 = 20261203100000;

fn keys(sealing: &SealingConfig) -> SealedKeys {
    SealedKeys::new("identity", "signing_keys", Sealer::new(sealing).unwrap())
}

fn kek(id: &str) -> String {
    format!("{id}:{}", STANDARD.encode(rand::random::<[u8; 32]>()))
}

/// How identity fails to start with `config` on `app`'s database: a configuration error.
async fn refused_start(app: &TestApp, configure: impl FnOnce(&mut Config)) -> String {
    let mut config = app.config.clone();
    configure(&mut config);
    let Err(e) = ticketing_identity::startup::build(config).await else { panic!("identity started") };
    assert!(e.chain().any(|c| c.is::<ConfigError>()), "not a configuration error: {e:#}");
    format!("{e:#}")
}

/// Asserts that `token` names `kid` and was signed by `key`.
fn assert_signed_by(token: &str, kid: &str, key: &SigningKey) {
    assert_eq!(jsonwebtoken::decode_header(token).unwrap().kid.as_deref(), Some(kid));
    let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation).expect("signed by the key");
}

#[tokio::test]
async fn stored_keys_are_sealed_and_a_sealed_key_opens_only_on_its_own_row() {
    let app = spawn_app().await;
    let rows: Vec<(String, Option<Vec<u8>>, Vec<u8>)> =
        sqlx::query_as("SELECT kid, private_key, sealed_private_key FROM signing_keys ORDER BY state")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "an active and a next key");
    let keys = keys(&app.config.sealing);
    for (kid, plaintext, sealed) in &rows {
        assert_eq!(plaintext, &None);
        let der = keys.open(kid, sealed).unwrap();
        let seed = &der[der.len() - 32..];
        assert!(!sealed.windows(32).any(|w| w == seed), "the seed of {kid} is stored in the clear");
    }

    // The active key's sealed value copied onto the next key's row does not open there.
    sqlx::query(
        "UPDATE signing_keys SET sealed_private_key = (SELECT sealed_private_key FROM signing_keys
         WHERE state = 'active') WHERE state = 'next'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let error = refused_start(&app, |_| {}).await;
    assert!(error.contains("does not open"), "{error}");
}

#[tokio::test]
async fn a_wrong_or_missing_kek_fails_start_up_as_configuration() {
    let app = spawn_app().await;
    // The same id with other material is refused, not mistaken for a corrupt row.
    let error = refused_start(&app, |c| c.sealing.kek = format!("dev:{}", &kek("x")[2..])).await;
    assert!(error.contains("sealing.kek"), "{error}");
    let error = refused_start(&app, |c| c.sealing.kek = kek("other")).await;
    assert!(error.contains("`dev`, which is not configured"), "{error}");
}

#[tokio::test]
async fn plaintext_keys_are_sealed_at_start_by_concurrent_replicas_and_keep_signing() {
    let (mut config, _, redis, kafka) = test_config().await;
    let db = TestDb::before(&ticketing_identity::migrator(), SEALING).await;
    config.database = db.config.clone();
    // Keys as identity stored them before sealing.
    let (active, next) = (SigningKey::from_bytes(&rand::random()), SigningKey::from_bytes(&rand::random()));
    for (kid, key, state) in [("old-active", &active, "active"), ("old-next", &next, "next")] {
        sqlx::query("INSERT INTO signing_keys (kid, private_key, public_key, state) VALUES ($1, $2, $3, $4)")
            .bind(kid)
            .bind(key.to_pkcs8_der().unwrap().as_bytes())
            .bind(key.verifying_key().as_bytes().as_slice())
            .bind(state)
            .execute(&db.pool)
            .await
            .unwrap();
    }

    // Two replicas start at once; both migrate and seal, and neither trips over the other.
    let (a, b) = tokio::join!(
        ticketing_identity::startup::build(config.clone()),
        ticketing_identity::startup::build(config.clone())
    );
    let (a, b) = (a.expect("a replica starts"), b.expect("another replica starts"));
    drop((a, b));
    let rows: Vec<(String, Option<Vec<u8>>, Vec<u8>)> =
        sqlx::query_as("SELECT kid, private_key, sealed_private_key FROM signing_keys ORDER BY kid")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let keys = keys(&config.sealing);
    for ((kid, plaintext, sealed), key) in rows.iter().zip([&active, &next]) {
        assert_eq!(plaintext, &None, "{kid} is no longer in the clear");
        assert_eq!(keys.open(kid, sealed).unwrap(), key.to_pkcs8_der().unwrap().as_bytes());
    }

    // The key that was active before still signs.
    let app = start(config, db, redis, kafka).await;
    let tokens = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    assert_signed_by(&tokens.access_token, "old-active", &active);
}

#[tokio::test]
async fn a_kek_rotation_reseals_old_rows_and_then_needs_only_the_new_kek() {
    let app = spawn_app().await;
    let before = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    let kid = jsonwebtoken::decode_header(&before.access_token).unwrap().kid.unwrap();

    let rotated = SealingConfig { kek: kek("k2"), previous_keks: DEVELOPMENT_KEK.into() };
    let mut config = app.config.clone();
    config.sealing = rotated.clone();
    let running = ticketing_identity::startup::build(config).await.expect("starts with the old KEK as previous");
    drop(running);

    let sealed: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT kid, sealed_private_key FROM signing_keys").fetch_all(&app.db.pool).await.unwrap();
    let only_new = SealingConfig { previous_keks: String::new(), ..rotated };
    let new_keys = keys(&only_new);
    let opened: HashMap<String, Vec<u8>> =
        sealed.iter().map(|(k, s)| (k.clone(), new_keys.open(k, s).expect("resealed under k2"))).collect();

    // Tokens signed before the rotation are signed by the key the new KEK opens.
    let key = SigningKey::from_pkcs8_der(&opened[&kid]).unwrap();
    assert_signed_by(&before.access_token, &kid, &key);
    let error = refused_start(&app, |_| {}).await;
    assert!(error.contains("`k2`, which is not configured"), "{error}");
}
