//! Consolidation (资源整合): the platform admin asks for a plan that frees hosts — the pure
//! planner `zy_scheduler::plan_consolidation` works on the current placement — reads the
//! expected utilisation and the hosts it frees, approves it, and the
//! `consolidation_executor` task carries it out one live migration at a time (each a
//! migration saga); it can be stopped between any two moves, and a move whose instance
//! changed meanwhile is skipped with the reason.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::time::Duration;
use zy_model::compute::InstanceState;
use zy_model::ha::*;
use zy_model::id::*;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_scheduler as sched;
use zy_store::ha::{self, PlanBody, PlanRow};

/// The default ceiling on receiving hosts: the seeds' 60–80 % utilisation target.
pub const DEFAULT_CEILING_PERMILLE: u32 = 800;

fn share(o: &sched::Occupancy) -> PlanUtilisation {
    PlanUtilisation {
        hosts_in_use: o.hosts_in_use,
        cpu_alloc_permille: o.vcpu_share_permille(),
        mem_alloc_permille: o.memory_share_permille(),
    }
}

/// Computes a plan from the current placement and stores it as `proposed` (replacing
/// proposals nobody approved).
pub async fn propose(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    ceiling_permille: Option<u32>,
    zone: Option<ZoneId>,
) -> Result<ConsolidationPlan, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let ceiling = ceiling_permille.unwrap_or(DEFAULT_CEILING_PERMILLE);
    if !(500..=1000).contains(&ceiling) {
        return Err(Error::validation(
            "ceiling_permille",
            t!(
                "目标利用率上限须在 500‰ 到 1000‰ 之间",
                "the utilisation ceiling must be 500–1000 ‰"
            ),
        ));
    }
    if let Some(z) = zone {
        zy_store::inventory::zones(&s.store)
            .await?
            .into_iter()
            .find(|x| x.id == z)
            .ok_or_else(|| Error::not_found("zone", z))?;
    }
    let body = plan_now(s, ceiling, zone).await?;
    let id = ConsolidationPlanId::new();
    let mut tx = s.store.begin_write().await?;
    ha::insert_plan(&mut tx, id, &body, &actor.principal.user_id.to_string()).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "propose_consolidation",
        "consolidation_plan",
        &id.to_string(),
        serde_json::json!({ "moves": body.moves.len(), "freed_hosts": body.freed_hosts.len(), "ceiling_permille": ceiling, "zone_id": zone }),
    )
    .await?;
    get(s, actor, id).await
}

