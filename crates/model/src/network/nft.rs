//! The nftables rule set that enforces security groups on one host, as text for
//! `nft -f` (pure, golden-tested; a test checks it with `nft -c -f`).
//!
//! Two tables owned by zhengyun per host, replaced together atomically (the file declares,
//! deletes and redefines them in one transaction):
//! - `inet zhengyun`: the stateful part. Bridged IPv4 reaches the `forward` hook through
//!   `br_netfilter` (the agent sets `net.bridge.bridge-nf-call-iptables = 1`), with the VPC's
//!   bridge as in/out device; a NIC is the pair (its VPC's bridge, its address), unique on a
//!   host because subnets of one VPC never overlap. Each NIC has an ingress chain
//!   (`in_<tag>`) and an egress chain (`out_<tag>`): replies of allowed flows pass by
//!   conntrack, then the rules of its groups, then a named counter (`drop_<tag>`, read back
//!   with `nft list counters`) and a drop. A remote group is a named set of its members'
//!   addresses (`g_<tag>`), so a membership change is a change of one set.
//! - `bridge zhengyun`: the stateless part at the NIC's tap (the kernels here have no
//!   bridge-family conntrack): a guest sends only from its own MAC and IPv4 address (DHCP
//!   discovery aside), and IPv6 neither reaches nor leaves it.

use super::{ip_text, short_tag, tap_name, Cidr, Direction, Protocol, SecurityRule};
use crate::id::{NicId, SecurityGroupId};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The table's name (family `bridge`).
pub const TABLE: &str = "zhengyun";

/// One NIC on the host with every rule of its groups.
#[derive(Debug, Clone)]
pub struct NicFirewall {
    pub nic: NicId,
    /// The VPC's VXLAN network identifier (its bridge `zb<vni>` carries the NIC's
    /// traffic on the host).
    pub vni: i64,
    pub mac: String,
    pub ip: u32,
    pub rules: Vec<SecurityRule>,
}

/// The rule set of one host: its NICs and the member addresses of every group their
/// rules name as a remote side.
#[derive(Debug, Clone, Default)]
pub struct HostFirewall {
    pub nics: Vec<NicFirewall>,
    pub groups: BTreeMap<SecurityGroupId, BTreeSet<u32>>,
}

fn set_name(g: SecurityGroupId) -> String {
    format!("g_{}", short_tag(g.0))
}

fn port_match(r: &SecurityRule) -> String {
    let proto = r.protocol.as_str();
    match (r.port_min, r.port_max) {
        (Some(lo), Some(hi)) if lo != hi => format!("{proto} dport {lo}-{hi} "),
        (Some(lo), _) => format!("{proto} dport {lo} "),
        _ => format!("meta l4proto {proto} "),
    }
}

/// One rule as an nftables statement for a chain of `direction`.
fn rule_line(r: &SecurityRule) -> String {
    let side = if r.direction == Direction::Ingress {
        "saddr"
    } else {
        "daddr"
    };
    let mut s = String::new();
    if let Some(g) = r.remote_group_id {
        let _ = write!(s, "ip {side} @{} ", set_name(g));
    } else if let Some(c) = r.remote_cidr.as_deref() {
        if let Ok(c) = Cidr::parse("remote_cidr", c) {
            if c.prefix > 0 {
                let _ = write!(s, "ip {side} {c} ");
            }
        }
    }
    match r.protocol {
        Protocol::Tcp | Protocol::Udp => s.push_str(&port_match(r)),
        Protocol::Icmp => s.push_str("ip protocol icmp "),
        Protocol::Any => {
            if s.is_empty() {
                s.push_str("meta nfproto ipv4 ");
            }
        }
    }
    s.push_str("accept");
    s
}

/// The bridge of a VPC on a host (`zb` + its VNI, at most 10 bytes).
pub fn bridge_name(vni: i64) -> String {
    format!("zb{vni}")
}

