//! Reading, verifying, exporting and purging the audit log: the auditor's work, and only
//! the auditor's. Reading the log is itself recorded.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::audit::AuditRecord;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::audit::{self, AuditQuery, VerifyOutcome};

/// Records younger than this are never purged.
pub const RETENTION_DAYS: i64 = 180;

async fn note(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), Error> {
    let tx = s.store.begin_write().await?;
    commit_audited(tx, ctx, Some(actor), action, "audit_log", "", detail).await
}

pub async fn list(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    q: &AuditQuery,
    limit: u32,
) -> Result<(Vec<AuditRecord>, Option<i64>), Error> {
    authorize(&actor.principal, Action::AuditRead)?;
    let mut rows = audit::list(&s.store, q, limit).await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    note(
        s,
        ctx,
        actor,
        "list_audit",
        serde_json::json!({ "returned": rows.len() }),
    )
    .await?;
    Ok((rows, next))
}

pub async fn verify(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    anchor: Option<(i64, String)>,
) -> Result<VerifyOutcome, Error> {
    authorize(&actor.principal, Action::AuditRead)?;
    let out = audit::verify(&s.store, anchor).await?;
    let detail = serde_json::json!({ "checked": out.checked, "ok": out.finding.is_none(), "first_bad_seq": out.finding.as_ref().map(|f| f.seq) });
    note(s, ctx, actor, "verify_audit", detail).await?;
    Ok(out)
}

/// Authorises an export and records it; the handler then streams the records.
pub async fn begin_export(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    format: &str,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::AuditRead)?;
    note(
        s,
        ctx,
        actor,
        "export_audit",
        serde_json::json!({ "format": format }),
    )
    .await
}

pub async fn purge(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    before: Timestamp,
) -> Result<u64, Error> {
    authorize(&actor.principal, Action::AuditRead)?;
    let floor = Timestamp::now().plus_secs(-RETENTION_DAYS * 86_400);
    if before > floor {
        return Err(Error::validation(
            "before",
            t!("审计记录须保留至少 180 天：before 不能晚于 {}" ; "audit records are kept at least 180 days: before must not be later than {}", floor.to_rfc3339()),
        ));
    }
    let mut tx = s.store.begin_write().await?;
    let n = audit::purge(&mut tx, before).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "purge_audit",
        "audit_log",
        "",
        serde_json::json!({ "before": before, "deleted": n }),
    )
    .await?;
    Ok(n)
}
