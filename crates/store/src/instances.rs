//! Instances (云主机), their events, server groups and anti-affinity slots. State changes
//! go through [`transition`], which is conditional on the state the caller saw and
//! records an event, so the history of every instance is complete.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};
use zy_model::time::Timestamp;
use zy_model::Error;

pub const COLS: &str = "id, project_id, department_id, name, flavor_id, flavor_name, image_id, image_name, vcpus, memory_mib, disk_gib, gpus, \
    want_zone_id, want_provider_id, group_id, zone_id, provider_id, host_id, state, desired, quota_held, capacity_held, disk_created, \
    resize_pending, reboot_pending, work, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, updated_at, generation, user_data, \
    lease_end, lease_ended, recycled_at, purge_at, recycle_reason, root_pool_id, ha_policy, ha_priority, origin, adopted_at, \
    (SELECT name FROM hosts WHERE hosts.id = instances.host_id) AS host_name, \
    (SELECT path FROM storage_pools WHERE storage_pools.id = instances.root_pool_id) AS shared_dir";

/// An instance as stored, with the bookkeeping the reconciler needs.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub instance: Instance,
    pub want_zone_id: Option<ZoneId>,
    pub want_provider_id: Option<ProviderId>,
    pub quota_held: bool,
    pub capacity_held: bool,
    pub disk_created: bool,
    pub resize_pending: bool,
    pub reboot_pending: bool,
    pub attempts: i64,
    /// Handed to the guest at boot; not part of the API view.
    pub user_data: String,
    /// Where the shared pool holding the root disk is mounted on the hosts.
    pub shared_dir: Option<String>,
}

impl Decode for InstanceRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let state = text(r, "state")?;
        let desired = text(r, "desired")?;
        Ok(InstanceRow {
            instance: Instance {
                id: id(r, "id")?,
                project_id: id(r, "project_id")?,
                department_id: id(r, "department_id")?,
                name: text(r, "name")?,
                flavor_id: id(r, "flavor_id")?,
                flavor_name: text(r, "flavor_name")?,
                image_id: id(r, "image_id")?,
                image_name: text(r, "image_name")?,
                vcpus: int(r, "vcpus")? as u32,
                memory_mib: int(r, "memory_mib")? as u64,
                disk_gib: int(r, "disk_gib")? as u64,
                gpus: int(r, "gpus")? as u32,
                group_id: opt_id(r, "group_id")?,
                zone_id: opt_id(r, "zone_id")?,
                provider_id: opt_id(r, "provider_id")?,
                host_id: opt_id(r, "host_id")?,
                host_name: opt_text(r, "host_name")?,
                state: InstanceState::parse(&state).unwrap_or(InstanceState::Error),
                desired: InstanceState::parse(&desired).unwrap_or(InstanceState::Running),
                last_error: opt_text(r, "last_error")?,
                lease_end: opt_ts(r, "lease_end")?,
                lease_ended: int(r, "lease_ended")? != 0,
                recycled_at: opt_ts(r, "recycled_at")?,
                purge_at: opt_ts(r, "purge_at")?,
                recycle_reason: opt_text(r, "recycle_reason")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
                generation: int(r, "generation")?,
                root_pool_id: opt_id(r, "root_pool_id")?,
                ha_policy: HaPolicy::parse(&text(r, "ha_policy")?).unwrap_or(HaPolicy::Inherit),
                ha_priority: int(r, "ha_priority")? as i32,
                origin: text(r, "origin")?,
                adopted_at: opt_ts(r, "adopted_at")?,
            },
            want_zone_id: opt_id(r, "want_zone_id")?,
            want_provider_id: opt_id(r, "want_provider_id")?,
            quota_held: int(r, "quota_held")? != 0,
            capacity_held: int(r, "capacity_held")? != 0,
            disk_created: int(r, "disk_created")? != 0,
            resize_pending: int(r, "resize_pending")? != 0,
            reboot_pending: int(r, "reboot_pending")? != 0,
            attempts: int(r, "attempts")?,
            user_data: text(r, "user_data")?,
            shared_dir: opt_text(r, "shared_dir")?,
        })
    }
}

