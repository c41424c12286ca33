//! Sends the logged deliveries: claims due rows with a lease (committed before anything
//! is sent), renders and sends each, then records SENT, RETRYING (with the error and a
//! doubling delay) or FAILED. Every replica runs one; SKIP LOCKED and the lease keep
//! them off each other's rows.
//!
//! An outcome that cannot be recorded (Postgres restarting, failing over, refusing
//! connections) is kept in memory and recorded again, backing off up to a second, for up
//! to `send_lease` after the attempt began: past the end of the claim. While the claim
//! lasts no other replica takes the row, and this one claims nothing new until its batch
//! is recorded. A send starts only while half the lease is left, so it ends (bounded by
//! that half) within the claim; the rest of a slow batch is given back unsent, to be
//! claimed again at once.
//!
//! An email therefore goes twice only if the server accepted it and the row was claimed
//! again before SENT was recorded: this replica died or was stopped and the lease ran
//! out, or Postgres was away past the end of the claim and a claim came first (another
//! replica's, or any after the retries gave up). The second copy has the same
//! Message-ID (derived from the delivery id), so it is recognisable.

use std::time::Duration;

use futures::StreamExt as _;
use prometheus::{IntCounter, IntCounterVec, Opts};
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::adapters::deliveries::{self, Claimed};
use crate::adapters::mailer::{Mailer, SendError};
use crate::adapters::render::Renderer;
use crate::config::NotificationSettings;
use crate::domain::delivery::AfterFailure;
use crate::domain::{RetryPolicy, Template};

/// The first and the longest pause between attempts to record an outcome.
const RECORD_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// What an attempt came to, to be recorded.
enum Outcome {
    /// The server accepted the message.
    Sent,
    /// It did not: try again after `retry_in`, or never.
    Failed { error: String, retry_in: Option<Duration> },
}

impl Outcome {
    /// The `result` label of `notification_emails_total`.
    fn result(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed { retry_in: Some(_), .. } => "retry",
            Self::Failed { retry_in: None, .. } => "failed",
        }
    }
}

/// The delivery loop of one replica.
pub struct Dispatcher {
    pool: PgPool,
    mailer: Mailer,
    renderer: Renderer,
    settings: NotificationSettings,
    policy: RetryPolicy,
    emails: IntCounterVec,
    /// `platform_job_rounds_total{job="dispatcher"}`: its own loop (the wait between rounds
    /// depends on the round), counted like the platform's periodic jobs.
    rounds: IntCounter,
}

