//! Real runs in network namespaces of what happens around an elastic IP beyond its NAT:
//! the gratuitous ARP when it appears on a host, the flush of its flows when its binding
//! changes, the conntrack zone of each VPC's bridged traffic on the host, and reaching it
//! from the VPCs of its own host (hairpin). Each needs root, iproute2, nftables, python3,
//! `conntrack` and (Habets') `arping`; `ZY_REQUIRE_NFT` makes a missing tool a failure.

use super::bed::*;
use super::tests::{have_nft, nft_required};
use crate::test_util::sh;
use std::path::Path;
use std::time::{Duration, Instant};

fn have_tools() -> bool {
    if !have_nft() {
        return false;
    }
    let ok = ["/usr/sbin/conntrack", "/usr/sbin/arping"]
        .iter()
        .all(|p| Path::new(p).exists());
    assert!(ok || !nft_required(), "conntrack or arping is missing");
    if !ok {
        eprintln!("conntrack or arping is not installed: skipped");
    }
    ok
}

/// The MAC address of `dev` in `ns`.
fn mac(ns: &str, dev: &str) -> String {
    let shown = out(&["ip", "-n", ns, "-o", "link", "show", "dev", dev]);
    shown
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// The external side still has the address at its old host's MAC (a stale ARP entry, as
/// after a migration); the bind announces it and the entry names this host at once. An
/// established flow from outside stops when the address is bound to another guest
/// (rather than still reaching the old one through its conntrack entry), new flows reach
/// the new guest, and once unbound no entry of the address is left anywhere.
#[tokio::test]
async fn a_moved_elastic_ip_is_announced_and_its_established_flows_stop() {
    if !have_tools() {
        return;
    }
    let mut bed = Bed::new("zyg");
    let (h, x) = (bed.host(), bed.ns("x"));
    let plane = bed.plane();
    plane.apply(state(1, &[])).await.expect("apply 1");
    // The heartbeat's addresses: the host's own on the external network, not the uplinks'
    // (the control plane keeps them out of the elastic IPs it hands out).
    let own = plane.own_addresses().await;
    assert!(own.iter().any(|a| a == HOST_EXT), "{own:?}");
    assert!(!own.iter().any(|a| a.starts_with("169.254.")), "{own:?}");
    bed.attach("a", VNI_A, "10.0.0.5");
    bed.attach("c", VNI_A, "10.0.0.6");
    let (a, c) = (bed.ns("a"), bed.ns("c"));
    bed.serve_echo(&a, "10.0.0.5", 8001, "a");
    bed.serve_echo(&c, "10.0.0.6", 8001, "c");
    bed.serve_echo(&x, GATEWAY, 7001, "x");

    // The gratuitous ARP (an existing entry may be overridden at once: locktime 0).
    let old_host = "02:00:00:00:00:99";
    assert!(sh(&[
        "ip",
        "netns",
        "exec",
        &x,
        "sysctl",
        "-qw",
        "net.ipv4.neigh.eth0.locktime=0"
    ]));
    assert!(sh(&[
        "ip", "-n", &x, "neigh", "replace", EIP, "lladdr", old_host, "dev", "eth0", "nud", "stale"
    ]));
    let t0 = Instant::now();
    plane
        .apply(state(2, &[(EIP, "10.0.0.5")]))
        .await
        .expect("apply 2");
    let here = mac(&h, "ext0");
    assert!(!here.is_empty());
    let deadline = t0 + Duration::from_secs(3);
    loop {
        let entry = out(&["ip", "-n", &x, "neigh", "show", EIP, "dev", "eth0"]);
        if entry.contains(&here) {
            eprintln!(
                "elastic IP bind → external ARP entry updated: {} ms",
                t0.elapsed().as_millis()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the external side still resolves {EIP} to the old host: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Rebound from a to c: a's established flow stops at once.
    let mut to_a = bed.connect(&x, EIP, 8001).await;
    assert_eq!(to_a.say("1").await, "a 1");
    plane
        .apply(state(3, &[(EIP, "10.0.0.6")]))
        .await
        .expect("apply 3");
    let after = to_a.say("2").await;
    assert!(
        after.starts_with("ERR"),
        "the moved address still reaches a: {after}"
    );
    let mut to_c = bed.connect(&x, EIP, 8001).await;
    assert_eq!(to_c.say("3").await, "c 3");
    let mut from_c = bed.connect(&c, GATEWAY, 7001).await;
    assert_eq!(from_c.say("4").await, "x 4");

    // Unbound: neither the VPC's namespace nor the host keeps an entry of the address
    // (c's flow out through it and the external flow in).
    plane.apply(state(4, &[])).await.expect("apply 4");
    for ns in [bed.vpc_ns(VNI_A), h.clone()] {
        let left = out(&["ip", "netns", "exec", &ns, "conntrack", "-L"]);
        assert!(!left.contains(EIP), "{ns} keeps flows of {EIP}:\n{left}");
    }
    plane.teardown().await;
}

/// Two VPCs with the same 10.0.0.0/24 on one host: the same UDP 5-tuple from both is two
/// conntrack entries on the host, one in each VPC's zone. An elastic IP is reached from
/// its own VPC (another guest, the owner itself: seen from the subnet's gateway) and from
/// another VPC on the same host (seen from the host's external address, as from outside).
#[tokio::test]
async fn vpcs_keep_apart_in_conntrack_and_reach_elastic_ips_on_their_own_host() {
    if !have_tools() {
        return;
    }
    let mut bed = Bed::new("zyk");
    let h = bed.host();
    let plane = bed.plane();
    plane
        .apply(state(1, &[(EIP, "10.0.0.5")]))
        .await
        .expect("apply");
    bed.attach("a", VNI_A, "10.0.0.5");
    bed.attach("b", VNI_B, "10.0.0.5");
    bed.attach("c", VNI_A, "10.0.0.6");
    let (a, b, c) = (bed.ns("a"), bed.ns("b"), bed.ns("c"));

    // Zones.
    let send = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.0.5", 5555))
s.sendto(b"x", ("10.0.0.1", 7777))
"#;
    for g in [&a, &b] {
        assert!(sh(&[
            "ip",
            "netns",
            "exec",
            g,
            "/usr/bin/python3",
            "-c",
            send
        ]));
    }
    let tracked = out(&["ip", "netns", "exec", &h, "conntrack", "-L"]);
    let mut zones: Vec<&str> = tracked
        .lines()
        .filter(|l| l.contains("src=10.0.0.5 dst=10.0.0.1 sport=5555 dport=7777"))
        .map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("zone="))
                .unwrap_or("no zone")
        })
        .collect();
    zones.sort_unstable();
    assert_eq!(zones, ["zone=7301", "zone=7302"], "{tracked}");

    // Hairpin.
    bed.serve(&a, "10.0.0.5", 8000);
    bed.ask_until(&c, EIP, 8000, "10.0.0.1").await;
    bed.ask_until(&a, EIP, 8000, "10.0.0.1").await;
    bed.ask_until(&b, EIP, 8000, HOST_EXT).await;
    // The namespace tells no guest to bypass it (an ICMP redirect for a hairpin flow).
    let vpc_a = bed.vpc_ns(VNI_A);
    for conf in ["all", "zd7301"] {
        let key = format!("net.ipv4.conf.{conf}.send_redirects");
        let v = out(&["ip", "netns", "exec", &vpc_a, "sysctl", "-n", &key]);
        assert_eq!(v.trim(), "0", "{key}");
    }
    plane.teardown().await;
}
