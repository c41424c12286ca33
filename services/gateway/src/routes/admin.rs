//! Platform administration, over identity: roles, and the audit log of privileged actions
//! (ADR 0046).

use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_platform::auth::Role;
use ticketing_proto::audit::v1 as audit;
use ticketing_proto::identity::v1 as pb;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Fields, instant, non_empty, page, query};
use super::dto::{Page, User};
use crate::extract::{Caller, Json, PathId};
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_role)).routes(routes!(audit_entries)).routes(routes!(verify_audit_log))
}

/// A role an admin may give an account.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountRole {
    User,
    Organizer,
    Admin,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: AccountRole,
}

/// Gives an account a role; it applies to the tokens the account gets from then on.
#[utoipa::path(put, path = "/v1/admin/users/{id}/role", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    request_body = RoleBody,
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn set_role(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: user, .. }: PathId,
    Json(b): Json<RoleBody>,
) -> Result<axum::Json<User>, Problem> {
    caller.require(Role::Admin)?;
    let role = match b.role {
        AccountRole::User => pb::Role::User,
        AccountRole::Organizer => pb::Role::Organizer,
        AccountRole::Admin => pb::Role::Admin,
    };
    let request = caller.request(pb::SetUserRoleRequest { user_id: user, role: role as i32 });
    Ok(axum::Json(s.backends.identity.clone().set_user_role(request).await?.into_inner().into()))
}

/// Parameters of `GET /v1/admin/audit`: filters, combined with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries of this actor (a user id).
    pub actor: Option<String>,
    /// Entries about targets of this type: `user`, `event`, `venue` or `booking`.
    pub target_type: Option<String>,
    /// …with this id (needs `target_type`).
    pub target_id: Option<String>,
    /// Entries of this action, e.g. `event.published`.
    pub action: Option<String>,
    /// Occurred at or after this RFC 3339 instant.
    pub from: Option<String>,
    /// Occurred before this RFC 3339 instant.
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One privileged action as the audit log keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its place in the log: 1, 2, 3… without gaps.
    pub seq: i64,
    pub id: String,
    pub occurred_at: Option<DateTime<Utc>>,
    /// When the log appended it.
    pub recorded_at: Option<DateTime<Utc>>,
    /// The service that performed the action.
    pub service: String,
    /// Who: a user id, and their roles then.
    pub actor_id: String,
    pub actor_roles: Vec<String>,
    /// What: `user.role_changed`, `event.created`, `event.updated`, `event.published`,
    /// `event.sale_opened`, `event.closed`, `event.cancelled`, `venue.created`,
    /// `venue.seat_map_imported`, `category.created`, `category.updated`, `category.deleted`,
    /// `booking.refunded_by_hand`, `booking.cancelled_by_hand`, `booking.check_in_overridden`
    /// or `payment.refunded_by_hand`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// From where: the client's address and `User-Agent` as the gateway saw them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The target before and after (absent when there was no before).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Hex SHA-256 of the previous entry, and of this one (over the previous hash and its fields).
    pub prev_hash: String,
    pub hash: String,
}

/// A state as JSON; text that is not JSON is kept as a string.
fn state(text: String) -> Option<serde_json::Value> {
    (!text.is_empty()).then(|| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

impl From<audit::AuditEntry> for AuditEntry {
    fn from(e: audit::AuditEntry) -> Self {
        let r = e.record.unwrap_or_default();
        Self {
            seq: e.seq,
            id: r.id,
            occurred_at: instant(r.occurred_at),
            recorded_at: instant(e.recorded_at),
            service: r.service,
            actor_id: r.actor_id,
            actor_roles: r.actor_roles,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            client_address: non_empty(r.client_address),
            user_agent: non_empty(r.user_agent),
            before: state(r.before),
            after: state(r.after),
            trace_id: non_empty(r.trace_id),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// The audit log of privileged actions (role changes, events created, published, put on
/// sale, closed and cancelled, seat maps imported, bookings refunded by hand, check-ins
/// overridden), newest first: who, what, when, from where, and the target before and after.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn audit_entries(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Page<AuditEntry>>, Problem> {
    caller.require(Role::Admin)?;
    let q = query(q)?;
    let mut fields = Fields::default();
    if let Some(actor) = &q.actor {
        fields.id("actor", actor);
    }
    let from = fields.instant("from", q.from.as_deref());
    let to = fields.instant("to", q.to.as_deref());
    fields.check()?;
    let request = caller.request(audit::ListAuditEntriesRequest {
        actor_id: q.actor.unwrap_or_default(),
        target_type: q.target_type.unwrap_or_default(),
        target_id: q.target_id.unwrap_or_default(),
        action: q.action.unwrap_or_default(),
        from,
        to,
        page: Some(page(q.cursor, q.limit)?),
    });
    let found = s.backends.audit.clone().list_audit_entries(request).await?.into_inner();
    Ok(axum::Json(Page {
        items: found.entries.into_iter().map(Into::into).collect(),
        next_cursor: found.page.and_then(|p| non_empty(p.next_cursor)),
    }))
}

/// What a walk along the audit log's hash chain found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    /// Whether every entry chains to the one before.
    pub intact: bool,
    /// Entries checked.
    pub checked: i64,
    /// Where the chain starts: the last entry retention removed (0 when none was).
    pub anchor_seq: i64,
    pub anchor_hash: String,
    /// The last entry that chained.
    pub head_seq: i64,
    pub head_hash: String,
    /// When not intact: the first entry that does not chain, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_reason: Option<String>,
}

/// Walks the audit log's hash chain from its retention anchor and reports the first entry
/// that was altered, inserted or removed.
#[utoipa::path(get, path = "/v1/admin/audit/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AuditVerification), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn verify_audit_log(State(s): State<AppState>, caller: Caller) -> Result<axum::Json<AuditVerification>, Problem> {
    caller.require(Role::Admin)?;
    let request = caller.request(audit::VerifyAuditLogRequest {});
    let v = s.backends.audit.clone().verify_audit_log(request).await?.into_inner();
    Ok(axum::Json(AuditVerification {
        intact: v.intact,
        checked: v.checked,
        anchor_seq: v.anchor_seq,
        anchor_hash: v.anchor_hash,
        head_seq: v.head_seq,
        head_hash: v.head_hash,
        broken_seq: (!v.intact).then_some(v.broken_seq),
        broken_reason: non_empty(v.broken_reason),
    }))
}
