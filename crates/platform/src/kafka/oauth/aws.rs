//! `aws`: Amazon MSK's IAM access control takes as the OAUTHBEARER token a SigV4-presigned
//! `kafka-cluster:Connect` request to `kafka.<region>.amazonaws.com`, base64url-encoded
//! without padding: the format of AWS's aws-msk-iam-sasl-signer libraries. The credentials
//! are the pod's IAM role's (IRSA): its projected service-account token
//! (`AWS_WEB_IDENTITY_TOKEN_FILE`) exchanged at STS for a session of `AWS_ROLE_ARN`.
//!
//! Signed by hand with the workspace's `hmac`/`sha2` rather than with `aws-sigv4`, which
//! would link a second generation of those crates for one fixed request; the test pins the
//! result to what AWS's own signer makes from the same inputs.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac as _};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rdkafka::client::OAuthToken;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{EXPIRY_MARGIN, TokenError, http_client};

/// How long a token is valid at most: what AWS's signers use.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The role session STS is asked for; a token is made from fresh credentials every time.
const SESSION_SECONDS: &str = "3600";
const SERVICE: &str = "kafka-cluster";
/// SHA-256 of the empty body the signed GET carries.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const USER_AGENT: &str = concat!("ticketing-platform/", env!("CARGO_PKG_VERSION"));
/// SigV4's URI encoding: everything but the unreserved characters.
const SIGV4: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Where MSK IAM tokens come from: the pod's IRSA settings.
pub(super) struct MskIam {
    region: String,
    /// STS's endpoint: `AWS_ENDPOINT_URL_STS` (the SDKs' override), else the region's.
    sts: String,
    role_arn: String,
    identity_file: String,
    /// Shows in CloudTrail beside the role: the pod's name.
    session: String,
}

/// An IAM role session's credentials.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    /// Seconds since the epoch, as STS answers in JSON.
    expiration: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsAnswer {
    assume_role_with_web_identity_response: StsResponse,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResponse {
    assume_role_with_web_identity_result: StsResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResult {
    credentials: Credentials,
}

impl MskIam {
    /// The settings EKS's pod identity webhook puts in the environment of a pod whose
    /// ServiceAccount names a role.
    pub(super) fn from_env() -> Result<Self, TokenError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, TokenError> {
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).ok_or(TokenError::Unset("AWS_REGION"))?;
        let sts = var("AWS_ENDPOINT_URL_STS").unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        let session: String = format!("kafka-{}", var("HOSTNAME").unwrap_or_default())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(*c))
            .take(64)
            .collect();
        Ok(Self {
            sts,
            role_arn: var("AWS_ROLE_ARN").ok_or(TokenError::Unset("AWS_ROLE_ARN"))?,
            identity_file: var("AWS_WEB_IDENTITY_TOKEN_FILE")
                .ok_or(TokenError::Unset("AWS_WEB_IDENTITY_TOKEN_FILE"))?,
            session,
            region,
        })
    }

    pub(super) async fn fetch(&self) -> Result<OAuthToken, TokenError> {
        let credentials = self.assume_role().await?;
        presign(&self.region, &credentials, &self.role_arn, Utc::now())
    }

    /// STS's AssumeRoleWithWebIdentity with the pod's projected token, which the kubelet
    /// rotates on disk: it is read afresh every time.
    async fn assume_role(&self) -> Result<Credentials, TokenError> {
        let identity = tokio::fs::read_to_string(&self.identity_file)
            .await
            .map_err(|e| TokenError::IdentityFile { path: self.identity_file.clone(), reason: e.to_string() })?;
        let http = TokenError::http(&self.sts);
        let response = http_client(&self.sts)?
            .post(&self.sts)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", &self.role_arn),
                ("RoleSessionName", &self.session),
                ("WebIdentityToken", identity.trim()),
                ("DurationSeconds", SESSION_SECONDS),
            ])
            .send()
            .await
            .map_err(http)?;
        if !response.status().is_success() {
            return Err(TokenError::refused(&self.sts, response).await);
        }
        let answer: StsAnswer = response.json().await.map_err(http)?;
        Ok(answer.assume_role_with_web_identity_response.assume_role_with_web_identity_result.credentials)
    }
}

