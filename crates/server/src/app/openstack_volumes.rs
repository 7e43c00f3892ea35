//! OpenStack providers' Cinder volumes: the `cinder` storage pool of each of the
//! provider's zones, the comparison of Cinder with zhengyun's volumes (drift of kind
//! `volume`) and the adoption (纳管) of a volume that appeared in Cinder. Separate from
//! `openstack` (servers, settings, the synchronisation) because volumes have their own
//! rules: a zhengyun volume exists in Cinder only from its first attach, and a server's
//! boot volume belongs to the server.
//!
//! An adopted volume's zhengyun id **is the Cinder volume id** (as an adopted instance's is
//! the Nova server id): nothing is written into the provider, and the driver finds it by id
//! when the marker lookup misses. Its pool is the zone's Cinder pool, whose capacity is
//! nominal ([`POOL_CAPACITY_GIB`]): Cinder keeps its own account of space.

use std::collections::HashSet;

use super::openstack::{derived_id, keep_open, mapped_project, owns, DriftItem};
use super::{commit_audited, commit_system};
use crate::auth::actor::Actor;
use crate::compute::openstack::{CinderVolume, OpenStackDriver, OpenStackSettings, Server};
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_store::instances::InstanceRow;
use zy_store::inventory;

/// The capacity a Cinder pool is shown with (1 PiB): a ceiling zhengyun's own account never
/// meets; the provider's Cinder refuses what it has no room for.
pub const POOL_CAPACITY_GIB: u64 = 1 << 20;

/// The name of a zone's Cinder pool.
pub const POOL_NAME: &str = "OpenStack Cinder";

/// The id of the Cinder pool of a provider's zone (stable across synchronisations).
pub fn pool_id(provider: ProviderId, zone: ZoneId) -> StoragePoolId {
    StoragePoolId(derived_id(&format!("openstack-pool:{provider}:{zone}")))
}

/// The Cinder pools the provider's zones lack (one per zone).
pub fn missing_pools(
    provider: ProviderId,
    zones: &[Zone],
    pools: &[StoragePool],
) -> Vec<StoragePool> {
    zones
        .iter()
        .filter(|z| z.provider_id == provider)
        .filter(|z| !pools.iter().any(|p| p.id == pool_id(provider, z.id)))
        .map(|z| StoragePool {
            id: pool_id(provider, z.id),
            zone_id: z.id,
            name: POOL_NAME.into(),
            capacity_gib: POOL_CAPACITY_GIB,
            used_gib: 0,
            created_at: Timestamp::now(),
            kind: PoolKind::Cinder,
            path: None,
        })
        .collect()
}

/// The provider's Cinder volumes in the credential's project and every mapped project;
/// `None` when its catalogue has no block storage (a cloud without Cinder has no volume
/// drift).
pub async fn volumes_of(driver: &OpenStackDriver) -> Result<Option<Vec<CinderVolume>>, Error> {
    let unavailable = |e: zy_compute::DriverError| {
        Error::unavailable(t!(
            "无法读取 OpenStack 云的云硬盘：{}" ;
            "cannot read the OpenStack cloud's volumes: {}",
            e
        ))
    };
    if !driver
        .client
        .has_service("block-storage")
        .await
        .map_err(unavailable)?
    {
        return Ok(None);
    }
    let own = driver.client.project_id().await.map_err(unavailable)?;
    let mut projects = vec![own];
    for m in &driver.client.settings.projects {
        if !projects.contains(&m.openstack_project) {
            projects.push(m.openstack_project.clone());
        }
    }
    let mut out: Vec<CinderVolume> = Vec::new();
    let mut ids = HashSet::new();
    for p in &projects {
        for v in driver.client.list_volumes(p).await.map_err(unavailable)? {
            if ids.insert(v.id.clone()) {
                out.push(v);
            }
        }
    }
    Ok(Some(out))
}

