//! Idempotency keys: the one shape the gateway's `Idempotency-Key` header and the services'
//! `idempotency_key` fields accept, so a key the front door lets through is never refused
//! behind it (which the gateway could only report as a key reused).

/// Longest accepted key, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// What a valid key is, for error messages.
pub const KEY_RULE: &str = "must be 1 to 255 printable ASCII characters";

/// Whether `key` is a valid idempotency key: 1 to [`MAX_KEY_LEN`] printable ASCII
/// characters (space to `~`; no tab or other control character). Where a key is optional,
/// the caller decides what an absent or empty one means.
pub fn is_valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        for good in ["k", "order 42", "550e8400-e29b-41d4-a716-446655440000", &"x".repeat(255), "~!{}"] {
            assert!(is_valid_key(good), "{good:?} was refused");
        }
        for bad in ["", "tab\there", "new\nline", "nul\0", "del\u{7f}", "é", &"x".repeat(256)] {
            assert!(!is_valid_key(bad), "{bad:?} was accepted");
        }
    }
}
