//! Proto ↔ domain conversions and the one mapping from [`IdentityError`] to `Status`.

use ticketing_kernel::time::to_proto;
use ticketing_platform::auth::Role;
use ticketing_proto::identity::v1 as pb;
use tonic::{Code, Status};

use crate::adapters::refresh::Session;
use crate::domain::user::User;
use crate::domain::{FieldViolation, IdentityError};
use crate::service::TokenPair;

impl From<IdentityError> for Status {
    fn from(e: IdentityError) -> Self {
        let message = e.to_string();
        match e {
            IdentityError::Invalid(violations) => ticketing_platform::status::invalid_argument(&message, &violations),
            IdentityError::InvalidCredentials
            | IdentityError::InvalidClientCredentials
            | IdentityError::InvalidRefreshToken
            | IdentityError::RefreshTokenReused => Status::unauthenticated(message),
            IdentityError::Throttled { retry_after } => {
                ticketing_platform::status::retry_after(Code::ResourceExhausted, message, retry_after)
            }
            IdentityError::InvalidVerificationToken => ticketing_platform::status::invalid_argument(
                &message,
                &[FieldViolation::new("token", "unknown, used or expired")],
            ),
            IdentityError::InvalidResetToken => ticketing_platform::status::invalid_argument(
                &message,
                &[FieldViolation::new("token", "unknown, used or expired")],
            ),
            // The caller is signed in: a 401 would send clients off to refresh their tokens.
            IdentityError::WrongPassword => Status::permission_denied(message),
            IdentityError::UserNotFound | IdentityError::SigningKeyNotFound | IdentityError::SessionNotFound => {
                Status::not_found(message)
            }
            IdentityError::LastAdmin => Status::failed_precondition(message),
            IdentityError::UnknownProvider => Status::not_found(message),
            IdentityError::InvalidOidcState => ticketing_platform::status::invalid_argument(
                &message,
                &[FieldViolation::new("state", "unknown, used or expired")],
            ),
            IdentityError::OidcRejected(_) => Status::unauthenticated(message),
            IdentityError::OidcNoEmail | IdentityError::OidcAccountConflict => Status::failed_precondition(message),
            IdentityError::OidcProviderFailed(source) => {
                tracing::warn!(error = format!("{source:#}"), "an OpenID provider failed");
                provider_failed(message)
            }
            IdentityError::Unavailable(source) => {
                tracing::error!(error = format!("{source:#}"), "identity dependency failed");
                Status::unavailable(message)
            }
        }
    }
}

/// `UNAVAILABLE` naming [`OIDC_PROVIDER_FAILED`](ticketing_platform::status::OIDC_PROVIDER_FAILED)
/// in an `ErrorInfo`, so the gateway answers 502 (the failure is a third party's), and with
/// a `RetryInfo`, so the gateway's breaker does not hold identity responsible and pause
/// every other call to it.
fn provider_failed(message: String) -> Status {
    use tonic_types::{ErrorDetails, StatusExt as _};
    let mut details = ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(5)));
    details.set_error_info(
        ticketing_platform::status::OIDC_PROVIDER_FAILED,
        ticketing_platform::status::REFUSAL_DOMAIN,
        std::collections::HashMap::new(),
    );
    Status::with_error_details(Code::Unavailable, message, details)
}

/// The proto role for a domain role.
pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::User => pb::Role::User,
        Role::Organizer => pb::Role::Organizer,
        Role::Admin => pb::Role::Admin,
        // Workload identities are not user accounts; the users table cannot hold one.
        Role::Service => pb::Role::Unspecified,
    }
}

/// The domain role for a proto role value; unspecified and unknown values are refused.
pub fn role_from_proto(value: i32) -> Result<Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::User) => Ok(Role::User),
        Ok(pb::Role::Organizer) => Ok(Role::Organizer),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        _ => Err(ticketing_platform::status::invalid_argument(
            "invalid role",
            &[ticketing_platform::status::FieldViolation::new(
                "role",
                "must be ROLE_USER, ROLE_ORGANIZER or ROLE_ADMIN",
            )],
        )),
    }
}

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            display_name: user.display_name,
            role: role_to_proto(user.role).into(),
            email_verified: user.email_verified,
            created_at: Some(to_proto(user.created_at)),
            updated_at: Some(to_proto(user.updated_at)),
        }
    }
}

/// The proto session for `session`, `current` when the caller's token belongs to it.
pub fn session_to_proto(session: Session, current: bool) -> pb::Session {
    pb::Session {
        id: session.id,
        created_at: Some(to_proto(session.created_at)),
        last_used_at: Some(to_proto(session.last_used_at)),
        client_address: session.address.unwrap_or_default(),
        user_agent: session.user_agent.unwrap_or_default(),
        current,
    }
}

impl From<TokenPair> for pb::TokenPair {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            access_token_expires_at: Some(to_proto(pair.access_expires_at)),
            refresh_token: pair.refresh_token,
            refresh_token_expires_at: Some(to_proto(pair.refresh_expires_at)),
            token_type: "Bearer".into(),
        }
    }
}