/// zhengyun's volumes in the provider's Cinder pools, and those a saga works on now
/// (their Cinder side is expected to differ until it ends).
pub async fn volumes_on(
    s: &AppState,
    provider: ProviderId,
) -> Result<(Vec<Volume>, HashSet<VolumeId>), Error> {
    let zones: HashSet<ZoneId> = inventory::zones(&s.store)
        .await?
        .into_iter()
        .filter(|z| z.provider_id == provider)
        .map(|z| z.id)
        .collect();
    let pools: HashSet<StoragePoolId> = inventory::pools(&s.store)
        .await?
        .into_iter()
        .filter(|p| p.kind == PoolKind::Cinder && zones.contains(&p.zone_id))
        .map(|p| p.id)
        .collect();
    let volumes: Vec<Volume> = zy_store::volumes::all(&s.store)
        .await?
        .into_iter()
        .filter(|v| pools.contains(&v.pool_id))
        .collect();
    let busy = zy_store::sagas::active(&s.store, 100_000)
        .await?
        .into_iter()
        .filter_map(|r| uuid::Uuid::parse_str(&r.target_id).ok().map(VolumeId))
        .filter(|id| volumes.iter().any(|v| v.id == *id))
        .collect();
    Ok((volumes, busy))
}

/// Whether `cv` is the Cinder volume of zhengyun's volume `id`: one zhengyun created
/// carries the volume id as its marker; an adopted one has the Cinder id as volume id.
pub fn owns_volume(cv: &CinderVolume, id: VolumeId) -> bool {
    cv.marker == Some(id.0) || cv.id == id.0.to_string()
}

/// Both sides of the volume comparison.
pub struct Sides<'a> {
    pub cinder: &'a [CinderVolume],
    /// zhengyun's volumes in the provider's Cinder pools.
    pub volumes: &'a [Volume],
    /// Volumes a saga works on (not compared).
    pub busy: &'a HashSet<VolumeId>,
    /// zhengyun's live instances on the provider.
    pub instances: &'a [InstanceRow],
    pub servers: &'a [Server],
}

impl Sides<'_> {
    /// The zhengyun instance a Nova server is.
    fn instance_of(&self, server: &str) -> Option<&Instance> {
        let sv = self.servers.iter().find(|x| x.id == server);
        self.instances
            .iter()
            .map(|r| &r.instance)
            .find(|i| i.id.0.to_string() == server || sv.is_some_and(|sv| owns(sv, i.id)))
    }

    /// The Nova server of a zhengyun instance.
    fn server_of(&self, instance: InstanceId) -> Option<&Server> {
        self.servers.iter().find(|sv| owns(sv, instance))
    }

    fn server_name(&self, server: &str) -> String {
        self.servers
            .iter()
            .find(|x| x.id == server)
            .map(|x| format!("{} ({server})", x.name))
            .unwrap_or_else(|| server.to_string())
    }
}

/// Cinder states in which a volume is settled (compared); the others are on their way.
fn settled(status: &str) -> bool {
    matches!(status, "available" | "in-use")
}

