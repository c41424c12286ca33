//! The audit log (ADR 0046): appends chain and are idempotent, the table refuses changes,
//! tampering is found where it happened, retention keeps the chain verifiable, and role
//! changes reach it through `audit.events` with where they came from.

use std::time::Duration;

use sqlx::PgPool;
use ticketing_identity::service::audit::AuditLog;
use ticketing_platform::audit::{Actor, Origin, Target};
use ticketing_platform::auth::Role;
use ticketing_proto::audit::v1 as audit;
use ticketing_proto::audit::v1::audit_client::AuditClient;
use ticketing_proto::events::v1::AuditRecord;
use ticketing_proto::identity::v1 as pb;
use ticketing_testkit::{TestDb, eventually};
use tonic::Code;

use crate::helpers::{authed, spawn_app};

fn record(action: &str, target: &str) -> AuditRecord {
    let actor = Actor {
        user_id: uuid::Uuid::now_v7(),
        roles: vec![Role::Organizer],
        origin: Origin { client_address: "192.0.2.10".into(), ..Origin::default() },
    };
    let (before, after) = (serde_json::json!({"status": "draft"}), serde_json::json!({"status": "published"}));
    actor.record("catalog", action, Target::new("event", target), Some(&before), &after)
}

async fn log() -> (AuditLog, TestDb) {
    let db = TestDb::new(&ticketing_identity::migrator()).await;
    (AuditLog::new(db.pool.clone(), Duration::from_secs(86400)), db)
}

async fn append(log: &AuditLog, pool: &PgPool, record: &AuditRecord) -> Option<i64> {
    let mut tx = pool.begin().await.unwrap();
    let entry = log.append(&mut tx, record).await.expect("appends");
    tx.commit().await.unwrap();
    entry.map(|e| e.seq)
}

async fn verification(log: &AuditLog) -> ticketing_identity::adapters::audit::Verification {
    log.verify().await.expect("verifies")
}

