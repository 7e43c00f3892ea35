//! Inspections (巡检): plans of automated checks run daily at a local hour by the
//! `inspection_runner` task, or at once ("run now"). Each run records one result per check
//! and provider; a failed one opens a ticket to the provider (or notes the repeat on the
//! open one). The platform admin owns the operational plans, the auditor the audit-chain
//! verification plans (三员分立).
//!
//! Read functions for the supervision indicators: [`provider_inspection_stats`].

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use zy_model::operations::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::operations as store;
use zy_store::Store;

/// Capacity threshold: allocated vCPUs above this share of what a zone may allocate.
pub const CAPACITY_PCT: i64 = 85;
/// Certificates expiring within this many days fail the check.
pub const CERT_DAYS: i64 = 30;
/// Agents silent for longer than this fail the host check.
pub const AGENT_SILENT_SECS: i64 = 300;

const SHANGHAI_SECS: i64 = 8 * 3600;

/// The local (Asia/Shanghai) day `YYYY-MM-DD` and hour of an instant.
pub fn local_day_hour(t: Timestamp) -> (String, i64) {
    let secs = t.0.div_euclid(1_000_000) + SHANGHAI_SECS;
    let day = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    (date, hour)
}

fn owner_of(checks: &[CheckKind]) -> &'static str {
    if checks.contains(&CheckKind::AuditChain) {
        "auditor"
    } else {
        "platform"
    }
}

pub async fn plans(s: &AppState, actor: &Actor) -> Result<Vec<InspectionPlan>, Error> {
    authorize(&actor.principal, Action::InspectionRead)?;
    store::plans(&s.store).await
}

pub async fn create_plan(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewInspectionPlan,
) -> Result<InspectionPlan, Error> {
    authorize(&actor.principal, Action::InspectionRead)?;
    let name = zy_model::validate::name("name", &b.name)?;
    let mut checks = b.checks.clone();
    checks.sort_by_key(|c| c.as_str());
    checks.dedup();
    if checks.is_empty() {
        return Err(Error::validation(
            "checks",
            t!("请至少选择一项检查", "choose at least one check"),
        ));
    }
    if checks.contains(&CheckKind::AuditChain) && checks.len() > 1 {
        return Err(Error::validation(
            "checks",
            t!(
                "审计链校验由审计管理员单独设置计划，不能与其他检查放在同一计划",
                "audit chain verification is the auditor's own plan and cannot share a plan with other checks"
            ),
        ));
    }
    let owner = owner_of(&checks);
    authorize(
        &actor.principal,
        Action::InspectionManage(owner == "auditor"),
    )?;
    let hour = b.hour.unwrap_or(2);
    if !(0..=23).contains(&hour) {
        return Err(Error::validation(
            "hour",
            t!("执行时刻须为 0 到 23 点", "the hour is 0–23"),
        ));
    }
    let plan = InspectionPlan {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        checks,
        hour,
        owner: owner.to_string(),
        enabled: true,
        last_day: None,
        created_by: actor.user.username.clone(),
        created_at: Timestamp::now(),
    };
    let mut tx = s.store.begin_write().await?;
    if !store::insert_plan(&mut tx, &plan).await? {
        return Err(Error::conflict(t!(
            "已有同名的巡检计划",
            "an inspection plan with that name exists"
        )));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_inspection_plan",
        "inspection_plan",
        &plan.id,
        serde_json::json!({ "name": plan.name, "checks": plan.checks, "hour": plan.hour }),
    )
    .await?;
    Ok(plan)
}

async fn plan_for_manage(s: &AppState, actor: &Actor, id: &str) -> Result<InspectionPlan, Error> {
    authorize(&actor.principal, Action::InspectionRead)?;
    let plan = store::get_plan(&s.store, id)
        .await?
        .ok_or_else(|| Error::not_found("inspection_plan", id))?;
    authorize(
        &actor.principal,
        Action::InspectionManage(plan.owner == "auditor"),
    )?;
    Ok(plan)
}

pub async fn delete_plan(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
) -> Result<(), Error> {
    let plan = plan_for_manage(s, actor, id).await?;
    let mut tx = s.store.begin_write().await?;
    if !store::delete_plan(&mut tx, id).await? {
        return Err(Error::not_found("inspection_plan", id));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_inspection_plan",
        "inspection_plan",
        id,
        serde_json::json!({ "name": plan.name }),
    )
    .await
}

