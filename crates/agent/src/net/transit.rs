//! Routing between the subnets of one VPC across hosts. Each host's VPC namespace `zd<vni>`
//! holds every subnet's gateway with the same MAC on every host, and its bridge port and
//! the VPC's VXLAN port are isolated, so it only ever sees its own host's guests. A guest
//! on subnet 1 sending to subnet 2 hands the packet to its own host's namespace; when the
//! destination runs on another host, that namespace sends it over the VPC's *transit
//! link* to the destination host's namespace, which delivers it on its bridge like a
//! local one (the reply takes the mirror path). Same-subnet traffic keeps going over the
//! VPC's VXLAN device as before.
//!
//! The transit link is a second VXLAN device `zr<vni>` (VNI [`names::transit_vni`]) made
//! in the agent's namespace, so its UDP socket stays on the underlay, and moved into the
//! VPC's namespace. It is a routed point-to-multipoint link with no ARP and no flooding:
//! each host's MAC on it is derived from its underlay address ([`names::transit_mac`]),
//! each peer is one FDB entry (its MAC → its underlay address) and one permanent
//! neighbour entry (the peer's underlay address, used only as a next-hop name on this
//! link → its MAC), and each NIC of the VPC on another host ([`VpcWire::remote`], pushed
//! by the control plane) is a `/32` route `via <its host> dev zr<vni> onlink` with
//! protocol [`ROUTE_PROTO`]. The link's reverse-path filter is loose: a reply may arrive
//! a moment before this host has been told the route back.
//!
//! Why not the VPC's own VXLAN device: the namespaces of all hosts share one gateway MAC
//! and address per subnet, which is what lets a guest move between hosts without its ARP
//! cache going stale; on a shared segment they would all answer each other. A separate
//! routed link keeps that and needs no learning.
//!
//! Like the rest of the data plane it is an "ensure": the device, FDB, neighbours and
//! routes are read back first and only what differs is changed; what is no longer wanted
//! goes, and the device goes with its namespace when the VPC leaves the host.

use super::{names, run, DataPlane, NetError, VXLAN_PORT};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use zy_compute::agent::VpcWire;

/// The routing protocol number of the transit routes in a VPC namespace (found again by it).
pub const ROUTE_PROTO: &str = "158";

/// What a VPC's transit link holds on one host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Each peer host's underlay address → its MAC on the link.
    pub peers: BTreeMap<Ipv4Addr, String>,
    /// Each NIC address on another host → that host's underlay address.
    pub routes: BTreeMap<Ipv4Addr, Ipv4Addr>,
}

/// The transit link of `v` on the host with underlay `own` (nothing when no NIC of the
/// VPC is elsewhere). Entries naming this host itself or not parsing are left out
/// (validation refuses the latter before this runs).
pub fn plan(v: &VpcWire, own: Ipv4Addr) -> Plan {
    let mut p = Plan::default();
    for r in &v.remote {
        let (Ok(ip), Ok(host)) = (r.ip.parse::<Ipv4Addr>(), r.host.parse::<Ipv4Addr>()) else {
            continue;
        };
        if host == own {
            continue;
        }
        p.peers.insert(host, names::transit_mac(host));
        p.routes.insert(ip, host);
    }
    p
}

/// What to change to turn `have` into `want`: the entries to set (missing or different)
/// and the keys to remove.
pub fn diff<K: Ord + Clone, V: PartialEq + Clone>(
    have: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> (Vec<(K, V)>, Vec<K>) {
    let set = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .cloned()
        .collect();
    (set, remove)
}

#[derive(Deserialize)]
struct LinkInfo {
    #[serde(default)]
    info_kind: String,
    #[serde(default)]
    info_data: serde_json::Value,
}

#[derive(Deserialize)]
struct DetailedLink {
    #[serde(default)]
    address: String,
    #[serde(default)]
    linkinfo: Option<LinkInfo>,
}

/// `ip -j -d link show dev zr…` → (VNI, local address, MAC) of a VXLAN device.
fn parse_vxlan(json: &str) -> Option<(u32, Option<Ipv4Addr>, String)> {
    let l = serde_json::from_str::<Vec<DetailedLink>>(json)
        .ok()?
        .into_iter()
        .next()?;
    let info = l.linkinfo?;
    if info.info_kind != "vxlan" {
        return None;
    }
    let id = u32::try_from(info.info_data["id"].as_u64()?).ok()?;
    let local = info.info_data["local"]
        .as_str()
        .and_then(|a| a.parse().ok());
    Some((id, local, l.address))
}

/// `bridge -j fdb show dev zr…` → MAC → destination of the entries with one.
fn parse_fdb(json: &str) -> BTreeMap<String, Ipv4Addr> {
    #[derive(Deserialize)]
    struct Fdb {
        mac: String,
        #[serde(default)]
        dst: Option<String>,
    }
    serde_json::from_str::<Vec<Fdb>>(json)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| Some((f.mac, f.dst?.parse().ok()?)))
        .collect()
}

/// `ip -j neigh show dev zr…` → address → MAC of the permanent entries.
fn parse_neighbours(json: &str) -> BTreeMap<Ipv4Addr, String> {
    #[derive(Deserialize)]
    struct Neigh {
        dst: String,
        #[serde(default)]
        lladdr: Option<String>,
        #[serde(default)]
        state: Vec<String>,
    }
    serde_json::from_str::<Vec<Neigh>>(json)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.state.iter().any(|s| s == "PERMANENT"))
        .filter_map(|n| Some((n.dst.parse().ok()?, n.lladdr?)))
        .collect()
}

