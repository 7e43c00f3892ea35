//! Connection tracking on a host, apart from the rule sets that use it:
//!
//! - a **zone per VPC** for the bridged traffic the host tracks (`br_netfilter` hands
//!   bridged IPv4 to the `inet` hooks with the VPC's bridge as device): the table
//!   `inet zhengyun_ct` ([`render_zones`]) puts every packet entering from a bridge `zb<vni>`
//!   into zone [`zone`]`(vni)` before conntrack sees it, so two VPCs on one host with the
//!   same private addresses never share an entry, even for the same 5-tuple (the VPC
//!   namespaces are network namespaces of their own, with their own tables already);
//! - the **flush of an elastic IP's entries** when its binding changes (unbound, bound to
//!   another NIC or VPC, gone to another host): in the host and in the VPC namespaces of
//!   the old and the new binding, so an established flow through it stops at once instead
//!   of following the old NAT binding (to the old guest, or out with the old source).
//!
//! Both use Debian's tools (`nft`, and `conntrack` from the `conntrack` package).

use super::{names, run_codes, DataPlane, NetError};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use zy_compute::agent::NetworkState;

/// The zones table's name (family `inet`).
pub const TABLE: &str = "zhengyun_ct";

/// The conntrack zone (16 bits, 0 is the default zone) of a VPC's bridged traffic: its
/// VNI, which the control plane hands out upwards from 4096; VNIs above 65,535 are
/// folded onto 4096–65,535, so two VPCs share a zone only when their VNIs differ by a
/// multiple of 61,440 *and* both run on the same host.
pub fn zone(vni: u32) -> u16 {
    u16::try_from(vni).unwrap_or_else(|_| {
        let folded = 4096 + (vni - 4096) % 61_440;
        u16::try_from(folded).unwrap_or(u16::MAX)
    })
}

/// The zones table of a host with VPCs `vnis` (`nft -f` input declaring, deleting and
/// defining it in one transaction).
pub fn render_zones(vnis: &BTreeSet<u32>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "table inet {TABLE} {{}}");
    let _ = writeln!(o, "delete table inet {TABLE}");
    let _ = writeln!(o, "table inet {TABLE} {{");
    let _ = writeln!(o, "\tchain prerouting {{");
    let _ = writeln!(
        o,
        "\t\ttype filter hook prerouting priority raw; policy accept;"
    );
    let map: Vec<String> = vnis
        .iter()
        .map(|v| format!("\"{}\" : {}", names::bridge(*v), zone(*v)))
        .collect();
    if !map.is_empty() {
        let _ = writeln!(o, "\t\tct zone set iifname map {{ {} }}", map.join(", "));
    }
    let _ = writeln!(o, "\t}}");
    let _ = writeln!(o, "}}");
    o
}

/// Each elastic IP of a state with its binding (VNI, private address).
pub fn eip_bindings(st: &NetworkState) -> BTreeMap<String, (u32, String)> {
    st.vpcs
        .iter()
        .filter_map(|v| v.nat.as_ref().map(|n| (v.vni, n)))
        .flat_map(|(vni, n)| {
            n.eips
                .iter()
                .map(move |e| (e.eip.clone(), (vni, e.ip.clone())))
        })
        .collect()
}

/// The elastic IPs whose binding differs between two states, with the VNIs of both
/// bindings (old and new).
pub fn changed_eips(before: &NetworkState, want: &NetworkState) -> BTreeMap<String, BTreeSet<u32>> {
    let (old, new) = (eip_bindings(before), eip_bindings(want));
    old.keys()
        .chain(new.keys())
        .filter(|e| old.get(*e) != new.get(*e))
        .map(|e| {
            let vnis = [old.get(e), new.get(e)]
                .into_iter()
                .flatten()
                .map(|b| b.0)
                .collect();
            (e.clone(), vnis)
        })
        .collect()
}

impl DataPlane {
    /// The zones table for the VPCs on this host (none: the table goes).
    pub(super) async fn ensure_zones(&self, st: &NetworkState) -> Result<(), NetError> {
        let vnis: BTreeSet<u32> = st.vpcs.iter().map(|v| v.vni).collect();
        if vnis.is_empty() {
            let _ = self.exec("nft", &["delete", "table", "inet", TABLE]).await;
            return Ok(());
        }
        let path = self.dir.join("host.ct.nft");
        tokio::fs::write(&path, render_zones(&vnis))
            .await
            .map_err(|e| NetError::Command(format!("cannot write {}: {e}", path.display())))?;
        let p = path.to_string_lossy().into_owned();
        self.exec("nft", &["-f", &p]).await.map(|_| ())
    }

