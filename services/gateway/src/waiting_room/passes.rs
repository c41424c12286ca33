//! Admission passes: signed tokens naming the buyer, the event and the queue ticket, which
//! `POST /v1/events/{id}/holds` requires of an event with a waiting room.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RoomError;

/// The `aud` of every pass: it is good for holds and nothing else.
const PASS_AUDIENCE: &str = "ticketing-holds";

/// The claims of an admission pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    /// The buyer (user id) the pass was issued to.
    pub sub: String,
    /// The event it admits to.
    pub event: String,
    /// The queue ticket; a pass is used once per ticket.
    pub jti: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Always [`PASS_AUDIENCE`].
    pub aud: String,
}

/// Signs and checks admission passes (HS256, one secret shared by every replica).
#[derive(Clone)]
pub struct Passes {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Passes {
    /// Passes signed with `secret`.
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_audience(&[PASS_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The pass of `ticket`; the same claims give the same token, so polls repeat it.
    pub fn sign(&self, user: Uuid, event: Uuid, ticket: &str, exp: u64) -> String {
        let claims = PassClaims {
            sub: user.to_string(),
            event: event.to_string(),
            jti: ticket.to_owned(),
            exp,
            aud: PASS_AUDIENCE.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The claims of `token` if it is a live pass for `user` to hold tickets of `event`.
    pub fn verify(&self, token: &str, user: Uuid, event: Uuid) -> Result<PassClaims, RoomError> {
        let claims = jsonwebtoken::decode::<PassClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => RoomError::PassExpired,
                _ => RoomError::PassInvalid("not an admission pass of this gateway"),
            })?
            .claims;
        if claims.sub != user.to_string() {
            return Err(RoomError::PassInvalid("the pass was issued to another buyer"));
        }
        if claims.event != event.to_string() {
            return Err(RoomError::PassInvalid("the pass is for another event"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn a_pass_is_bound_to_its_buyer_and_event_and_expires() {
        let passes = Passes::new("a-test-secret-of-at-least-thirty-two-bytes");
        let (user, event) = (Uuid::new_v4(), Uuid::new_v4());
        let exp = (Utc::now().timestamp() + 60) as u64;
        let pass = passes.sign(user, event, "ticket-1", exp);
        assert_eq!(pass, passes.sign(user, event, "ticket-1", exp), "polls repeat the same pass");
        let claims = passes.verify(&pass, user, event).unwrap();
        assert_eq!((claims.jti.as_str(), claims.exp, claims.aud.as_str()), ("ticket-1", exp, PASS_AUDIENCE));

        let invalid = |r: Result<PassClaims, RoomError>| matches!(r, Err(RoomError::PassInvalid(_)));
        assert!(invalid(passes.verify(&pass, Uuid::new_v4(), event)));
        assert!(invalid(passes.verify(&pass, user, Uuid::new_v4())));
        let forged = Passes::new("another-secret-of-at-least-thirty-two-bytes").sign(user, event, "t", exp);
        assert!(invalid(passes.verify(&forged, user, event)));
        assert!(invalid(passes.verify("garbage", user, event)));
        let old = passes.sign(user, event, "ticket-1", (Utc::now().timestamp() - 1) as u64);
        assert!(matches!(passes.verify(&old, user, event), Err(RoomError::PassExpired)));
    }
}
