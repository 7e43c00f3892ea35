//! The transit link's pure parts (what a host holds, the diff, reading the kernel's JSON)
//! and a real run in network namespaces (no VM): two "hosts" joined by a veth pair as
//! their underlay, each running a data plane, with a VPC of two subnets whose guests on
//! different hosts and subnets reach each other (ping and TCP, both ways, the source
//! address kept), a second VPC with the same CIDRs that cannot reach them, same-subnet
//! traffic still bridged over the VPC's VXLAN, a restarted agent adopting it all, the
//! route of a NIC that went away removed, and teardown leaving nothing.

use super::*;
use crate::net::nat::bed::{out, Bed};
use crate::net::nat::tests::{have_nft, nft_required};
use crate::test_util::sh;
use std::time::{Duration, Instant};
use zy_compute::agent::{NetworkState, RemoteNicWire, SubnetWire};

fn remote(ip: &str, host: &str) -> RemoteNicWire {
    RemoteNicWire {
        ip: ip.into(),
        host: host.into(),
    }
}

/// A VPC with subnets 10.0.1.0/24 and 10.0.2.0/24 (no DHCP), its peers and its NICs on
/// other hosts.
fn vpc(vni: u32, peers: &[&str], remote: Vec<RemoteNicWire>) -> VpcWire {
    let subnet = |n: u8| SubnetWire {
        cidr: format!("10.0.{n}.0/24"),
        gateway: format!("10.0.{n}.1"),
        dns_servers: vec![],
        dhcp: false,
        hosts: vec![],
    };
    VpcWire {
        vni,
        peers: peers.iter().map(|p| p.to_string()).collect(),
        subnets: vec![subnet(1), subnet(2)],
        nat: None,
        remote,
    }
}

const H1: &str = "192.0.2.1";
const H2: &str = "192.0.2.2";

#[test]
fn a_host_routes_each_nic_elsewhere_to_its_host_and_skips_its_own() {
    let v = vpc(
        4096,
        &[H2],
        vec![
            remote("10.0.2.7", H2),
            remote("10.0.1.6", H2),
            remote("10.0.1.9", "192.0.2.3"),
            remote("10.0.2.9", H1),
        ],
    );
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("address");
    let p = plan(&v, ip(H1));
    assert_eq!(
        p.peers,
        BTreeMap::from([
            (ip(H2), "fa:5c:c0:00:02:02".to_string()),
            (ip("192.0.2.3"), "fa:5c:c0:00:02:03".to_string()),
        ])
    );
    assert_eq!(
        p.routes,
        BTreeMap::from([
            (ip("10.0.1.6"), ip(H2)),
            (ip("10.0.1.9"), ip("192.0.2.3")),
            (ip("10.0.2.7"), ip(H2)),
        ]),
        "a NIC said to be on this host is not routed away"
    );
    assert_eq!(plan(&vpc(4096, &[], vec![]), ip(H1)), Plan::default());
}

#[test]
fn the_diff_sets_what_is_missing_or_different_and_removes_the_rest() {
    let have = BTreeMap::from([(1, "a"), (2, "b"), (3, "c")]);
    let want = BTreeMap::from([(2, "b"), (3, "x"), (4, "d")]);
    let (set, remove) = diff(&have, &want);
    assert_eq!(set, vec![(3, "x"), (4, "d")]);
    assert_eq!(remove, vec![1]);
    let (set, remove) = diff(&want, &want);
    assert!(
        set.is_empty() && remove.is_empty(),
        "an ensure of the same is no change"
    );
}

