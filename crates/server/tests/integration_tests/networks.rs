//! Virtual networks: bad inputs get a clear 4xx naming the field, subnets overlap across
//! VPCs but never inside one, the platform's address allocation never hands one address to
//! two NICs (also under concurrency) and fills a subnet exactly, rule changes are
//! conditional, a host's rule set follows its NICs' groups, elastic IPs bind 1:1, an
//! address maps back to its owner, and deleting an instance frees its addresses.

use crate::both_databases;
use crate::common::*;
use crate::world::World;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn field(b: &Value) -> &str {
    b["error"]["details"]["field"].as_str().unwrap_or_default()
}

async fn networks_refuse_bad_input_and_allocate_addresses_exactly(db: Db) {
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let (vpc, _) = w.vpc().await; // holds 10.1.0.0/24

    // Bad CIDRs and overlaps inside one VPC: 422 with the field named.
    for (cidr, why) in [
        ("10.1.0.0/33", "prefix"),
        ("10.1.0.7/24", "host bits"),
        ("banana", "garbage"),
        ("10.1.0.0/16", "overlap"),
        ("10.1.0.128/25", "overlap"),
    ] {
        let (st, b) = a
            .post(
                &format!("/v1/vpcs/{vpc}/subnets"),
                json!({ "name": "x", "cidr": cidr }),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {b}");
        assert_eq!(field(&b), "cidr", "{why}: {b}");
    }
    let (st, b) = a
        .post(
            &format!("/v1/vpcs/{vpc}/subnets"),
            json!({ "name": "gw", "cidr": "10.9.0.0/24", "gateway": "10.8.0.1" }),
        )
        .await;
    assert_eq!(
        (st, field(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "gateway"),
        "{b}"
    );
    // The same CIDR in another VPC is fine (overlap across VPCs is allowed).
    let (other, _) = w.vpc().await;
    let (st, b) = a.get(&format!("/v1/vpcs/{other}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(b["subnets"][0]["cidr"], "10.1.0.0/24");
    assert!(b["vni"].as_i64().expect("vni") >= 4096);

    // A /29 holds 5 addresses besides its gateway: handed out lowest first, then 409.
    let (st, sn) = a
        .post(
            &format!("/v1/vpcs/{vpc}/subnets"),
            json!({ "name": "small", "cidr": "10.5.0.0/29" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sn}");
    let sn = sn["id"].as_str().expect("subnet").to_string();
    let nics = format!("/v1/instances/{}/nics", w.instance);
    let (st, b) = a
        .post(&nics, json!({ "subnet_id": sn, "ip": "10.5.0.1" }))
        .await;
    assert_eq!(
        (st, field(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "ip"),
        "the gateway: {b}"
    );
    let (st, b) = a
        .post(&nics, json!({ "subnet_id": sn, "ip": "10.6.0.3" }))
        .await;
    assert_eq!(
        (st, field(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "ip"),
        "outside: {b}"
    );
    let (st, b) = a
        .post(&nics, json!({ "subnet_id": sn, "ip": "10.5.0.4" }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, b) = a
        .post(&nics, json!({ "subnet_id": sn, "ip": "10.5.0.4" }))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "taken: {b}");
    // Four more concurrently: never one address twice, and the subnet is then full.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (s, path, body) = (a.clone(), nics.clone(), json!({ "subnet_id": sn }));
        tasks.push(tokio::spawn(async move { s.post(&path, body).await }));
    }
    let mut got = Vec::new();
    for t in tasks {
        let (st, b) = t.await.expect("task");
        if st == StatusCode::CREATED {
            got.push(b["ip"].as_str().expect("ip").to_string());
        } else {
            assert_eq!(st, StatusCode::CONFLICT, "{b}");
        }
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 4, "the four free addresses, each once: {got:?}");
    for ip in ["10.5.0.2", "10.5.0.3", "10.5.0.5", "10.5.0.6"] {
        assert!(got.contains(&ip.to_string()), "{ip} in {got:?}");
    }
    let (st, b) = a.post(&nics, json!({ "subnet_id": sn })).await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["details"]["reason"], "subnet_full");
    // A subnet in use is not deleted.
    let (st, _) = a.delete(&format!("/v1/subnets/{sn}")).await;
    assert_eq!(st, StatusCode::CONFLICT);

    // Security groups: bad rules and unknown remote groups are 422; a stale generation 409.
    let sg = w.security_group().await;
    let rules = format!("/v1/security-groups/{sg}/rules");
    for (rule, f) in [
        (
            json!({ "direction": "ingress", "protocol": "tcp", "port_min": 9000, "port_max": 80 }),
            "rules[0].port_max",
        ),
        (
            json!({ "direction": "ingress", "protocol": "icmp", "port_min": 1 }),
            "rules[0].port_min",
        ),
        (
            json!({ "direction": "ingress", "protocol": "tcp", "remote_cidr": "300.0.0.0/8" }),
            "rules[0].remote_cidr",
        ),
        (
            json!({ "direction": "ingress", "protocol": "tcp", "remote_group_id": "0190f3a0-0000-7000-8000-000000000000" }),
            "rules[0].remote_group_id",
        ),
    ] {
        let (st, b) = a
            .put(&rules, json!({ "generation": 1, "rules": [rule] }))
            .await;
        assert_eq!(
            (st, field(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, f),
            "{b}"
        );
    }
    let (st, b) = a
        .put(
            &rules,
            json!({ "generation": 1, "rules": [{ "direction": "ingress", "protocol": "sctp" }] }),
        )
        .await;
    assert!(st.is_client_error(), "an unknown protocol: {st} {b}");
    let web = w.security_group().await;
    let body = json!({ "generation": 1, "rules": [
        { "direction": "ingress", "protocol": "tcp", "port_min": 8080 },
        { "direction": "ingress", "protocol": "icmp", "remote_group_id": web },
        { "direction": "egress", "protocol": "any", "remote_cidr": "0.0.0.0/0" },
    ] });
    let (st, b) = a.put(&rules, body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["generation"], 2);
    let (st, b) = a.put(&rules, body).await;
    assert_eq!(st, StatusCode::CONFLICT, "stale generation: {b}");
    // A group named by another group's rule is not deleted.
    let (st, _) = a.delete(&format!("/v1/security-groups/{web}")).await;
    assert_eq!(st, StatusCode::CONFLICT);

    // The NIC at 10.5.0.4 joins the group: the host's rule set enforces it.
    let (_, list) = a.get(&nics).await;
    let nic = list
        .as_array()
        .expect("nics")
        .iter()
        .find(|n| n["ip"] == "10.5.0.4")
        .expect("the fixed NIC")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (st, b) = a
        .put(
            &format!("/v1/nics/{nic}/security-groups"),
            json!({ "security_group_ids": [sg] }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (_, inst) = a.get(&format!("/v1/instances/{}", w.instance)).await;
    let host = inst["host_id"].as_str().expect("placed").to_string();
    let (st, fw) = a.get(&format!("/v1/hosts/{host}/firewall")).await;
    assert_eq!(st, StatusCode::OK, "{fw}");
    let text = fw["ruleset"].as_str().expect("ruleset");
    assert!(text.contains("ip daddr 10.5.0.4 jump in_"), "{text}");
    assert!(text.contains("tcp dport 8080 accept"), "{text}");

    // Elastic IPs: bound 1:1; the address maps back to the instance either way.
    let eip = w.elastic_ip(false).await;
    let (st, b) = a
        .post(
            &format!("/v1/elastic-ips/{eip}/bind"),
            json!({ "nic_id": nic }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let addr: std::net::Ipv4Addr = b["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("ipv4");
    let (st, _) = a.delete(&format!("/v1/elastic-ips/{eip}")).await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a bound elastic IP is not released"
    );
    let owner = zy_server::app::networks::owner_of_address(ts.store(), addr)
        .await
        .expect("lookup")
        .expect("owned");
    assert_eq!(
        (owner.instance_id.to_string(), owner.via.as_str()),
        (w.instance.clone(), "elastic_ip")
    );
    let owner =
        zy_server::app::networks::owner_of_address(ts.store(), "10.5.0.4".parse().expect("ip"))
            .await
            .expect("lookup")
            .expect("owned");
    assert_eq!(owner.instance_id.to_string(), w.instance);
    assert_eq!(owner.project_id.to_string(), w.p);

    // Deleting the instance frees its addresses and unbinds the elastic IP.
    let (st, b) = a.delete(&format!("/v1/instances/{}", w.instance)).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, i) = a.get(&format!("/v1/instances/{}", w.instance)).await;
        if i["state"] == "deleted" || i["error"]["code"] == "not_found" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never deleted: {i}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (st, _) = a.delete(&format!("/v1/subnets/{sn}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "the subnet is free again");
    let (_, e) = a.get("/v1/elastic-ips").await;
    let e = e
        .as_array()
        .expect("eips")
        .iter()
        .find(|x| x["id"] == eip.as_str())
        .expect("eip")
        .clone();
    assert!(e.get("nic_id").is_none(), "{e}");
    assert!(zy_server::app::networks::owner_of_address(ts.store(), addr)
        .await
        .expect("lookup")
        .is_none());

    // A project whose instances are gone is deleted with its networks.
    let d = w.d.clone();
    let pr = project(a, &d, "临时项目").await;
    let (st, v) = a
        .post("/v1/vpcs", json!({ "project_id": pr, "name": "临时网" }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let vid = v["id"].as_str().expect("vpc").to_string();
    let (st, _) = a
        .post(
            &format!("/v1/vpcs/{vid}/subnets"),
            json!({ "name": "s", "cidr": "10.3.0.0/24" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = a
        .post(
            "/v1/security-groups",
            json!({ "project_id": pr, "name": "g" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, b) = a.delete(&format!("/v1/projects/{pr}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
    let (st, _) = a.get(&format!("/v1/vpcs/{vid}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
both_databases!(networks_refuse_bad_input_and_allocate_addresses_exactly);

/// NICs asked for in the instance create body: allocated with the instances in the same
/// transaction; bad ones refused with a 422 naming the item, nothing created.
async fn instances_are_created_with_their_nics(db: Db) {
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let (_, sn) = w.vpc().await;
    let sg = w.security_group().await;
    let body = |name: &str, count: u32, nics: Value| {
        json!({ "project_id": w.p, "zone_id": w.zone, "name": name, "flavor": "1C2G",
                "image": "CentOS-7.9", "count": count, "start": false, "nics": nics })
    };
    let (st, b) = a
        .post(
            "/v1/instances",
            body("withnic", 1, json!([{ "subnet_id": sn, "ip": "10.1.0.9", "security_group_ids": [sg] }, { "subnet_id": sn }])),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let id = b["items"][0]["id"].as_str().expect("id").to_string();
    let (st, nics) = a.get(&format!("/v1/instances/{id}/nics")).await;
    assert_eq!(st, StatusCode::OK, "{nics}");
    let nics = nics.as_array().cloned().unwrap_or_default();
    assert_eq!(nics.len(), 2, "{nics:?}");
    assert_eq!(nics[0]["ip"], "10.1.0.9", "{nics:?}");
    assert_eq!(nics[0]["security_group_ids"], json!([sg]), "{nics:?}");
    assert_eq!(nics[1]["ip"], "10.1.0.2", "{nics:?}");
    // A batch gets one address each.
    let (st, b) = a
        .post(
            "/v1/instances",
            body("batch", 2, json!([{ "subnet_id": sn }])),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let before = b["items"].as_array().map(Vec::len);
    assert_eq!(before, Some(2), "{b}");

    let missing = "0190a5da-0000-7000-8000-000000000000";
    for (count, nics, want) in [
        (1, json!([{ "subnet_id": missing }]), "nics[0].subnet_id"),
        (
            1,
            json!([{ "subnet_id": sn, "ip": "10.9.9.9" }]),
            "nics[0].ip",
        ),
        (
            1,
            json!([{ "subnet_id": sn, "ip": "banana" }]),
            "nics[0].ip",
        ),
        (
            2,
            json!([{ "subnet_id": sn, "ip": "10.1.0.50" }]),
            "nics[0].ip",
        ),
        (
            1,
            json!([{ "subnet_id": sn, "security_group_ids": [missing] }]),
            "nics[0].security_group_ids[0]",
        ),
    ] {
        let (st, b) = a.post("/v1/instances", body("bad", count, nics)).await;
        assert_eq!(
            (st, field(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, want),
            "{b}"
        );
    }
    // A taken address: a conflict, and no instance was left behind.
    let (st, b) = a
        .post(
            "/v1/instances",
            body("taken", 1, json!([{ "subnet_id": sn, "ip": "10.1.0.9" }])),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    let (_, list) = a.get(&format!("/v1/instances?project_id={}", w.p)).await;
    assert!(!list.to_string().contains("\"taken\""), "{list}");
    let (st, b) = a
        .post("/v1/instances", json!({ "project_id": w.p, "name": "x", "flavor": "1C2G", "image": "CentOS-7.9", "nics": [{ "subnet_id": sn, "mac": "x" }] }))
        .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {b}"
    );
}
both_databases!(instances_are_created_with_their_nics);

/// Network namespaces made by one test: deleted when dropped, also after a failure.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

fn sh(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(args[0])
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

/// Whether `from` can open a TCP connection to `ip:port` within a second.
fn connects(from: &str, ip: &str, port: u16) -> bool {
    let probe = format!("echo > /dev/tcp/{ip}/{port}");
    std::process::Command::new("ip")
        .args(["netns", "exec", from, "timeout", "1", "bash", "-c", &probe])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The kernel enforces what the control plane decides: a host (a network namespace with
/// the VPC's bridge) loads the rule set `GET /v1/hosts/{id}/firewall` gives for a NIC whose
/// group opens TCP 8080; from another address on the bridge 8080 connects and 8081 is
/// dropped and counted; after a rule change the new rule set opens 8081 too. Needs root,
/// nftables and iproute2 (`cargo xtask test` installs them and sets `ZY_REQUIRE_NFT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_rule_set_lets_through_exactly_what_the_groups_allow() {
    let usable = std::path::Path::new("/usr/sbin/nft").exists()
        && std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success())
        && is_root();
    if !usable {
        assert!(
            std::env::var_os("ZY_REQUIRE_NFT").is_none(),
            "root, nftables and iproute2 are required"
        );
        eprintln!("needs root, nftables and iproute2: skipped");
        return;
    }
    let ts = TestServer::start(Db::Sqlite).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let (vpc, _) = w.vpc().await;
    let (st, sn) = a
        .post(
            &format!("/v1/vpcs/{vpc}/subnets"),
            json!({ "name": "web", "cidr": "10.77.0.0/24" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sn}");
    let sg = w.security_group().await;
    let set_rules = |generation: i64, ports: &[u16]| {
        let mut rules = vec![json!({ "direction": "egress", "protocol": "any" })];
        for p in ports {
            rules.push(json!({ "direction": "ingress", "protocol": "tcp", "port_min": p }));
        }
        json!({ "generation": generation, "rules": rules })
    };
    let (st, b) = a
        .put(
            &format!("/v1/security-groups/{sg}/rules"),
            set_rules(1, &[8080]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, nic) = a
        .post(
            &format!("/v1/instances/{}/nics", w.instance),
            json!({ "subnet_id": sn["id"], "security_group_ids": [sg] }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{nic}");
    let (_, inst) = a.get(&format!("/v1/instances/{}", w.instance)).await;
    let host = inst["host_id"].as_str().expect("placed").to_string();
    let nic_id: zy_model::id::NicId = nic["id"].as_str().expect("id").parse().expect("nic id");
    let (_, vpc_body) = a.get(&format!("/v1/vpcs/{vpc}")).await;
    let vni = vpc_body["vni"].as_i64().expect("vni");
    let (tap, bridge) = (
        zy_model::network::tap_name(nic_id),
        zy_model::network::nft::bridge_name(vni),
    );
    let ip = nic["ip"].as_str().expect("ip").to_string();
    let mac = nic["mac"].as_str().expect("mac").to_string();

    // The host and two guests: the NIC's namespace behind its "tap" (a veth named like
    // one), and a client elsewhere on the bridge.
    let p = format!("zyt{}", std::process::id());
    let (h, g, c) = (format!("{p}h"), format!("{p}g"), format!("{p}c"));
    for n in [&h, &g, &c] {
        sh(&["ip", "netns", "add", n]);
    }
    let _guard = Namespaces(vec![h.clone(), g.clone(), c.clone()]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &h,
        "sysctl",
        "-qw",
        "net.bridge.bridge-nf-call-iptables=1",
    ]);
    sh(&["ip", "-n", &h, "link", "add", &bridge, "type", "bridge"]);
    sh(&["ip", "-n", &h, "link", "set", &bridge, "up"]);
    sh(&[
        "ip", "-n", &h, "link", "add", &tap, "type", "veth", "peer", "name", "eth0", "netns", &g,
    ]);
    sh(&[
        "ip", "-n", &h, "link", "add", "zytc", "type", "veth", "peer", "name", "eth0", "netns", &c,
    ]);
    for port in [tap.as_str(), "zytc"] {
        sh(&["ip", "-n", &h, "link", "set", port, "master", &bridge, "up"]);
    }
    sh(&["ip", "-n", &g, "link", "set", "eth0", "address", &mac, "up"]);
    sh(&[
        "ip",
        "-n",
        &g,
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &c, "link", "set", "eth0", "up"]);
    sh(&[
        "ip",
        "-n",
        &c,
        "addr",
        "add",
        "10.77.0.200/24",
        "dev",
        "eth0",
    ]);
    // The guest listens on 8080 and 8081 (and says so once both are bound).
    let server = "import socket,sys,time\nss=[]\nfor p in (8080,8081):\n s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',p));s.listen(16);ss.append(s)\nprint('ready',flush=True)\ntime.sleep(30)\n";
    let mut listener = std::process::Command::new("ip")
        .args(["netns", "exec", &g, "python3", "-c", server])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("listener");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(listener.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("ready line");
    assert_eq!(line.trim(), "ready");

    let apply = |ruleset: &str| {
        let path = std::env::temp_dir().join(format!("{p}.nft"));
        std::fs::write(&path, ruleset).expect("write rule set");
        sh(&[
            "ip",
            "netns",
            "exec",
            &h,
            "nft",
            "-f",
            path.to_str().expect("path"),
        ]);
        let _ = std::fs::remove_file(&path);
    };
    let (st, fw) = a.get(&format!("/v1/hosts/{host}/firewall")).await;
    assert_eq!(st, StatusCode::OK, "{fw}");
    apply(fw["ruleset"].as_str().expect("ruleset"));
    assert!(connects(&c, &ip, 8080), "8080 is allowed");
    assert!(!connects(&c, &ip, 8081), "8081 is not");
    let counters = sh(&["ip", "netns", "exec", &h, "nft", "list", "counters"]);
    let counters = String::from_utf8_lossy(&counters.stdout).to_string();
    assert!(
        !counters.contains("packets 0 "),
        "the drop was counted: {counters}"
    );

    // A rule change: the next rule set opens 8081 as well.
    let (st, b) = a
        .put(
            &format!("/v1/security-groups/{sg}/rules"),
            set_rules(2, &[8080, 8081]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (_, fw) = a.get(&format!("/v1/hosts/{host}/firewall")).await;
    apply(fw["ruleset"].as_str().expect("ruleset"));
    assert!(connects(&c, &ip, 8081), "8081 is allowed now");
    assert!(connects(&c, &ip, 8080), "and 8080 still");
    let _ = listener.kill();
    let _ = listener.wait();
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The hosts' NAT duties in the pushed state: every VPC on a host of a zone with an
/// external network goes out through it; a bound elastic IP goes only to the host its
/// NIC's instance runs on (so a move takes it along) and leaves with the unbind.
async fn elastic_ips_are_sent_to_the_host_of_their_nic_only(db: Db) {
    use std::collections::HashMap;
    use zy_model::id::HostId;
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let eip = w.elastic_ip(true).await;
    let listed = || async {
        let (_, list) = a.get(&format!("/v1/elastic-ips?project_id={}", w.p)).await;
        list.as_array()
            .and_then(|l| l.iter().find(|x| x["id"] == eip.as_str()))
            .cloned()
            .expect("listed")
    };
    let e = listed().await;
    let address = e["address"].as_str().expect("address").to_string();
    let (_, nics) = a.get(&format!("/v1/instances/{}/nics", w.instance)).await;
    let nic = nics
        .as_array()
        .and_then(|l| l.iter().find(|n| n["id"] == e["nic_id"]))
        .cloned()
        .expect("the bound NIC");
    let private = nic["ip"].as_str().expect("ip").to_string();
    let (_, inst) = a.get(&format!("/v1/instances/{}", w.instance)).await;
    let host: uuid::Uuid = inst["host_id"]
        .as_str()
        .expect("placed")
        .parse()
        .expect("id");
    // The API says where the binding is applied.
    assert_eq!(e["host_id"], inst["host_id"], "{e}");
    assert_eq!(e["host_name"], inst["host_name"], "{e}");
    assert_eq!(e["instance_id"], w.instance.as_str(), "{e}");
    let store = ts.store();
    let state = |h: uuid::Uuid| async move {
        zy_server::app::dataplane::host_state(store, HostId(h), &HashMap::new())
            .await
            .expect("state")
    };
    let st = state(host).await;
    let x = st.external.as_ref().expect("the zone's external network");
    assert_eq!(
        (x.cidr.as_str(), x.host_interface.as_str()),
        ("198.18.0.0/24", "br-ext")
    );
    assert!(st.vpcs.iter().all(|v| v.nat.is_some()), "{st:?}");
    let bound: Vec<(String, String)> = st
        .vpcs
        .iter()
        .flat_map(|v| v.nat.iter().flat_map(|n| n.eips.iter()))
        .map(|e| (e.eip.clone(), e.ip.clone()))
        .collect();
    assert_eq!(bound, vec![(address.clone(), private)], "{st:?}");
    // Moved to another host (as a migration would), the binding moves with it.
    let other = uuid::Uuid::parse_str(&w.spare_host().await).expect("host id");
    let instance = w.instance.as_str();
    let set_host = |h: uuid::Uuid| async move {
        sqlx::query("UPDATE instances SET host_id = $1 WHERE id = $2")
            .bind(h.to_string())
            .bind(instance)
            .execute(store.pool())
            .await
            .expect("move");
    };
    set_host(other).await;
    let eips_on = |st: &zy_compute::agent::NetworkState| {
        st.vpcs
            .iter()
            .flat_map(|v| v.nat.iter().flat_map(|n| n.eips.iter()))
            .count()
    };
    assert_eq!(eips_on(&state(host).await), 0);
    // The spare host's zone has no external network: no NAT there.
    let there = state(other).await;
    assert!(there.external.is_none() && there.vpcs.iter().all(|v| v.nat.is_none()));
    let moved = listed().await;
    assert_eq!(moved["host_id"], other.to_string(), "{moved}");
    set_host(host).await;
    assert_eq!(eips_on(&state(host).await), 1);
    let (st, b) = a
        .post(&format!("/v1/elastic-ips/{eip}/unbind"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(
        b.get("host_id").is_none() && b.get("nic_id").is_none(),
        "{b}"
    );
    let st = state(host).await;
    assert_eq!(eips_on(&st), 0, "{st:?}");
    assert!(st.external.is_some());
    // An old agent (strict about fields) still takes a push without NAT duties: the new
    // fields are left out of the JSON when absent.
    let plain = serde_json::to_value(&there).expect("json");
    assert!(plain.get("external").is_none(), "{plain}");
    assert!(plain["vpcs"]
        .as_array()
        .is_some_and(|v| v.iter().all(|v| v.get("nat").is_none())));
}
both_databases!(elastic_ips_are_sent_to_the_host_of_their_nic_only);

/// A host's own addresses on an external network (its agent reports them in the
/// heartbeat) are never handed out as elastic IPs: allocation skips them like the gateway.
async fn hosts_own_addresses_are_never_handed_out_as_elastic_ips(db: Db) {
    use zy_compute::agent::{HostCapacity, HostLoad, HostReport};
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let host = w.spare_host().await;
    let report = HostReport {
        host_id: host.parse().expect("host id"),
        capacity: HostCapacity {
            vcpus: 8,
            memory_mib: 16384,
            disk_gib: 500,
            disk_free_gib: 400,
            accel: "kvm".into(),
            qemu_version: "8.2.0".into(),
        },
        agent_version: "test".into(),
        vms: vec![],
        load: HostLoad::default(),
        lease_left_ms: None,
        fenced: 0,
        underlay: None,
        addresses: ["198.18.0.2", "198.18.0.3", "10.9.9.9"]
            .map(String::from)
            .to_vec(),
    };
    let now = zy_model::time::Timestamp::now().0;
    sqlx::query(
        "INSERT INTO agents (host_id, address, cert_pem, accel, joined_at, last_seen, report) \
         VALUES ($1, '127.0.0.1:1', '', 'kvm', $2, $2, $3)",
    )
    .bind(&host)
    .bind(now)
    .bind(serde_json::to_string(&report).expect("report"))
    .execute(ts.store().pool())
    .await
    .expect("agent");
    let x = w.external_network().await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let (st, b) = a
            .post(
                "/v1/elastic-ips",
                json!({ "project_id": w.p, "external_network_id": x }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        got.push(b["address"].as_str().expect("address").to_string());
    }
    assert_eq!(got, ["198.18.0.4", "198.18.0.5"]);
}
both_databases!(hosts_own_addresses_are_never_handed_out_as_elastic_ips);

/// Routing between subnets across hosts in the pushed state: each host of a VPC is told
/// the VPC's NICs on the other hosts with those hosts' underlay addresses, so a NIC
/// appearing, moving or going away on one host changes the state (and so the digest and
/// generation) of every other host of the VPC; a host without a known underlay is left
/// out; a VPC at the largest VXLAN number refuses a new VPC (409) rather than hand out a
/// transit link's number.
async fn each_host_of_a_vpc_is_told_its_nics_on_the_other_hosts(db: Db) {
    use std::collections::HashMap;
    use zy_compute::agent::RemoteNicWire;
    use zy_model::id::HostId;
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let (vpc, sn1) = w.vpc().await;
    let (st, sn2) = a
        .post(
            &format!("/v1/vpcs/{vpc}/subnets"),
            json!({ "name": "sn2", "cidr": "10.1.1.0/24" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sn2}");
    let (_, v) = a.get(&format!("/v1/vpcs/{vpc}")).await;
    let vni = v["vni"].as_u64().expect("vni") as u32;
    let other = w.instance_in("running").await;
    let nic = |instance: String, sn: Value| async move {
        let (st, b) = a
            .post(
                &format!("/v1/instances/{instance}/nics"),
                json!({ "subnet_id": sn }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        (
            b["id"].as_str().expect("id").to_string(),
            b["ip"].as_str().expect("ip").to_string(),
        )
    };
    let (_, ip1) = nic(w.instance.clone(), json!(sn1)).await;
    let (nic2, ip2) = nic(other.clone(), sn2["id"].clone()).await;
    let host_of = |i: String| async move {
        let (_, b) = a.get(&format!("/v1/instances/{i}")).await;
        uuid::Uuid::parse_str(b["host_id"].as_str().expect("placed")).expect("host id")
    };
    let h1 = host_of(w.instance.clone()).await;
    // The second instance runs on a host of its own (as placement or a migration could).
    let h2 = uuid::Uuid::parse_str(&w.spare_host().await).expect("host id");
    let store = ts.store();
    sqlx::query("UPDATE instances SET host_id = $1 WHERE id = $2")
        .bind(h2.to_string())
        .bind(&other)
        .execute(store.pool())
        .await
        .expect("move");
    let underlays: HashMap<HostId, String> = [(h1, "192.0.2.1"), (h2, "192.0.2.2")]
        .into_iter()
        .map(|(h, u)| (HostId(h), u.to_string()))
        .collect();
    let remote_on = |h: uuid::Uuid, underlays: HashMap<HostId, String>| async move {
        let st = zy_server::app::dataplane::host_state(store, HostId(h), &underlays)
            .await
            .expect("state");
        st.vpcs
            .iter()
            .find(|x| x.vni == vni)
            .map(|x| x.remote.clone())
            .unwrap_or_default()
    };
    let r = |ip: &str, host: &str| RemoteNicWire {
        ip: ip.into(),
        host: host.into(),
    };
    assert_eq!(
        remote_on(h1, underlays.clone()).await,
        vec![r(&ip2, "192.0.2.2")]
    );
    assert_eq!(
        remote_on(h2, underlays.clone()).await,
        vec![r(&ip1, "192.0.2.1")]
    );
    assert!(
        remote_on(h1, HashMap::new()).await.is_empty(),
        "a host whose underlay is unknown cannot be reached"
    );
    // The NIC goes away: the other host is no longer told of it (and the field is left
    // out of the JSON, so an agent that predates it still takes the push).
    let (st, b) = a.delete(&format!("/v1/nics/{nic2}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
    assert!(remote_on(h1, underlays.clone()).await.is_empty());
    let plain = zy_server::app::dataplane::host_state(store, HostId(h1), &underlays)
        .await
        .expect("state");
    let plain = serde_json::to_value(&plain).expect("json");
    assert!(plain["vpcs"]
        .as_array()
        .is_some_and(|v| v.iter().all(|v| v.get("remote").is_none())));
    // The upper half of the VXLAN numbers is the transit links'.
    sqlx::query("UPDATE vpcs SET vni = $1 WHERE id = $2")
        .bind(zy_model::network::MAX_VPC_VNI)
        .bind(&vpc)
        .execute(store.pool())
        .await
        .expect("vni");
    let (st, b) = a
        .post(
            "/v1/vpcs",
            json!({ "project_id": w.p, "name": "one-too-many" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    assert!(b["error"]["message"].is_string(), "{b}");
}
both_databases!(each_host_of_a_vpc_is_told_its_nics_on_the_other_hosts);

/// A VPC's outbound access (出网): set at creation, switched by `PATCH /v1/vpcs/{id}`
/// (audited, conditional on the generation), and pushed to its hosts — without it a host
/// gets no NAT duty for the VPC unless an elastic IP is bound there, and then one without
/// masquerade; bad input is the one error body with a 4xx.
async fn a_vpc_without_outbound_access_is_sent_no_masquerade(db: Db) {
    use std::collections::HashMap;
    use zy_model::id::HostId;
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let x = w.external_network().await;
    let (st, v) = a
        .post(
            "/v1/vpcs",
            json!({ "project_id": w.p, "name": "封闭网", "outbound": false }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["outbound"], false, "{v}");
    let (_, open) = a
        .post("/v1/vpcs", json!({ "project_id": w.p, "name": "开放网" }))
        .await;
    assert_eq!(open["outbound"], true, "{open}");
    let vpc = v["id"].as_str().expect("id").to_string();
    let vni = v["vni"].as_u64().expect("vni") as u32;
    let (st, sn) = a
        .post(
            &format!("/v1/vpcs/{vpc}/subnets"),
            json!({ "name": "sn", "cidr": "10.7.0.0/24" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sn}");
    let (st, nic) = a
        .post(
            &format!("/v1/instances/{}/nics", w.instance),
            json!({ "subnet_id": sn["id"] }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{nic}");
    let (_, inst) = a.get(&format!("/v1/instances/{}", w.instance)).await;
    let host =
        HostId(uuid::Uuid::parse_str(inst["host_id"].as_str().expect("placed")).expect("host id"));
    let store = ts.store();
    let nat = || async move {
        let st = zy_server::app::dataplane::host_state(store, host, &HashMap::new())
            .await
            .expect("state");
        let v = st.vpcs.iter().find(|v| v.vni == vni).cloned().expect("vpc");
        let json = serde_json::to_value(&v).expect("json");
        (v.nat, json)
    };
    assert_eq!(
        nat().await.0,
        None,
        "no outbound access, no elastic IP: no NAT"
    );
    // An elastic IP bound there: NAT for it alone, no masquerade.
    let (st, e) = a
        .post(
            "/v1/elastic-ips",
            json!({ "project_id": w.p, "external_network_id": x }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let (st, b) = a
        .post(
            &format!("/v1/elastic-ips/{}/bind", e["id"].as_str().expect("id")),
            json!({ "nic_id": nic["id"] }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (n, json) = nat().await;
    let n = n.expect("NAT for the elastic IP");
    assert!(!n.masquerade && n.eips.len() == 1, "{n:?}");
    assert_eq!(json["nat"]["masquerade"], false, "{json}");
    // Switched on: masquerade again (and the field is left out, as older agents expect).
    let generation = v["generation"].as_i64().expect("generation");
    let (st, on) = a
        .patch(
            &format!("/v1/vpcs/{vpc}"),
            json!({ "outbound": true, "generation": generation }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{on}");
    assert_eq!(on["outbound"], true, "{on}");
    assert_eq!(on["generation"], generation + 1, "{on}");
    let (n, json) = nat().await;
    assert!(n.expect("NAT").masquerade);
    assert!(json["nat"].get("masquerade").is_none(), "{json}");
    let (_, got) = a.get(&format!("/v1/vpcs/{vpc}")).await;
    assert_eq!(got["outbound"], true, "{got}");
    // Bad input: one error body, 4xx, nothing changed.
    let path = format!("/v1/vpcs/{vpc}");
    let (st, b) = a.patch(&path, json!({})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(field(&b), "outbound", "{b}");
    let (st, b) = a.patch(&path, json!({ "outbound": "maybe" })).await;
    assert!(st.is_client_error(), "{st} {b}");
    assert!(b["error"]["code"].is_string(), "{b}");
    let (st, b) = a
        .patch(
            &path,
            json!({ "outbound": false, "generation": generation }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    let (_, got) = a.get(&path).await;
    assert_eq!(got["outbound"], true, "{got}");
    // Audited.
    let (_, log) = w.aud.get("/v1/audit?action=update_vpc").await;
    let items = log["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.iter().any(|r| r["target_id"] == vpc.as_str()),
        "{log}"
    );
}
both_databases!(a_vpc_without_outbound_access_is_sent_no_masquerade);
