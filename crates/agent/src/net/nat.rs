//! Outbound access and elastic IPs (弹性IP/NAT) on a host: each VPC's namespace `zd<vni>`
//! (which already holds the subnets' gateway addresses) gets an uplink veth to the host
//! (`zu<vni>` inside, `ze<vni>` on the host, a /31 from [`LINK_NET`] chosen by the agent)
//! and does the VPC's NAT itself, so two VPCs with the same private addresses never meet
//! in the host's tables:
//!
//! - inside the namespace, the table `ip zhengyun_nat` ([`render_vpc`]): DNAT of each
//!   elastic IP to its NIC's private address, SNAT of that address to its elastic IP, and
//!   masquerade (to the uplink's address) for everything else leaving by the uplink —
//!   or, for a VPC without outbound access (`NatWire::masquerade` false), no masquerade
//!   and a `forward` rule dropping whatever would leave by the uplink from an address
//!   without an elastic IP;
//! - on the host, the table `ip zhengyun_nat` ([`render_host`]): packets from the uplinks
//!   are marked, routed by a rule of their own (the main table without its default route,
//!   then [`ROUTE_TABLE`] whose default is the external network's gateway) and, unless
//!   they carry an elastic IP, masqueraded to the host's own address on the external
//!   interface (the "outbound address" of every VPC on this host);
//! - each bound elastic IP is a /32 route (protocol [`ROUTE_PROTO`]) to its VPC's uplink
//!   and a proxy-ARP entry on the external interface, so it answers only on the host
//!   that runs the instance, announced by a gratuitous ARP when it appears there;
//! - an elastic IP is reached from the host's own VPCs too (hairpin): from its own VPC
//!   inside the namespace, from another through the host (uplink to uplink).
//!
//! Its flows are flushed when its binding changes (`super::conntrack`).
//!
//! Like the rest of the data plane every step is an "ensure" that reads the kernel first,
//! so a repeated apply or a restarted agent changes nothing, and what is no longer wanted
//! (an unbound elastic IP, a VPC that left, an external network removed) is removed.

use super::{names, run, DataPlane, NetError};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;
use zy_compute::agent::{ExternalWire, NatWire, NetworkState};

/// The name of the NAT tables (family `ip`), on the host and in each VPC namespace.
pub const TABLE: &str = "zhengyun_nat";
/// The uplinks' addresses: one /31 per VPC on a host (the host's end even, the
/// namespace's odd), link-local so they never clash with a VPC's or the external
/// network's addresses (and below 169.254.128.0, away from 169.254.169.254).
pub const LINK_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(169, 254, 0, 0), 17);
/// The routing table holding the external network's default route for uplink traffic.
pub const ROUTE_TABLE: &str = "31353";
/// The firewall mark of packets from the uplinks (`zy`).
pub const MARK: &str = "0x7a79";
/// The routing protocol number of the elastic IPs' routes (so they are found again).
pub const ROUTE_PROTO: &str = "157";
/// Priorities of the two policy-routing rules.
const RULE_MAIN: &str = "31352";
const RULE_EXT: &str = "31353";

