//! Audit records of privileged actions (ADR 0046): who did what to which target, when, from
//! where, and the target before and after.
//!
//! A service that performs a privileged action builds an [`AuditRecord`] with [`Actor::record`]
//! and writes it with [`enqueue`] into its outbox, in the transaction of the action, so a
//! record exists if and only if the action committed. The relay publishes it on
//! `audit.events`; identity appends it to its hash-chained audit log.

use std::net::IpAddr;

use ticketing_proto::events::v1::{AuditRecord, Envelope};

use crate::auth::{Principal, Role};
use crate::peers::{CLIENT_ADDRESS, CLIENT_USER_AGENT};

/// Longest user agent kept, in characters.
pub const USER_AGENT_MAX: usize = 200;

/// A `User-Agent` fit to keep and show: printable ASCII and spaces, cut to
/// [`USER_AGENT_MAX`] characters; `None` when nothing is left.
pub fn printable_user_agent(raw: &str) -> Option<String> {
    let kept: String = raw.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(USER_AGENT_MAX).collect();
    (!kept.trim().is_empty()).then_some(kept)
}

/// Where a request came from, as far as the service that received it can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address as the edge named it in [`CLIENT_ADDRESS`] (empty when none did).
    pub client_address: String,
    /// The client's `User-Agent` as the edge named it in [`CLIENT_USER_AGENT`].
    pub user_agent: String,
    /// The address of the peer that made the call (the gateway's pod, say).
    pub peer_address: String,
}

impl Origin {
    /// Reads the origin of `request`. The edge's word is taken as it is written (a valid IP
    /// address, a printable user agent): only the gateway and the platform's own workloads
    /// can reach a service (its network policy), and the record keeps the peer beside it.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        let said = |key: &str| request.metadata().get(key).and_then(|v| v.to_str().ok());
        Self {
            client_address: said(CLIENT_ADDRESS)
                .and_then(|a| a.parse::<IpAddr>().ok())
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            user_agent: said(CLIENT_USER_AGENT).and_then(printable_user_agent).unwrap_or_default(),
            peer_address: request.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
        }
    }
}

/// Who performs a privileged action, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The acting user.
    pub user_id: uuid::Uuid,
    /// Their roles when they acted.
    pub roles: Vec<Role>,
    /// Where the request came from.
    pub origin: Origin,
}

impl Actor {
    /// The caller of `request`, authenticated as `principal`.
    pub fn of<T>(principal: &Principal, request: &tonic::Request<T>) -> Self {
        Self { user_id: principal.user_id, roles: principal.roles.clone(), origin: Origin::of(request) }
    }

    /// An actor known only by id (a decision recorded earlier, carried out later by a
    /// worker): no roles and no origin.
    pub fn recorded(user_id: uuid::Uuid) -> Self {
        Self { user_id, roles: Vec::new(), origin: Origin::default() }
    }

    /// A record, stamped now with a new id and the current trace, of `action` (`<target
    /// type>.<verb>`) on `target`, performed in `service`, with the target's state before
    /// (none for a creation) and after, as JSON objects of what the action changed.
    pub fn record(
        &self,
        service: &str,
        action: &str,
        target: Target<'_>,
        before: Option<&serde_json::Value>,
        after: &serde_json::Value,
    ) -> AuditRecord {
        let trace_id = crate::telemetry::current_traceparent()
            .and_then(|tp| tp.split('-').nth(1).map(str::to_owned))
            .unwrap_or_default();
        AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            occurred_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            service: service.to_owned(),
            actor_id: self.user_id.to_string(),
            actor_roles: self.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            action: action.to_owned(),
            target_type: target.kind.to_owned(),
            target_id: target.id,
            client_address: self.origin.client_address.clone(),
            user_agent: self.origin.user_agent.clone(),
            peer_address: self.origin.peer_address.clone(),
            before: before.map(ToString::to_string).unwrap_or_default(),
            after: after.to_string(),
            trace_id,
        }
    }
}

