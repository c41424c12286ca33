//! The events identity publishes on `identity.events`, each in its envelope keyed by the user.

use chrono::{DateTime, Utc};
use ticketing_platform::auth::Role;
use ticketing_platform::events::envelope;
use ticketing_proto::events::v1::{
    EmailVerificationRequested, Envelope, PasswordChanged, PasswordResetRequested, RegistrationAttempted, UserDeleted,
    UserRegistered, UserRoleChanged,
};

use crate::domain::user::User;

/// `user` has an account.
pub fn registered(user: &User) -> Envelope {
    envelope(
        user.id.to_string(),
        &UserRegistered {
            user_id: user.id.to_string(),
            email: user.email.to_string(),
            display_name: user.display_name.clone(),
            role: user.role.to_string(),
        },
    )
}

/// Someone tried to register `owner`'s address.
pub fn registration_attempted(owner: &User) -> Envelope {
    envelope(
        owner.id.to_string(),
        &RegistrationAttempted {
            user_id: owner.id.to_string(),
            email: owner.email.to_string(),
            display_name: owner.display_name.clone(),
        },
    )
}

/// `user` is to be mailed `token`, which proves their address until `expires_at`.
pub fn verification_requested(user: &User, token: String, expires_at: DateTime<Utc>) -> Envelope {
    let event = EmailVerificationRequested {
        user_id: user.id.to_string(),
        email: user.email.to_string(),
        display_name: user.display_name.clone(),
        token,
        expires_at: Some(prost_types::Timestamp { seconds: expires_at.timestamp(), nanos: 0 }),
    };
    envelope(user.id.to_string(), &event)
}

/// `user` is to be mailed `token`, which sets a new password until `expires_at`.
pub fn password_reset_requested(user: &User, token: String, expires_at: DateTime<Utc>) -> Envelope {
    let event = PasswordResetRequested {
        user_id: user.id.to_string(),
        email: user.email.to_string(),
        display_name: user.display_name.clone(),
        token,
        expires_at: Some(prost_types::Timestamp { seconds: expires_at.timestamp(), nanos: 0 }),
    };
    envelope(user.id.to_string(), &event)
}

/// `user`'s password was changed at `at`, through a reset link when `by_reset`.
pub fn password_changed(user: &User, by_reset: bool, at: DateTime<Utc>) -> Envelope {
    let event = PasswordChanged {
        user_id: user.id.to_string(),
        email: user.email.to_string(),
        display_name: user.display_name.clone(),
        changed_at: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 }),
        by_reset,
    };
    envelope(user.id.to_string(), &event)
}

/// The user `id` deleted their account.
pub fn user_deleted(id: uuid::Uuid) -> Envelope {
    envelope(id.to_string(), &UserDeleted { user_id: id.to_string() })
}

/// `actor` changed `user`'s role to `role`.
pub fn role_changed(user: &User, role: Role, actor: uuid::Uuid) -> Envelope {
    let event = UserRoleChanged {
        user_id: user.id.to_string(),
        old_role: user.role.to_string(),
        new_role: role.to_string(),
        changed_by: actor.to_string(),
    };
    envelope(user.id.to_string(), &event)
}