/// The pure comparison of Cinder with zhengyun's volumes: volumes that appeared in Cinder,
/// zhengyun's volumes whose size or attachment changed there, and zhengyun's volumes
/// Cinder no longer has. A zhengyun volume gets its Cinder volume at its first attach, so
/// only adopted volumes and attached ones can have disappeared; a boot volume attached to
/// its server is part of the server, not drift of its own.
pub fn compare(settings: &OpenStackSettings, sides: &Sides<'_>) -> Vec<DriftItem> {
    let mut out = Vec::new();
    for cv in sides.cinder {
        if matches!(cv.status.as_str(), "deleting" | "deleted") {
            continue;
        }
        let attached: Vec<String> = cv
            .attachments
            .iter()
            .map(|a| sides.server_name(a))
            .collect();
        let Some(v) = sides.volumes.iter().find(|v| owns_volume(cv, v.id)) else {
            if cv.bootable && !cv.attachments.is_empty() {
                continue;
            }
            let owner = settings.owner_of(&cv.project_id);
            out.push(DriftItem {
                resource: "volume".into(),
                kind: "appeared".into(),
                external_id: cv.id.clone(),
                name: cv.name.clone(),
                openstack_project: Some(cv.project_id.clone()),
                instance_id: cv
                    .attachments
                    .iter()
                    .find_map(|a| sides.instance_of(a))
                    .map(|i| i.id),
                department_id: owner.map(|o| DepartmentId(o.department_id)),
                project_id: owner.map(|o| ProjectId(o.project_id)),
                detail: format!(
                    "{} GiB, {}{}{}",
                    cv.size_gib,
                    cv.status,
                    if attached.is_empty() {
                        String::new()
                    } else {
                        format!("; attached to server {}", attached.join(", "))
                    },
                    if cv.marker.is_some() {
                        "; marked for a zhengyun volume that no longer exists"
                    } else {
                        ""
                    }
                ),
            });
            continue;
        };
        if sides.busy.contains(&v.id) || !settled(&cv.status) {
            continue;
        }
        let mut changes = Vec::new();
        if cv.size_gib != v.size_gib {
            changes.push(format!(
                "size {} GiB in zhengyun, {} GiB in the provider",
                v.size_gib, cv.size_gib
            ));
        }
        let there = if attached.is_empty() {
            "detached".to_string()
        } else {
            format!("attached to server {}", attached.join(", "))
        };
        match v.instance_id {
            Some(i) => {
                // Compared only while zhengyun knows the instance's server (a server that
                // disappeared is drift of its own).
                if let Some(sv) = sides.server_of(i) {
                    if !cv.attachments.contains(&sv.id) {
                        changes.push(format!(
                            "attached to {} in zhengyun, {there} in the provider",
                            sides
                                .instances
                                .iter()
                                .find(|r| r.instance.id == i)
                                .map(|r| r.instance.name.clone())
                                .unwrap_or_else(|| i.to_string())
                        ));
                    }
                }
            }
            None if !cv.attachments.is_empty() => {
                changes.push(format!("detached in zhengyun, {there} in the provider"));
            }
            None => {}
        }
        if !changes.is_empty() {
            out.push(DriftItem {
                resource: "volume".into(),
                kind: "changed".into(),
                external_id: cv.id.clone(),
                name: v.name.clone(),
                openstack_project: Some(cv.project_id.clone()),
                instance_id: v.instance_id,
                department_id: Some(v.department_id),
                project_id: Some(v.project_id),
                detail: changes.join("; "),
            });
        }
    }
    for v in sides.volumes {
        if sides.busy.contains(&v.id) || (v.origin != "adopted" && v.instance_id.is_none()) {
            continue;
        }
        if !sides
            .cinder
            .iter()
            .any(|cv| owns_volume(cv, v.id) && cv.status != "deleted")
        {
            out.push(DriftItem {
                resource: "volume".into(),
                kind: "disappeared".into(),
                external_id: v.id.to_string(),
                name: v.name.clone(),
                openstack_project: None,
                instance_id: v.instance_id,
                department_id: Some(v.department_id),
                project_id: Some(v.project_id),
                detail: format!(
                    "{} GiB, {} in zhengyun; the provider has no volume for it",
                    v.size_gib,
                    match v.state {
                        VolumeState::InUse => "in use",
                        VolumeState::Available => "available",
                    }
                ),
            });
        }
    }
    out
}

