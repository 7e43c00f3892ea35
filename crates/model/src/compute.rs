//! Compute types as the API shows them: providers, zones, hosts, storage pools, flavors,
//! images, quotas, server groups, instances (with their state machine) and volumes.

use crate::id::*;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Provider {
    pub id: ProviderId,
    pub name: String,
    /// `sim` (simulated) or `kvm`.
    pub kind: String,
    /// True for the simulated provider: no real machines behind it.
    pub simulated: bool,
    pub description: String,
    pub created_at: Timestamp,
    pub generation: i64,
}

/// How the scheduler fills a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Fill the fullest host that fits (raises utilisation; the default).
    Pack,
    /// Use the emptiest host.
    Spread,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Zone {
    pub id: ZoneId,
    pub provider_id: ProviderId,
    pub region: String,
    pub name: String,
    pub strategy: Strategy,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Enabled,
    Maintenance,
    Down,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Enabled => "enabled",
            HostState::Maintenance => "maintenance",
            HostState::Down => "down",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(HostState::Enabled),
            "maintenance" => Some(HostState::Maintenance),
            "down" => Some(HostState::Down),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Host {
    pub id: HostId,
    pub zone_id: ZoneId,
    pub provider_id: ProviderId,
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    /// vCPU overcommit, e.g. 4000 = 4.0×.
    pub cpu_ratio_permille: u32,
    pub mem_ratio_permille: u32,
    pub state: HostState,
    pub used_vcpus: u32,
    pub used_memory_mib: u64,
    pub used_disk_gib: u64,
    pub used_gpus: u32,
    pub created_at: Timestamp,
    pub generation: i64,
    /// High availability: `ok`, `fencing` (declared failed, waiting out its lease) or
    /// `failed` (fenced; its instances were recovered).
    pub ha_state: HostHaState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<HostGroupId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostHaState {
    Ok,
    Fencing,
    Failed,
}

impl HostHaState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostHaState::Ok => "ok",
            HostHaState::Fencing => "fencing",
            HostHaState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(HostHaState::Ok),
            "fencing" => Some(HostHaState::Fencing),
            "failed" => Some(HostHaState::Failed),
            _ => None,
        }
    }
}