/// The planner's input from the database: hosts of providers that can live-migrate, and
/// the instances on them (only running ones, without volumes or a saga at work, move).
async fn plan_now(s: &AppState, ceiling: u32, only: Option<ZoneId>) -> Result<PlanBody, Error> {
    let hosts = zy_store::inventory::hosts(&s.store, None).await?;
    let mut zone_idx: HashMap<ZoneId, u32> = HashMap::new();
    let mut by_slot: HashMap<u32, HostId> = HashMap::new();
    let mut slot_of: HashMap<HostId, u32> = HashMap::new();
    let mut plan_hosts = Vec::new();
    for h in &hosts {
        let movable = s
            .compute
            .drivers
            .get(h.host.provider_id)
            .is_ok_and(|d| d.live_migration());
        if !movable || only.is_some_and(|z| z != h.host.zone_id) {
            continue;
        }
        let n = zone_idx.len() as u32;
        let zone = *zone_idx.entry(h.host.zone_id).or_insert(n);
        let host = sched::Host {
            id: sched::HostId(h.slot),
            zone,
            provider: 0,
            state: crate::compute::placement::to_state(h.host.state),
            vcpus: h.host.vcpus,
            memory_mib: h.host.memory_mib,
            disk_gib: h.host.disk_gib,
            gpus: h.host.gpus,
            cpu_ratio_permille: h.host.cpu_ratio_permille,
            mem_ratio_permille: h.host.mem_ratio_permille,
        };
        plan_hosts.push(sched::PlanHost::of(&host));
        by_slot.insert(h.slot, h.host.id);
        slot_of.insert(h.host.id, h.slot);
    }
    let placed = ha::placed(&s.store).await?;
    // Measured CPU of the last reading (on the replica that collects); the planner keeps
    // receiving hosts' measured CPU under the ceiling too.
    let (_, latest) = s.compute.metrics_latest.get();
    let cpu_idx = zy_model::metrics::Series::Cpu as usize;
    let mut groups: HashMap<ServerGroupId, u64> = HashMap::new();
    let mut names: HashMap<u64, (InstanceId, String)> = HashMap::new();
    let mut instances = Vec::new();
    for (n, p) in placed.iter().enumerate() {
        let Some(slot) = slot_of.get(&p.host_id) else {
            continue;
        };
        let group = p.group.as_ref().map(|(g, policy)| {
            let k = groups.len() as u64;
            let gid = *groups.entry(*g).or_insert(k);
            let pol = if policy == "affinity" {
                sched::GroupPolicy::Affinity
            } else {
                sched::GroupPolicy::AntiAffinity
            };
            (sched::GroupId(gid), pol)
        });
        names.insert(n as u64, (p.id, p.name.clone()));
        instances.push(sched::PlanInstance {
            id: sched::InstanceId(n as u64),
            host: sched::HostId(*slot),
            demand: sched::Usage {
                vcpus: p.vcpus,
                memory_mib: p.memory_mib,
                disk_gib: p.disk_gib,
                gpus: p.gpus,
            },
            // CPU % of the allotted vCPUs → thousandths of a busy vCPU.
            cpu_used_millis: latest
                .get(&("instance", p.id.to_string()))
                .and_then(|v| v[cpu_idx])
                .map(|pct| (pct.clamp(0.0, 100.0) * 10.0 * p.vcpus as f64) as u32)
                .unwrap_or(0),
            group,
            movable: p.state == InstanceState::Running && p.volumes == 0 && !p.busy,
        });
    }
    let plan = sched::plan_consolidation(&sched::ConsolidationInput {
        hosts: plan_hosts,
        instances,
        target: sched::Target {
            ceiling_permille: ceiling,
            ..sched::Target::default()
        },
    });
    let host = |h: sched::HostId| by_slot.get(&h.0).copied();
    let moves = plan
        .moves
        .iter()
        .filter_map(|m| {
            let (id, name) = names.get(&m.instance.0)?.clone();
            Some(PlanMove {
                instance_id: id,
                instance_name: name,
                from_host_id: host(m.from)?,
                to_host_id: host(m.to)?,
            })
        })
        .collect();
    Ok(PlanBody {
        moves,
        freed_hosts: plan.freed_hosts.iter().filter_map(|h| host(*h)).collect(),
        before: share(&plan.before.overall),
        after: share(&plan.after.overall),
    })
}

/// Plans span every provider's hosts: the platform admin's and the supervisor's.
pub async fn list(s: &AppState, actor: &Actor) -> Result<Vec<ConsolidationPlan>, Error> {
    authorize(&actor.principal, Action::InventoryRead(None))?;
    Ok(ha::plans(&s.store, 50)
        .await?
        .into_iter()
        .map(|p| p.plan)
        .collect())
}

pub async fn get(
    s: &AppState,
    actor: &Actor,
    id: ConsolidationPlanId,
) -> Result<ConsolidationPlan, Error> {
    authorize(&actor.principal, Action::InventoryRead(None))?;
    Ok(ha::plan(&s.store, id)
        .await?
        .ok_or_else(|| Error::not_found("consolidation_plan", id))?
        .plan)
}

/// Approves a proposed plan (the generation the approver saw): it starts executing.
pub async fn approve(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ConsolidationPlanId,
    generation: i64,
) -> Result<ConsolidationPlan, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let p = get(s, actor, id).await?;
    if p.state != PlanState::Proposed {
        return Err(Error::conflict(t!(
            "只有待批准的方案可以批准（当前：{}）" ; "only a proposed plan can be approved (it is {})",
            p.state.as_str()
        )));
    }
    if p.moves.is_empty() {
        return Err(Error::conflict(t!(
            "该方案没有需要执行的迁移",
            "the plan has no migration to carry out"
        )));
    }
    if ha::executing_plan(&s.store).await?.is_some() {
        return Err(Error::conflict(t!(
            "已有方案正在执行，请先等待其完成或停止它",
            "another plan is being carried out: wait for it or stop it first"
        )));
    }
    let mut tx = s.store.begin_write().await?;
    if !ha::plan_transition(
        &mut tx,
        id,
        PlanState::Proposed,
        PlanState::Executing,
        Some(generation),
        Some(&actor.principal.user_id.to_string()),
        None,
    )
    .await?
    {
        return Err(Error::conflict(t!(
            "方案已被他人修改，请刷新后重试",
            "the plan changed meanwhile; reload it and try again"
        ))
        .with_details(serde_json::json!({ "reason": "changed_meanwhile" })));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "approve_consolidation_plan",
        "consolidation_plan",
        &id.to_string(),
        serde_json::json!({ "moves": p.moves.len() }),
    )
    .await?;
    get(s, actor, id).await
}

