//! High availability, maintenance evacuation and consolidation as the API shows them.

use crate::compute::HaPolicy;
use crate::id::*;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A group of hosts with the HA policy of their instances (主机组).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostGroup {
    pub id: HostGroupId,
    pub name: String,
    pub ha_policy: HaPolicy,
    pub hosts: Vec<HostId>,
    pub created_at: Timestamp,
    pub generation: i64,
}

/// How one instance fared when its host failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryOutcome {
    /// Being restarted elsewhere.
    Pending,
    /// Running again on another host.
    Restarted,
    /// Moved to another host and left stopped (its policy).
    LeftStopped,
    /// Its disks were on the failed host only.
    Lost,
    /// No host could take it, or the restart failed (see `reason`).
    Failed,
}

impl RecoveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryOutcome::Pending => "pending",
            RecoveryOutcome::Restarted => "restarted",
            RecoveryOutcome::LeftStopped => "left_stopped",
            RecoveryOutcome::Lost => "lost",
            RecoveryOutcome::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            RecoveryOutcome::Pending,
            RecoveryOutcome::Restarted,
            RecoveryOutcome::LeftStopped,
            RecoveryOutcome::Lost,
            RecoveryOutcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One instance's recovery after a host failure, with its timings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HaRecovery {
    pub id: HaRecoveryId,
    pub host_id: HostId,
    pub host_name: String,
    pub instance_id: InstanceId,
    pub instance_name: String,
    /// The host's last heartbeat before it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<Timestamp>,
    /// When the failure was declared (heartbeats missed for the detection time).
    pub detected_at: Timestamp,
    /// When the host's lease had surely run out, so it had stopped its guests.
    pub fenced_at: Timestamp,
    /// When the instance was running again elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_host_id: Option<HostId>,
    pub policy: HaPolicy,
    pub priority: i32,
    pub outcome: RecoveryOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds from the last heartbeat (or detection) to running again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_secs: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvacuationState {
    Running,
    /// Every instance left the host.
    Empty,
    /// Done, with instances that could not be moved (see `failures`).
    Incomplete,
    Cancelled,
}

impl EvacuationState {
    pub fn as_str(self) -> &'static str {
        match self {
            EvacuationState::Running => "running",
            EvacuationState::Empty => "empty",
            EvacuationState::Incomplete => "incomplete",
            EvacuationState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            EvacuationState::Running,
            EvacuationState::Empty,
            EvacuationState::Incomplete,
            EvacuationState::Cancelled,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// An instance that could not leave a host in maintenance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvacuationFailure {
    pub instance_id: InstanceId,
    pub reason: String,
}

/// A maintenance evacuation and its progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Evacuation {
    pub id: EvacuationId,
    pub host_id: HostId,
    pub state: EvacuationState,
    pub started_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Instances still on the host (not deleted).
    pub remaining: u32,
    /// Live migrations off the host since the evacuation began.
    pub migrated: u32,
    /// Migrations running now.
    pub in_progress: u32,
    pub failures: Vec<EvacuationFailure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    Proposed,
    Executing,
    Done,
    Stopped,
    Failed,
    Superseded,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Proposed => "proposed",
            PlanState::Executing => "executing",
            PlanState::Done => "done",
            PlanState::Stopped => "stopped",
            PlanState::Failed => "failed",
            PlanState::Superseded => "superseded",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            PlanState::Proposed,
            PlanState::Executing,
            PlanState::Done,
            PlanState::Stopped,
            PlanState::Failed,
            PlanState::Superseded,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One live migration of a consolidation plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanMove {
    pub instance_id: InstanceId,
    pub instance_name: String,
    pub from_host_id: HostId,
    pub to_host_id: HostId,
}

/// Utilisation figures before or after a plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanUtilisation {
    /// Hosts with at least one instance.
    pub hosts_in_use: u32,
    /// Mean share of vCPU allocated on the hosts in use (‰).
    pub cpu_alloc_permille: u32,
    /// Mean share of memory allocated on the hosts in use (‰).
    pub mem_alloc_permille: u32,
}

/// A consolidation plan (资源整合方案): migrations that free hosts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsolidationPlan {
    pub id: ConsolidationPlanId,
    pub state: PlanState,
    pub moves: Vec<PlanMove>,
    pub freed_hosts: Vec<HostId>,
    pub before: PlanUtilisation,
    pub after: PlanUtilisation,
    /// Moves done so far.
    pub next_move: u32,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Moves skipped while executing, with the reason.
    pub skipped: Vec<EvacuationFailure>,
    pub generation: i64,
}
