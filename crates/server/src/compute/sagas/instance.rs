//! The instance sagas: create (reserve quota → place and claim capacity → create the
//! disk → power on), start, stop, reboot, resize (reserve → resize on the host) and
//! delete (forward only). Each saga's steps are idempotent on their own: database
//! changes are conditional on the state they expect or consume a bookkeeping flag
//! (`take_flag`), driver calls are idempotent by contract.
//!
//! When a saga ends, [`ensure_next`] looks at the instance again and starts whatever its
//! desired state still asks for, in the same transaction, so requests that arrived while
//! the saga ran are never lost.

use crate::compute::placement::PlaceRequest;
use crate::compute::Compute;
use crate::saga::{self, Cx, SagaDef, StepError, StepResult};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use zy_compute::{DriverError, InstanceSpec, PowerState};
use zy_model::compute::{GroupPolicy, Instance, InstanceState, QuotaLimits};
use zy_model::id::{HostId, InstanceId};
use zy_model::Error;
use zy_store::instances::{self, Flag, InstanceRow};
use zy_store::inventory::Demand;
use zy_store::sagas::SagaState;
use zy_store::{Store, Tx};

pub fn demand(i: &Instance) -> Demand {
    Demand {
        vcpus: i.vcpus as i64,
        memory_mib: i.memory_mib as i64,
        disk_gib: i.disk_gib as i64,
        gpus: i.gpus as i64,
    }
}

pub fn quota_delta(i: &Instance) -> QuotaLimits {
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
        shared_dir: row.shared_dir.clone(),
    })
}

/// The parameters of every instance saga but resize.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub instance_id: InstanceId,
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

/// What the scheduler needs to place this instance: the same request for a create and
/// for the target of a live migration.
pub async fn place_request(
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

async fn load(cx: &Cx) -> Result<InstanceRow, StepError> {
    let t: Target = cx.params()?;
    instances::get(cx.store.pool(), t.instance_id)
        .await?
        .ok_or_else(|| StepError::Fail(format!("instance {} vanished", t.instance_id)))
}

/// The saga an instance needs next to get from its state to its desired state, if any.
pub fn next_saga(row: &InstanceRow) -> Option<&'static dyn SagaDef> {
    let i = &row.instance;
    if i.state == InstanceState::Deleted {
        return None;
    }
    if i.desired == InstanceState::Deleted || i.state == InstanceState::Deleting {
        return Some(&DELETE);
    }
    match i.state {
        InstanceState::Pending | InstanceState::Scheduling | InstanceState::Provisioning => {
            Some(&CREATE)
        }
        InstanceState::Running if i.desired == InstanceState::Stopped => Some(&STOP),
        InstanceState::Running if row.reboot_pending => Some(&REBOOT),
        InstanceState::Stopped if i.desired == InstanceState::Running => Some(&START),
        _ => None,
    }
}

/// Starts the saga the instance needs next, in the caller's transaction; records in the
/// `work` flag whether it still waits for one (another saga holds it). Returns the
/// started saga's id.
pub async fn ensure_next(tx: &mut Tx, id: InstanceId) -> Result<Option<String>, Error> {
    // Reading the row and clearing `work` in one statement: most calls need no saga.
    let Some(row) = instances::take_work(tx, id).await? else {
        return Ok(None);
    };
    let Some(def) = next_saga(&row) else {
        return Ok(None);
    };
    let started = saga::start(tx, def, &id.to_string(), &Target { instance_id: id }).await?;
    if started.is_none() {
        // Another saga holds the instance: it starts this one when it ends.
        instances::set_flag(tx, id, Flag::Work, true).await?;
    }
    Ok(started)
}

// --- create --------------------------------------------------------------------------

pub struct Create;
pub static CREATE: Create = Create;

const CREATE_STEPS: &[&str] = &["reserve_quota", "place", "provision"];

