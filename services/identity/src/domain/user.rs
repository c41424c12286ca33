//! Users and their profile fields.

use chrono::{DateTime, Utc};
use ticketing_platform::auth::Role;

use super::email::Email;

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 100;

/// A stored account (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: uuid::Uuid,
    /// Normalized email.
    pub email: Email,
    /// Name shown to others.
    pub display_name: String,
    /// The account's role.
    pub role: Role,
    /// Whether the user proved they read `email`.
    pub email_verified: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last profile or role change.
    pub updated_at: DateTime<Utc>,
}

/// Validates and trims a display name; an empty one falls back to `fallback`.
pub fn display_name(raw: &str, fallback: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let name = if trimmed.is_empty() { fallback.trim() } else { trimmed };
    if name.is_empty() {
        return Err("is required".into());
    }
    if name.chars().count() > DISPLAY_NAME_MAX {
        return Err(format!("must be at most {DISPLAY_NAME_MAX} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_bounded_and_defaulted() {
        assert_eq!(display_name("  Ann  ", "x").unwrap(), "Ann");
        assert_eq!(display_name("", "ann").unwrap(), "ann");
        assert!(display_name(&"a".repeat(101), "x").is_err());
        assert!(display_name("a\u{0}b", "x").is_err());
    }
}
