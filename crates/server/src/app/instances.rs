//! Instance (云主机) use cases. The API records intent — a new instance, a desired state,
//! a new size — together with its quota in one audited transaction, and wakes the
//! reconciler, which does the work on the hosts. Requests that cannot succeed (quota,
//! an anti-affinity group larger than the zone) are refused at once with a clear reason.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::compute::sagas::instance::{self as instance_sagas, demand, quota_delta, Size};
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, tenancy_visibility, Action, Visibility};
use zy_store::instances::{self, InstanceRow};

pub struct NewInstances {
    pub project_id: ProjectId,
    pub name: String,
    /// Flavor id or name (e.g. `2C4G`).
    pub flavor: String,
    /// Image id or name.
    pub image: String,
    pub disk_gib: Option<u64>,
    pub zone_id: Option<ZoneId>,
    pub provider_id: Option<ProviderId>,
    pub count: u32,
    pub group: Option<(String, GroupPolicy)>,
    pub start: bool,
    /// Handed to the guest at boot (our templates run it as a shell script).
    pub user_data: String,
    /// When the lease (使用期限) ends; none: no lease.
    pub lease_end: Option<Timestamp>,
    /// NICs on VPC subnets, the same for each instance of the batch.
    pub nics: Vec<super::networks::NicRequest>,
}

/// Largest user data accepted (as cloud-init's NoCloud limits are of the same order).
pub const MAX_USER_DATA: usize = 16 * 1024;

pub const MAX_COUNT: u32 = 500;

pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    n: NewInstances,
) -> Result<Vec<Instance>, Error> {
    let project = zy_store::projects::get(s.store.pool(), n.project_id)
        .await?
        .ok_or_else(|| Error::not_found("project", n.project_id))?;
    authorize(
        &actor.principal,
        Action::InstanceOperate(project.department_id, project.id),
    )?;
    super::requests::refuse_if_requests_only(s, project.department_id).await?;
    let p = prepare(s, &project, &n).await?;
    let mut tx = s.store.begin_write().await?;
    if !insert_prepared(&mut tx, &p).await? {
        drop(tx);
        return Err(super::quotas::exceeded(s, project.department_id, project.id, &p.total).await);
    }
    let rows = p.rows;
    let detail = serde_json::json!({ "count": n.count, "nics": n.nics.len(), "name": p.name, "flavor": p.flavor_name, "image": p.image_name, "project_id": project.id, "ids": rows.iter().map(|r| r.instance.id).collect::<Vec<_>>() });
    let target = if n.count == 1 {
        rows[0].instance.id.to_string()
    } else {
        String::new()
    };
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_instances",
        "instance",
        &target,
        detail,
    )
    .await?;
    s.compute.wake.notify_one();
    if !n.nics.is_empty() {
        s.compute.net_wake.notify_one();
    }
    Ok(rows.into_iter().map(|r| r.instance).collect())
}

/// Instances checked and resolved, ready to be inserted with their quota.
pub(crate) struct Prepared {
    pub rows: Vec<InstanceRow>,
    /// What they take from the quotas, together.
    pub total: QuotaLimits,
    pub project: zy_model::tenancy::Project,
    pub name: String,
    pub flavor_name: String,
    pub image_name: String,
    group: Option<(String, GroupPolicy)>,
    /// The NICs asked for and their subnets (checked).
    nics: Vec<super::networks::NicRequest>,
    subnets: Vec<zy_model::network::Subnet>,
}

