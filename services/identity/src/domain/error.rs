//! The errors identity's use cases return; `grpc::convert` maps each to a status once.

use std::time::Duration;

pub use ticketing_platform::status::FieldViolation;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Input broke the rules; every bad field is listed.
    #[error("invalid request: {}", ticketing_platform::status::describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// Unknown email or wrong password: deliberately indistinguishable.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A workload presented unknown client credentials.
    #[error("invalid client credentials")]
    InvalidClientCredentials,
    /// Too many failed logins; try again later.
    #[error("too many failed login attempts; retry in {}s", .retry_after.as_millis().div_ceil(1000).max(1))]
    Throttled {
        /// When another attempt is allowed.
        retry_after: Duration,
    },
    /// The refresh token is unknown, expired or revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A rotated refresh token was presented again: its family is revoked.
    #[error("refresh token reuse detected; all sessions of this login were revoked")]
    RefreshTokenReused,
    /// The email verification token is unknown, used or expired.
    #[error("this verification link is unknown, used or expired; ask for a new one")]
    InvalidVerificationToken,
    /// The password confirming a change to the caller's own account is wrong.
    #[error("the password is wrong")]
    WrongPassword,
    /// The password reset token is unknown, used or expired.
    #[error("this password reset link is unknown, used or expired; ask for a new one")]
    InvalidResetToken,
    /// The caller has no such session.
    #[error("session not found")]
    SessionNotFound,
    /// No such user.
    #[error("user not found")]
    UserNotFound,
    /// No such signing key.
    #[error("signing key not found")]
    SigningKeyNotFound,
    /// The change would leave no admin.
    #[error("the last admin cannot be demoted or deleted")]
    LastAdmin,
    /// No OpenID provider of that name is configured.
    #[error("unknown sign-in provider")]
    UnknownProvider,
    /// The state of a social login is unknown, used or expired.
    #[error("this sign-in is unknown, used or expired; start again")]
    InvalidOidcState,
    /// The provider refused the code, or its answer did not verify.
    #[error("the sign-in provider did not confirm this sign-in: {0}")]
    OidcRejected(String),
    /// The provider shared no usable email address, so no account can be found or made.
    #[error("the sign-in provider shared no email address; allow it to, or register with a password")]
    OidcNoEmail,
    /// The provider's email belongs to an account the login may not be linked to: the
    /// provider does not vouch for the address, or our account never verified it.
    #[error(
        "an account with this email exists, and it can be linked only when both the provider and the account have \
         verified the address; sign in with your password instead"
    )]
    OidcAccountConflict,
    /// The provider could not be reached or answered nonsense.
    #[error("the sign-in provider failed; try again later")]
    OidcProviderFailed(#[source] anyhow::Error),
    /// A dependency failed; the caller may retry.
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl IdentityError {
    /// A single-field validation error.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<anyhow::Error> for IdentityError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unavailable(e)
    }
}
