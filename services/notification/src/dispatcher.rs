//! Sends the logged deliveries: claims due rows with a lease (committed before anything
//! is sent), renders and sends each, then records SENT, RETRYING (with the error and a
//! doubling delay) or FAILED. Every replica runs one; SKIP LOCKED and the lease keep
//! them off each other's rows.
//!
//! A replica that dies after the server accepted a message but before recording it
//! leaves the row claimed; when the lease ends it is sent again, with the same
//! Message-ID (derived from the delivery id), so the duplicate is recognisable. That
//! window, one SMTP round trip plus one UPDATE, is the only way an email goes twice.

use std::time::Duration;

use futures::StreamExt as _;
use prometheus::{IntCounterVec, Opts};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::adapters::deliveries::{self, Claimed};
use crate::adapters::mailer::{Mailer, SendError};
use crate::adapters::render::Renderer;
use crate::config::NotificationSettings;
use crate::domain::delivery::AfterFailure;
use crate::domain::{RetryPolicy, Template};

/// The delivery loop of one replica.
pub struct Dispatcher {
    pool: PgPool,
    mailer: Mailer,
    renderer: Renderer,
    settings: NotificationSettings,
    policy: RetryPolicy,
    emails: IntCounterVec,
}

impl Dispatcher {
    /// A dispatcher sending through `mailer`, counting `notification_emails_total`.
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
        Self { pool, mailer, renderer: Renderer::new(), settings, policy, emails }
    }

    /// Sends until `stop`; sends in flight finish first.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut failures = 0u32;
        loop {
            let wait = match deliveries::claim(&self.pool, self.settings.dispatch_batch_size, self.settings.send_lease)
                .await
            {
                Ok(claimed) => {
                    failures = 0;
                    let full = claimed.len() == self.settings.dispatch_batch_size as usize;
                    futures::stream::iter(claimed)
                        .for_each_concurrent(self.settings.dispatch_concurrency, |d| self.deliver(d))
                        .await;
                    if full { Duration::ZERO } else { self.settings.dispatch_interval }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = format!("{e:#}"), "claiming deliveries failed");
                    (self.settings.dispatch_interval * 2u32.pow(failures.min(6))).min(Duration::from_secs(10))
                }
            };
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn deliver(&self, delivery: Claimed) {
        let span = tracing::info_span!("notification.deliver", delivery.id = %delivery.id,
            delivery.template = %delivery.template, delivery.attempt = delivery.attempts);
        self.deliver_in_span(delivery).instrument(span).await;
    }

    async fn deliver_in_span(&self, delivery: Claimed) {
        let outcome = self.send(&delivery).await;
        let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
        let (result, recorded) = match &outcome {
            Ok(()) => ("sent", deliveries::mark_sent(&self.pool, &delivery).await),
            Err(e) => match self.policy.after_failure(attempts, e.permanent) {
                AfterFailure::RetryIn(delay) => {
                    tracing::warn!(error = %e.message, retry_in = ?delay, "sending an email failed; will retry");
                    ("retry", deliveries::mark_failed(&self.pool, &delivery, &e.message, Some(delay)).await)
                }
                AfterFailure::GiveUp => {
                    tracing::error!(error = %e.message, permanent = e.permanent, "sending an email failed; giving up");
                    ("failed", deliveries::mark_failed(&self.pool, &delivery, &e.message, None).await)
                }
            },
        };
        self.emails.with_label_values(&[delivery.template.as_str(), result]).inc();
        if let Err(e) = recorded {
            // The claim's lease runs out and the delivery is attempted again.
            tracing::error!(error = format!("{e:#}"), result, "recording a delivery outcome failed");
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