/// Validates a create and resolves its flavor, image, zone and provider (no writes, no
/// authorisation: the caller decided who may).
pub(crate) async fn prepare(
    s: &AppState,
    project: &zy_model::tenancy::Project,
    n: &NewInstances,
) -> Result<Prepared, Error> {
    if !(1..=MAX_COUNT).contains(&n.count) {
        return Err(Error::validation(
            "count",
            t!("一次创建 1 到 {} 台" ; "create 1 to {} at a time", MAX_COUNT),
        ));
    }
    // A batch is named `<name>-001` …: the final names must fit the rule too.
    let name = validate::batch_name("name", &n.name, if n.count > 1 { 4 } else { 0 })?;
    let subnets = super::networks::check_create_nics(&s.store, project, n.count, &n.nics).await?;
    if n.user_data.len() > MAX_USER_DATA || n.user_data.contains('\0') {
        return Err(Error::validation(
            "user_data",
            t!("用户数据不能超过 {} 字节，且不能含 NUL 字符" ; "user_data must be at most {} bytes without NUL characters", MAX_USER_DATA),
        ));
    }
    let flavors = zy_store::inventory::flavors(&s.store).await?;
    let flavor = flavors
        .into_iter()
        .find(|f| f.name == n.flavor || f.id.to_string() == n.flavor)
        .ok_or_else(|| {
            Error::validation(
                "flavor",
                t!("规格 {} 不存在" ; "flavor {} does not exist", validate::clip(&n.flavor, 40)),
            )
        })?;
    let images = zy_store::inventory::images(&s.store).await?;
    let image = images
        .into_iter()
        .find(|i| i.name == n.image || i.id.to_string() == n.image)
        .ok_or_else(|| {
            Error::validation(
                "image",
                t!("镜像 {} 不存在" ; "image {} does not exist", validate::clip(&n.image, 40)),
            )
        })?;
    let disk_gib = n.disk_gib.unwrap_or(image.min_disk_gib);
    if disk_gib < image.min_disk_gib || disk_gib > 65536 {
        return Err(Error::validation(
            "disk_gib",
            t!("系统盘须在 {} 到 65536 GiB 之间（镜像最小要求 {} GiB）" ; "disk_gib must be between {} and 65536 (the image needs at least {} GiB)", image.min_disk_gib, image.min_disk_gib),
        ));
    }
    let zones = zy_store::inventory::zones(&s.store).await?;
    if let Some(z) = n.zone_id {
        let zone = zones
            .iter()
            .find(|x| x.id == z)
            .ok_or_else(|| Error::not_found("zone", z))?;
        if n.provider_id.is_some_and(|p| p != zone.provider_id) {
            return Err(Error::validation(
                "zone_id",
                t!(
                    "可用区不属于所选云服务商",
                    "the zone does not belong to that provider"
                ),
            ));
        }
    }
    if let Some(p) = n.provider_id {
        if !image.providers.is_empty() && !image.providers.contains(&p) {
            return Err(Error::validation(
                "image",
                t!(
                    "所选云服务商不提供该镜像",
                    "the chosen provider does not carry this image"
                ),
            ));
        }
    }
    let providers: Option<Vec<ProviderId>> = match (n.provider_id, image.providers.is_empty()) {
        (Some(p), _) => Some(vec![p]),
        (None, false) => Some(image.providers.clone()),
        (None, true) => None,
    };
    if let Some((_, GroupPolicy::AntiAffinity)) = &n.group {
        let hosts = s
            .compute
            .placement
            .enabled_hosts(n.zone_id, providers.as_deref());
        if n.count as usize > hosts {
            return Err(Error::conflict(t!(
                "反亲和要求每台云主机在不同宿主机上，但可用宿主机只有 {} 台，少于申请的 {} 台" ;
                "anti-affinity puts every instance on a different host, but only {} hosts are usable for {} instances",
                hosts, n.count
            ))
            .with_details(serde_json::json!({ "reason": "anti_affinity_exceeds_hosts", "hosts": hosts, "requested": n.count })));
        }
    }
    let now = Timestamp::now();
    if let Some(end) = n.lease_end {
        zy_model::lease::check_end("lease_end", end, now)?;
    }
    let desired = if n.start {
        InstanceState::Running
    } else {
        InstanceState::Stopped
    };
    if let Some((g, _)) = &n.group {
        validate::name("group", g)?;
    }
    let rows: Vec<InstanceRow> = (1..=n.count)
        .map(|k| InstanceRow {
            instance: Instance {
                id: InstanceId::new(),
                project_id: project.id,
                department_id: project.department_id,
                name: if n.count == 1 {
                    name.clone()
                } else {
                    format!("{name}-{k:03}")
                },
                flavor_id: flavor.id,
                flavor_name: flavor.name.clone(),
                image_id: image.id,
                image_name: image.name.clone(),
                host_name: None,
                vcpus: flavor.vcpus,
                memory_mib: flavor.memory_mib,
                disk_gib,
                gpus: flavor.gpus,
                group_id: None,
                zone_id: None,
                provider_id: None,
                host_id: None,
                state: InstanceState::Pending,
                desired,
                last_error: None,
                lease_end: n.lease_end,
                lease_ended: false,
                recycled_at: None,
                purge_at: None,
                recycle_reason: None,
                created_at: now,
                updated_at: now,
                generation: 1,
                root_pool_id: None,
                ha_policy: zy_model::compute::HaPolicy::Inherit,
                ha_priority: 0,
                origin: "created".into(),
                adopted_at: None,
            },
            want_zone_id: n.zone_id,
            want_provider_id: n.provider_id,
            quota_held: true,
            capacity_held: false,
            disk_created: false,
            resize_pending: false,
            reboot_pending: false,
            attempts: 0,
            user_data: n.user_data.clone(),
            shared_dir: None,
        })
        .collect();
    let one = quota_delta(&rows[0].instance);
    let total = QuotaLimits {
        instances: one.instances * n.count as i64,
        vcpus: one.vcpus * n.count as i64,
        memory_mib: one.memory_mib * n.count as i64,
        disk_gib: one.disk_gib * n.count as i64,
        volumes: 0,
    };
    Ok(Prepared {
        rows,
        total,
        project: project.clone(),
        name,
        flavor_name: flavor.name,
        image_name: image.name,
        group: n.group.clone(),
        nics: n.nics.clone(),
        subnets,
    })
}

