//! The steps of the instance sagas. Create = reserve quota (done by the API, in the same
//! transaction as the instance row) → place and claim capacity → create the root disk →
//! define and start. Delete and the undo of a failed create run the compensations in
//! reverse: remove the VM and disk, release capacity, release quota.
//!
//! Every step is idempotent: database changes are conditional on the state or on the
//! bookkeeping flag they consume (`take_flag`), driver calls are idempotent by contract.
//! So a step may run twice (after a crash, or on purpose in tests) without harm.

use super::placement::PlaceRequest;
use super::Compute;
use zy_compute::{DriverError, InstanceSpec, PowerState};
use zy_model::compute::{GroupPolicy, InstanceState, QuotaLimits};
use zy_model::id::InstanceId;
use zy_model::Error;
use zy_store::instances::{self, Flag, InstanceRow};
use zy_store::inventory::Demand;
use zy_store::{db_error, Store};

/// How a step went wrong.
#[derive(Debug)]
pub enum StepError {
    /// Worth another try later (transient driver failure, database busy).
    Retry(String),
    /// Retrying will not help: undo the create.
    Fail(String),
}

impl From<DriverError> for StepError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Transient(m) => StepError::Retry(m),
            other => StepError::Fail(other.to_string()),
        }
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Retry(format!(
            "{}: {}",
            e.message.en,
            e.internal.unwrap_or_default()
        ))
    }
}

/// What to do after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Reload the instance and take the next step.
    Continue,
    /// Nothing left to do.
    Done,
    /// Nothing left to do, and the pass was already recorded as finished.
    Finished,
}

pub type StepResult = Result<Next, StepError>;

pub fn demand(i: &zy_model::compute::Instance) -> Demand {
    Demand {
        vcpus: i.vcpus as i64,
        memory_mib: i.memory_mib as i64,
        disk_gib: i.disk_gib as i64,
        gpus: i.gpus as i64,
    }
}

pub fn quota_delta(i: &zy_model::compute::Instance) -> QuotaLimits {
    QuotaLimits {
        instances: 1,
        vcpus: i.vcpus as i64,
        memory_mib: i.memory_mib as i64,
        disk_gib: i.disk_gib as i64,
        volumes: 0,
    }
}

pub fn spec(row: &InstanceRow) -> Option<InstanceSpec> {
    let i = &row.instance;
    Some(InstanceSpec {
        instance_id: i.id.0,
        name: i.name.clone(),
        host_id: i.host_id?.0,
        vcpus: i.vcpus,
        memory_mib: i.memory_mib,
        disk_gib: i.disk_gib,
        gpus: i.gpus,
        image: i.image_name.clone(),
        user_data: row.user_data.clone(),
    })
}

async fn carriers(
    c: &Compute,
    store: &Store,
    image: zy_model::id::ImageId,
) -> Result<Vec<zy_model::id::ProviderId>, Error> {
    if let Some(v) = c
        .image_carriers
        .read()
        .ok()
        .and_then(|m| m.get(&image).cloned())
    {
        return Ok(v);
    }
    let images = zy_store::inventory::images(store).await?;
    let found = images
        .iter()
        .find(|im| im.id == image)
        .map(|im| im.providers.clone())
        .unwrap_or_default();
    if let Ok(mut m) = c.image_carriers.write() {
        for im in images {
            m.insert(im.id, im.providers);
        }
    }
    Ok(found)
}

async fn place_request(
    c: &Compute,
    store: &Store,
    row: &InstanceRow,
) -> Result<PlaceRequest, Error> {
    let i = &row.instance;
    let group = match i.group_id {
        Some(g) => instances::group(store.pool(), g)
            .await?
            .map(|g| (g.id, g.policy)),
        None => None,
    };
    let carriers = carriers(c, store, i.image_id).await?;
    let providers = match (row.want_provider_id, carriers.is_empty()) {
        (Some(p), true) => Some(vec![p]),
        (Some(p), false) => Some(carriers.into_iter().filter(|c| *c == p).collect()),
        (None, true) => None,
        (None, false) => Some(carriers),
    };
    Ok(PlaceRequest {
        vcpus: i.vcpus,
        memory_mib: i.memory_mib,
        disk_gib: i.disk_gib,
        gpus: i.gpus,
        zone: row.want_zone_id,
        providers,
        group,
    })
}

