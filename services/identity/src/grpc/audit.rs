//! The gRPC `ticketing.audit.v1.Audit` service over [`AuditLog`]: admins only.

use ticketing_platform::auth::{Principal, Role};
use ticketing_proto::audit::v1 as pb;
use ticketing_proto::audit::v1::audit_server::Audit;
use ticketing_proto::common::v1::PageResponse;
use ticketing_proto::events::v1::AuditRecord;
use tonic::{Request, Response, Status};

use crate::domain::audit::{Entry, RawQuery, hex};
use crate::service::audit::AuditLog;

/// Implements `ticketing.audit.v1.Audit`.
#[derive(Clone)]
pub struct AuditApi {
    log: AuditLog,
}

impl AuditApi {
    /// The API over `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

#[tonic::async_trait]
impl Audit for AuditApi {
    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        Principal::with_role(&request, Role::Admin)?;
        let r = request.into_inner();
        let page = r.page.unwrap_or_default();
        let raw = RawQuery {
            actor_id: &r.actor_id,
            target_type: &r.target_type,
            target_id: &r.target_id,
            action: &r.action,
            from: r.from.as_ref().and_then(ticketing_kernel::time::from_proto),
            to: r.to.as_ref().and_then(ticketing_kernel::time::from_proto),
            cursor: &page.cursor,
            limit: page.limit,
        };
        let (entries, next) = self.log.entries(&raw).await?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: entries.into_iter().map(entry).collect(),
            page: Some(PageResponse { next_cursor: next.unwrap_or_default() }),
        }))
    }

    async fn verify_audit_log(
        &self,
        request: Request<pb::VerifyAuditLogRequest>,
    ) -> Result<Response<pb::AuditVerification>, Status> {
        Principal::with_role(&request, Role::Admin)?;
        let v = self.log.verify().await?;
        let (broken_seq, broken_reason) = v.broken.map(|(seq, why)| (seq, why.to_string())).unwrap_or_default();
        Ok(Response::new(pb::AuditVerification {
            intact: broken_seq == 0,
            checked: v.walk.checked,
            anchor_seq: v.anchor.0,
            anchor_hash: hex(&v.anchor.1),
            head_seq: v.walk.head_seq,
            head_hash: hex(&v.walk.head_hash),
            broken_seq,
            broken_reason,
        }))
    }
}

fn entry(e: Entry) -> pb::AuditEntry {
    let f = e.fields;
    let record = AuditRecord {
        id: f.id.to_string(),
        occurred_at: Some(ticketing_kernel::time::to_proto(f.occurred_at)),
        service: f.service,
        actor_id: f.actor_id.to_string(),
        actor_roles: f.actor_roles,
        action: f.action,
        target_type: f.target_type,
        target_id: f.target_id,
        client_address: f.client_address,
        user_agent: f.user_agent,
        peer_address: f.peer_address,
        before: f.before,
        after: f.after,
        trace_id: f.trace_id,
    };
    pb::AuditEntry {
        seq: e.seq,
        record: Some(record),
        recorded_at: Some(ticketing_kernel::time::to_proto(f.recorded_at)),
        prev_hash: hex(&e.prev_hash),
        hash: hex(&e.hash),
    }
}