/// Takes the quotas and inserts the instances with their create sagas, in the caller's
/// transaction. False (nothing written) when a quota would be exceeded.
pub(crate) async fn insert_prepared(tx: &mut zy_store::Tx, p: &Prepared) -> Result<bool, Error> {
    let (project, total) = (&p.project, &p.total);
    let dept_ok =
        zy_store::quotas::consume(tx, "department", &project.department_id.to_string(), total)
            .await?;
    let proj_ok =
        dept_ok && zy_store::quotas::consume(tx, "project", &project.id.to_string(), total).await?;
    if !proj_ok {
        return Ok(false);
    }
    let group = match &p.group {
        Some((g, policy)) => Some(instances::group_for(tx, project.id, g, *policy).await?),
        None => None,
    };
    for r in &p.rows {
        let mut r = r.clone();
        r.instance.group_id = group.as_ref().map(|g| g.id);
        instances::insert(tx, &r).await?;
        super::networks::insert_create_nics(tx, r.instance.id, project, &p.subnets, &p.nics)
            .await?;
    }
    // Each instance's create saga starts in the same transaction: committed together or
    // not at all.
    let params = p
        .rows
        .iter()
        .map(|r| {
            serde_json::to_string(&instance_sagas::Target {
                instance_id: r.instance.id,
            })
            .map_err(|e| Error::internal(e.to_string()))
        })
        .collect::<Result<Vec<String>, Error>>()?;
    let new_sagas: Vec<zy_store::sagas::NewSaga> = p
        .rows
        .iter()
        .zip(params)
        .map(|(r, params)| zy_store::sagas::NewSaga {
            id: uuid::Uuid::now_v7().to_string(),
            kind: crate::saga::SagaDef::kind(&instance_sagas::CREATE),
            target_id: r.instance.id.to_string(),
            params,
            step: crate::saga::SagaDef::done_by_starter(&instance_sagas::CREATE) as i64,
        })
        .collect();
    zy_store::sagas::start_many(tx, &new_sagas).await?;
    Ok(true)
}

