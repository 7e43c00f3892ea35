//! OpenStack providers: their settings (credentials sealed at rest, never returned), and
//! the periodic synchronisation of their hypervisors as read-only hosts.
//!
//! zhengyun chooses the provider and the availability zone; Nova's scheduler chooses the
//! hypervisor. Each hypervisor is shown as one of the provider's hosts (in the zone mapped
//! to its availability zone, or the provider's first zone), with the capacity Nova reports,
//! so the supervision views and the zhengyun scheduler's capacity accounting see it. The
//! host the zhengyun scheduler books for an instance is only that account: the driver
//! passes the zone's availability zone to Nova and ignores the host. Each zone of the
//! provider gets a storage pool of kind `cinder` (its volumes are Cinder volumes).
//!
//! The synchronisation also compares the provider with zhengyun (drift: servers here,
//! Cinder volumes in `openstack_volumes`), records the history and adopts (纳管).

use std::sync::Arc;
use std::time::Duration;

use super::{commit_audited, commit_system};
use crate::auth::actor::Actor;
use crate::compute::openstack::{OpenStackClient, OpenStackSettings, OpenStackSettingsView};
use crate::compute::openstack_update::OpenStackSettingsUpdate;
use crate::context::RequestContext;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::role::{Role, Scope};
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::inventory;

/// Checks that the provider answers with these settings (Keystone accepts the credentials
/// and the catalogue has a compute endpoint) — outside any transaction, before anything is
/// stored. Every failure is the admin's to fix, so it is a 422 with the provider's reason.
pub async fn check_reachable(settings: &OpenStackSettings) -> Result<(), Error> {
    let client = OpenStackClient::new(settings.clone()).map_err(|e| {
        Error::validation(
            "openstack.ca_pem",
            t!("TLS 设置无效：{}" ; "invalid TLS settings: {}", e),
        )
    })?;
    match client.project_id().await {
        Ok(_) => Ok(()),
        Err(
            zy_compute::DriverError::Transient(e)
            | zy_compute::DriverError::Permanent(e)
            | zy_compute::DriverError::InProgress(e),
        ) => Err(Error::validation(
            "openstack",
            t!(
                "无法使用这些设置连接 OpenStack 云：{}" ;
                "cannot reach the OpenStack cloud with these settings: {}",
                e
            ),
        )),
        Err(e) => Err(Error::validation(
            "openstack",
            t!(
                "无法使用这些设置连接 OpenStack 云：{}" ;
                "cannot reach the OpenStack cloud with these settings: {}",
                e
            ),
        )),
    }
}

async fn openstack_provider(s: &AppState, id: ProviderId) -> Result<(Provider, String), Error> {
    let (p, config) = inventory::providers(&s.store)
        .await?
        .into_iter()
        .find(|(p, _)| p.id == id)
        .ok_or_else(|| Error::not_found("provider", id))?;
    if p.kind != "openstack" {
        return Err(Error::validation(
            "id",
            t!(
                "该云服务商不是 OpenStack 类型",
                "this provider is not of kind openstack"
            ),
        ));
    }
    Ok((p, config))
}

/// The settings of an OpenStack provider, without the secret.
pub async fn settings(
    s: &AppState,
    actor: &Actor,
    id: ProviderId,
) -> Result<OpenStackSettingsView, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let (_, config) = openstack_provider(s, id).await?;
    let stored: OpenStackSettings =
        serde_json::from_str(&config).map_err(|e| Error::internal(e.to_string()))?;
    Ok(stored.view())
}

/// Replaces an OpenStack provider's settings (connection and mappings); the new settings
/// are checked against the provider first. An update without the secret keeps the stored
/// one, unless the secret would then go to another endpoint or identity than it was given
/// for (see `OpenStackSettingsUpdate`): that is refused, asking for the secret again.
pub async fn update_settings(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProviderId,
    update: OpenStackSettingsUpdate,
) -> Result<OpenStackSettingsView, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let (p, config) = openstack_provider(s, id).await?;
    let resolved = update.resolve(
        || {
            serde_json::from_str::<OpenStackSettings>(&config)
                .map_err(|e| Error::internal(e.to_string()))
        },
        |stored| s.sealer.open(stored.credential.secret()),
    )?;
    let settings = resolved.settings;
    settings.validate()?;
    check_reachable(&settings).await?;
    let config = serde_json::to_string(&settings.sealed(&s.sealer)?)
        .map_err(|e| Error::internal(e.to_string()))?;
    let mut detail = serde_json::to_value(settings.view()).unwrap_or_default();
    detail["secret_kept"] = resolved.secret_kept.into();
    let mut tx = s.store.begin_write().await?;
    inventory::set_provider_config(&mut tx, id, &config).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "put_openstack_settings",
        "provider",
        &id.to_string(),
        detail,
    )
    .await?;
    s.compute
        .drivers
        .install(p.id, &p.kind, &config, &s.compute.kvm, &s.sealer);
    sync_hosts(s, id).await?;
    Ok(settings.view())
}

