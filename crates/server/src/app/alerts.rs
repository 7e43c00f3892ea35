//! Alert use cases: rules and silences (set by department admins for their department's
//! resources, by the platform admin for the infrastructure and by a provider's operators
//! for its hosts, zones and itself), and what each caller sees of rules, active alerts,
//! the history and silences — everything of the platform for those who read the whole
//! infrastructure (platform admin, supervisor), their provider's for its operators, their
//! departments' for department people.

use super::commit_audited;
use super::metrics::{department_of, parse_target, resolve};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::alerts::*;
use zy_model::id::ProviderId;
use zy_model::metrics::MetricScope;
use zy_model::role::{Role, Scope};
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, provider_visibility, Action, ProviderVisibility};

/// What a caller who does not read everything sees: its departments' rules, silences and
/// alerts, and those of the infrastructure of the providers it operates for.
struct Visible {
    departments: Vec<String>,
    providers: Vec<ProviderId>,
    /// Rules about the infrastructure of `providers`.
    infra_rules: Vec<String>,
}

impl Visible {
    fn rule(&self, id: &str, department: Option<&String>) -> bool {
        department.is_some_and(|d| self.departments.contains(d))
            || self.infra_rules.iter().any(|r| r == id)
    }
}

/// The provider of a rule's or silence's infrastructure entity (`None` for a department's
/// resources, or when the entity is gone).
async fn provider_of(
    s: &AppState,
    scope: MetricScope,
    entity: &str,
) -> Result<Option<ProviderId>, Error> {
    zy_store::inventory::provider_of(s.store.pool(), scope.as_str(), entity).await
}

/// `None`: everything; otherwise what the caller sees.
async fn visible(s: &AppState, actor: &Actor) -> Result<Option<Visible>, Error> {
    let departments = visible_departments(actor)?;
    let Some(departments) = departments else {
        return Ok(None);
    };
    let providers = match provider_visibility(&actor.principal, |pv| {
        Action::MetricsRead(pv.map(Scope::Provider))
    }) {
        ProviderVisibility::All => return Ok(None),
        ProviderVisibility::Some(v) => v,
    };
    let mut infra_rules = Vec::new();
    if !providers.is_empty() {
        for r in zy_store::alerts::rules(&s.store, None).await? {
            if r.department_id.is_none()
                && provider_of(s, r.scope, &r.entity_id)
                    .await?
                    .is_some_and(|p| providers.contains(&p))
            {
                infra_rules.push(r.id);
            }
        }
    }
    Ok(Some(Visible {
        departments,
        providers,
        infra_rules,
    }))
}

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
            Scope::Platform | Scope::Provider(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(Some(out))
}

pub async fn list_rules(s: &AppState, actor: &Actor) -> Result<Vec<AlertRule>, Error> {
    let v = visible(s, actor).await?;
    let all = zy_store::alerts::rules(&s.store, None).await?;
    Ok(match v {
        None => all,
        Some(v) => all
            .into_iter()
            .filter(|r| v.rule(&r.id, r.department_id.as_ref()))
            .collect(),
    })
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

/// The scope whose managers may change a rule or silence: its department, or the
/// provider whose infrastructure it is about (`None`: the platform admin's alone).
async fn manage_scope(
    s: &AppState,
    department_id: Option<&str>,
    scope: MetricScope,
    entity: &str,
) -> Result<Option<Scope>, Error> {
    if let Some(d) = department_id.and_then(|d| d.parse().ok()) {
        return Ok(Some(Scope::Department(d)));
    }
    Ok(provider_of(s, scope, entity).await?.map(Scope::Provider))
}

pub async fn delete_rule(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
) -> Result<(), Error> {
    let rule = {
        let mut tx = s.store.begin_write().await?;
        zy_store::alerts::get_rule(&mut tx, id)
            .await?
            .ok_or_else(|| Error::not_found("alert_rule", id))?
    };
    let scope = manage_scope(
        s,
        rule.department_id.as_deref(),
        rule.scope,
        &rule.entity_id,
    )
    .await?;
    authorize(&actor.principal, Action::AlertManage(scope))?;
    let mut tx = s.store.begin_write().await?;
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
    let v = visible(s, actor).await?;
    Ok(zy_store::alerts::active(&s.store)
        .await?
        .into_iter()
        .filter(|(a, d)| match &v {
            None => true,
            Some(v) => v.rule(&a.rule_id, d.as_ref()),
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
    Ok(match visible(s, actor).await? {
        None => zy_store::alerts::events(&s.store, None, &[], limit).await?,
        Some(v) => {
            zy_store::alerts::events(&s.store, Some(&v.departments), &v.infra_rules, limit).await?
        }
    })
}

pub async fn list_silences(s: &AppState, actor: &Actor) -> Result<Vec<Silence>, Error> {
    let v = visible(s, actor).await?;
    let mut out = Vec::new();
    for x in zy_store::alerts::silences(&s.store, Timestamp::now()).await? {
        let shown = match &v {
            None => true,
            Some(v) => match &x.department_id {
                Some(d) => v.departments.contains(d),
                None => provider_of(s, x.scope, &x.entity_id)
                    .await?
                    .is_some_and(|p| v.providers.contains(&p)),
            },
        };
        if shown {
            out.push(x);
        }
    }
    Ok(out)
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
    let silence = {
        let mut tx = s.store.begin_write().await?;
        zy_store::alerts::get_silence(&mut tx, id)
            .await?
            .ok_or_else(|| Error::not_found("alert_silence", id))?
    };
    let scope = manage_scope(
        s,
        silence.department_id.as_deref(),
        silence.scope,
        &silence.entity_id,
    )
    .await?;
    authorize(&actor.principal, Action::AlertManage(scope))?;
    let mut tx = s.store.begin_write().await?;
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