/// Makes a volume that appeared in Cinder a zhengyun volume of the mapped department and
/// project, in one transaction with the quota check, the pool's space, the usage ledger
/// (metered from now) and the audit record. One attached to a zhengyun instance of that
/// project is recorded attached to it. On refusal the item stays open with the reason.
pub async fn adopt(
    s: &AppState,
    ctx: Option<&RequestContext>,
    actor: Option<&Actor>,
    d: &DriftRecord,
    cv: &CinderVolume,
) -> Result<Volume, Error> {
    let v = match volume_row(s, d, cv).await {
        Ok(v) => v,
        Err(e) => {
            keep_open(s, d, &e).await?;
            return Err(e);
        }
    };
    let want = QuotaLimits {
        instances: 0,
        vcpus: 0,
        memory_mib: 0,
        disk_gib: v.size_gib as i64,
        volumes: 1,
    };
    let mut tx = s.store.begin_write_for(&v.id.to_string()).await?;
    if !zy_store::drift::set_state(
        &mut tx,
        d.id,
        "open",
        "adopted",
        "",
        None,
        actor.map(|a| a.user.id),
        Timestamp::now(),
    )
    .await?
    {
        return Err(Error::conflict(t!(
            "该差异项已不是待处理状态（可能已被纳管或忽略）",
            "this drift item is no longer open (it may have been adopted or dismissed already)"
        )));
    }
    if !zy_store::quotas::consume(&mut tx, "department", &v.department_id.to_string(), &want)
        .await?
        || !zy_store::quotas::consume(&mut tx, "project", &v.project_id.to_string(), &want).await?
    {
        drop(tx);
        let e = super::quotas::exceeded(s, v.department_id, v.project_id, &want).await;
        keep_open(s, d, &e).await?;
        return Err(e);
    }
    if !inventory::claim_pool(&mut tx, v.pool_id, v.size_gib as i64).await? {
        drop(tx);
        let e = Error::conflict(t!(
            "Cinder 存储池剩余空间不足",
            "the Cinder storage pool has not enough free space"
        ));
        keep_open(s, d, &e).await?;
        return Err(e);
    }
    zy_store::volumes::insert_adopted(&mut tx, &v).await?;
    let detail = serde_json::json!({
        "drift_item": d.id,
        "cinder_volume": cv.id,
        "name": v.name,
        "department_id": v.department_id,
        "project_id": v.project_id,
        "size_gib": v.size_gib,
        "instance_id": v.instance_id,
    });
    let target = v.id.to_string();
    match (ctx, actor) {
        (Some(ctx), Some(actor)) => {
            commit_audited(
                tx,
                ctx,
                Some(actor),
                "adopt_openstack_drift",
                "volume",
                &target,
                detail,
            )
            .await?
        }
        _ => commit_system(tx, "adopt_openstack_drift", "volume", &target, detail).await?,
    }
    Ok(v)
}

/// The volume an appeared Cinder volume becomes (read-only: checks the mapping, the state,
/// the pool and what it is attached to).
async fn volume_row(s: &AppState, d: &DriftRecord, cv: &CinderVolume) -> Result<Volume, Error> {
    let driver = s.compute.drivers.openstack(d.provider_id).ok_or_else(|| {
        Error::unavailable(t!(
            "云服务商 {} 没有可用的 OpenStack 驱动" ;
            "provider {} has no OpenStack driver",
            d.provider_id
        ))
    })?;
    let settings = &driver.client.settings;
    let project = mapped_project(s, settings, &cv.project_id).await?;
    if !settled(&cv.status) {
        return Err(Error::conflict(t!(
            "云硬盘状态为 {}，只有可用或已挂载的云硬盘可以纳管" ;
            "the volume is {}; only available or in-use volumes can be adopted",
            cv.status
        )));
    }
    let vid = uuid::Uuid::parse_str(&cv.id).map_err(|_| {
        Error::validation(
            "volume",
            t!("云硬盘 ID {} 不是 UUID" ; "the volume id {} is not a UUID", cv.id),
        )
    })?;
    // The zone: the one mapped to the volume's availability zone, else the provider's
    // first.
    let zones: Vec<Zone> = inventory::zones(&s.store)
        .await?
        .into_iter()
        .filter(|z| z.provider_id == d.provider_id)
        .collect();
    let zone = cv
        .availability_zone
        .as_deref()
        .and_then(|az| {
            settings
                .zones
                .iter()
                .find(|m| m.availability_zone == az)
                .and_then(|m| zones.iter().find(|z| z.id.0 == m.zone_id))
        })
        .or_else(|| zones.iter().min_by_key(|z| z.created_at.0));
    let pools = inventory::pools(&s.store).await?;
    let pool = zone
        .map(|z| pool_id(d.provider_id, z.id))
        .and_then(|p| pools.iter().find(|x| x.id == p))
        .ok_or_else(|| {
            Error::conflict(t!(
                "该云服务商的可用区还没有 Cinder 存储池，请先同步",
                "the provider's zone has no Cinder storage pool yet; synchronise it first"
            ))
        })?;
    let instance = match cv.attachments.first() {
        None => None,
        Some(server) => {
            Some(attached_instance(s, &driver, d.provider_id, server, project.id).await?)
        }
    };
    let now = Timestamp::now();
    let name: String = if cv.name.trim().is_empty() {
        format!("volume-{}", &cv.id[..8.min(cv.id.len())])
    } else {
        cv.name.chars().take(100).collect()
    };
    Ok(Volume {
        id: VolumeId(vid),
        project_id: project.id,
        department_id: project.department_id,
        name,
        size_gib: cv.size_gib.max(1),
        pool_id: pool.id,
        instance_id: instance,
        state: if instance.is_some() {
            VolumeState::InUse
        } else {
            VolumeState::Available
        },
        recycled_at: None,
        purge_at: None,
        recycle_reason: None,
        origin: "adopted".into(),
        adopted_at: Some(now),
        created_at: now,
        updated_at: now,
        generation: 1,
    })
}

