//! The volume sagas. The API reserves in the database (the attachment, the quota and pool
//! space of a larger size) in the transaction that starts the saga; the host is asked
//! only afterwards, outside any transaction, and its refusal undoes the reservation.
//!
//! - attach: reserve (volume `in_use` for the instance) → hot-plug on the host
//! - detach: unplug on the host → release (volume `available`); the database never calls
//!   a volume free while it may still be plugged in
//! - extend: reserve (quota, pool, new size) → grow on the host (re-ensured when attached)
//! - delete (forward-only; the user's delete and the recycle bin's purge): delete at the
//!   provider (an OpenStack provider's Cinder volume; a volume it does not have is done)
//!   → release (the row, its pool space and quota, metered in the same transaction)

use crate::saga::{Cx, SagaDef, StepError, StepResult};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use zy_compute::DriverError;
use zy_model::compute::QuotaLimits;
use zy_model::id::{InstanceId, VolumeId};
use zy_store::instances::InstanceRow;
use zy_store::volumes;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub volume_id: VolumeId,
    pub instance_id: InstanceId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removal {
    pub volume_id: VolumeId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Growth {
    pub volume_id: VolumeId,
    pub from_gib: u64,
    pub to_gib: u64,
}

async fn instance(cx: &Cx, id: InstanceId) -> Result<Option<InstanceRow>, StepError> {
    Ok(zy_store::instances::get(cx.store.pool(), id).await?)
}

async fn size_of(cx: &Cx, id: VolumeId) -> Result<u64, StepError> {
    Ok(volumes::get(cx.store.pool(), id)
        .await?
        .map(|v| v.size_gib)
        .unwrap_or(0))
}

async fn plug(cx: &Cx, a: &Attachment, size_gib: u64) -> StepResult {
    let Some(row) = instance(cx, a.instance_id).await? else {
        return Err(StepError::Fail("the instance is gone".into()));
    };
    let (Some(host), Some(provider)) = (row.instance.host_id, row.instance.provider_id) else {
        return Err(StepError::Fail("the instance has no host".into()));
    };
    let driver = cx.compute.drivers.get(provider)?;
    driver
        .attach_volume(a.volume_id.0, size_gib, a.instance_id.0, host.0)
        .await?;
    Ok(())
}

async fn unplug(cx: &Cx, a: &Attachment) -> StepResult {
    let Some(row) = instance(cx, a.instance_id).await? else {
        return Ok(());
    };
    let (Some(host), Some(provider)) = (row.instance.host_id, row.instance.provider_id) else {
        return Ok(());
    };
    let driver = cx.compute.drivers.get(provider)?;
    match driver
        .detach_volume(a.volume_id.0, a.instance_id.0, host.0)
        .await
    {
        // A dead host has let go of it already.
        Ok(()) | Err(DriverError::HostDown(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub struct Attach;
pub static ATTACH: Attach = Attach;

impl SagaDef for Attach {
    fn kind(&self) -> &'static str {
        "volume_attach"
    }
    fn done_by_starter(&self) -> usize {
        1
    }
    fn steps(&self) -> &'static [&'static str] {
        &["reserve", "hot_plug"]
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let a: Attachment = cx.params()?;
            match step {
                // The API marked the volume in use for the instance.
                0 => Ok(()),
                _ => {
                    let size = size_of(cx, a.volume_id).await?;
                    plug(cx, &a, size).await
                }
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let a: Attachment = cx.params()?;
            match step {
                0 => {
                    let mut tx = cx.begin().await?;
                    volumes::release_attachment(&mut tx, a.volume_id, a.instance_id).await?;
                    cx.commit(tx).await
                }
                _ => unplug(cx, &a).await,
            }
        })
    }
}

pub struct Detach;
pub static DETACH: Detach = Detach;

impl SagaDef for Detach {
    fn kind(&self) -> &'static str {
        "volume_detach"
    }
    fn steps(&self) -> &'static [&'static str] {
        &["unplug", "release"]
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let a: Attachment = cx.params()?;
            match step {
                0 => unplug(cx, &a).await,
                _ => {
                    let mut tx = cx.begin().await?;
                    volumes::release_attachment(&mut tx, a.volume_id, a.instance_id).await?;
                    cx.commit(tx).await
                }
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let a: Attachment = cx.params()?;
            if step == 1 {
                // The release may have been recorded before the failure: attached again
                // (conditional on nobody having taken the volume meanwhile).
                let mut tx = cx.begin().await?;
                volumes::set_attachment(&mut tx, a.volume_id, Some(a.instance_id)).await?;
                return cx.commit(tx).await;
            }
            if step == 0 {
                // The database says attached: make sure the host agrees again.
                let size = size_of(cx, a.volume_id).await?;
                if let Err(StepError::Fail(m)) = plug(cx, &a, size).await {
                    tracing::warn!(volume = %a.volume_id, error = %m, "could not plug a volume back after a failed detach");
                }
            }
            Ok(())
        })
    }
}

