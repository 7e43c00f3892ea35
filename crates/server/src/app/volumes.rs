//! Volume (云硬盘) use cases: created from a storage pool under quota, attached to and
//! detached from instances of the same project (hot-plug on the host), extended, and
//! deleted when detached. Storage pools are inventory, managed by the platform admin.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, tenancy_visibility, Action, Visibility};
use zy_store::{inventory, quotas, volumes};

pub async fn create_pool(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    zone: ZoneId,
    name: &str,
    capacity_gib: u64,
    (kind, path): (PoolKind, Option<&str>),
) -> Result<StoragePool, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    inventory::zones(&s.store)
        .await?
        .into_iter()
        .find(|z| z.id == zone)
        .ok_or_else(|| Error::not_found("zone", zone))?;
    if !(1..=1024 * 1024 * 1024).contains(&capacity_gib) {
        return Err(Error::validation(
            "capacity_gib",
            t!("容量超出合理范围", "capacity_gib is out of range"),
        ));
    }
    let path = match (kind, path) {
        (PoolKind::Local, None) => None,
        (PoolKind::Local, Some(_)) => {
            return Err(Error::validation(
                "path",
                t!("本地存储池不需要挂载路径", "a local pool has no mount path"),
            ))
        }
        (PoolKind::Shared, None) => {
            return Err(Error::validation(
                "path",
                t!(
                    "共享存储池需要填写各宿主机上的挂载路径",
                    "a shared pool needs the path it is mounted at on every host"
                ),
            ))
        }
        (PoolKind::Shared, Some(p)) => Some(shared_path(p)?),
        (PoolKind::Cinder, _) => {
            return Err(Error::validation(
                "kind",
                t!(
                    "Cinder 存储池由 OpenStack 云服务商的同步自动创建",
                    "a Cinder pool is made by the synchronisation of an OpenStack provider"
                ),
            ))
        }
    };
    let p = StoragePool {
        id: StoragePoolId::new(),
        zone_id: zone,
        name: validate::name("name", name)?,
        capacity_gib,
        used_gib: 0,
        created_at: Timestamp::now(),
        kind,
        path,
    };
    let mut tx = s.store.begin_write().await?;
    inventory::insert_pool(&mut tx, &p).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_storage_pool",
        "storage_pool",
        &p.id.to_string(),
        serde_json::json!({ "name": p.name, "capacity_gib": capacity_gib, "kind": p.kind, "path": p.path }),
    )
    .await?;
    Ok(p)
}

/// A shared pool's mount path: absolute, plain (no `..`, no control characters), at most
/// 200 bytes — it ends up in QEMU's command line and in file names on every host.
fn shared_path(p: &str) -> Result<String, Error> {
    let ok = p.starts_with('/')
        && p.len() <= 200
        && p.len() > 1
        && !p.split('/').any(|c| c == ".." || c == ".")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    if !ok {
        return Err(Error::validation(
            "path",
            t!(
                "挂载路径须为绝对路径，仅含字母、数字和 / - _ .，且不超过 200 个字符",
                "the mount path must be absolute, at most 200 characters of letters, digits and / - _ ."
            ),
        ));
    }
    Ok(p.trim_end_matches('/').to_string())
}

pub async fn list_pools(s: &AppState, actor: &Actor) -> Result<Vec<StoragePool>, Error> {
    let v = super::inventory::infra_visibility(actor)?;
    let zones = inventory::zones(&s.store).await?;
    Ok(inventory::pools(&s.store)
        .await?
        .into_iter()
        .filter(|p| {
            zones
                .iter()
                .any(|z| z.id == p.zone_id && v.includes(z.provider_id))
        })
        .collect())
}

fn delta(size: i64, count: i64) -> QuotaLimits {
    QuotaLimits {
        instances: 0,
        vcpus: 0,
        memory_mib: 0,
        disk_gib: size,
        volumes: count,
    }
}

