//! Programs run as child processes that a test can kill, pause and start again with the
//! same command line and environment, as Kubernetes restarts a container: the service
//! binaries under test, and private servers (Redis) the test may take down.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use ticketing_platform::db::DatabaseConfig;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_platform::redis::RedisConfig;

/// The path of a workspace binary next to the running test's: `target/<profile>/<name>`.
/// Panics, saying how to build it, when it is missing.
pub fn binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first (scripts/test.sh does)", path.display());
    path
}

/// A loopback port nothing listens on, for a process the test starts to bind.
///
/// Port 0 would hand out a port from the kernel's ephemeral range, and between the test
/// choosing it and the child binding it any outgoing connection on the machine may take it
/// as its source port, for as long as that connection lives (a CI run failed so). So the
/// port comes from below that range, which outgoing connections never use, and is claimed
/// with a file under the temporary directory, so that tests running at once, in this
/// process or another, never draw the same one. Claims older than an hour are stale.
pub fn free_port() -> u16 {
    const STALE: std::time::Duration = std::time::Duration::from_secs(3600);
    let (low, high) = (10_000u16, ephemeral_floor());
    if high <= low {
        return any_port();
    }
    let claims = std::env::temp_dir().join("ticketing-test-ports");
    std::fs::create_dir_all(&claims).expect("the port claims' directory");
    for _ in 0..10_000 {
        let port = rand::random_range(low..high);
        let claim = claims.join(port.to_string());
        let stale = std::fs::metadata(&claim)
            .and_then(|m| m.modified())
            .is_ok_and(|at| at.elapsed().unwrap_or_default() > STALE);
        if stale {
            let _ = std::fs::remove_file(&claim);
        }
        if OpenOptions::new().write(true).create_new(true).open(&claim).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port below {high} after 10,000 draws");
}

/// The first port of the kernel's ephemeral range (Linux), or 0 where it cannot be read.
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Any port the kernel says is free right now.
fn any_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// The environment that gives a service binary its loopback ports and points it at its own
/// database (none for the gateway), Redis key prefix and Kafka topic namespace; readiness and
/// gauges refresh fast, so a test sees a dependency come and go within its patience.
/// Services ignore the sections they do not read.
pub fn service_env(
    grpc: u16,
    admin: u16,
    database: Option<&DatabaseConfig>,
    redis: &RedisConfig,
    kafka: &KafkaConfig,
) -> Vec<(String, String)> {
    [
        ("TICKETING_SERVER__GRPC_ADDR", format!("127.0.0.1:{grpc}")),
        ("TICKETING_SERVER__ADMIN_ADDR", format!("127.0.0.1:{admin}")),
        ("TICKETING_SERVER__READINESS_INTERVAL", "100ms".into()),
        ("TICKETING_TELEMETRY__METRICS_INTERVAL", "200ms".into()),
        ("TICKETING_REDIS__URL", redis.url.clone()),
        ("TICKETING_REDIS__KEY_PREFIX", redis.key_prefix.clone()),
        ("TICKETING_KAFKA__BROKERS", kafka.brokers.clone()),
        ("TICKETING_KAFKA__TOPIC_NAMESPACE", kafka.topic_namespace.clone()),
        // How the local platform talks to tansu (ADR 0019), as `kafka` says.
        ("TICKETING_KAFKA__ASSIGN_ALL_PARTITIONS", kafka.assign_all_partitions.to_string()),
        (
            "TICKETING_KAFKA__PRODUCER_MESSAGE_TIMEOUT",
            humantime::format_duration(kafka.producer_message_timeout).to_string(),
        ),
        (
            "TICKETING_KAFKA__CONSUMER_STALL_TIMEOUT",
            humantime::format_duration(kafka.consumer_stall_timeout).to_string(),
        ),
    ]
    .into_iter()
    .chain(database.map(|db| ("TICKETING_DATABASE__URL", db.url.clone())))
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// What to run: kept, so every start runs the same command.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory; the test's own when `None`.
    pub dir: Option<PathBuf>,
}

impl Spec {
    /// `program` with no arguments or extra environment.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), args: Vec::new(), env: Vec::new(), dir: None }
    }
}

/// A child process that can be killed and started again; stdout and stderr of every run
/// are appended to one log file. Dropping it kills the process.
pub struct Restartable {
    spec: Spec,
    log: PathBuf,
    child: Option<Child>,
}

impl Restartable {
    /// Starts `spec`, logging to `log` (created or truncated).
    pub fn start(spec: Spec, log: impl Into<PathBuf>) -> Self {
        let log = log.into();
        File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let mut process = Self { spec, log, child: None };
        process.resume();
        process
    }

    /// Starts the same command again (after [`Restartable::kill`] or an exit), below a line
    /// in the log that marks the restart.
    pub fn resume(&mut self) {
        if let Some(child) = self.child.as_mut() {
            assert!(child.try_wait().expect("poll the child").is_some(), "{} is running", self.name());
        }
        let mut log = OpenOptions::new().append(true).open(&self.log).expect("open the process log");
        if self.child.is_some() {
            let _ = writeln!(log, "\n==== restarted by the test ====\n");
        }
        let mut command = Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the log file"))
            .stderr(log);
        if let Some(dir) = &self.spec.dir {
            command.current_dir(dir);
        }
        self.child = Some(command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.spec.program.display())));
    }

    /// SIGKILL, as a crash or an OOM kill would end it; waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (a name `kill` knows: `STOP`, `CONT`, `TERM`) to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().unwrap_or_else(|| panic!("{} is not running", self.name()));
        let sent = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} ({}) failed", self.name());
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().expect("poll the child"))
    }

    /// Hands the child over, e.g. to wait for its exit on another thread; the process is
    /// then no longer this one's to kill.
    pub fn take_child(&mut self) -> Option<Child> {
        self.child.take()
    }

    /// Everything every run has written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the output goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn name(&self) -> String {
        self.spec.program.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.kill();
    }
}