/// The whole rule set as `nft -f` input.
pub fn render(fw: &HostFirewall) -> String {
    let mut o = String::new();
    // Declare, delete, define: one atomic transaction whether or not the tables exist.
    for fam in ["inet", "bridge"] {
        let _ = writeln!(o, "table {fam} {TABLE} {{}}");
        let _ = writeln!(o, "delete table {fam} {TABLE}");
    }
    let _ = writeln!(o, "table inet {TABLE} {{");
    for (g, members) in &fw.groups {
        let _ = writeln!(o, "\tset {} {{", set_name(*g));
        let _ = writeln!(o, "\t\ttype ipv4_addr");
        if !members.is_empty() {
            let list: Vec<String> = members.iter().map(|ip| ip_text(*ip)).collect();
            let _ = writeln!(o, "\t\telements = {{ {} }}", list.join(", "));
        }
        let _ = writeln!(o, "\t}}");
    }
    for n in &fw.nics {
        let _ = writeln!(o, "\tcounter drop_{} {{\n\t}}", short_tag(n.nic.0));
    }
    let _ = writeln!(o, "\tchain forward {{");
    let _ = writeln!(o, "\t\ttype filter hook forward priority 0; policy accept;");
    for n in &fw.nics {
        let (br, tag, ip) = (bridge_name(n.vni), short_tag(n.nic.0), ip_text(n.ip));
        let _ = writeln!(o, "\t\toifname \"{br}\" ip daddr {ip} jump in_{tag}");
        let _ = writeln!(o, "\t\tiifname \"{br}\" ip saddr {ip} jump out_{tag}");
    }
    let _ = writeln!(o, "\t}}");
    for n in &fw.nics {
        let tag = short_tag(n.nic.0);
        let drop = format!("counter name \"drop_{tag}\" drop");
        let _ = writeln!(o, "\tchain in_{tag} {{");
        let _ = writeln!(o, "\t\tct state established,related accept");
        let _ = writeln!(o, "\t\tct state invalid {drop}");
        let _ = writeln!(o, "\t\tudp sport 67 udp dport 68 accept");
        for r in n.rules.iter().filter(|r| r.direction == Direction::Ingress) {
            let _ = writeln!(o, "\t\t{}", rule_line(r));
        }
        let _ = writeln!(o, "\t\t{drop}");
        let _ = writeln!(o, "\t}}");
        let _ = writeln!(o, "\tchain out_{tag} {{");
        let _ = writeln!(o, "\t\tct state established,related accept");
        for r in n.rules.iter().filter(|r| r.direction == Direction::Egress) {
            let _ = writeln!(o, "\t\t{}", rule_line(r));
        }
        let _ = writeln!(o, "\t\t{drop}");
        let _ = writeln!(o, "\t}}");
    }
    let _ = writeln!(o, "}}");
    // Stateless address checks at the bridge port: a guest sends only from its own MAC
    // and IPv4 address (DHCP discovery aside), and no IPv6 reaches or leaves it.
    let _ = writeln!(o, "table bridge {TABLE} {{");
    let _ = writeln!(o, "\tchain forward {{");
    let _ = writeln!(o, "\t\ttype filter hook forward priority 0; policy accept;");
    for n in &fw.nics {
        let (tap, tag) = (tap_name(n.nic), short_tag(n.nic.0));
        let _ = writeln!(o, "\t\tiifname \"{tap}\" jump spoof_{tag}");
        let _ = writeln!(o, "\t\toifname \"{tap}\" ether type ip6 drop");
    }
    let _ = writeln!(o, "\t}}");
    for n in &fw.nics {
        let tag = short_tag(n.nic.0);
        let ip = ip_text(n.ip);
        let _ = writeln!(o, "\tchain spoof_{tag} {{");
        let _ = writeln!(o, "\t\tether saddr != {} drop", n.mac);
        let _ = writeln!(o, "\t\tether type ip6 drop");
        let _ = writeln!(o, "\t\tarp saddr ip != {ip} drop");
        let _ = writeln!(o, "\t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 accept");
        let _ = writeln!(o, "\t\tether type ip ip saddr != {ip} drop");
        let _ = writeln!(o, "\t}}");
    }
    let _ = writeln!(o, "}}");
    o
}