impl SagaDef for Create {
    fn kind(&self) -> &'static str {
        "instance_create"
    }
    fn done_by_starter(&self) -> usize {
        1
    }
    fn steps(&self) -> &'static [&'static str] {
        CREATE_STEPS
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let row = load(cx).await?;
            if row.instance.desired == InstanceState::Deleted && step > 0 {
                return Err(StepError::Fail(
                    "已取消 / cancelled: deleted while being created".into(),
                ));
            }
            match step {
                // The API took the quota in the transaction that started this saga.
                0 => Ok(()),
                1 => place(cx, &row).await,
                _ => provision(cx, &row).await,
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let row = load(cx).await?;
            match step {
                0 => release_quota(cx, &row).await,
                1 => release_capacity(cx, &row).await,
                _ => remove_vm(cx, &row).await,
            }
        })
    }
    fn finished<'a>(
        &'a self,
        cx: &'a Cx,
        tx: &'a mut Tx,
        outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let t: Target = params(cx)?;
            if outcome == SagaState::Undone {
                let reason = format!(
                    "创建失败，已回滚 / create failed and was undone: {}",
                    cx.row.error.as_deref().unwrap_or("unknown")
                );
                if let Some(row) = instances::get(&mut **tx, t.instance_id).await? {
                    // The reason goes with the state: nobody sees `error` without knowing why.
                    instances::set_error(tx, t.instance_id, &reason).await?;
                    instances::transition(
                        tx,
                        t.instance_id,
                        row.instance.state,
                        InstanceState::Error,
                        &reason,
                    )
                    .await?;
                }
            }
            ensure_next(tx, t.instance_id).await?;
            Ok(())
        })
    }
}

fn params(cx: &Cx) -> Result<Target, Error> {
    serde_json::from_str(&cx.row.params).map_err(|e| Error::internal(e.to_string()))
}