pub(crate) async fn load(s: &AppState, actor: &Actor, id: VolumeId) -> Result<Volume, Error> {
    let v = volumes::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("volume", id))?;
    authorize(
        &actor.principal,
        Action::InstanceOperate(v.department_id, v.project_id),
    )?;
    Ok(v)
}

pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    project: ProjectId,
    name: &str,
    size_gib: u64,
    pool: Option<StoragePoolId>,
) -> Result<Volume, Error> {
    let pr = zy_store::projects::get(s.store.pool(), project)
        .await?
        .ok_or_else(|| Error::not_found("project", project))?;
    authorize(
        &actor.principal,
        Action::InstanceOperate(pr.department_id, pr.id),
    )?;
    super::requests::refuse_if_requests_only(s, pr.department_id).await?;
    if !(1..=65536).contains(&size_gib) {
        return Err(Error::validation(
            "size_gib",
            t!(
                "云硬盘大小须在 1 到 65536 GiB 之间",
                "size_gib must be between 1 and 65536"
            ),
        ));
    }
    let pool = pick_pool(s, pool).await?;
    let v = Volume {
        id: VolumeId::new(),
        project_id: pr.id,
        department_id: pr.department_id,
        name: validate::name("name", name)?,
        size_gib,
        pool_id: pool.id,
        instance_id: None,
        state: VolumeState::Available,
        recycled_at: None,
        purge_at: None,
        recycle_reason: None,
        origin: "created".into(),
        adopted_at: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    if !insert_in(&mut tx, &v, &pool).await? {
        drop(tx);
        let d = delta(size_gib as i64, 1);
        return Err(super::quotas::exceeded(s, pr.department_id, pr.id, &d).await);
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_volume",
        "volume",
        &v.id.to_string(),
        serde_json::json!({ "name": v.name, "size_gib": size_gib }),
    )
    .await?;
    Ok(v)
}

/// The pool asked for, or the one with the most free space. An OpenStack provider's
/// Cinder pool is only used when asked for (its capacity is nominal: Cinder keeps its own
/// account, so it would otherwise always have the most free space).
pub(crate) async fn pick_pool(
    s: &AppState,
    pool: Option<StoragePoolId>,
) -> Result<StoragePool, Error> {
    let pools = inventory::pools(&s.store).await?;
    match pool {
        Some(p) => pools
            .into_iter()
            .find(|x| x.id == p)
            .ok_or_else(|| Error::not_found("storage_pool", p)),
        None => pools
            .into_iter()
            .filter(|p| p.kind != PoolKind::Cinder)
            .max_by_key(|p| p.capacity_gib.saturating_sub(p.used_gib))
            .ok_or_else(|| {
                Error::conflict(t!(
                    "还没有存储池，请联系平台管理员",
                    "there is no storage pool yet; ask the platform admin"
                ))
            }),
    }
}

/// Takes the quotas and the pool's space and inserts the volume, in the caller's
/// transaction. False when a quota would be exceeded; a conflict when the pool is full.
pub(crate) async fn insert_in(
    tx: &mut zy_store::Tx,
    v: &Volume,
    pool: &StoragePool,
) -> Result<bool, Error> {
    let d = delta(v.size_gib as i64, 1);
    if !quotas::consume(tx, "department", &v.department_id.to_string(), &d).await?
        || !quotas::consume(tx, "project", &v.project_id.to_string(), &d).await?
    {
        return Ok(false);
    }
    if !inventory::claim_pool(tx, pool.id, v.size_gib as i64).await? {
        return Err(Error::conflict(
            t!("存储池 {} 剩余空间不足" ; "storage pool {} has not enough free space", pool.name),
        )
        .with_details(serde_json::json!({ "reason": "pool_full" })));
    }
    volumes::insert(tx, v).await?;
    Ok(true)
}

/// Deletes an unattached volume and gives back its quota and pool space, in the caller's
/// transaction (a delivery being rolled back). False when it is attached or gone.
pub(crate) async fn remove_in(tx: &mut zy_store::Tx, id: VolumeId) -> Result<bool, Error> {
    let Some(v) = volumes::get_for_update(tx, id).await? else {
        return Ok(false);
    };
    if zy_store::sagas::active_for(&mut **tx, &id.to_string())
        .await?
        .is_some()
    {
        return Ok(false);
    }
    release_in(tx, &v).await
}

pub async fn get(s: &AppState, actor: &Actor, id: VolumeId) -> Result<Volume, Error> {
    let v = volumes::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("volume", id))?;
    authorize(
        &actor.principal,
        Action::InstanceRead(v.department_id, v.project_id),
    )?;
    Ok(v)
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    project: Option<ProjectId>,
    recycled: bool,
) -> Result<Page<Volume>, Error> {
    let vis = if authorize(&actor.principal, Action::InventoryManage).is_ok() {
        Visibility::All
    } else {
        tenancy_visibility(&actor.principal)
    };
    match vis {
        Visibility::All => volumes::list(&s.store, page, None, None, project, recycled).await,
        v if v.is_empty() => Err(Error::forbidden(t!(
            "您的角色无权查看云硬盘",
            "Your role may not see volumes"
        ))),
        Visibility::Some {
            departments,
            projects,
        } => {
            volumes::list(
                &s.store,
                page,
                Some(&departments),
                Some(&projects),
                project,
                recycled,
            )
            .await
        }
    }
}

