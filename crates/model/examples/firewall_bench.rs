//! Security-group enforcement benchmarks on this machine (root, nftables, iproute2,
//! iperf3; outside CI): `cargo run --release -p zy-model --example firewall_bench`.
//!
//! 1. A rule change reaching 10 hosts: 10 network namespaces stand for 10 hosts, each
//!    with 10 NICs of the changed group; the time from the change (rendering each host's
//!    rule set) until all 10 have loaded it with `nft -f` (in parallel, as the control
//!    plane pushes to agents in parallel).
//! 2. Guest-to-guest TCP throughput through a bridge with `br_netfilter` and the rule set,
//!    with the receiving NIC's group holding no rules versus 1,000 rules (the allowing
//!    rule last, so a new flow walks all of them): iperf3 for 5 s each.
//!
//! Namespaces and links carry the `zyb<pid>` prefix and are removed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zy_model::id::{NicId, SecurityGroupId};
use zy_model::network::nft::{bridge_name, render, HostFirewall, NicFirewall};
use zy_model::network::*;

fn sh(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Namespaces(Vec<String>);
impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn rule(port: u16) -> SecurityRule {
    SecurityRule {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        port_min: Some(port),
        port_max: Some(port),
        remote_cidr: Some("10.0.0.0/8".into()),
        remote_group_id: None,
        description: String::new(),
    }
}

fn host(vni: i64, nics: u32, rules: &[SecurityRule]) -> HostFirewall {
    let mut all = default_rules();
    all.extend(rules.iter().cloned());
    HostFirewall {
        nics: (0..nics)
            .map(|i| {
                let nic = NicId::new();
                NicFirewall {
                    nic,
                    vni,
                    mac: mac_for(nic),
                    ip: u32::from(std::net::Ipv4Addr::new(10, 0, 0, 10 + i as u8)),
                    rules: all.clone(),
                }
            })
            .collect(),
        groups: BTreeMap::<SecurityGroupId, BTreeSet<u32>>::new(),
    }
}

fn load(ns: &str, ruleset: &str) {
    let path = std::env::temp_dir().join(format!("{ns}.nft"));
    std::fs::write(&path, ruleset).expect("write");
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "nft",
        "-f",
        path.to_str().expect("path"),
    ]);
    let _ = std::fs::remove_file(&path);
}

fn change_to_ten_hosts(p: &str) {
    let hosts: Vec<String> = (0..10).map(|i| format!("{p}h{i}")).collect();
    for h in &hosts {
        sh(&["ip", "netns", "add", h]);
    }
    let _g = Namespaces(hosts.clone());
    let before: Vec<HostFirewall> = hosts.iter().map(|_| host(4096, 10, &[rule(22)])).collect();
    for (h, fw) in hosts.iter().zip(&before) {
        load(h, &render(fw));
    }
    let mut times = Vec::new();
    for round in 0..5u16 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (h, fw) in hosts.iter().zip(&before) {
                s.spawn(move || {
                    let mut fw = fw.clone();
                    for n in &mut fw.nics {
                        n.rules.push(rule(8000 + round));
                    }
                    load(h, &render(&fw));
                });
            }
        });
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "rule change enforced on 10 hosts (10 NICs each): median {:?}, worst {:?} over 5 changes",
        times[2], times[4]
    );
}

fn iperf(p: &str, rules: usize) -> f64 {
    let (h, a, b) = (format!("{p}H"), format!("{p}A"), format!("{p}B"));
    for n in [&h, &a, &b] {
        sh(&["ip", "netns", "add", n]);
    }
    let _g = Namespaces(vec![h.clone(), a.clone(), b.clone()]);
    let vni = 4096;
    let br = bridge_name(vni);
    let nic = NicId::new();
    let tap = tap_name(nic);
    sh(&[
        "ip",
        "netns",
        "exec",
        &h,
        "sysctl",
        "-qw",
        "net.bridge.bridge-nf-call-iptables=1",
    ]);
    sh(&["ip", "-n", &h, "link", "add", &br, "type", "bridge"]);
    sh(&["ip", "-n", &h, "link", "set", &br, "up"]);
    sh(&[
        "ip", "-n", &h, "link", "add", &tap, "type", "veth", "peer", "name", "eth0", "netns", &a,
    ]);
    sh(&[
        "ip", "-n", &h, "link", "add", "zybc", "type", "veth", "peer", "name", "eth0", "netns", &b,
    ]);
    for port in [tap.as_str(), "zybc"] {
        sh(&["ip", "-n", &h, "link", "set", port, "master", &br, "up"]);
    }
    let mac = mac_for(nic);
    sh(&["ip", "-n", &a, "link", "set", "eth0", "address", &mac, "up"]);
    sh(&["ip", "-n", &a, "addr", "add", "10.0.0.5/24", "dev", "eth0"]);
    sh(&["ip", "-n", &b, "link", "set", "eth0", "up"]);
    sh(&["ip", "-n", &b, "addr", "add", "10.0.0.9/24", "dev", "eth0"]);
    // `rules` non-matching rules, then the one that allows iperf3's port.
    let mut rs: Vec<SecurityRule> = (0..rules).map(|i| rule(10_000 + i as u16)).collect();
    rs.push(rule(5201));
    let fw = HostFirewall {
        nics: vec![NicFirewall {
            nic,
            vni,
            mac,
            ip: u32::from(std::net::Ipv4Addr::new(10, 0, 0, 5)),
            rules: rs,
        }],
        groups: BTreeMap::new(),
    };
    load(&h, &render(&fw));
    let mut server = Command::new("ip")
        .args(["netns", "exec", &a, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    let out = sh(&[
        "ip", "netns", "exec", &b, "iperf3", "-c", "10.0.0.5", "-t", "5", "-J",
    ]);
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 json");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e9
}

fn main() {
    let p = format!("zyb{}", std::process::id());
    change_to_ten_hosts(&p);
    let none = iperf(&p, 0);
    let many = iperf(&p, 1000);
    println!(
        "iperf3 guest to guest through the bridge: {none:.2} Gbit/s with the allowing rule only, {many:.2} Gbit/s with 1,000 rules before it ({:+.1} %)",
        (many - none) / none * 100.0
    );
}