/// What one synchronisation did.
#[derive(Debug, Default, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// Hypervisors the provider reports.
    pub hypervisors: u32,
    /// Hosts added for hypervisors seen for the first time.
    pub hosts_added: u32,
    /// Hosts whose capacity or state changed.
    pub hosts_updated: u32,
    /// Drift items seen for the first time in this synchronisation.
    pub drift_new: u32,
    /// Drift items open (to decide) after it.
    pub drift_open: u32,
    /// Drift items that went away (resolved) in it.
    pub drift_resolved: u32,
    /// Servers and volumes adopted by it (adoption mode `auto`).
    pub adopted: u32,
    /// Cinder storage pools made for zones that had none.
    pub pools_added: u32,
}

/// A stable id derived from `label`: the same provider object gets the same id on every
/// synchronisation and replica.
pub(super) fn derived_id(label: &str) -> uuid::Uuid {
    use sha2::Digest;
    let d = sha2::Sha256::digest(label.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    // A version-4-shaped (random-looking) UUID derived from the digest.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b)
}

/// A stable host id for a provider's hypervisor.
fn host_id(provider: ProviderId, hypervisor: &str) -> HostId {
    HostId(derived_id(&format!(
        "openstack-host:{provider}:{hypervisor}"
    )))
}

/// Reads the provider's hypervisors and shows them as its hosts.
pub async fn sync_hosts(s: &AppState, id: ProviderId) -> Result<SyncReport, Error> {
    let driver = s.compute.drivers.openstack(id).ok_or_else(|| {
        Error::unavailable(t!(
            "云服务商 {} 没有可用的 OpenStack 驱动（设置无法读取）" ;
            "provider {} has no OpenStack driver (its settings cannot be read)",
            id
        ))
    })?;
    let hypervisors = driver.client.hypervisors().await.map_err(|e| {
        Error::unavailable(t!(
            "无法读取 OpenStack 云的计算节点：{}" ;
            "cannot read the OpenStack cloud's hypervisors: {}",
            e
        ))
    })?;
    let mut zones: Vec<Zone> = inventory::zones(&s.store)
        .await?
        .into_iter()
        .filter(|z| z.provider_id == id)
        .collect();
    if zones.is_empty() && !hypervisors.is_empty() {
        // A provider connected without zones gets one per availability zone its
        // hypervisors are in, so its capacity shows and adoption has hosts to record
        // at once; the platform admin may add or map zones later.
        zones_for_availability_zones(s, id, &driver.client.settings.region, &hypervisors).await?;
        zones = inventory::zones(&s.store)
            .await?
            .into_iter()
            .filter(|z| z.provider_id == id)
            .collect();
    }
    let mut report = SyncReport {
        hypervisors: hypervisors.len() as u32,
        ..Default::default()
    };
    let Some(first_zone) = zones.iter().min_by_key(|z| z.created_at.0) else {
        // No zone yet: nothing to put hosts in.
        return Ok(report);
    };
    let settings = &driver.client.settings;
    let existing = inventory::hosts(&s.store, Some(id)).await?;
    let mut host_zones = std::collections::HashMap::new();
    let mut added = Vec::new();
    let mut tx = s.store.begin_write().await?;
    for h in &hypervisors {
        let zone = h
            .availability_zone
            .as_deref()
            .and_then(|az| {
                settings
                    .zones
                    .iter()
                    .find(|m| m.availability_zone == az)
                    .and_then(|m| zones.iter().find(|z| z.id.0 == m.zone_id))
            })
            .unwrap_or(first_zone);
        let hid = host_id(id, &h.id);
        // Nova's scheduler places inside the zone's availability zone.
        let az = settings
            .zones
            .iter()
            .find(|m| m.zone_id == zone.id.0)
            .map(|m| m.availability_zone.clone())
            .or_else(|| h.availability_zone.clone());
        if let Some(az) = az {
            host_zones.insert(hid.0, az);
        }
        let state = if h.state_up {
            HostState::Enabled
        } else {
            HostState::Down
        };
        match existing.iter().find(|r| r.host.id == hid) {
            Some(r) => {
                let cur = &r.host;
                if (cur.vcpus, cur.memory_mib, cur.disk_gib, cur.state)
                    != (h.vcpus, h.memory_mib, h.disk_gib, state)
                {
                    inventory::set_host_capacity(
                        &mut tx,
                        hid,
                        h.vcpus,
                        h.memory_mib,
                        h.disk_gib,
                        state,
                    )
                    .await?;
                    report.hosts_updated += 1;
                }
            }
            None => {
                added.push(Host {
                    id: hid,
                    zone_id: zone.id,
                    provider_id: id,
                    name: format!("{} (OpenStack)", h.name)
                        .chars()
                        .take(100)
                        .collect(),
                    vcpus: h.vcpus,
                    memory_mib: h.memory_mib,
                    disk_gib: h.disk_gib,
                    gpus: 0,
                    // Nova applies its own allocation ratios; the capacity shown is what
                    // the hypervisor reports.
                    cpu_ratio_permille: 1000,
                    mem_ratio_permille: 1000,
                    state,
                    used_vcpus: 0,
                    used_memory_mib: 0,
                    used_disk_gib: 0,
                    used_gpus: 0,
                    created_at: Timestamp::now(),
                    generation: 1,
                    ha_state: zy_model::compute::HostHaState::Ok,
                    group_id: None,
                });
            }
        }
    }
    report.hosts_added = added.len() as u32;
    if !added.is_empty() {
        inventory::insert_hosts(&mut tx, &added).await?;
    }
    let pools =
        super::openstack_volumes::missing_pools(id, &zones, &inventory::pools(&s.store).await?);
    report.pools_added = pools.len() as u32;
    for p in &pools {
        inventory::insert_pool(&mut tx, p).await?;
    }
    if report.hosts_added + report.hosts_updated + report.pools_added > 0 {
        commit_system(
            tx,
            "sync_provider_hosts",
            "provider",
            &id.to_string(),
            serde_json::to_value(&report).unwrap_or_default(),
        )
        .await?;
        let rows = inventory::hosts(&s.store, Some(id)).await?;
        s.compute.placement.upsert(&rows);
    } else {
        drop(tx);
    }
    if let Ok(mut m) = driver.host_zones.write() {
        *m = host_zones;
    }
    Ok(report)
}

/// Creates a zone named after each availability zone of `hypervisors` (Nova's default
/// `nova` for those without one), unless the provider already has one of that name.
async fn zones_for_availability_zones(
    s: &AppState,
    id: ProviderId,
    region: &str,
    hypervisors: &[crate::compute::openstack::Hypervisor],
) -> Result<(), Error> {
    let names: std::collections::BTreeSet<String> = hypervisors
        .iter()
        .map(|h| {
            h.availability_zone
                .clone()
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| "nova".into())
                .chars()
                .take(100)
                .collect()
        })
        .collect();
    let mut tx = s.store.begin_write().await?;
    let mut made = Vec::new();
    for name in names {
        let z = Zone {
            id: zy_model::id::ZoneId::new(),
            provider_id: id,
            region: region.chars().take(100).collect(),
            name,
            strategy: zy_model::compute::Strategy::Spread,
            created_at: Timestamp::now(),
        };
        if inventory::insert_zone_if_absent(&mut tx, &z).await? {
            made.push(serde_json::json!({ "id": z.id, "name": z.name }));
        }
    }
    if made.is_empty() {
        drop(tx);
        return Ok(());
    }
    commit_system(
        tx,
        "create_zones_from_availability_zones",
        "provider",
        &id.to_string(),
        serde_json::json!({ "zones": made }),
    )
    .await
}

