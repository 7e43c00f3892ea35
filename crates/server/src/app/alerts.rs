//! Alert use cases: rules and silences (set by department admins for their department's
//! resources, by the platform admin and provider operators for the infrastructure), and
//! what each caller sees of rules, active alerts, the history and silences — everything
//! of the platform for those who read the infrastructure (platform admin, supervisor,
//! provider operators), their departments' for department people.

use super::commit_audited;
use super::metrics::{department_of, parse_target, resolve};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::alerts::*;
use zy_model::role::{Role, Scope};
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};

/// `None`: everything; otherwise the departments whose alerts the caller sees.
fn visible_departments(actor: &Actor) -> Result<Option<Vec<String>>, Error> {
    authorize(&actor.principal, Action::AlertRead)?;
    if authorize(&actor.principal, Action::MetricsRead(None)).is_ok() {
        return Ok(None);
    }
    let mut out: Vec<String> = actor
        .principal
        .grants
        .iter()
        .filter(|g| matches!(g.role, Role::DeptAdmin | Role::DeptMember))
        .filter_map(|g| match g.scope {
            Scope::Department(d) | Scope::Project(d, _) => Some(d.to_string()),
            Scope::Platform => None,
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(Some(out))
}

pub async fn list_rules(s: &AppState, actor: &Actor) -> Result<Vec<AlertRule>, Error> {
    let ds = visible_departments(actor)?;
    zy_store::alerts::rules(&s.store, ds.as_deref()).await
}

pub async fn create_rule(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewAlertRule,
) -> Result<AlertRule, Error> {
    let target = b.validate()?;
    let (scope, id) = parse_target(b.scope.as_str(), &b.id)?;
    let policy_scope = resolve(s, scope, id).await?;
    authorize(&actor.principal, Action::AlertManage(policy_scope))?;
    let rule = AlertRule {
        id: uuid::Uuid::now_v7().to_string(),
        name: b.name.trim().to_string(),
        kind: b.kind,
        scope,
        entity_id: id.to_string(),
        department_id: department_of(policy_scope).map(|d| d.to_string()),
        target,
        series: b.series,
        op: match b.kind {
            AlertKind::Threshold => Some(b.op.unwrap_or(AlertOp::Gt)),
            AlertKind::Crashes => None,
        },
        threshold: b.threshold,
        for_secs: b.for_secs,
        crash_count: b.crash_count,
        open_ticket: b.open_ticket,
        created_by: actor.user.username.clone(),
        created_at: Timestamp::now(),
    };
    let mut tx = s.store.begin_write().await?;
    zy_store::alerts::insert_rule(&mut tx, &rule).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_alert_rule",
        "alert_rule",
        &rule.id,
        serde_json::json!({ "name": rule.name, "scope": scope.as_str(), "entity": rule.entity_id }),
    )
    .await?;
    Ok(rule)
}

fn manage_scope(department_id: Option<&str>) -> Option<Scope> {
    department_id
        .and_then(|d| d.parse().ok())
        .map(Scope::Department)
}

pub async fn delete_rule(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
) -> Result<(), Error> {
    let mut tx = s.store.begin_write().await?;
    let rule = zy_store::alerts::get_rule(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("alert_rule", id))?;
    authorize(
        &actor.principal,
        Action::AlertManage(manage_scope(rule.department_id.as_deref())),
    )?;
    zy_store::alerts::delete_rule(&mut tx, id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_alert_rule",
        "alert_rule",
        id,
        serde_json::json!({ "name": rule.name }),
    )
    .await
}

pub async fn active(s: &AppState, actor: &Actor) -> Result<Vec<ActiveAlert>, Error> {
    let ds = visible_departments(actor)?;
    Ok(zy_store::alerts::active(&s.store)
        .await?
        .into_iter()
        .filter(|(_, d)| match &ds {
            None => true,
            Some(ds) => d.as_ref().is_some_and(|d| ds.contains(d)),
        })
        .map(|(a, _)| a)
        .collect())
}

pub async fn history(
    s: &AppState,
    actor: &Actor,
    limit: Option<i64>,
) -> Result<Vec<AlertEvent>, Error> {
    let limit = limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation(
            "limit",
            t!("limit 须在 1 到 1000 之间", "limit must be 1–1000"),
        ));
    }
    let ds = visible_departments(actor)?;
    zy_store::alerts::events(&s.store, ds.as_deref(), limit).await
}

pub async fn list_silences(s: &AppState, actor: &Actor) -> Result<Vec<Silence>, Error> {
    let ds = visible_departments(actor)?;
    Ok(zy_store::alerts::silences(&s.store, Timestamp::now())
        .await?
        .into_iter()
        .filter(|x| match &ds {
            None => true,
            Some(ds) => x.department_id.as_ref().is_some_and(|d| ds.contains(d)),
        })
        .collect())
}

pub async fn create_silence(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewSilence,
) -> Result<Silence, Error> {
    let now = Timestamp::now();
    let (starts_at, ends_at) = b.validate(now)?;
    let (scope, id) = parse_target(b.scope.as_str(), &b.id)?;
    let policy_scope = resolve(s, scope, id).await?;
    authorize(&actor.principal, Action::AlertManage(policy_scope))?;
    let silence = Silence {
        id: uuid::Uuid::now_v7().to_string(),
        scope,
        entity_id: id.to_string(),
        department_id: department_of(policy_scope).map(|d| d.to_string()),
        starts_at,
        ends_at,
        reason: b.reason.trim().to_string(),
        created_by: actor.user.username.clone(),
        created_at: now,
    };
    let mut tx = s.store.begin_write().await?;
    zy_store::alerts::insert_silence(&mut tx, &silence).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_silence",
        "alert_silence",
        &silence.id,
        serde_json::json!({ "scope": scope.as_str(), "entity": silence.entity_id, "reason": silence.reason }),
    )
    .await?;
    Ok(silence)
}

pub async fn delete_silence(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
) -> Result<(), Error> {
    let mut tx = s.store.begin_write().await?;
    let silence = zy_store::alerts::get_silence(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("alert_silence", id))?;
    authorize(
        &actor.principal,
        Action::AlertManage(manage_scope(silence.department_id.as_deref())),
    )?;
    zy_store::alerts::delete_silence(&mut tx, id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_silence",
        "alert_silence",
        id,
        serde_json::json!({ "reason": silence.reason }),
    )
    .await
}
