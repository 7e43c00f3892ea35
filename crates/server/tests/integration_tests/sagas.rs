//! The saga engine and the background tasks: every step of every saga, derived from the
//! definitions themselves, fails once after doing its work and the saga undoes (or, for
//! forward-only sagas, retries) leaving nothing behind; every step run twice changes
//! nothing; conflicting requests racing on the same instances leave every instance where
//! its desired state says, with `admin check` clean; the tasks report their runs.

use crate::both_databases;
use crate::common::*;
use crate::compute::{assert_check_clean, cloud, create, Cloud};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn hooks(ts: &TestServer) -> &zy_server::saga::Hooks {
    &ts.server.as_ref().expect("server").state.compute.saga_hooks
}

/// Waits until no saga is running or undoing and every instance has settled.
async fn quiesce(c: &Cloud) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (st, sagas) = c.admin.get("/v1/system/sagas").await;
        assert_eq!(st, StatusCode::OK, "{sagas}");
        let (_, page) = c
            .member
            .get(&format!(
                "/v1/instances?project_id={}&limit=1000",
                c.project
            ))
            .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let moving = items
            .iter()
            .filter(|i| i["state"] != i["desired"] && i["state"] != "error")
            .count();
        let active = sagas["items"].as_array().map(Vec::len).unwrap_or(0);
        if active == 0 && moving == 0 {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "still {active} sagas active and {moving} instances moving: {sagas}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn instance(c: &Cloud, id: &str) -> Value {
    let (st, i) = c.member.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(st, StatusCode::OK, "{i}");
    i
}

async fn one(c: &Cloud, name: &str, extra: Value) -> String {
    let (st, v) = create(c, name, 1, extra).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    v["items"][0]["id"]
        .as_str()
        .or_else(|| v[0]["id"].as_str())
        .expect("id")
        .to_string()
}

async fn volume(c: &Cloud, name: &str) -> String {
    let (st, v) = c
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": name, "size_gib": 10 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_str().expect("volume id").to_string()
}

async fn quota_used(c: &Cloud) -> Value {
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    q["used"].clone()
}

/// The last saga of `kind` on `target` and its state.
async fn last_saga(c: &Cloud, instance: &str, kind: &str) -> Value {
    let (st, list) = c
        .member
        .get(&format!("/v1/instances/{instance}/sagas"))
        .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    list["items"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["kind"] == kind).cloned())
        .unwrap_or(Value::Null)
}