/// The token for `credentials` signed at `now`: valid for 15 minutes, or until the
/// credentials expire if sooner (as AWS's signers do).
fn presign(
    region: &str,
    credentials: &Credentials,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<OAuthToken, TokenError> {
    let mut lifetime = TOKEN_LIFETIME;
    if let Some(expiration) = credentials.expiration {
        let left = expiration - now.timestamp_millis() as f64 / 1000.0;
        lifetime = lifetime.min(Duration::from_secs_f64(left.max(0.0)));
    }
    if lifetime <= EXPIRY_MARGIN {
        return Err(TokenError::Expiring(lifetime));
    }
    let host = format!("kafka.{region}.amazonaws.com");
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let scope = format!("{}/{region}/{SERVICE}/aws4_request", &stamp[..8]);
    let credential = format!("{}/{scope}", credentials.access_key_id);
    let expires = lifetime.as_secs().to_string();
    let mut query: Vec<String> = [
        ("Action", "kafka-cluster:Connect"),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &stamp),
        ("X-Amz-Expires", &expires),
        ("X-Amz-Security-Token", &credentials.session_token),
        ("X-Amz-SignedHeaders", "host"),
    ]
    .iter()
    .map(|(key, value)| format!("{}={}", utf8_percent_encode(key, SIGV4), utf8_percent_encode(value, SIGV4)))
    .collect();
    query.sort();
    let query = query.join("&");

    let request = format!("GET\n/\n{query}\nhost:{host}\n\nhost\n{EMPTY_SHA256}");
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{:x}", Sha256::digest(request));
    let key = [&stamp[..8], region, SERVICE, "aws4_request"]
        .iter()
        .fold(format!("AWS4{}", credentials.secret_access_key).into_bytes(), |key, part| hmac(&key, part));
    let signature = hex(&hmac(&key, &to_sign));

    let url = format!(
        "https://{host}/?{query}&X-Amz-Signature={signature}&User-Agent={}",
        utf8_percent_encode(USER_AGENT, SIGV4)
    );
    let expiry = now + TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::zero());
    Ok(OAuthToken {
        token: URL_SAFE_NO_PAD.encode(url),
        principal_name: principal.to_owned(),
        lifetime_ms: expiry.timestamp_millis(),
    })
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use super::super::Source;
    use super::*;

    fn credentials(expiration: Option<f64>) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLEKEYID".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: "IQoJb3JpZ2luX2VjEXAMPLE/session+token==".into(),
            expiration,
        }
    }

    fn url_of(token: &OAuthToken) -> url::Url {
        url::Url::parse(&String::from_utf8(URL_SAFE_NO_PAD.decode(&token.token).unwrap()).unwrap()).unwrap()
    }

    fn param(url: &url::Url, key: &str) -> Option<String> {
        url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
    }

    /// The reference: AWS's aws-msk-iam-sasl-signer-js 1.0.3 (npm), given these credentials,
    /// region eu-west-1 and its clock fixed at 2026-12-05T01:02:03Z, made a token whose URL
    /// signs to this, with X-Amz-Expires=900 and an expiry of 1796433423000 ms.
    #[test]
    fn a_token_signs_as_awss_own_signer_does() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T01:02:03Z").unwrap().with_timezone(&Utc);
        let token = presign("eu-west-1", &credentials(None), "arn:aws:iam::1:role/r", now).unwrap();

        let url = url_of(&token);
        assert_eq!(url.host_str(), Some("kafka.eu-west-1.amazonaws.com"));
        assert_eq!(url.path(), "/");
        assert_eq!(
            param(&url, "X-Amz-Signature").as_deref(),
            Some("d711a9aa82ccf158b3f818f8694d2c834af9bee9a946a429229b0f412b37fc8e")
        );
        assert_eq!(param(&url, "Action").as_deref(), Some("kafka-cluster:Connect"));
        assert_eq!(param(&url, "X-Amz-Security-Token").as_deref(), Some("IQoJb3JpZ2luX2VjEXAMPLE/session+token=="));
        assert_eq!(
            param(&url, "X-Amz-Credential").as_deref(),
            Some("ASIAEXAMPLEKEYID/20261205/eu-west-1/kafka-cluster/aws4_request")
        );
        assert_eq!(param(&url, "X-Amz-Expires").as_deref(), Some("900"));
        assert_eq!(token.lifetime_ms, 1_796_433_423_000);
        assert_eq!(token.principal_name, "arn:aws:iam::1:role/r");
        assert!(!token.token.contains(['=', '+', '/']), "base64url without padding");
    }

    #[test]
    fn a_token_lives_no_longer_than_its_credentials() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T01:02:03Z").unwrap().with_timezone(&Utc);
        let at = now.timestamp() as f64;

        let short = presign("eu-west-1", &credentials(Some(at + 300.0)), "r", now).unwrap();
        assert_eq!(param(&url_of(&short), "X-Amz-Expires").as_deref(), Some("300"));
        assert_eq!(short.lifetime_ms, (now.timestamp() + 300) * 1000);

        let spent = presign("eu-west-1", &credentials(Some(at + 30.0)), "r", now);
        assert!(matches!(spent, Err(TokenError::Expiring(_))), "{:?}", spent.err());
    }

    #[test]
    fn the_settings_come_from_irsas_environment_and_name_what_is_missing() {
        let env = |pairs: &[(&str, &str)]| {
            let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            MskIam::from_vars(move |name| vars.get(name).cloned())
        };
        let full = [
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/prod-inventory"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"),
            ("HOSTNAME", "inventory-7d9f/x y"),
        ];
        let settings = env(&full).unwrap();
        assert_eq!(settings.sts, "https://sts.eu-west-1.amazonaws.com");
        assert_eq!(settings.session, "kafka-inventory-7d9fxy");

        for missing in ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_DEFAULT_REGION"] {
            let rest: Vec<_> = full.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = env(&rest).err().expect("incomplete settings");
            assert!(err.to_string().contains(missing.trim_start_matches("AWS_DEFAULT_")), "{missing}: {err}");
        }
    }

    type Seen = Arc<Mutex<Vec<(HeaderMap, HashMap<String, String>)>>>;

    /// STS answering AssumeRoleWithWebIdentity in JSON, or refusing as it does.
    async fn sts(refuse: bool) -> (String, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route(
                "/",
                post(|State((refuse, seen)): State<(bool, Seen)>, headers: HeaderMap, body: String| async move {
                    let form: HashMap<String, String> =
                        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    seen.lock().unwrap().push((headers, form));
                    if refuse {
                        return Err((StatusCode::FORBIDDEN, "Not authorized to perform sts:AssumeRoleWithWebIdentity"));
                    }
                    let expiration = Utc::now().timestamp() + 3600;
                    Ok(axum::Json(serde_json::json!({"AssumeRoleWithWebIdentityResponse": {
                        "AssumeRoleWithWebIdentityResult": {
                            "Credentials": {
                                "AccessKeyId": "ASIAFRESH", "SecretAccessKey": "secret",
                                "SessionToken": "session", "Expiration": expiration as f64,
                            },
                        },
                        "ResponseMetadata": {"RequestId": "x"},
                    }})))
                }),
            )
            .with_state((refuse, seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), seen)
    }

    fn msk(sts: String, identity_file: String) -> Arc<Source> {
        Arc::new(Source::Aws(Ok(MskIam {
            region: "eu-west-1".into(),
            sts,
            role_arn: "arn:aws:iam::1:role/prod-inventory".into(),
            identity_file,
            session: "kafka-inventory-0".into(),
        })))
    }

    /// A directory holding a projected service-account token, as the kubelet mounts it.
    fn projected(token: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("msk-iam-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), token).unwrap();
        dir
    }

    // Called from a Tokio worker, as librdkafka's refresh is (the fetch blocks that worker).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_is_signed_with_the_session_sts_gives_for_the_pods_identity() {
        let dir = projected("eyJhbGciOiJSUzI1NiJ9.projected.sig\n");
        let file = dir.join("token");
        let (base, seen) = sts(false).await;

        let token = msk(base, file.display().to_string()).token().expect("a token");

        let (headers, form) = seen.lock().unwrap().pop().expect("STS was asked");
        assert_eq!(headers["accept"], "application/json");
        assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
        assert_eq!(form["RoleArn"], "arn:aws:iam::1:role/prod-inventory");
        assert_eq!(form["RoleSessionName"], "kafka-inventory-0");
        assert_eq!(form["WebIdentityToken"], "eyJhbGciOiJSUzI1NiJ9.projected.sig");
        let url = url_of(&token);
        assert_eq!(param(&url, "X-Amz-Security-Token").as_deref(), Some("session"));
        assert!(param(&url, "X-Amz-Credential").unwrap().starts_with("ASIAFRESH/"));
        let left = token.lifetime_ms - Utc::now().timestamp_millis();
        assert!((880_000..=900_000).contains(&left), "expires in {left} ms");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_or_a_missing_identity_is_an_error_that_says_why() {
        let dir = projected("projected");
        let file = dir.join("token");

        let (base, _) = sts(true).await;
        let err = msk(base.clone(), file.display().to_string()).token().err().expect("refused");
        assert!(matches!(err, TokenError::Refused { status: 403, .. }), "{err}");
        assert!(err.to_string().contains("sts:AssumeRoleWithWebIdentity"), "{err}");

        let err = msk(base, dir.join("absent").display().to_string()).token().err().expect("no identity");
        assert!(matches!(err, TokenError::IdentityFile { .. }), "{err}");

        let unset = Arc::new(Source::Aws(Err(TokenError::Unset("AWS_ROLE_ARN"))));
        assert!(unset.token().err().expect("unset").to_string().contains("AWS_ROLE_ARN"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