/// Runs a plan now (its owner), recording the run like a scheduled one.
pub async fn run_now(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
) -> Result<InspectionRun, Error> {
    let plan = plan_for_manage(s, actor, id).await?;
    let run = execute(s, &plan, "manual").await?;
    let tx = s.store.begin_write().await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "run_inspection_plan",
        "inspection_plan",
        id,
        serde_json::json!({ "run": run.id, "passed": run.passed, "failed": run.failed }),
    )
    .await?;
    Ok(run)
}

pub async fn runs(
    s: &AppState,
    actor: &Actor,
    limit: Option<i64>,
) -> Result<Vec<InspectionRun>, Error> {
    authorize(&actor.principal, Action::InspectionRead)?;
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation(
            "limit",
            t!("limit 须在 1 到 1000 之间", "limit must be 1–1000"),
        ));
    }
    store::runs(&s.store, limit).await
}

pub async fn run(s: &AppState, actor: &Actor, id: &str) -> Result<InspectionRun, Error> {
    authorize(&actor.principal, Action::InspectionRead)?;
    store::get_run(&s.store, id)
        .await?
        .ok_or_else(|| Error::not_found("inspection_run", id))
}

/// What one check found: (provider or "", passed, detail), one row per provider the
/// check is about (a provider with nothing wrong gets a passing row).
async fn check(
    s: &AppState,
    c: CheckKind,
    providers: &[(String, String)],
    now: Timestamp,
) -> Result<Vec<(String, bool, String)>, Error> {
    let per_provider = |bad: Vec<(String, String)>, ok: &str| -> Vec<(String, bool, String)> {
        providers
            .iter()
            .map(|(p, _)| {
                let mine: Vec<String> = bad
                    .iter()
                    .filter(|(bp, _)| bp == p)
                    .map(|(_, d)| d.clone())
                    .collect();
                if mine.is_empty() {
                    (p.clone(), true, ok.to_string())
                } else {
                    (p.clone(), false, mine.join("；"))
                }
            })
            .collect()
    };
    Ok(match c {
        CheckKind::HostHealth => {
            let bad = store::unhealthy_hosts(&s.store, now.0 - AGENT_SILENT_SECS * 1_000_000)
                .await?
                .into_iter()
                .map(|(p, h, why)| (p, format!("{h}: {why}")))
                .collect();
            per_provider(bad, "主机与代理均正常 / hosts and agents healthy")
        }
        CheckKind::Capacity => {
            let bad = store::zone_vcpus(&s.store)
                .await?
                .into_iter()
                .filter(|(_, _, used, cap)| *cap > 0 && used * 100 > cap * CAPACITY_PCT)
                .map(|(p, z, used, cap)| (p, format!("{z}: vCPU {used}/{cap} > {CAPACITY_PCT}%")))
                .collect();
            per_provider(bad, "各可用区容量充足 / every zone has headroom")
        }
        CheckKind::CertExpiry => {
            let limit = now.0 / 1_000_000 + CERT_DAYS * 86_400;
            let bad = store::agent_certs(&s.store)
                .await?
                .into_iter()
                .filter_map(|(p, h, pem)| match zy_pki::not_after(&pem) {
                    Some(t) if t > limit => None,
                    Some(t) => Some((
                        p,
                        format!(
                            "{h}: 证书于 {} 到期 / certificate expires {}",
                            Timestamp(t * 1_000_000).to_rfc3339(),
                            Timestamp(t * 1_000_000).to_rfc3339()
                        ),
                    )),
                    None => Some((p, format!("{h}: 证书无法解析 / certificate unreadable"))),
                })
                .collect();
            per_provider(bad, "证书均在有效期内 / certificates valid")
        }
        CheckKind::AdminCheck => {
            let r = crate::compute::check::run(&s.compute, &s.store).await?;
            let detail = if r.ok {
                format!(
                    "一致 / consistent ({} hosts, {} instances)",
                    r.hosts_checked, r.instances_checked
                )
            } else {
                r.discrepancies
                    .iter()
                    .take(20)
                    .map(|d| format!("{} {}: {} ≠ {}", d.kind, d.subject, d.expected, d.actual))
                    .collect::<Vec<_>>()
                    .join("；")
            };
            vec![(String::new(), r.ok, detail)]
        }
        CheckKind::AuditChain => {
            let r = zy_store::audit::verify(&s.store, None).await?;
            let ok = r.finding.is_none();
            let detail = match &r.finding {
                None => format!("审计链完整 / chain intact ({} records)", r.checked),
                Some(f) => format!("审计链在第 {} 条断开 / chain broken at {}", f.seq, f.seq),
            };
            vec![(String::new(), ok, detail)]
        }
    })
}