    /// Deletes the conntrack entries of the elastic IPs whose binding changed between
    /// `before` and `want`: in the host (flows to and from the address) and in the VPC
    /// namespaces of both bindings (flows DNATed to the guest, a guest's flows SNATed to
    /// the address). Run once the new NAT tables are in place, so the next packet of such
    /// a flow is judged by them. A namespace already gone has nothing left to flush.
    pub(super) async fn flush_eips(&self, before: &NetworkState, want: &NetworkState) {
        for (eip, vnis) in changed_eips(before, want) {
            let e = eip.as_str();
            for sel in [["-D", "-d", e], ["-D", "-s", e]] {
                if let Err(err) = self.conntrack(None, &sel).await {
                    tracing::warn!(eip = e, error = %err, "cannot flush conntrack entries");
                }
            }
            for vni in vnis {
                let ns = names::dhcp_ns(&self.prefix, vni);
                if !std::path::Path::new("/run/netns").join(&ns).exists() {
                    continue;
                }
                for sel in [["-D", "-d", e], ["-D", "-q", e]] {
                    if let Err(err) = self.conntrack(Some(&ns), &sel).await {
                        tracing::warn!(eip = e, vni, error = %err, "cannot flush conntrack entries");
                    }
                }
            }
        }
    }

    /// `conntrack` in the data plane's namespace or in `ns`; "nothing matched" (exit 1
    /// with nothing on stderr but the count) is no error.
    async fn conntrack(&self, ns: Option<&str>, args: &[&str]) -> Result<(), NetError> {
        let ok = [0, 1];
        match ns.or(self.netns.as_deref()) {
            Some(ns) => {
                let mut a = vec!["netns", "exec", ns, "conntrack"];
                a.extend(args);
                run_codes("ip", &a, &ok).await
            }
            None => run_codes("conntrack", args, &ok).await,
        }
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zy_compute::agent::{EipWire, NatWire, VpcWire};

    #[test]
    fn zones_are_the_vnis_folded_into_sixteen_bits() {
        assert_eq!(zone(4096), 4096);
        assert_eq!(zone(65_535), 65_535);
        assert_eq!(zone(65_536), 4096);
        assert_eq!(zone(65_537), 4097);
        let max = names::MAX_VNI;
        assert_eq!(u32::from(zone(max)), 4096 + (max - 4096) % 61_440);
        assert!((4096..=u16::MAX).contains(&zone(1 << 20)));
    }

    fn st(eips: &[(u32, &str, &str)]) -> NetworkState {
        let mut vpcs: BTreeMap<u32, VpcWire> = BTreeMap::new();
        for (vni, eip, ip) in eips {
            vpcs.entry(*vni)
                .or_insert_with(|| VpcWire {
                    vni: *vni,
                    peers: vec![],
                    subnets: vec![],
                    nat: Some(NatWire::default()),
                    remote: vec![],
                })
                .nat
                .get_or_insert_with(NatWire::default)
                .eips
                .push(EipWire {
                    eip: (*eip).into(),
                    ip: (*ip).into(),
                });
        }
        NetworkState {
            vpcs: vpcs.into_values().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn an_elastic_ip_is_flushed_when_its_binding_changes_and_only_then() {
        let a = st(&[
            (4096, "198.51.100.10", "10.0.0.5"),
            (4096, "198.51.100.11", "10.0.0.6"),
        ]);
        assert!(
            changed_eips(&a, &a).is_empty(),
            "an unchanged binding keeps its flows"
        );
        // Moved to another NIC of the same VPC, unbound, and a new one bound elsewhere.
        let b = st(&[
            (4096, "198.51.100.10", "10.0.0.7"),
            (4097, "198.51.100.12", "10.0.0.5"),
        ]);
        let c = changed_eips(&a, &b);
        let got: Vec<(&str, Vec<u32>)> = c
            .iter()
            .map(|(e, v)| (e.as_str(), v.iter().copied().collect()))
            .collect();
        assert_eq!(
            got,
            [
                ("198.51.100.10", vec![4096]),
                ("198.51.100.11", vec![4096]),
                ("198.51.100.12", vec![4097]),
            ]
        );
        // Moved between VPCs: both namespaces are flushed.
        let d = st(&[(4097, "198.51.100.10", "10.0.0.7")]);
        let c = changed_eips(&b, &d);
        assert_eq!(c["198.51.100.10"], BTreeSet::from([4096, 4097]));
    }
}