/// Runs a volume saga this request started, then answers with the volume, or with the
/// host's refusal when the saga was undone.
async fn finish_saga(
    s: &AppState,
    actor: &Actor,
    id: VolumeId,
    saga_id: &str,
    refused: zy_model::Text,
) -> Result<Volume, Error> {
    let outcome = crate::saga::run_now(&s.compute, &s.store, saga_id, s.config.lease_secs).await;
    let outcome = match outcome {
        crate::saga::Outcome::Finished(st) => Some(st),
        // Retrying later, or run by the executor: wait a little for its end.
        _ => {
            s.compute.wake.notify_one();
            crate::saga::wait(&s.store, saga_id, std::time::Duration::from_secs(10)).await?
        }
    };
    if outcome == Some(zy_store::sagas::SagaState::Undone) {
        let why = zy_store::sagas::get(s.store.pool(), saga_id)
            .await?
            .and_then(|r| r.error)
            .unwrap_or_default();
        return Err(Error::conflict(refused)
            .with_internal(why)
            .with_details(serde_json::json!({ "saga_id": saga_id })));
    }
    get(s, actor, id).await
}

fn volume_busy() -> Error {
    Error::conflict(t!(
        "云硬盘正在执行其他操作，请稍后重试",
        "the volume is in the middle of another change; try again shortly"
    ))
    .with_details(serde_json::json!({ "reason": "operation_in_progress" }))
}