/// Pending/Scheduling → Provisioning: choose a host and claim its capacity (and the
/// group's slot) in one transaction, conditional on the instance still being unplaced.
pub async fn schedule(c: &Compute, store: &Store, row: &InstanceRow) -> StepResult {
    // Proposing books capacity (and a group slot) in the view, so first make sure the
    // instance is still unplaced: a repeated step must not book twice.
    match instances::get(store.pool(), row.instance.id).await? {
        Some(now)
            if matches!(
                now.instance.state,
                InstanceState::Pending | InstanceState::Scheduling
            ) => {}
        _ => return Ok(Next::Continue),
    }
    let i = &row.instance;
    let req = place_request(c, store, row).await?;
    for _ in 0..8 {
        let meta = match c.placement.propose(&req) {
            Ok(m) => m,
            Err(e) => {
                return Err(StepError::Fail(format!(
                    "{} ({})",
                    e.message.zh, e.message.en
                )))
            }
        };
        let mut tx = store.begin_write().await?;
        let from = i.state;
        let mut ok = true;
        if from == InstanceState::Pending {
            ok = instances::transition(
                &mut tx,
                i.id,
                InstanceState::Pending,
                InstanceState::Scheduling,
                "scheduling",
            )
            .await?;
        }
        if !ok
            || !instances::transition(
                &mut tx,
                i.id,
                InstanceState::Scheduling,
                InstanceState::Provisioning,
                &format!("placed on host {}", meta.id),
            )
            .await?
        {
            // Someone else moved it on (a step running twice): nothing to claim.
            drop(tx);
            c.placement.unbook(meta.id, &req);
            return Ok(Next::Continue);
        }
        let mut claimed = zy_store::inventory::claim_capacity(&mut tx, meta.id, demand(i)).await?;
        if claimed {
            if let Some((g, policy)) = req.group {
                claimed = match policy {
                    GroupPolicy::AntiAffinity => {
                        instances::take_anti_affinity_slot(&mut tx, g, meta.id, i.id).await?
                    }
                    GroupPolicy::Affinity => instances::pin_affinity(&mut tx, g, meta.id).await?,
                };
            }
        }
        if !claimed {
            // The view was stale (another replica, or a group slot): refresh and try again.
            drop(tx);
            c.placement.unbook(meta.id, &req);
            if let Some(h) = zy_store::inventory::host(store.pool(), meta.id).await? {
                c.placement.upsert(&[h]);
            }
            continue;
        }
        instances::set_placement(&mut tx, i.id, meta.id, meta.zone, meta.provider).await?;
        if let Err(e) = tx.commit().await {
            c.placement.unbook(meta.id, &req);
            return Err(db_error(e).into());
        }
        return Ok(Next::Continue);
    }
    Err(StepError::Retry(
        "capacity changed under every proposal; will retry".into(),
    ))
}

/// Provisioning → Running/Stopped: create the disk and the VM.
pub async fn provision(c: &Compute, store: &Store, row: &InstanceRow) -> StepResult {
    let i = &row.instance;
    let (Some(spec), Some(provider)) = (spec(row), i.provider_id) else {
        return Err(StepError::Fail("provisioning without a host".into()));
    };
    let driver = c.drivers.get(provider)?;
    driver.create_disk(&spec).await?;
    let target = if i.desired == InstanceState::Stopped {
        PowerState::Stopped
    } else {
        PowerState::Running
    };
    driver.ensure_instance(&spec, target).await?;
    let to = if target == PowerState::Stopped {
        InstanceState::Stopped
    } else {
        InstanceState::Running
    };
    let mut tx = store.begin_write().await?;
    instances::set_flag(&mut tx, i.id, Flag::DiskCreated, true).await?;
    instances::transition(
        &mut tx,
        i.id,
        InstanceState::Provisioning,
        to,
        "provisioned",
    )
    .await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Next::Continue)
}