pub struct Extend;
pub static EXTEND: Extend = Extend;

impl SagaDef for Extend {
    fn kind(&self) -> &'static str {
        "volume_extend"
    }
    fn done_by_starter(&self) -> usize {
        1
    }
    fn steps(&self) -> &'static [&'static str] {
        &["reserve", "grow_on_host"]
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let g: Growth = cx.params()?;
            if step == 0 {
                // Quota, pool space and the new size were taken by the API.
                return Ok(());
            }
            let Some(v) = volumes::get(cx.store.pool(), g.volume_id).await? else {
                return Err(StepError::Fail("the volume is gone".into()));
            };
            match v.instance_id {
                Some(i) => {
                    plug(
                        cx,
                        &Attachment {
                            volume_id: g.volume_id,
                            instance_id: i,
                        },
                        g.to_gib,
                    )
                    .await
                }
                // Not attached: the next attach plugs it in at its new size.
                None => Ok(()),
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            if step != 0 {
                return Ok(());
            }
            let g: Growth = cx.params()?;
            let Some(v) = volumes::get(cx.store.pool(), g.volume_id).await? else {
                return Ok(());
            };
            let mut tx = cx.begin().await?;
            // Conditional on the new size still being recorded: gives back once.
            if volumes::restore_size(&mut tx, g.volume_id, g.to_gib, g.from_gib).await? {
                let grow = (g.to_gib - g.from_gib) as i64;
                zy_store::inventory::claim_pool(&mut tx, v.pool_id, -grow).await?;
                let d = QuotaLimits {
                    instances: 0,
                    vcpus: 0,
                    memory_mib: 0,
                    disk_gib: grow,
                    volumes: 0,
                };
                zy_store::quotas::release(&mut tx, "department", &v.department_id.to_string(), &d)
                    .await?;
                zy_store::quotas::release(&mut tx, "project", &v.project_id.to_string(), &d)
                    .await?;
            }
            cx.commit(tx).await
        })
    }
}

pub struct Delete;
pub static DELETE: Delete = Delete;

impl SagaDef for Delete {
    fn kind(&self) -> &'static str {
        "volume_delete"
    }
    fn steps(&self) -> &'static [&'static str] {
        &["delete_at_provider", "release"]
    }
    /// Once the provider is asked to delete, the volume is not given back: failures are
    /// retried (a Cinder volume attached outside zhengyun waits until it is detached
    /// there; the saga's error says so).
    fn forward_only(&self) -> bool {
        true
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let r: Removal = cx.params()?;
            let Some(v) = volumes::get(cx.store.pool(), r.volume_id).await? else {
                return Ok(());
            };
            if step == 0 {
                let pools = zy_store::inventory::pools(&cx.store).await?;
                let zones = zy_store::inventory::zones(&cx.store).await?;
                let provider = pools
                    .iter()
                    .find(|p| p.id == v.pool_id)
                    .and_then(|p| zones.iter().find(|z| z.id == p.zone_id))
                    .map(|z| z.provider_id);
                let Some(provider) = provider else {
                    return Ok(());
                };
                let driver = cx.compute.drivers.get(provider)?;
                driver.delete_volume(v.id.0).await?;
                return Ok(());
            }
            let mut tx = cx.begin().await?;
            if !crate::app::volumes::release_in(&mut tx, &v).await? {
                return Err(StepError::Fail(
                    "the volume was attached while being deleted".into(),
                ));
            }
            cx.commit(tx).await
        })
    }
    fn undo<'a>(&'a self, _cx: &'a mut Cx, _step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async { Ok(()) })
    }
}