/// The /31 of uplink `slot` (1 ≤ slot < 16384): (host end, namespace end).
pub fn link_pair(slot: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(LINK_NET.0) + 2 * slot;
    (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
}

/// The slot of a host end's address, when it is one of ours.
pub fn slot_of(host_end: Ipv4Addr) -> Option<u32> {
    let a = u32::from(host_end);
    let base = u32::from(LINK_NET.0);
    let size = 1u32 << (32 - LINK_NET.1);
    (a >= base && a < base + size && a % 2 == 0 && a > base).then(|| (a - base) / 2)
}

fn link_net() -> String {
    format!("{}/{}", LINK_NET.0, LINK_NET.1)
}

/// A NAT table with its chains (`nft -f` input that declares, deletes and defines the
/// table in one transaction): `prerouting` of type `pre` (`nat` at `dstnat` or `filter`
/// at `mangle`), `postrouting` (`nat` at `srcnat`) and, when it has rules, `forward`
/// (`filter`).
fn table(
    pre: (&str, &str),
    pre_rules: &[String],
    post_rules: &[String],
    forward_rules: &[String],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "table ip {TABLE} {{}}");
    let _ = writeln!(o, "delete table ip {TABLE}");
    let _ = writeln!(o, "table ip {TABLE} {{");
    let chains = [
        ("prerouting", pre, pre_rules),
        ("postrouting", ("nat", "srcnat"), post_rules),
        ("forward", ("filter", "filter"), forward_rules),
    ];
    for (hook, (kind, priority), rules) in chains {
        if hook == "forward" && rules.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\tchain {hook} {{");
        let _ = writeln!(
            o,
            "\t\ttype {kind} hook {hook} priority {priority}; policy accept;"
        );
        for r in rules {
            let _ = writeln!(o, "\t\t{r}");
        }
        let _ = writeln!(o, "\t}}");
    }
    let _ = writeln!(o, "}}");
    o
}

/// The NAT table of one VPC's namespace: DNAT and SNAT of each elastic IP, masquerade for
/// the rest leaving by the uplink. An elastic IP is DNATed when it arrives by the uplink
/// (from outside, or from another VPC on this host through the host's route) and when a
/// guest of this VPC asks for it (hairpin): such a flow is marked and masqueraded to the
/// subnet's gateway address, so the owner's replies come back through the namespace.
/// Without outbound access (`masquerade` false) nothing is masqueraded and whatever would
/// leave by the uplink from an address without an elastic IP is dropped, so no private
/// source reaches the external network either.
pub fn render_vpc(vni: u32, nat: &NatWire) -> String {
    let (up, inside) = (names::uplink_inside(vni), names::dhcp_inside(vni));
    let mut pre = Vec::new();
    for e in &nat.eips {
        pre.push(format!(
            "iifname \"{up}\" ip daddr {} dnat to {}",
            e.eip, e.ip
        ));
        pre.push(format!(
            "iifname \"{inside}\" ip daddr {} meta mark set {MARK} dnat to {}",
            e.eip, e.ip
        ));
    }
    let mut post: Vec<String> = nat
        .eips
        .iter()
        .map(|e| format!("oifname \"{up}\" ip saddr {} snat to {}", e.ip, e.eip))
        .collect();
    let mut forward = Vec::new();
    if nat.masquerade {
        post.push(format!("oifname \"{up}\" masquerade"));
    } else if nat.eips.is_empty() {
        forward.push(format!("oifname \"{up}\" drop"));
    } else {
        let own: Vec<&str> = nat.eips.iter().map(|e| e.ip.as_str()).collect();
        forward.push(format!(
            "oifname \"{up}\" ip saddr != {{ {} }} drop",
            own.join(", ")
        ));
    }
    if !nat.eips.is_empty() {
        post.push(format!("oifname \"{inside}\" meta mark {MARK} masquerade"));
    }
    table(("nat", "dstnat"), &pre, &post, &forward)
}

/// The host's NAT table for an external network: uplink traffic marked for its routing
/// rule, and masqueraded to the host's address unless it carries an elastic IP. Uplink
/// traffic to an elastic IP of another VPC on this host (hairpin: routed from one uplink
/// to the other) leaves with the host's own address `own` on the external network too,
/// so its owner sees it as it would from outside.
pub fn render_host(ext: &ExternalWire, own: Option<Ipv4Addr>) -> String {
    let mut post = vec![format!(
        "oifname \"{}\" ip saddr {} masquerade",
        ext.host_interface,
        link_net()
    )];
    if let Some(own) = own {
        post.push(format!(
            "oifname \"ze*\" ip saddr {} snat to {own}",
            link_net()
        ));
    }
    table(
        ("filter", "mangle"),
        &[format!("iifname \"ze*\" meta mark set {MARK}")],
        &post,
        &[],
    )
}

/// Refuses what could not be applied or would inject text into a rule set.
pub(super) fn validate(st: &NetworkState) -> Result<(), NetError> {
    let bad = |what: String| Err(NetError::Invalid(what));
    if let Some(x) = &st.external {
        let iface_ok = !x.host_interface.is_empty()
            && x.host_interface.len() <= 15
            && x.host_interface
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let cidr_ok = x.cidr.split_once('/').is_some_and(|(a, p)| {
            a.parse::<Ipv4Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 32)
        });
        if !iface_ok || !cidr_ok || x.gateway.parse::<Ipv4Addr>().is_err() {
            return bad(format!("external network {} is malformed", x.cidr));
        }
    }
    let mut seen = BTreeSet::new();
    for v in &st.vpcs {
        let Some(nat) = &v.nat else { continue };
        if st.external.is_none() {
            return bad(format!(
                "VPC {} has NAT duties without an external network",
                v.vni
            ));
        }
        for e in &nat.eips {
            if e.eip.parse::<Ipv4Addr>().is_err()
                || e.ip.parse::<Ipv4Addr>().is_err()
                || !seen.insert(e.eip.clone())
            {
                return bad(format!(
                    "elastic IP {} → {} is malformed or repeated",
                    e.eip, e.ip
                ));
            }
        }
    }
    Ok(())
}

fn in_cidr(addr: &str, cidr: &str) -> bool {
    let (Ok(a), Some((net, prefix))) = (addr.parse::<Ipv4Addr>(), cidr.split_once('/')) else {
        return false;
    };
    let (Ok(net), Ok(prefix)) = (net.parse::<Ipv4Addr>(), prefix.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0);
    u32::from(a) & mask == u32::from(net) & mask
}

#[derive(Deserialize)]
struct AddrInfo {
    family: String,
    local: String,
}

#[derive(Deserialize)]
struct DevAddrs {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

/// `ip -j addr show` → the IPv4 addresses of each interface.
fn parse_addrs(json: &str) -> BTreeMap<String, Vec<Ipv4Addr>> {
    serde_json::from_str::<Vec<DevAddrs>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let a = d
                .addr_info
                .iter()
                .filter(|a| a.family == "inet")
                .filter_map(|a| a.local.parse().ok())
                .collect();
            (d.ifname, a)
        })
        .collect()
}

