//! Email templates: subject, plain text and HTML per template, embedded at compile time
//! and rendered with minijinja (HTML auto-escaped), plus the QR images tickets show inline
//! and the tickets' PDF attached.

use anyhow::Context as _;
use minijinja::{Environment, UndefinedBehavior};

use super::pdf::{Booklet, PrintedTicket};
use crate::domain::Template;

/// The template sources, by file name.
const SOURCES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("welcome.subject", include_str!("../../templates/welcome.subject")),
    ("welcome.txt", include_str!("../../templates/welcome.txt")),
    ("welcome.html", include_str!("../../templates/welcome.html")),
    ("booking_confirmed.subject", include_str!("../../templates/booking_confirmed.subject")),
    ("booking_confirmed.txt", include_str!("../../templates/booking_confirmed.txt")),
    ("booking_confirmed.html", include_str!("../../templates/booking_confirmed.html")),
    ("booking_cancelled.subject", include_str!("../../templates/booking_cancelled.subject")),
    ("booking_cancelled.txt", include_str!("../../templates/booking_cancelled.txt")),
    ("booking_cancelled.html", include_str!("../../templates/booking_cancelled.html")),
    ("booking_expired.subject", include_str!("../../templates/booking_expired.subject")),
    ("booking_expired.txt", include_str!("../../templates/booking_expired.txt")),
    ("booking_expired.html", include_str!("../../templates/booking_expired.html")),
    ("refund_succeeded.subject", include_str!("../../templates/refund_succeeded.subject")),
    ("refund_succeeded.txt", include_str!("../../templates/refund_succeeded.txt")),
    ("refund_succeeded.html", include_str!("../../templates/refund_succeeded.html")),
    ("registration_attempted.subject", include_str!("../../templates/registration_attempted.subject")),
    ("registration_attempted.txt", include_str!("../../templates/registration_attempted.txt")),
    ("registration_attempted.html", include_str!("../../templates/registration_attempted.html")),
    ("verify_email.subject", include_str!("../../templates/verify_email.subject")),
    ("verify_email.txt", include_str!("../../templates/verify_email.txt")),
    ("verify_email.html", include_str!("../../templates/verify_email.html")),
    ("reset_password.subject", include_str!("../../templates/reset_password.subject")),
    ("reset_password.txt", include_str!("../../templates/reset_password.txt")),
    ("reset_password.html", include_str!("../../templates/reset_password.html")),
    ("password_changed.subject", include_str!("../../templates/password_changed.subject")),
    ("password_changed.txt", include_str!("../../templates/password_changed.txt")),
    ("password_changed.html", include_str!("../../templates/password_changed.html")),
];

/// A rendered email, ready to be sent.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// Images the HTML shows by `cid:`.
    pub images: Vec<InlineImage>,
    /// Files attached to the message.
    pub attachments: Vec<FileAttachment>,
}

/// A file attached to an email.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    /// The name a client saves it as.
    pub filename: String,
    /// Its MIME type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: Vec<u8>,
}

/// A PNG shown inline.
#[derive(Debug, Clone)]
pub struct InlineImage {
    /// The Content-ID the HTML refers to.
    pub content_id: String,
    /// The file name a client shows when it lists attachments.
    pub filename: String,
    /// The image.
    pub png: Vec<u8>,
}

/// Renders the embedded templates.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    /// Loads every template; a syntax error is a bug, caught by the tests.
    pub fn new() -> Self {
        let mut env = Environment::new();
        // A variable the context lacks is an error, not an empty string in a customer's inbox.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in SOURCES {
            env.add_template(name, source).expect("embedded templates are valid");
        }
        Self { env }
    }

    /// Renders `template` with `context`. Tickets in the context (`tickets[].id`,
    /// `tickets[].code`) become inline QR images, referred to as `tickets[].cid`, and a
    /// PDF attachment with a page each.
    pub fn render(&self, template: Template, context: &serde_json::Value) -> anyhow::Result<Rendered> {
        let attachments = booklet(context).map(printed).transpose()?.into_iter().collect();
        let mut context = context.clone();
        let mut images = Vec::new();
        if let Some(tickets) = context.get_mut("tickets").and_then(serde_json::Value::as_array_mut) {
            for (i, ticket) in tickets.iter_mut().enumerate() {
                let id = ticket.get("id").and_then(serde_json::Value::as_str).context("a ticket without an id")?;
                let code = ticket.get("code").and_then(serde_json::Value::as_str).context("a ticket without a code")?;
                let content_id = format!("ticket-{id}@ticketing");
                images.push(InlineImage {
                    png: super::qr::png(code)?,
                    filename: format!("ticket-{}.png", i + 1),
                    content_id: content_id.clone(),
                });
                ticket["cid"] = content_id.into();
            }
        }
        let context = minijinja::Value::from(minijinja::value::Serde(&context));
        let render = |kind: &str| -> anyhow::Result<String> {
            let name = format!("{template}.{kind}");
            let source = self.env.get_template(&name).with_context(|| format!("template {name} is missing"))?;
            source.render(&context).with_context(|| format!("rendering {name}"))
        };
        // Headers are one line: whatever a user put in their name cannot add another.
        let subject = render("subject")?.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Rendered { subject, text: render("txt")?, html: render("html")?, images, attachments })
    }
}

