//! Virtual networks (虚拟私有网络/子网), the platform's own address management (IPAM),
//! network interfaces, security groups (安全组) and elastic IPs (弹性IP) as the API shows
//! them, with the pure rules behind them: IPv4 CIDR parsing and overlap, the next free
//! address of a subnet, MAC addresses, rule validation, and (in [`nft`]) the nftables rule
//! set a host enforces. No IO, so every rule is unit- and property-tested here.

pub mod lb;
pub mod nft;

use crate::id::*;
use crate::time::Timestamp;
use crate::{t, Error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use utoipa::ToSchema;

/// An IPv4 network in CIDR notation, always its network address (`10.0.1.0/24`, never
/// `10.0.1.7/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: u32,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`; the address must be the network's own (host bits zero).
    pub fn parse(field: &str, s: &str) -> Result<Cidr, Error> {
        let bad = || {
            Error::validation(
                field,
                t!("“{}” 不是有效的 IPv4 CIDR，应形如 10.0.1.0/24" ; "“{}” is not a valid IPv4 CIDR; write it like 10.0.1.0/24", crate::validate::clip(s, 40)),
            )
        };
        let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = a.parse().map_err(|_| bad())?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let c = Cidr {
            addr: u32::from(ip),
            prefix,
        };
        if c.addr & !c.mask() != 0 {
            return Err(Error::validation(
                field,
                t!("{} 不是网络地址，应写作 {}" ; "{} is not a network address; write {}", s.trim(), Cidr { addr: c.addr & c.mask(), prefix }),
            ));
        }
        Ok(c)
    }

    /// A subnet's CIDR: as [`Cidr::parse`], with a prefix from /8 to /29 (room for a
    /// gateway and at least a few addresses; not a whole /0).
    pub fn parse_subnet(field: &str, s: &str) -> Result<Cidr, Error> {
        let c = Cidr::parse(field, s)?;
        if !(8..=29).contains(&c.prefix) {
            return Err(Error::validation(
                field,
                t!("子网掩码长度须在 /8 到 /29 之间（{}）" ; "a subnet's prefix must be between /8 and /29 ({})", c),
            ));
        }
        Ok(c)
    }

    pub fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    /// The first and last address of the network (network and broadcast addresses).
    pub fn first(self) -> u32 {
        self.addr
    }
    pub fn last(self) -> u32 {
        self.addr | !self.mask()
    }
    pub fn contains(self, ip: u32) -> bool {
        ip & self.mask() == self.addr
    }
    pub fn overlaps(self, other: Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
    /// The usual gateway: the first host address.
    pub fn default_gateway(self) -> u32 {
        self.addr + 1
    }
    /// Whether `ip` may be given to a host on this subnet: not the network or broadcast
    /// address.
    pub fn is_host(self, ip: u32) -> bool {
        self.contains(ip) && ip != self.first() && ip != self.last()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

/// Parses one IPv4 address of a field.
pub fn parse_ip(field: &str, s: &str) -> Result<u32, Error> {
    s.trim().parse::<Ipv4Addr>().map(u32::from).map_err(|_| {
        Error::validation(
            field,
            t!("“{}” 不是有效的 IPv4 地址" ; "“{}” is not a valid IPv4 address", crate::validate::clip(s, 40)),
        )
    })
}

pub fn ip_text(ip: u32) -> String {
    Ipv4Addr::from(ip).to_string()
}

/// The next free host address of `cidr`: the lowest one that is neither the network,
/// broadcast or gateway address nor in `taken`. `None` when the subnet is full.
pub fn next_free(cidr: Cidr, gateway: u32, taken: &BTreeSet<u32>) -> Option<u32> {
    let mut ip = cidr.first().checked_add(1)?;
    let last = cidr.last();
    // Walk the taken addresses in order alongside the candidates: O(taken) however full.
    let mut it = taken.range(ip..).peekable();
    while ip < last {
        while it.peek().is_some_and(|t| **t < ip) {
            it.next();
        }
        if ip != gateway && it.peek() != Some(&&ip) {
            return Some(ip);
        }
        ip += 1;
    }
    None
}

/// The locally administered unicast MAC address of a NIC, derived from its id's random
/// tail (`52:54:00` is QEMU's prefix; we use `fa:16:5a`, locally administered).
pub fn mac_for(nic: NicId) -> String {
    let b = nic.0.as_bytes();
    format!("fa:16:5a:{:02x}:{:02x}:{:02x}", b[13], b[14], b[15])
}

/// A short, stable tag of an id for kernel names (interfaces ≤ 15 bytes, nftables chains
/// and sets): the last 11 hex digits, from the random part of the UUIDv7.
pub fn short_tag(id: uuid::Uuid) -> String {
    let s = id.simple().to_string();
    s[s.len() - 11..].to_string()
}

/// The largest VXLAN number a VPC is given: the upper half of the 24-bit space carries
/// the VPCs' transit links between hosts (a VPC's number + 2^23, made by the agents), so
/// a VPC's number never meets another's transit link.
pub const MAX_VPC_VNI: i64 = (1 << 23) - 1;

/// The tap device of a NIC on its host (`zt` + tag of its id's random tail: 13 bytes).
pub fn tap_name(nic: NicId) -> String {
    format!("zt{}", short_tag(nic.0))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Vpc {
    pub id: VpcId,
    pub department_id: DepartmentId,
    /// The project that owns it; absent when the VPC is shared by the whole department.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    /// The VXLAN network identifier that carries this VPC between hosts (unique).
    pub vni: i64,
    /// Outbound access (出网): its NICs without an elastic IP reach the zone's external
    /// network, masqueraded to their host's address there. Elastic IPs work either way.
    pub outbound: bool,
    pub created_at: Timestamp,
    pub generation: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subnet {
    pub id: SubnetId,
    pub vpc_id: VpcId,
    pub name: String,
    /// IPv4 CIDR, e.g. `10.0.1.0/24`; may overlap subnets of other VPCs.
    pub cidr: String,
    pub gateway: String,
    pub dns_servers: Vec<String>,
    /// Whether the hosts serve DHCP on this subnet (the addresses always come from the
    /// platform's own allocation).
    pub dhcp: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VpcDetail {
    #[serde(flatten)]
    pub vpc: Vpc,
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Nic {
    pub id: NicId,
    pub instance_id: InstanceId,
    pub subnet_id: SubnetId,
    pub vpc_id: VpcId,
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    /// The interface's position on the instance (0 = eth0).
    pub index: i64,
    pub mac: String,
    pub ip: String,
    pub security_group_ids: Vec<SecurityGroupId>,
    pub created_at: Timestamp,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Traffic to the instance (入方向).
    Ingress,
    /// Traffic from the instance (出方向).
    Egress,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Any,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "ingress" => Some(Direction::Ingress),
            "egress" => Some(Direction::Egress),
            _ => None,
        }
    }
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Any => "any",
        }
    }
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "icmp" => Some(Protocol::Icmp),
            "any" => Some(Protocol::Any),
            _ => None,
        }
    }
}

/// One stateful rule: traffic in `direction` of `protocol` (to ports `port_min..=port_max`
/// for TCP/UDP) from (ingress) or to (egress) a CIDR or the members of a group is allowed;
/// replies to allowed traffic always pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityRule {
    pub direction: Direction,
    pub protocol: Protocol,
    /// First port (TCP/UDP only); absent: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_min: Option<u16>,
    /// Last port (TCP/UDP only); absent: the same as `port_min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_max: Option<u16>,
    /// The remote side as an IPv4 CIDR (`0.0.0.0/0`: anywhere). Give this or
    /// `remote_group_id`, not both; neither means anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cidr: Option<String>,
    /// The remote side as the addresses of a group's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_group_id: Option<SecurityGroupId>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The most rules one group may hold.
pub const MAX_RULES: usize = 1000;

impl SecurityRule {
    /// Checks a rule and returns it normalised (ports filled, CIDR canonical). `i` is its
    /// position in the request, for the field name.
    pub fn validated(mut self, i: usize) -> Result<SecurityRule, Error> {
        let f = |n: &str| format!("rules[{i}].{n}");
        match self.protocol {
            Protocol::Tcp | Protocol::Udp => match (self.port_min, self.port_max) {
                (None, Some(_)) => {
                    return Err(Error::validation(
                        &f("port_min"),
                        t!(
                            "给出了结束端口却没有起始端口",
                            "port_max is given without port_min"
                        ),
                    ))
                }
                (Some(lo), hi) => {
                    let hi = hi.unwrap_or(lo);
                    if lo == 0 || hi < lo {
                        return Err(Error::validation(
                            &f("port_max"),
                            t!("端口范围 {}-{} 无效：端口须在 1 到 65535 之间且起始不大于结束" ; "port range {}-{} is invalid: ports are 1 to 65535 and the first is not above the last", lo, hi),
                        ));
                    }
                    self.port_max = Some(hi);
                }
                (None, None) => {}
            },
            Protocol::Icmp | Protocol::Any => {
                if self.port_min.is_some() || self.port_max.is_some() {
                    return Err(Error::validation(
                        &f("port_min"),
                        t!(
                            "只有 TCP 和 UDP 规则可以指定端口",
                            "only TCP and UDP rules take ports"
                        ),
                    ));
                }
            }
        }
        if self.remote_cidr.is_some() && self.remote_group_id.is_some() {
            return Err(Error::validation(
                &f("remote_cidr"),
                t!(
                    "远端只能是一个 CIDR 或一个安全组，不能同时指定",
                    "give the remote side as a CIDR or a group, not both"
                ),
            ));
        }
        if let Some(c) = &self.remote_cidr {
            self.remote_cidr = Some(Cidr::parse(&f("remote_cidr"), c)?.to_string());
        }
        self.description = crate::validate::description(&f("description"), &self.description)?;
        Ok(self)
    }
}

/// Validates a whole rule list (at most [`MAX_RULES`], no duplicates).
pub fn validate_rules(rules: Vec<SecurityRule>) -> Result<Vec<SecurityRule>, Error> {
    if rules.len() > MAX_RULES {
        return Err(Error::validation(
            "rules",
            t!("一个安全组最多 {} 条规则" ; "a security group holds at most {} rules", MAX_RULES),
        ));
    }
    let mut out: Vec<SecurityRule> = Vec::with_capacity(rules.len());
    for (i, r) in rules.into_iter().enumerate() {
        let r = r.validated(i)?;
        if out.iter().any(|o| o == &r) {
            return Err(Error::validation(
                &format!("rules[{i}]"),
                t!("第 {} 条规则与前面的规则重复" ; "rule {} repeats an earlier rule", i + 1),
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// The rules a new group starts with: everything outbound allowed, nothing inbound
/// (default deny inbound, allow outbound).
pub fn default_rules() -> Vec<SecurityRule> {
    vec![SecurityRule {
        direction: Direction::Egress,
        protocol: Protocol::Any,
        port_min: None,
        port_max: None,
        remote_cidr: Some("0.0.0.0/0".into()),
        remote_group_id: None,
        description: String::new(),
    }]
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecurityGroup {
    pub id: SecurityGroupId,
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub rules: Vec<SecurityRule>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Changes of the rules are conditional on it.
    pub generation: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExternalNetwork {
    pub id: ExternalNetworkId,
    pub zone_id: ZoneId,
    pub name: String,
    pub cidr: String,
    pub gateway: String,
    /// The host interface (or bridge) the network is reached on, e.g. `br-ext`.
    pub host_interface: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElasticIp {
    pub id: ElasticIpId,
    pub external_network_id: ExternalNetworkId,
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    pub address: String,
    /// The NIC it is bound to (1:1 NAT), absent when unbound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<NicId>,
    /// The instance of that NIC (absent when unbound or bound to a load balancer's VIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The host where the binding is applied: the one its NIC's instance (or load
    /// balancer) runs on; absent when unbound or unplaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<HostId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    pub created_at: Timestamp,
    pub generation: i64,
}

/// Who holds an address: the seam for security events and vulnerability tracking, which
/// map an appliance's source or target address to an instance, project, department and
/// provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AddressOwner {
    pub instance_id: InstanceId,
    pub project_id: ProjectId,
    pub department_id: DepartmentId,
    /// The provider the instance runs on, when it is placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
    /// How the address was matched: `nic` (a private address) or `elastic_ip`.
    pub via: String,
}

#[cfg(test)]
mod tests;