#[derive(Deserialize)]
struct Dst {
    dst: String,
}

fn parse_dsts(json: &str) -> BTreeSet<String> {
    serde_json::from_str::<Vec<Dst>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.dst.trim_end_matches("/32").to_string())
        .collect()
}

impl DataPlane {
    /// The host's own IPv4 addresses, loopback and link-local (the uplinks') aside: the
    /// heartbeat reports them so none is handed out as an elastic IP.
    pub async fn own_addresses(&self) -> Vec<String> {
        let all = parse_addrs(&self.ip(&["-j", "addr", "show"]).await.unwrap_or_default());
        let own: BTreeSet<Ipv4Addr> = all
            .into_values()
            .flatten()
            .filter(|a| !a.is_loopback() && !a.is_link_local())
            .collect();
        own.into_iter().map(|a| a.to_string()).collect()
    }

    /// The uplinks and NAT of every VPC in `want`, and the host's side: run after the
    /// VPCs' namespaces exist (`ensure_vpc`), before links of VPCs that left are removed.
    pub(super) async fn ensure_nat(
        &self,
        want: &NetworkState,
        before: Option<&ExternalWire>,
    ) -> Result<(), NetError> {
        let addrs = parse_addrs(&self.ip(&["-j", "addr", "show"]).await?);
        // Slots in use: uplinks that keep theirs.
        let mut used: BTreeMap<u32, u32> = BTreeMap::new(); // vni → slot
        for (name, a) in &addrs {
            if let Some(vni) = names::vni_of(name, "ze") {
                if let Some(slot) = a.iter().find_map(|a| slot_of(*a)) {
                    used.entry(vni).or_insert(slot);
                }
            }
        }
        let mut taken: BTreeSet<u32> = used.values().copied().collect();
        let mut routes: BTreeMap<String, (Ipv4Addr, String)> = BTreeMap::new();
        for v in &want.vpcs {
            let up = names::uplink(v.vni);
            let Some(nat) = &v.nat else {
                if addrs.contains_key(&up) {
                    self.ip(&["link", "del", &up]).await.ok();
                    let ns = names::dhcp_ns(&self.prefix, v.vni);
                    run(
                        "ip",
                        &["netns", "exec", &ns, "nft", "delete", "table", "ip", TABLE],
                    )
                    .await
                    .ok();
                }
                continue;
            };
            let slot = match used.get(&v.vni) {
                Some(s) => *s,
                None => {
                    let s = (1..1u32 << (31 - LINK_NET.1))
                        .find(|s| !taken.contains(s))
                        .ok_or_else(|| NetError::Command("no uplink address left".into()))?;
                    taken.insert(s);
                    s
                }
            };
            let (host_end, ns_end) = link_pair(slot);
            self.ensure_uplink(v.vni, nat, addrs.get(&up), (host_end, ns_end))
                .await?;
            for e in &nat.eips {
                routes.insert(e.eip.clone(), (ns_end, up.clone()));
            }
        }
        let own = want.external.as_ref().and_then(|x| {
            addrs
                .get(&x.host_interface)?
                .iter()
                .find(|a| in_cidr(&a.to_string(), &x.cidr))
                .copied()
        });
        self.ensure_host_external(want.external.as_ref(), before, &routes, own)
            .await
    }