#[test]
fn the_kernels_json_is_read_back() {
    let link = r#"[{"ifindex":5,"ifname":"zr4096","address":"fa:5c:c0:00:02:01",
        "linkinfo":{"info_kind":"vxlan","info_data":{"id":8392704,"local":"192.0.2.1","port":4789}}}]"#;
    assert_eq!(
        parse_vxlan(link),
        Some((
            8_392_704,
            Some(Ipv4Addr::new(192, 0, 2, 1)),
            "fa:5c:c0:00:02:01".into()
        ))
    );
    assert_eq!(
        parse_vxlan(r#"[{"ifname":"x","linkinfo":{"info_kind":"veth"}}]"#),
        None
    );
    assert_eq!(parse_vxlan("Device does not exist"), None);
    let fdb = r#"[{"mac":"fa:5c:c0:00:02:02","dst":"192.0.2.2","flags":[],"state":"permanent"},
        {"mac":"fa:5c:c0:00:02:01","flags":["self"],"state":"permanent"}]"#;
    assert_eq!(
        parse_fdb(fdb),
        BTreeMap::from([("fa:5c:c0:00:02:02".into(), Ipv4Addr::new(192, 0, 2, 2))])
    );
    let neigh = r#"[{"dst":"192.0.2.2","dev":"zr4096","lladdr":"fa:5c:c0:00:02:02","state":["PERMANENT"]},
        {"dst":"192.0.2.3","dev":"zr4096","lladdr":"fa:5c:c0:00:02:03","state":["STALE"]}]"#;
    assert_eq!(
        parse_neighbours(neigh),
        BTreeMap::from([(Ipv4Addr::new(192, 0, 2, 2), "fa:5c:c0:00:02:02".into())])
    );
    let routes = r#"[{"dst":"10.0.2.7","gateway":"192.0.2.2","dev":"zr4096","protocol":"158","scope":"link","flags":["onlink"]}]"#;
    assert_eq!(
        parse_routes(routes),
        BTreeMap::from([(Ipv4Addr::new(10, 0, 2, 7), Ipv4Addr::new(192, 0, 2, 2))])
    );
}

const VNI_V: u32 = 7401;
const VNI_W: u32 = 7402;

/// Whether `ns` gets an answer to one ping of `addr` within a second.
fn pings(ns: &str, addr: &str) -> bool {
    sh(&[
        "ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", addr,
    ])
}

fn ping_until(ns: &str, addr: &str) -> Duration {
    let t0 = Instant::now();
    while !pings(ns, addr) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{ns} cannot ping {addr}"
        );
    }
    t0.elapsed()
}

/// The transit routes (destination → next hop) in a VPC namespace.
fn transit_routes(ns: &str) -> BTreeMap<Ipv4Addr, Ipv4Addr> {
    parse_routes(&out(&[
        "ip",
        "-n",
        ns,
        "-j",
        "route",
        "show",
        "proto",
        ROUTE_PROTO,
    ]))
}