impl Dispatcher {
    /// A dispatcher sending through `mailer`, counting `notification_emails_total` and its
    /// rounds.
    pub fn new(
        pool: PgPool,
        mailer: Mailer,
        settings: NotificationSettings,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> Self {
        let emails = metrics.register(
            &IntCounterVec::new(
                Opts::new("notification_emails_total", "Email send attempts, by template and result."),
                &["template", "result"],
            )
            .expect("static metric definition"),
        );
        let policy = RetryPolicy {
            max_attempts: settings.max_attempts,
            backoff: settings.retry_backoff,
            max_backoff: settings.max_retry_backoff,
        };
        let rounds = metrics.job_rounds("dispatcher");
        Self { pool, mailer, renderer: Renderer::new(), settings, policy, emails, rounds }
    }

    /// Sends until `stop`; sends in flight finish first.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut failures = 0u32;
        loop {
            // Before the claim: the lease, counted from here, ends no later than the row's.
            let claimed_at = Instant::now();
            let wait = match deliveries::claim(&self.pool, self.settings.dispatch_batch_size, self.settings.send_lease)
                .await
            {
                Ok(claimed) => {
                    failures = 0;
                    let full = claimed.len() == self.settings.dispatch_batch_size as usize;
                    let start_by = claimed_at + self.settings.send_lease / 2;
                    let unsent: Vec<Claimed> = futures::stream::iter(claimed)
                        .map(|d| self.deliver(d, start_by))
                        .buffer_unordered(self.settings.dispatch_concurrency)
                        .filter_map(std::future::ready)
                        .collect()
                        .await;
                    if !unsent.is_empty() {
                        // Left until the lease ends, a slow batch's tail would wait a
                        // whole lease while the backlog grows.
                        tracing::warn!(
                            unsent = unsent.len(),
                            "the claim ran short; giving the unsent rest of the batch back"
                        );
                        if let Err(e) = deliveries::release(&self.pool, &unsent).await {
                            tracing::warn!(error = format!("{e:#}"), "unsent deliveries wait for their lease");
                        }
                    }
                    if full || !unsent.is_empty() { Duration::ZERO } else { self.settings.dispatch_interval }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = format!("{e:#}"), "claiming deliveries failed");
                    (self.settings.dispatch_interval * 2u32.pow(failures.min(6))).min(Duration::from_secs(10))
                }
            };
            self.rounds.inc();
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends `delivery` and records the outcome; gives it back unsent when the claim
    /// has too little left (sends earlier in the batch took long): a send begun now might
    /// outlast the claim and race another replica's.
    async fn deliver(&self, delivery: Claimed, start_by: Instant) -> Option<Claimed> {
        if Instant::now() > start_by {
            return Some(delivery);
        }
        let span = tracing::info_span!("notification.deliver", delivery.id = %delivery.id,
            delivery.template = %delivery.template, delivery.attempt = delivery.attempts);
        self.deliver_in_span(delivery).instrument(span).await;
        None
    }

    async fn deliver_in_span(&self, delivery: Claimed) {
        let attempted_at = Instant::now();
        let outcome = match self.send(&delivery).await {
            Ok(()) => Outcome::Sent,
            Err(e) => {
                let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
                match self.policy.after_failure(attempts, e.permanent) {
                    AfterFailure::RetryIn(delay) => {
                        tracing::warn!(error = %e.message, retry_in = ?delay, "sending an email failed; will retry");
                        Outcome::Failed { error: e.message, retry_in: Some(delay) }
                    }
                    AfterFailure::GiveUp => {
                        tracing::error!(error = %e.message, permanent = e.permanent, "sending an email failed; giving up");
                        Outcome::Failed { error: e.message, retry_in: None }
                    }
                }
            }
        };
        self.emails.with_label_values(&[delivery.template.as_str(), outcome.result()]).inc();
        self.record(&delivery, &outcome, attempted_at + self.settings.send_lease).await;
    }

    /// Records `outcome` under the delivery's claim, trying again until `deadline` while
    /// Postgres cannot take it.
    async fn record(&self, delivery: &Claimed, outcome: &Outcome, deadline: Instant) {
        let mut backoff = RECORD_BACKOFF.0;
        loop {
            let recorded = match outcome {
                Outcome::Sent => deliveries::mark_sent(&self.pool, delivery).await,
                Outcome::Failed { error, retry_in } => {
                    deliveries::mark_failed(&self.pool, delivery, error, *retry_in).await
                }
            };
            let e = match recorded {
                Ok(true) => return,
                Ok(false) => {
                    tracing::error!(
                        result = outcome.result(),
                        "the delivery was claimed again before its outcome was recorded; if it was sent, it goes twice"
                    );
                    return;
                }
                Err(e) => e,
            };
            if Instant::now() + backoff > deadline {
                tracing::error!(
                    error = format!("{e:#}"),
                    result = outcome.result(),
                    "recording a delivery outcome failed; giving up, so it is attempted again after its lease"
                );
                return;
            }
            if backoff == RECORD_BACKOFF.0 {
                tracing::warn!(
                    error = format!("{e:#}"),
                    result = outcome.result(),
                    "recording a delivery outcome failed; retrying"
                );
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECORD_BACKOFF.1);
        }
    }

    async fn send(&self, delivery: &Claimed) -> Result<(), SendError> {
        let permanent = |message: String| SendError { permanent: true, message };
        let template: Template = delivery.template.parse().map_err(permanent)?;
        let rendered = self
            .renderer
            .render(template, &delivery.context)
            .map_err(|e| permanent(format!("rendering {template}: {e:#}")))?;
        let message = self.mailer.compose(delivery.id, &delivery.recipient, rendered)?;
        // Bounded even if the server stalls mid-command: the lease must outlive the send.
        match tokio::time::timeout(self.settings.send_lease / 2, self.mailer.send(message)).await {
            Ok(result) => result,
            Err(_) => Err(SendError { permanent: false, message: "the SMTP send timed out".into() }),
        }
    }
}
