//! Load balancers: created through the apply saga on a (simulated) host with members'
//! health recorded, bad inputs refused with a clear 4xx naming the field, changes
//! conditional on the generation, the virtual IP held from the platform's IPAM until the
//! load balancer is deleted.

use crate::both_databases;
use crate::common::*;
use crate::world::World;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn field(b: &Value) -> &str {
    b["error"]["details"]["field"].as_str().unwrap_or_default()
}

async fn load_balancers_apply_validate_and_free_their_address(db: Db) {
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let a = &w.admin;
    let id = w.load_balancer().await;
    let (st, lb) = a.get(&format!("/v1/load-balancers/{id}")).await;
    assert_eq!(st, StatusCode::OK, "{lb}");
    assert_eq!(lb["simulated"], true, "{lb}");
    assert!(lb["host_id"].is_string(), "{lb}");
    assert_eq!(lb["applied_generation"], 1, "{lb}");
    assert_eq!(lb["members"][0]["status"], "up", "{lb}");
    assert_eq!(lb["members"][0]["port"], 8080, "{lb}");
    let vip = lb["vip"].as_str().expect("vip").to_string();
    assert!(vip.starts_with("10.1.0."), "{vip}");
    let subnet = lb["subnet_id"].as_str().expect("subnet").to_string();
    let member_nic = lb["listeners"][0]["members"][0]["nic_id"].clone();

    // The pushed network state: the load balancer's host carries its VPC and is a VXLAN
    // peer of the members' hosts even with no instance NIC of that VPC on it, and its VIP
    // is no tap.
    {
        use std::collections::HashMap;
        use zy_model::id::HostId;
        let store = ts.store();
        let (_, inst) = a.get(&format!("/v1/instances/{}", w.instance)).await;
        let member_host: uuid::Uuid = inst["host_id"]
            .as_str()
            .expect("placed")
            .parse()
            .expect("id");
        let lb_host: uuid::Uuid = lb["host_id"].as_str().expect("placed").parse().expect("id");
        let hosts: Vec<String> = sqlx::query_scalar("SELECT id FROM hosts ORDER BY id")
            .fetch_all(store.pool())
            .await
            .expect("hosts");
        let other: uuid::Uuid = hosts
            .iter()
            .filter_map(|h| h.parse().ok())
            .find(|h| *h != member_host)
            .expect("a second host");
        // Move the load balancer (as placement could have) to a host without members.
        sqlx::query("UPDATE load_balancers SET host_id = $1 WHERE id = $2")
            .bind(other.to_string())
            .bind(&id)
            .execute(store.pool())
            .await
            .expect("move");
        let underlays: HashMap<HostId, String> = [
            (HostId(member_host), "192.0.2.1".to_string()),
            (HostId(other), "192.0.2.2".to_string()),
        ]
        .into();
        let on_lb = zy_server::app::dataplane::host_state(store, HostId(other), &underlays)
            .await
            .expect("state");
        let vpc = on_lb.vpcs.iter().find(|v| {
            v.subnets
                .iter()
                .any(|s| s.hosts.iter().any(|h| h.ip == vip))
        });
        let vpc = vpc.unwrap_or_else(|| panic!("the VPC is carried: {on_lb:?}"));
        assert_eq!(vpc.peers, vec!["192.0.2.1".to_string()], "{on_lb:?}");
        assert!(
            on_lb.nics.iter().all(|n| n.ip != vip),
            "the VIP is no tap: {on_lb:?}"
        );
        let on_member =
            zy_server::app::dataplane::host_state(store, HostId(member_host), &underlays)
                .await
                .expect("state");
        let vni = vpc.vni;
        let v = on_member
            .vpcs
            .iter()
            .find(|v| v.vni == vni)
            .expect("member's VPC");
        assert_eq!(v.peers, vec!["192.0.2.2".to_string()], "{on_member:?}");
        assert!(on_member.nics.iter().all(|n| n.ip != vip), "{on_member:?}");
        sqlx::query("UPDATE load_balancers SET host_id = $1 WHERE id = $2")
            .bind(lb_host.to_string())
            .bind(&id)
            .execute(store.pool())
            .await
            .expect("move back");
    }

    // Listed for its project.
    let (st, list) = a
        .get(&format!("/v1/load-balancers?project_id={}", w.p))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(list
        .as_array()
        .is_some_and(|l| l.iter().any(|x| x["id"] == id.as_str())));

    // Bad inputs: 422 naming the field.
    let other_nic = w.nic().await; // on another VPC
    let http = |port: u16, members: Value| json!({ "protocol": "http", "port": port, "algorithm": "round_robin", "members": members });
    for (listeners, f) in [
        (
            json!([http(80, json!([])), http(80, json!([]))]),
            "listeners[1].port",
        ),
        (json!([http(0, json!([]))]), "listeners[0].port"),
        (
            json!([{ "protocol": "tcp", "port": 81, "algorithm": "round_robin", "health_check": { "interval_ms": 100 } }]),
            "listeners[0].interval_ms",
        ),
        (
            json!([{ "protocol": "tcp", "port": 81, "algorithm": "round_robin", "health_check": { "http_path": "no-slash" } }]),
            "listeners[0].http_path",
        ),
        (
            json!([{ "protocol": "tcp", "port": 81, "algorithm": "round_robin", "health_check": { "rise": 0 } }]),
            "listeners[0].rise",
        ),
        (
            json!([http(80, json!([{ "nic_id": other_nic, "port": 80 }]))]),
            "listeners[0].members[0].nic_id",
        ),
        (
            json!([http(
                80,
                json!([{ "nic_id": "0190a5da-0000-7000-8000-000000000000", "port": 80 }])
            )]),
            "listeners[0].members[0].nic_id",
        ),
        (
            json!([http(80, json!([{ "nic_id": member_nic, "port": 0 }]))]),
            "listeners[0].members[0].port",
        ),
        (
            json!([http(
                80,
                json!([{ "nic_id": member_nic, "port": 80, "weight": 0 }])
            )]),
            "listeners[0].members[0].weight",
        ),
    ] {
        let (st, b) = a
            .put(
                &format!("/v1/load-balancers/{id}/listeners"),
                json!({ "listeners": listeners }),
            )
            .await;
        assert_eq!(
            (st, field(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, f),
            "{b}"
        );
    }
    for (body, f) in [
        (
            json!({ "project_id": w.p, "subnet_id": "0190a5da-0000-7000-8000-000000000000", "name": "x" }),
            "subnet_id",
        ),
        (
            json!({ "project_id": w.p, "subnet_id": subnet, "name": "x", "vip": "10.9.9.9" }),
            "vip",
        ),
        (
            json!({ "project_id": w.p, "subnet_id": subnet, "name": "x", "vip": "banana" }),
            "vip",
        ),
        (
            json!({ "project_id": w.p, "subnet_id": subnet, "name": "" }),
            "name",
        ),
    ] {
        let (st, b) = a.post("/v1/load-balancers", body).await;
        assert_eq!(
            (st, field(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, f),
            "{b}"
        );
    }
    // The virtual IP is taken; a stale generation is a conflict.
    let (st, b) = a
        .post(
            "/v1/load-balancers",
            json!({ "project_id": w.p, "subnet_id": subnet, "name": "x", "vip": vip }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    let (st, b) = a
        .put(
            &format!("/v1/load-balancers/{id}/listeners"),
            json!({ "generation": 7, "listeners": [] }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");

    // A change is applied by the saga: a second listener, least connections.
    let (st, b) = a
        .put(
            &format!("/v1/load-balancers/{id}/listeners"),
            json!({ "generation": 1, "listeners": [
                http(80, json!([{ "nic_id": member_nic, "port": 8080 }])),
                { "protocol": "tcp", "port": 5432, "algorithm": "least_connections",
                  "health_check": { "interval_ms": 1000, "rise": 1, "fall": 2 },
                  "members": [{ "nic_id": member_nic, "port": 5432, "weight": 2 }] }] }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let lb = wait(a, &id, |lb| lb["applied_generation"] == 2).await;
    assert_eq!(lb["state"], "active", "{lb}");
    assert_eq!(lb["members"].as_array().map(Vec::len), Some(2), "{lb}");

    // Deleting frees the address: the VPC can go after it.
    let (st, _) = a.delete(&format!("/v1/load-balancers/{id}")).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (st, _) = a.get(&format!("/v1/load-balancers/{id}")).await;
        if st == StatusCode::NOT_FOUND {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never deleted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (st, b) = a
        .post(
            "/v1/load-balancers",
            json!({ "project_id": w.p, "subnet_id": subnet, "name": "again", "vip": vip }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "the address is free again: {b}");
}
both_databases!(load_balancers_apply_validate_and_free_their_address);

async fn wait(a: &Session, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, lb) = a.get(&format!("/v1/load-balancers/{id}")).await;
        if done(&lb) {
            return lb;
        }
        assert!(std::time::Instant::now() < deadline, "never reached: {lb}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