/// Synchronises one provider now (the platform admin's button; the task does it
/// periodically).
pub async fn sync_now(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProviderId,
) -> Result<SyncReport, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    openstack_provider(s, id).await?;
    let report = sync(s, id).await?;
    let tx = s.store.begin_write().await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "sync_openstack",
        "provider",
        &id.to_string(),
        serde_json::to_value(&report).unwrap_or_default(),
    )
    .await?;
    Ok(report)
}

/// The periodic synchronisation of every OpenStack provider (one replica at a time).
pub struct OpenStackSync(pub AppState);

pub fn task(s: AppState) -> Arc<dyn crate::tasks::Task> {
    Arc::new(OpenStackSync(s))
}

impl crate::tasks::Task for OpenStackSync {
    fn name(&self) -> &'static str {
        "openstack_sync"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let mut out = serde_json::Map::new();
            for (p, _) in inventory::providers(&self.0.store).await? {
                if p.kind != "openstack" {
                    continue;
                }
                // One provider failing (an outage) does not stop the others.
                let r = match sync(&self.0, p.id).await {
                    Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                    Err(e) => serde_json::json!({ "error": e.message.en }),
                };
                out.insert(p.id.to_string(), r);
            }
            Ok(serde_json::Value::Object(out))
        })
    }
}

/// A difference between zhengyun's records and the provider cloud that did not go through
/// zhengyun.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct DriftItem {
    /// `server` or `volume`.
    pub resource: String,
    /// `appeared` (a server or volume zhengyun did not make), `changed` (its size, power
    /// state or attachment changed outside zhengyun) or `disappeared` (zhengyun's server
    /// or volume is gone).
    pub kind: String,
    /// What identifies it: the provider's id, or zhengyun's id when it disappeared (the
    /// provider no longer has one).
    pub external_id: String,
    pub name: String,
    pub openstack_project: Option<String>,
    /// The zhengyun instance concerned, if any (for a volume, the one it is attached to).
    pub instance_id: Option<InstanceId>,
    /// The mapped department and project of an appeared server (where adoption puts it).
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub detail: String,
}

/// The provider's servers in the credential's project and every mapped project.
pub(crate) async fn servers_of(
    driver: &crate::compute::openstack::OpenStackDriver,
) -> Result<Vec<crate::compute::openstack::Server>, Error> {
    let unavailable = |e: zy_compute::DriverError| {
        Error::unavailable(t!(
            "无法读取 OpenStack 云的云主机：{}" ;
            "cannot read the OpenStack cloud's servers: {}",
            e
        ))
    };
    let own = driver.client.project_id().await.map_err(unavailable)?;
    let mut projects = vec![own];
    for m in &driver.client.settings.projects {
        if !projects.contains(&m.openstack_project) {
            projects.push(m.openstack_project.clone());
        }
    }
    let mut servers: Vec<crate::compute::openstack::Server> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for p in &projects {
        for sv in driver.client.list_servers(p).await.map_err(unavailable)? {
            if ids.insert(sv.id.clone()) {
                servers.push(sv);
            }
        }
    }
    Ok(servers)
}

/// Whether `sv` is the server of zhengyun's instance `id`: one zhengyun created carries
/// the instance id as its marker; an adopted one has the server's own id as instance id.
pub fn owns(sv: &crate::compute::openstack::Server, id: InstanceId) -> bool {
    sv.marker == Some(id.0) || sv.id == id.0.to_string()
}

