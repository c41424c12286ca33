//! Ed25519 signing keys in Postgres, and the in-memory ring that signs tokens.
//!
//! Lifecycle: `next` (published, not signing) → `active` (signing) → `retired`
//! (published until its last token expires) → deleted. Publishing the next key
//! ahead of time lets verifiers learn it before any token carries its `kid`, so
//! a rotation logs nobody out.
//!
//! Private keys are stored sealed with the service's KEK (ADR 0032), bound to their `kid`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse,
};
use sqlx::{PgConnection, PgPool};
use ticketing_platform::auth::access_token_header;
use ticketing_platform::sealing::{SealedKeys, Sealer};
use tokio::sync::RwLock;

/// Signs with the active key; reloads from Postgres when another replica rotates.
#[derive(Clone)]
pub struct KeyRing {
    pool: PgPool,
    sealed: SealedKeys,
    active: Arc<RwLock<ActiveKey>>,
    /// How long retired keys stay published: the token lifetime plus clock skew.
    retention: Duration,
}

struct ActiveKey {
    kid: String,
    key: EncodingKey,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    public_key: Vec<u8>,
}

impl KeyRing {
    /// Seals stored keys still in plaintext or under an earlier KEK, makes sure an active
    /// and a next key exist, then loads the active one.
    pub async fn open(pool: PgPool, sealer: Sealer, access_token_ttl: Duration) -> anyhow::Result<Self> {
        let sealed = SealedKeys::new("identity", "signing_keys", sealer);
        let mut tx = pool.begin().await?;
        lock(&mut tx).await?;
        sealed.seal_stored(&mut tx).await?;
        for state in ["active", "next"] {
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE state = $1)")
                .bind(state)
                .fetch_one(&mut *tx)
                .await?;
            if !exists {
                insert_new(&mut tx, &sealed, state).await?;
            }
        }
        tx.commit().await?;
        let active = load_active(&pool, &sealed).await?;
        let retention = access_token_ttl + Duration::from_secs(300);
        Ok(Self { pool, sealed, active: Arc::new(RwLock::new(active)), retention })
    }

    /// Signs `claims` with the active key.
    pub async fn sign<C: serde::Serialize>(&self, claims: &C) -> anyhow::Result<String> {
        let active = self.active.read().await;
        jsonwebtoken::encode(&access_token_header(&active.kid), claims, &active.key).context("signing a token")
    }

    /// Reloads the active key (another replica may have rotated).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let fresh = load_active(&self.pool, &self.sealed).await?;
        let mut active = self.active.write().await;
        if active.kid != fresh.kid {
            tracing::info!(kid = %fresh.kid, "signing key changed");
            *active = fresh;
        }
        Ok(())
    }

    /// Retires the active key, promotes the next one, creates a new next one and drops
    /// retired keys whose tokens have all expired. Returns the new active kid.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        sqlx::query("UPDATE signing_keys SET state = 'retired', retired_at = now() WHERE state = 'active'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE signing_keys SET state = 'active' WHERE state = 'next'").execute(&mut *tx).await?;
        insert_new(&mut tx, &self.sealed, "next").await?;
        sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < now() - $1::interval")
            .bind(format!("{} seconds", self.retention.as_secs()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.reload().await?;
        Ok(self.active.read().await.kid.clone())
    }

    /// Deletes key `kid` at once, private key and all, so it leaves the JWKS now rather than
    /// when its tokens expire. If it was the active key the next one takes over; if it was
    /// the active or the next key, a new next key is made. `None` if there was no such key.
    /// Other replicas sign with a revoked active key until their next reload; verifiers
    /// refuse those tokens, whose holders refresh or log in again.
    pub async fn revoke(&self, kid: &str) -> anyhow::Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let state: Option<String> = sqlx::query_scalar("DELETE FROM signing_keys WHERE kid = $1 RETURNING state")
            .bind(kid)
            .fetch_optional(&mut *tx)
            .await
            .context("deleting a signing key")?;
        let Some(state) = state else { return Ok(None) };
        if state == "active" {
            sqlx::query("UPDATE signing_keys SET state = 'active' WHERE state = 'next'").execute(&mut *tx).await?;
        }
        if state != "retired" {
            insert_new(&mut tx, &self.sealed, "next").await?;
        }
        tx.commit().await?;
        self.reload().await?;
        Ok(Some(self.active.read().await.kid.clone()))
    }

    /// Every published public key: next, active, and retired ones still in use.
    pub async fn jwks(&self) -> anyhow::Result<JwkSet> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, public_key FROM signing_keys
             WHERE state <> 'retired' OR retired_at > now() - $1::interval ORDER BY created_at DESC",
        )
        .bind(format!("{} seconds", self.retention.as_secs()))
        .fetch_all(&self.pool)
        .await
        .context("loading public keys")?;
        Ok(JwkSet { keys: rows.iter().map(|r| jwk(&r.kid, &r.public_key)).collect() })
    }
}

async fn lock(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.signing_keys'))").execute(conn).await?;
    Ok(())
}

async fn insert_new(conn: &mut PgConnection, sealed: &SealedKeys, state: &str) -> anyhow::Result<()> {
    let key = SigningKey::from_bytes(&rand::random());
    let der = key.to_pkcs8_der().map_err(|e| anyhow::anyhow!("encoding a new key: {e}"))?;
    let kid = uuid::Uuid::now_v7().simple().to_string();
    sqlx::query("INSERT INTO signing_keys (kid, sealed_private_key, public_key, state) VALUES ($1, $2, $3, $4)")
        .bind(&kid)
        .bind(sealed.seal(&kid, der.as_bytes()))
        .bind(key.verifying_key().as_bytes().as_slice())
        .bind(state)
        .execute(conn)
        .await
        .context("storing a new signing key")?;
    tracing::info!(%kid, state, "created signing key");
    Ok(())
}

async fn load_active(pool: &PgPool, sealed: &SealedKeys) -> anyhow::Result<ActiveKey> {
    let (kid, private_key): (String, Vec<u8>) =
        sqlx::query_as("SELECT kid, sealed_private_key FROM signing_keys WHERE state = 'active'")
            .fetch_one(pool)
            .await
            .context("loading the active signing key")?;
    let der = sealed.open(&kid, &private_key)?;
    Ok(ActiveKey { key: EncodingKey::from_ed_der(&der), kid })
}

fn jwk(kid: &str, public_key: &[u8]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    }
}
