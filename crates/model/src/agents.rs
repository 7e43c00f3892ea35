//! Real hosts: the agents that joined the platform, the one-time tokens they join with,
//! and live migrations between them.

use crate::id::*;
use crate::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

/// A one-time join token as listed (the token itself is shown once, at creation).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinToken {
    pub id: JoinTokenId,
    pub zone_id: ZoneId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    /// The host that joined with it.
    pub host_id: Option<HostId>,
}

/// The agent of a real host, as the control plane last heard from it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Agent {
    pub host_id: HostId,
    pub host_name: String,
    /// `host:port` of the agent's mutual-TLS API.
    pub address: String,
    /// `kvm` or `tcg`: how guests really run on this host (probed by the agent).
    pub accel: String,
    pub joined_at: Timestamp,
    pub last_seen: Timestamp,
    /// True when the last heartbeat is recent.
    pub alive: bool,
    /// The last heartbeat (capacity, QEMU version, VMs), as the agent sent it.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    Running,
    Completed,
    Failed,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Running => "running",
            MigrationState::Completed => "completed",
            MigrationState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            MigrationState::Running,
            MigrationState::Completed,
            MigrationState::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A live migration: where from, where to, and how long the guest was paused.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Migration {
    pub id: MigrationId,
    pub instance_id: InstanceId,
    pub source_host_id: HostId,
    pub target_host_id: HostId,
    /// The names of the two hosts, for people (absent in the answer that starts it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_host_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_host_name: Option<String>,
    pub state: MigrationState,
    /// Measured by QEMU: how long the guest did not run during the switch-over.
    pub downtime_ms: Option<u64>,
    pub total_ms: Option<u64>,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}