/// Runs every check of a plan and records the run; failures open or update tickets in the
/// same transaction.
pub async fn execute(
    s: &AppState,
    plan: &InspectionPlan,
    trigger: &str,
) -> Result<InspectionRun, Error> {
    let started_at = super::billing::clock(&s.store).await?;
    let providers = store::provider_names(&s.store).await?;
    let mut found = Vec::new();
    for c in &plan.checks {
        for (p, passed, detail) in check(s, *c, &providers, started_at).await? {
            found.push((*c, p, passed, detail));
        }
    }
    let finished_at = super::billing::clock(&s.store).await?;
    let cfg = super::tickets::settings(&s.store).await?;
    let mut tx = s.store.begin_write().await?;
    let mut results = Vec::new();
    for (c, p, passed, detail) in found {
        let ticket_id = if passed {
            None
        } else {
            // Platform-wide checks (admin check, audit chain) go to the platform admin's
            // infrastructure tickets without a provider.
            let key = format!("inspection:{}:{}", c.as_str(), p);
            let pname = providers
                .iter()
                .find(|(id, _)| *id == p)
                .map(|x| x.1.clone())
                .unwrap_or_default();
            Some(
                super::tickets::open_system(
                    &mut tx,
                    &cfg,
                    finished_at,
                    "inspection",
                    &key,
                    format!("巡检未通过：{} {}", c.label_zh(), pname),
                    detail.clone(),
                    None,
                    (!p.is_empty()).then(|| p.clone()),
                    None,
                    TicketPriority::L3,
                )
                .await?,
            )
        };
        results.push(CheckResult {
            check: c,
            provider_id: p,
            passed,
            detail: zy_model::validate::clip(&detail, 4000),
            ticket_id,
        });
    }
    let failed = results.iter().filter(|r| !r.passed).count() as i64;
    let run = InspectionRun {
        id: uuid::Uuid::now_v7().to_string(),
        plan_id: plan.id.clone(),
        plan_name: plan.name.clone(),
        trigger: trigger.to_string(),
        started_at,
        finished_at,
        passed: failed == 0,
        checks: results.len() as i64,
        failed,
        results,
    };
    store::insert_run(&mut tx, &run).await?;
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(run)
}

/// The supervision figure: a provider's inspection results in [from, to).
pub async fn provider_inspection_stats(
    store_: &Store,
    provider_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<InspectionStats, Error> {
    store::inspection_stats(store_, provider_id, from, to).await
}

pub fn runner(s: AppState) -> Arc<dyn crate::tasks::Task> {
    Arc::new(InspectionRunner(s))
}

/// `inspection_runner` (singleton, every 30 s): runs each enabled plan once a local day,
/// at or after its hour; the day is claimed by a conditional update first, so a second
/// replica or a restart never runs it twice.
struct InspectionRunner(AppState);

impl crate::tasks::Task for InspectionRunner {
    fn name(&self) -> &'static str {
        "inspection_runner"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(30)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let s = &self.0;
            let now = super::billing::clock(&s.store).await?;
            let (day, hour) = local_day_hour(now);
            let mut ran = 0;
            for plan in store::plans(&s.store).await? {
                if !plan.enabled || hour < plan.hour || plan.last_day.as_deref() == Some(&day) {
                    continue;
                }
                let mut tx = s.store.begin_write_for(&plan.id).await?;
                let claimed = store::claim_day(&mut tx, &plan.id, &day).await?;
                tx.commit().await.map_err(zy_store::db_error)?;
                if claimed {
                    execute(s, &plan, "schedule").await?;
                    ran += 1;
                }
            }
            Ok(serde_json::json!({ "runs": ran }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_hours_are_shanghai_time() {
        // 2026-11-30T18:30:00Z is 2026-12-01 02:30 in Shanghai.
        let t = Timestamp(1_796_063_400 * 1_000_000);
        assert_eq!(local_day_hour(t), ("2026-12-01".to_string(), 2));
        let t = Timestamp((1_796_063_400 - 3 * 3600) * 1_000_000);
        assert_eq!(local_day_hour(t), ("2026-11-30".to_string(), 23));
    }
}