/// The pure comparison behind [`drift`].
pub fn compare(
    settings: &OpenStackSettings,
    servers: &[crate::compute::openstack::Server],
    instances: &[zy_store::instances::InstanceRow],
) -> Vec<DriftItem> {
    let mut out = Vec::new();
    for sv in servers {
        if sv.status == "DELETED" || sv.task_state.as_deref() == Some("deleting") {
            continue;
        }
        let mine = instances.iter().find(|r| owns(sv, r.instance.id));
        let Some(row) = mine else {
            let owner = settings.owner_of(&sv.project_id);
            out.push(DriftItem {
                resource: "server".into(),
                kind: "appeared".into(),
                external_id: sv.id.clone(),
                name: sv.name.clone(),
                openstack_project: Some(sv.project_id.clone()),
                instance_id: None,
                department_id: owner.map(|o| DepartmentId(o.department_id)),
                project_id: owner.map(|o| ProjectId(o.project_id)),
                detail: format!(
                    "{} vCPU / {} MiB ({}), {}{}",
                    sv.vcpus,
                    sv.memory_mib,
                    sv.flavor_name,
                    sv.status,
                    if sv.marker.is_some() {
                        "; marked for a zhengyun instance that no longer exists"
                    } else {
                        ""
                    }
                ),
            });
            continue;
        };
        let i = &row.instance;
        // Only settled states are compared: while zhengyun works on an instance, Nova's
        // state is expected to differ.
        if sv.task_state.is_some()
            || i.state != i.desired
            || !matches!(i.state, InstanceState::Running | InstanceState::Stopped)
        {
            continue;
        }
        let mut changes = Vec::new();
        if (sv.vcpus, sv.memory_mib) != (i.vcpus, i.memory_mib) && sv.vcpus > 0 {
            changes.push(format!(
                "size {} vCPU / {} MiB in zhengyun, {} vCPU / {} MiB ({}) in the provider",
                i.vcpus, i.memory_mib, sv.vcpus, sv.memory_mib, sv.flavor_name
            ));
        }
        let power = match sv.status.as_str() {
            "ACTIVE" => Some(InstanceState::Running),
            "SHUTOFF" => Some(InstanceState::Stopped),
            _ => None,
        };
        if power.is_some_and(|p| p != i.state) || sv.status == "ERROR" {
            changes.push(format!(
                "{} in zhengyun, {} in the provider",
                i.state.as_str(),
                sv.status
            ));
        }
        if !changes.is_empty() {
            out.push(DriftItem {
                resource: "server".into(),
                kind: "changed".into(),
                external_id: sv.id.clone(),
                name: i.name.clone(),
                openstack_project: Some(sv.project_id.clone()),
                instance_id: Some(i.id),
                department_id: Some(i.department_id),
                project_id: Some(i.project_id),
                detail: changes.join("; "),
            });
        }
    }
    for row in instances {
        let i = &row.instance;
        if !matches!(i.state, InstanceState::Running | InstanceState::Stopped) {
            continue;
        }
        if !servers.iter().any(|sv| owns(sv, i.id)) {
            out.push(DriftItem {
                resource: "server".into(),
                kind: "disappeared".into(),
                external_id: i.id.to_string(),
                name: i.name.clone(),
                openstack_project: None,
                instance_id: Some(i.id),
                department_id: Some(i.department_id),
                project_id: Some(i.project_id),
                detail: format!(
                    "{} in zhengyun; the provider has no server for it",
                    i.state.as_str()
                ),
            });
        }
    }
    out
}

/// Synchronises one provider: its hypervisors as hosts, then its drift (recorded, the new
/// items announced, and in adoption mode `auto` the appeared servers adopted).
pub async fn sync(s: &AppState, id: ProviderId) -> Result<SyncReport, Error> {
    let mut report = sync_hosts(s, id).await?;
    record_drift(s, id, &mut report).await?;
    Ok(report)
}

fn drift_key(kind: &str, external_id: &str, change: &str) -> String {
    format!("{kind}\u{1f}{external_id}\u{1f}{change}")
}

