//! A private Kafka-compatible broker (tansu, as `scripts/infra.sh` installs it) for
//! tests that stop and restart the broker: the shared one must stay up for the
//! other tests. Storage is SQLite in a temporary directory, so topics, messages and
//! committed offsets survive a restart.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

/// A tansu process of the test's own.
pub struct PrivateBroker {
    /// `127.0.0.1:<port>`, for `kafka.brokers`.
    pub address: String,
    dir: PathBuf,
    child: Option<Child>,
}

fn tansu() -> PathBuf {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if home.exists() { home } else { PathBuf::from("tansu") }
}

impl PrivateBroker {
    /// Starts a broker on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        let port = crate::process::free_port();
        let dir = std::env::temp_dir().join(format!("tansu-{}", crate::unique()));
        std::fs::create_dir_all(&dir).expect("broker directory");
        let mut broker = Self { address: format!("127.0.0.1:{port}"), dir, child: None };
        broker.resume();
        broker
    }

    /// [`PrivateBroker::start`], off the async runtime's threads.
    pub async fn start_async() -> Self {
        tokio::task::spawn_blocking(Self::start).await.expect("starting the private broker")
    }

    /// [`PrivateBroker::resume`], off the async runtime's threads.
    pub async fn resumed(mut self) -> Self {
        tokio::task::spawn_blocking(move || {
            self.resume();
            self
        })
        .await
        .expect("resuming the private broker")
    }

    /// Starts the broker again on the same port and storage; waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let url = format!("tcp://{}", self.address);
        let log = std::fs::File::create(self.dir.join("tansu.log")).expect("broker log");
        let child = Command::new(tansu())
            .current_dir(&self.dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu (bash scripts/infra.sh installs it)");
        self.child = Some(child);
        let consumer: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &self.address).create().expect("a metadata client");
        let what = format!("the private broker at {} to answer", self.address);
        crate::eventually_blocking(&what, Duration::from_secs(30), Duration::from_millis(100), || {
            consumer.fetch_metadata(None, Duration::from_secs(1)).map(drop)
        });
    }

    /// Freezes the broker (SIGSTOP), as a stalled node or a partition would: its sockets stay
    /// open but nothing answers, so clients see timeouts rather than refused connections.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen broker go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the broker is running");
        let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {}", child.id());
    }

    /// Stops the broker, as an outage would (SIGKILL: no goodbye to the clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