/// Stops an executing plan after the move in progress (or withdraws a proposal).
pub async fn stop(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ConsolidationPlanId,
) -> Result<ConsolidationPlan, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let p = get(s, actor, id).await?;
    let mut tx = s.store.begin_write().await?;
    let by = actor.principal.user_id.to_string();
    let stopped = match p.state {
        PlanState::Executing | PlanState::Proposed => {
            ha::plan_transition(
                &mut tx,
                id,
                p.state,
                PlanState::Stopped,
                None,
                Some(&by),
                None,
            )
            .await?
        }
        _ => false,
    };
    if !stopped {
        return Err(Error::conflict(t!(
            "该方案已结束（{}）" ; "the plan has ended ({})",
            p.state.as_str()
        )));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "stop_consolidation_plan",
        "consolidation_plan",
        &id.to_string(),
        serde_json::json!({ "done_moves": p.next_move }),
    )
    .await?;
    get(s, actor, id).await
}

/// The `consolidation_executor` task (one replica, every 2 s).
pub struct Executor(pub AppState);

pub fn executor(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(Executor(s))
}

impl crate::tasks::Task for Executor {
    fn name(&self) -> &'static str {
        "consolidation_executor"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(2)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let Some(p) = ha::executing_plan(&self.0.store).await? else {
                return Ok(serde_json::json!({ "executing": null }));
            };
            let done = advance(&self.0, &p).await?;
            Ok(serde_json::json!({ "executing": p.plan.id, "next_move": done }))
        })
    }
}

/// One step of an executing plan: wait for the move in progress, record its outcome, start
/// the next one or finish. Every record is conditional on the move index it saw.
async fn advance(s: &AppState, p: &PlanRow) -> Result<u32, Error> {
    let plan = &p.plan;
    let next = plan.next_move;
    let mut skipped = plan.skipped.clone();
    if let Some(m) = p.current_migration_id {
        match ha::migration_state(&s.store, m).await? {
            Some((state, _)) if state == "running" => return Ok(next),
            Some((state, error)) if state != "completed" => {
                if let Some(mv) = plan.moves.get(next as usize) {
                    skipped.push(EvacuationFailure {
                        instance_id: mv.instance_id,
                        reason: error.unwrap_or_else(|| format!("migration {state}")),
                    });
                }
            }
            _ => {}
        }
        let mut tx = s.store.begin_write().await?;
        if ha::plan_progress(&mut tx, plan.id, next, next + 1, None, Some(&skipped)).await? {
            tx.commit().await.map_err(zy_store::db_error)?;
        }
        return Ok(next + 1);
    }
    let Some(mv) = plan.moves.get(next as usize) else {
        let mut tx = s.store.begin_write().await?;
        if ha::plan_transition(
            &mut tx,
            plan.id,
            PlanState::Executing,
            PlanState::Done,
            None,
            None,
            None,
        )
        .await?
        {
            super::commit_system(
                tx,
                "consolidation_done",
                "consolidation_plan",
                &plan.id.to_string(),
                serde_json::json!({ "moves": plan.moves.len(), "skipped": skipped.len() }),
            )
            .await?;
        }
        return Ok(next);
    };
    // The instance must still be running on the move's source host.
    let still = zy_store::instances::get(s.store.pool(), mv.instance_id)
        .await?
        .filter(|r| {
            r.instance.host_id == Some(mv.from_host_id)
                && r.instance.state == InstanceState::Running
        });
    let started = match still {
        None => Err(format!(
            "云主机已不在原宿主机上运行，跳过 / the instance no longer runs on host {}: skipped",
            mv.from_host_id
        )),
        Some(_) => super::agents::begin_migration(s, None, mv.instance_id, Some(mv.to_host_id))
            .await
            .map_err(|e| format!("{} / {}", e.message.zh, e.message.en)),
    };
    let mut tx = s.store.begin_write().await?;
    let recorded = match started {
        Ok(m) => ha::plan_progress(&mut tx, plan.id, next, next, Some(m.id), None).await?,
        Err(reason) => {
            skipped.push(EvacuationFailure {
                instance_id: mv.instance_id,
                reason,
            });
            ha::plan_progress(&mut tx, plan.id, next, next + 1, None, Some(&skipped)).await?
        }
    };
    if recorded {
        tx.commit().await.map_err(zy_store::db_error)?;
    }
    Ok(next)
}
