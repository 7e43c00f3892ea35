use super::nft::*;
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn c(s: &str) -> Cidr {
    Cidr::parse("cidr", s).expect("valid cidr")
}

#[test]
fn cidrs_parse_only_network_addresses_with_sane_prefixes() {
    assert_eq!(c("10.0.1.0/24").to_string(), "10.0.1.0/24");
    assert_eq!(c("0.0.0.0/0").mask(), 0);
    for bad in [
        "10.0.1.0",
        "10.0.1.0/33",
        "10.0.1/24",
        "10.0.1.0/x",
        "10.0.1.0/+8",
        "",
        "a/b",
        "10.0.1.0/024",
    ] {
        let e = Cidr::parse("cidr", bad).expect_err(bad);
        assert_eq!(e.code, crate::ErrorCode::ValidationFailed, "{bad}");
    }
    let e = Cidr::parse("cidr", "10.0.1.7/24").expect_err("host bits");
    assert!(e.message.en.contains("10.0.1.0/24"), "{}", e.message.en);
    assert!(Cidr::parse_subnet("cidr", "10.0.0.0/30").is_err());
    assert!(Cidr::parse_subnet("cidr", "0.0.0.0/0").is_err());
    assert!(Cidr::parse_subnet("cidr", "10.0.0.0/29").is_ok());
}

#[test]
fn overlap_is_any_shared_address() {
    assert!(c("10.0.0.0/16").overlaps(c("10.0.5.0/24")));
    assert!(c("10.0.5.0/24").overlaps(c("10.0.0.0/16")));
    assert!(!c("10.0.0.0/24").overlaps(c("10.0.1.0/24")));
    assert!(c("10.0.0.0/24").overlaps(c("10.0.0.0/24")));
}

#[test]
fn allocation_skips_network_gateway_broadcast_and_taken() {
    let n = c("192.168.7.0/29");
    let gw = n.default_gateway();
    let mut taken = BTreeSet::new();
    let mut got = Vec::new();
    while let Some(ip) = next_free(n, gw, &taken) {
        taken.insert(ip);
        got.push(ip_text(ip));
    }
    assert_eq!(
        got,
        [
            "192.168.7.2",
            "192.168.7.3",
            "192.168.7.4",
            "192.168.7.5",
            "192.168.7.6"
        ]
    );
}

proptest! {
    /// Filling any subnet, whatever was taken before, hands out each host address once,
    /// never the network, broadcast or gateway address, and stops exactly when full.
    #[test]
    fn a_subnet_fills_without_repeats(prefix in 24u8..=29, pre in proptest::collection::btree_set(0u32..256, 0..40)) {
        let n = Cidr { addr: 0x0a00_0000, prefix };
        let gw = n.default_gateway();
        let mut taken: BTreeSet<u32> = pre.into_iter().map(|o| n.addr + o).filter(|ip| n.is_host(*ip)).collect();
        let pre_count = taken.len() - usize::from(taken.contains(&gw));
        let mut handed = 0usize;
        while let Some(ip) = next_free(n, gw, &taken) {
            prop_assert!(n.is_host(ip) && ip != gw);
            prop_assert!(taken.insert(ip), "handed out twice");
            handed += 1;
        }
        let hosts = (n.last() - n.first() - 1) as usize;
        prop_assert_eq!(pre_count + handed, hosts - 1);
    }

    #[test]
    fn overlap_agrees_with_membership(a in any::<u32>(), pa in 8u8..=30, b in any::<u32>(), pb in 8u8..=30) {
        let x = Cidr { addr: a & Cidr { addr: 0, prefix: pa }.mask(), prefix: pa };
        let y = Cidr { addr: b & Cidr { addr: 0, prefix: pb }.mask(), prefix: pb };
        let shared = x.contains(y.first()) || y.contains(x.first());
        prop_assert_eq!(x.overlaps(y), shared);
        prop_assert_eq!(Cidr::parse("c", &x.to_string()).ok(), Some(x));
    }
}

fn rule(v: serde_json::Value) -> SecurityRule {
    serde_json::from_value(v).expect("rule json")
}

