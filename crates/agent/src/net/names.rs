//! Kernel names of the data plane (Linux interface names are at most 15 bytes), shared
//! with the load balancers' namespaces: a VPC on a host is the bridge `zb<vni>`, its VXLAN
//! device `zx<vni>` and its DHCP namespace `zd<vni>` (joined to the bridge by the veth
//! `zv<vni>`, whose end inside is `zd<vni>` too; its uplink to the external network is the
//! veth `ze<vni>` on the host, `zu<vni>` inside; its transit link to the same namespace on
//! the other hosts is the VXLAN device `zr<vni>` inside); a NIC is the tap `zt<tag>`, a
//! load balancer the namespace `zl<first 10 hex of its id>`.

use std::net::Ipv4Addr;
use uuid::Uuid;

/// Largest VXLAN network identifier (24 bits): `zb16777215` is 10 bytes.
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// Largest VNI of a VPC (the control plane's `zy_model::network::MAX_VPC_VNI`): the
/// upper half of the space is the transit links'.
pub const MAX_VPC_VNI: u32 = (1 << 23) - 1;

pub fn bridge(vni: u32) -> String {
    format!("zb{vni}")
}

pub fn vxlan(vni: u32) -> String {
    format!("zx{vni}")
}

/// The DHCP namespace of a VPC; `prefix` keeps two agents on one machine (tests) apart.
pub fn dhcp_ns(prefix: &str, vni: u32) -> String {
    format!("{prefix}zd{vni}")
}

/// The veth end on the bridge of the VPC's DHCP namespace.
pub fn dhcp_port(vni: u32) -> String {
    format!("zv{vni}")
}

/// The veth end inside the DHCP namespace.
pub fn dhcp_inside(vni: u32) -> String {
    format!("zd{vni}")
}

/// The host's end of a VPC namespace's uplink (the veth pair to the external network).
pub fn uplink(vni: u32) -> String {
    format!("ze{vni}")
}

/// The uplink's end inside the VPC's namespace.
pub fn uplink_inside(vni: u32) -> String {
    format!("zu{vni}")
}

/// The tap of a NIC: `zt` and the last 11 hex digits of its id (the random tail of the
/// UUIDv7; the first digits are its creation time and would collide).
/// (The same name as `zy_model::network::tap_name`, which the rule set matches on.)
pub fn tap(nic: Uuid) -> String {
    let s = nic.simple().to_string();
    format!("zt{}", &s[s.len() - 11..])
}

/// A load balancer's namespace.
pub fn lb_ns(lb: Uuid) -> String {
    format!("zl{}", &lb.simple().to_string()[..10])
}

/// The VPC's transit link between its namespaces on the hosts (a VXLAN device inside the
/// VPC's namespace).
pub fn transit(vni: u32) -> String {
    format!("zr{vni}")
}

/// The VNI of a VPC's transit link: its own with the top bit of the 24 set, which no
/// VPC has ([`MAX_VPC_VNI`]).
pub fn transit_vni(vni: u32) -> u32 {
    vni | (1 << 23)
}

/// A host's MAC address on every transit link: its underlay address behind a locally
/// administered prefix, so every host computes every other's without asking.
pub fn transit_mac(underlay: Ipv4Addr) -> String {
    let o = underlay.octets();
    format!("fa:5c:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// The MAC address of the VPC's DHCP server and gateway, the same on every host so a
/// guest's ARP entry stays right wherever it runs (locally administered).
pub fn gateway_mac(vni: u32) -> String {
    let b = vni.to_be_bytes();
    format!("fa:16:5b:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

/// The VNI a data-plane link name belongs to (`zb12`, `zx12`, `zv12` → 12).
pub fn vni_of(link: &str, prefix: &str) -> Option<u32> {
    link.strip_prefix(prefix)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_parse_back() {
        for n in [
            bridge(MAX_VNI),
            vxlan(MAX_VNI),
            dhcp_port(MAX_VNI),
            dhcp_inside(MAX_VNI),
            uplink(MAX_VNI),
            uplink_inside(MAX_VNI),
            transit(MAX_VNI),
            tap(Uuid::now_v7()),
            lb_ns(Uuid::now_v7()),
        ] {
            assert!(n.len() <= 15, "{n}");
        }
        assert_eq!(vni_of(&bridge(4096), "zb"), Some(4096));
        assert_eq!(vni_of("zbx", "zb"), None);
        assert_eq!(gateway_mac(0x01_02_03), "fa:16:5b:01:02:03");
        assert_eq!(
            transit_mac(Ipv4Addr::new(192, 0, 2, 17)),
            "fa:5c:c0:00:02:11"
        );
        assert_ne!(
            transit_mac(Ipv4Addr::new(10, 0, 0, 1)),
            transit_mac(Ipv4Addr::new(10, 0, 0, 2))
        );
        // Two NICs created in the same millisecond still get two taps.
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_ne!(tap(a), tap(b));
    }

    #[test]
    fn transit_vnis_never_meet_a_vpcs() {
        assert_eq!(transit_vni(4096), 4096 + 8_388_608);
        assert_eq!(transit_vni(MAX_VPC_VNI), MAX_VNI);
        for vni in [1, 4096, 70_000, MAX_VPC_VNI] {
            let t = transit_vni(vni);
            assert!(t > MAX_VPC_VNI && t <= MAX_VNI, "{vni} → {t}");
        }
        assert_ne!(transit_vni(4096), transit_vni(4097));
    }
}