/// Compares the provider with zhengyun and records the result in the drift history: new
/// differences are inserted (open) and announced once, differences seen again are
/// touched, open ones that went away are resolved. A dismissed item stays dismissed.
async fn record_drift(s: &AppState, id: ProviderId, report: &mut SyncReport) -> Result<(), Error> {
    // Only what this observation is newer than is resolved: a concurrent synchronisation
    // (the task and the admin's button) with an older view must not resolve what a newer
    // one recorded.
    let observed_at = Timestamp::now();
    let (servers, cinder, items) = observe(s, id).await?;
    let settings = s
        .compute
        .drivers
        .openstack(id)
        .map(|d| d.client.settings.clone());
    let now = Timestamp::now();
    let mut tx = s.store.begin_write().await?;
    let existing: std::collections::HashMap<String, DriftRecord> =
        zy_store::drift::all_of(&mut tx, id)
            .await?
            .into_iter()
            .map(|d| (drift_key(&d.kind, &d.external_id, &d.change), d))
            .collect();
    let mut seen = std::collections::HashSet::new();
    let mut changed = false;
    for item in &items {
        let external = item.external_id.clone();
        let key = drift_key(&item.resource, &external, &item.kind);
        seen.insert(key.clone());
        match existing.get(&key) {
            Some(d) => {
                let reopen = d.state == "resolved";
                if reopen || d.detail != item.detail {
                    changed = true;
                }
                zy_store::drift::seen(&mut tx, d.id, now, &item.detail, true).await?;
            }
            None => {
                let reason = if item.kind == "appeared" && item.department_id.is_none() {
                    format!(
                        "OpenStack 项目 {} 没有映射到 zhengyun 的部门和项目 / the OpenStack project {} is not mapped to a zhengyun department and project",
                        item.openstack_project.as_deref().unwrap_or("—"),
                        item.openstack_project.as_deref().unwrap_or("—"),
                    )
                } else {
                    String::new()
                };
                zy_store::drift::insert(
                    &mut tx,
                    &DriftRecord {
                        id: DriftItemId::new(),
                        provider_id: id,
                        kind: item.resource.clone(),
                        external_id: external,
                        change: item.kind.clone(),
                        name: item.name.clone(),
                        openstack_project: item.openstack_project.clone(),
                        instance_id: item.instance_id,
                        department_id: item.department_id,
                        project_id: item.project_id,
                        detail: item.detail.clone(),
                        state: "open".into(),
                        reason,
                        first_seen: now,
                        last_seen: now,
                        decided_by: None,
                        decided_at: None,
                    },
                )
                .await?;
                if item.kind == "disappeared" && item.resource == "server" {
                    if let Some(iid) = item.instance_id {
                        // The instance keeps its state and records (never deleted
                        // silently); its history says what reconciliation found.
                        zy_store::instances::event(
                            &mut tx,
                            iid,
                            "",
                            "",
                            "the provider cloud no longer has its server (found by reconciliation); delete it in zhengyun or ask the provider",
                        )
                        .await?;
                    }
                }
                report.drift_new += 1;
                changed = true;
            }
        }
    }
    for (key, d) in &existing {
        if d.state == "open" && !seen.contains(key) && d.last_seen.0 < observed_at.0 {
            zy_store::drift::set_state(
                &mut tx,
                d.id,
                "open",
                "resolved",
                "no longer differs / 差异已消失",
                None,
                None,
                now,
            )
            .await?;
            report.drift_resolved += 1;
            changed = true;
        }
    }
    let new = zy_store::drift::take_unnotified(&mut tx, id).await?;
    if !new.is_empty() {
        let mut to = crate::notify::holders(&mut tx, Role::Supervisor, Scope::Platform).await?;
        to.extend(crate::notify::holders(&mut tx, Role::PlatformAdmin, Scope::Platform).await?);
        let provider = inventory::providers(&s.store)
            .await?
            .into_iter()
            .find(|(p, _)| p.id == id)
            .map(|(p, _)| p.name)
            .unwrap_or_default();
        let mut names: Vec<String> = new
            .iter()
            .take(5)
            .map(|d| format!("{} ({})", d.name, d.change))
            .collect();
        if new.len() > 5 {
            names.push("…".into());
        }
        crate::notify::enqueue(
            &mut tx,
            &crate::notify::Notice {
                kind: crate::notify::NoticeKind::ProviderDrift,
                to,
                params: serde_json::json!({
                    "provider": provider,
                    "count": new.len(),
                    "items": names.join(", "),
                }),
                link: Some(format!("/providers/{id}/drift")),
                subject: Some(id.0),
            },
        )
        .await?;
    }
    report.drift_open = existing
        .iter()
        .filter(|(k, d)| d.state == "open" && seen.contains(*k))
        .count() as u32
        + report.drift_new;
    if changed || !new.is_empty() {
        commit_system(
            tx,
            "record_openstack_drift",
            "provider",
            &id.to_string(),
            serde_json::json!({
                "new": report.drift_new,
                "resolved": report.drift_resolved,
                "announced": new.len(),
            }),
        )
        .await?;
    } else {
        drop(tx);
    }
    if settings.map(|x| x.adoption) == Some(crate::compute::openstack::AdoptionMode::Auto) {
        let open = zy_store::drift::list(&s.store, id, Some(&["open"]), 10_000).await?;
        for d in open
            .iter()
            .filter(|d| d.change == "appeared" && d.kind == "server")
        {
            let Some(sv) = servers.iter().find(|x| x.id == d.external_id) else {
                continue;
            };
            // Whatever keeps one from being adopted (over quota, not settled) is kept as
            // the item's reason; the others go on.
            if adopt(s, None, None, d, sv).await.is_ok() {
                report.adopted += 1;
            }
        }
        // Volumes after the servers, so one attached to a server adopted just now is
        // recorded attached to it.
        for d in open
            .iter()
            .filter(|d| d.change == "appeared" && d.kind == "volume")
        {
            let Some(cv) = cinder.iter().find(|x| x.id == d.external_id) else {
                continue;
            };
            if super::openstack_volumes::adopt(s, None, None, d, cv)
                .await
                .is_ok()
            {
                report.adopted += 1;
            }
        }
    }
    Ok(())
}

/// What one observation of a provider found: its servers, its Cinder volumes and the
/// drift against zhengyun's instances and volumes.
type Observation = (
    Vec<crate::compute::openstack::Server>,
    Vec<crate::compute::openstack::CinderVolume>,
    Vec<DriftItem>,
);