/// Pending/Scheduling → Provisioning: choose a host and claim its capacity (and the
/// group's slot) in one transaction, conditional on the instance still being unplaced.
async fn place(cx: &mut Cx, row: &InstanceRow) -> StepResult {
    let c = cx.compute.clone();
    let store = cx.store.clone();
    let i = &row.instance;
    if !matches!(i.state, InstanceState::Pending | InstanceState::Scheduling) {
        // Placed already (the step runs again after a crash): nothing to claim.
        return Ok(());
    }
    let req = place_request(&c, &store, row).await?;
    for _ in 0..8 {
        let meta = c
            .placement
            .propose(&req)
            .map_err(|e| StepError::Fail(format!("{} ({})", e.message.zh, e.message.en)))?;
        let mut tx = cx.begin().await?;
        let mut ok = true;
        if i.state == InstanceState::Pending {
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
            // Someone else moved it on: nothing to claim.
            drop(tx);
            c.placement.unbook(meta.id, &req);
            return Ok(());
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
        return match cx.commit(tx).await {
            Ok(()) => Ok(()),
            Err(e) => {
                c.placement.unbook(meta.id, &req);
                Err(e)
            }
        };
    }
    Err(StepError::Retry(
        "capacity changed under every proposal; will retry".into(),
    ))
}

/// Provisioning → Running (or Stopped): the root disk and the VM on the host, then the
/// state with the saga's end in one transaction. Its undo removes both.
async fn provision(cx: &mut Cx, row: &InstanceRow) -> StepResult {
    let i = &row.instance;
    let (Some(spec), Some(provider)) = (spec(row), i.provider_id) else {
        return Err(StepError::Fail("no host to create the instance on".into()));
    };
    let driver = cx.compute.drivers.get(provider)?;
    driver.create_disk(&spec).await?;
    let (power, to) = if i.desired == InstanceState::Stopped {
        (PowerState::Stopped, InstanceState::Stopped)
    } else {
        (PowerState::Running, InstanceState::Running)
    };
    driver.ensure_instance(&spec, power).await?;
    let mut tx = cx.begin().await?;
    instances::set_flag(&mut tx, i.id, Flag::DiskCreated, true).await?;
    instances::transition(
        &mut tx,
        i.id,
        InstanceState::Provisioning,
        to,
        "provisioned",
    )
    .await?;
    cx.commit(tx).await
}

/// Removes the VM and its disk from the host (a host that is down has lost them already).
async fn remove_vm(cx: &mut Cx, row: &InstanceRow) -> StepResult {
    let i = &row.instance;
    if let (Some(host), Some(provider)) = (i.host_id, i.provider_id) {
        let driver = cx.compute.drivers.get(provider)?;
        for r in [
            driver.delete_instance(i.id.0, host.0).await,
            driver.delete_disk(i.id.0, host.0).await,
        ] {
            match r {
                Ok(()) | Err(DriverError::HostDown(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut tx = cx.begin().await?;
    instances::take_flag(&mut tx, i.id, Flag::DiskCreated).await?;
    cx.commit(tx).await
}

/// Gives back the host capacity and the group slot, once.
async fn release_capacity(cx: &mut Cx, row: &InstanceRow) -> StepResult {
    let i = &row.instance;
    let mut tx = cx.begin().await?;
    let released = instances::take_flag(&mut tx, i.id, Flag::CapacityHeld).await?;
    let host = i.host_id;
    if released {
        if let Some(h) = host {
            zy_store::inventory::release_capacity(&mut tx, h, demand(i)).await?;
        }
        instances::release_anti_affinity_slot(&mut tx, i.id).await?;
    }
    cx.commit(tx).await?;
    if let (true, Some(h)) = (released, host) {
        if let Ok(req) = place_request(&cx.compute, &cx.store, row).await {
            cx.compute.placement.unbook(h, &req);
        }
    }
    Ok(())
}

/// Gives back the quota, once; volumes outlive their instance and become available; its
/// NICs are removed and their addresses return to their subnets (idempotent).
async fn release_quota(cx: &mut Cx, row: &InstanceRow) -> StepResult {
    let i = &row.instance;
    let mut tx = cx.begin().await?;
    zy_store::volumes::detach_all(&mut tx, i.id).await?;
    zy_store::networks::release_instance_nics(&mut tx, i.id).await?;
    if instances::take_flag(&mut tx, i.id, Flag::QuotaHeld).await? {
        let d = quota_delta(i);
        zy_store::quotas::release(&mut tx, "department", &i.department_id.to_string(), &d).await?;
        zy_store::quotas::release(&mut tx, "project", &i.project_id.to_string(), &d).await?;
    }
    cx.commit(tx).await
}

// --- start, stop, reboot ----------------------------------------------------------------

/// Start, stop and reboot: one step on the host, then the new state.
pub struct Power {
    kind: &'static str,
    steps: &'static [&'static str],
}
pub static START: Power = Power {
    kind: "instance_start",
    steps: &["power_on"],
};
pub static STOP: Power = Power {
    kind: "instance_stop",
    steps: &["power_off"],
};
pub static REBOOT: Power = Power {
    kind: "instance_reboot",
    steps: &["reboot"],
};

impl SagaDef for Power {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn steps(&self) -> &'static [&'static str] {
        self.steps
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, _step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let row = load(cx).await?;
            let i = &row.instance;
            let (Some(spec), Some(provider)) = (spec(&row), i.provider_id) else {
                return Ok(());
            };
            let driver = cx.compute.drivers.get(provider)?;
            let mut tx;
            match (self.kind, i.state, i.desired) {
                ("instance_stop", InstanceState::Running, InstanceState::Stopped) => {
                    driver.ensure_instance(&spec, PowerState::Stopped).await?;
                    tx = cx.begin().await?;
                    instances::transition(
                        &mut tx,
                        i.id,
                        InstanceState::Running,
                        InstanceState::Stopped,
                        "stopped on request",
                    )
                    .await?;
                }
                ("instance_start", InstanceState::Stopped, InstanceState::Running) => {
                    driver.ensure_instance(&spec, PowerState::Running).await?;
                    tx = cx.begin().await?;
                    instances::transition(
                        &mut tx,
                        i.id,
                        InstanceState::Stopped,
                        InstanceState::Running,
                        "started on request",
                    )
                    .await?;
                }
                ("instance_reboot", InstanceState::Running, _) if row.reboot_pending => {
                    driver.reboot(i.id.0, spec.host_id).await?;
                    tx = cx.begin().await?;
                    if instances::take_flag(&mut tx, i.id, Flag::RebootPending).await? {
                        instances::event(&mut tx, i.id, "running", "running", "rebooted").await?;
                    }
                }
                // The wish changed while the saga waited: nothing to do here; what is
                // wanted now is started when this saga ends.
                _ => return Ok(()),
            }
            cx.commit(tx).await
        })
    }
    fn undo<'a>(&'a self, _cx: &'a mut Cx, _step: usize) -> BoxFuture<'a, StepResult> {
        // A power change that failed changed nothing that needs giving back.
        Box::pin(async { Ok(()) })
    }
    fn finished<'a>(
        &'a self,
        cx: &'a Cx,
        tx: &'a mut Tx,
        outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let t: Target = params(cx)?;
            if outcome == SagaState::Undone {
                // It kept failing: give up into error (what it holds stays held until the
                // instance is deleted), with the reason.
                if let Some(row) = instances::get(&mut **tx, t.instance_id).await? {
                    let why = format!(
                        "gave up: {}",
                        cx.row.error.as_deref().unwrap_or("the host kept failing")
                    );
                    instances::set_error(tx, t.instance_id, &why).await?;
                    instances::take_flag(tx, t.instance_id, Flag::RebootPending).await?;
                    instances::transition(
                        tx,
                        t.instance_id,
                        row.instance.state,
                        InstanceState::Error,
                        &why,
                    )
                    .await?;
                }
            }
            ensure_next(tx, t.instance_id).await?;
            Ok(())
        })
    }
}

