//! Every service's `/readyz`, polled from a fault's start: which went unready, and when
//! each came back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::platform::{Platform, ready};

const POLL: Duration = Duration::from_millis(250);

/// The polling, running.
pub struct Readiness {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Timeline>,
}

/// What it saw: each change of a service's readiness, in order.
pub struct Timeline {
    changes: Vec<(&'static str, bool, Instant)>,
    now: BTreeMap<&'static str, bool>,
}

impl Readiness {
    /// Starts polling `p`'s services (all ready now).
    pub fn watch(p: &Platform) -> Self {
        let services: Vec<(&'static str, u16)> = p.services.values().map(|s| (s.name, s.admin)).collect();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut timeline =
                Timeline { changes: Vec::new(), now: services.iter().map(|(name, _)| (*name, true)).collect() };
            while !stopped.is_cancelled() {
                let round = futures::future::join_all(services.iter().map(|(_, admin)| ready(*admin))).await;
                for ((name, _), ready) in services.iter().zip(round) {
                    if timeline.now.insert(name, ready) != Some(ready) {
                        timeline.changes.push((name, ready, Instant::now()));
                    }
                }
                tokio::time::sleep(POLL).await;
            }
            timeline
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Timeline {
        self.stop.cancel();
        self.task.await.expect("the readiness poller")
    }
}

impl Timeline {
    /// E.g. `inventory unready +8.1s, ready +9.0s`.
    pub fn describe(&self, p: &Platform) -> String {
        if self.changes.is_empty() {
            return "every service stayed ready".into();
        }
        let mut by_service: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, ready, at) in &self.changes {
            let what = if *ready { "ready" } else { "unready" };
            by_service.entry(name).or_default().push(format!("{what} {}", p.at(*at)));
        }
        by_service.iter().map(|(name, changes)| format!("{name} {}", changes.join(", "))).collect::<Vec<_>>().join("; ")
    }

    /// Services not ready when the polling stopped.
    pub fn unready_at_end(&self) -> Vec<&'static str> {
        self.now.iter().filter(|(_, ready)| !**ready).map(|(name, _)| *name).collect()
    }
}