/// The provider's servers and volumes, and the drift against zhengyun's.
async fn observe(s: &AppState, id: ProviderId) -> Result<Observation, Error> {
    let driver = s.compute.drivers.openstack(id).ok_or_else(|| {
        Error::unavailable(t!(
            "云服务商 {} 没有可用的 OpenStack 驱动" ;
            "provider {} has no OpenStack driver",
            id
        ))
    })?;
    let servers = servers_of(&driver).await?;
    let instances: Vec<_> = zy_store::instances::live(&s.store)
        .await?
        .into_iter()
        .filter(|r| r.instance.provider_id == Some(id))
        .collect();
    let mut items = compare(&driver.client.settings, &servers, &instances);
    let cinder = super::openstack_volumes::volumes_of(&driver)
        .await?
        .unwrap_or_default();
    let (volumes, busy) = super::openstack_volumes::volumes_on(s, id).await?;
    items.extend(super::openstack_volumes::compare(
        &driver.client.settings,
        &super::openstack_volumes::Sides {
            cinder: &cinder,
            volumes: &volumes,
            busy: &busy,
            instances: &instances,
            servers: &servers,
        },
    ));
    Ok((servers, cinder, items))
}

/// Makes an appeared server a zhengyun instance of the mapped department and project, in
/// one transaction with the quota check, the usage ledger (metered from now) and the audit
/// record. The instance's id is the Nova server id, so the driver finds the server without
/// a marker. On refusal (over quota, not settled, no mapping) the item stays open with the
/// reason, and the error says why.
async fn adopt(
    s: &AppState,
    ctx: Option<&RequestContext>,
    actor: Option<&Actor>,
    d: &DriftRecord,
    sv: &crate::compute::openstack::Server,
) -> Result<Instance, Error> {
    let r = adoption_row(s, d, sv).await;
    let row = match r {
        Ok(row) => row,
        Err(e) => {
            keep_open(s, d, &e).await?;
            return Err(e);
        }
    };
    let i = &row.instance;
    let want = QuotaLimits {
        instances: 1,
        vcpus: i.vcpus as i64,
        memory_mib: i.memory_mib as i64,
        disk_gib: i.disk_gib as i64,
        volumes: 0,
    };
    let mut tx = s.store.begin_write().await?;
    if !zy_store::drift::set_state(
        &mut tx,
        d.id,
        "open",
        "adopted",
        "",
        Some(i.id),
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
    if !zy_store::quotas::consume(&mut tx, "department", &i.department_id.to_string(), &want)
        .await?
        || !zy_store::quotas::consume(&mut tx, "project", &i.project_id.to_string(), &want).await?
    {
        drop(tx);
        let e = super::quotas::exceeded(s, i.department_id, i.project_id, &want).await;
        keep_open(s, d, &e).await?;
        return Err(e);
    }
    zy_store::drift::insert_adopted(&mut tx, &row).await?;
    zy_store::billing::meter_instance(&mut tx, i.id).await?;
    let detail = serde_json::json!({
        "drift_item": d.id,
        "server": sv.id,
        "name": i.name,
        "department_id": i.department_id,
        "project_id": i.project_id,
        "vcpus": i.vcpus,
        "memory_mib": i.memory_mib,
        "disk_gib": i.disk_gib,
        "flavor": i.flavor_name,
        "state": i.state.as_str(),
    });
    match (ctx, actor) {
        (Some(ctx), Some(actor)) => {
            commit_audited(
                tx,
                ctx,
                Some(actor),
                "adopt_openstack_drift",
                "instance",
                &i.id.to_string(),
                detail,
            )
            .await?
        }
        _ => {
            commit_system(
                tx,
                "adopt_openstack_drift",
                "instance",
                &i.id.to_string(),
                detail,
            )
            .await?
        }
    }
    Ok(row.instance)
}

/// Records why an item stays open (when the reason changed).
pub(super) async fn keep_open(s: &AppState, d: &DriftRecord, e: &Error) -> Result<(), Error> {
    let reason = format!("{} / {}", e.message.zh, e.message.en);
    if d.reason != reason {
        let mut tx = s.store.begin_write().await?;
        zy_store::drift::set_reason(&mut tx, d.id, &reason).await?;
        commit_system(
            tx,
            "openstack_drift_kept_open",
            "drift_item",
            &d.id.to_string(),
            serde_json::json!({ "reason": reason }),
        )
        .await?;
    }
    Ok(())
}

/// The zhengyun project an OpenStack project is mapped to (where what appeared there is
/// adopted).
pub(super) async fn mapped_project(
    s: &AppState,
    settings: &OpenStackSettings,
    openstack_project: &str,
) -> Result<zy_model::tenancy::Project, Error> {
    let owner = settings.owner_of(openstack_project).ok_or_else(|| {
        Error::validation(
            "openstack.projects",
            t!(
                "OpenStack 项目 {} 没有映射到部门和项目，请先在云服务商设置中添加映射" ;
                "the OpenStack project {} is not mapped to a department and project; add the mapping in the provider's settings first",
                openstack_project
            ),
        )
    })?;
    zy_store::projects::get(s.store.pool(), ProjectId(owner.project_id))
        .await?
        .filter(|p| p.department_id.0 == owner.department_id)
        .ok_or_else(|| {
            Error::validation(
                "openstack.projects",
                t!(
                    "映射的项目 {} 不存在或不属于映射的部门" ;
                    "the mapped project {} does not exist or is not of the mapped department",
                    owner.project_id
                ),
            )
        })
}

/// The instance an appeared server becomes (read-only: checks the mapping, the state and
/// where it runs).
async fn adoption_row(
    s: &AppState,
    d: &DriftRecord,
    sv: &crate::compute::openstack::Server,
) -> Result<zy_store::instances::InstanceRow, Error> {
    let driver = s.compute.drivers.openstack(d.provider_id).ok_or_else(|| {
        Error::unavailable(t!(
            "云服务商 {} 没有可用的 OpenStack 驱动" ;
            "provider {} has no OpenStack driver",
            d.provider_id
        ))
    })?;
    let settings = &driver.client.settings;
    let project = mapped_project(s, settings, &sv.project_id).await?;
    if sv.task_state.is_some() {
        return Err(Error::conflict(t!(
            "云主机正在执行 Nova 任务，待其完成后再纳管",
            "the server has a Nova task in progress; adopt it once it settles"
        )));
    }
    let state = match sv.status.as_str() {
        "ACTIVE" => InstanceState::Running,
        "SHUTOFF" => InstanceState::Stopped,
        other => {
            return Err(Error::conflict(t!(
                "云主机状态为 {}，只有运行中或已关机的云主机可以纳管" ;
                "the server is {}; only running or shut-off servers can be adopted",
                other
            )))
        }
    };
    let iid = uuid::Uuid::parse_str(&sv.id).map_err(|_| {
        Error::validation(
            "server",
            t!("云主机 ID {} 不是 UUID" ; "the server id {} is not a UUID", sv.id),
        )
    })?;
    let hosts = inventory::hosts(&s.store, Some(d.provider_id)).await?;
    let host = sv
        .hypervisor
        .as_deref()
        .and_then(|h| {
            hosts.iter().find(|r| {
                r.host.name
                    == format!("{h} (OpenStack)")
                        .chars()
                        .take(100)
                        .collect::<String>()
            })
        })
        .or_else(|| hosts.first())
        .ok_or_else(|| {
            Error::conflict(t!(
                "该云服务商还没有同步到计算节点，请先同步",
                "no hypervisor of this provider is synchronised yet; synchronise it first"
            ))
        })?;
    // The flavor: zhengyun's of the same size, else the provider's own (its size as Nova
    // reports it, under its Nova name).
    let flavor = inventory::flavors(&s.store)
        .await?
        .into_iter()
        .find(|f| f.vcpus == sv.vcpus && f.memory_mib == sv.memory_mib);
    let (flavor_id, flavor_name, gpus) = match &flavor {
        Some(f) => (f.id, f.name.clone(), f.gpus),
        None => (
            FlavorId(uuid::Uuid::nil()),
            format!("openstack:{}", sv.flavor_name),
            0,
        ),
    };
    let image = sv.image_id.as_deref().and_then(|g| {
        settings
            .images
            .iter()
            .find(|m| m.openstack_image == g)
            .map(|m| m.image.clone())
    });
    let (image_id, image_name) = match image {
        Some(name) => (
            inventory::images(&s.store)
                .await?
                .into_iter()
                .find(|i| i.name == name)
                .map(|i| i.id)
                .unwrap_or(ImageId(uuid::Uuid::nil())),
            name,
        ),
        None => (
            ImageId(uuid::Uuid::nil()),
            format!(
                "openstack:{}",
                sv.image_id.as_deref().unwrap_or("boot-from-volume")
            ),
        ),
    };
    let now = Timestamp::now();
    let name: String = if sv.name.trim().is_empty() {
        format!("openstack-{}", &sv.id[..8.min(sv.id.len())])
    } else {
        sv.name.chars().take(100).collect()
    };
    Ok(zy_store::instances::InstanceRow {
        instance: Instance {
            id: InstanceId(iid),
            project_id: project.id,
            department_id: project.department_id,
            name,
            flavor_id,
            flavor_name,
            image_id,
            image_name,
            vcpus: sv.vcpus,
            memory_mib: sv.memory_mib,
            disk_gib: sv.disk_gib,
            gpus,
            group_id: None,
            zone_id: Some(host.host.zone_id),
            provider_id: Some(d.provider_id),
            host_id: Some(host.host.id),
            host_name: Some(host.host.name.clone()),
            state,
            desired: state,
            last_error: None,
            lease_end: None,
            lease_ended: false,
            recycled_at: None,
            purge_at: None,
            recycle_reason: None,
            root_pool_id: None,
            ha_policy: HaPolicy::Inherit,
            ha_priority: 0,
            origin: "adopted".into(),
            adopted_at: Some(now),
            created_at: now,
            updated_at: now,
            generation: 1,
        },
        want_zone_id: None,
        want_provider_id: None,
        quota_held: true,
        capacity_held: false,
        disk_created: true,
        resize_pending: false,
        reboot_pending: false,
        attempts: 0,
        user_data: String::new(),
        shared_dir: None,
    })
}

/// The drift history of one provider (newest first), for the platform admin and the
/// supervisor: `state` `open` (default), or `all`.
pub async fn list_drift(
    s: &AppState,
    actor: &Actor,
    id: ProviderId,
    state: Option<&str>,
) -> Result<Vec<DriftRecord>, Error> {
    authorize(&actor.principal, Action::InventoryRead(Some(id)))?;
    openstack_provider(s, id).await?;
    let states: Option<&[&str]> = match state.unwrap_or("open") {
        "all" => None,
        "open" => Some(&["open"]),
        "adopted" => Some(&["adopted"]),
        "dismissed" => Some(&["dismissed"]),
        "resolved" => Some(&["resolved"]),
        _ => {
            return Err(Error::validation(
                "state",
                t!(
                    "state 只能是 open、adopted、dismissed、resolved 或 all",
                    "state must be open, adopted, dismissed, resolved or all"
                ),
            ))
        }
    };
    zy_store::drift::list(&s.store, id, states, 5000).await
}

async fn open_item(s: &AppState, id: ProviderId, item: DriftItemId) -> Result<DriftRecord, Error> {
    openstack_provider(s, id).await?;
    let mut tx = s.store.begin_write().await?;
    let d = zy_store::drift::get(&mut tx, item).await?;
    drop(tx);
    let d = d
        .filter(|d| d.provider_id == id)
        .ok_or_else(|| Error::not_found("drift_item", item))?;
    if d.state != "open" {
        return Err(Error::conflict(t!(
            "该差异项的状态是 {}，只有待处理的差异项可以处理" ;
            "this drift item is {}; only open items can be decided",
            d.state
        )));
    }
    Ok(d)
}

/// What an adoption made: the instance of a server, or the volume of a Cinder volume.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
// One value per adoption request, never stored in bulk: boxing would only add a hop.
#[allow(clippy::large_enum_variant)]
pub enum Adopted {
    Instance(Instance),
    Volume(Volume),
}

/// The platform admin adopts (纳管) an appeared server or volume by hand (adoption mode
/// `flag`, or an item `auto` could not adopt). It is read again from the provider first.
pub async fn adopt_item(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProviderId,
    item: DriftItemId,
) -> Result<Adopted, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let d = open_item(s, id, item).await?;
    if d.change != "appeared" {
        return Err(Error::conflict(t!(
            "只有新出现的云主机或云硬盘可以纳管；变化或消失的差异项只能忽略",
            "only servers and volumes that appeared can be adopted; changed or disappeared items can only be dismissed"
        )));
    }
    let driver = s.compute.drivers.openstack(id).ok_or_else(|| {
        Error::unavailable(t!(
            "云服务商 {} 没有可用的 OpenStack 驱动" ;
            "provider {} has no OpenStack driver",
            id
        ))
    })?;
    if d.kind == "volume" {
        let cv = driver
            .client
            .volume(&d.external_id)
            .await
            .map_err(|e| {
                Error::unavailable(t!(
                    "无法读取 OpenStack 云的云硬盘：{}" ;
                    "cannot read the OpenStack cloud's volume: {}",
                    e
                ))
            })?
            .filter(|v| v.status != "deleting")
            .ok_or_else(|| {
                Error::conflict(t!(
                    "该云硬盘已不在云服务商中，无法纳管",
                    "the volume is no longer in the provider cloud; it cannot be adopted"
                ))
            })?;
        return super::openstack_volumes::adopt(s, Some(ctx), Some(actor), &d, &cv)
            .await
            .map(Adopted::Volume);
    }
    let sv = driver
        .client
        .server(&d.external_id)
        .await
        .map_err(|e| {
            Error::unavailable(t!(
                "无法读取 OpenStack 云的云主机：{}" ;
                "cannot read the OpenStack cloud's server: {}",
                e
            ))
        })?
        .filter(|sv| sv.status != "DELETED")
        .ok_or_else(|| {
            Error::conflict(t!(
                "该云主机已不在云服务商中，无法纳管",
                "the server is no longer in the provider cloud; it cannot be adopted"
            ))
        })?;
    adopt(s, Some(ctx), Some(actor), &d, &sv)
        .await
        .map(Adopted::Instance)
}