// --- resize ---------------------------------------------------------------------------

/// The size of an instance before or after a resize.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Size {
    pub flavor_id: zy_model::id::FlavorId,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
}

impl Size {
    pub fn of(i: &Instance) -> Size {
        Size {
            flavor_id: i.flavor_id,
            vcpus: i.vcpus,
            memory_mib: i.memory_mib,
            disk_gib: i.disk_gib,
            gpus: i.gpus,
        }
    }
    fn demand(&self) -> Demand {
        Demand {
            vcpus: self.vcpus as i64,
            memory_mib: self.memory_mib as i64,
            disk_gib: self.disk_gib as i64,
            gpus: self.gpus as i64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizeParams {
    pub instance_id: InstanceId,
    pub from: Size,
    pub from_flavor_name: String,
    pub to: Size,
    pub to_flavor_name: String,
    /// The host whose capacity the API re-claimed, if the instance held one.
    pub host_id: Option<HostId>,
}

pub struct Resize;
pub static RESIZE: Resize = Resize;

impl SagaDef for Resize {
    fn kind(&self) -> &'static str {
        "instance_resize"
    }
    fn done_by_starter(&self) -> usize {
        1
    }
    fn steps(&self) -> &'static [&'static str] {
        &["reserve", "resize_on_host"]
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            if step == 0 {
                // Quota and capacity were taken in the transaction that started the saga.
                return Ok(());
            }
            let p: ResizeParams = cx.params()?;
            let row = instances::get(cx.store.pool(), p.instance_id)
                .await?
                .ok_or_else(|| StepError::Fail("instance vanished".into()))?;
            if let (Some(spec), Some(provider)) = (spec(&row), row.instance.provider_id) {
                cx.compute.drivers.get(provider)?.resize(&spec).await?;
            }
            Ok(())
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let p: ResizeParams = cx.params()?;
            let Some(row) = instances::get(cx.store.pool(), p.instance_id).await? else {
                return Ok(());
            };
            if step == 1 {
                // Back to the old size on the host (the instance is stopped).
                if let (Some(mut spec), Some(provider)) = (spec(&row), row.instance.provider_id) {
                    spec.vcpus = p.from.vcpus;
                    spec.memory_mib = p.from.memory_mib;
                    spec.gpus = p.from.gpus;
                    // Disks never shrink: the grown disk stays, it is only accounted back.
                    cx.compute.drivers.get(provider)?.resize(&spec).await?;
                }
                return Ok(());
            }
            let i = &row.instance;
            let mut tx = cx.begin().await?;
            // Conditional on the instance still having the new size: once only.
            if instances::set_size_if(
                &mut tx,
                i.id,
                instances::SizeGuard::Size(
                    p.to.flavor_id,
                    p.to.vcpus,
                    p.to.memory_mib,
                    p.to.disk_gib,
                ),
                &zy_store::instances::SizeCols {
                    flavor_id: p.from.flavor_id,
                    flavor_name: &p.from_flavor_name,
                    vcpus: p.from.vcpus,
                    memory_mib: p.from.memory_mib,
                    disk_gib: p.from.disk_gib,
                    gpus: p.from.gpus,
                },
            )
            .await?
            {
                let back = QuotaLimits {
                    instances: 0,
                    vcpus: p.to.vcpus as i64 - p.from.vcpus as i64,
                    memory_mib: p.to.memory_mib as i64 - p.from.memory_mib as i64,
                    disk_gib: p.to.disk_gib as i64 - p.from.disk_gib as i64,
                    volumes: 0,
                };
                zy_store::quotas::release(
                    &mut tx,
                    "department",
                    &i.department_id.to_string(),
                    &back,
                )
                .await?;
                zy_store::quotas::release(&mut tx, "project", &i.project_id.to_string(), &back)
                    .await?;
                if let Some(h) = p.host_id {
                    let (to, from) = (p.to.demand(), p.from.demand());
                    let diff = Demand {
                        vcpus: to.vcpus - from.vcpus,
                        memory_mib: to.memory_mib - from.memory_mib,
                        disk_gib: to.disk_gib - from.disk_gib,
                        gpus: to.gpus - from.gpus,
                    };
                    zy_store::inventory::release_capacity(&mut tx, h, diff).await?;
                }
            }
            cx.commit(tx).await?;
            if let Some(h) = p.host_id {
                if let Ok(Some(row)) = zy_store::inventory::host(cx.store.pool(), h).await {
                    cx.compute.placement.upsert(&[row]);
                }
            }
            Ok(())
        })
    }
    fn finished<'a>(
        &'a self,
        cx: &'a Cx,
        tx: &'a mut Tx,
        outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let p: ResizeParams =
                serde_json::from_str(&cx.row.params).map_err(|e| Error::internal(e.to_string()))?;
            let why = match outcome {
                SagaState::Done => format!(
                    "resized to {} ({} vCPU, {} MiB, {} GiB)",
                    p.to_flavor_name, p.to.vcpus, p.to.memory_mib, p.to.disk_gib
                ),
                _ => format!(
                    "resize to {} failed and was undone ({}): back to {}",
                    p.to_flavor_name,
                    cx.row.error.as_deref().unwrap_or("unknown"),
                    p.from_flavor_name
                ),
            };
            if let Some(row) = instances::get(&mut **tx, p.instance_id).await? {
                let st = row.instance.state.as_str();
                instances::event(tx, p.instance_id, st, st, &why).await?;
            }
            ensure_next(tx, p.instance_id).await?;
            Ok(())
        })
    }
}

