//! The Ed25519 keys that sign ticket codes, kept in Postgres.
//!
//! The first replica to start creates the active key (under an advisory lock, so
//! replicas starting together agree on one). Keys never change once written, so
//! verifiers cache public keys by `kid` forever and look up an unknown `kid` once.
//! Every key stays published: a ticket may be scanned months after it was signed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sqlx::PgPool;
use ticketing_proto::notification::v1::TicketCodePayload;

/// Signs ticket codes with the active key and finds the keys that verify them.
#[derive(Clone)]
pub struct TicketKeys {
    pool: PgPool,
    kid: Arc<str>,
    key: Arc<SigningKey>,
    public: Arc<RwLock<HashMap<String, VerifyingKey>>>,
}

impl TicketKeys {
    /// Makes sure an active key exists, then loads it.
    pub async fn open(pool: PgPool) -> anyhow::Result<Self> {
        let mut tx = pool.begin().await.context("opening a transaction for the ticket keys")?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('notification.ticket_signing_keys'))")
            .execute(&mut *tx)
            .await?;
        let active: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT kid, private_key FROM ticket_signing_keys WHERE state = 'active'")
                .fetch_optional(&mut *tx)
                .await
                .context("loading the active ticket key")?;
        let (kid, key) = match active {
            Some((kid, seed)) => {
                let seed: [u8; 32] = seed.as_slice().try_into().context("a stored ticket key is not 32 bytes")?;
                (kid, SigningKey::from_bytes(&seed))
            }
            None => {
                let key = SigningKey::from_bytes(&rand::random());
                let kid = uuid::Uuid::now_v7().simple().to_string();
                sqlx::query(
                    "INSERT INTO ticket_signing_keys (kid, private_key, public_key, state) VALUES ($1, $2, $3, 'active')",
                )
                .bind(&kid)
                .bind(key.to_bytes().as_slice())
                .bind(key.verifying_key().to_bytes().as_slice())
                .execute(&mut *tx)
                .await
                .context("storing a new ticket key")?;
                tracing::info!(%kid, "created the ticket signing key");
                (kid, key)
            }
        };
        tx.commit().await?;
        let public = HashMap::from([(kid.clone(), key.verifying_key())]);
        Ok(Self { pool, kid: kid.into(), key: Arc::new(key), public: Arc::new(RwLock::new(public)) })
    }

    /// The code of `payload`, signed with the active key.
    pub fn sign(&self, payload: &TicketCodePayload) -> String {
        crate::domain::code::sign(&self.kid, &self.key, payload)
    }

    /// The public key named `kid`, if it is one of ours.
    pub async fn verifying_key(&self, kid: &str) -> anyhow::Result<Option<VerifyingKey>> {
        if let Some(key) = self.public.read().expect("key cache lock").get(kid) {
            return Ok(Some(*key));
        }
        let row: Option<Vec<u8>> = sqlx::query_scalar("SELECT public_key FROM ticket_signing_keys WHERE kid = $1")
            .bind(kid)
            .fetch_optional(&self.pool)
            .await
            .context("looking up a ticket key")?;
        let Some(bytes) = row else { return Ok(None) };
        let key = verifying_key(&bytes)?;
        self.public.write().expect("key cache lock").insert(kid.to_owned(), key);
        Ok(Some(key))
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

fn verifying_key(bytes: &[u8]) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = bytes.try_into().context("a stored public key is not 32 bytes")?;
    VerifyingKey::from_bytes(&bytes).context("a stored public key is not a curve point")
}
