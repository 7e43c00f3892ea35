//! High availability as operators use it: recoveries with their timings, HA policies per
//! instance and per host group, and maintenance evacuation (the `host_evacuator` task
//! live-migrates a host's running instances away, one saga each, at most
//! [`PARALLEL`] at a time per host). The failure detection, fencing and restarts
//! themselves are `compute::ha`.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::time::Duration;
use zy_model::compute::{HaPolicy, HostState, InstanceState};
use zy_model::ha::*;
use zy_model::id::*;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, Action};
use zy_store::ha;

/// Live migrations one evacuation runs at once (each copies a guest's memory over the
/// network; more at once only slows each down).
pub const PARALLEL: u32 = 2;

pub async fn recoveries(
    s: &AppState,
    actor: &Actor,
    host: Option<HostId>,
    instance: Option<InstanceId>,
    limit: Option<u32>,
) -> Result<Vec<HaRecovery>, Error> {
    let v = super::inventory::infra_visibility(actor)?;
    let limit = limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation(
            "limit",
            t!("limit 须在 1 到 1000 之间", "limit must be 1–1000"),
        ));
    }
    let hosts = super::inventory::visible_hosts(s, &v).await?;
    Ok(ha::recoveries(&s.store, host, instance, limit as i64)
        .await?
        .into_iter()
        .filter(|r| hosts.as_ref().is_none_or(|h| h.contains(&r.host_id)))
        .collect())
}

/// Sets an instance's HA policy (who may operate the instance) and, for the platform
/// admin only, its restart priority.
pub async fn set_instance_ha(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: InstanceId,
    policy: HaPolicy,
    priority: Option<i32>,
) -> Result<zy_model::compute::Instance, Error> {
    let row = zy_store::instances::get(s.store.pool(), id)
        .await?
        .filter(|r| r.instance.state != InstanceState::Deleted)
        .ok_or_else(|| Error::not_found("instance", id))?;
    let i = &row.instance;
    authorize(
        &actor.principal,
        Action::InstanceOperate(i.department_id, i.project_id),
    )?;
    if let Some(p) = priority {
        authorize(&actor.principal, Action::InventoryManage)?;
        if !(0..=100).contains(&p) {
            return Err(Error::validation(
                "priority",
                t!("优先级须在 0 到 100 之间", "priority must be 0–100"),
            ));
        }
    }
    let priority = priority.unwrap_or(i.ha_priority);
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !ha::set_instance_policy(&mut tx, id, policy, priority).await? {
        return Err(Error::not_found("instance", id));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_instance_ha",
        "instance",
        &id.to_string(),
        serde_json::json!({ "policy": policy, "priority": priority }),
    )
    .await?;
    Ok(zy_store::instances::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("instance", id))?
        .instance)
}

pub async fn host_groups(s: &AppState, actor: &Actor) -> Result<Vec<HostGroup>, Error> {
    let v = super::inventory::infra_visibility(actor)?;
    let hosts = super::inventory::visible_hosts(s, &v).await?;
    // An operator sees the groups its provider's hosts are in.
    Ok(ha::host_groups(&s.store)
        .await?
        .into_iter()
        .filter(|g| {
            hosts
                .as_ref()
                .is_none_or(|h| g.hosts.iter().any(|x| h.contains(x)))
        })
        .collect())
}