    async fn ensure_uplink(
        &self,
        vni: u32,
        nat: &NatWire,
        have: Option<&Vec<Ipv4Addr>>,
        (host_end, ns_end): (Ipv4Addr, Ipv4Addr),
    ) -> Result<(), NetError> {
        let ns = names::dhcp_ns(&self.prefix, vni);
        let (up, inside) = (names::uplink(vni), names::uplink_inside(vni));
        if have.is_none() {
            self.ip(&[
                "link", "add", &up, "type", "veth", "peer", "name", &inside, "netns", &ns,
            ])
            .await?;
        }
        let host_cidr = format!("{host_end}/31");
        if !have.is_some_and(|a| a.contains(&host_end)) {
            self.ip(&["addr", "flush", "dev", &up]).await?;
            self.ip(&["addr", "add", &host_cidr, "dev", &up]).await?;
        }
        self.ip(&["link", "set", &up, "up"]).await?;
        let ns_cidr = format!("{ns_end}/31");
        let inside_have = super::addresses(&ns, &inside).await;
        if !inside_have.contains(&ns_cidr) {
            run("ip", &["-n", &ns, "addr", "flush", "dev", &inside]).await?;
            run("ip", &["-n", &ns, "addr", "add", &ns_cidr, "dev", &inside]).await?;
        }
        run("ip", &["-n", &ns, "link", "set", &inside, "up"]).await?;
        let gw = host_end.to_string();
        run(
            "ip",
            &[
                "-n", &ns, "route", "replace", "default", "via", &gw, "dev", &inside,
            ],
        )
        .await?;
        // Forwarding and no ICMP redirects (a guest told to reach an elastic IP through its
        // owner would bypass the NAT): set by `ensure_ns` for every routing namespace.
        let path = self.dir.join(format!("zd{vni}.nat.nft"));
        tokio::fs::write(&path, render_vpc(vni, nat))
            .await
            .map_err(|e| NetError::Command(format!("cannot write {}: {e}", path.display())))?;
        let p = path.to_string_lossy().into_owned();
        run("ip", &["netns", "exec", &ns, "nft", "-f", &p])
            .await
            .map(|_| ())
    }

    /// The host's side: forwarding, proxy ARP, the NAT table, the routing rules and the
    /// elastic IPs' routes (`routes`: elastic IP → (namespace end, uplink)); all removed
    /// when the host has no external network any more.
    async fn ensure_host_external(
        &self,
        ext: Option<&ExternalWire>,
        before: Option<&ExternalWire>,
        routes: &BTreeMap<String, (Ipv4Addr, String)>,
        own: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        // The elastic IPs' routes: ours carry ROUTE_PROTO.
        let have = parse_dsts(
            &self
                .ip(&["-j", "route", "show", "proto", ROUTE_PROTO])
                .await
                .unwrap_or_default(),
        );
        for (eip, (via, dev)) in routes {
            let dst = format!("{eip}/32");
            let via = via.to_string();
            self.ip(&[
                "route",
                "replace",
                &dst,
                "via",
                &via,
                "dev",
                dev,
                "proto",
                ROUTE_PROTO,
            ])
            .await?;
        }
        for gone in have.iter().filter(|d| !routes.contains_key(*d)) {
            self.ip(&["route", "del", &format!("{gone}/32"), "proto", ROUTE_PROTO])
                .await
                .ok();
        }
        // Proxy ARP: exactly the bound elastic IPs on the external interface (and none
        // left on an interface the external network moved away from).
        if let Some(old) =
            before.filter(|b| ext.is_none_or(|x| x.host_interface != b.host_interface))
        {
            self.proxy_arp(old, &BTreeSet::new()).await;
        }
        let Some(x) = ext else {
            self.exec("nft", &["delete", "table", "ip", TABLE])
                .await
                .ok();
            for pref in [RULE_MAIN, RULE_EXT] {
                while self.ip(&["rule", "del", "pref", pref]).await.is_ok() {}
            }
            self.ip(&["route", "flush", "table", ROUTE_TABLE])
                .await
                .ok();
            return Ok(());
        };
        let dev = x.host_interface.as_str();
        if self.ip(&["link", "show", "dev", dev]).await.is_err() {
            return Err(NetError::Command(format!(
                "the external network's interface {dev} does not exist on this host"
            )));
        }
        self.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
            .await?;
        // Proxied ARP answers go out at once (the default delays them up to 0.8 s).
        let delay = format!("net/ipv4/neigh/{dev}/proxy_delay=0");
        self.exec("sysctl", &["-qw", &delay]).await?;
        let path = self.dir.join("host.nat.nft");
        tokio::fs::write(&path, render_host(x, own))
            .await
            .map_err(|e| NetError::Command(format!("cannot write {}: {e}", path.display())))?;
        let p = path.to_string_lossy().into_owned();
        self.exec("nft", &["-f", &p]).await?;
        // Uplink traffic: the main table's specific routes (the external network itself,
        // the elastic IPs of other VPCs here), else the external network's gateway.
        let rules: [(&str, &[&str]); 2] = [
            (
                RULE_MAIN,
                &[
                    "fwmark",
                    MARK,
                    "lookup",
                    "main",
                    "suppress_prefixlength",
                    "0",
                ],
            ),
            (RULE_EXT, &["fwmark", MARK, "lookup", ROUTE_TABLE]),
        ];
        for (pref, args) in rules {
            let shown = self.ip(&["-j", "rule", "show", "pref", pref]).await?;
            if shown
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .is_empty()
            {
                let mut a = vec!["rule", "add", "pref", pref];
                a.extend(args);
                self.ip(&a).await?;
            }
        }
        let gw = x.gateway.as_str();
        self.ip(&[
            "route",
            "replace",
            "default",
            "via",
            gw,
            "dev",
            dev,
            "table",
            ROUTE_TABLE,
            "onlink",
        ])
        .await?;
        let eips: BTreeSet<String> = routes.keys().cloned().collect();
        self.proxy_arp(x, &eips).await;
        self.announce(dev, routes.keys().filter(|e| !have.contains(*e)))
            .await;
        Ok(())
    }

