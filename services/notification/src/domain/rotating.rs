//! Rotating ticket codes: `"<static code>~<totp>"`, where `totp` is an RFC 6238 value
//! (HMAC-SHA-256, 8 digits, 15 s steps from the Unix epoch) under a secret only the
//! ticket's owner gets. A screenshot carries the value of the step it was taken in, so it
//! stops admitting once that step is more than [`WINDOW`] steps away from the gate's clock.
//!
//! The secret is derived, never stored: HMAC-SHA-256 keyed with the seed of the key that
//! signed the ticket (named by the code's `kid`), over a label and the ticket id. The same
//! ticket therefore always has the same secret, a key rotation leaves issued tickets'
//! secrets alone, and one ticket's secret tells nothing about another's.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// Seconds per time step.
pub const PERIOD_SECONDS: i64 = 15;
/// Decimal digits of a value.
pub const DIGITS: u32 = 8;
/// The HMAC hash, as TOTP apps name it.
pub const ALGORITHM: &str = "SHA256";
/// Steps either side of the gate's that are accepted (clock skew, a scan across a step).
pub const WINDOW: i64 = 1;
/// Between the static code and the time value. Not in base64url's alphabet, so a code
/// that carries one is never mistaken for a static code (or by an old verifier for a
/// valid one).
pub const SEPARATOR: char = '~';

const LABEL: &[u8] = b"ticketing.notification.ticket-rotation.v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The rotating-code secret of ticket `ticket_id`, signed by the key whose seed is `seed`.
pub fn secret(seed: &[u8; 32], ticket_id: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(seed).expect("HMAC takes any key length");
    mac.update(LABEL);
    mac.update(ticket_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The time step `now` falls in.
pub fn step(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(PERIOD_SECONDS)
}

/// The value of `step` under `secret` (RFC 4226 dynamic truncation), zero-padded.
pub fn value(secret: &[u8], step: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([hash[offset] & 0x7f, hash[offset + 1], hash[offset + 2], hash[offset + 3]]);
    format!("{:0width$}", binary % 10u32.pow(DIGITS), width = DIGITS as usize)
}

/// The rotating code of `static_code` at `now`: what the owner's app puts in the QR code.
pub fn code(static_code: &str, secret: &[u8], now: DateTime<Utc>) -> String {
    format!("{static_code}{SEPARATOR}{}", value(secret, step(now)))
}

/// Splits a scanned code into its static part and its time value, if it has one.
pub fn split(code: &str) -> (&str, Option<&str>) {
    let code = code.trim();
    match code.split_once(SEPARATOR) {
        Some((static_code, value)) => (static_code, Some(value)),
        None => (code, None),
    }
}

/// Whether `value` is the value of a step within [`WINDOW`] of `now`'s, compared in
/// constant time.
pub fn is_current(secret: &[u8], value: &str, now: DateTime<Utc>) -> bool {
    if value.len() != DIGITS as usize || !value.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let now = step(now);
    (-WINDOW..=WINDOW).fold(false, |found, delta| {
        found | constant_time_eq(self::value(secret, now + delta).as_bytes(), value.as_bytes())
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in unpadded base32 (RFC 4648), the form TOTP apps take secrets in.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Unpadded base32 (RFC 4648) back to bytes, as a wallet app reads a secret; `None` if
/// `text` is not base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let (mut out, mut buffer, mut bits) = (Vec::with_capacity(text.len() * 5 / 8), 0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn values_match_rfc_6238_for_sha256() {
        // RFC 6238 appendix B: the SHA-256 seed, 30 s steps, 8 digits.
        let seed = b"12345678901234567890123456789012";
        for (time, expected) in [
            (59, "46119246"),
            (1_111_111_109, "68084774"),
            (1_234_567_890, "91819424"),
            (2_000_000_000, "90698825"),
            (20_000_000_000, "77737706"),
        ] {
            assert_eq!(value(seed, time / 30), expected, "T = {time}");
        }
    }

    #[test]
    fn a_value_is_current_for_one_step_either_side_and_no_further() {
        let secret = secret(&[7; 32], "ticket-1");
        let t = 1_800_000_000; // a step boundary: 1_800_000_000 / 15 = 120_000_000
        let shown = value(&secret, step(at(t)));
        for now in [t - 15, t - 1, t, t + 14, t + 15, t + 29] {
            assert!(is_current(&secret, &shown, at(now)), "at {now}");
        }
        for now in [t - 16, t + 30, t + 45, t + 3600] {
            assert!(!is_current(&secret, &shown, at(now)), "a screenshot still admits at {now}");
        }
        assert!(!is_current(&secret, "1234567", at(t)));
        assert!(!is_current(&secret, "abcdefgh", at(t)));
        assert!(!is_current(&super::secret(&[8; 32], "ticket-1"), &shown, at(t)), "another key's secret");
        assert!(!is_current(&super::secret(&[7; 32], "ticket-2"), &shown, at(t)), "another ticket's secret");
    }

    #[test]
    fn a_rotating_code_splits_into_the_static_code_and_its_value() {
        let secret = secret(&[7; 32], "ticket-1");
        let code = code("kid.payload.signature", &secret, at(1_800_000_000));
        let (static_code, shown) = split(&code);
        assert_eq!(static_code, "kid.payload.signature");
        assert!(is_current(&secret, shown.unwrap(), at(1_800_000_000)));
        assert_eq!(split(" kid.payload.signature "), ("kid.payload.signature", None));
    }

    #[test]
    fn base32_is_rfc_4648_unpadded() {
        for (input, expected) in
            [("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"), ("fooba", "MZXW6YTB")]
        {
            assert_eq!(base32(input.as_bytes()), expected);
            assert_eq!(from_base32(expected).unwrap(), input.as_bytes());
        }
        assert_eq!(from_base32("MZXW6=="), None);
        assert_eq!(base32(&[0xff; 32]).len(), 52);
    }
}