/// Running ⇄ Stopped, reboot and resize on the host.
pub async fn converge_power(c: &Compute, store: &Store, row: &InstanceRow) -> StepResult {
    let i = &row.instance;
    let (Some(spec), Some(provider)) = (spec(row), i.provider_id) else {
        return Ok(Next::Done);
    };
    let driver = c.drivers.get(provider)?;
    match (i.state, i.desired) {
        (InstanceState::Running, InstanceState::Stopped) => {
            driver.ensure_instance(&spec, PowerState::Stopped).await?;
            step_tx(
                store,
                i.id,
                InstanceState::Running,
                InstanceState::Stopped,
                "stopped on request",
            )
            .await
        }
        (InstanceState::Stopped, _) if row.resize_pending => {
            driver.resize(&spec).await?;
            let mut tx = store.begin_write().await?;
            if instances::take_flag(&mut tx, i.id, Flag::ResizePending).await? {
                instances::event(
                    &mut tx,
                    i.id,
                    "stopped",
                    "stopped",
                    &format!(
                        "resized to {} ({} vCPU, {} MiB, {} GiB)",
                        i.flavor_name, i.vcpus, i.memory_mib, i.disk_gib
                    ),
                )
                .await?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(Next::Continue)
        }
        (InstanceState::Stopped, InstanceState::Running) => {
            driver.ensure_instance(&spec, PowerState::Running).await?;
            step_tx(
                store,
                i.id,
                InstanceState::Stopped,
                InstanceState::Running,
                "started on request",
            )
            .await
        }
        (InstanceState::Running, _) if row.reboot_pending => {
            driver.reboot(i.id.0, spec.host_id).await?;
            let mut tx = store.begin_write().await?;
            if instances::take_flag(&mut tx, i.id, Flag::RebootPending).await? {
                instances::event(&mut tx, i.id, "running", "running", "rebooted").await?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(Next::Continue)
        }
        _ => Ok(Next::Done),
    }
}

async fn step_tx(
    store: &Store,
    id: InstanceId,
    from: InstanceState,
    to: InstanceState,
    why: &str,
) -> StepResult {
    let mut tx = store.begin_write().await?;
    instances::transition(&mut tx, id, from, to, why).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Next::Continue)
}

/// Removes whatever the instance holds, in reverse order of creation: the VM and its disk
/// on the host, the host capacity (and group slot), then the quota. Used by delete and by
/// the undo of a failed create. Each release happens once (see `take_flag`).
pub async fn release_everything(
    c: &Compute,
    store: &Store,
    row: &InstanceRow,
) -> Result<(), StepError> {
    let i = &row.instance;
    if let (Some(host), Some(provider)) = (i.host_id, i.provider_id) {
        let driver = c.drivers.get(provider)?;
        for r in [
            driver.delete_instance(i.id.0, host.0).await,
            driver.delete_disk(i.id.0, host.0).await,
        ] {
            match r {
                // A dead host has lost the VM and its local disk already.
                Ok(()) | Err(DriverError::HostDown(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut tx = store.begin_write().await?;
        instances::take_flag(&mut tx, i.id, Flag::DiskCreated).await?;
        let released = instances::take_flag(&mut tx, i.id, Flag::CapacityHeld).await?;
        if released {
            zy_store::inventory::release_capacity(&mut tx, host, demand(i)).await?;
            instances::release_anti_affinity_slot(&mut tx, i.id).await?;
        }
        tx.commit().await.map_err(db_error)?;
        if released {
            if let Ok(req) = place_request(c, store, row).await {
                c.placement.unbook(host, &req);
            }
        }
    }
    let mut tx = store.begin_write().await?;
    // Volumes outlive their instance: they become available again.
    zy_store::volumes::detach_all(&mut tx, i.id).await?;
    if instances::take_flag(&mut tx, i.id, Flag::QuotaHeld).await? {
        let d = quota_delta(i);
        zy_store::quotas::release(&mut tx, "department", &i.department_id.to_string(), &d).await?;
        zy_store::quotas::release(&mut tx, "project", &i.project_id.to_string(), &d).await?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(())
}

/// Deleting → Deleted.
pub async fn delete(c: &Compute, store: &Store, row: &InstanceRow) -> StepResult {
    let i = &row.instance;
    if i.state != InstanceState::Deleting {
        return step_tx(
            store,
            i.id,
            i.state,
            InstanceState::Deleting,
            "delete requested",
        )
        .await;
    }
    release_everything(c, store, row).await?;
    step_tx(
        store,
        i.id,
        InstanceState::Deleting,
        InstanceState::Deleted,
        "deleted",
    )
    .await?;
    Ok(Next::Done)
}

/// The undo of a failed create: release everything, then Error with the reason.
pub async fn undo_create(
    c: &Compute,
    store: &Store,
    row: &InstanceRow,
    reason: &str,
) -> Result<(), StepError> {
    release_everything(c, store, row).await?;
    let mut tx = store.begin_write().await?;
    // The reason goes with the state: nobody should see `error` without knowing why.
    instances::set_error(&mut tx, row.instance.id, reason).await?;
    instances::transition(
        &mut tx,
        row.instance.id,
        row.instance.state,
        InstanceState::Error,
        reason,
    )
    .await?;
    tx.commit().await.map_err(db_error)?;
    Ok(())
}

/// After a restart of the control plane, makes sure every placed instance exists on its
/// provider as recorded (a simulated provider starts empty; a real agent adopts its VMs,
/// for which these calls are no-ops).
pub async fn resync(c: &Compute, store: &Store) -> Result<usize, Error> {
    let live = instances::live(store).await?;
    let mut n = 0;
    for row in live {
        let i = &row.instance;
        let target = match i.state {
            InstanceState::Running => PowerState::Running,
            InstanceState::Stopped => PowerState::Stopped,
            _ => continue,
        };
        let (Some(spec), Some(provider)) = (spec(&row), i.provider_id) else {
            continue;
        };
        let Ok(driver) = c.drivers.get(provider) else {
            continue;
        };
        // Best effort: what fails here is found by the next check and reconciled later.
        if driver.create_disk(&spec).await.is_ok()
            && driver.ensure_instance(&spec, target).await.is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}
