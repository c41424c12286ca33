//! Argon2id password hashing, off the async threads.

use std::sync::Arc;

use anyhow::Context as _;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};

/// Hashes and verifies passwords with Argon2id (the crate's OWASP-aligned defaults).
#[derive(Clone)]
pub struct Hasher {
    /// A hash of a random password, verified against when the user does not exist,
    /// so unknown emails cost the same time as wrong passwords.
    dummy: String,
    /// Each hash takes 19 MiB for its duration: one per core keeps the cores busy, and a
    /// login storm at an on-sale queues here instead of growing memory without bound.
    permits: Arc<tokio::sync::Semaphore>,
}

impl Hasher {
    /// Prepares the hasher (computes the dummy hash once).
    pub async fn new() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let permits = Arc::new(tokio::sync::Semaphore::new(cores));
        let secret: [u8; 16] = rand::random();
        let dummy = hash(hex(&secret)).await?;
        Ok(Self { dummy, permits })
    }

    /// The PHC-format hash of `password`.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        hash(password.to_owned()).await
    }

    /// Whether `password` matches `stored`; with `None`, burns the same time and says no.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy).to_owned();
        let password = password.to_owned();
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let matches = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash is malformed: {e}"))?;
            Ok::<_, anyhow::Error>(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .context("password verification task")??;
        Ok(known && matches)
    }
}

async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await
    .context("password hashing task")?
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let hasher = Hasher::new().await.unwrap();
        let stored = hasher.hash("correct-horse-battery").await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(hasher.verify("correct-horse-battery", Some(&stored)).await.unwrap());
        assert!(!hasher.verify("wrong-horse-battery", Some(&stored)).await.unwrap());
        assert!(!hasher.verify("correct-horse-battery", None).await.unwrap());
    }
}
