//! Recovery after a host failure (started by the `ha_monitor` task, `compute::ha`): the
//! instance's root disk is on the zone's shared storage and its failed host is fenced.
//!
//! 1. `claim` — done by the starter: the new host's capacity and group slot claimed, the
//!    failed host's released, the instance moved there in state `recovering`. Its undo
//!    gives the new host's claim back and leaves the instance in `error` with the reason.
//! 2. `start` — the new host links the shared disk and starts the guest (or only
//!    defines it, when the policy leaves it stopped). While a copy still holds the disk's
//!    lock (the fenced host's QEMU not yet gone), QEMU refuses to open it: the step
//!    retries. Its undo stops the guest on the new host (the shared disk stays).
//! 3. `finish` — `recovering → running` (or `stopped`) and the recovery's time, in one
//!    transaction.

use crate::compute::sagas::instance::{demand, spec};
use crate::saga::{Cx, SagaDef, StepError, StepResult};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use zy_compute::PowerState;
use zy_model::compute::InstanceState;
use zy_model::ha::RecoveryOutcome;
use zy_model::id::{HaRecoveryId, HostId, InstanceId};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::instances::{self, InstanceRow};
use zy_store::sagas::SagaState;
use zy_store::Tx;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoverParams {
    pub recovery_id: HaRecoveryId,
    pub instance_id: InstanceId,
    pub failed_host_id: HostId,
    pub target_host_id: HostId,
    /// Start it (policy `restart` and it was running), or only move it.
    pub power_on: bool,
}

pub struct Recover;
pub static RECOVER: Recover = Recover;

async fn row(cx: &Cx, p: &RecoverParams) -> Result<InstanceRow, StepError> {
    instances::get(cx.store.pool(), p.instance_id)
        .await?
        .ok_or_else(|| StepError::Fail("the instance vanished".into()))
}

impl SagaDef for Recover {
    fn kind(&self) -> &'static str {
        "instance_recover"
    }
    fn done_by_starter(&self) -> usize {
        1
    }
    fn steps(&self) -> &'static [&'static str] {
        &["claim", "start", "finish"]
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let p: RecoverParams = cx.params()?;
            let r = row(cx, &p).await?;
            match step {
                0 => Ok(()),
                1 => {
                    if r.instance.state != InstanceState::Recovering
                        || r.instance.host_id != Some(p.target_host_id)
                    {
                        return Ok(());
                    }
                    let s = spec(&r)
                        .ok_or_else(|| StepError::Fail("the instance has no host".into()))?;
                    let provider = r
                        .instance
                        .provider_id
                        .ok_or_else(|| StepError::Fail("the instance has no provider".into()))?;
                    let driver = cx.compute.drivers.get(provider)?;
                    driver.create_disk(&s).await.map_err(|e| {
                        StepError::from(e).with_context("the new host cannot reach the shared disk")
                    })?;
                    let power = if p.power_on {
                        PowerState::Running
                    } else {
                        PowerState::Stopped
                    };
                    driver.ensure_instance(&s, power).await.map_err(|e| {
                        // A copy on the fenced host still holding the disk's lock shows up
                        // here; so does a host that is busy: both pass with time.
                        StepError::Retry(format!(
                            "the new host cannot start the guest yet (is the disk still locked by the failed host?): {e}"
                        ))
                    })?;
                    Ok(())
                }
                _ => finish(cx, &p, &r).await,
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let p: RecoverParams = cx.params()?;
            let r = row(cx, &p).await?;
            match step {
                0 => give_back(cx, &p, &r).await,
                2 => {
                    // The recovery's end is taken back: `recovering` again, so the
                    // earlier undos stop the guest and give the claim back.
                    let mut tx = cx.begin().await?;
                    let back = matches!(
                        r.instance.state,
                        InstanceState::Running | InstanceState::Stopped
                    ) && r.instance.host_id == Some(p.target_host_id)
                        && instances::transition(
                            &mut tx,
                            p.instance_id,
                            r.instance.state,
                            InstanceState::Recovering,
                            "the recovery's end is undone",
                        )
                        .await?;
                    if back {
                        zy_store::ha::reopen_recovery(&mut tx, p.recovery_id).await?;
                    }
                    cx.commit(tx).await?;
                    Ok(())
                }
                1 => {
                    if let Some(provider) = r.instance.provider_id {
                        let driver = cx.compute.drivers.get(provider)?;
                        driver
                            .delete_instance(p.instance_id.0, p.target_host_id.0)
                            .await?;
                    }
                    Ok(())
                }
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
            let p: RecoverParams =
                serde_json::from_str(&cx.row.params).map_err(|e| Error::internal(e.to_string()))?;
            // A delete (or stop) asked for meanwhile comes next.
            crate::compute::sagas::instance::ensure_next(tx, p.instance_id).await?;
            Ok(())
        })
    }
    fn max_attempts(&self) -> i64 {
        // The disk lock of a fenced host's copy goes with its QEMU; the retries (200 ms …
        // 30 s apart) cover a few minutes before giving up.
        20
    }
}

