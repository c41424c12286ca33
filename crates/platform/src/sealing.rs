//! Envelope encryption of secrets kept in Postgres (the services' private signing keys).
//!
//! Each value gets a fresh data key; AES-256-GCM seals the value with it, and the
//! key-encryption key (KEK, from the service's Secret) seals the data key. Both
//! seals take the value's *context* (service, table, key id) as associated data, so a
//! sealed value copied onto another row does not open. A database dump alone no longer
//! signs tokens or tickets: that needs the KEK too, which never touches the database.
//!
//! Several KEKs may be configured: the current one seals, earlier ones still open what
//! they sealed, and [`SealedKeys::seal_stored`] re-seals such rows at start-up, so an
//! earlier KEK can be dropped once every service has restarted under the new one.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::config::{ConfigError, ConfigIssue, Environment, Validate};

/// The KEK local runs and tests use; refused in production.
pub const DEVELOPMENT_KEK: &str = "dev:dGlja2V0aW5nLWRldmVsb3BtZW50LWtlay0wMDAwMDA=";

/// Format version of a sealed value (its first byte).
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// The KEKs, as `<id>:<base64 of 32 random bytes>` (`openssl rand -base64 32`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SealingConfig {
    /// The KEK that seals new values and re-seals older ones.
    pub kek: String,
    /// Earlier KEKs, comma-separated: they only open what they sealed, until the start-up
    /// pass has re-sealed it under `kek`. Empty unless a KEK rotation is under way.
    pub previous_keks: String,
}

impl Default for SealingConfig {
    fn default() -> Self {
        Self { kek: DEVELOPMENT_KEK.into(), previous_keks: String::new() }
    }
}

impl fmt::Debug for SealingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |keys: &str| keys.split(',').filter_map(|k| k.split_once(':')).map(|(id, _)| id.to_owned()).collect();
        let previous: Vec<String> = ids(&self.previous_keks);
        f.debug_struct("SealingConfig")
            .field("kek", &ids(&self.kek).first().cloned().unwrap_or_default())
            .field("previous_keks", &previous)
            .finish()
    }
}

impl SealingConfig {
    /// Like [`Validate::validate`], and in production refuses the development KEK.
    pub fn validate_in(&self, environment: Environment, issues: &mut Vec<ConfigIssue>) {
        self.validate(issues);
        if environment == Environment::Production {
            let dev = parse_kek(DEVELOPMENT_KEK).expect("the development KEK parses").1;
            if parse_kek(&self.kek).is_ok_and(|(_, key)| key == dev) {
                issues.push(ConfigIssue::new("sealing.kek", "the development KEK is refused in production"));
            }
        }
    }
}

impl Validate for SealingConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if let Err(message) = parse_kek(&self.kek) {
            issues.push(ConfigIssue::new("sealing.kek", message));
        }
        if let Err(message) = parse_previous(&self.previous_keks) {
            issues.push(ConfigIssue::new("sealing.previous_keks", message));
        }
    }
}

fn parse_kek(text: &str) -> Result<(String, [u8; KEY_LEN]), String> {
    let (id, key) = text.trim().split_once(':').ok_or("must be `<id>:<base64 of 32 bytes>`")?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("the id must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_'".into());
    }
    let key = STANDARD.decode(key).map_err(|_| format!("KEK `{id}` is not base64"))?;
    let key = key.try_into().map_err(|_| format!("KEK `{id}` is not 32 bytes"))?;
    Ok((id.to_owned(), key))
}

fn parse_previous(text: &str) -> Result<Vec<(String, [u8; KEY_LEN])>, String> {
    text.split(',').filter(|k| !k.trim().is_empty()).map(parse_kek).collect()
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not something [`Sealer::seal`] wrote.
    #[error("not a sealed value")]
    Malformed,
    /// Sealed under a KEK that is not configured.
    #[error("sealed under KEK `{0}`, which is not configured")]
    UnknownKek(String),
    /// The KEK with that id is another key, or the value belongs to another context or was altered.
    #[error("does not open with the configured KEK `{0}` for this row")]
    Refused(String),
}

/// Seals and opens values with the configured KEKs.
#[derive(Clone)]
pub struct Sealer {
    current: String,
    keks: BTreeMap<String, Aes256Gcm>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("current", &self.current).field("keks", &self.keks.keys()).finish()
    }
}

