//! The wire format between the control plane and `zhengyun agent` (JSON over mutual TLS).
//! Both sides compile against these types, so they cannot drift apart.
//!
//! Agent API (every call idempotent; the agent answers 4xx with [`AgentError`]):
//! - `GET  /v1/host`                              → [`HostReport`] (the heartbeat)
//! - `POST /v1/host/lease` [`FenceLease`]          → [`HostReport`] (heartbeat renewing the
//!   self-fencing lease: an agent whose lease runs out kills its shared-storage guests)
//! - `PUT  /v1/network` [`NetworkState`]          → [`NetworkReport`] (the host's VPCs,
//!   NICs and rule set; also `GET /v1/network` for the report alone)
//! - `PUT  /v1/instances/{id}/disk`  [`DiskRequest`]   create the root disk (linked clone)
//! - `DELETE /v1/instances/{id}/disk`
//! - `PUT  /v1/instances/{id}`       [`EnsureRequest`] define and bring to a power state
//! - `GET  /v1/instances/{id}`                    → [`VmReport`]
//! - `DELETE /v1/instances/{id}`                  stop and remove everything of it
//! - `POST /v1/instances/{id}/reboot`
//! - `POST /v1/instances/{id}/resize` [`EnsureRequest`] (stopped: vCPU/memory/disk grow)
//! - `GET  /v1/instances/{id}/console?lines=N`    → text
//! - `GET  /v1/instances/{id}/metrics`            → [`VmMetrics`]
//! - `PUT  /v1/instances/{id}/volumes/{vol}` [`VolumeRequest`]; `DELETE …/volumes/{vol}`
//! - `POST /v1/instances/{id}/incoming` [`EnsureRequest`] → [`IncomingEndpoint`]
//! - `POST /v1/instances/{id}/incoming/finish` / `DELETE /v1/instances/{id}/incoming`
//! - `POST /v1/instances/{id}/migrate` [`MigrateRequest`] → [`MigrationReport`]
//! - `PUT  /v1/load-balancers/{id}` [`LbSpecWire`] → [`LbReport`] (HAProxy in a network
//!   namespace on the VPC's bridge, started or reloaded to this configuration)
//! - `GET  /v1/load-balancers/{id}`               → [`LbReport`] (members' health)
//! - `DELETE /v1/load-balancers/{id}`             stop HAProxy, remove its namespace

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an agent sends once, with its one-time join token.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    /// PEM CSR for the agent's serving key (the key never leaves the host).
    pub csr_pem: String,
    /// The host's name in the inventory.
    pub name: String,
    /// `host:port` the agent serves its API on, as the control plane reaches it.
    pub address: String,
    pub capacity: HostCapacity,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinResponse {
    pub host_id: Uuid,
    /// The agent's certificate, signed by the platform's agent CA.
    pub cert_pem: String,
    /// The only root the agent accepts clients under (the control plane's).
    pub client_ca_pem: String,
}

/// What a host offers, as its agent measured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostCapacity {
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Size of the filesystem holding the agent's data directory.
    pub disk_gib: u64,
    pub disk_free_gib: u64,
    /// `kvm` when guests really run under KVM here, `tcg` otherwise (probed, not assumed).
    pub accel: String,
    pub qemu_version: String,
}

/// The heartbeat: capacity and the VMs the agent runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostReport {
    pub host_id: Uuid,
    pub capacity: HostCapacity,
    pub agent_version: String,
    pub vms: Vec<VmReport>,
    pub load: HostLoad,
    /// What is left of the self-fencing lease, when the agent holds one.
    #[serde(default)]
    pub lease_left_ms: Option<u64>,
    /// Guests this agent killed because its lease ran out (since it started).
    #[serde(default)]
    pub fenced: u32,
    /// The IPv4 address other hosts reach this one's VXLAN tunnels on, when the agent
    /// has a data plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    /// The host's own IPv4 addresses (loopback and link-local aside), so the control
    /// plane never hands one out as an elastic IP of an external network they are on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// The control plane's grant: "you may keep running guests whose disks other hosts can