async fn finish(cx: &mut Cx, p: &RecoverParams, r: &InstanceRow) -> StepResult {
    let to = if p.power_on {
        InstanceState::Running
    } else {
        InstanceState::Stopped
    };
    let now = Timestamp::now();
    let mut tx = cx.begin().await?;
    if r.instance.state == InstanceState::Recovering
        && instances::transition(
            &mut tx,
            p.instance_id,
            InstanceState::Recovering,
            to,
            &format!(
                "recovered on host {} after host {} failed",
                p.target_host_id, p.failed_host_id
            ),
        )
        .await?
    {
        if !p.power_on {
            // Left stopped by policy: it stays stopped until someone starts it.
            sqlx_desired_stopped(&mut tx, p.instance_id).await?;
        }
        let outcome = if p.power_on {
            RecoveryOutcome::Restarted
        } else {
            RecoveryOutcome::LeftStopped
        };
        zy_store::ha::finish_recovery(&mut tx, p.recovery_id, outcome, Some(now), None).await?;
    }
    cx.commit(tx).await?;
    Ok(())
}

async fn sqlx_desired_stopped(tx: &mut Tx, id: InstanceId) -> Result<(), Error> {
    zy_store::ha::leave_stopped(tx, id).await
}

/// The undo of the starter's claim: the new host's claim goes back and the instance is
/// left in `error` on no host, with the reason (it holds no capacity anywhere; its shared
/// disk is kept, and a delete removes it).
async fn give_back(cx: &mut Cx, p: &RecoverParams, r: &InstanceRow) -> StepResult {
    let why = cx
        .row
        .error
        .clone()
        .unwrap_or_else(|| "the restart was undone".into());
    let why = format!(
        "宿主机 {} 故障后未能在宿主机 {} 上恢复 / could not be recovered on host {} after host {} failed: {why}",
        p.failed_host_id, p.target_host_id, p.target_host_id, p.failed_host_id
    );
    let mut tx = cx.begin().await?;
    if r.instance.state == InstanceState::Recovering
        && instances::transition(
            &mut tx,
            p.instance_id,
            InstanceState::Recovering,
            InstanceState::Error,
            &why,
        )
        .await?
    {
        zy_store::inventory::release_capacity(&mut tx, p.target_host_id, demand(&r.instance))
            .await?;
        instances::release_anti_affinity_slot_on(&mut tx, p.instance_id, p.target_host_id).await?;
        instances::set_error(&mut tx, p.instance_id, &why).await?;
        instances::set_flag(&mut tx, p.instance_id, instances::Flag::CapacityHeld, false).await?;
        zy_store::ha::finish_recovery(
            &mut tx,
            p.recovery_id,
            RecoveryOutcome::Failed,
            None,
            Some(&why),
        )
        .await?;
    }
    cx.commit(tx).await?;
    Ok(())
}
