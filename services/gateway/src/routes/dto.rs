//! The body types more than one route sends or answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_proto::identity::v1 as identity;
use ticketing_proto::notification::v1 as notification;
use utoipa::ToSchema;

use super::common::instant;

/// A price or amount: ISO 4217 currency and integer minor units (cents), never floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Three upper-case letters, e.g. `EUR`.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    /// e.g. `8900` for 89.00.
    pub minor_units: i64,
}

impl From<ticketing_proto::common::v1::Money> for Money {
    fn from(m: ticketing_proto::common::v1::Money) -> Self {
        Self { currency: m.currency, minor_units: m.minor_units }
    }
}

impl From<Money> for ticketing_proto::common::v1::Money {
    fn from(m: Money) -> Self {
        Self { currency: m.currency, minor_units: m.minor_units }
    }
}

/// A page of a listing and the cursor of the next one (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    /// `user`, `organizer` or `admin`.
    pub role: String,
    /// Whether the account's email is verified; unverified accounts may not hold tickets
    /// or join a queue.
    pub email_verified: bool,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<identity::User> for User {
    fn from(u: identity::User) -> Self {
        let role = match u.role() {
            identity::Role::Organizer => "organizer",
            identity::Role::Admin => "admin",
            _ => "user",
        };
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: role.into(),
            email_verified: u.email_verified,
            created_at: instant(u.created_at),
        }
    }
}

/// A signed ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    pub id: String,
    pub event_id: String,
    pub seat_label: String,
    /// The static code, `<kid>.<payload>.<signature>`: what the emailed QR code encodes,
    /// and what a gate that allows static codes admits.
    pub code: String,
    /// `issued`, `scanned` or `revoked`.
    pub status: String,
    /// The first scan at the gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<DateTime<Utc>>,
    /// How the owner's app shows the rotating code; only in the owner's own listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<TicketRotation>,
}

/// A ticket's rotating code: the app's QR code encodes `<code>~<totp>`, where `totp` is
/// the RFC 6238 value (T0 = 0) of the current time step under these parameters,
/// recomputed each period. A screenshot stops admitting a step or two later.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketRotation {
    /// The ticket's own secret, base32 (RFC 4648, unpadded). Keep it on the device.
    pub secret: String,
    /// Seconds per time step (15).
    pub period_seconds: u32,
    /// Decimal digits of the value (8).
    pub digits: u32,
    /// The HMAC hash (`SHA256`).
    pub algorithm: String,
}

impl From<notification::Ticket> for Ticket {
    fn from(t: notification::Ticket) -> Self {
        let status = match t.status() {
            notification::TicketStatus::Issued => "issued",
            notification::TicketStatus::Scanned => "scanned",
            notification::TicketStatus::Revoked => "revoked",
            notification::TicketStatus::Unspecified => "unknown",
        };
        Self {
            id: t.id,
            event_id: t.event_id,
            seat_label: t.seat_label,
            code: t.code,
            status: status.into(),
            scanned_at: instant(t.scanned_at),
            rotation: t.rotation.map(|r| TicketRotation {
                secret: r.secret,
                period_seconds: r.period_seconds,
                digits: r.digits,
                algorithm: r.algorithm,
            }),
        }
    }
}