async fn load(s: &AppState, id: InstanceId) -> Result<InstanceRow, Error> {
    instances::get(s.store.pool(), id)
        .await?
        .filter(|r| r.instance.state != InstanceState::Deleted)
        .ok_or_else(|| Error::not_found("instance", id))
}

pub async fn get(s: &AppState, actor: &Actor, id: InstanceId) -> Result<Instance, Error> {
    let r = instances::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("instance", id))?;
    authorize(
        &actor.principal,
        Action::InstanceRead(r.instance.department_id, r.instance.project_id),
    )?;
    Ok(r.instance)
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    filter: &instances::InstanceFilter,
) -> Result<Page<Instance>, Error> {
    let vis = if authorize(&actor.principal, Action::InventoryManage).is_ok() {
        Visibility::All
    } else {
        tenancy_visibility(&actor.principal)
    };
    match vis {
        Visibility::All => instances::list(&s.store, page, None, None, filter).await,
        v if v.is_empty() => Err(Error::forbidden(t!(
            "您的角色无权查看云主机",
            "Your role may not see instances"
        ))),
        Visibility::Some {
            departments,
            projects,
        } => instances::list(&s.store, page, Some(&departments), Some(&projects), filter).await,
    }
}

/// Reads the instance inside the write transaction, so what is validated is what the
/// conditional update is decided on.
async fn load_in(tx: &mut zy_store::Tx, id: InstanceId) -> Result<InstanceRow, Error> {
    instances::get(&mut **tx, id)
        .await?
        .filter(|r| r.instance.state != InstanceState::Deleted)
        .ok_or_else(|| Error::not_found("instance", id))
}

/// A request that lost a race with another change of the same instance.
fn changed_meanwhile() -> Error {
    Error::conflict(t!(
        "云主机刚被其他操作修改，请刷新后重试",
        "the instance was changed by another request just now; reload and try again"
    ))
    .with_details(serde_json::json!({ "reason": "changed_meanwhile" }))
}

/// Start, stop, reboot or delete: records the wish (conditional on the instance's
/// generation) and starts the saga that fulfils it, or leaves it for when the running
/// saga ends.
pub async fn act(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: InstanceId,
    action: &str,
) -> Result<Instance, Error> {
    let seen = load(s, id).await?;
    authorize(
        &actor.principal,
        Action::InstanceOperate(seen.instance.department_id, seen.instance.project_id),
    )?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let r = load_in(&mut tx, id).await?;
    let i = &r.instance;
    let busy = |what: &str| {
        Error::conflict(t!("云主机当前状态为 {}，不能{}" ; "the instance is {} and cannot be {} now", i.state.as_str(), what))
            .with_details(serde_json::json!({ "state": i.state, "desired": i.desired }))
    };
    if i.recycled_at.is_some() && matches!(action, "start" | "reboot") {
        return Err(Error::conflict(t!(
            "云主机在回收站中，请先由部门管理员恢复",
            "the instance is in the recycle bin; a department admin must restore it first"
        ))
        .with_details(serde_json::json!({ "reason": "in_recycle_bin" })));
    }
    if i.lease_ended && action == "start" {
        return Err(Error::conflict(t!(
            "云主机的使用期限已到期，请先延长使用期限",
            "the instance's lease has ended; extend the lease before starting it"
        ))
        .with_details(serde_json::json!({ "reason": "lease_ended" })));
    }
    let (want, reboot) = match action {
        "start" | "stop" => {
            if i.desired == InstanceState::Deleted || i.state == InstanceState::Error {
                return Err(busy(if action == "start" {
                    "启动 started"
                } else {
                    "停止 stopped"
                }));
            }
            let want = if action == "start" {
                InstanceState::Running
            } else {
                InstanceState::Stopped
            };
            (want, false)
        }
        "reboot" => {
            if i.state != InstanceState::Running || i.desired != InstanceState::Running {
                return Err(busy("重启 rebooted"));
            }
            (InstanceState::Running, true)
        }
        "delete" => {
            if i.desired == InstanceState::Deleted {
                return Err(busy("删除 deleted"));
            }
            (InstanceState::Deleted, false)
        }
        _ => return Err(Error::invalid(t!("未知操作", "unknown action"))),
    };
    if !instances::set_desired_if(&mut tx, id, i.generation, want, reboot).await? {
        return Err(changed_meanwhile());
    }
    instance_sagas::ensure_next(&mut tx, id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        &format!("{action}_instance"),
        "instance",
        &id.to_string(),
        serde_json::json!({ "name": i.name }),
    )
    .await?;
    s.compute.wake.notify_one();
    Ok(load(s, id)
        .await
        .map(|r| r.instance)
        .unwrap_or_else(|_| i.clone()))
}

