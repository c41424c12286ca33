//! Building and reading the event envelope every Kafka message carries.

use prost::{Message, Name};
use ticketing_proto::events::v1::Envelope;

/// Why an envelope's payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The envelope holds another event type.
    #[error("expected event type {expected}, found {found}")]
    WrongType {
        /// The type the caller asked for.
        expected: String,
        /// The type in the envelope.
        found: String,
    },
    /// The payload bytes are not a valid message of the type.
    #[error("undecodable {0} payload: {1}")]
    Decode(String, prost::DecodeError),
}

/// Wraps `event` about `aggregate_id`, stamped now and with the current trace context.
pub fn envelope<M: Message + Name>(aggregate_id: impl Into<String>, event: &M) -> Envelope {
    envelope_with_id(uuid::Uuid::now_v7(), aggregate_id, event)
}

/// Like [`envelope`] with a caller-chosen id: a deterministic id (UUID v5 of what
/// happened) makes re-announcing the same fact produce the same event.
pub fn envelope_with_id<M: Message + Name>(id: uuid::Uuid, aggregate_id: impl Into<String>, event: &M) -> Envelope {
    let now = std::time::SystemTime::now();
    Envelope {
        id: id.to_string(),
        r#type: M::full_name(),
        occurred_at: Some(prost_types::Timestamp::from(now)),
        traceparent: crate::telemetry::current_traceparent().unwrap_or_default(),
        payload: event.encode_to_vec(),
        aggregate_id: aggregate_id.into(),
    }
}

/// Decodes the payload as `M`, checking the envelope's type first.
pub fn payload<M: Message + Name + Default>(envelope: &Envelope) -> Result<M, PayloadError> {
    let expected = M::full_name();
    if envelope.r#type != expected {
        return Err(PayloadError::WrongType { expected, found: envelope.r#type.clone() });
    }
    M::decode(envelope.payload.as_slice()).map_err(|e| PayloadError::Decode(expected, e))
}

/// Reads `envelope` as whichever of several payload types its `type` names, one arm each:
///
/// ```ignore
/// let incoming = dispatch(event).on(Incoming::Paid).on(Incoming::Failed).decoded()?;
/// let Some(incoming) = incoming else { return Ok(()) }; // a type no arm names
/// ```
///
/// Every consumer reads its events this way, so each states in one place which types it
/// handles and what it makes of them; what a type no arm names means stays the caller's.
pub fn dispatch<T>(envelope: &Envelope) -> Dispatch<'_, T> {
    Dispatch { envelope, decoded: None }
}

/// The arms of a [`dispatch`] so far.
#[must_use = "an envelope is read by `decoded`"]
pub struct Dispatch<'e, T> {
    envelope: &'e Envelope,
    decoded: Option<Result<T, PayloadError>>,
}

impl<T> Dispatch<'_, T> {
    /// An arm: an envelope of type `M` is decoded and made a `T` by `arm`.
    pub fn on<M: Message + Name + Default>(mut self, arm: impl FnOnce(M) -> T) -> Self {
        if self.decoded.is_none() && is::<M>(&self.envelope.r#type) {
            self.decoded = Some(payload::<M>(self.envelope).map(arm));
        }
        self
    }

    /// What the arm of the envelope's type made of it; `None` when no arm names the type.
    pub fn decoded(self) -> Result<Option<T>, PayloadError> {
        self.decoded.transpose()
    }
}

/// Whether `type_name` is `M`'s full name, without building that name.
fn is<M: Name>(type_name: &str) -> bool {
    type_name.strip_prefix(M::PACKAGE).and_then(|rest| rest.strip_prefix('.')) == Some(M::NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketing_proto::events::v1::UserRegistered;

    #[test]
    fn payload_round_trips_and_checks_its_type() {
        let event = UserRegistered { user_id: "u1".into(), email: "a@b.c".into(), ..Default::default() };
        let env = envelope("u1", &event);
        assert_eq!(env.r#type, "ticketing.events.v1.UserRegistered");
        assert_eq!(env.aggregate_id, "u1");
        assert!(uuid::Uuid::parse_str(&env.id).is_ok());
        assert_eq!(payload::<UserRegistered>(&env).unwrap(), event);
        let err = payload::<ticketing_proto::events::v1::UserRoleChanged>(&env).unwrap_err();
        assert!(matches!(err, PayloadError::WrongType { .. }));
    }

    #[test]
    fn dispatch_takes_the_arm_of_the_type_and_none_for_others() {
        use ticketing_proto::events::v1::{EventClosed, UserRoleChanged};
        #[derive(Debug, PartialEq)]
        enum Incoming {
            Registered(UserRegistered),
            RoleChanged(UserRoleChanged),
        }
        let event = UserRegistered { user_id: "u1".into(), ..Default::default() };
        let env = envelope("u1", &event);
        let read = |env: &Envelope| dispatch(env).on(Incoming::RoleChanged).on(Incoming::Registered).decoded();
        assert_eq!(read(&env).unwrap(), Some(Incoming::Registered(event)));
        assert_eq!(read(&envelope("e1", &EventClosed::default())).unwrap(), None);
        let garbled = Envelope { payload: vec![0xff], ..env };
        assert!(matches!(read(&garbled), Err(PayloadError::Decode(..))));
    }
}
