//! Live migration as a saga. The API chose the target through the scheduler (the same
//! filters as a create: zone, capacity with overcommit, GPU, affinity, anti-affinity) and,
//! in the transaction that started this saga, claimed the target's capacity and group
//! slot and moved the instance `running → migrating`. Then:
//!
//! 1. `claim_target` — done by the API; its undo gives the target's claim back.
//! 2. `prepare_target` — a paused QEMU with an empty disk waits on the target; its undo
//!    removes it, but only once the guest is known to run on the source.
//! 3. `migrate` — the source mirrors disk and memory to the target and hands over.
//! 4. `resume_target` — the guest continues on the target.
//! 5. `switch_over` — one transaction moves host, zone and group slot to the target,
//!    releases the source's capacity and records the downtime.
//!
//! Whenever a host's answer is lost, the saga asks both hosts where the guest runs. If
//! neither answer can be had it waits and asks again ([`StepError::Wait`]): it never
//! throws away a copy that might be the only one.

use crate::compute::sagas::instance::{demand, place_request, spec};
use crate::saga::{Cx, SagaDef, StepError, StepResult};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use zy_compute::agent::{IncomingEndpoint, MigrationReport};
use zy_compute::PowerState;
use zy_model::agents::MigrationState;
use zy_model::compute::InstanceState;
use zy_model::id::{HostId, InstanceId, MigrationId, ZoneId};
use zy_model::Error;
use zy_store::instances::{self, InstanceRow};
use zy_store::sagas::SagaState;
use zy_store::{agents, Tx};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrateParams {
    pub migration_id: MigrationId,
    pub instance_id: InstanceId,
    pub source_host_id: HostId,
    pub target_host_id: HostId,
    pub target_zone_id: ZoneId,
}

pub struct Migrate;
pub static MIGRATE: Migrate = Migrate;

/// Where the guest runs now, as both hosts tell it.
#[derive(Debug, PartialEq, Eq)]
enum Whereabouts {
    Source,
    Target,
    /// A host did not answer, or the answers do not settle it.
    Unknown,
}

async fn row(cx: &Cx, p: &MigrateParams) -> Result<InstanceRow, StepError> {
    instances::get(cx.store.pool(), p.instance_id)
        .await?
        .ok_or_else(|| StepError::Fail("the instance vanished".into()))
}

async fn whereabouts(cx: &Cx, p: &MigrateParams, r: &InstanceRow) -> Whereabouts {
    let Some(provider) = r.instance.provider_id else {
        return Whereabouts::Unknown;
    };
    let Ok(driver) = cx.compute.drivers.get(provider) else {
        return Whereabouts::Unknown;
    };
    let target = driver
        .status(p.instance_id.0, p.target_host_id.0)
        .await
        .ok();
    let source = driver
        .status(p.instance_id.0, p.source_host_id.0)
        .await
        .ok();
    // The source QEMU removes itself only after a completed hand-over, so while it runs
    // the guest is there (the target holds at most a paused copy waiting for the stream).
    match (source, target) {
        (Some(PowerState::Running), Some(_)) => Whereabouts::Source,
        (Some(_), Some(PowerState::Running)) => Whereabouts::Target,
        _ => Whereabouts::Unknown,
    }
}

/// After a failed call during or after the hand-over: where does the guest run?
async fn judge(cx: &Cx, p: &MigrateParams, r: &InstanceRow, why: String) -> StepResult {
    match whereabouts(cx, p, r).await {
        Whereabouts::Target => Ok(()),
        Whereabouts::Source => Err(StepError::Fail(why)),
        Whereabouts::Unknown => Err(StepError::Wait(format!(
            "{why}; asking both hosts where the guest runs before doing anything else"
        ))),
    }
}