#[test]
fn rules_are_validated_with_the_field_named() {
    let ok = validate_rules(vec![rule(serde_json::json!({
        "direction": "ingress", "protocol": "tcp", "port_min": 8080, "remote_cidr": "10.0.0.0/8"
    }))])
    .expect("valid");
    assert_eq!(ok[0].port_max, Some(8080));
    let cases = [
        (
            serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_min": 90, "port_max": 80}),
            "rules[0].port_max",
        ),
        (
            serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_min": 0}),
            "rules[0].port_max",
        ),
        (
            serde_json::json!({"direction": "ingress", "protocol": "icmp", "port_min": 1}),
            "rules[0].port_min",
        ),
        (
            serde_json::json!({"direction": "ingress", "protocol": "udp", "port_max": 1}),
            "rules[0].port_min",
        ),
        (
            serde_json::json!({"direction": "egress", "protocol": "any", "remote_cidr": "10.0.0.1/8"}),
            "rules[0].remote_cidr",
        ),
        (
            serde_json::json!({"direction": "egress", "protocol": "any", "remote_cidr": "0.0.0.0/0", "remote_group_id": SecurityGroupId::new()}),
            "rules[0].remote_cidr",
        ),
    ];
    for (v, field) in cases {
        let e = validate_rules(vec![rule(v.clone())]).expect_err(&v.to_string());
        assert_eq!(
            e.details.as_ref().map(|d| d["field"].clone()),
            Some(serde_json::json!(field)),
            "{v}"
        );
    }
    let dup = rule(serde_json::json!({"direction": "ingress", "protocol": "icmp"}));
    assert!(validate_rules(vec![dup.clone(), dup]).is_err());
    assert!(serde_json::from_value::<SecurityRule>(
        serde_json::json!({"direction": "in", "protocol": "tcp"})
    )
    .is_err());
}

fn nic(n: u128) -> NicId {
    NicId(uuid::Uuid::from_u128(n))
}

fn sample() -> HostFirewall {
    let web = SecurityGroupId(uuid::Uuid::from_u128(0xabc));
    let mut rules = default_rules();
    rules.extend(
        validate_rules(vec![
            rule(serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_min": 8080})),
            rule(serde_json::json!({"direction": "ingress", "protocol": "udp", "port_min": 5000, "port_max": 5010, "remote_cidr": "192.168.0.0/16"})),
            rule(serde_json::json!({"direction": "ingress", "protocol": "icmp", "remote_group_id": web})),
            rule(serde_json::json!({"direction": "ingress", "protocol": "any", "remote_group_id": SecurityGroupId(uuid::Uuid::from_u128(0xdef))})),
        ])
        .expect("valid"),
    );
    let mut groups = BTreeMap::new();
    groups.insert(
        web,
        BTreeSet::from([
            u32::from(Ipv4Addr::new(10, 0, 0, 5)),
            u32::from(Ipv4Addr::new(10, 0, 0, 6)),
        ]),
    );
    groups.insert(
        SecurityGroupId(uuid::Uuid::from_u128(0xdef)),
        BTreeSet::new(),
    );
    HostFirewall {
        nics: vec![
            NicFirewall {
                nic: nic(0x1111_2222_3333),
                vni: 4096,
                mac: mac_for(nic(0x1111_2222_3333)),
                ip: u32::from(Ipv4Addr::new(10, 0, 0, 5)),
                rules,
            },
            NicFirewall {
                nic: nic(0x4444),
                vni: 4096,
                mac: mac_for(nic(0x4444)),
                ip: u32::from(Ipv4Addr::new(10, 0, 0, 9)),
                rules: default_rules(),
            },
        ],
        groups,
    }
}

const GOLDEN: &str = include_str!("golden.nft");

#[test]
fn the_rule_set_matches_the_golden_text() {
    let got = render(&sample());
    if std::env::var_os("ZY_UPDATE_GOLDEN").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/network/golden.nft"),
            &got,
        )
        .expect("write golden");
    }
    assert_eq!(
        got, GOLDEN,
        "render changed; rerun with ZY_UPDATE_GOLDEN=1 and review the diff"
    );
    assert_eq!(tap_name(nic(0x1111_2222_3333)), "zt11122223333");
    assert!(tap_name(NicId::new()).len() <= 15);
}

/// nftables itself accepts the rule set (`nft -c -f`: parsed and validated in a
/// transaction that is never committed). Needs root and nftables (installed by `cargo
/// xtask test`); elsewhere the test says so and passes only when `ZY_REQUIRE_NFT` is unset.
#[test]
fn nftables_accepts_the_rule_set() {
    let nft = ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nft) = nft else {
        assert!(
            std::env::var_os("ZY_REQUIRE_NFT").is_none(),
            "nft is required but missing"
        );
        eprintln!("nft is not installed: skipped");
        return;
    };
    let path = std::env::temp_dir().join(format!("zy-nft-check-{}.nft", std::process::id()));
    std::fs::write(&path, render(&sample())).expect("write rule set");
    let out = std::process::Command::new(nft)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run nft");
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && err.contains("Operation not permitted")
        && std::env::var_os("ZY_REQUIRE_NFT").is_none()
    {
        eprintln!("nft -c needs CAP_NET_ADMIN: skipped");
        return;
    }
    assert!(out.status.success(), "nft -c rejected the rule set:\n{err}");
}