pub async fn insert(tx: &mut Tx, r: &InstanceRow) -> Result<(), Error> {
    let i = &r.instance;
    sqlx::query(
        "INSERT INTO instances (id, project_id, department_id, name, flavor_id, flavor_name, image_id, image_name, vcpus, memory_mib, disk_gib, gpus, \
         want_zone_id, want_provider_id, group_id, state, desired, quota_held, work, created_at, updated_at, user_data, lease_end, lease_next_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, 1, $18, $18, $19, $20, $21)",
    )
    .bind(i.id.to_string())
    .bind(i.project_id.to_string())
    .bind(i.department_id.to_string())
    .bind(&i.name)
    .bind(i.flavor_id.to_string())
    .bind(&i.flavor_name)
    .bind(i.image_id.to_string())
    .bind(&i.image_name)
    .bind(i.vcpus as i64)
    .bind(i.memory_mib as i64)
    .bind(i.disk_gib as i64)
    .bind(i.gpus as i64)
    .bind(r.want_zone_id.map(|z| z.to_string()))
    .bind(r.want_provider_id.map(|p| p.to_string()))
    .bind(i.group_id.map(|g| g.to_string()))
    .bind(i.state.as_str())
    .bind(i.desired.as_str())
    .bind(i.created_at.0)
    .bind(&r.user_data)
    .bind(i.lease_end.map(|e| e.0))
    .bind(i.lease_end.map(|_| 0i64))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    event(tx, i.id, "", i.state.as_str(), "created").await
}

pub async fn event(
    tx: &mut Tx,
    instance: InstanceId,
    from: &str,
    to: &str,
    reason: &str,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO instance_events (id, instance_id, at, from_state, to_state, reason) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(EventId::new().to_string())
        .bind(instance.to_string())
        .bind(Timestamp::now().0)
        .bind(from)
        .bind(to)
        .bind(reason)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: InstanceId,
) -> Result<Option<InstanceRow>, Error> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM instances WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(InstanceRow::decode).transpose()
}

/// What a list of instances is narrowed to, besides what the caller may see.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub project: Option<ProjectId>,
    pub department: Option<DepartmentId>,
    pub state: Option<InstanceState>,
    /// Part of the name, case-insensitive.
    pub q: Option<String>,
    pub include_deleted: bool,
    /// `Some(true)`: only the recycle bin (回收站); `Some(false)`: only instances outside
    /// it; `None`: both.
    pub recycled: Option<bool>,
}

/// Lists instances of the given projects and/or departments (all when both are `None`).
pub async fn list(
    store: &Store,
    page: &PageRequest,
    departments: Option<&[DepartmentId]>,
    projects: Option<&[ProjectId]>,
    f: &InstanceFilter,
) -> Result<Page<Instance>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM instances WHERE 1 = 1"));
    sql.push_visible("project_id", departments, projects);
    if let Some(p) = f.project {
        sql.push(" AND project_id = ").bind_text(p.to_string());
    }
    if let Some(d) = f.department {
        sql.push(" AND department_id = ").bind_text(d.to_string());
    }
    if let Some(st) = f.state {
        sql.push(" AND state = ").bind_text(st.as_str());
    }
    if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
        sql.push(" AND ").push_contains("name", q);
    }
    if !f.include_deleted && f.state != Some(InstanceState::Deleted) {
        sql.push(" AND state <> 'deleted'");
    }
    match f.recycled {
        Some(true) => sql.push(" AND recycled_at IS NOT NULL"),
        Some(false) => sql.push(" AND recycled_at IS NULL"),
        None => &mut sql,
    };
    sql.push_page(page, "name", "created_at", "id");
    let rows: Vec<InstanceRow> = sql.fetch_all(store).await?;
    let items = rows.into_iter().map(|r| r.instance).collect();
    Ok(crate::sql::finish_page(page, items, |i: &Instance| {
        (i.name.clone(), i.created_at.0, i.id.to_string())
    }))
}

/// Moves an instance from `from` to `to` if it is still in `from`, recording why.
/// Returns false when someone else changed it first.
pub async fn transition(
    tx: &mut Tx,
    id: InstanceId,
    from: InstanceState,
    to: InstanceState,
    reason: &str,
) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE instances SET state = $1, updated_at = $2, generation = generation + 1 WHERE id = $3 AND state = $4")
        .bind(to.as_str())
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 1 && from != to {
        event(tx, id, from.as_str(), to.as_str(), reason).await?;
        crate::billing::meter_instance(tx, id).await?;
    }
    Ok(n == 1)
}

