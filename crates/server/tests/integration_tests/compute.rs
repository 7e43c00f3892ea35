//! Compute: instances reach their states through the reconciler, quotas hold under
//! concurrency, impossible placements are refused, failed creates leave nothing behind,
//! every saga step is idempotent, and a crash mid-way recovers by itself.

use crate::both_databases;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zy_compute::{ComputeDriver, DriverError, DriverFuture, InstanceSpec, PowerState};
use zy_model::role::Role;

/// A provider with `hosts` hosts, the catalogue, a department with a project and a member.
pub(crate) struct Cloud {
    pub admin: Session,
    pub member: Session,
    pub project: String,
    pub provider: String,
}

pub(crate) async fn cloud(ts: &TestServer, hosts: u32) -> Cloud {
    let admin = ts.platform_admin().await;
    let (st, prov) = admin
        .post(
            "/v1/providers",
            json!({ "name": "浪潮云（模拟）", "kind": "sim" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{prov}");
    let provider = prov["id"].as_str().expect("provider").to_string();
    let (_, zone) = admin
        .post(
            "/v1/zones",
            json!({ "provider_id": provider, "region": "宜宾", "name": "一区" }),
        )
        .await;
    let (st, h) = admin.post("/v1/hosts", json!({ "zone_id": zone["id"], "name_prefix": "inspur", "count": hosts, "vcpus": 16, "memory_mib": 65536, "disk_gib": 2000 })).await;
    assert_eq!(st, StatusCode::CREATED, "{h}");
    admin
        .post(
            "/v1/flavors",
            json!({ "name": "2C4G", "vcpus": 2, "memory_mib": 4096 }),
        )
        .await;
    admin
        .post(
            "/v1/flavors",
            json!({ "name": "4C8G", "vcpus": 4, "memory_mib": 8192 }),
        )
        .await;
    admin
        .post(
            "/v1/images",
            json!({ "name": "CentOS-7.9", "os": "Linux", "min_disk_gib": 40 }),
        )
        .await;
    admin
        .post(
            "/v1/storage-pools",
            // Shared by the zone's hosts: HA restarts instances elsewhere (tests in ha.rs).
            json!({ "zone_id": zone["id"], "name": "ceph", "capacity_gib": 1000, "kind": "shared", "path": "/mnt/zhengyun/test-ceph" }),
        )
        .await;
    let d = department(&admin, "宜宾市卫计委", "WJW").await;
    let project = project(&admin, &d, "全民健康信息平台").await;
    let member = ts.new_user(&admin, "wjw.ops", Some(&d)).await;
    ts.grant(&admin, &member, Role::DeptMember, Some(&d), Some(&project))
        .await;
    Cloud {
        admin,
        member,
        project,
        provider,
    }
}

pub(crate) async fn create(c: &Cloud, name: &str, count: u32, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({ "project_id": c.project, "name": name, "flavor": "2C4G", "image": "CentOS-7.9", "count": count });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    c.member.post("/v1/instances", body).await
}

/// Polls until every instance of the project has left the transitional states.
pub(crate) async fn settle(c: &Cloud) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = c
            .member
            .get(&format!(
                "/v1/instances?project_id={}&limit=1000&deleted=true",
                c.project
            ))
            .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let busy = items
            .iter()
            .filter(|i| i["state"] != i["desired"] && i["state"] != "error")
            .count();
        if busy == 0 {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "instances did not settle: {busy} still moving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn assert_check_clean(c: &Cloud) {
    let (st, report) = c.admin.get("/v1/admin/check").await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "invariants broken: {report}");
}

async fn instances_go_through_their_whole_life(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 4).await;
    let (st, created) = create(&c, "web", 10, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{created}");
    let items = settle(&c).await;
    assert!(items.iter().all(|i| i["state"] == "running"), "{items:?}");
    let id = created["items"][0]["id"].as_str().expect("id").to_string();
    let (_, console) = c.member.get(&format!("/v1/instances/{id}/console")).await;
    assert!(
        console["output"]
            .as_str()
            .is_some_and(|o| o.contains("[sim]")),
        "{console}"
    );
    c.member
        .post(&format!("/v1/instances/{id}/stop"), json!({}))
        .await;
    settle(&c).await;
    let (st, body) = c
        .member
        .post(
            &format!("/v1/instances/{id}/resize"),
            json!({ "flavor": "4C8G", "disk_gib": 80 }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    c.member
        .post(&format!("/v1/instances/{id}/start"), json!({}))
        .await;
    settle(&c).await;
    let (_, one) = c.member.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(
        (
            one["state"].as_str(),
            one["vcpus"].as_u64(),
            one["disk_gib"].as_u64()
        ),
        (Some("running"), Some(4), Some(80))
    );
    let (st, _) = c
        .member
        .post(&format!("/v1/instances/{id}/reboot"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    settle(&c).await;
    c.member.delete(&format!("/v1/instances/{id}")).await;
    settle(&c).await;
    let (_, events) = c.member.get(&format!("/v1/instances/{id}/events")).await;
    let path: Vec<&str> = events["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["to_state"].as_str())
        .collect();
    for s in [
        "pending",
        "scheduling",
        "provisioning",
        "running",
        "stopped",
        "deleting",
        "deleted",
    ] {
        assert!(path.contains(&s), "{s} missing from {path:?}");
    }
    assert!(events["items"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["reason"].as_str().is_some_and(|r| r.contains("rebooted"))));
    assert_check_clean(&c).await;
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(q["used"]["instances"], 9, "{q}");
    assert_eq!(q["used"]["vcpus"], 18, "{q}");
}
both_databases!(instances_go_through_their_whole_life);

async fn quota_is_never_exceeded_by_concurrent_creates(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 8).await;
    let (st, _) = c.admin.put("/v1/quotas", json!({ "project_id": c.project, "limits": { "instances": 10, "vcpus": 1000, "memory_mib": 10000000, "disk_gib": 100000, "volumes": 10 } })).await;
    assert_eq!(st, StatusCode::OK);
    let mut tasks = Vec::new();
    for k in 0..8 {
        let m = c.member.clone();
        let p = c.project.clone();
        tasks.push(tokio::spawn(async move { m.post("/v1/instances", json!({ "project_id": p, "name": format!("batch{k}"), "flavor": "2C4G", "image": "CentOS-7.9", "count": 3 })).await }));
    }
    let mut accepted = 0;
    for t in tasks {
        let (st, body) = t.await.expect("task");
        if st == StatusCode::ACCEPTED {
            accepted += 3;
        } else {
            assert_eq!(st, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["error"]["code"], "quota_exceeded");
            assert_eq!(body["error"]["details"]["resource"], "instances", "{body}");
        }
    }
    assert_eq!(accepted, 9, "exactly three batches of three fit in ten");
    settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(quota_is_never_exceeded_by_concurrent_creates);

async fn anti_affinity_beyond_the_hosts_is_refused(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 3).await;
    let (st, body) = create(
        &c,
        "db",
        4,
        json!({ "group": { "name": "数据库集群", "policy": "anti_affinity" } }),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["error"]["details"]["reason"],
        "anti_affinity_exceeds_hosts"
    );
    let (st, _) = create(
        &c,
        "db",
        3,
        json!({ "group": { "name": "数据库集群", "policy": "anti_affinity" } }),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let items = settle(&c).await;
    let hosts: std::collections::HashSet<&str> =
        items.iter().filter_map(|i| i["host_id"].as_str()).collect();
    assert_eq!(hosts.len(), 3, "every member on its own host");
    // A fourth member has no host left: it is undone into error, holding nothing.
    let (st, _) = create(
        &c,
        "db4",
        1,
        json!({ "group": { "name": "数据库集群", "policy": "anti_affinity" } }),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let items = settle(&c).await;
    let last = items.iter().find(|i| i["name"] == "db4").expect("db4");
    assert_eq!(last["state"], "error", "{last}");
    assert!(
        last["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("anti-affinity")),
        "{last}"
    );
    assert_check_clean(&c).await;
}
both_databases!(anti_affinity_beyond_the_hosts_is_refused);

async fn injected_failures_leak_nothing(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 6).await;
    let (st, _) = c
        .admin
        .patch(
            &format!("/v1/providers/{}", c.provider),
            json!({ "sim": { "failure_probability": 1.0 } }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    create(&c, "doomed", 5, json!({})).await;
    let items = settle(&c).await;
    assert!(items.iter().all(|i| i["state"] == "error"), "{items:?}");
    assert_check_clean(&c).await;
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(
        q["used"]["instances"], 0,
        "undone creates give their quota back: {q}"
    );
    c.admin
        .patch(
            &format!("/v1/providers/{}", c.provider),
            json!({ "sim": { "failure_probability": 0.2 } }),
        )
        .await;
    create(&c, "flaky", 30, json!({})).await;
    let items = settle(&c).await;
    let running = items.iter().filter(|i| i["state"] == "running").count();
    assert!(
        running >= 25,
        "retries carry most creates through p = 0.2: {running}"
    );
    assert_check_clean(&c).await;
    for i in items {
        c.member
            .delete(&format!("/v1/instances/{}", i["id"].as_str().expect("id")))
            .await;
    }
    settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(injected_failures_leak_nothing);

/// Wraps the simulator and fails the n-th driver call for good.
struct FailAt {
    inner: Arc<dyn ComputeDriver>,
    calls: AtomicU32,
    fail_at: u32,
}

impl FailAt {
    fn tick(&self) -> Result<(), DriverError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(DriverError::Permanent(format!(
                "injected failure at call {}",
                self.fail_at
            )));
        }
        Ok(())
    }
}

impl ComputeDriver for FailAt {
    fn kind(&self) -> &'static str {
        "sim"
    }
    fn simulated(&self) -> bool {
        true
    }
    fn create_disk<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.tick()?;
            self.inner.create_disk(spec).await
        })
    }
    fn delete_disk(&self, i: uuid::Uuid, h: uuid::Uuid) -> DriverFuture<'_, ()> {
        self.inner.delete_disk(i, h)
    }
    fn ensure_instance<'a>(
        &'a self,
        spec: &'a InstanceSpec,
        state: PowerState,
    ) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.tick()?;
            self.inner.ensure_instance(spec, state).await
        })
    }
    fn reboot(&self, i: uuid::Uuid, h: uuid::Uuid) -> DriverFuture<'_, ()> {
        self.inner.reboot(i, h)
    }
    fn resize<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        self.inner.resize(spec)
    }
    fn delete_instance(&self, i: uuid::Uuid, h: uuid::Uuid) -> DriverFuture<'_, ()> {
        self.inner.delete_instance(i, h)
    }
    fn status(&self, i: uuid::Uuid, h: uuid::Uuid) -> DriverFuture<'_, PowerState> {
        self.inner.status(i, h)
    }
    fn console_log(&self, i: uuid::Uuid, h: uuid::Uuid, n: usize) -> DriverFuture<'_, String> {
        self.inner.console_log(i, h, n)
    }
    fn attach_volume(
        &self,
        v: uuid::Uuid,
        s: u64,
        i: uuid::Uuid,
        h: uuid::Uuid,
    ) -> DriverFuture<'_, ()> {
        self.inner.attach_volume(v, s, i, h)
    }
    fn detach_volume(&self, v: uuid::Uuid, i: uuid::Uuid, h: uuid::Uuid) -> DriverFuture<'_, ()> {
        self.inner.detach_volume(v, i, h)
    }
    fn host_alive(&self, h: uuid::Uuid) -> DriverFuture<'_, bool> {
        self.inner.host_alive(h)
    }
}