/// A storage pool's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// The hosts' own disks (volumes).
    Local,
    /// A directory mounted at the same path on every host of the zone (NFS, a cluster
    /// file system): instances of the zone keep their root disk there.
    Shared,
    /// An OpenStack provider's block storage (Cinder), one per zone of the provider, made
    /// by its synchronisation: volumes there are Cinder volumes.
    Cinder,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Local => "local",
            PoolKind::Shared => "shared",
            PoolKind::Cinder => "cinder",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(PoolKind::Local),
            "shared" => Some(PoolKind::Shared),
            "cinder" => Some(PoolKind::Cinder),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoragePool {
    pub id: StoragePoolId,
    pub zone_id: ZoneId,
    pub name: String,
    pub capacity_gib: u64,
    pub used_gib: u64,
    pub created_at: Timestamp,
    pub kind: PoolKind,
    /// For a shared pool: where it is mounted on every host of the zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Flavor {
    pub id: FlavorId,
    /// e.g. `2C4G`
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub gpus: u32,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Image {
    pub id: ImageId,
    pub name: String,
    pub os: String,
    pub min_disk_gib: u64,
    /// Providers that carry the image; empty means all.
    pub providers: Vec<ProviderId>,
    pub created_at: Timestamp,
}

/// Limits and current use of a department or project.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaLimits {
    pub instances: i64,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    pub volumes: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quota {
    /// `department` or `project`.
    pub scope_type: String,
    pub scope_id: String,
    pub limits: QuotaLimits,
    pub used: QuotaLimits,
    /// The share of `used` held by instances in the recycle bin (回收站): they still count,
    /// so a restore never fails for quota and their disks still occupy storage. Shown by
    /// `GET /v1/quotas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recycled: Option<QuotaLimits>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupPolicy {
    /// Members share one host.
    Affinity,
    /// Members never share a host.
    AntiAffinity,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerGroup {
    pub id: ServerGroupId,
    pub project_id: ProjectId,
    pub name: String,
    pub policy: GroupPolicy,
    pub created_at: Timestamp,
}

/// The instance state machine: pending → scheduling → provisioning → running ⇄ stopped;
/// any → error; deleting → deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Pending,
    Scheduling,
    Provisioning,
    Running,
    /// Running, and moving to another host by live migration.
    Migrating,
    Stopped,
    Error,
    /// Its host failed: waiting for the host to be fenced, then restarted elsewhere.
    Recovering,
    /// Its host failed and its disks were on that host only: nothing can run it until
    /// the host comes back (`last_error` says which host and why).
    Lost,
    Deleting,
    Deleted,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Scheduling => "scheduling",
            InstanceState::Provisioning => "provisioning",
            InstanceState::Running => "running",
            InstanceState::Migrating => "migrating",
            InstanceState::Stopped => "stopped",
            InstanceState::Error => "error",
            InstanceState::Recovering => "recovering",
            InstanceState::Lost => "lost",
            InstanceState::Deleting => "deleting",
            InstanceState::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            InstanceState::Pending,
            InstanceState::Scheduling,
            InstanceState::Provisioning,
            InstanceState::Running,
            InstanceState::Migrating,
            InstanceState::Stopped,
            InstanceState::Error,
            InstanceState::Recovering,
            InstanceState::Lost,
            InstanceState::Deleting,
            InstanceState::Deleted,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
    /// Where nothing more happens unless someone asks.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            InstanceState::Running
                | InstanceState::Stopped
                | InstanceState::Error
                | InstanceState::Deleted
        )
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Instance {
    pub id: InstanceId,
    pub project_id: ProjectId,
    pub department_id: DepartmentId,
    pub name: String,
    pub flavor_id: FlavorId,
    pub flavor_name: String,
    pub image_id: ImageId,
    pub image_name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<ServerGroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<ZoneId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<HostId>,
    /// The name of `host_id`, for people (absent until placed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    pub state: InstanceState,
    /// What the instance is being driven towards: `running`, `stopped` or `deleted`.
    pub desired: InstanceState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the lease (使用期限) ends; absent: no lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_end: Option<Timestamp>,
    /// The lease ended and the instance was stopped for it; it starts again only once the
    /// lease is extended.
    pub lease_ended: bool,
    /// In the recycle bin (回收站) since then: stopped, disks kept, quota still counted;
    /// absent when not released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recycled_at: Option<Timestamp>,
    /// When an instance in the recycle bin is deleted for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<Timestamp>,
    /// Why it was released (the lease ended, a user's release, a release request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recycle_reason: Option<String>,
    /// The shared storage pool holding the root disk (absent: on the host's own disk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_pool_id: Option<StoragePoolId>,
    /// What HA does when the host fails.
    pub ha_policy: HaPolicy,
    /// Higher restarts first after a host failure.
    pub ha_priority: i32,
    /// `created` through zhengyun, or `adopted` (纳管) from a provider cloud.
    pub origin: String,
    /// When it was adopted (metered from then); absent for instances zhengyun created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub generation: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceEvent {
    pub id: EventId,
    pub instance_id: InstanceId,
    pub at: Timestamp,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeState {
    Available,
    InUse,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Volume {
    pub id: VolumeId,
    pub project_id: ProjectId,
    pub department_id: DepartmentId,
    pub name: String,
    pub size_gib: u64,
    pub pool_id: StoragePoolId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    pub state: VolumeState,
    /// In the recycle bin (回收站) since then (only detached volumes are released): space
    /// and quota still held; absent when not released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recycled_at: Option<Timestamp>,
    /// When a volume in the recycle bin is deleted for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recycle_reason: Option<String>,
    /// `created` (through zhengyun) or `adopted` (纳管: found in an OpenStack provider's
    /// Cinder and taken over; its id is the Cinder volume id).
    pub origin: String,
    /// When it was adopted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub generation: i64,
}

/// What high availability does with an instance when its host fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HaPolicy {
    /// The host group's policy, or `restart` when the host is in no group.
    Inherit,
    /// Restart it on another host (disks on shared storage only).
    Restart,
    /// Move it to another host but leave it stopped.
    LeaveStopped,
}

impl HaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HaPolicy::Inherit => "inherit",
            HaPolicy::Restart => "restart",
            HaPolicy::LeaveStopped => "leave_stopped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inherit" => Some(HaPolicy::Inherit),
            "restart" => Some(HaPolicy::Restart),
            "leave_stopped" => Some(HaPolicy::LeaveStopped),
            _ => None,
        }
    }
    /// The policy that applies, given the host group's.
    pub fn effective(self, group: Option<HaPolicy>) -> HaPolicy {
        match (self, group) {
            (HaPolicy::Inherit, Some(g)) if g != HaPolicy::Inherit => g,
            (HaPolicy::Inherit, _) => HaPolicy::Restart,
            (p, _) => p,
        }
    }
}

/// One difference between an OpenStack provider cloud and zhengyun, as the
/// `openstack_sync` task recorded it (history: first and last seen, and what was decided).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DriftRecord {
    pub id: DriftItemId,
    pub provider_id: ProviderId,
    /// `server` or `volume`.
    pub kind: String,
    /// The provider's id of the server or volume (for a `disappeared` item, the zhengyun
    /// instance id: the provider no longer has one).
    pub external_id: String,
    /// `appeared`, `changed` or `disappeared`.
    pub change: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openstack_project: Option<String>,
    /// The zhengyun instance concerned (for an adopted item, the one it became).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// Where adoption puts it (the project mapping), or the instance's owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_id: Option<DepartmentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub detail: String,
    /// `open` (to decide), `adopted`, `dismissed` (stays so) or `resolved` (the
    /// difference went away).
    pub state: String,
    /// Why it stays open (e.g. over quota, no project mapping) or why it was dismissed.
    pub reason: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
}