/// Attaches a volume: the attachment is reserved in the database with the attach saga,
/// then the saga hot-plugs it on the host (outside any transaction) and undoes the
/// reservation if the host refuses.
pub async fn attach(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VolumeId,
    instance: InstanceId,
) -> Result<Volume, Error> {
    let v = load(s, actor, id).await?;
    let pool_zone = inventory::pools(&s.store)
        .await?
        .into_iter()
        .find(|p| p.id == v.pool_id)
        .map(|p| p.zone_id);
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let i = zy_store::instances::get(&mut *tx, instance)
        .await?
        .filter(|r| r.instance.state != InstanceState::Deleted)
        .ok_or_else(|| Error::not_found("instance", instance))?
        .instance;
    if i.project_id != v.project_id {
        return Err(Error::validation(
            "instance_id",
            t!(
                "云硬盘只能挂载到同一项目的云主机",
                "a volume can only be attached to an instance of the same project"
            ),
        ));
    }
    if i.host_id.is_none() {
        return Err(Error::conflict(t!(
            "云主机尚未分配宿主机",
            "the instance has no host yet"
        )));
    }
    if !matches!(i.state, InstanceState::Running | InstanceState::Stopped)
        || i.desired == InstanceState::Deleted
    {
        return Err(Error::conflict(
            t!("云主机当前状态为 {}，不能挂载云硬盘" ; "the instance is {} and cannot take a volume now", i.state.as_str()),
        ));
    }
    if pool_zone.is_some_and(|z| Some(z) != i.zone_id) {
        return Err(Error::validation(
            "instance_id",
            t!(
                "云硬盘与云主机不在同一可用区",
                "the volume and the instance are in different zones"
            ),
        ));
    }
    if v.recycled_at.is_some() || i.recycled_at.is_some() {
        return Err(Error::conflict(t!(
            "云硬盘或云主机在回收站中，请先恢复",
            "the volume or the instance is in the recycle bin; restore it first"
        ))
        .with_details(serde_json::json!({ "reason": "in_recycle_bin" })));
    }
    if !volumes::set_attachment(&mut tx, id, Some(instance)).await? {
        return Err(Error::conflict(t!(
            "云硬盘已挂载到其他云主机",
            "the volume is already attached"
        ))
        .with_details(serde_json::json!({ "instance_id": v.instance_id })));
    }
    let params = crate::compute::sagas::volume::Attachment {
        volume_id: id,
        instance_id: instance,
    };
    let Some(saga_id) = crate::saga::start(
        &mut tx,
        &crate::compute::sagas::volume::ATTACH,
        &id.to_string(),
        &params,
    )
    .await?
    else {
        return Err(volume_busy());
    };
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "attach_volume",
        "volume",
        &id.to_string(),
        serde_json::json!({ "instance_id": instance, "saga_id": saga_id }),
    )
    .await?;
    finish_saga(
        s,
        actor,
        id,
        &saga_id,
        t!(
            "宿主机未能挂载云硬盘，已撤销，请稍后重试",
            "the host could not attach the volume; nothing was changed, try again shortly"
        ),
    )
    .await
}

/// Detaches a volume: the saga unplugs it on the host first and only then records it
/// available, so the database never calls a volume free that is still plugged in.
pub async fn detach(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VolumeId,
) -> Result<Volume, Error> {
    load(s, actor, id).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let v = volumes::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("volume", id))?;
    let Some(instance) = v.instance_id else {
        return Err(Error::conflict(t!(
            "云硬盘未挂载",
            "the volume is not attached"
        )));
    };
    let params = crate::compute::sagas::volume::Attachment {
        volume_id: id,
        instance_id: instance,
    };
    let Some(saga_id) = crate::saga::start(
        &mut tx,
        &crate::compute::sagas::volume::DETACH,
        &id.to_string(),
        &params,
    )
    .await?
    else {
        return Err(volume_busy());
    };
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "detach_volume",
        "volume",
        &id.to_string(),
        serde_json::json!({ "instance_id": instance, "saga_id": saga_id }),
    )
    .await?;
    finish_saga(
        s,
        actor,
        id,
        &saga_id,
        t!(
            "宿主机未能卸载云硬盘，云硬盘仍挂载，请稍后重试",
            "the host could not detach the volume; it stays attached, try again shortly"
        ),
    )
    .await
}

