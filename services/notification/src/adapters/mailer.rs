//! Sending email over SMTP with lettre (pooled connections; plain, STARTTLS or TLS with
//! rustls and the Mozilla roots; optional AUTH).

use anyhow::Context as _;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use super::render::Rendered;
use crate::config::{SmtpSecurity, SmtpSettings};

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// The server refused the message for good (5xx), or it cannot be built: retrying
    /// would fail the same way.
    pub permanent: bool,
    /// What went wrong, for `last_error`.
    pub message: String,
}

impl SendError {
    fn permanent(message: impl Into<String>) -> Self {
        Self { permanent: true, message: message.into() }
    }
}

/// The SMTP client.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A client of `smtp` sending as `from` (validated by the configuration). Connects lazily.
    pub fn new(from: &str, smtp: &SmtpSettings) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse().context("notification.from")?;
        let builder = match smtp.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                .context("setting up STARTTLS for notification.smtp.host")?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .context("setting up TLS for notification.smtp.host")?,
        };
        let mut builder =
            builder.port(smtp.port).timeout(Some(smtp.timeout)).pool_config(PoolConfig::new().max_size(smtp.pool_size));
        if !smtp.username.is_empty() {
            builder = builder.credentials(Credentials::new(smtp.username.clone(), smtp.password.clone()));
        }
        Ok(Self { transport: builder.build(), from })
    }

    /// The Message-ID of a delivery: the same on every attempt, so a message sent twice
    /// (a crash between the send and recording it) is recognisably one message.
    pub fn message_id(&self, delivery: uuid::Uuid) -> String {
        format!("<{delivery}@{}>", self.from.email.domain())
    }

    /// Builds the message: plain text and HTML alternatives, the HTML with its inline
    /// images, and any attachments beside them (`multipart/mixed`).
    pub fn compose(&self, delivery: uuid::Uuid, to: &str, email: Rendered) -> Result<Message, SendError> {
        let to: Mailbox = to.parse().map_err(|e| SendError::permanent(format!("bad recipient {to:?}: {e}")))?;
        let html = SinglePart::html(email.html);
        let html = if email.images.is_empty() {
            MultiPart::alternative().singlepart(SinglePart::plain(email.text)).singlepart(html)
        } else {
            let png = ContentType::parse("image/png").expect("a valid content type");
            let related = email.images.into_iter().fold(MultiPart::related().singlepart(html), |related, image| {
                related.singlepart(
                    Attachment::new_inline_with_name(image.content_id, image.filename).body(image.png, png.clone()),
                )
            });
            MultiPart::alternative().singlepart(SinglePart::plain(email.text)).multipart(related)
        };
        let body = if email.attachments.is_empty() {
            html
        } else {
            email.attachments.into_iter().fold(MultiPart::mixed().multipart(html), |mixed, file| {
                let kind = ContentType::parse(file.content_type).expect("attachments carry static, valid types");
                mixed.singlepart(Attachment::new(file.filename).body(file.body, kind))
            })
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .message_id(Some(self.message_id(delivery)))
            .date_now()
            .multipart(body)
            .map_err(|e| SendError::permanent(format!("building the message: {e}")))
    }

    /// Hands `message` to the server.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(SendError { permanent: e.is_permanent(), message: error_chain(&e) }),
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::render::{FileAttachment, InlineImage, Rendered};

    // The connection pool runs on Tokio, so building a transport needs a runtime.
    #[tokio::test]
    async fn every_security_mode_builds_a_transport() {
        for security in [SmtpSecurity::None, SmtpSecurity::Starttls, SmtpSecurity::Tls] {
            let smtp = SmtpSettings {
                host: "smtp.example.com".into(),
                security,
                username: "mailer".into(),
                password: "secret".into(),
                ..SmtpSettings::default()
            };
            assert!(Mailer::new("Tickets <tickets@example.com>", &smtp).is_ok(), "{security:?}");
        }
    }

    #[tokio::test]
    async fn a_message_has_text_html_and_its_images_and_a_stable_message_id() {
        let mailer = Mailer::new("Tickets <tickets@example.com>", &SmtpSettings::default()).unwrap();
        let delivery = uuid::Uuid::new_v4();
        let email = Rendered {
            subject: "Your tickets".into(),
            text: "plain".into(),
            html: "<p>html</p>".into(),
            images: vec![InlineImage {
                content_id: "t1@ticketing".into(),
                filename: "ticket-1.png".into(),
                png: vec![1],
            }],
            attachments: vec![FileAttachment {
                filename: "tickets-b.pdf".into(),
                content_type: "application/pdf",
                body: b"%PDF-1.7".to_vec(),
            }],
        };
        let message = mailer.compose(delivery, "ada@example.com", email).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains(&format!("Message-ID: <{delivery}@example.com>")), "{raw}");
        for part in
            ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "multipart/related", "image/png"]
        {
            assert!(raw.contains(part), "{part} missing:\n{raw}");
        }
        assert!(raw.contains("Content-ID: <t1@ticketing>"), "{raw}");
        assert!(raw.contains("Content-Disposition: attachment; filename=\"tickets-b.pdf\""), "{raw}");
        let bad = Rendered {
            subject: String::new(),
            text: String::new(),
            html: String::new(),
            images: vec![],
            attachments: vec![],
        };
        let refused = mailer.compose(delivery, "not an address", bad).unwrap_err();
        assert!(refused.permanent, "a bad address never becomes good");
    }
}