/// `ip -j route show proto 158` → destination → next hop.
fn parse_routes(json: &str) -> BTreeMap<Ipv4Addr, Ipv4Addr> {
    #[derive(Deserialize)]
    struct Route {
        dst: String,
        #[serde(default)]
        gateway: Option<String>,
    }
    serde_json::from_str::<Vec<Route>>(json)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let dst = r.dst.trim_end_matches("/32").parse().ok()?;
            Some((dst, r.gateway?.parse().ok()?))
        })
        .collect()
}

impl DataPlane {
    /// The transit link of `v` in its namespace (which exists): made, kept or removed.
    pub(super) async fn ensure_transit(&self, v: &VpcWire) -> Result<(), NetError> {
        let ns = names::dhcp_ns(&self.prefix, v.vni);
        let dev = names::transit(v.vni);
        let shown = run("ip", &["-n", &ns, "-j", "-d", "link", "show", "dev", &dev])
            .await
            .ok();
        let have = shown.as_deref().and_then(parse_vxlan);
        let plan = self.underlay.map(|u| (u, plan(v, u)));
        let Some((own, plan)) = plan.filter(|(_, p)| !p.routes.is_empty()) else {
            if shown.is_some() {
                run("ip", &["-n", &ns, "link", "del", &dev]).await.ok();
            }
            return Ok(());
        };
        let vni = names::transit_vni(v.vni);
        let mac = names::transit_mac(own);
        if have
            .as_ref()
            .is_none_or(|(id, local, _)| *id != vni || *local != Some(own))
        {
            if shown.is_some() {
                run("ip", &["-n", &ns, "link", "del", &dev]).await?;
            }
            // A device left here by an interrupted apply, before it was moved.
            self.ip(&["link", "del", &dev]).await.ok();
            let (id, local) = (vni.to_string(), own.to_string());
            self.ip(&[
                "link",
                "add",
                &dev,
                "address",
                &mac,
                "type",
                "vxlan",
                "id",
                &id,
                "local",
                &local,
                "dstport",
                VXLAN_PORT,
                "nolearning",
            ])
            .await?;
            self.ip(&["link", "set", &dev, "netns", &ns]).await?;
        } else if have.as_ref().is_some_and(|(_, _, m)| *m != mac) {
            run("ip", &["-n", &ns, "link", "set", &dev, "address", &mac]).await?;
        }
        // (Forwarding is on: the namespace routes, `ensure_ns`.)
        let rp = format!("net.ipv4.conf.{dev}.rp_filter=2");
        super::sysctl_in(&ns, &[&rp]).await?;
        run("ip", &["-n", &ns, "link", "set", &dev, "up"]).await?;

        // FDB: each peer's MAC → its underlay address.
        let fdb = parse_fdb(
            &run("bridge", &["-n", &ns, "-j", "fdb", "show", "dev", &dev])
                .await
                .unwrap_or_default(),
        );
        let want: BTreeMap<String, Ipv4Addr> =
            plan.peers.iter().map(|(u, m)| (m.clone(), *u)).collect();
        let (set, remove) = diff(&fdb, &want);
        for (m, u) in set {
            let u = u.to_string();
            run(
                "bridge",
                &["-n", &ns, "fdb", "replace", &m, "dev", &dev, "dst", &u],
            )
            .await?;
        }
        for m in remove {
            run("bridge", &["-n", &ns, "fdb", "del", &m, "dev", &dev])
                .await
                .ok();
        }

        // Neighbours: each peer's underlay address (a next-hop name only) → its MAC.
        let neigh = parse_neighbours(
            &run("ip", &["-n", &ns, "-j", "neigh", "show", "dev", &dev])
                .await
                .unwrap_or_default(),
        );
        let (set, remove) = diff(&neigh, &plan.peers);
        for (u, m) in set {
            let u = u.to_string();
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "neigh",
                    "replace",
                    &u,
                    "lladdr",
                    &m,
                    "dev",
                    &dev,
                    "nud",
                    "permanent",
                ],
            )
            .await?;
        }
        for u in remove {
            let u = u.to_string();
            run("ip", &["-n", &ns, "neigh", "del", &u, "dev", &dev])
                .await
                .ok();
        }

        // Routes: each NIC elsewhere → its host.
        let routes = parse_routes(
            &run(
                "ip",
                &["-n", &ns, "-j", "route", "show", "proto", ROUTE_PROTO],
            )
            .await
            .unwrap_or_default(),
        );
        let (set, remove) = diff(&routes, &plan.routes);
        for (ip, via) in set {
            let (dst, via) = (format!("{ip}/32"), via.to_string());
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "route",
                    "replace",
                    &dst,
                    "via",
                    &via,
                    "dev",
                    &dev,
                    "onlink",
                    "proto",
                    ROUTE_PROTO,
                ],
            )
            .await?;
        }
        for ip in remove {
            let dst = format!("{ip}/32");
            run(
                "ip",
                &["-n", &ns, "route", "del", &dst, "proto", ROUTE_PROTO],
            )
            .await
            .ok();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
