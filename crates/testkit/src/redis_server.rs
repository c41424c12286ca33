//! A private Redis server for tests that take Redis down: the shared one must stay up for
//! the other tests. It persists every write (append-only file, fsync on each), so a kill
//! and restart is a Redis pod restarting on its volume: connections drop, data stays.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::{Restartable, Spec};

/// A `redis-server` of the test's own.
pub struct PrivateRedis {
    /// `redis://127.0.0.1:<port>`, for `redis.url`.
    pub url: String,
    dir: PathBuf,
    process: Restartable,
}

impl PrivateRedis {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        let port = crate::process::free_port();
        let dir = std::env::temp_dir().join(format!("redis-{}", crate::unique()));
        std::fs::create_dir_all(&dir).expect("redis directory");
        let mut spec = Spec::new("redis-server");
        spec.args = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]
            .into_iter()
            .chain(["--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"])
            .map(str::to_owned)
            .collect();
        spec.dir = Some(dir.clone());
        let process = Restartable::start(spec, dir.join("redis.log"));
        let redis = Self { url: format!("redis://127.0.0.1:{port}"), dir, process };
        redis.wait_answers();
        redis
    }

    /// Kills the server (SIGKILL: clients see their connections reset).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port and data; waits until it answers.
    pub fn resume(&mut self) {
        self.process.resume();
        self.wait_answers();
    }

    fn wait_answers(&self) {
        let client = redis::Client::open(self.url.as_str()).expect("a valid Redis URL");
        crate::eventually_blocking(
            "the private Redis to answer",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                let pong: Option<String> =
                    client.get_connection().ok().and_then(|mut c| redis::cmd("PING").query(&mut c).ok());
                pong.ok_or_else(|| format!("no PONG; its output:\n{}", self.process.output()))
            },
        );
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