async fn a_failure_at_each_create_step_is_undone(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let state = &ts.server.as_ref().expect("server").state;
    let pid: zy_model::id::ProviderId = c.provider.parse().expect("id");
    let sim = state.compute.drivers.sim(pid).expect("sim");
    // The create saga calls the driver twice: create the disk, then define and start.
    for fail_at in 1..=2 {
        state.compute.drivers.set(
            pid,
            Arc::new(FailAt {
                inner: sim.clone(),
                calls: AtomicU32::new(0),
                fail_at,
            }),
        );
        create(&c, &format!("step{fail_at}"), 1, json!({})).await;
        let items = settle(&c).await;
        let i = items
            .iter()
            .find(|i| i["name"] == format!("step{fail_at}"))
            .expect("instance");
        assert_eq!(i["state"], "error", "failure at driver call {fail_at}: {i}");
        assert!(
            i["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("injected")),
            "{i}"
        );
        assert_check_clean(&c).await;
        assert_eq!(
            sim.counts().disks,
            0,
            "no disk left behind after failing at call {fail_at}"
        );
    }
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(q["used"]["instances"], 0);
}
both_databases!(a_failure_at_each_create_step_is_undone);

async fn every_saga_step_can_run_twice(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 3).await;
    ts.server
        .as_ref()
        .expect("server")
        .state
        .compute
        .saga_hooks
        .twice
        .store(true, Ordering::SeqCst);
    let (st, _) = create(
        &c,
        "twice",
        3,
        json!({ "group": { "name": "反亲和", "policy": "anti_affinity" } }),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    create(&c, "plain", 3, json!({})).await;
    let items = settle(&c).await;
    assert_eq!(
        items.iter().filter(|i| i["state"] == "running").count(),
        6,
        "{items:?}"
    );
    let group_hosts: std::collections::HashSet<&str> = items
        .iter()
        .filter(|i| i["group_id"].is_string())
        .filter_map(|i| i["host_id"].as_str())
        .collect();
    assert_eq!(
        group_hosts.len(),
        3,
        "anti-affinity holds with every step run twice"
    );
    assert_check_clean(&c).await;
    for i in items.iter().filter(|i| i["state"] == "running").take(1) {
        let id = i["id"].as_str().expect("id");
        c.member
            .post(&format!("/v1/instances/{id}/stop"), json!({}))
            .await;
        settle(&c).await;
        c.member
            .post(
                &format!("/v1/instances/{id}/resize"),
                json!({ "flavor": "4C8G" }),
            )
            .await;
        c.member
            .post(&format!("/v1/instances/{id}/start"), json!({}))
            .await;
        settle(&c).await;
    }
    for i in &items {
        c.member
            .delete(&format!("/v1/instances/{}", i["id"].as_str().expect("id")))
            .await;
    }
    settle(&c).await;
    assert_check_clean(&c).await;
    let (_, hosts) = c.admin.get("/v1/hosts").await;
    assert!(
        hosts["items"]
            .as_array()
            .expect("hosts")
            .iter()
            .all(|h| h["used_vcpus"] == 0),
        "{hosts}"
    );
}
both_databases!(every_saga_step_can_run_twice);

async fn a_crash_in_the_middle_recovers_by_itself(db: Db) {
    let mut ts = TestServer::start(db).await;
    let c = cloud(&ts, 10).await;
    let (st, _) = create(&c, "crash", 100, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    // Stop at once, dropping whatever the reconciler was doing.
    ts.restart().await;
    let member = Session {
        url: ts.url.clone(),
        ..c.member.clone()
    };
    let admin = Session {
        url: ts.url.clone(),
        ..c.admin.clone()
    };
    let c = Cloud { admin, member, ..c };
    let items = settle(&c).await;
    assert_eq!(items.len(), 100);
    assert!(
        items
            .iter()
            .all(|i| i["state"] == "running" || i["state"] == "error"),
        "{items:?}"
    );
    assert_check_clean(&c).await;
}
both_databases!(a_crash_in_the_middle_recovers_by_itself);

async fn volumes_attach_extend_detach_and_give_back_their_space(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let (_, created) = create(&c, "app", 1, json!({})).await;
    settle(&c).await;
    let instance = created["items"][0]["id"].as_str().expect("id").to_string();
    let (st, v) = c
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": "数据盘", "size_gib": 100 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let vol = v["id"].as_str().expect("id").to_string();
    let (st, too_big) = c
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": "超大盘", "size_gib": 5000 }),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "the 1000 GiB pool cannot hold it: {too_big}"
    );
    let (st, a) = c
        .member
        .post(
            &format!("/v1/volumes/{vol}/attach"),
            json!({ "instance_id": instance }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    assert_eq!(a["state"], "in_use");
    let (_, console) = c
        .member
        .get(&format!("/v1/instances/{instance}/console"))
        .await;
    assert!(
        console["output"]
            .as_str()
            .is_some_and(|o| o.contains("vd") || o.contains("volume")),
        "{console}"
    );
    let (st, _) = c.member.delete(&format!("/v1/volumes/{vol}")).await;
    assert_eq!(st, StatusCode::CONFLICT, "attached volumes are not deleted");
    let (st, e) = c
        .member
        .post(
            &format!("/v1/volumes/{vol}/extend"),
            json!({ "size_gib": 200 }),
        )
        .await;
    assert_eq!((st, e["size_gib"].as_u64()), (StatusCode::OK, Some(200)));
    let (st, _) = c
        .member
        .post(
            &format!("/v1/volumes/{vol}/extend"),
            json!({ "size_gib": 50 }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "volumes never shrink");
    let (st, d) = c
        .member
        .post(&format!("/v1/volumes/{vol}/detach"), json!({}))
        .await;
    assert_eq!(
        (st, d["state"].as_str()),
        (StatusCode::OK, Some("available"))
    );
    assert_check_clean(&c).await;
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(q["used"]["volumes"], 1);
    assert_eq!(
        q["used"]["disk_gib"], 240,
        "instance disk 40 + volume 200: {q}"
    );
    // Deleting an instance frees the volumes attached to it.
    c.member
        .post(
            &format!("/v1/volumes/{vol}/attach"),
            json!({ "instance_id": instance }),
        )
        .await;
    c.member.delete(&format!("/v1/instances/{instance}")).await;
    settle(&c).await;
    let (_, v) = c.member.get(&format!("/v1/volumes/{vol}")).await;
    assert_eq!(v["state"], "available", "{v}");
    let (st, _) = c.member.delete(&format!("/v1/volumes/{vol}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(
        (
            q["used"]["volumes"].as_i64(),
            q["used"]["disk_gib"].as_i64()
        ),
        (Some(0), Some(0)),
        "{q}"
    );
    assert_check_clean(&c).await;
}
both_databases!(volumes_attach_extend_detach_and_give_back_their_space);

async fn two_replicas_never_overrun_quota_or_hosts(db: Db) {
    let ts = TestServer::start(db).await;
    // Two hosts of 8 vCPU without overcommit take exactly eight 2-vCPU instances.
    let admin = ts.platform_admin().await;
    let (_, prov) = admin
        .post(
            "/v1/providers",
            json!({ "name": "天翼云（模拟）", "kind": "sim" }),
        )
        .await;
    let (_, zone) = admin
        .post(
            "/v1/zones",
            json!({ "provider_id": prov["id"], "region": "宜宾", "name": "二区" }),
        )
        .await;
    admin.post("/v1/hosts", json!({ "zone_id": zone["id"], "name_prefix": "ct", "count": 2, "vcpus": 8, "memory_mib": 65536, "disk_gib": 2000, "cpu_ratio_permille": 1000 })).await;
    admin
        .post(
            "/v1/flavors",
            json!({ "name": "2C4G", "vcpus": 2, "memory_mib": 4096 }),
        )
        .await;
    admin
        .post(
            "/v1/images",
            json!({ "name": "CentOS-7.9", "os": "Linux", "min_disk_gib": 40 }),
        )
        .await;
    let d = department(&admin, "宜宾市公安局", "GAJ").await;
    let p = project(&admin, &d, "治安综合管理平台").await;
    let member = ts.new_user(&admin, "gaj.ops", Some(&d)).await;
    ts.grant(&admin, &member, Role::DeptMember, Some(&d), Some(&p))
        .await;
    admin.put("/v1/quotas", json!({ "project_id": p, "limits": { "instances": 10, "vcpus": 1000, "memory_mib": 10000000, "disk_gib": 100000, "volumes": 10 } })).await;
    // A second replica on the same database.
    let second = zy_server::start(ts.config.clone())
        .await
        .expect("second replica");
    let urls = [ts.url.clone(), format!("http://{}", second.addr)];
    let mut tasks = Vec::new();
    for k in 0..8 {
        let s = Session {
            url: urls[k % 2].clone(),
            ..member.clone()
        };
        let p = p.clone();
        tasks.push(tokio::spawn(async move { s.post("/v1/instances", json!({ "project_id": p, "name": format!("r{k}"), "flavor": "2C4G", "image": "CentOS-7.9", "count": 3 })).await }));
    }
    let mut accepted = 0;
    for t in tasks {
        let (st, body) = t.await.expect("task");
        if st == StatusCode::ACCEPTED {
            accepted += 3;
        } else {
            assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
        }
    }
    assert_eq!(
        accepted, 9,
        "the quota of ten admits three batches, whichever replica took them"
    );
    let c = Cloud {
        admin: admin.clone(),
        member: member.clone(),
        project: p.clone(),
        provider: prov["id"].as_str().unwrap_or_default().to_string(),
    };
    let items = settle(&c).await;
    let running = items.iter().filter(|i| i["state"] == "running").count();
    assert_eq!(
        running, 8,
        "two hosts hold eight, the ninth has no room: {items:?}"
    );
    let (_, hosts) = admin.get("/v1/hosts").await;
    for h in hosts["items"].as_array().expect("hosts") {
        assert!(
            h["used_vcpus"].as_u64() <= h["vcpus"].as_u64(),
            "oversubscribed: {h}"
        );
    }
    assert_check_clean(&c).await;
    second.stop().await;
}
both_databases!(two_replicas_never_overrun_quota_or_hosts);

async fn a_zone_set_to_spread_uses_the_emptiest_hosts(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 4).await;
    let (_, zones) = c.admin.get("/v1/zones").await;
    let zone = zones["items"][0]["id"].as_str().expect("zone").to_string();
    let (st, z) = c
        .admin
        .patch(
            &format!("/v1/zones/{zone}"),
            json!({ "strategy": "spread" }),
        )
        .await;
    assert_eq!(
        (st, z["strategy"].as_str()),
        (StatusCode::OK, Some("spread"))
    );
    assert_eq!(
        c.member
            .patch(&format!("/v1/zones/{zone}"), json!({ "strategy": "pack" }))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    create(&c, "spread", 4, json!({})).await;
    let items = settle(&c).await;
    let hosts: std::collections::HashSet<&str> =
        items.iter().filter_map(|i| i["host_id"].as_str()).collect();
    assert_eq!(
        hosts.len(),
        4,
        "spread puts each on its own host: {items:?}"
    );
    // Back to packing: the next two share the fullest host instead of opening… all are equal
    // now, so they simply share one host.
    c.admin
        .patch(&format!("/v1/zones/{zone}"), json!({ "strategy": "pack" }))
        .await;
    create(&c, "packed", 2, json!({})).await;
    let items = settle(&c).await;
    let packed: std::collections::HashSet<&str> = items
        .iter()
        .filter(|i| i["name"].as_str().is_some_and(|n| n.starts_with("packed")))
        .filter_map(|i| i["host_id"].as_str())
        .collect();
    assert_eq!(packed.len(), 1, "pack fills one host: {items:?}");
    assert_check_clean(&c).await;
}
both_databases!(a_zone_set_to_spread_uses_the_emptiest_hosts);

async fn instance_lists_filter_by_state_name_and_department(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    create(&c, "web", 2, json!({})).await;
    create(&c, "db", 1, json!({ "start": false })).await;
    settle(&c).await;
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        n.sort();
        n
    };
    let (st, v) = c.member.get("/v1/instances?state=stopped").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(names(&v), ["db"]);
    let (_, v) = c.member.get("/v1/instances?q=WEB").await;
    assert_eq!(names(&v), ["web-001", "web-002"]);
    let (_, v) = c.member.get("/v1/instances?q=web&state=stopped").await;
    assert_eq!(names(&v), Vec::<String>::new());
    let (_, p) = c.member.get(&format!("/v1/projects/{}", c.project)).await;
    let dept = p["department_id"].as_str().expect("department").to_string();
    let (_, v) = c
        .admin
        .get(&format!("/v1/instances?department_id={dept}"))
        .await;
    assert_eq!(names(&v).len(), 3);
    let other = uuid::Uuid::now_v7();
    let (_, v) = c
        .admin
        .get(&format!("/v1/instances?department_id={other}"))
        .await;
    assert_eq!(names(&v).len(), 0);
    let (st, v) = c.member.get("/v1/instances?state=flying").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["details"]["field"], "state");
}
both_databases!(instance_lists_filter_by_state_name_and_department);