/// The whole story; needs root, iproute2, nftables (the conntrack zones), ping and
/// python3 (`ZY_REQUIRE_NFT` makes a missing nft a failure).
#[tokio::test]
async fn subnets_of_a_vpc_reach_each_other_across_hosts_and_no_other_vpc_does() {
    if !have_nft() {
        return;
    }
    let have_ping = ["/usr/bin/ping", "/bin/ping"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    assert!(have_ping || !nft_required(), "ping is required but missing");
    if !have_ping {
        eprintln!("ping is not installed: skipped");
        return;
    }
    let mut bed = Bed::empty("zyr");
    let (h1, h2) = (bed.add_ns("1"), bed.add_ns("2"));
    assert!(sh(&[
        "ip", "-n", &h1, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", &h2
    ]));
    for (h, a) in [(&h1, H1), (&h2, H2)] {
        let cidr = format!("{a}/24");
        assert!(sh(&["ip", "-n", h, "addr", "add", &cidr, "dev", "ul0"]));
        assert!(sh(&["ip", "-n", h, "link", "set", "ul0", "up"]));
        for vni in [VNI_V, VNI_W] {
            bed.made(names::dhcp_ns(&format!("{h}-"), vni));
        }
    }
    let (d1, d2) = (bed.dir("1"), bed.dir("2"));
    let plane =
        |d: &std::path::Path, h: &str, u: &str| DataPlane::new(d, Some(h.into()), u.parse().ok());
    let (p1, p2) = (plane(&d1, &h1, H1), plane(&d2, &h2, H2));

    // VPC V: a (10.0.1.5) on host 1; b (10.0.2.7) and e (10.0.1.6) on host 2.
    // VPC W, the same CIDRs: c (10.0.1.5) on host 1, d (10.0.2.8) on host 2.
    let st1 = |generation, v_remote: Vec<RemoteNicWire>| NetworkState {
        generation,
        vpcs: vec![
            vpc(VNI_V, &[H2], v_remote),
            vpc(VNI_W, &[H2], vec![remote("10.0.2.8", H2)]),
        ],
        ..Default::default()
    };
    let st2 = NetworkState {
        generation: 1,
        vpcs: vec![
            vpc(VNI_V, &[H1], vec![remote("10.0.1.5", H1)]),
            vpc(VNI_W, &[H1], vec![remote("10.0.1.5", H1)]),
        ],
        ..Default::default()
    };
    let both = || vec![remote("10.0.2.7", H2), remote("10.0.1.6", H2)];
    let t0 = Instant::now();
    p1.apply(st1(1, both())).await.expect("apply host 1");
    p2.apply(st2.clone()).await.expect("apply host 2");
    let applied = t0.elapsed();
    bed.attach_to(&h1, "a", VNI_V, "10.0.1.5", "10.0.1.1");
    bed.attach_to(&h2, "b", VNI_V, "10.0.2.7", "10.0.2.1");
    bed.attach_to(&h2, "e", VNI_V, "10.0.1.6", "10.0.1.1");
    bed.attach_to(&h1, "c", VNI_W, "10.0.1.5", "10.0.1.1");
    bed.attach_to(&h2, "d", VNI_W, "10.0.2.8", "10.0.2.1");
    let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(|w| bed.ns(w));

    // Subnet 1 on host 1 ↔ subnet 2 on host 2, both ways, ping and TCP, addresses kept.
    let answered = applied + ping_until(&a, "10.0.2.7");
    eprintln!(
        "cross-host inter-subnet: applied on both hosts {} ms, first ping answered {} ms",
        applied.as_millis(),
        answered.as_millis()
    );
    ping_until(&b, "10.0.1.5");
    bed.serve(&b, "10.0.2.7", 8000);
    bed.serve(&a, "10.0.1.5", 8000);
    bed.serve(&d, "10.0.2.8", 8000);
    bed.ask_until(&a, "10.0.2.7", 8000, "10.0.1.5").await;
    bed.ask_until(&b, "10.0.1.5", 8000, "10.0.2.7").await;
    // Same subnet across hosts: bridged over the VPC's VXLAN as before.
    ping_until(&a, "10.0.1.6");
    ping_until(&e, "10.0.1.5");

    // VPC W: its own transit link reaches its own d, never V's b (same CIDRs).
    bed.ask_until(&c, "10.0.2.8", 8000, "10.0.1.5").await;
    assert!(
        bed.ask(&c, "10.0.2.7", 8000, 1.0).await.starts_with("ERR"),
        "another VPC reached b"
    );
    assert!(!pings(&c, "10.0.2.7"), "another VPC pinged b");

    // Idempotent: applying the same again changes nothing, and a restarted agent
    // (a new data plane over the same directory) adopts it all.
    let ns1 = names::dhcp_ns(&format!("{h1}-"), VNI_V);
    let before = transit_routes(&ns1);
    assert_eq!(before.len(), 2, "{before:?}");
    let link_before = out(&["ip", "-n", &ns1, "-j", "link", "show", "dev", "zr7401"]);
    p1.apply(st1(1, both())).await.expect("apply host 1 again");
    drop(p1);
    let p1 = plane(&d1, &h1, H1);
    p1.adopt().await.expect("adopt");
    assert_eq!(transit_routes(&ns1), before);
    assert_eq!(
        out(&["ip", "-n", &ns1, "-j", "link", "show", "dev", "zr7401"]),
        link_before,
        "the transit device was made again"
    );
    bed.ask_until(&a, "10.0.2.7", 8000, "10.0.1.5").await;

    // b's NIC goes away: its route goes, e's stays; a reaches b no more.
    p1.apply(st1(2, vec![remote("10.0.1.6", H2)]))
        .await
        .expect("apply host 1, b gone");
    let after = transit_routes(&ns1);
    assert_eq!(
        after.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        vec!["10.0.1.6"],
        "{after:?}"
    );
    assert!(!pings(&a, "10.0.2.7"), "a still reaches b");
    ping_until(&a, "10.0.1.6");

    // No NIC of V elsewhere: the transit device goes (the namespace still routes here).
    p1.apply(st1(3, vec![])).await.expect("apply host 1, alone");
    let links = out(&["ip", "-n", &ns1, "-br", "link", "show"]);
    assert!(!links.contains("zr7401"), "{links}");

    // Teardown: no namespace, no transit device anywhere.
    p1.teardown().await;
    p2.teardown().await;
    let netns = out(&["ip", "netns", "list"]);
    assert!(!netns.contains(&format!("{h1}-zd")), "{netns}");
    assert!(!netns.contains(&format!("{h2}-zd")), "{netns}");
    for h in [&h1, &h2] {
        let links = out(&["ip", "-n", h, "-br", "link", "show"]);
        assert!(!links.contains("zr") && !links.contains("zb74"), "{links}");
    }
}
