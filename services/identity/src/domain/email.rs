//! Email addresses, normalized so uniqueness is case-insensitive.

use std::fmt;
use std::str::FromStr;

/// A syntactically valid, normalized (trimmed, lower-case) email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Longest address accepted (RFC 5321's path limit).
const MAX_LEN: usize = 254;

impl Email {
    /// Validates and normalizes `raw`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let normalized = raw.trim().to_lowercase();
        if normalized.is_empty() {
            return Err("is required".into());
        }
        if normalized.len() > MAX_LEN {
            return Err(format!("must be at most {MAX_LEN} characters"));
        }
        let address =
            email_address::EmailAddress::from_str(&normalized).map_err(|e| format!("is not a valid address: {e}"))?;
        // Require a dotted domain: `user@localhost` is valid RFC 5322 but never deliverable here.
        if !address.domain().contains('.') || address.domain().starts_with('[') {
            return Err("must have a domain like example.com".into());
        }
        Ok(Self(normalized))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        assert_eq!(Email::parse("  Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
    }

    #[test]
    fn rejects_what_cannot_be_an_address() {
        for bad in ["", "   ", "alice", "alice@", "@example.com", "a b@example.com", "alice@localhost"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