// --- delete ----------------------------------------------------------------------------

/// Delete never undoes: each step is retried until it passes, and each release happens
/// once (bookkeeping flags), however often a step runs.
pub struct Delete;
pub static DELETE: Delete = Delete;

impl SagaDef for Delete {
    fn kind(&self) -> &'static str {
        "instance_delete"
    }
    fn steps(&self) -> &'static [&'static str] {
        &[
            "mark_deleting",
            "remove_vm",
            "release_capacity",
            "release_quota",
            "mark_deleted",
        ]
    }
    fn forward_only(&self) -> bool {
        true
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let row = load(cx).await?;
            let i = &row.instance;
            match step {
                0 => {
                    if matches!(i.state, InstanceState::Deleting | InstanceState::Deleted) {
                        return Ok(());
                    }
                    let mut tx = cx.begin().await?;
                    instances::transition(
                        &mut tx,
                        i.id,
                        i.state,
                        InstanceState::Deleting,
                        "delete requested",
                    )
                    .await?;
                    cx.commit(tx).await
                }
                1 => remove_vm(cx, &row).await,
                2 => release_capacity(cx, &row).await,
                3 => release_quota(cx, &row).await,
                _ => {
                    let mut tx = cx.begin().await?;
                    instances::transition(
                        &mut tx,
                        i.id,
                        InstanceState::Deleting,
                        InstanceState::Deleted,
                        "deleted",
                    )
                    .await?;
                    cx.commit(tx).await
                }
            }
        })
    }
    fn undo<'a>(&'a self, _cx: &'a mut Cx, _step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async { Ok(()) })
    }
    fn finished<'a>(
        &'a self,
        cx: &'a Cx,
        tx: &'a mut Tx,
        _outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let t: Target = params(cx)?;
            instances::set_flag(tx, t.instance_id, Flag::Work, false).await?;
            Ok(())
        })
    }
    fn max_attempts(&self) -> i64 {
        i64::MAX
    }
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