/// Creates or changes a host group by name: its HA policy and its hosts.
pub async fn put_host_group(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    name: &str,
    policy: HaPolicy,
    hosts: &[HostId],
) -> Result<HostGroup, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let name = validate::name("name", name)?;
    if policy == HaPolicy::Inherit {
        return Err(Error::validation(
            "ha_policy",
            t!(
                "主机组的策略须为 restart 或 leave_stopped",
                "a host group's policy must be restart or leave_stopped"
            ),
        ));
    }
    if hosts.len() > 10_000 {
        return Err(Error::validation(
            "hosts",
            t!(
                "一个主机组至多 10000 台宿主机",
                "at most 10,000 hosts per group"
            ),
        ));
    }
    let known: std::collections::HashSet<HostId> = zy_store::inventory::hosts(&s.store, None)
        .await?
        .into_iter()
        .map(|h| h.host.id)
        .collect();
    if let Some(h) = hosts.iter().find(|h| !known.contains(h)) {
        return Err(Error::validation(
            "hosts",
            t!("宿主机 {} 不存在" ; "host {} does not exist", h),
        ));
    }
    let mut tx = s.store.begin_write().await?;
    ha::put_host_group(&mut tx, HostGroupId::new(), &name, policy, hosts).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "put_host_group",
        "host_group",
        &name,
        serde_json::json!({ "ha_policy": policy, "hosts": hosts }),
    )
    .await?;
    ha::host_groups(&s.store)
        .await?
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| Error::internal("the host group vanished"))
}

pub async fn delete_host_group(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    name: &str,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let mut tx = s.store.begin_write().await?;
    if !ha::delete_host_group(&mut tx, name).await? {
        return Err(Error::not_found("host_group", name));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_host_group",
        "host_group",
        name,
        serde_json::json!({}),
    )
    .await
}

// --- maintenance evacuation -------------------------------------------------------------

/// Puts a host into maintenance and starts emptying it (idempotent: an evacuation already
/// running is returned).
pub async fn evacuate(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    host: HostId,
) -> Result<Evacuation, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let h = zy_store::inventory::host(s.store.pool(), host)
        .await?
        .ok_or_else(|| Error::not_found("host", host))?;
    if h.host.state == HostState::Down {
        return Err(Error::conflict(t!(
            "宿主机已宕机，无法热迁移；其云主机由高可用恢复",
            "the host is down: nothing can be live-migrated off it (HA recovers its instances)"
        )));
    }
    let mut tx = s.store.begin_write().await?;
    zy_store::inventory::set_host_state(&mut tx, host, HostState::Maintenance).await?;
    let id =
        ha::start_evacuation(&mut tx, host, Some(&actor.principal.user_id.to_string())).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "evacuate_host",
        "host",
        &host.to_string(),
        serde_json::json!({ "evacuation_id": id }),
    )
    .await?;
    s.compute.placement.set_state(host, HostState::Maintenance);
    evacuation(s, actor, host).await
}

pub async fn evacuation(s: &AppState, actor: &Actor, host: HostId) -> Result<Evacuation, Error> {
    super::inventory::authorize_host(s, actor, host).await?;
    let e = ha::last_evacuation(&s.store, host).await?.ok_or_else(|| {
        Error::not_found("evacuation", host).with_details(serde_json::json!({
            "hint": "POST /v1/hosts/{id}/evacuate"
        }))
    })?;
    view(s, e).await
}

async fn view(s: &AppState, e: ha::EvacuationRow) -> Result<Evacuation, Error> {
    let (remaining, migrated, in_progress) =
        ha::evacuation_counts(&s.store, e.host_id, e.started_at).await?;
    Ok(Evacuation {
        id: e.id,
        host_id: e.host_id,
        state: e.state,
        started_at: e.started_at,
        finished_at: e.finished_at,
        remaining,
        migrated,
        in_progress,
        failures: e.failures,
    })
}

/// Ends a running evacuation (the host was enabled again).
pub async fn cancel_evacuation_in(tx: &mut zy_store::Tx, host: HostId) -> Result<(), Error> {
    if let Some(r) = ha::running_evacuation_of(tx, host).await? {
        ha::end_evacuation(tx, r, EvacuationState::Cancelled).await?;
    }
    Ok(())
}

/// The `host_evacuator` task (one replica, every 2 s).
pub struct Evacuator(pub AppState);

pub fn evacuator(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(Evacuator(s))
}