/// What an action was about: a type (`event`, `user`…) and an id.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// `user`, `event`, `venue`, `booking`…
    pub kind: &'a str,
    /// The target's id.
    pub id: String,
}

impl<'a> Target<'a> {
    /// The `kind` with id `id`.
    pub fn new(kind: &'a str, id: impl ToString) -> Self {
        Self { kind, id: id.to_string() }
    }
}

/// The envelope of `record`: its id is the record's, its aggregate the target.
pub fn envelope(record: &AuditRecord) -> Envelope {
    let id = uuid::Uuid::parse_str(&record.id).unwrap_or_else(|_| uuid::Uuid::now_v7());
    let mut envelope = crate::events::envelope_with_id(id, record.target_id.clone(), record);
    envelope.occurred_at = record.occurred_at;
    envelope
}

/// How a record shows an amount: `{"currency": "EUR", "minor_units": 1000}`, the API's shape.
pub fn money(amount: &ticketing_kernel::money::Money) -> serde_json::Value {
    serde_json::json!({"currency": amount.currency.as_str(), "minor_units": amount.minor_units})
}

/// Writes `record` into the outbox for `topic` (the full name of `audit.events`), inside the
/// transaction of the action it records.
#[cfg(feature = "kafka")]
pub async fn enqueue(conn: &mut sqlx::PgConnection, topic: &str, record: &AuditRecord) -> anyhow::Result<()> {
    crate::kafka::outbox::enqueue(conn, topic, &envelope(record)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_takes_a_valid_address_and_a_printable_agent() {
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert(CLIENT_ADDRESS, "2001:db8::1".parse().unwrap());
        request.metadata_mut().insert(CLIENT_USER_AGENT, "Fan\tPhone/1.0".parse().unwrap());
        let origin = Origin::of(&request);
        assert_eq!(origin.client_address, "2001:db8::1");
        assert_eq!(origin.user_agent, "FanPhone/1.0");

        let mut request = tonic::Request::new(());
        request.metadata_mut().insert(CLIENT_ADDRESS, "not-an-address".parse().unwrap());
        request.metadata_mut().insert(CLIENT_USER_AGENT, "\t".parse().unwrap());
        assert_eq!(Origin::of(&request), Origin::default());
    }

    #[test]
    fn a_record_names_actor_target_and_states_and_its_envelope_shares_its_id() {
        let actor = Actor {
            user_id: uuid::Uuid::now_v7(),
            roles: vec![Role::Organizer],
            origin: Origin { client_address: "192.0.2.7".into(), ..Origin::default() },
        };
        let (before, after) = (serde_json::json!({"status": "draft"}), serde_json::json!({"status": "published"}));
        let record = actor.record("catalog", "event.published", Target::new("event", "e1"), Some(&before), &after);
        assert_eq!(record.actor_id, actor.user_id.to_string());
        assert_eq!(record.actor_roles, ["organizer"]);
        assert_eq!((record.target_type.as_str(), record.target_id.as_str()), ("event", "e1"));
        assert_eq!(record.client_address, "192.0.2.7");
        assert_eq!(record.before, r#"{"status":"draft"}"#);
        assert_eq!(record.after, r#"{"status":"published"}"#);
        let envelope = envelope(&record);
        assert_eq!(envelope.id, record.id);
        assert_eq!(envelope.aggregate_id, "e1");
        assert_eq!(crate::events::payload::<AuditRecord>(&envelope).unwrap(), record);
    }

    #[test]
    fn user_agents_are_printable_and_short() {
        assert_eq!(printable_user_agent("curl/8.5.0"), Some("curl/8.5.0".into()));
        assert_eq!(printable_user_agent(" \u{7}"), None);
        assert_eq!(printable_user_agent(&"x".repeat(500)).map(|ua| ua.len()), Some(USER_AGENT_MAX));
    }
}