/// Sets one bookkeeping column (`quota_held`, `capacity_held`, `disk_created`, `work`,
/// `resize_pending`, `reboot_pending`).
pub async fn set_flag(tx: &mut Tx, id: InstanceId, column: Flag, value: bool) -> Result<(), Error> {
    sqlx::query(&format!(
        "UPDATE instances SET {} = $1, updated_at = $2 WHERE id = $3",
        column.column()
    ))
    .bind(i64::from(value))
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub enum Flag {
    QuotaHeld,
    CapacityHeld,
    DiskCreated,
    Work,
    ResizePending,
    RebootPending,
}

impl Flag {
    fn column(self) -> &'static str {
        match self {
            Flag::QuotaHeld => "quota_held",
            Flag::CapacityHeld => "capacity_held",
            Flag::DiskCreated => "disk_created",
            Flag::Work => "work",
            Flag::ResizePending => "resize_pending",
            Flag::RebootPending => "reboot_pending",
        }
    }
}

/// Records where the instance was placed (and that it holds the capacity).
pub async fn set_placement(
    tx: &mut Tx,
    id: InstanceId,
    host: HostId,
    zone: ZoneId,
    provider: ProviderId,
) -> Result<(), Error> {
    // A zone with a shared pool keeps the root disks of its instances there (decided once,
    // at first placement: an instance never changes where its disk is).
    sqlx::query("UPDATE instances SET host_id = $1, zone_id = $2, provider_id = $3, capacity_held = 1, updated_at = $4, \
         root_pool_id = CASE WHEN disk_created = 0 AND root_pool_id IS NULL \
             THEN (SELECT id FROM storage_pools WHERE storage_pools.zone_id = $2 AND kind = 'shared') ELSE root_pool_id END \
         WHERE id = $5")
        .bind(host.to_string())
        .bind(zone.to_string())
        .bind(provider.to_string())
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Events of one instance, oldest first.
pub async fn events(store: &Store, id: InstanceId) -> Result<Vec<InstanceEvent>, Error> {
    let mut sql = Sql::new("SELECT id, instance_id, at, from_state, to_state, reason FROM instance_events WHERE instance_id = ");
    sql.bind_text(id.to_string())
        .push(" ORDER BY at, id LIMIT 1000");
    sql.fetch_all(store).await
}

impl Decode for InstanceEvent {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(InstanceEvent {
            id: id(r, "id")?,
            instance_id: id(r, "instance_id")?,
            at: ts(r, "at")?,
            from_state: text(r, "from_state")?,
            to_state: text(r, "to_state")?,
            reason: text(r, "reason")?,
        })
    }
}

/// Every instance that is not deleted, for the scheduler's start-up view and the
/// invariant check.
pub async fn live(store: &Store) -> Result<Vec<InstanceRow>, Error> {
    Sql::new(&format!(
        "SELECT {COLS} FROM instances WHERE state <> 'deleted'"
    ))
    .fetch_all(store)
    .await
}

impl Decode for ServerGroup {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(ServerGroup {
            id: id(r, "id")?,
            project_id: id(r, "project_id")?,
            name: text(r, "name")?,
            policy: if text(r, "policy")? == "affinity" {
                GroupPolicy::Affinity
            } else {
                GroupPolicy::AntiAffinity
            },
            created_at: ts(r, "created_at")?,
        })
    }
}