/// Changes flavor (and grows the disk) of a stopped instance: quota and host capacity
/// for the difference are taken in one transaction with the new size and the resize
/// saga, or nothing changes; the saga applies it on the host and undoes all of it if the
/// host refuses.
pub async fn resize(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: InstanceId,
    flavor: &str,
    disk_gib: Option<u64>,
) -> Result<Instance, Error> {
    let seen = load(s, id).await?;
    authorize(
        &actor.principal,
        Action::InstanceOperate(seen.instance.department_id, seen.instance.project_id),
    )?;
    let f = zy_store::inventory::flavors(&s.store)
        .await?
        .into_iter()
        .find(|f| f.name == flavor || f.id.to_string() == flavor)
        .ok_or_else(|| {
            Error::validation(
                "flavor",
                t!("规格 {} 不存在" ; "flavor {} does not exist", validate::clip(flavor, 40)),
            )
        })?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let (i, disk) = resize_in(&mut tx, s, id, &f, disk_gib).await?;
    let i = &i;
    let detail = serde_json::json!({ "from": i.flavor_name, "to": f.name, "disk_gib": disk });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "resize_instance",
        "instance",
        &id.to_string(),
        detail,
    )
    .await?;
    if let Some(h) = i.host_id {
        if let Ok(Some(row)) = zy_store::inventory::host(s.store.pool(), h).await {
            s.compute.placement.upsert(&[row]);
        }
    }
    s.compute.wake.notify_one();
    Ok(load(s, id).await?.instance)
}

