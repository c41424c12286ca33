//! Reloads the active signing key, so each replica follows rotations made by another.

use std::time::Duration;

use ticketing_platform::periodic::Job;

use crate::adapters::keys::KeyRing;

/// How often each replica reloads the active key.
pub const INTERVAL: Duration = Duration::from_secs(30);

/// The key reloader of one replica.
pub struct KeyReload {
    keys: KeyRing,
}

impl KeyReload {
    /// Reloads `keys`.
    pub fn new(keys: KeyRing) -> Self {
        Self { keys }
    }
}

impl Job for KeyReload {
    async fn round(&mut self) {
        if let Err(e) = self.keys.reload().await {
            tracing::warn!(error = format!("{e:#}"), "reloading the signing key failed");
        }
    }
}