/// Finds the project's group by name or creates it with `policy`; an existing group with
/// another policy is a conflict.
pub async fn group_for(
    tx: &mut Tx,
    project: ProjectId,
    name: &str,
    policy: GroupPolicy,
) -> Result<ServerGroup, Error> {
    let p = if policy == GroupPolicy::Affinity {
        "affinity"
    } else {
        "anti_affinity"
    };
    sqlx::query("INSERT INTO server_groups (id, project_id, name, policy, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, name) DO NOTHING")
        .bind(ServerGroupId::new().to_string())
        .bind(project.to_string())
        .bind(name)
        .bind(p)
        .bind(Timestamp::now().0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    let r = sqlx::query("SELECT id, project_id, name, policy, created_at FROM server_groups WHERE project_id = $1 AND name = $2")
        .bind(project.to_string())
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    let g = ServerGroup::decode(&r)?;
    if g.policy != policy {
        return Err(Error::conflict(zy_model::t!(
            "主机组 {} 已存在且策略不同" ; "server group {} exists with another policy",
            name
        )));
    }
    Ok(g)
}

pub async fn group<'c>(
    e: impl Executor<'c, Database = Any>,
    id: ServerGroupId,
) -> Result<Option<ServerGroup>, Error> {
    let r = sqlx::query(
        "SELECT id, project_id, name, policy, created_at FROM server_groups WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(e)
    .await
    .map_err(db_error)?;
    r.as_ref().map(ServerGroup::decode).transpose()
}

/// Takes the anti-affinity slot of `group` on `host` for `instance`; false when another
/// member already holds it.
pub async fn take_anti_affinity_slot(
    tx: &mut Tx,
    group: ServerGroupId,
    host: HostId,
    instance: InstanceId,
) -> Result<bool, Error> {
    let n = sqlx::query("INSERT INTO anti_affinity_slots (group_id, host_id, instance_id) VALUES ($1, $2, $3) ON CONFLICT (group_id, host_id) DO NOTHING")
        .bind(group.to_string())
        .bind(host.to_string())
        .bind(instance.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

pub async fn release_anti_affinity_slot(tx: &mut Tx, instance: InstanceId) -> Result<(), Error> {
    sqlx::query("DELETE FROM anti_affinity_slots WHERE instance_id = $1")
        .bind(instance.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// For affinity groups: pins the group to `host` if not pinned yet; false if pinned elsewhere.
pub async fn pin_affinity(tx: &mut Tx, group: ServerGroupId, host: HostId) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE server_groups SET host_id = $1 WHERE id = $2 AND (host_id IS NULL OR host_id = $1)",
    )
    .bind(host.to_string())
    .bind(group.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// The host an affinity group is pinned to, if any.
pub async fn affinity_host<'c>(
    e: impl Executor<'c, Database = Any>,
    group: ServerGroupId,
) -> Result<Option<HostId>, Error> {
    let v: Option<Option<String>> =
        sqlx::query_scalar("SELECT host_id FROM server_groups WHERE id = $1")
            .bind(group.to_string())
            .fetch_optional(e)
            .await
            .map_err(db_error)?;
    v.flatten().map(|s| s.parse()).transpose()
}

/// Clears a bookkeeping flag if it is set; true when this call cleared it. Releasing
/// what a flag stands for only when this returns true makes every release happen once,
/// however often a step runs.
pub async fn take_flag(tx: &mut Tx, id: InstanceId, flag: Flag) -> Result<bool, Error> {
    let col = flag.column();
    let n = sqlx::query(&format!(
        "UPDATE instances SET {col} = 0, updated_at = $1 WHERE id = $2 AND {col} = 1"
    ))
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Records why an instance failed (shown to its users).
pub async fn set_error(tx: &mut Tx, id: InstanceId, message: &str) -> Result<(), Error> {
    sqlx::query("UPDATE instances SET last_error = $1, updated_at = $2 WHERE id = $3")
        .bind(zy_model::validate::clip(message, 1000))
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Records that a running instance's guest powered itself off (seen stopped on its host
/// since `seen_since`): `running → stopped`, and stopped is what is wanted now. Conditional
/// on nothing having happened to the instance since then and no pass being due, so a start
/// racing with the observation wins.
pub async fn guest_powered_off(
    tx: &mut Tx,
    id: InstanceId,
    host: HostId,
    seen_since: Timestamp,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE instances SET state = 'stopped', desired = 'stopped', updated_at = $1, generation = generation + 1 \
         WHERE id = $2 AND host_id = $3 AND state = 'running' AND desired = 'running' AND work = 0 AND updated_at < $4 \
         AND NOT EXISTS (SELECT 1 FROM sagas s WHERE s.target_id = instances.id AND s.state IN ('running', 'undoing'))",
    )
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(host.to_string())
    .bind(seen_since.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    if n == 1 {
        event(tx, id, "running", "stopped", "the guest powered itself off").await?;
        crate::billing::meter_instance(tx, id).await?;
    }
    Ok(n == 1)
}

/// Sets the desired state if the instance is still at `generation` (the version the
/// caller validated, read in the same transaction); false when someone changed it first.
pub async fn set_desired_if(
    tx: &mut Tx,
    id: InstanceId,
    generation: i64,
    desired: InstanceState,
    reboot: bool,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE instances SET desired = $1, reboot_pending = CASE WHEN $2 = 1 THEN 1 ELSE reboot_pending END, work = 1, \
         updated_at = $3, generation = generation + 1 WHERE id = $4 AND generation = $5",
    )
    .bind(desired.as_str())
    .bind(i64::from(reboot))
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// The columns a resize changes.
pub struct SizeCols<'a> {
    pub flavor_id: FlavorId,
    pub flavor_name: &'a str,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
}

/// Which row version a size change is conditional on.
pub enum SizeGuard {
    /// The instance is still at this `generation` (a resize request).
    Generation(i64),
    /// The instance still has this (flavor, vCPU, memory MiB, disk GiB) (the undo of a
    /// resize: once only).
    Size(FlavorId, u32, u64, u64),
}

/// Sets the size columns if `guard` still holds; false when it does not (someone changed
/// the instance first, or the undo already ran).
pub async fn set_size_if(
    tx: &mut Tx,
    id: InstanceId,
    guard: SizeGuard,
    to: &SizeCols<'_>,
) -> Result<bool, Error> {
    let condition = match guard {
        SizeGuard::Generation(_) => "generation = $9",
        SizeGuard::Size(..) => {
            "flavor_id = $9 AND vcpus = $10 AND memory_mib = $11 AND disk_gib = $12"
        }
    };
    let sql = format!(
        "UPDATE instances SET flavor_id = $1, flavor_name = $2, vcpus = $3, memory_mib = $4, gpus = $5, disk_gib = $6, \
         updated_at = $7, generation = generation + 1 WHERE id = $8 AND {condition}"
    );
    let q = sqlx::query(&sql)
        .bind(to.flavor_id.to_string())
        .bind(to.flavor_name)
        .bind(to.vcpus as i64)
        .bind(to.memory_mib as i64)
        .bind(to.gpus as i64)
        .bind(to.disk_gib as i64)
        .bind(Timestamp::now().0)
        .bind(id.to_string());
    let q = match guard {
        SizeGuard::Generation(g) => q.bind(g),
        SizeGuard::Size(f, v, m, d) => q
            .bind(f.to_string())
            .bind(v as i64)
            .bind(m as i64)
            .bind(d as i64),
    };
    let n = q
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 1 {
        crate::billing::meter_instance(tx, id).await?;
    }
    Ok(n == 1)
}

/// Gives up the anti-affinity slot an instance holds on one host (after it moved away,
/// or a migration to that host was undone).
pub async fn release_anti_affinity_slot_on(
    tx: &mut Tx,
    instance: InstanceId,
    host: HostId,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM anti_affinity_slots WHERE instance_id = $1 AND host_id = $2")
        .bind(instance.to_string())
        .bind(host.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Instances that wait for a saga (`work = 1`) but have none running: the reconciler
/// starts what each needs.
pub async fn waiting_for_saga(store: &Store, limit: u32) -> Result<Vec<InstanceId>, Error> {
    let ids: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT i.id FROM instances i WHERE i.work = 1 AND NOT EXISTS \
         (SELECT 1 FROM sagas s WHERE s.target_id = i.id AND s.state IN ('running', 'undoing')) LIMIT {limit}"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    ids.iter().map(|s| s.parse()).collect()
}

/// Every anti-affinity slot as (instance, host), for the invariant check.
pub async fn anti_affinity_slots(store: &Store) -> Result<Vec<(String, String)>, Error> {
    sqlx::query_as("SELECT instance_id, host_id FROM anti_affinity_slots")
        .fetch_all(store.pool())
        .await
        .map_err(db_error)
}

/// Clears the instance's `work` flag and returns the row as it is now (inside the
/// caller's transaction).
pub async fn take_work(tx: &mut Tx, id: InstanceId) -> Result<Option<InstanceRow>, Error> {
    let r = sqlx::query(&format!(
        "UPDATE instances SET work = 0 WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    r.as_ref().map(InstanceRow::decode).transpose()
}

/// The placed instances' department, project, zone and provider ids, by instance id (labels
/// of the metrics exposition).
pub async fn labels(
    store: &Store,
) -> Result<std::collections::HashMap<String, [String; 4]>, Error> {
    let rows = sqlx::query(
        "SELECT id, department_id, project_id, zone_id, provider_id FROM instances \
         WHERE state <> 'deleted' AND host_id IS NOT NULL",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        out.insert(
            text(r, "id")?,
            [
                text(r, "department_id")?,
                text(r, "project_id")?,
                opt_text(r, "zone_id")?.unwrap_or_default(),
                opt_text(r, "provider_id")?.unwrap_or_default(),
            ],
        );
    }
    Ok(out)
}