/// The resize of a stopped instance to flavor `f`, in the caller's transaction: quota and
/// host capacity for the difference, the new size conditional on the generation, and the
/// resize saga. Returns the instance as it was and the new disk size.
pub(crate) async fn resize_in(
    tx: &mut zy_store::Tx,
    s: &AppState,
    id: InstanceId,
    f: &zy_model::compute::Flavor,
    disk_gib: Option<u64>,
) -> Result<(Instance, u64), Error> {
    let r = load_in(tx, id).await?;
    let i = &r.instance;
    if i.recycled_at.is_some() {
        return Err(Error::conflict(t!(
            "云主机在回收站中，请先恢复",
            "the instance is in the recycle bin; restore it first"
        ))
        .with_details(serde_json::json!({ "reason": "in_recycle_bin" })));
    }
    if i.state != InstanceState::Stopped || i.desired != InstanceState::Stopped {
        return Err(Error::conflict(t!(
            "请先停止云主机再调整规格",
            "stop the instance before resizing it"
        ))
        .with_details(serde_json::json!({ "state": i.state })));
    }
    let disk = disk_gib.unwrap_or(i.disk_gib);
    if disk < i.disk_gib || disk > 65536 {
        return Err(Error::validation(
            "disk_gib",
            t!("系统盘只能扩大，不能缩小", "the disk can only grow"),
        ));
    }
    let delta = QuotaLimits {
        instances: 0,
        vcpus: f.vcpus as i64 - i.vcpus as i64,
        memory_mib: f.memory_mib as i64 - i.memory_mib as i64,
        disk_gib: disk as i64 - i.disk_gib as i64,
        volumes: 0,
    };
    if !zy_store::quotas::consume(tx, "department", &i.department_id.to_string(), &delta).await?
        || !zy_store::quotas::consume(tx, "project", &i.project_id.to_string(), &delta).await?
    {
        return Err(super::quotas::exceeded(s, i.department_id, i.project_id, &delta).await);
    }
    let new = zy_store::inventory::Demand {
        vcpus: f.vcpus as i64,
        memory_mib: f.memory_mib as i64,
        disk_gib: disk as i64,
        gpus: f.gpus as i64,
    };
    let host = i.host_id.filter(|_| r.capacity_held);
    if let Some(host) = host {
        let old = demand(i);
        // Release first, then claim the new size: one conditional update each, so the
        // host's limits are checked in the database.
        zy_store::inventory::release_capacity(tx, host, old).await?;
        if !zy_store::inventory::claim_capacity(tx, host, new).await? {
            return Err(Error::conflict(t!("所在宿主机没有足够资源容纳新规格", "the instance's host has no room for the new flavor"))
                .with_details(serde_json::json!({ "reason": "host_full", "delta": { "vcpus": new.vcpus - old.vcpus, "memory_mib": new.memory_mib - old.memory_mib } })));
        }
    }
    let to = instances::SizeCols {
        flavor_id: f.id,
        flavor_name: &f.name,
        vcpus: f.vcpus,
        memory_mib: f.memory_mib,
        disk_gib: disk,
        gpus: f.gpus,
    };
    if !instances::set_size_if(tx, id, instances::SizeGuard::Generation(i.generation), &to).await? {
        return Err(changed_meanwhile());
    }
    let params = instance_sagas::ResizeParams {
        instance_id: id,
        from: Size::of(i),
        from_flavor_name: i.flavor_name.clone(),
        to: Size {
            flavor_id: f.id,
            vcpus: f.vcpus,
            memory_mib: f.memory_mib,
            disk_gib: disk,
            gpus: f.gpus,
        },
        to_flavor_name: f.name.clone(),
        host_id: host,
    };
    if crate::saga::start(tx, &instance_sagas::RESIZE, &id.to_string(), &params)
        .await?
        .is_none()
    {
        return Err(busy_with_saga());
    }
    Ok((r.instance, disk))
}

/// The instance is in the middle of another change (a saga is running on it).
pub fn busy_with_saga() -> Error {
    Error::conflict(t!(
        "云主机正在执行其他操作，请稍后重试",
        "the instance is in the middle of another change; try again shortly"
    ))
    .with_details(serde_json::json!({ "reason": "operation_in_progress" }))
}

pub async fn events(
    s: &AppState,
    actor: &Actor,
    id: InstanceId,
) -> Result<Vec<InstanceEvent>, Error> {
    get(s, actor, id).await?;
    instances::events(&s.store, id).await
}

pub async fn console(
    s: &AppState,
    actor: &Actor,
    id: InstanceId,
    lines: usize,
) -> Result<String, Error> {
    let i = get(s, actor, id).await?;
    let (Some(host), Some(provider)) = (i.host_id, i.provider_id) else {
        return Err(Error::conflict(t!(
            "云主机尚未分配宿主机，暂无控制台输出",
            "the instance has no host yet, so no console output"
        )));
    };
    let driver = s.compute.drivers.get(provider)?;
    driver.console_log(id.0, host.0, lines).await.map_err(|e| {
        Error::conflict(t!("无法读取控制台输出", "cannot read the console output"))
            .with_internal(e.to_string())
    })
}
