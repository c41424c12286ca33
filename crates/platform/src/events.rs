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
}
