//! Postgres, SMTP, templates, QR codes and printable (PDF) tickets.

pub mod deliveries;
pub mod keys;
pub mod mailer;
pub mod pdf;
pub mod projections;
pub mod qr;
pub mod render;
pub mod tickets;