impl SagaDef for Migrate {
    fn kind(&self) -> &'static str {
        "instance_migrate"
    }
    fn done_by_starter(&self) -> usize {
        1
    }
    fn steps(&self) -> &'static [&'static str] {
        &[
            "claim_target",
            "prepare_target",
            "migrate",
            "resume_target",
            "switch_over",
        ]
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let p: MigrateParams = cx.params()?;
            let r = row(cx, &p).await?;
            if step == 0 {
                return Ok(());
            }
            if r.instance.host_id == Some(p.target_host_id) {
                // Switched over already (the last step ran before a crash).
                return Ok(());
            }
            let provider = r
                .instance
                .provider_id
                .ok_or_else(|| StepError::Fail("the instance has no provider".into()))?;
            let driver = cx.compute.drivers.get(provider)?;
            match step {
                1 => {
                    let mut target = spec(&r)
                        .ok_or_else(|| StepError::Fail("the instance has no host".into()))?;
                    target.host_id = p.target_host_id.0;
                    let endpoint = driver.prepare_incoming(&target).await.map_err(|e| {
                        StepError::from(e).with_context("the target host could not prepare")
                    })?;
                    cx.data["endpoint"] = serde_json::to_value(&endpoint)
                        .map_err(|e| StepError::Fail(e.to_string()))?;
                    Ok(())
                }
                2 => {
                    let endpoint: IncomingEndpoint =
                        serde_json::from_value(cx.data["endpoint"].clone()).map_err(|_| {
                            StepError::Fail("the target's endpoint was not recorded".into())
                        })?;
                    match driver
                        .migrate_out(p.instance_id.0, p.source_host_id.0, &endpoint)
                        .await
                    {
                        Ok(report) => {
                            cx.data["report"] = serde_json::json!({
                                "downtime_ms": report.downtime_ms, "total_ms": report.total_ms,
                            });
                            Ok(())
                        }
                        Err(e) => judge(cx, &p, &r, format!("migration failed: {e}")).await,
                    }
                }
                3 => match driver
                    .finish_incoming(p.instance_id.0, p.target_host_id.0)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        judge(
                            cx,
                            &p,
                            &r,
                            format!("the target could not resume the guest: {e}"),
                        )
                        .await
                    }
                },
                _ => switch_over(cx, &p, &r).await,
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let p: MigrateParams = cx.params()?;
            let r = row(cx, &p).await?;
            match step {
                0 => give_back_target(cx, &p, &r).await,
                1 => {
                    // Throw the prepared guest away only once it is known to run on the
                    // source: never the only copy.
                    match whereabouts(cx, &p, &r).await {
                        Whereabouts::Source => {}
                        Whereabouts::Target => {
                            // The hand-over happened: the only copy runs on the target.
                            // Finish the move instead of undoing it (the claim's undo then
                            // finds the migration completed and gives nothing back).
                            return switch_over(cx, &p, &r).await;
                        }
                        Whereabouts::Unknown => {
                            return Err(StepError::Wait(
                                "cannot tell where the guest runs; asking again".into(),
                            ))
                        }
                    }
                    if let Some(provider) = r.instance.provider_id {
                        let driver = cx.compute.drivers.get(provider)?;
                        driver
                            .abort_incoming(p.instance_id.0, p.target_host_id.0)
                            .await?;
                    }
                    Ok(())
                }
                // QEMU keeps the source running when a migration fails: nothing to undo.
                _ => Ok(()),
            }
        })
    }
    fn finished<'a>(
        &'a self,
        cx: &'a Cx,
        tx: &'a mut Tx,
        _outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let p: MigrateParams =
                serde_json::from_str(&cx.row.params).map_err(|e| Error::internal(e.to_string()))?;
            // Whatever was asked for meanwhile (a stop, a delete) comes next.
            crate::compute::sagas::instance::ensure_next(tx, p.instance_id).await?;
            Ok(())
        })
    }
    fn max_attempts(&self) -> i64 {
        3
    }
}

async fn switch_over(cx: &mut Cx, p: &MigrateParams, r: &InstanceRow) -> StepResult {
    let report: MigrationReport = MigrationReport {
        downtime_ms: cx.data["report"]["downtime_ms"].as_u64().unwrap_or(0),
        total_ms: cx.data["report"]["total_ms"].as_u64().unwrap_or(0),
        bytes: 0,
    };
    let d = demand(&r.instance);
    let mut tx = cx.begin().await?;
    if agents::finish_migration(
        &mut tx,
        p.migration_id,
        MigrationState::Completed,
        Some(report.downtime_ms),
        Some(report.total_ms),
        None,
    )
    .await?
        && agents::move_instance(
            &mut tx,
            p.instance_id,
            p.source_host_id,
            p.target_host_id,
            p.target_zone_id,
        )
        .await?
    {
        zy_store::inventory::release_capacity(&mut tx, p.source_host_id, d).await?;
        instances::release_anti_affinity_slot_on(&mut tx, p.instance_id, p.source_host_id).await?;
        instances::transition(
            &mut tx,
            p.instance_id,
            InstanceState::Migrating,
            InstanceState::Running,
            &format!(
                "live-migrated from host {} to host {} (downtime {} ms, {} ms in all)",
                p.source_host_id, p.target_host_id, report.downtime_ms, report.total_ms
            ),
        )
        .await?;
    }
    cx.commit(tx).await?;
    if let Ok(req) = place_request(&cx.compute, &cx.store, r).await {
        cx.compute.placement.unbook(p.source_host_id, &req);
    }
    reload_hosts(cx, p).await;
    Ok(())
}

/// The undo of the API's claim: the target's capacity and slot go back, the instance is
/// `running` on its source again. Once only: conditional on the migration still running.
async fn give_back_target(cx: &mut Cx, p: &MigrateParams, r: &InstanceRow) -> StepResult {
    let why = cx.row.error.clone().unwrap_or_else(|| "undone".into());
    let mut tx = cx.begin().await?;
    if agents::finish_migration(
        &mut tx,
        p.migration_id,
        MigrationState::Failed,
        None,
        None,
        Some(&why),
    )
    .await?
    {
        zy_store::inventory::release_capacity(&mut tx, p.target_host_id, demand(&r.instance))
            .await?;
        instances::release_anti_affinity_slot_on(&mut tx, p.instance_id, p.target_host_id).await?;
        instances::transition(
            &mut tx,
            p.instance_id,
            InstanceState::Migrating,
            InstanceState::Running,
            &format!(
                "live migration to host {} failed and was undone: {why}",
                p.target_host_id
            ),
        )
        .await?;
    }
    cx.commit(tx).await?;
    if let Ok(req) = place_request(&cx.compute, &cx.store, r).await {
        cx.compute.placement.unbook(p.target_host_id, &req);
    }
    reload_hosts(cx, p).await;
    Ok(())
}

async fn reload_hosts(cx: &Cx, p: &MigrateParams) {
    for h in [p.source_host_id, p.target_host_id] {
        if let Ok(Some(row)) = zy_store::inventory::host(cx.store.pool(), h).await {
            cx.compute.placement.upsert(&[row]);
        }
    }
}