/// Runs the operation a saga of `kind` performs, failing at `step` once, and checks what
/// is left afterwards. Panics for a kind without a scenario, so a new saga must get one.
async fn exercise(ts: &TestServer, c: &Cloud, kind: &str, step: &str, n: usize) {
    let name = format!("f{n}");
    match kind {
        "instance_create" => {
            let before = quota_used(c).await;
            hooks(ts).fail_once(kind, step);
            let id = one(c, &name, json!({})).await;
            quiesce(c).await;
            let i = instance(c, &id).await;
            assert_eq!(i["state"], "error", "{kind}/{step}: {i}");
            assert!(
                i["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("injected")),
                "{i}"
            );
            c.member.delete(&format!("/v1/instances/{id}")).await;
            quiesce(c).await;
            assert_eq!(
                quota_used(c).await,
                before,
                "{kind}/{step}: quota given back"
            );
        }
        "instance_start" | "instance_stop" | "instance_reboot" => {
            let start = kind != "instance_start";
            let id = one(c, &name, json!({ "start": start })).await;
            quiesce(c).await;
            hooks(ts).fail_once(kind, step);
            let action = kind.trim_start_matches("instance_");
            let (st, v) = c
                .member
                .post(&format!("/v1/instances/{id}/{action}"), json!({}))
                .await;
            assert_eq!(st, StatusCode::ACCEPTED, "{v}");
            quiesce(c).await;
            let saga = last_saga(c, &id, kind).await;
            assert_eq!(saga["state"], "undone", "{kind}/{step}: {saga}");
            let i = instance(c, &id).await;
            assert_eq!(
                i["state"], "error",
                "a power change that failed for good: {i}"
            );
            c.member.delete(&format!("/v1/instances/{id}")).await;
            quiesce(c).await;
        }
        "instance_resize" => {
            let id = one(c, &name, json!({ "start": false })).await;
            quiesce(c).await;
            let before = quota_used(c).await;
            hooks(ts).fail_once(kind, step);
            let (st, v) = c
                .member
                .post(
                    &format!("/v1/instances/{id}/resize"),
                    json!({ "flavor": "4C8G", "disk_gib": 60 }),
                )
                .await;
            assert_eq!(st, StatusCode::ACCEPTED, "{v}");
            quiesce(c).await;
            let i = instance(c, &id).await;
            assert_eq!(
                i["flavor_name"], "2C4G",
                "{kind}/{step}: size restored: {i}"
            );
            assert_eq!(i["state"], "stopped", "{i}");
            assert_eq!(
                quota_used(c).await,
                before,
                "{kind}/{step}: quota given back"
            );
            c.member.delete(&format!("/v1/instances/{id}")).await;
            quiesce(c).await;
        }
        "instance_delete" => {
            let id = one(c, &name, json!({})).await;
            quiesce(c).await;
            hooks(ts).fail_once(kind, step);
            c.member.delete(&format!("/v1/instances/{id}")).await;
            quiesce(c).await;
            let i = instance(c, &id).await;
            assert_eq!(
                i["state"], "deleted",
                "delete is forward-only and finishes: {i}"
            );
            let saga = last_saga(c, &id, kind).await;
            assert_eq!(saga["state"], "done", "{saga}");
        }
        "volume_attach" | "volume_detach" | "volume_extend" => {
            let id = one(c, &name, json!({})).await;
            quiesce(c).await;
            let vol = volume(c, &name).await;
            if kind == "volume_detach" {
                let (st, v) = c
                    .member
                    .post(
                        &format!("/v1/volumes/{vol}/attach"),
                        json!({ "instance_id": id }),
                    )
                    .await;
                assert_eq!(st, StatusCode::OK, "{v}");
            }
            let before = quota_used(c).await;
            hooks(ts).fail_once(kind, step);
            let (st, v) = match kind {
                "volume_attach" => {
                    c.member
                        .post(
                            &format!("/v1/volumes/{vol}/attach"),
                            json!({ "instance_id": id }),
                        )
                        .await
                }
                "volume_detach" => {
                    c.member
                        .post(&format!("/v1/volumes/{vol}/detach"), json!({}))
                        .await
                }
                _ => {
                    c.member
                        .post(
                            &format!("/v1/volumes/{vol}/extend"),
                            json!({ "size_gib": 20 }),
                        )
                        .await
                }
            };
            assert_eq!(st, StatusCode::CONFLICT, "{kind}/{step} undone: {v}");
            assert_error_body(st, &v);
            let (_, after) = c.member.get(&format!("/v1/volumes/{vol}")).await;
            match kind {
                "volume_attach" => assert_eq!(after["state"], "available", "{after}"),
                "volume_detach" => assert_eq!(after["state"], "in_use", "{after}"),
                _ => assert_eq!(after["size_gib"], 10, "{after}"),
            }
            assert_eq!(
                quota_used(c).await,
                before,
                "{kind}/{step}: quota as before"
            );
            if after["state"] == "in_use" {
                c.member
                    .post(&format!("/v1/volumes/{vol}/detach"), json!({}))
                    .await;
            }
            let (st, v) = c.member.delete(&format!("/v1/volumes/{vol}")).await;
            assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
            c.member.delete(&format!("/v1/instances/{id}")).await;
            quiesce(c).await;
        }
        "volume_delete" => {
            let before = quota_used(c).await;
            let vol = volume(c, &name).await;
            hooks(ts).fail_once(kind, step);
            let (st, v) = c.member.delete(&format!("/v1/volumes/{vol}")).await;
            assert!(
                st == StatusCode::NO_CONTENT || st == StatusCode::ACCEPTED,
                "{kind}/{step}: {st} {v}"
            );
            quiesce(c).await;
            let (st, v) = c.member.get(&format!("/v1/volumes/{vol}")).await;
            assert_eq!(
                st,
                StatusCode::NOT_FOUND,
                "delete is forward-only and finishes: {v}"
            );
            assert_eq!(
                quota_used(c).await,
                before,
                "{kind}/{step}: quota given back"
            );
        }
        "request_delivery" => {
            let before = quota_used(c).await;
            hooks(ts).fail_once(kind, step);
            let r = crate::requests::auto_approved(c, &name).await;
            quiesce(c).await;
            let (_, detail) = c.member.get(&format!("/v1/requests/{r}")).await;
            assert_eq!(detail["state"], "failed", "{kind}/{step}: {detail}");
            assert!(
                detail["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("injected")),
                "the reason is shown: {detail}"
            );
            assert_eq!(
                quota_used(c).await,
                before,
                "{kind}/{step}: quota given back"
            );
            let (_, vols) = c
                .member
                .get(&format!("/v1/volumes?project_id={}", c.project))
                .await;
            assert_eq!(vols["items"].as_array().map(Vec::len), Some(0), "{vols}");
        }
        // Live migration on real hosts is failed at every step in the kvm tests; here the
        // simulated provider migrates.
        "instance_migrate" => {
            let id = one(c, &name, json!({})).await;
            quiesce(c).await;
            let before = instance(c, &id).await;
            hooks(ts).fail_once(kind, step);
            let (st, v) = c
                .admin
                .post(&format!("/v1/instances/{id}/migrate"), json!({}))
                .await;
            assert_eq!(st, StatusCode::ACCEPTED, "{v}");
            quiesce(c).await;
            let after = instance(c, &id).await;
            let saga = last_saga(c, &id, kind).await;
            assert_eq!(saga["state"], "undone", "{kind}/{step}: {saga}");
            assert_eq!(after["state"], "running", "{kind}/{step}: {after}");
            // Failed before the hand-over it stays on its source; after it, the undo
            // finishes the move rather than throw away the only copy.
            if step == "prepare_target" {
                assert_eq!(after["host_id"], before["host_id"], "stays on its source");
            } else {
                assert_ne!(after["host_id"], before["host_id"], "moved: {after}");
            }
            c.member.delete(&format!("/v1/instances/{id}")).await;
            quiesce(c).await;
        }
        "instance_recover" => {
            let id = one(c, &name, json!({})).await;
            quiesce(c).await;
            hooks(ts).fail_once(kind, step);
            let host = fail_host_of(c, &id).await;
            settle_recovery(c, &id).await;
            // A failure injected after `finish` committed shows the instance running for a
            // moment, until the undo takes the end back: judge once the saga is over.
            quiesce(c).await;
            let i = instance(c, &id).await;
            assert_eq!(i["state"], "error", "{kind}/{step}: {i}");
            let (_, r) = c
                .admin
                .get(&format!("/v1/ha/recoveries?instance_id={id}"))
                .await;
            assert_eq!(r["items"][0]["outcome"], "failed", "{kind}/{step}: {r}");
            revive_host(c, &host).await;
            c.member.delete(&format!("/v1/instances/{id}")).await;
            quiesce(c).await;
        }
        "load_balancer_apply" => {
            let sn = lb_subnet(c, &name).await;
            hooks(ts).fail_once(kind, step);
            let id = load_balancer(c, &sn, &name).await;
            quiesce(c).await;
            let (_, lb) = c.member.get(&format!("/v1/load-balancers/{id}")).await;
            assert_eq!(lb["state"], "error", "{kind}/{step}: {lb}");
            assert!(
                lb["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("injected")),
                "{lb}"
            );
            assert_eq!(lb["applied_generation"], 0, "undone on the host: {lb}");
            assert!(lb["host_id"].is_null(), "placement undone: {lb}");
            remove_load_balancer(c, &id).await;
        }
        "load_balancer_delete" => {
            let sn = lb_subnet(c, &name).await;
            let id = load_balancer(c, &sn, &name).await;
            quiesce(c).await;
            hooks(ts).fail_once(kind, step);
            remove_load_balancer(c, &id).await;
        }
        other => panic!("saga {other} has no failure scenario: add one to sagas.rs"),
    }
    assert!(
        !hooks(ts).armed(),
        "{kind}/{step}: the injected failure never fired (step not run?)"
    );
    assert_check_clean(c).await;
}

/// A new VPC of the project with one subnet; the subnet's id.
async fn lb_subnet(c: &Cloud, name: &str) -> String {
    let (st, v) = c
        .member
        .post(
            "/v1/vpcs",
            json!({ "project_id": c.project, "name": format!("lbnet-{name}") }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, sn) = c
        .member
        .post(
            &format!("/v1/vpcs/{}/subnets", v["id"].as_str().unwrap_or("")),
            json!({ "name": "sn", "cidr": "10.8.0.0/24" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sn}");
    sn["id"].as_str().expect("subnet id").to_string()
}

async fn load_balancer(c: &Cloud, subnet: &str, name: &str) -> String {
    let (st, lb) = c
        .member
        .post(
            "/v1/load-balancers",
            json!({ "project_id": c.project, "subnet_id": subnet, "name": name,
                    "listeners": [{ "protocol": "tcp", "port": 5432, "algorithm": "least_connections" }] }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{lb}");
    lb["id"].as_str().expect("lb id").to_string()
}

/// Deletes a load balancer and its VPC once it is gone.
async fn remove_load_balancer(c: &Cloud, id: &str) {
    let (_, lb) = c.member.get(&format!("/v1/load-balancers/{id}")).await;
    let (st, v) = c.member.delete(&format!("/v1/load-balancers/{id}")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    quiesce(c).await;
    let (st, _) = c.member.get(&format!("/v1/load-balancers/{id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "the load balancer is gone");
    let (st, v) = c
        .member
        .delete(&format!("/v1/vpcs/{}", lb["vpc_id"].as_str().unwrap_or("")))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "its address was freed: {v}");
}

/// Sets the instance's (simulated) host down, as a failed host; returns the host.
pub(crate) async fn fail_host_of(c: &Cloud, id: &str) -> String {
    let host = instance(c, id).await["host_id"]
        .as_str()
        .expect("host")
        .to_string();
    let (st, v) = c
        .admin
        .patch(&format!("/v1/hosts/{host}"), json!({ "state": "down" }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    host
}

/// Waits until HA has dealt with the instance (running or stopped elsewhere, lost or in
/// error).
pub(crate) async fn settle_recovery(c: &Cloud, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let i = instance(c, id).await;
        let (_, r) = c
            .admin
            .get(&format!("/v1/ha/recoveries?instance_id={id}"))
            .await;
        let decided = r["items"][0]["outcome"]
            .as_str()
            .is_some_and(|o| o != "pending");
        if decided && i["state"] != "recovering" {
            return i;
        }
        assert!(Instant::now() < deadline, "never recovered: {i} {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Brings a failed simulated host back (its machine restarts empty).
pub(crate) async fn revive_host(c: &Cloud, host: &str) {
    let (st, v) = c
        .admin
        .patch(&format!("/v1/hosts/{host}"), json!({ "state": "enabled" }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

async fn a_failure_at_every_step_of_every_saga_leaves_nothing_behind(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 3).await;
    let mut n = 0;
    for def in zy_server::saga::registry() {
        // Steps the starter did in its own transaction are undone by every later failure.
        for step in &def.steps()[def.done_by_starter()..] {
            n += 1;
            exercise(&ts, &c, def.kind(), step, n).await;
        }
    }
    let items = quiesce(&c).await;
    assert!(items.is_empty(), "everything was deleted: {items:?}");
    let sim = ts
        .server
        .as_ref()
        .expect("server")
        .state
        .compute
        .drivers
        .sim(c.provider.parse().expect("id"))
        .expect("sim");
    assert_eq!(sim.counts().disks, 0, "no disk left on the provider");
    assert_check_clean(&c).await;
}
both_databases!(a_failure_at_every_step_of_every_saga_leaves_nothing_behind);

async fn every_step_of_every_saga_can_run_twice(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 3).await;
    hooks(&ts).twice.store(true, Ordering::SeqCst);
    let a = one(&c, "twice-a", json!({})).await;
    let b = one(&c, "twice-b", json!({ "start": false })).await;
    quiesce(&c).await;
    for (id, action) in [(&a, "reboot"), (&a, "stop"), (&b, "start")] {
        let (st, v) = c
            .member
            .post(&format!("/v1/instances/{id}/{action}"), json!({}))
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{action}: {v}");
        quiesce(&c).await;
    }
    let (st, v) = c
        .member
        .post(
            &format!("/v1/instances/{a}/resize"),
            json!({ "flavor": "4C8G" }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    quiesce(&c).await;
    assert_eq!(instance(&c, &a).await["flavor_name"], "4C8G");
    let vol = volume(&c, "twice").await;
    for (path, body) in [
        ("attach", json!({ "instance_id": b })),
        ("extend", json!({ "size_gib": 30 })),
        ("detach", json!({})),
    ] {
        let (st, v) = c
            .member
            .post(&format!("/v1/volumes/{vol}/{path}"), body)
            .await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
    }
    let (_, v) = c.member.get(&format!("/v1/volumes/{vol}")).await;
    assert_eq!(
        (v["state"].as_str(), v["size_gib"].as_u64()),
        (Some("available"), Some(30))
    );
    assert_check_clean(&c).await;
    for id in [&a, &b] {
        c.member.delete(&format!("/v1/instances/{id}")).await;
    }
    c.member.delete(&format!("/v1/volumes/{vol}")).await;
    let r = crate::requests::auto_approved(&c, "twice-r").await;
    quiesce(&c).await;
    let (_, detail) = c.member.get(&format!("/v1/requests/{r}")).await;
    assert_eq!(detail["state"], "delivered", "{detail}");
    for d in detail["delivered"].as_array().cloned().unwrap_or_default() {
        let path = format!(
            "/v1/{}s/{}",
            d["kind"].as_str().unwrap_or(""),
            d["id"].as_str().unwrap_or("")
        );
        c.member.delete(&path).await;
    }
    quiesce(&c).await;
    // Live migration and recovery after a host failure, on the simulated provider.
    let m = one(&c, "twice-m", json!({})).await;
    quiesce(&c).await;
    let (st, v) = c
        .admin
        .post(&format!("/v1/instances/{m}/migrate"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    quiesce(&c).await;
    assert_eq!(instance(&c, &m).await["state"], "running");
    let host = fail_host_of(&c, &m).await;
    let i = settle_recovery(&c, &m).await;
    assert_eq!(i["state"], "running", "{i}");
    assert_ne!(i["host_id"].as_str(), Some(host.as_str()), "{i}");
    revive_host(&c, &host).await;
    c.member.delete(&format!("/v1/instances/{m}")).await;
    quiesce(&c).await;
    assert_check_clean(&c).await;
    let used = quota_used(&c).await;
    assert_eq!(
        (
            used["instances"].as_i64(),
            used["vcpus"].as_i64(),
            used["disk_gib"].as_i64()
        ),
        (Some(0), Some(0), Some(0)),
        "{used}"
    );
    // Load balancers: created, changed and deleted with every step twice.
    let sn = lb_subnet(&c, "twice").await;
    let lb = load_balancer(&c, &sn, "twice-lb").await;
    quiesce(&c).await;
    let (st, v) = c
        .member
        .put(
            &format!("/v1/load-balancers/{lb}/listeners"),
            json!({ "generation": 1, "listeners": [{ "protocol": "http", "port": 80, "algorithm": "round_robin" }] }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    quiesce(&c).await;
    let (_, v) = c.member.get(&format!("/v1/load-balancers/{lb}")).await;
    assert_eq!(
        (v["state"].as_str(), v["applied_generation"].as_i64()),
        (Some("active"), Some(2)),
        "{v}"
    );
    remove_load_balancer(&c, &lb).await;
    // Every saga the engine knows ran to its end here with every step twice, so a new
    // saga must join this test.
    let counts = zy_store::sagas::counts(ts.store()).await.expect("counts");
    for def in zy_server::saga::registry() {
        assert!(
            counts
                .iter()
                .any(|(k, st, n)| k == def.kind() && st == "done" && *n > 0),
            "saga {} never ran to the end with every step twice: {counts:?}",
            def.kind()
        );
    }
}
both_databases!(every_step_of_every_saga_can_run_twice);

async fn conflicting_requests_race_and_every_instance_ends_where_it_should(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 4).await;
    let (st, v) = create(&c, "race", 8, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    quiesce(&c).await;
    let (_, page) = c
        .member
        .get(&format!("/v1/instances?project_id={}&limit=100", c.project))
        .await;
    let ids: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    let mut vols = Vec::new();
    for k in 0..4 {
        vols.push(volume(&c, &format!("race-{k}")).await);
    }
    // Rounds of requests at the same instances and volumes at once, while the sagas and
    // the reconciler run.
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..6 {
        let mut tasks = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            for (j, action) in ["start", "stop", "reboot", "resize", "delete"]
                .iter()
                .enumerate()
            {
                if *action == "delete" && (k + round) % 4 != 0 {
                    continue;
                }
                let (s, id, action) = (c.member.clone(), id.clone(), action.to_string());
                let flavor = if (round + j) % 2 == 0 { "4C8G" } else { "2C4G" };
                tasks.push(tokio::spawn(async move {
                    match action.as_str() {
                        "delete" => s.delete(&format!("/v1/instances/{id}")).await.0,
                        "resize" => {
                            s.post(
                                &format!("/v1/instances/{id}/resize"),
                                json!({ "flavor": flavor }),
                            )
                            .await
                            .0
                        }
                        a => {
                            s.post(&format!("/v1/instances/{id}/{a}"), json!({}))
                                .await
                                .0
                        }
                    }
                }));
            }
            // Live migration on the simulated provider is refused (409), whatever the race.
            let (a, mid) = (c.admin.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                a.post(&format!("/v1/instances/{mid}/migrate"), json!({}))
                    .await
                    .0
            }));
            let vol = vols[k % vols.len()].clone();
            let (s, id) = (c.member.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                match k % 3 {
                    0 => {
                        s.post(
                            &format!("/v1/volumes/{vol}/attach"),
                            json!({ "instance_id": id }),
                        )
                        .await
                        .0
                    }
                    1 => {
                        s.post(&format!("/v1/volumes/{vol}/detach"), json!({}))
                            .await
                            .0
                    }
                    _ => {
                        s.post(
                            &format!("/v1/volumes/{vol}/extend"),
                            json!({ "size_gib": 11 + round as u64 }),
                        )
                        .await
                        .0
                    }
                }
            }));
        }
        for t in tasks {
            *statuses.entry(t.await.expect("task").as_u16()).or_default() += 1;
        }
    }
    for code in statuses.keys() {
        assert!(
            matches!(code, 200 | 202 | 204 | 400 | 404 | 409),
            "only successes and clear refusals: {statuses:?}"
        );
    }
    assert!(
        statuses.contains_key(&409),
        "races were refused: {statuses:?}"
    );
    let items = quiesce(&c).await;
    for i in &items {
        assert!(
            i["state"] == i["desired"] || i["state"] == "error",
            "state and desired state agree: {i}"
        );
    }
    assert_check_clean(&c).await;
}
both_databases!(conflicting_requests_race_and_every_instance_ends_where_it_should);

async fn background_tasks_report_their_runs_and_are_for_the_platform_admin(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let tasks = loop {
        let (st, v) = c.admin.get("/v1/system/tasks").await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let ran = |name: &str| {
            items
                .iter()
                .any(|t| t["name"] == name && t["runs"].as_i64().unwrap_or(0) > 0)
        };
        if [
            "saga_executor",
            "instance_reconciler",
            "host_monitor",
            "placement_refresh",
        ]
        .iter()
        .all(|n| ran(n))
        {
            break items;
        }
        assert!(Instant::now() < deadline, "tasks did not all run: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reconciler: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["name"] == "instance_reconciler")
        .collect();
    assert_eq!(reconciler.len(), 1, "{reconciler:?}");
    assert_eq!(reconciler[0]["singleton"], true);
    assert_eq!(reconciler[0]["active"], true, "{reconciler:?}");
    assert_eq!(reconciler[0]["last_outcome"], "ok", "{reconciler:?}");
    let (st, v) = c.member.get("/v1/system/tasks").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_error_body(st, &v);
    // A second replica: the singleton runs on exactly one of them.
    let second = zy_server::start(ts.config.clone())
        .await
        .expect("second replica");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, v) = c.admin.get("/v1/system/tasks").await;
    let holders: Vec<&Value> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|t| t["name"] == "instance_reconciler" && t["active"] == true)
        .collect();
    assert_eq!(holders.len(), 1, "one replica runs the singleton: {v}");
    second.stop().await;
}
both_databases!(background_tasks_report_their_runs_and_are_for_the_platform_admin);