    /// A gratuitous ARP for each elastic IP that has just appeared on this host (a bind,
    /// or its instance arriving by migration or HA), so the external side's caches
    /// point at this host's interface at once rather than when their entries go stale.
    /// Debian's `arping` (Thomas Habets'; iputils' refuses a source address the host
    /// does not own), all at once, each waiting 50 ms for the answer nobody sends.
    /// Best effort: a lost announcement leaves the ARP retry to find the host.
    async fn announce<'a>(&self, dev: &str, eips: impl Iterator<Item = &'a String>) {
        let mut sends = tokio::task::JoinSet::new();
        for eip in eips {
            let mut args: Vec<String> = match &self.netns {
                Some(ns) => ["netns", "exec", ns.as_str(), "arping"]
                    .map(String::from)
                    .to_vec(),
                None => vec![],
            };
            args.extend(
                [
                    "-q", "-U", "-S", eip, "-i", dev, "-c", "1", "-w", "0.05", eip,
                ]
                .map(String::from),
            );
            let program = if self.netns.is_some() { "ip" } else { "arping" };
            let eip = eip.clone();
            sends.spawn(async move {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                // Exit 1: no answer, as expected of an unsolicited ARP.
                (eip, super::run_codes(program, &a, &[0, 1]).await)
            });
        }
        while let Some(done) = sends.join_next().await {
            if let Ok((eip, Err(e))) = done {
                tracing::warn!(eip, error = %e, "cannot announce the elastic IP");
            }
        }
    }

    /// Makes the proxy-ARP entries of the external network's interface that fall in its
    /// CIDR exactly `want` (an entry that cannot be added is left for the next apply).
    async fn proxy_arp(&self, x: &ExternalWire, want: &BTreeSet<String>) {
        let dev = x.host_interface.as_str();
        let have: BTreeSet<String> = parse_dsts(
            &self
                .ip(&["-j", "neigh", "show", "proxy", "dev", dev])
                .await
                .unwrap_or_default(),
        )
        .into_iter()
        .filter(|a| in_cidr(a, &x.cidr))
        .collect();
        for a in want.difference(&have) {
            let _ = self.ip(&["neigh", "add", "proxy", a, "dev", dev]).await;
        }
        for a in have.difference(want) {
            let _ = self.ip(&["neigh", "del", "proxy", a, "dev", dev]).await;
        }
    }
}

#[cfg(test)]
pub(super) mod bed;
#[cfg(test)]
mod moves;
#[cfg(test)]
pub(super) mod tests;
