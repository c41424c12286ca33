//! The password policy. Hashing lives in `adapters::hasher`.

/// Longest password accepted, in characters; bounds the cost of hashing.
pub const MAX_LEN: usize = 128;

/// Passwords too common to allow whatever their length (a deliberately small list;
/// a breached-password check belongs in front of it in production).
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "123456789012",
    "qwertyuiop",
    "iloveyou",
    "letmein",
    "changeme",
    "admin",
    "administrator",
    "welcome",
    "passw0rd",
    "correcthorsebatterystaple",
    "qwerty123456",
    "111111111111",
    "000000000000",
    "abcdefghijkl",
    "ticketing",
];

/// Whether `password` is, ignoring case, on the common list or a repetition of one entry.
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    !lower.is_empty()
        && COMMON.iter().any(|c| lower.len().is_multiple_of(c.len()) && lower == c.repeat(lower.len() / c.len()))
}

/// Every rule `password` breaks, for an account whose email has `local_part`.
pub fn violations(password: &str, min_len: usize, local_part: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let chars = password.chars().count();
    if chars < min_len {
        problems.push(format!("must be at least {min_len} characters"));
    }
    if chars > MAX_LEN {
        problems.push(format!("must be at most {MAX_LEN} characters"));
    }
    if password.chars().any(char::is_control) {
        problems.push("must not contain control characters".into());
    }
    let distinct: std::collections::HashSet<char> = password.chars().collect();
    if chars >= min_len && distinct.len() < 5 {
        problems.push("must use at least 5 different characters".into());
    }
    if is_common(password) {
        problems.push("is too common".into());
    }
    if local_part.chars().count() >= 4 && password.to_lowercase().contains(&local_part.to_lowercase()) {
        problems.push("must not contain the email address".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_long_varied_password() {
        assert!(violations("correct-horse-battery", 12, "alice").is_empty());
    }

    #[test]
    fn lists_every_broken_rule() {
        assert_eq!(violations("short", 12, "alice"), vec!["must be at least 12 characters"]);
        assert!(
            violations("aaaaaaaaaaaaaaaa", 12, "alice")
                .contains(&"must use at least 5 different characters".to_owned())
        );
        assert!(violations("Password123", 8, "bob").contains(&"is too common".to_owned()));
        assert!(violations("alice-the-great!", 12, "alice").contains(&"must not contain the email address".to_owned()));
        assert!(violations(&"x1y2z3".repeat(30), 12, "bob").contains(&"must be at most 128 characters".to_owned()));
    }

    #[test]
    fn repeated_common_words_are_common() {
        assert!(is_common("letmeinletmein"));
        assert!(!is_common("letmein-please-now"));
    }
}
