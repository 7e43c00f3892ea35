//! The application layer: one module per resource, each function one use case. Handlers
//! call exactly one of these; these authorise through `zy_policy`, validate, call the store
//! and write the audit record in the same transaction as the change.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod consolidation;
pub mod dataplane;
pub mod departments;
pub mod ha;
pub mod inspections;
pub mod instances;
pub mod inventory;
pub mod leases;
pub mod load_balancers;
pub mod memberships;
pub mod metrics;
pub mod networks;
pub mod notifications;
pub mod openstack;
pub mod openstack_volumes;
pub mod operations_demo;
pub mod projects;
pub mod quotas;
pub mod requests;
pub mod secev;
pub mod secev_demo;
pub mod security;
pub mod sla;
pub mod supervision;
pub mod tickets;
pub mod tokens;
pub mod users;
pub mod volumes;
pub mod vulns;

use crate::auth::actor::Actor;
use crate::context::RequestContext;
use zy_model::audit::Outcome;
use zy_model::{t, Error};
use zy_store::{db_error, Tx};

/// Appends the success record and commits. Fail-closed: if the record cannot be written,
/// the transaction is rolled back and the change does not happen.
pub async fn commit_audited(
    mut tx: Tx,
    ctx: &RequestContext,
    actor: Option<&Actor>,
    action: &str,
    target_type: &str,
    target_id: &str,
    detail: serde_json::Value,
) -> Result<(), Error> {
    let entry = ctx.entry(
        actor,
        action,
        target_type,
        target_id,
        Outcome::Success,
        detail,
    );
    zy_store::audit::append(&mut tx, entry)
        .await
        .map_err(audit_unavailable)?;
    tx.commit().await.map_err(db_error)?;
    ctx.mark_audited();
    Ok(())
}

/// Appends the success record of a change the platform made by itself (a background task:
/// the lease manager) and commits, fail-closed like [`commit_audited`]. The actor is
/// `system`; each record gets its own request id.
pub async fn commit_system(
    mut tx: Tx,
    action: &str,
    target_type: &str,
    target_id: &str,
    detail: serde_json::Value,
) -> Result<(), Error> {
    let entry = zy_model::audit::AuditEntry {
        at: zy_model::time::Timestamp::now(),
        actor_id: None,
        actor_name: "system".into(),
        actor_roles: String::new(),
        source_ip: String::new(),
        action: action.to_string(),
        target_type: target_type.to_string(),
        target_id: target_id.to_string(),
        outcome: Outcome::Success,
        request_id: zy_model::id::RequestId::new().to_string(),
        detail: detail.to_string(),
    };
    zy_store::audit::append(&mut tx, entry)
        .await
        .map_err(audit_unavailable)?;
    tx.commit().await.map_err(db_error)
}

pub fn audit_unavailable(e: Error) -> Error {
    Error::unavailable(t!(
        "审计日志无法写入，操作未执行，请稍后重试",
        "the audit log cannot be written, so nothing was changed; please try again shortly"
    ))
    .with_internal(format!("audit append failed: {e}"))
}

/// A PATCH field: absent leaves the value alone.
pub fn patched(new: Option<String>, old: &str) -> String {
    new.unwrap_or_else(|| old.to_string())
}