/// open for `valid_ms` from now". `issued_at_ms` (the control plane's clock, ms since the
/// epoch) lets the agent refuse a grant that arrives late, so a delayed packet can never
/// stretch a lease past what the control plane counted on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceLease {
    pub valid_ms: u64,
    pub issued_at_ms: i64,
}

/// Largest clock difference (and delivery delay) a lease grant may show, in ms.
pub const LEASE_MAX_SKEW_MS: i64 = 2_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostLoad {
    /// 1-minute load average ×1000.
    pub load_milli: u64,
    pub memory_used_mib: u64,
    /// Cumulative CPU time over all cores since boot, ms: busy, and in all (from
    /// `/proc/stat`); two readings give the host's own CPU use.
    #[serde(default)]
    pub cpu_busy_ms: u64,
    #[serde(default)]
    pub cpu_total_ms: u64,
    /// Bytes through the physical interfaces since boot.
    #[serde(default)]
    pub net_rx_bytes: u64,
    #[serde(default)]
    pub net_tx_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    Running,
    Stopped,
    /// The QEMU process ended without being asked to.
    Crashed,
    Missing,
    /// Waiting for an incoming live migration.
    Incoming,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmReport {
    pub id: Uuid,
    pub state: VmState,
    pub pid: Option<u32>,
    /// How often the guest died without being asked to since the agent started.
    #[serde(default)]
    pub crashes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpecWire {
    pub hostname: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub template: String,
    #[serde(default)]
    pub user_data: String,
    #[serde(default)]
    pub restart_on_crash: bool,
    /// The shared-storage directory of the zone holding the root disk, when it is shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_dir: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskRequest {
    pub spec: VmSpecWire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WantedPower {
    Running,
    Stopped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsureRequest {
    pub spec: VmSpecWire,
    pub state: WantedPower,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRequest {
    pub size_gib: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncomingEndpoint {
    /// Address (on the target's side) for the migration stream and the disk export.
    pub host: String,
    pub migrate_port: u16,
    pub nbd_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    pub host: String,
    pub migrate_port: u16,
    pub nbd_port: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MigrationReport {
    pub downtime_ms: u64,
    pub total_ms: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VmMetrics {
    pub cpu_time_ms: u64,
    pub memory_rss_mib: u64,
    pub memory_mib: u64,
    pub disk_used_bytes: u64,
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    pub disk_read_ops: u64,
    pub disk_write_ops: u64,
}

/// The agent's error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentError {
    /// `not_found`, `invalid`, `conflict`, `transient`, `internal`.
    pub code: String,
    pub message: String,
}

/// The network a host must carry (`PUT /v1/network`, answered with [`NetworkReport`]):
/// the whole desired state, so the agent converges to it from whatever it has. An agent
/// refuses (409) a push whose generation is below the one it already applied, so an old
/// push arriving late never undoes a newer one; the same generation again is applied again
/// (idempotent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkState {
    pub generation: i64,
    pub vpcs: Vec<VpcWire>,
    pub nics: Vec<NicWire>,
    /// The host's nftables rule set (`nft -f` input, `zy_model::network::nft::render`).
    pub ruleset: String,
    /// The zone's external network as this host reaches it (政务外网): its VPCs with
    /// [`VpcWire::nat`] go out through it. Absent: no outbound access from this host (and
    /// absent from the JSON, so an agent that predates it still takes the push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalWire>,
}

/// An external network on a host: the interface (or bridge) that carries it, which holds
/// the host's own address on it, and the network's CIDR and gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalWire {
    pub host_interface: String,
    /// `198.51.100.0/24`
    pub cidr: String,
    pub gateway: String,
}

/// A VPC's outbound duties on a host: masquerade (to the host's address on the external
/// network) for its NICs here without an elastic IP, 1:1 NAT for those with one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatWire {
    pub eips: Vec<EipWire>,
    /// Outbound access for the NICs without an elastic IP (the VPC's `outbound`); when
    /// false only the elastic IPs' flows leave. Sent only when false, so an agent that
    /// predates it still takes the pushes of VPCs that keep their outbound access.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub masquerade: bool,
}

impl Default for NatWire {
    fn default() -> Self {
        NatWire {
            eips: Vec::new(),
            masquerade: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// An elastic IP bound to a NIC on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EipWire {
    /// The address on the external network.
    pub eip: String,
    /// The NIC's private address in the VPC.
    pub ip: String,
}

/// A VPC on the host: its bridge, its VXLAN device and DHCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcWire {
    pub vni: u32,
    /// The underlay addresses of the other hosts carrying this VPC (VXLAN unicast
    /// head-end replication).
    pub peers: Vec<String>,
    pub subnets: Vec<SubnetWire>,
    /// Outbound access through [`NetworkState::external`] (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatWire>,
    /// The VPC's NICs on the other hosts (the peers), which this host's VPC namespace
    /// routes to over the VPC's transit link, so two subnets of the VPC reach each other
    /// across hosts. Left out of the JSON when empty, so an agent that predates it still
    /// takes the push (and routes only between the subnets on its own host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<RemoteNicWire>,
}

/// A NIC of the VPC on another host: its private address and that host's underlay
/// address (the end of the transit link it is reached through).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteNicWire {
    pub ip: String,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetWire {
    /// `10.0.1.0/24`
    pub cidr: String,
    pub gateway: String,
    pub dns_servers: Vec<String>,
    pub dhcp: bool,
    /// Fixed addresses DHCP hands out (the platform's IPAM).
    pub hosts: Vec<DhcpHost>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpHost {
    pub mac: String,
    pub ip: String,
}

/// A NIC of an instance on this host: a tap on its VPC's bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicWire {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub vni: u32,
    pub mac: String,
    pub ip: String,
    /// Position on the instance (0 = the first NIC).
    pub index: u32,
}

/// What the agent applied, and the counters of its NICs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkReport {
    pub generation: i64,
    pub nics: Vec<NicCounters>,
}

/// Cumulative counters of one NIC: packets its security groups dropped (the rule set's
/// `drop_<tag>` counter) and the tap's traffic, seen from the guest (rx = received by
/// the guest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NicCounters {
    pub id: Uuid,
    /// The instance the NIC belongs to (absent from older agents).
    #[serde(default)]
    pub instance_id: Uuid,
    pub dropped_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// How a load balancer's listener passes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbMode {
    Tcp,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbBalance {
    RoundRobin,
    LeastConn,
}

/// One pool member as the host sees it: an address and port (`name` is unique within
/// its listener and comes back in [`LbReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbMemberWire {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub weight: u16,
}

/// An HTTP health check: GET `path`, expecting `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheckWire {
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbListenerWire {
    pub mode: LbMode,
    pub port: u16,
    pub balance: LbBalance,
    /// `None`: members are checked by a TCP connect.
    pub http_check: Option<HttpCheckWire>,
    pub interval_ms: u32,
    pub rise: u8,
    pub fall: u8,
    pub members: Vec<LbMemberWire>,
}

/// `PUT /v1/load-balancers/{id}`: everything one load balancer runs with. The agent needs
/// only the VPC's bridge on the host (`zb<vni>`) and the virtual IP from the platform's
/// IPAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbSpecWire {
    pub vni: u32,
    /// The virtual IP and its subnet's prefix length and gateway.
    pub vip: String,
    pub prefix: u8,
    pub gateway: String,
    pub listeners: Vec<LbListenerWire>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbMemberHealth {
    Up,
    Down,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbMemberReport {
    pub listener_port: u16,
    pub name: String,
    pub health: LbMemberHealth,
}

/// A load balancer's state on its host: whether HAProxy runs and each member's health as
/// HAProxy's stats socket (`show stat`) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbReport {
    pub running: bool,
    pub members: Vec<LbMemberReport>,
}
