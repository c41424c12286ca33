//! Postgres, SMTP, templates and QR codes.

pub mod deliveries;
pub mod keys;
pub mod mailer;
pub mod projections;
pub mod qr;
pub mod render;
pub mod tickets;