#[derive(Default, serde::Serialize)]
struct EvacPass {
    evacuations: u32,
    started: u32,
    finished: u32,
}

impl crate::tasks::Task for Evacuator {
    fn name(&self) -> &'static str {
        "host_evacuator"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(2)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let mut pass = EvacPass::default();
            for e in ha::running_evacuations(&self.0.store).await? {
                pass.evacuations += 1;
                step(&self.0, &e, &mut pass).await?;
            }
            serde_json::to_value(&pass).map_err(|e| Error::internal(e.to_string()))
        })
    }
}

/// One look at an evacuation: start migrations up to [`PARALLEL`], note the instances
/// that cannot leave, and end it when nothing more can happen.
async fn step(s: &AppState, e: &ha::EvacuationRow, pass: &mut EvacPass) -> Result<(), Error> {
    let residents = ha::residents(&s.store, e.host_id).await?;
    let mut failures = e.failures.clone();
    let known = |f: &[EvacuationFailure], id: InstanceId| f.iter().any(|x| x.instance_id == id);
    let mut in_flight = residents
        .iter()
        .filter(|r| r.row.instance.state == InstanceState::Migrating)
        .count() as u32;
    for r in &residents {
        let i = &r.row.instance;
        if known(&failures, i.id) || r.busy || i.state == InstanceState::Migrating {
            continue;
        }
        // A migration of this evacuation that failed: its reason, and no second try.
        if let Some((state, error)) =
            ha::last_migration_off(&s.store, i.id, e.host_id, e.started_at).await?
        {
            if state == "failed" {
                failures.push(EvacuationFailure {
                    instance_id: i.id,
                    reason: error.unwrap_or_else(|| "the live migration failed".into()),
                });
                continue;
            }
        }
        let refuse = match i.state {
            InstanceState::Running if r.volumes > 0 => Some(
                "挂载了云硬盘的云主机不能热迁移，请先卸载 / an instance with attached volumes cannot be live-migrated: detach them first",
            ),
            InstanceState::Running => None,
            InstanceState::Stopped => Some(
                "已停止的云主机不能热迁移：请启动或删除它 / a stopped instance cannot be live-migrated: start it or delete it",
            ),
            _ => Some(
                "云主机当前状态不能迁移 / the instance is in a state that cannot be migrated",
            ),
        };
        if let Some(why) = refuse {
            failures.push(EvacuationFailure {
                instance_id: i.id,
                reason: why.into(),
            });
            continue;
        }
        if in_flight >= PARALLEL {
            continue;
        }
        match super::agents::begin_migration(s, None, i.id, None).await {
            Ok(_) => {
                in_flight += 1;
                pass.started += 1;
            }
            Err(err) => failures.push(EvacuationFailure {
                instance_id: i.id,
                reason: format!("{} / {}", err.message.zh, err.message.en),
            }),
        }
    }
    let mut tx = s.store.begin_write().await?;
    if failures.len() != e.failures.len() {
        ha::evacuation_failure(&mut tx, e.id, &failures).await?;
    }
    let left: Vec<_> = residents
        .iter()
        .filter(|r| !known(&failures, r.row.instance.id))
        .collect();
    let end = if residents.is_empty() {
        Some(EvacuationState::Empty)
    } else if left.is_empty() && in_flight == 0 {
        Some(EvacuationState::Incomplete)
    } else {
        None
    };
    if let Some(state) = end {
        if ha::end_evacuation(&mut tx, e.id, state).await? {
            pass.finished += 1;
            tracing::info!(host = %e.host_id, state = state.as_str(), "evacuation ended");
        }
    }
    if failures.len() == e.failures.len() && end.is_none() {
        return Ok(());
    }
    super::commit_system(
        tx,
        "evacuation_progress",
        "host",
        &e.host_id.to_string(),
        serde_json::json!({ "evacuation_id": e.id, "ended": end, "failures": failures.len() }),
    )
    .await?;
    Ok(())
}