/// Why an item is dismissed.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissBody {
    /// Why it needs nothing from zhengyun (kept in the history and the audit log).
    pub reason: String,
}

/// The platform admin dismisses an item: it stays dismissed (the sync does not raise it
/// again while it stays the same difference).
pub async fn dismiss_item(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProviderId,
    item: DriftItemId,
    body: DismissBody,
) -> Result<DriftRecord, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Error::validation(
            "reason",
            t!(
                "请填写忽略原因（1 到 500 个字符）",
                "give the reason for dismissing (1 to 500 characters)"
            ),
        ));
    }
    let d = open_item(s, id, item).await?;
    let mut tx = s.store.begin_write().await?;
    if !zy_store::drift::set_state(
        &mut tx,
        d.id,
        "open",
        "dismissed",
        reason,
        None,
        Some(actor.user.id),
        Timestamp::now(),
    )
    .await?
    {
        return Err(Error::conflict(t!(
            "该差异项已不是待处理状态",
            "this drift item is no longer open"
        )));
    }
    let out = zy_store::drift::get(&mut tx, d.id)
        .await?
        .ok_or_else(|| Error::not_found("drift_item", d.id))?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "dismiss_openstack_drift",
        "drift_item",
        &d.id.to_string(),
        serde_json::json!({ "provider_id": id, "external_id": d.external_id, "change": d.change, "reason": reason }),
    )
    .await?;
    Ok(out)
}
