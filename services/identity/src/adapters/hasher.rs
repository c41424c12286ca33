//! Argon2id password hashing, off the async threads, in memory allocated once.
//!
//! Each Argon2id hash works in 19 MiB. Allocated per call on tokio's blocking threads, that
//! memory stayed in glibc's per-thread arenas after the threads were gone: identity sat at
//! about 500 MiB after 30 logins, near the chart's limit (issue 14). The hasher owns one
//! working area per core instead, allocated at start-up and reused by every hash.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The most working areas (19 MiB each), so hashes at once, per process.
const MAX_AREAS: usize = 8;

/// Hashes and verifies passwords with Argon2id (the crate's OWASP-aligned defaults).
#[derive(Clone)]
pub struct Hasher {
    /// A hash of a random password, verified against when the user does not exist,
    /// so unknown emails cost the same time as wrong passwords.
    dummy: Arc<str>,
    /// One permit per working area: one hash per core keeps the cores busy, and a login
    /// storm at an on-sale queues here instead of growing memory.
    permits: Arc<tokio::sync::Semaphore>,
    /// The working areas not in use; a permit guarantees one is here.
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Hasher {
    /// Prepares the hasher: a working area per core, and the dummy hash.
    pub async fn new() -> anyhow::Result<Self> {
        // The cores the container may use (std reads the cgroup quota), at most MAX_AREAS: a
        // pod without a CPU limit on a large node must not commit gigabytes up front.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).min(MAX_AREAS);
        let blocks = Params::default().block_count();
        let areas = (0..cores).map(|_| vec![Block::default(); blocks]).collect();
        let mut hasher = Self {
            dummy: Arc::from(""),
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            areas: Arc::new(Mutex::new(areas)),
        };
        let secret: [u8; 16] = rand::random();
        hasher.dummy = hasher.hash(&hex(&secret)).await?.into();
        Ok(hasher)
    }

    /// The PHC-format hash of `password`.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.to_owned();
        self.in_area(move |area| hash(&password, area)).await
    }

    /// Whether `password` matches `stored`; with `None`, burns the same time and says no.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let stored = stored.map_or_else(|| self.dummy.to_string(), str::to_owned);
        let password = password.to_owned();
        let matches = self.in_area(move |area| verify(&password, &stored, area)).await?;
        Ok(known && matches)
    }

    /// Runs `work` on a blocking thread with a working area, waiting for one if all are busy.
    async fn in_area<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let areas = self.areas.clone();
        tokio::task::spawn_blocking(move || {
            let mut area = areas
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .context("no Argon2 working area free although a permit was held")?;
            let result = work(&mut area);
            areas.lock().unwrap_or_else(PoisonError::into_inner).push(area);
            result
        })
        .await
        .context("password hashing task")?
    }
}

fn hash(password: &str, area: &mut [Block]) -> anyhow::Result<String> {
    let argon2 = Argon2::default();
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut raw_salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password.as_bytes(), raw_salt, &mut out, area)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| anyhow::anyhow!("parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Verifies against `stored` with its own algorithm, version and parameters; a hash made
/// with more memory than the area holds (parameters raised later) gets a larger one.
fn verify(password: &str, stored: &str, area: &mut Vec<Block>) -> anyhow::Result<bool> {
    let malformed = |e: &dyn std::fmt::Display| anyhow::anyhow!("stored hash is malformed: {e}");
    let parsed = PasswordHash::new(stored).map_err(|e| malformed(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(malformed(&"no salt or no hash"));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| malformed(&e))?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| malformed(&e))?.unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| malformed(&e))?;
    if area.len() < params.block_count() {
        area.resize(params.block_count(), Block::default());
    }
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut raw_salt).map_err(|e| malformed(&e))?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), raw_salt, &mut out, area.as_mut_slice())
        .map_err(|e| malformed(&e))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(&out).map_err(|e| malformed(&e))? == expected)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let hasher = Hasher::new().await.unwrap();
        let stored = hasher.hash("correct-horse-battery").await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct-horse-battery", Some(&stored)).await.unwrap());
        assert!(!hasher.verify("wrong-horse-battery", Some(&stored)).await.unwrap());
        assert!(!hasher.verify("correct-horse-battery", None).await.unwrap());
    }

    /// Hashes stored before the working areas (the crate's own `hash_password`) still
    /// verify, and the crate verifies ours: the PHC strings are the same format.
    #[tokio::test]
    async fn agrees_with_the_crates_own_hashing() {
        let hasher = Hasher::new().await.unwrap();
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let theirs = Argon2::default().hash_password(b"old-password-1", &salt).unwrap().to_string();
        assert!(hasher.verify("old-password-1", Some(&theirs)).await.unwrap());
        assert!(!hasher.verify("old-password-2", Some(&theirs)).await.unwrap());
        let ours = hasher.hash("new-password-1").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"new-password-1", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"new-password-2", &parsed).is_err());
    }

    /// A hash made with other parameters (more memory than the area, other version) verifies.
    #[tokio::test]
    async fn verifies_hashes_made_with_other_parameters() {
        let hasher = Hasher::new().await.unwrap();
        let salt = SaltString::encode_b64(b"another salt!!").unwrap();
        let params = Params::new(Params::DEFAULT_M_COST * 2, 1, 2, Some(24)).unwrap();
        let stored = Argon2::new(Algorithm::Argon2id, Version::V0x10, params)
            .hash_password(b"bigger-memory", &salt)
            .unwrap()
            .to_string();
        assert!(hasher.verify("bigger-memory", Some(&stored)).await.unwrap());
        assert!(!hasher.verify("smaller-memory", Some(&stored)).await.unwrap());
        let malformed = hasher.verify("x", Some("$argon2id$v=19$nonsense")).await;
        assert!(malformed.is_err(), "{malformed:?}");
    }
}
