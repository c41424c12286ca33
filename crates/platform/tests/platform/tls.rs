//! TLS in the data-plane clients, against real TLS endpoints on this machine: the local
//! Postgres (Debian enables `ssl` with its snakeoil certificate), a TLS-only
//! `redis-server` and an `openssl s_server` standing in for a Kafka broker, with a
//! throwaway CA made by the `openssl` command line.
//!
//! A missing prerequisite (Postgres without `ssl`, no `redis-server` or `openssl`) fails the
//! test, naming it, unless `TICKETING_TLS_TESTS=optional` (the GitHub workflow's service
//! containers, which have neither) turns the failure into a printed skip.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::Connection as _;
use ticketing_platform::config::{ConfigIssue, Validate};
use ticketing_platform::db::DatabaseConfig;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::redis::RedisConfig;
use ticketing_platform::{db, kafka};
use ticketing_testkit as testkit;

use crate::support::eventually;

/// Whether the test can run; panics naming `missing` unless TLS tests are optional here.
fn have(prerequisite: bool, missing: &str) -> bool {
    if prerequisite {
        return true;
    }
    let optional = std::env::var("TICKETING_TLS_TESTS").is_ok_and(|v| v == "optional");
    assert!(optional, "{missing} (set TICKETING_TLS_TESTS=optional where that is expected)");
    eprintln!("skipped: {missing}");
    false
}

fn installed(command: &str) -> bool {
    Command::new(command).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn issues(config: &impl Validate) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    config.validate(&mut issues);
    issues
}

/// A throwaway CA and a certificate it signs for 127.0.0.1 and localhost.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tls-test-{}", testkit::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let steps: [&[&str]; 3] = [
            &[
                &["req", "-x509"],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ticketing test CA"],
            ]
            .concat(),
            &[&["req"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        ];
        for args in steps {
            let out = Command::new("openssl").args(args).current_dir(&dir).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn listening(port: u16) {
    eventually("the TLS server to listen", Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
}

fn with_params(url: &str, params: &str) -> String {
    format!("{url}{}{params}", if url.contains('?') { '&' } else { '?' })
}

#[tokio::test]
async fn postgres_sslmode_require_encrypts_and_verify_full_checks_the_ca() {
    let mut plain =
        sqlx::PgConnection::connect(&testkit::database_url()).await.expect("connect to Postgres (DATABASE_URL)");
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut plain).await.unwrap();
    if !have(ssl == "on", "the Postgres at DATABASE_URL has ssl = off") {
        return;
    }

    let config =
        DatabaseConfig { url: with_params(&testkit::database_url(), "sslmode=require"), ..DatabaseConfig::default() };
    assert_eq!(issues(&config), [], "sslmode=require is a valid database.url");
    let pool = db::pool(&config).unwrap();
    let (encrypted, version): (bool, String) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(encrypted, "the pool's connection is encrypted");
    assert!(version.starts_with("TLSv1."), "{version}");

    // verify-full checks the server's certificate: a CA that did not sign it is refused.
    if !have(installed("openssl"), "no openssl command") {
        return;
    }
    let pki = Pki::new();
    let url = with_params(
        &testkit::database_url(),
        &format!("sslmode=verify-full&sslrootcert={}", pki.path("ca.pem").display()),
    );
    let refused = sqlx::PgConnection::connect(&url).await.expect_err("a server certificate from another CA");
    assert!(format!("{refused:?}").to_lowercase().contains("certificate"), "{refused:?}");
}

#[tokio::test]
async fn redis_over_tls_trusts_the_configured_ca() {
    if !have(installed("redis-server") && installed("openssl"), "no redis-server or openssl command") {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let path = |name| pki.path(name).display().to_string();
    let _server = Server(
        Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &path("server.pem"), "--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.pem"), "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no", "--dir", &path("")])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    listening(port).await;

    let url = format!("rediss://127.0.0.1:{port}");
    let config = RedisConfig { url: url.clone(), key_prefix: "tls:".into(), ca_file: Some(pki.path("ca.pem")) };
    assert_eq!(issues(&config), [], "rediss:// with a CA file is valid");
    let mut conn = ticketing_platform::redis::connect(&config).await.expect("a TLS connection to redis-server");
    let _: () = redis::cmd("SET").arg("tls:probe").arg("encrypted").query_async(&mut conn).await.unwrap();
    let value: String = redis::cmd("GET").arg("tls:probe").query_async(&mut conn).await.unwrap();
    assert_eq!(value, "encrypted");

    // Without the CA, the system's store does not know the server's certificate.
    let client = redis::Client::open(url.as_str()).unwrap();
    let refused = client.get_multiplexed_async_connection().await.expect_err("an unknown CA");
    assert!(format!("{refused:?}").to_lowercase().contains("certificate"), "{refused:?}");

    let plain = RedisConfig { url: "redis://127.0.0.1:6379".into(), ..config };
    assert!(issues(&plain).iter().any(|i| i.key == "redis.ca_file"), "a CA file needs rediss://");
}

#[tokio::test]
async fn kafka_clients_speak_tls_and_accept_sasl_ssl() {
    // MSK (SCRAM) and Managed Kafka (PLAIN) settings: librdkafka refuses SASL_SSL unless it
    // was built with OpenSSL.
    let mut config = KafkaConfig::default();
    for (key, value) in [
        ("security_protocol", "SASL_SSL"),
        ("sasl_mechanism", "SCRAM-SHA-512"),
        ("sasl_username", "booking"),
        ("sasl_password", "secret"),
    ] {
        config.properties.insert(key.into(), value.into());
    }
    assert_eq!(issues(&config), []);
    let _producer = kafka::producer(&config).expect("a SASL_SSL producer");

    // A real handshake: `openssl s_server` plays the broker and prints what it decrypts;
    // the client's first request (ApiVersions) carries its client.id.
    if !have(installed("openssl"), "no openssl command") {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-quiet"])
        .args(["-cert", &pki.path("server.pem").display().to_string()])
        .args(["-key", &pki.path("server.key").display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let mut stdout = server.stdout.take().unwrap();
    let _server = Server(server);
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    listening(port).await;

    let client_id = format!("tls-probe-{}", testkit::unique());
    let mut config = KafkaConfig { brokers: format!("127.0.0.1:{port}"), ..KafkaConfig::default() };
    config.properties.insert("security_protocol".into(), "SSL".into());
    config.properties.insert("ssl_ca_location".into(), pki.path("ca.pem").display().to_string());
    config.properties.insert("client_id".into(), client_id.clone());
    let consumer: BaseConsumer<kafka::KafkaContext> = kafka::create(&config, |_| {}).expect("an SSL client");
    // The fake broker never answers; the request is all we need (the thread ends by itself).
    std::thread::spawn(move || consumer.fetch_metadata(None, Duration::from_secs(10)).err());
    eventually("the client.id, decrypted by the TLS server", Duration::from_secs(10), || {
        let received = received.clone();
        let client_id = client_id.clone();
        async move { contains(&received.lock().unwrap(), client_id.as_bytes()).then_some(()) }
    })
    .await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