/// The zhengyun instance of `project` that Nova server `server` is (an adopted one has the
/// server's id; one zhengyun created carries its id as marker); refused otherwise: the
/// server is adopted first.
async fn attached_instance(
    s: &AppState,
    driver: &OpenStackDriver,
    provider: ProviderId,
    server: &str,
    project: ProjectId,
) -> Result<InstanceId, Error> {
    let instances: Vec<InstanceRow> = zy_store::instances::live(&s.store)
        .await?
        .into_iter()
        .filter(|r| r.instance.provider_id == Some(provider))
        .collect();
    let mut found = instances
        .iter()
        .find(|r| r.instance.id.0.to_string() == server)
        .map(|r| &r.instance);
    if found.is_none() {
        let sv = driver.client.server(server).await.map_err(|e| {
            Error::unavailable(t!(
                "无法读取 OpenStack 云的云主机：{}" ;
                "cannot read the OpenStack cloud's server: {}",
                e
            ))
        })?;
        found = sv.and_then(|sv| {
            instances
                .iter()
                .map(|r| &r.instance)
                .find(|i| owns(&sv, i.id))
        });
    }
    match found {
        Some(i) if i.project_id == project => Ok(i.id),
        _ => Err(Error::conflict(t!(
            "云硬盘挂载在云主机 {} 上，它不是映射项目中的 zhengyun 云主机；请先纳管该云主机" ;
            "the volume is attached to server {}, which is not a zhengyun instance of the mapped project; adopt the server first",
            server
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::openstack::ProjectMapping;

    fn cinder(id: &str, size: u64, status: &str, attached: &[&str]) -> CinderVolume {
        CinderVolume {
            id: id.into(),
            name: format!("vol-{id}"),
            status: status.into(),
            size_gib: size,
            project_id: "p1".into(),
            attachments: attached.iter().map(|s| s.to_string()).collect(),
            marker: None,
            bootable: false,
            availability_zone: Some("nova".into()),
        }
    }

    fn volume(id: uuid::Uuid, size: u64, instance: Option<InstanceId>, origin: &str) -> Volume {
        Volume {
            id: VolumeId(id),
            project_id: ProjectId(uuid::Uuid::nil()),
            department_id: DepartmentId(uuid::Uuid::nil()),
            name: "data".into(),
            size_gib: size,
            pool_id: StoragePoolId(uuid::Uuid::nil()),
            instance_id: instance,
            state: if instance.is_some() {
                VolumeState::InUse
            } else {
                VolumeState::Available
            },
            recycled_at: None,
            purge_at: None,
            recycle_reason: None,
            origin: origin.into(),
            adopted_at: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            generation: 1,
        }
    }

    fn settings() -> OpenStackSettings {
        let mut s: OpenStackSettings = serde_json::from_value(serde_json::json!({
            "auth_url": "http://127.0.0.1:5000/v3",
            "credential": { "type": "password", "username": "u", "password": "p", "project": "x" },
        }))
        .expect("settings");
        s.projects = vec![ProjectMapping {
            openstack_project: "p1".into(),
            department_id: uuid::Uuid::from_u128(1),
            project_id: uuid::Uuid::from_u128(2),
        }];
        s
    }

    fn run(cinder: &[CinderVolume], volumes: &[Volume], busy: &[VolumeId]) -> Vec<DriftItem> {
        let busy: HashSet<VolumeId> = busy.iter().copied().collect();
        compare(
            &settings(),
            &Sides {
                cinder,
                volumes,
                busy: &busy,
                instances: &[],
                servers: &[],
            },
        )
    }

    #[test]
    fn a_volume_made_in_cinder_appears_with_its_mapped_owner() {
        let id = uuid::Uuid::from_u128(7).to_string();
        let items = run(&[cinder(&id, 5, "available", &[])], &[], &[]);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(
            (items[0].resource.as_str(), items[0].kind.as_str()),
            ("volume", "appeared")
        );
        assert_eq!(items[0].external_id, id);
        assert_eq!(
            items[0].project_id,
            Some(ProjectId(uuid::Uuid::from_u128(2)))
        );
        assert!(items[0].detail.starts_with("5 GiB, available"), "{items:?}");
        // Being deleted there, or a server's boot volume: not drift.
        let mut boot = cinder(&id, 5, "in-use", &["srv"]);
        boot.bootable = true;
        assert!(run(&[cinder(&id, 5, "deleting", &[]), boot], &[], &[]).is_empty());
    }

    #[test]
    fn an_adopted_volume_extended_or_attached_outside_has_changed() {
        let id = uuid::Uuid::from_u128(9);
        let v = volume(id, 5, None, "adopted");
        assert!(run(
            &[cinder(&id.to_string(), 5, "available", &[])],
            std::slice::from_ref(&v),
            &[]
        )
        .is_empty());
        let items = run(
            &[cinder(&id.to_string(), 8, "available", &[])],
            std::slice::from_ref(&v),
            &[],
        );
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].kind, "changed");
        assert!(
            items[0].detail.contains("size 5 GiB in zhengyun, 8 GiB"),
            "{items:?}"
        );
        let items = run(
            &[cinder(&id.to_string(), 5, "in-use", &["srv-1"])],
            std::slice::from_ref(&v),
            &[],
        );
        assert!(
            items[0]
                .detail
                .contains("detached in zhengyun, attached to server srv-1"),
            "{items:?}"
        );
        // Unsettled in Cinder, or worked on by a saga: not compared.
        assert!(run(
            &[cinder(&id.to_string(), 8, "extending", &[])],
            std::slice::from_ref(&v),
            &[]
        )
        .is_empty());
        assert!(run(
            &[cinder(&id.to_string(), 8, "available", &[])],
            &[v],
            &[VolumeId(id)]
        )
        .is_empty());
    }

    #[test]
    fn only_volumes_that_must_be_in_cinder_can_disappear() {
        let adopted = volume(uuid::Uuid::from_u128(11), 5, None, "adopted");
        let never_attached = volume(uuid::Uuid::from_u128(12), 5, None, "created");
        let attached = volume(
            uuid::Uuid::from_u128(13),
            5,
            Some(InstanceId(uuid::Uuid::from_u128(99))),
            "created",
        );
        let items = run(
            &[],
            &[adopted.clone(), never_attached, attached.clone()],
            &[],
        );
        let gone: Vec<_> = items
            .iter()
            .filter(|i| i.kind == "disappeared")
            .map(|i| i.external_id.clone())
            .collect();
        assert_eq!(gone, vec![adopted.id.to_string(), attached.id.to_string()]);
        // One zhengyun created is found by its marker.
        let mut marked = cinder("c-1", 5, "in-use", &[]);
        marked.marker = Some(attached.id.0);
        let items = run(&[marked], &[attached], &[]);
        assert!(items.iter().all(|i| i.kind != "disappeared"), "{items:?}");
    }
}
