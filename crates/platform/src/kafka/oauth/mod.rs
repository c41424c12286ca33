//! SASL/OAUTHBEARER tokens for Kafka clients, so a workload authenticates with its cloud
//! identity instead of a long-lived key (`kafka.oauthbearer`): `gcp` for Google Cloud
//! Managed Service for Apache Kafka, `aws` for Amazon MSK's IAM access control.

mod aws;
mod gcp;

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::consumer::ConsumerContext;

use crate::kafka::{KafkaConfig, OAuthBearer};

/// The context of every Kafka client the platform makes: it answers librdkafka's token
/// refreshes when `kafka.oauthbearer` is set (librdkafka asks only under `OAUTHBEARER`).
#[derive(Clone, Default)]
pub struct KafkaContext {
    tokens: Option<Arc<Source>>,
}

impl KafkaContext {
    /// The context `config` asks for.
    pub fn new(config: &KafkaConfig) -> Self {
        let tokens = config.oauthbearer.map(|source| {
            Arc::new(match source {
                OAuthBearer::Gcp => Source::Gcp(gcp::GcpMetadata::from_env()),
                OAuthBearer::Aws => Source::Aws(aws::MskIam::from_env()),
            })
        });
        Self { tokens }
    }
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        let source = self.tokens.as_ref().ok_or("sasl.mechanism is OAUTHBEARER but kafka.oauthbearer is not set")?;
        Ok(source.token()?)
    }
}

impl ConsumerContext for KafkaContext {}

/// Where a client's tokens come from.
enum Source {
    Gcp(gcp::GcpMetadata),
    /// The settings, or why the pod's environment does not hold them (reported at each
    /// refresh, where librdkafka logs it, rather than refusing to build the client).
    Aws(Result<aws::MskIam, TokenError>),
}

impl Source {
    /// A fresh token. librdkafka calls this on whichever thread polls the client, often a
    /// Tokio worker, and needs the answer synchronously: the fetch runs on a thread of its own
    /// (a few milliseconds, once per token lifetime per client).
    fn token(self: &Arc<Self>) -> Result<OAuthToken, TokenError> {
        let this = Arc::clone(self);
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| TokenError::Runtime(Arc::new(e)))?
                .block_on(this.fetch())
        })
        .join()
        .map_err(|_| TokenError::Panicked)?
    }

    async fn fetch(&self) -> Result<OAuthToken, TokenError> {
        match self {
            Self::Gcp(metadata) => metadata.fetch().await,
            Self::Aws(Ok(msk)) => msk.fetch().await,
            Self::Aws(Err(unset)) => Err(unset.clone()),
        }
    }
}

/// How long before its expiry a token counts as too old to hand out: a connection must
/// outlive its handshake, and librdkafka refreshes at 80 % of the lifetime it is given.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Seconds a token fetch may take per HTTP call (metadata server, STS).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
enum TokenError {
    #[error("asking {from}: {reason}")]
    Http { from: String, reason: String },
    #[error("{from} refused with {status}: {body}")]
    Refused { from: String, status: u16, body: String },
    #[error("the token expires within {0:?}")]
    Expiring(Duration),
    #[error("{0} is not set in the pod's environment (IRSA's webhook sets it)")]
    Unset(&'static str),
    #[error("reading the web identity token {path}: {reason}")]
    IdentityFile { path: String, reason: String },
    #[error("starting the token fetch: {0}")]
    Runtime(Arc<std::io::Error>),
    #[error("the token fetch panicked")]
    Panicked,
}

impl TokenError {
    fn http(from: &str) -> impl Fn(reqwest::Error) -> Self + Copy + '_ {
        move |source| Self::Http { from: from.to_owned(), reason: source.to_string() }
    }

    /// A refusal with what the server said (STS names the missing permission), cut short.
    async fn refused(from: &str, response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let mut body = response.text().await.unwrap_or_default();
        body.truncate(body.floor_char_boundary(512));
        Self::Refused { from: from.to_owned(), status, body }
    }
}

/// A client for one token fetch.
fn http_client(from: &str) -> Result<reqwest::Client, TokenError> {
    reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().map_err(TokenError::http(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_source_the_refresh_names_the_missing_setting() {
        let context = KafkaContext::new(&KafkaConfig::default());
        let err = context.generate_oauth_token(None).err().expect("no token without a source");
        assert!(err.to_string().contains("kafka.oauthbearer"), "{err}");
    }

    #[test]
    fn oauthbearer_is_set_exactly_when_the_mechanism_is_oauthbearer() {
        use crate::config::Validate as _;
        let flagged = |source: Option<OAuthBearer>, key: &str, mechanism: &str| {
            let mut config = KafkaConfig { oauthbearer: source, ..KafkaConfig::default() };
            config.properties.insert(key.into(), mechanism.into());
            let mut issues = Vec::new();
            config.validate(&mut issues);
            issues.iter().any(|issue| issue.key == "kafka.oauthbearer")
        };
        assert!(!flagged(Some(OAuthBearer::Gcp), "sasl_mechanism", "OAUTHBEARER"));
        assert!(!flagged(Some(OAuthBearer::Aws), "sasl.mechanism", "oauthbearer"));
        assert!(!flagged(None, "sasl_mechanism", "SCRAM-SHA-512"));
        assert!(flagged(Some(OAuthBearer::Gcp), "sasl_mechanism", "PLAIN"));
        assert!(flagged(Some(OAuthBearer::Aws), "sasl_mechanism", "AWS_MSK_IAM"));
        assert!(flagged(None, "sasl_mechanism", "OAUTHBEARER"));
    }
}
