//! Deliveries: which message a consumed event causes, where it stands, and when a
//! failed one is tried again.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Namespace of delivery ids: UUID v5 of `"<source event id>/<template>"`.
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x1f5c_0b7e_9a41_4c2e_8d3b_6e0a_d311_7a01);

/// The emails notification sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// After `UserRegistered`.
    Welcome,
    /// The tickets, after `BookingConfirmed`.
    BookingConfirmed,
    /// After `BookingCancelled` (an unpaid booking, e.g. a declined card).
    BookingCancelled,
    /// After `BookingExpired` (the hold ran out before payment).
    BookingExpired,
    /// After `RefundSucceeded`.
    RefundSucceeded,
    /// After `RegistrationAttempted`: someone tried to register the owner's address.
    RegistrationAttempted,
    /// After `EmailVerificationRequested`: the link that verifies the address.
    VerifyEmail,
    /// After `PasswordResetRequested`: the link that sets a new password.
    ResetPassword,
    /// After `PasswordChanged`: the owner learns of a change they may not have made.
    PasswordChanged,
}

impl Template {
    /// Every template.
    pub const ALL: [Self; 9] = [
        Self::Welcome,
        Self::BookingConfirmed,
        Self::BookingCancelled,
        Self::BookingExpired,
        Self::RefundSucceeded,
        Self::RegistrationAttempted,
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::PasswordChanged,
    ];

    /// The name stored in the log, used in metrics and as the template file stem.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::BookingConfirmed => "booking_confirmed",
            Self::BookingCancelled => "booking_cancelled",
            Self::BookingExpired => "booking_expired",
            Self::RefundSucceeded => "refund_succeeded",
            Self::RegistrationAttempted => "registration_attempted",
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::PasswordChanged => "password_changed",
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Template {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown template {s:?}"))
    }
}

/// The delivery caused by `source_event` with `template`: the same on every redelivery
/// and every replica, so the log's primary key refuses a second one.
pub fn delivery_id(source_event: Uuid, template: Template) -> Uuid {
    Uuid::new_v5(&DELIVERY_NAMESPACE, format!("{source_event}/{template}").as_bytes())
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not attempted yet (or its first attempt is in flight).
    Pending,
    /// Failed at least once; will be tried again.
    Retrying,
    /// The SMTP server accepted it.
    Sent,
    /// Gave up: permanent refusal or attempts exhausted.
    Failed,
}

impl DeliveryStatus {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Pending, Self::Retrying, Self::Sent, Self::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown delivery status {s:?}"))
    }
}

/// One logged delivery, as GetDeliveryStatus shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id (UUID v5 of source event and template), also the Message-ID.
    pub id: Uuid,
    /// The template name.
    pub template: String,
    /// The address it goes to.
    pub recipient: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts started.
    pub attempts: u32,
    /// When the server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// The latest failure.
    pub last_error: Option<String>,
    /// The envelope id of the event that caused it.
    pub source_event_id: Uuid,
    /// The booking it is about.
    pub booking_id: Option<Uuid>,
    /// When it was logged.
    pub created_at: DateTime<Utc>,
}

/// When a failed delivery is tried again, and when it is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before FAILED.
    pub max_attempts: u32,
    /// Delay after the first failure; doubles after each further one.
    pub backoff: Duration,
    /// Longest delay.
    pub max_backoff: Duration,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after the delay.
    RetryIn(Duration),
    /// Give up.
    GiveUp,
}

impl RetryPolicy {
    /// The decision after attempt number `attempts` (1-based) failed; `permanent`
    /// failures (the server refused the message for good) are never retried.
    pub fn after_failure(&self, attempts: u32, permanent: bool) -> AfterFailure {
        if permanent || attempts >= self.max_attempts {
            return AfterFailure::GiveUp;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        AfterFailure::RetryIn(self.backoff.saturating_mul(1 << doublings).min(self.max_backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_deterministic_per_event_and_template() {
        let event = Uuid::new_v4();
        assert_eq!(delivery_id(event, Template::Welcome), delivery_id(event, Template::Welcome));
        assert_ne!(delivery_id(event, Template::Welcome), delivery_id(event, Template::BookingConfirmed));
        assert_ne!(delivery_id(event, Template::Welcome), delivery_id(Uuid::new_v4(), Template::Welcome));
    }

    #[test]
    fn names_round_trip() {
        for template in Template::ALL {
            assert_eq!(template.as_str().parse::<Template>(), Ok(template));
        }
        for status in [DeliveryStatus::Pending, DeliveryStatus::Retrying, DeliveryStatus::Sent, DeliveryStatus::Failed]
        {
            assert_eq!(status.as_str().parse::<DeliveryStatus>(), Ok(status));
        }
        assert!("nope".parse::<Template>().is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_attempts_are_bounded() {
        let policy =
            RetryPolicy { max_attempts: 5, backoff: Duration::from_secs(5), max_backoff: Duration::from_secs(30) };
        let delays: Vec<_> = (1..=5).map(|n| policy.after_failure(n, false)).collect();
        assert_eq!(
            delays,
            [
                AfterFailure::RetryIn(Duration::from_secs(5)),
                AfterFailure::RetryIn(Duration::from_secs(10)),
                AfterFailure::RetryIn(Duration::from_secs(20)),
                AfterFailure::RetryIn(Duration::from_secs(30)),
                AfterFailure::GiveUp,
            ]
        );
        assert_eq!(policy.after_failure(1, true), AfterFailure::GiveUp);
        let long = RetryPolicy { max_attempts: 100, ..policy };
        assert_eq!(long.after_failure(99, false), AfterFailure::RetryIn(Duration::from_secs(30)));
    }
}