/// Extends a volume: quota, pool space and the new size are taken with the extend saga
/// in one transaction; the saga grows it on the host and gives everything back if that
/// fails.
pub async fn extend(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VolumeId,
    size_gib: u64,
) -> Result<Volume, Error> {
    load(s, actor, id).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let v = volumes::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("volume", id))?;
    if size_gib <= v.size_gib || size_gib > 65536 {
        return Err(Error::validation(
            "size_gib",
            t!("只能扩容，新大小须大于 {} GiB 且不超过 65536" ; "a volume only grows: size_gib must exceed {} and be at most 65536", v.size_gib),
        ));
    }
    let grow = (size_gib - v.size_gib) as i64;
    let d = delta(grow, 0);
    if !quotas::consume(&mut tx, "department", &v.department_id.to_string(), &d).await?
        || !quotas::consume(&mut tx, "project", &v.project_id.to_string(), &d).await?
    {
        drop(tx);
        return Err(super::quotas::exceeded(s, v.department_id, v.project_id, &d).await);
    }
    if !inventory::claim_pool(&mut tx, v.pool_id, grow).await? {
        return Err(Error::conflict(t!(
            "存储池剩余空间不足",
            "the storage pool has not enough free space"
        ))
        .with_details(serde_json::json!({ "reason": "pool_full" })));
    }
    if !volumes::restore_size(&mut tx, id, v.size_gib, size_gib).await? {
        return Err(volume_busy());
    }
    let params = crate::compute::sagas::volume::Growth {
        volume_id: id,
        from_gib: v.size_gib,
        to_gib: size_gib,
    };
    let Some(saga_id) = crate::saga::start(
        &mut tx,
        &crate::compute::sagas::volume::EXTEND,
        &id.to_string(),
        &params,
    )
    .await?
    else {
        return Err(volume_busy());
    };
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "extend_volume",
        "volume",
        &id.to_string(),
        serde_json::json!({ "from": v.size_gib, "to": size_gib, "saga_id": saga_id }),
    )
    .await?;
    finish_saga(
        s,
        actor,
        id,
        &saga_id,
        t!(
            "宿主机未能扩容云硬盘，已撤销，请稍后重试",
            "the host could not grow the volume; nothing was changed, try again shortly"
        ),
    )
    .await
}

/// Deletes a detached volume with the delete saga: the provider's storage first (an
/// OpenStack provider's Cinder volume), then the row with its pool space and quota.
/// True when it is gone by the answer; false when the saga goes on (the provider is slow
/// or refuses for now; see the saga's error).
pub async fn delete(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VolumeId,
) -> Result<bool, Error> {
    load(s, actor, id).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    // Decided on the row as it is now, not as it was read before the transaction.
    let v = volumes::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("volume", id))?;
    let saga_id = start_delete(&mut tx, &v).await?.ok_or_else(volume_busy)?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_volume",
        "volume",
        &id.to_string(),
        serde_json::json!({ "name": v.name, "size_gib": v.size_gib, "saga_id": saga_id }),
    )
    .await?;
    let outcome = crate::saga::run_now(&s.compute, &s.store, &saga_id, s.config.lease_secs).await;
    let done = match outcome {
        crate::saga::Outcome::Finished(st) => Some(st),
        _ => {
            s.compute.wake.notify_one();
            crate::saga::wait(&s.store, &saga_id, std::time::Duration::from_secs(10)).await?
        }
    };
    Ok(done == Some(zy_store::sagas::SagaState::Done))
}

/// Starts the delete saga of a volume read in this transaction (`get_for_update`): refused
/// while it is attached; `None` while another saga works on it. Also the recycle bin's
/// purge.
pub(crate) async fn start_delete(
    tx: &mut zy_store::Tx,
    v: &Volume,
) -> Result<Option<String>, Error> {
    if zy_store::sagas::active_for(&mut **tx, &v.id.to_string())
        .await?
        .is_some()
    {
        return Ok(None);
    }
    if v.state != VolumeState::Available || v.instance_id.is_some() {
        return Err(Error::conflict(t!(
            "云硬盘仍挂载在云主机上，请先卸载",
            "the volume is still attached; detach it first"
        ))
        .with_details(serde_json::json!({ "instance_id": v.instance_id })));
    }
    crate::saga::start(
        tx,
        &crate::compute::sagas::volume::DELETE,
        &v.id.to_string(),
        &crate::compute::sagas::volume::Removal { volume_id: v.id },
    )
    .await
}

/// Deletes an unattached volume's row and gives its pool space and quota back, in the
/// caller's transaction (the delete saga's last step); false when it is attached.
pub(crate) async fn release_in(tx: &mut zy_store::Tx, v: &Volume) -> Result<bool, Error> {
    if !volumes::delete_available(tx, v.id).await? {
        return Ok(false);
    }
    inventory::claim_pool(tx, v.pool_id, -(v.size_gib as i64)).await?;
    let d = delta(v.size_gib as i64, 1);
    quotas::release(tx, "department", &v.department_id.to_string(), &d).await?;
    quotas::release(tx, "project", &v.project_id.to_string(), &d).await?;
    Ok(true)
}