#[tokio::test]
async fn concurrent_appends_chain_without_gaps_and_a_record_is_kept_once() {
    let (log, db) = log().await;
    let records: Vec<AuditRecord> = (0..12).map(|i| record("event.published", &format!("e{i}"))).collect();
    let seqs = futures::future::join_all(records.iter().map(|r| append(&log, &db.pool, r))).await;
    let mut seqs: Vec<i64> = seqs.into_iter().map(|s| s.expect("appended")).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());

    // A redelivered record is not appended again.
    assert_eq!(append(&log, &db.pool, &records[3]).await, None);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&db.pool).await.unwrap();
    assert_eq!(count, 12);

    let v = verification(&log).await;
    assert!(v.broken.is_none(), "{:?}", v.broken);
    assert_eq!((v.walk.checked, v.walk.head_seq), (12, 12));

    let page = log
        .entries(&ticketing_identity::domain::audit::RawQuery {
            target_type: "event",
            target_id: "e3",
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.0.len(), 1);
    let entry = &page.0[0].fields;
    assert_eq!((entry.client_address.as_str(), entry.after.as_str()), ("192.0.2.10", r#"{"status":"published"}"#));
}

#[tokio::test]
async fn the_log_refuses_updates_deletes_truncation_and_entries_off_the_chain() {
    let (log, db) = log().await;
    for i in 0..3 {
        append(&log, &db.pool, &record("event.created", &format!("e{i}"))).await;
    }
    for statement in [
        "UPDATE audit_log SET action = 'event.cancelled' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
        "TRUNCATE audit_log",
        "UPDATE audit_anchor SET seq = 2, hash = decode(repeat('00', 32), 'hex')",
        "DELETE FROM audit_anchor",
        // Rows that do not continue the chain: the next seq after another entry's hash, and
        // the head's hash with a seq skipped.
        "INSERT INTO audit_log SELECT 4, gen_random_uuid(), occurred_at, recorded_at, service, actor_id, actor_roles,
                action, target_type, target_id, client_address, user_agent, peer_address, before, after, trace_id,
                prev_hash, hash FROM audit_log WHERE seq = 3",
        "INSERT INTO audit_log SELECT 5, gen_random_uuid(), occurred_at, recorded_at, service, actor_id, actor_roles,
                action, target_type, target_id, client_address, user_agent, peer_address, before, after, trace_id,
                hash, hash FROM audit_log WHERE seq = 3",
    ] {
        let refused = sqlx::query(statement).execute(&db.pool).await;
        assert!(refused.is_err(), "{statement} went through");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&db.pool).await.unwrap();
    assert_eq!(count, 3);
    assert!(verification(&log).await.broken.is_none());
}

#[tokio::test]
async fn tampering_behind_the_triggers_is_reported_at_the_entry_it_touched() {
    let (log, db) = log().await;
    for i in 0..4 {
        append(&log, &db.pool, &record("event.published", &format!("e{i}"))).await;
    }
    // Someone who owns the table turns the guard off and rewrites history.
    let tamper = |sql: &'static str| async {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only").execute(&mut *tx).await.unwrap();
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
        sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    };
    tamper(r#"UPDATE audit_log SET after = '{"status":"cancelled"}' WHERE seq = 3"#).await;
    let v = verification(&log).await;
    let (seq, reason) = v.broken.expect("the change is found");
    assert_eq!((seq, v.walk.head_seq, v.walk.checked), (3, 2, 2));
    assert_eq!(reason.to_string(), "its hash does not match its fields");

    tamper("DELETE FROM audit_log WHERE seq = 2").await;
    let (seq, reason) = verification(&log).await.broken.expect("the removal is found");
    assert_eq!(seq, 3);
    assert!(reason.to_string().contains("entry 2 is missing"), "{reason}");
}

#[tokio::test]
async fn retention_removes_the_oldest_and_verification_starts_from_its_anchor() {
    let db = TestDb::new(&ticketing_identity::migrator()).await;
    let keep_nothing = AuditLog::new(db.pool.clone(), Duration::ZERO);
    append(&keep_nothing, &db.pool, &record("event.created", "e1")).await;
    append(&keep_nothing, &db.pool, &record("event.published", "e1")).await;
    let head: Vec<u8> =
        sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = 2").fetch_one(&db.pool).await.unwrap();

    assert_eq!(keep_nothing.apply_retention().await.unwrap(), 2);
    assert_eq!(keep_nothing.apply_retention().await.unwrap(), 0, "nothing more is due");
    let anchor: (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_anchor").fetch_one(&db.pool).await.unwrap();
    assert_eq!(anchor, (2, head));

    // The chain goes on from the anchor.
    let log = AuditLog::new(db.pool.clone(), Duration::from_secs(86400));
    assert_eq!(append(&log, &db.pool, &record("event.sale_opened", "e1")).await, Some(3));
    assert_eq!(log.apply_retention().await.unwrap(), 0, "entry 3 is within the retention");
    let v = verification(&log).await;
    assert!(v.broken.is_none(), "{:?}", v.broken);
    assert_eq!((v.anchor.0, v.walk.checked, v.walk.head_seq), (2, 1, 3));
}

#[tokio::test]
async fn a_role_change_reaches_the_log_with_who_and_where_and_only_admins_read_it() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let (user, user_tokens) = app.user_session().await;
    let mut change = authed(
        pb::SetUserRoleRequest { user_id: user.id.clone(), role: pb::Role::Organizer.into() },
        &admin.access_token,
    );
    change.metadata_mut().insert(ticketing_platform::peers::CLIENT_ADDRESS, "198.51.100.4".parse().unwrap());
    change.metadata_mut().insert(ticketing_platform::peers::CLIENT_USER_AGENT, "AdminConsole/2".parse().unwrap());
    app.client.clone().set_user_role(change).await.expect("admin promotes");

    let client = AuditClient::new(app.service.channel().await);
    let ask = || audit::ListAuditEntriesRequest {
        target_type: "user".into(),
        target_id: user.id.clone(),
        ..Default::default()
    };
    let entry = eventually("the role change to reach the audit log", Duration::from_secs(30), || async {
        let found = client.clone().list_audit_entries(authed(ask(), &admin.access_token)).await;
        match found.map(|f| f.into_inner().entries) {
            Ok(mut entries) if !entries.is_empty() => Ok(entries.remove(0).record.expect("a record")),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!((entry.action.as_str(), entry.service.as_str()), ("user.role_changed", "identity"));
    assert_eq!(entry.actor_roles, ["admin"]);
    assert_eq!((entry.client_address.as_str(), entry.user_agent.as_str()), ("198.51.100.4", "AdminConsole/2"));
    assert_eq!((entry.before.as_str(), entry.after.as_str()), (r#"{"role":"user"}"#, r#"{"role":"organizer"}"#));

    let verified = client.clone().verify_audit_log(authed(audit::VerifyAuditLogRequest {}, &admin.access_token)).await;
    assert!(verified.expect("verifies").into_inner().intact);
    let denied = client.clone().list_audit_entries(authed(ask(), &user_tokens.access_token)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let invalid = audit::ListAuditEntriesRequest { actor_id: "someone".into(), ..Default::default() };
    let invalid = client.clone().list_audit_entries(authed(invalid, &admin.access_token)).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
}
