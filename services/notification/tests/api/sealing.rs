//! Ticket signing keys are stored sealed with the KEK (ADR 0032).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ticketing_notification::domain::rotating;
use ticketing_platform::config::ConfigError;
use ticketing_platform::sealing::{DEVELOPMENT_KEK, Sealer, SealingConfig};
use ticketing_proto::notification::v1 as pb;
use ticketing_testkit::TestDb;

use crate::helpers::*;

/// The migration that seals the keys.
const SEALING: i64 = 20261203100000;

fn kek(id: &str) -> String {
    format!("{id}:{}", STANDARD.encode(rand::random::<[u8; 32]>()))
}

/// Starting another replica on `app`'s database with `sealing` fails as a configuration error.
async fn refused_start(app: &TestApp, sealing: SealingConfig) -> String {
    let config = ticketing_notification::config::Config { sealing, ..app.config.clone() };
    let Err(e) = ticketing_notification::startup::build(config).await else { panic!("notification started") };
    assert!(e.chain().any(|c| c.is::<ConfigError>()), "not a configuration error: {e:#}");
    format!("{e:#}")
}

#[tokio::test]
async fn a_plaintext_ticket_key_is_sealed_at_start_and_keeps_signing_with_the_same_secrets() {
    let db = TestDb::before(&ticketing_notification::migrator(), SEALING).await;
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    sqlx::query(
        "INSERT INTO ticket_signing_keys (kid, private_key, public_key, state) VALUES ('old', $1, $2, 'active')",
    )
    .bind(seed.as_slice())
    .bind(key.verifying_key().as_bytes().as_slice())
    .execute(&db.pool)
    .await
    .unwrap();
    let app = spawn_on(db, |_| {}).await;

    let (plaintext, sealed): (Option<Vec<u8>>, Vec<u8>) =
        sqlx::query_as("SELECT private_key, sealed_private_key FROM ticket_signing_keys WHERE kid = 'old'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(plaintext, None);
    assert!(!sealed.windows(32).any(|w| w == seed), "the seed is stored in the clear");
    assert_eq!(ticket_keys(&app.config.sealing).open("old", &sealed).unwrap(), seed);

    // Tickets are signed with the old key, and their rotating-code secrets are unchanged.
    let show = app.publish_show("Sealed").await;
    let (_, _, tickets) = issued(&app, &show, 1).await;
    let ticket = &tickets[0];
    assert!(ticket.code.starts_with("old."), "{}", ticket.code);
    let secret = rotating::from_base32(&ticket.rotation.as_ref().unwrap().secret).unwrap();
    assert_eq!(secret, rotating::secret(&seed, &ticket.id));
    let response =
        app.verify(show.organizer, &[ticketing_platform::auth::Role::Organizer], &ticket.code, show.id).await;
    assert_eq!(result(&response), pb::VerificationResult::Valid);

    let error = refused_start(&app, SealingConfig { kek: kek("other"), previous_keks: String::new() }).await;
    assert!(error.contains("`dev`, which is not configured"), "{error}");
}

#[tokio::test]
async fn a_kek_rotation_reseals_the_ticket_keys_under_the_new_kek() {
    let app = spawn_app().await;
    let rotated = SealingConfig { kek: kek("k2"), previous_keks: DEVELOPMENT_KEK.into() };
    let config = ticketing_notification::config::Config { sealing: rotated.clone(), ..app.config.clone() };
    drop(ticketing_notification::startup::build(config).await.expect("starts with the old KEK as previous"));

    let only_new = SealingConfig { previous_keks: String::new(), ..rotated };
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT kid, sealed_private_key FROM ticket_signing_keys")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    for (kid, sealed) in &rows {
        assert!(Sealer::new(&only_new).unwrap().is_current(sealed));
        let seed = ticket_keys(&only_new).open(kid, sealed).expect("resealed under k2");
        // The running replica, which cached the key before, agrees on its public half.
        let public = SigningKey::from_bytes(&seed.try_into().unwrap()).verifying_key();
        let jwks = app.client.clone().get_ticket_signing_keys(pb::GetTicketSigningKeysRequest {}).await.unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.as_bytes());
        assert!(jwks.into_inner().jwks_json.contains(&x));
    }
    let error = refused_start(&app, SealingConfig::default()).await;
    assert!(error.contains("`k2`, which is not configured"), "{error}");
}
