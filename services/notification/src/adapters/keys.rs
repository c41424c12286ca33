//! The Ed25519 keys that sign ticket codes, kept in Postgres.
//!
//! The first replica to start creates the active key (under an advisory lock, so
//! replicas starting together agree on one). A rotation retires it and creates a new
//! active one; tickets are signed with whichever key is active in the issuing
//! transaction, so every replica follows a rotation at once. Keys never change once
//! written, so they are cached by `kid` forever and an unknown `kid` is looked up once.
//! Every key stays published: a ticket may be scanned months after it was signed.
//! Private keys are stored sealed with the service's KEK (ADR 0032), bound to their `kid`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sqlx::{PgConnection, PgPool};
use ticketing_platform::sealing::{SealedKeys, Sealer};

/// Signs ticket codes with the active key, finds the keys that verify them and derives
/// tickets' rotating-code secrets.
#[derive(Clone)]
pub struct TicketKeys {
    pool: PgPool,
    sealed: SealedKeys,
    /// Every key seen so far, by `kid`: a key never changes once written.
    keys: Arc<RwLock<HashMap<String, SigningKey>>>,
}

impl TicketKeys {
    /// Seals stored keys still in plaintext or under an earlier KEK and makes sure an
    /// active key exists.
    pub async fn open(pool: PgPool, sealer: Sealer) -> anyhow::Result<Self> {
        let sealed = SealedKeys::new("notification", "ticket_signing_keys", sealer);
        let mut tx = pool.begin().await.context("opening a transaction for the ticket keys")?;
        lock(&mut tx).await?;
        sealed.seal_stored(&mut tx).await?;
        let active: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT kid, sealed_private_key FROM ticket_signing_keys WHERE state = 'active'")
                .fetch_optional(&mut *tx)
                .await
                .context("loading the active ticket key")?;
        let (kid, key) = match active {
            Some((kid, seed)) => {
                let key = signing_key(&sealed.open(&kid, &seed)?)?;
                (kid, key)
            }
            None => insert_active(&mut tx, &sealed).await?,
        };
        tx.commit().await?;
        Ok(Self { pool, sealed, keys: Arc::new(RwLock::new(HashMap::from([(kid, key)]))) })
    }

    /// The active key, read in `conn`'s transaction: another replica may have rotated it.
    pub async fn active(&self, conn: &mut PgConnection) -> anyhow::Result<(String, SigningKey)> {
        let kid: String = sqlx::query_scalar("SELECT kid FROM ticket_signing_keys WHERE state = 'active'")
            .fetch_one(&mut *conn)
            .await
            .context("finding the active ticket key")?;
        let key = self.key(&kid).await?.context("the active ticket key vanished")?;
        Ok((kid, key))
    }

    /// The key named `kid`, if it is one of ours.
    async fn key(&self, kid: &str) -> anyhow::Result<Option<SigningKey>> {
        if let Some(key) = self.keys.read().expect("key cache lock").get(kid) {
            return Ok(Some(key.clone()));
        }
        let row: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sealed_private_key FROM ticket_signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&self.pool)
                .await
                .context("looking up a ticket key")?;
        let Some(sealed) = row else { return Ok(None) };
        let key = signing_key(&self.sealed.open(kid, &sealed)?)?;
        self.keys.write().expect("key cache lock").insert(kid.to_owned(), key.clone());
        Ok(Some(key))
    }

    /// The public key named `kid`, if it is one of ours.
    pub async fn verifying_key(&self, kid: &str) -> anyhow::Result<Option<VerifyingKey>> {
        Ok(self.key(kid).await?.map(|k| k.verifying_key()))
    }

    /// The rotating-code secret of ticket `ticket_id` signed by key `kid`; `None` if the
    /// key is not ours.
    pub async fn rotation_secret(&self, kid: &str, ticket_id: &str) -> anyhow::Result<Option<[u8; 32]>> {
        Ok(self.key(kid).await?.map(|k| crate::domain::rotating::secret(&k.to_bytes(), ticket_id)))
    }

    /// Retires the active key and makes a new one active. Tickets signed from then on
    /// carry the new `kid`; the retired key stays published and verifying. Returns the
    /// new active kid and the retired one.
    pub async fn rotate(&self) -> anyhow::Result<(String, String)> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let retired: String =
            sqlx::query_scalar("UPDATE ticket_signing_keys SET state = 'retired' WHERE state = 'active' RETURNING kid")
                .fetch_one(&mut *tx)
                .await
                .context("retiring the active ticket key")?;
        let (active, key) = insert_active(&mut tx, &self.sealed).await?;
        tx.commit().await?;
        self.keys.write().expect("key cache lock").insert(active.clone(), key);
        tracing::info!(%active, %retired, "rotated the ticket signing key");
        Ok((active, retired))
    }

    /// Every public key as a JWKS document (RFC 7517 / RFC 8037: `OKP`, `Ed25519`).
    pub async fn jwks(&self) -> anyhow::Result<serde_json::Value> {
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT kid, public_key FROM ticket_signing_keys ORDER BY created_at DESC")
                .fetch_all(&self.pool)
                .await
                .context("loading the ticket keys")?;
        let keys: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|(kid, public)| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": kid, "x": URL_SAFE_NO_PAD.encode(public),
                })
            })
            .collect();
        Ok(serde_json::json!({ "keys": keys }))
    }
}

async fn lock(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('notification.ticket_signing_keys'))").execute(conn).await?;
    Ok(())
}

/// Creates a new active key (the caller holds the lock and retired the old one).
async fn insert_active(conn: &mut PgConnection, sealed: &SealedKeys) -> anyhow::Result<(String, SigningKey)> {
    let key = SigningKey::from_bytes(&rand::random());
    let kid = uuid::Uuid::now_v7().simple().to_string();
    sqlx::query(
        "INSERT INTO ticket_signing_keys (kid, sealed_private_key, public_key, state) VALUES ($1, $2, $3, 'active')",
    )
    .bind(&kid)
    .bind(sealed.seal(&kid, key.as_bytes()))
    .bind(key.verifying_key().to_bytes().as_slice())
    .execute(conn)
    .await
    .context("storing a new ticket key")?;
    tracing::info!(%kid, "created a ticket signing key");
    Ok((kid, key))
}

fn signing_key(seed: &[u8]) -> anyhow::Result<SigningKey> {
    let seed: [u8; 32] = seed.try_into().context("a stored ticket key is not 32 bytes")?;
    Ok(SigningKey::from_bytes(&seed))
}
