//! A certified OpenID provider on loopback for social-login tests (ADR 0045): npm's
//! `oidc-provider` running scripts/oidc-provider/provider.js, which scripts/infra.sh
//! installs under `.local/oidc-provider`; and a browser that follows its redirects.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;

/// The client the provider knows.
pub const CLIENT_ID: &str = "ticketing";
/// Its secret.
pub const CLIENT_SECRET: &str = "ticketing-test-client-secret";

/// A running `oidc-provider`, stopped when dropped.
pub struct Provider {
    /// Its issuer URL, `http://127.0.0.1:<port>`.
    pub issuer: String,
    _process: tokio::process::Child,
}

impl Provider {
    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        url::Url::parse(&self.issuer).ok().and_then(|u| u.port()).expect("the issuer names its port")
    }
}

/// Where scripts/infra.sh installs the provider: `$OIDC_PROVIDER_DIR`, or the workspace's
/// `.local/oidc-provider`.
fn provider_dir() -> PathBuf {
    std::env::var_os("OIDC_PROVIDER_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join(".local/oidc-provider"))
}

/// Starts a provider whose client may redirect only to `redirect_uri`.
pub async fn start_provider(redirect_uri: &str) -> Provider {
    let dir = provider_dir();
    assert!(
        dir.join("node_modules/oidc-provider/package.json").exists(),
        "oidc-provider is not installed in {}: run scripts/infra.sh (it installs it from npm)",
        dir.display()
    );
    // The script as checked in, beside its node_modules (where its import resolves); copied
    // once per test binary, and renamed into place so no run sees half a file.
    static COPIED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let target = COPIED.get_or_init(|| {
        let source = workspace().join("scripts/oidc-provider/provider.js");
        let script = std::fs::read(&source).expect("scripts/oidc-provider/provider.js");
        let partial = dir.join(format!(".provider-{}.js", std::process::id()));
        std::fs::write(&partial, script).expect("copying provider.js");
        std::fs::rename(&partial, dir.join("provider.js")).expect("copying provider.js");
        dir.join("provider.js")
    });
    // A start costs about 1 s of CPU, and twelve at once beside a build print their issuer
    // within 7 s here; yet one in CI printed nothing in 30 s. Should that recur, say what
    // the process was doing, and start another.
    match spawn(target, redirect_uri).await {
        Ok(provider) => provider,
        Err(stalled) => {
            eprintln!("{stalled}; starting another");
            spawn(target, redirect_uri).await.unwrap_or_else(|stalled| panic!("{stalled}, twice"))
        }
    }
}

/// How long a provider may take to print its issuer line.
const LISTEN_WITHIN: Duration = Duration::from_secs(30);

/// Runs `script` and waits for its issuer line; on a stall, says what the process was doing.
async fn spawn(script: &std::path::Path, redirect_uri: &str) -> Result<Provider, String> {
    let mut process = tokio::process::Command::new("node")
        .arg(script)
        .env("PORT", "0")
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", redirect_uri)
        // Killed when dropped; and should this process die first, the closed pipe ends it.
        .env("EXIT_WITH_STDIN", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Piped, not inherited: a child holding the runner's own output would keep it open.
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts (is Node.js installed?)");
    let mut errors = tokio::io::BufReader::new(process.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = errors.next_line().await {
            eprintln!("oidc-provider: {line}");
        }
    });
    let mut lines = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(LISTEN_WITHIN, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("issuer ") {
                return issuer.to_owned();
            }
        }
        panic!("oidc-provider exited without listening");
    })
    .await;
    let Ok(issuer) = listening else {
        let stalled = format!("oidc-provider did not listen within {LISTEN_WITHIN:?} ({})", describe(&process));
        return Err(stalled);
    };
    // Its notices go on coming; a closed pipe would end it at the next one.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "oidc-provider", "{line}");
        }
    });
    Ok(Provider { issuer, _process: process })
}

/// A stalled process's scheduler state, CPU time and wait channel, and the machine's load.
fn describe(process: &tokio::process::Child) -> String {
    let Some(pid) = process.id() else { return "it exited".to_owned() };
    let read = |path: String| std::fs::read_to_string(path).unwrap_or_default();
    // `/proc/<pid>/stat`: fields after the parenthesised name; state is the first, utime
    // and stime the 12th and 13th, in clock ticks (100 a second on Linux).
    let stat = read(format!("/proc/{pid}/stat"));
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    format!(
        "state {}, {:.2} s of CPU, waiting in {:?}, load average {}",
        fields.first().unwrap_or(&"?"),
        (ticks(11) + ticks(12)) as f64 / 100.0,
        read(format!("/proc/{pid}/wchan")),
        read("/proc/loadavg".to_owned()).trim()
    )
}

/// The workspace's root.
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `url` with a `login_hint` naming whom the provider signs in: `verified:<email>` or
/// `unverified:<email>`.
pub fn with_login_hint(url: &str, hint: &str) -> String {
    let mut url = url::Url::parse(url).expect("an authorization URL");
    url.query_pairs_mut().append_pair("login_hint", hint);
    url.to_string()
}

/// A browser without JavaScript: follows redirects itself and keeps cookies, stopping at
/// the redirect back to us.
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser without cookies.
    pub fn new() -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, cookies: BTreeMap::new() }
    }

    /// Follows `url` to the redirect back to `redirect_uri`: its `code` and `state`.
    pub async fn sign_in(&mut self, url: &str, redirect_uri: &str) -> (String, String) {
        let mut url = url::Url::parse(url).unwrap();
        for _ in 0..10 {
            if url.as_str().starts_with(redirect_uri) {
                let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
                assert!(!query.contains_key("error"), "the provider refused: {query:?}");
                return (query["code"].clone(), query["state"].clone());
            }
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            let response = self.http.get(url.clone()).header("cookie", cookie).send().await.unwrap();
            for set in response.headers().get_all("set-cookie") {
                let pair = set.to_str().unwrap().split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
            let status = response.status();
            let Some(location) = response.headers().get("location") else {
                panic!("{status} at {url} without a redirect: {}", response.text().await.unwrap_or_default());
            };
            url = url.join(location.to_str().unwrap()).unwrap();
        }
        panic!("too many redirects");
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}
