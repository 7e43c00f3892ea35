//! OpenStack providers: their settings (credentials sealed at rest, never returned), and
//! the periodic synchronisation of their hypervisors as read-only hosts.
//!
//! zhengyun chooses the provider and the availability zone; Nova's scheduler chooses the
//! hypervisor. Each hypervisor is shown as one of the provider's hosts (in the zone mapped
//! to its availability zone, or the provider's first zone), with the capacity Nova reports,
//! so the supervision views and the zhengyun scheduler's capacity accounting see it. The
//! host the zhengyun scheduler books for an instance is only that account: the driver
//! passes the zone's availability zone to Nova and ignores the host.

use std::sync::Arc;
use std::time::Duration;

use super::{commit_audited, commit_system};
use crate::auth::actor::Actor;
use crate::compute::openstack::{OpenStackClient, OpenStackSettings, OpenStackSettingsView};
use crate::context::RequestContext;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use zy_model::compute::*;
use zy_model::id::*;
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
/// are checked against the provider first.
pub async fn update_settings(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProviderId,
    settings: OpenStackSettings,
) -> Result<OpenStackSettingsView, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    settings.validate()?;
    let (p, _) = openstack_provider(s, id).await?;
    check_reachable(&settings).await?;
    let config = serde_json::to_string(&settings.sealed(&s.sealer)?)
        .map_err(|e| Error::internal(e.to_string()))?;
    let mut tx = s.store.begin_write().await?;
    inventory::set_provider_config(&mut tx, id, &config).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "put_openstack_settings",
        "provider",
        &id.to_string(),
        serde_json::to_value(settings.view()).unwrap_or_default(),
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
}

/// A stable host id for a provider's hypervisor.
fn host_id(provider: ProviderId, hypervisor: &str) -> HostId {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("openstack-host:{provider}:{hypervisor}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    // A version-4-shaped (random-looking) UUID derived from the digest.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    HostId(uuid::Uuid::from_bytes(b))
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
    let zones: Vec<Zone> = inventory::zones(&s.store)
        .await?
        .into_iter()
        .filter(|z| z.provider_id == id)
        .collect();
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
    if report.hosts_added + report.hosts_updated > 0 {
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
    let report = sync_hosts(s, id).await?;
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
                let mut r = match sync_hosts(&self.0, p.id).await {
                    Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                    Err(e) => serde_json::json!({ "error": e.message.en }),
                };
                if let (Ok(d), Some(o)) = (drift(&self.0, p.id).await, r.as_object_mut()) {
                    o.insert("drift".into(), serde_json::json!(d.len()));
                }
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
    /// `appeared` (a server zhengyun did not make), `changed` (its size or power state
    /// changed outside zhengyun) or `disappeared` (zhengyun's server is gone).
    pub kind: String,
    /// The OpenStack server id (absent when it disappeared).
    pub server_id: Option<String>,
    pub name: String,
    pub openstack_project: Option<String>,
    /// The zhengyun instance concerned, if any.
    pub instance_id: Option<InstanceId>,
    /// The mapped department and project of an appeared server (where adoption puts it).
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub detail: String,
}

/// Compares the provider's servers (in the credential's project and every mapped project)
/// with zhengyun's instances on it. Read-only; nothing is changed on either side.
pub async fn drift(s: &AppState, id: ProviderId) -> Result<Vec<DriftItem>, Error> {
    let driver = s.compute.drivers.openstack(id).ok_or_else(|| {
        Error::unavailable(t!(
            "云服务商 {} 没有可用的 OpenStack 驱动" ;
            "provider {} has no OpenStack driver",
            id
        ))
    })?;
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
    let mut servers = Vec::new();
    for p in &projects {
        for sv in driver.client.list_servers(p).await.map_err(unavailable)? {
            if !servers
                .iter()
                .any(|x: &crate::compute::openstack::Server| x.id == sv.id)
            {
                servers.push(sv);
            }
        }
    }
    let instances: Vec<_> = zy_store::instances::live(&s.store)
        .await?
        .into_iter()
        .filter(|r| r.instance.provider_id == Some(id))
        .collect();
    Ok(compare(&driver.client.settings, &servers, &instances))
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
        let mine = sv
            .marker
            .and_then(|m| instances.iter().find(|r| r.instance.id.0 == m));
        let Some(row) = mine else {
            let owner = settings.owner_of(&sv.project_id);
            out.push(DriftItem {
                kind: "appeared".into(),
                server_id: Some(sv.id.clone()),
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
                kind: "changed".into(),
                server_id: Some(sv.id.clone()),
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
        if !servers.iter().any(|sv| sv.marker == Some(i.id.0)) {
            out.push(DriftItem {
                kind: "disappeared".into(),
                server_id: None,
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

/// The drift of one provider, for the platform admin and the supervisor.
pub async fn list_drift(
    s: &AppState,
    actor: &Actor,
    id: ProviderId,
) -> Result<Vec<DriftItem>, Error> {
    authorize(&actor.principal, Action::InventoryRead)?;
    openstack_provider(s, id).await?;
    drift(s, id).await
}