impl Sealer {
    /// The sealer of a validated configuration.
    pub fn new(config: &SealingConfig) -> Result<Self, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid(vec![ConfigIssue::new(key, message)]);
        let (current, key) = parse_kek(&config.kek).map_err(|m| invalid("sealing.kek", m))?;
        let mut keks = BTreeMap::from([(current.clone(), Aes256Gcm::new(&key.into()))]);
        for (id, key) in parse_previous(&config.previous_keks).map_err(|m| invalid("sealing.previous_keks", m))? {
            if keks.insert(id.clone(), Aes256Gcm::new(&key.into())).is_some() {
                return Err(invalid("sealing.previous_keks", format!("KEK id `{id}` is configured twice")));
            }
        }
        Ok(Self { current, keks })
    }

    /// Seals `plaintext` for `context` under the current KEK:
    /// `version | id length | id | nonce | sealed data key | nonce | sealed value`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut out = vec![VERSION, u8::try_from(self.current.len()).expect("KEK ids are at most 64 bytes")];
        out.extend_from_slice(self.current.as_bytes());
        let aad = associated_data(&out, context);
        let data_key: [u8; KEY_LEN] = rand::random();
        let kek = &self.keks[&self.current];
        for (cipher, secret) in [(kek, &data_key[..]), (&Aes256Gcm::new(&data_key.into()), plaintext)] {
            let nonce: [u8; NONCE_LEN] = rand::random();
            let sealed = cipher
                .encrypt(&nonce.into(), Payload { msg: secret, aad: &aad })
                .expect("AES-GCM seals any value shorter than 64 GiB");
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&sealed);
        }
        out
    }

    /// Opens a value [`Sealer::seal`] sealed for `context`, under any configured KEK.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (id, header_len) = kek_id(sealed)?;
        let kek = self.keks.get(id).ok_or_else(|| SealError::UnknownKek(id.to_owned()))?;
        let aad = associated_data(&sealed[..header_len], context);
        let rest = &sealed[header_len..];
        let wrapped_len = NONCE_LEN + KEY_LEN + TAG_LEN;
        if rest.len() < wrapped_len + NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let refused = || SealError::Refused(id.to_owned());
        let open = |cipher: &Aes256Gcm, part: &[u8]| {
            let (nonce, msg) = part.split_at(NONCE_LEN);
            let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce's length");
            cipher.decrypt(&nonce.into(), Payload { msg, aad: &aad }).map_err(|_| refused())
        };
        let data_key: [u8; KEY_LEN] = open(kek, &rest[..wrapped_len])?.try_into().map_err(|_| refused())?;
        open(&Aes256Gcm::new(&data_key.into()), &rest[wrapped_len..])
    }

    /// Whether `sealed` was sealed under the current KEK (else it wants re-sealing).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        kek_id(sealed).is_ok_and(|(id, _)| id == self.current)
    }
}

