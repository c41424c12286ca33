//! Ticket codes: `"<kid>.<payload>.<signature>"`, where `payload` is the unpadded
//! base64url encoding of a protobuf `TicketCodePayload` and `signature` the unpadded
//! base64url Ed25519 signature of the ASCII bytes `"<kid>.<payload>"` (the contract in
//! `notification.proto`). A gate holding the public keys verifies a code offline.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use prost::Message as _;
use ticketing_proto::notification::v1::TicketCodePayload;

/// Why a code is refused: all of these answer INVALID_SIGNATURE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not three dot-separated base64url parts, or a part does not decode.
    #[error("malformed ticket code")]
    Malformed,
    /// The signature does not match the key.
    #[error("bad signature")]
    BadSignature,
    /// Correctly signed, but the payload is not a `TicketCodePayload`.
    #[error("undecodable payload")]
    BadPayload,
}

/// Signs `payload` with `key`, known to verifiers as `kid` (which must not contain a dot).
pub fn sign(kid: &str, key: &SigningKey, payload: &TicketCodePayload) -> String {
    debug_assert!(!kid.contains('.'), "a kid with a dot cannot be parsed back");
    let signed = format!("{kid}.{}", URL_SAFE_NO_PAD.encode(payload.encode_to_vec()));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A code split into its parts, not yet verified.
#[derive(Debug, Clone)]
pub struct ParsedCode<'a> {
    kid: &'a str,
    signed: &'a str,
    payload: Vec<u8>,
    signature: Signature,
}

impl<'a> ParsedCode<'a> {
    /// Splits `code`; nothing is trusted until [`ParsedCode::verify`].
    pub fn parse(code: &'a str) -> Result<Self, CodeError> {
        let code = code.trim();
        let (signed, signature) = code.rsplit_once('.').ok_or(CodeError::Malformed)?;
        let (kid, payload) = signed.split_once('.').ok_or(CodeError::Malformed)?;
        if kid.is_empty() || payload.is_empty() {
            return Err(CodeError::Malformed);
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| CodeError::Malformed)?;
        let signature: [u8; 64] =
            URL_SAFE_NO_PAD.decode(signature).ok().and_then(|s| s.try_into().ok()).ok_or(CodeError::Malformed)?;
        Ok(Self { kid, signed, payload, signature: Signature::from_bytes(&signature) })
    }

    /// The key id the code names.
    pub fn kid(&self) -> &str {
        self.kid
    }

    /// Checks the signature with `key`, then decodes the payload.
    pub fn verify(&self, key: &VerifyingKey) -> Result<TicketCodePayload, CodeError> {
        key.verify_strict(self.signed.as_bytes(), &self.signature).map_err(|_| CodeError::BadSignature)?;
        TicketCodePayload::decode(self.payload.as_slice()).map_err(|_| CodeError::BadPayload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> TicketCodePayload {
        TicketCodePayload {
            ticket_id: uuid::Uuid::new_v4().to_string(),
            event_id: uuid::Uuid::new_v4().to_string(),
            booking_id: uuid::Uuid::new_v4().to_string(),
            category_id: uuid::Uuid::new_v4().to_string(),
            seat_label: "Floor A, Row 12, Seat 7".into(),
            issued_at: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
        }
    }

    #[test]
    fn a_signed_code_verifies_and_round_trips_its_payload() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let payload = payload();
        let code = sign("k1", &key, &payload);
        assert_eq!(code.split('.').count(), 3);
        assert!(code.is_ascii() && !code.contains('='), "unpadded base64url: {code}");
        let parsed = ParsedCode::parse(&code).unwrap();
        assert_eq!(parsed.kid(), "k1");
        assert_eq!(parsed.verify(&key.verifying_key()).unwrap(), payload);
        // Deterministic: the same payload signs to the same code (replays issue the same ticket).
        assert_eq!(sign("k1", &key, &payload), code);
    }

    #[test]
    fn any_change_to_a_code_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let code = sign("k1", &key, &payload());
        let public = key.verifying_key();
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(ParsedCode::parse(&code).unwrap().verify(&other), Err(CodeError::BadSignature));
        let (kid, rest) = code.split_once('.').unwrap();
        let renamed = format!("k2.{rest}");
        assert_eq!(ParsedCode::parse(&renamed).unwrap().verify(&public), Err(CodeError::BadSignature));
        assert_eq!(kid, "k1");
        // Flip one payload character.
        let mut bytes = code.clone().into_bytes();
        let i = kid.len() + 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let verdict = ParsedCode::parse(&tampered).map(|p| p.verify(&public));
        assert!(matches!(verdict, Ok(Err(CodeError::BadSignature)) | Err(CodeError::Malformed)), "{verdict:?}");
        for garbage in ["", "abc", "a.b", "a..c", ".b.c", "a.b.c", "a.!!.c", &format!("{code}x")] {
            let verdict = ParsedCode::parse(garbage).map(|p| p.verify(&public));
            assert!(verdict.is_err() || verdict.as_ref().unwrap().is_err(), "{garbage:?} passed: {verdict:?}");
        }
    }
}