/// The printed tickets of a context with tickets (`event_name`, `venue`, `starts`,
/// `booking_id`, `holder` and `tickets[].{id, label, code}`; what a delivery logged before
/// a field existed lacks prints without it).
fn booklet(context: &serde_json::Value) -> Option<Booklet> {
    let text = |value: &serde_json::Value, key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let tickets = context.get("tickets")?.as_array()?;
    Some(Booklet {
        event_name: text(context, "event_name"),
        venue: text(context, "venue"),
        starts: text(context, "starts"),
        booking_id: text(context, "booking_id"),
        holder: text(context, "holder"),
        tickets: tickets
            .iter()
            .map(|t| PrintedTicket { id: text(t, "id"), label: text(t, "label"), code: text(t, "code") })
            .collect(),
    })
}

fn printed(booklet: Booklet) -> anyhow::Result<FileAttachment> {
    let body = super::pdf::render(&booklet).context("printing the tickets")?;
    Ok(FileAttachment {
        filename: format!("tickets-{}.pdf", booklet.booking_id),
        content_type: "application/pdf",
        body,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn context(template: Template) -> serde_json::Value {
        let base = json!({ "name": "Ada <b>Lovelace</b>", "email": "ada@example.com", "booking_id": "b-1",
                           "event_name": "Eras & Co", "starts": "2026-12-01 20:00 (Europe/Berlin)",
                           "total": "EUR 100.00", "reason": "the payment failed", "amount": "EUR 50.00",
                           "full": true, "link": "https://tickets.example.com/verify-email?token=abc",
                           "token": "abc", "expires": "2026-12-02 20:00 UTC",
                           "changed_at": "2026-12-02 19:00 UTC", "by_reset": true });
        let mut context = base;
        if template == Template::BookingConfirmed {
            context["tickets"] = json!([
                { "id": "t1", "label": "Row 1, Seat 1", "code": "k.payload1.sig" },
                { "id": "t2", "label": "Row 1, Seat 2", "code": "k.payload2.sig" },
            ]);
        }
        context
    }

    #[test]
    fn every_template_renders_and_html_is_escaped() {
        let renderer = Renderer::new();
        for template in Template::ALL {
            let rendered = renderer.render(template, &context(template)).unwrap();
            assert!(!rendered.subject.is_empty() && !rendered.subject.contains('\n'), "{template}: subject");
            assert!(rendered.text.contains("Ada <b>Lovelace</b>"), "{template}: text is not escaped");
            assert!(rendered.html.contains("Ada &lt;b&gt;Lovelace"), "{template}: html is escaped");
            assert!(!rendered.html.contains("<b>Lovelace"), "{template}: html injection");
        }
    }

    #[test]
    fn tickets_become_inline_qr_images_the_html_refers_to() {
        let rendered =
            Renderer::new().render(Template::BookingConfirmed, &context(Template::BookingConfirmed)).unwrap();
        assert_eq!(rendered.subject, "Your 2 tickets for Eras & Co");
        assert_eq!(rendered.images.len(), 2);
        for image in &rendered.images {
            assert!(rendered.html.contains(&format!("cid:{}", image.content_id)));
            assert!(image.png.starts_with(b"\x89PNG"));
        }
        assert!(rendered.text.contains("Code: k.payload2.sig"));
        let [pdf] = &rendered.attachments[..] else { panic!("one PDF attached") };
        assert_eq!((pdf.filename.as_str(), pdf.content_type), ("tickets-b-1.pdf", "application/pdf"));
        assert!(pdf.body.starts_with(b"%PDF-"));
        let other = Renderer::new().render(Template::Welcome, &context(Template::Welcome)).unwrap();
        assert!(other.attachments.is_empty(), "only tickets are printed");
    }

    #[test]
    fn a_missing_variable_is_an_error() {
        let error = Renderer::new().render(Template::Welcome, &json!({ "name": "Ada" })).unwrap_err();
        assert!(format!("{error:#}").contains("welcome"), "{error:#}");
    }
}