/// The KEK id a sealed value names and the length of its header.
fn kek_id(sealed: &[u8]) -> Result<(&str, usize), SealError> {
    let (&version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
    let (&len, rest) = rest.split_first().ok_or(SealError::Malformed)?;
    let id = rest.get(..usize::from(len)).ok_or(SealError::Malformed)?;
    if version != VERSION {
        return Err(SealError::Malformed);
    }
    Ok((std::str::from_utf8(id).map_err(|_| SealError::Malformed)?, 2 + usize::from(len)))
}

/// The header (version and KEK id) and the context, so neither can be swapped.
fn associated_data(header: &[u8], context: &str) -> Vec<u8> {
    [header, context.as_bytes()].concat()
}

#[derive(sqlx::FromRow)]
struct StoredKey {
    kid: String,
    private_key: Option<Vec<u8>>,
    sealed_private_key: Option<Vec<u8>>,
}

/// A table of private keys in a service's database, with columns `kid TEXT`,
/// `sealed_private_key BYTEA` and the legacy plaintext `private_key BYTEA` (NULL once sealed).
#[derive(Debug, Clone)]
pub struct SealedKeys {
    service: &'static str,
    table: &'static str,
    sealer: Sealer,
}

impl SealedKeys {
    /// The keys in `table` of `service`'s database.
    pub fn new(service: &'static str, table: &'static str, sealer: Sealer) -> Self {
        Self { service, table, sealer }
    }

    fn context(&self, kid: &str) -> String {
        format!("{}/{}/{kid}", self.service, self.table)
    }

    /// The sealed form of key `kid`'s private half, for `sealed_private_key`.
    pub fn seal(&self, kid: &str, private_key: &[u8]) -> Vec<u8> {
        self.sealer.seal(&self.context(kid), private_key)
    }

    /// Key `kid`'s private half from its `sealed_private_key`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.sealer.open(&self.context(kid), sealed).with_context(|| format!("opening {}", self.context(kid)))
    }

    /// Seals every plaintext row and re-seals every row sealed under an earlier KEK; then
    /// every row opens with the current KEK. The caller holds the table's lock, so replicas
    /// starting together take turns. A row no configured KEK opens is a configuration
    /// error ([`ConfigError`]): the service must not start and make keys nobody can read.
    pub async fn seal_stored(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let rows: Vec<StoredKey> =
            sqlx::query_as(&format!("SELECT kid, private_key, sealed_private_key FROM {}", self.table))
                .fetch_all(&mut *conn)
                .await
                .with_context(|| format!("loading {}", self.table))?;
        let mut resealed = 0;
        for StoredKey { kid, private_key, sealed_private_key } in rows {
            let private_key = match (private_key, sealed_private_key) {
                (_, Some(sealed)) if self.sealer.is_current(&sealed) => {
                    self.sealer.open(&self.context(&kid), &sealed).map_err(|e| self.unopenable(&kid, &e))?;
                    continue;
                }
                (_, Some(sealed)) => {
                    self.sealer.open(&self.context(&kid), &sealed).map_err(|e| self.unopenable(&kid, &e))?
                }
                (Some(plaintext), None) => plaintext,
                (None, None) => anyhow::bail!("{} has neither a private key nor a sealed one", self.context(&kid)),
            };
            sqlx::query(&format!(
                "UPDATE {} SET sealed_private_key = $2, private_key = NULL WHERE kid = $1",
                self.table
            ))
            .bind(&kid)
            .bind(self.seal(&kid, &private_key))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("sealing {}", self.context(&kid)))?;
            resealed += 1;
        }
        if resealed > 0 {
            tracing::info!(table = self.table, kek = %self.sealer.current, resealed, "sealed stored private keys");
        }
        Ok(())
    }

    fn unopenable(&self, kid: &str, e: &SealError) -> anyhow::Error {
        let issue = ConfigIssue::new("sealing.kek", format!("{} {e}", self.context(kid)));
        anyhow::Error::new(ConfigError::Invalid(vec![issue]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(id: &str) -> String {
        format!("{id}:{}", STANDARD.encode(rand::random::<[u8; 32]>()))
    }

    fn sealer(kek: &str, previous: &str) -> Sealer {
        Sealer::new(&SealingConfig { kek: kek.into(), previous_keks: previous.into() }).unwrap()
    }

    #[test]
    fn a_value_opens_only_in_its_context_and_with_its_kek() {
        let (k1, other) = (kek("k1"), kek("k1"));
        let sealer = sealer(&k1, "");
        let secret = rand::random::<[u8; 32]>();
        let sealed = sealer.seal("identity/signing_keys/a", &secret);
        assert!(!sealed.windows(secret.len()).any(|w| w == secret), "the value is not in the clear");
        assert_eq!(sealer.open("identity/signing_keys/a", &sealed).unwrap(), secret);
        assert_ne!(sealer.seal("identity/signing_keys/a", &secret), sealed, "every seal is fresh");

        let moved = sealer.open("identity/signing_keys/b", &sealed).unwrap_err();
        assert_eq!(moved, SealError::Refused("k1".into()));
        // Same id, other material: a wrong KEK is refused, not taken for a corrupt value.
        assert_eq!(self::sealer(&other, "").open("identity/signing_keys/a", &sealed), Err(moved));
        assert_eq!(
            self::sealer(&kek("k2"), "").open("identity/signing_keys/a", &sealed),
            Err(SealError::UnknownKek("k1".into()))
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(sealer.open("identity/signing_keys/a", &altered), Err(SealError::Refused(_))));
        assert_eq!(sealer.open("identity/signing_keys/a", &sealed[..20]), Err(SealError::Malformed));
    }

    #[test]
    fn an_earlier_kek_still_opens_what_it_sealed() {
        let (k1, k2) = (kek("k1"), kek("k2"));
        let sealed = sealer(&k1, "").seal("c", b"seed");
        let rotated = sealer(&k2, &format!(" {k1} ,"));
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open("c", &sealed).unwrap(), b"seed");
        assert!(rotated.is_current(&rotated.seal("c", b"seed")));
    }

    #[test]
    fn bad_keks_and_the_development_kek_in_production_are_refused() {
        let config = |kek: &str, previous: &str| SealingConfig { kek: kek.into(), previous_keks: previous.into() };
        let issues = |c: SealingConfig, env| {
            let mut issues = Vec::new();
            c.validate_in(env, &mut issues);
            issues.into_iter().map(|i| i.key).collect::<Vec<_>>()
        };
        assert!(issues(SealingConfig::default(), Environment::Development).is_empty());
        assert_eq!(issues(SealingConfig::default(), Environment::Production), ["sealing.kek"]);
        let renamed = DEVELOPMENT_KEK.replacen("dev:", "prod:", 1);
        assert_eq!(issues(config(&renamed, ""), Environment::Production), ["sealing.kek"]);
        assert!(issues(config(&kek("prod"), DEVELOPMENT_KEK), Environment::Production).is_empty());
        for bad in ["", "no-colon", "k1:not base64!", "k1:c2hvcnQ=", &format!("bad id{}", &kek("")[..])] {
            assert_eq!(issues(config(bad, ""), Environment::Development), ["sealing.kek"], "{bad}");
            assert_eq!(issues(config(&kek("k"), bad), Environment::Development).len(), usize::from(!bad.is_empty()));
        }
        let twice = kek("k1");
        assert!(Sealer::new(&config(&twice, &kek("k1"))).is_err(), "an id names one KEK");
        assert!(!format!("{:?}", config(&twice, "")).contains(&twice[3..]), "Debug shows no key material");
    }
}
