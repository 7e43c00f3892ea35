//! Leases (使用期限) and the recycle bin (回收站) on a clock shortened to seconds:
//! reminders once each → stop → release → restore; an extension starting over; a server
//! restart in the middle; the purge removing the disk from the provider; two replicas'
//! lease managers running the same pass at once never reminding twice.

use crate::both_databases;
use crate::common::*;
use crate::compute::{assert_check_clean, cloud, create, Cloud};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use zy_model::role::Role;
use zy_server::tasks::Task;

/// RFC 3339 `secs` seconds from now.
fn in_secs(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(secs * 1000)).to_rfc3339()
}

async fn settings(c: &Cloud, offsets: &[i64], grace: i64, retention: i64) {
    let (st, b) = c
        .admin
        .put(
            "/v1/system/lease-settings",
            json!({ "reminder_offsets_secs": offsets, "grace_secs": grace, "retention_secs": retention }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

/// The department admin of the cloud's department.
async fn dept_admin(ts: &TestServer, c: &Cloud) -> Session {
    let (_, p) = c.admin.get(&format!("/v1/projects/{}", c.project)).await;
    let d = p["department_id"].as_str().expect("department").to_string();
    let s = ts.new_user(&c.admin, "wjw.admin", Some(&d)).await;
    ts.grant(&c.admin, &s, Role::DeptAdmin, Some(&d), None)
        .await;
    s
}

async fn events(s: &Session, id: &str) -> Vec<Value> {
    let (st, b) = s.get(&format!("/v1/instances/{id}/events")).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["items"].as_array().cloned().unwrap_or_default()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["to_state"] == kind).count()
}

/// Polls the instance until `done` holds (within 60 s).
async fn until(s: &Session, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, i) = s.get(&format!("/v1/instances/{id}")).await;
        if done(&i) {
            return i;
        }
        assert!(Instant::now() < deadline, "never {what}: {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn one_instance(c: &Cloud, name: &str, lease_end: Option<String>) -> String {
    let extra = match lease_end {
        Some(e) => json!({ "lease_end": e }),
        None => json!({}),
    };
    let (st, b) = create(c, name, 1, extra).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let id = b["items"][0]["id"].as_str().expect("id").to_string();
    until(&c.member, &id, "running", |i| i["state"] == "running").await;
    id
}

async fn a_lease_runs_out_reminds_stops_releases_and_restores(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let da = dept_admin(&ts, &c).await;
    settings(&c, &[4, 2], 2, 3600).await;
    let id = one_instance(&c, "lease", Some(in_secs(6))).await;
    let (_, i) = c.member.get(&format!("/v1/instances/{id}")).await;
    assert!(i["lease_end"].is_string(), "{i}");
    // A member may not move the lease; its department admin may (tested below).
    let (st, _) = c
        .member
        .put(
            &format!("/v1/instances/{id}/lease"),
            json!({ "lease_end": in_secs(3600) }),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // At the end: stopped, and a start is refused until the lease is extended.
    let ended = until(&c.member, &id, "ended", |i| i["lease_ended"] == true).await;
    let (st, b) = c
        .member
        .post(&format!("/v1/instances/{id}/start"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b} after {ended}");
    let reason = b["error"]["details"]["reason"].as_str().unwrap_or_default();
    assert!(reason == "lease_ended" || reason == "in_recycle_bin", "{b}");

    // After the grace period: released to the recycle bin, stopped, out of the list.
    let i = until(&c.member, &id, "released", |i| {
        i["recycled_at"].is_string() && i["state"] == "stopped"
    })
    .await;
    assert!(i["purge_at"].is_string(), "{i}");
    let (_, normal) = c
        .member
        .get(&format!("/v1/instances?project_id={}", c.project))
        .await;
    assert!(
        normal["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|x| x["id"] != id.as_str()),
        "{normal}"
    );
    let (_, bin) = c
        .member
        .get(&format!(
            "/v1/instances?project_id={}&recycled=true",
            c.project
        ))
        .await;
    assert_eq!(bin["items"].as_array().map(Vec::len), Some(1), "{bin}");
    assert_eq!(bin["items"][0]["id"], id.as_str());
    // The bin still counts against the quota, and the quota view says how much.
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(q["used"]["instances"], 1, "{q}");
    assert_eq!(q["recycled"]["instances"], 1, "{q}");
    assert_eq!(q["recycled"]["vcpus"], 2, "{q}");
    assert_check_clean(&c).await;

    // Each reminder went out once, then the end and the release: the timeline says so.
    let ev = events(&c.member, &id).await;
    assert_eq!(count(&ev, "lease_ending"), 2, "{ev:?}");
    assert_eq!(count(&ev, "lease_ended"), 1, "{ev:?}");
    assert_eq!(count(&ev, "recycled"), 1, "{ev:?}");

    // Restore: refused to a member and twice; the department admin brings it back stopped,
    // without the lease that ended, and it can run again.
    let (st, _) = c
        .member
        .post(&format!("/v1/instances/{id}/restore"), json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, r) = da
        .post(&format!("/v1/instances/{id}/restore"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["state"], "stopped", "{r}");
    assert!(
        r["recycled_at"].is_null() && r["lease_end"].is_null() && r["lease_ended"] == false,
        "{r}"
    );
    let (st, b) = da
        .post(&format!("/v1/instances/{id}/restore"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    let (st, b) = c
        .member
        .post(&format!("/v1/instances/{id}/start"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    until(&c.member, &id, "running again", |i| i["state"] == "running").await;
    assert_eq!(count(&events(&c.member, &id).await, "restored"), 1);
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(
        (
            q["used"]["instances"].as_i64(),
            q["recycled"]["instances"].as_i64()
        ),
        (Some(1), Some(0)),
        "{q}"
    );
    // Nothing more happens to it: the lease is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ev = events(&c.member, &id).await;
    assert_eq!(count(&ev, "lease_ending"), 2, "{ev:?}");
    assert_check_clean(&c).await;
}
both_databases!(a_lease_runs_out_reminds_stops_releases_and_restores);

/// The sim provider's disks that belong to `id`.
fn disks_of(ts: &TestServer, id: &str) -> usize {
    let server = ts.server.as_ref().expect("running");
    server
        .state
        .compute
        .drivers
        .all_sims()
        .into_iter()
        .flat_map(|(_, sim)| sim.all_disks())
        .filter(|(_, inst)| inst.to_string() == id)
        .count()
}

async fn an_extension_starts_over_and_a_restart_mid_way_continues_to_the_purge(db: Db) {
    let mut ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let da = dept_admin(&ts, &c).await;
    settings(&c, &[3], 1, 2).await;
    let id = one_instance(&c, "extend", Some(in_secs(4))).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&events(&c.member, &id).await, "lease_ending") == 0 {
        assert!(Instant::now() < deadline, "no reminder");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Extended before it ends: the reminder will go out again for the new end (far
    // enough away that the restart below, with the singleton's takeover on PostgreSQL,
    // is over before it is due; a reminder whose moment passes while no replica runs is
    // superseded by the end, see `zy_model::lease::step`).
    let (st, b) = da
        .put(
            &format!("/v1/instances/{id}/lease"),
            json!({ "lease_end": in_secs(20) }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["lease_ended"], false);
    // A lease end in the past is refused with the field named.
    let (st, b) = da
        .put(
            &format!("/v1/instances/{id}/lease"),
            json!({ "lease_end": in_secs(-60) }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["details"]["field"], "lease_end", "{b}");

    // The server stops and a new one starts on the same database in the middle.
    ts.restart().await;
    let member = Session {
        url: ts.url.clone(),
        ..c.member.clone()
    };
    let admin = Session {
        url: ts.url.clone(),
        ..c.admin.clone()
    };
    until(&member, &id, "released after the restart", |i| {
        i["recycled_at"].is_string() || i["state"] == "deleted" || i["desired"] == "deleted"
    })
    .await;
    // Retention of 2 s: purged through the delete saga, disk and all.
    until(&member, &id, "purged", |i| i["state"] == "deleted").await;
    assert_eq!(
        disks_of(&ts, &id),
        0,
        "a purged instance leaves no disk on the provider"
    );
    let ev = events(&member, &id).await;
    assert_eq!(
        count(&ev, "lease_ending"),
        2,
        "one reminder per lease: {ev:?}"
    );
    assert_eq!(count(&ev, "lease_ended"), 1, "{ev:?}");
    assert_eq!(count(&ev, "recycled"), 1, "{ev:?}");
    assert_eq!(count(&ev, "purging"), 1, "{ev:?}");
    let (_, q) = member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(
        q["used"]["instances"], 0,
        "the purge gave the quota back: {q}"
    );
    let c2 = Cloud {
        admin,
        member,
        project: c.project.clone(),
        provider: c.provider.clone(),
    };
    assert_check_clean(&c2).await;
    // The system's own steps are audited: reminders, end, release and purge.
    let q = zy_store::audit::AuditQuery {
        actor: Some("system".into()),
        target_id: Some(id.clone()),
        ..Default::default()
    };
    let actions: Vec<String> = zy_store::audit::list(ts.store(), &q, 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "remind_instance_lease",
        "end_instance_lease",
        "release_instance",
        "purge_instance",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
}
both_databases!(an_extension_starts_over_and_a_restart_mid_way_continues_to_the_purge);

async fn two_replicas_running_the_same_pass_never_remind_twice(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    // Reminders at 3 and 2 s before the end; the release far away.
    settings(&c, &[3, 2], 3600, 3600).await;
    let second = zy_server::start(ts.config.clone())
        .await
        .expect("second replica");
    let mut ids = Vec::new();
    for k in 0..4 {
        ids.push(one_instance(&c, &format!("twin{k}"), Some(in_secs(5))).await);
    }
    // Both replicas' lease managers, driven by hand as fast as they go (their singleton
    // leases would otherwise keep one of them idle), besides the one the runner drives.
    let a =
        zy_server::app::leases::LeaseManager(ts.server.as_ref().expect("running").state.clone());
    let b = zy_server::app::leases::LeaseManager(second.state.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (x, y) = tokio::join!(a.activate(), b.activate());
        x.expect("pass a");
        y.expect("pass b");
        let mut all_ended = true;
        for id in &ids {
            let (_, i) = c.member.get(&format!("/v1/instances/{id}")).await;
            all_ended &= i["lease_ended"] == true;
        }
        if all_ended {
            break;
        }
    }
    for id in &ids {
        let ev = events(&c.member, id).await;
        assert_eq!(count(&ev, "lease_ending"), 2, "{id}: {ev:?}");
        assert_eq!(count(&ev, "lease_ended"), 1, "{id}: {ev:?}");
    }
    second.stop().await;
}
both_databases!(two_replicas_running_the_same_pass_never_remind_twice);

async fn release_and_lease_refuse_what_they_cannot_do(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let da = dept_admin(&ts, &c).await;
    let id = one_instance(&c, "plain", None).await;
    // Settings are validated.
    for bad in [
        json!({ "reminder_offsets_secs": [0], "grace_secs": 1, "retention_secs": 1 }),
        json!({ "reminder_offsets_secs": [1], "grace_secs": -1, "retention_secs": 1 }),
        json!({ "reminder_offsets_secs": [1], "grace_secs": 1, "retention_secs": 1, "x": 1 }),
    ] {
        let (st, b) = c.admin.put("/v1/system/lease-settings", bad).await;
        assert!(
            st == StatusCode::BAD_REQUEST || st == StatusCode::UNPROCESSABLE_ENTITY,
            "{st} {b}"
        );
        assert_error_body(st, &b);
    }
    let (_, s) = c.admin.get("/v1/system/lease-settings").await;
    assert_eq!(
        s["reminder_offsets_secs"],
        json!([604800, 259200, 86400]),
        "{s}"
    );
    assert_eq!(
        (s["grace_secs"].as_i64(), s["retention_secs"].as_i64()),
        (Some(604800), Some(604800))
    );
    // A create with a lease in the past is refused before anything is taken.
    let (st, b) = create(&c, "past", 1, json!({ "lease_end": in_secs(-5) })).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (st, b) = c
        .member
        .post(
            &format!("/v1/instances/{id}/release"),
            json!({ "reason": "x".repeat(201) }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // A release by a member (the console's "delete"): stopped, in the bin, restorable.
    let (st, b) = c
        .member
        .post(
            &format!("/v1/instances/{id}/release"),
            json!({ "reason": "项目结束" }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let i = until(&c.member, &id, "stopped in the bin", |i| {
        i["state"] == "stopped"
    })
    .await;
    assert!(
        i["recycle_reason"]
            .as_str()
            .is_some_and(|r| r.contains("项目结束")),
        "{i}"
    );
    for (path, body) in [
        (format!("/v1/instances/{id}/release"), json!({})),
        (format!("/v1/instances/{id}/start"), json!({})),
        (
            format!("/v1/instances/{id}/resize"),
            json!({ "flavor": "4C8G" }),
        ),
    ] {
        let (st, b) = c.member.post(&path, body).await;
        assert_eq!(st, StatusCode::CONFLICT, "{path}: {b}");
        assert_eq!(b["error"]["details"]["reason"], "in_recycle_bin", "{b}");
    }
    let (st, b) = da
        .put(
            &format!("/v1/instances/{id}/lease"),
            json!({ "lease_end": in_secs(3600) }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    // Restored with a new lease in one step.
    let (st, r) = da
        .post(
            &format!("/v1/instances/{id}/restore"),
            json!({ "lease_end": in_secs(86400) }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert!(r["lease_end"].is_string(), "{r}");
    // "Delete now" is still the immediate delete, also from the bin.
    let (st, b) = c
        .member
        .post(&format!("/v1/instances/{id}/release"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let (st, b) = da.delete(&format!("/v1/instances/{id}")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    until(&c.member, &id, "deleted", |i| i["state"] == "deleted").await;
    assert_eq!(disks_of(&ts, &id), 0);
    assert_check_clean(&c).await;
}
both_databases!(release_and_lease_refuse_what_they_cannot_do);

async fn the_demo_has_a_lease_ending_soon_and_an_instance_in_the_bin(db: Db) {
    let ts = TestServer::start_with(db, true).await;
    let admin = ts
        .login("gaj.admin", zy_server::demo::DEMO_PASSWORD)
        .await
        .expect("demo login");
    let (_, bin) = admin.get("/v1/instances?recycled=true").await;
    let bin = bin["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(bin.len(), 1, "{bin:?}");
    assert!(bin[0]["purge_at"].is_string(), "{bin:?}");
    let (_, live) = admin.get("/v1/instances").await;
    let soon: Vec<&Value> = live["items"]
        .as_array()
        .map(|a| a.iter().filter(|i| i["lease_end"].is_string()).collect())
        .unwrap_or_default();
    assert_eq!(soon.len(), 1, "{live}");
    let id = soon[0]["id"].as_str().expect("id").to_string();
    // Two days left: the 3-day reminder goes out on the first pass, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&events(&admin, &id).await, "lease_ending") == 0 {
        assert!(Instant::now() < deadline, "no reminder");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(&events(&admin, &id).await, "lease_ending"), 1);
}
both_databases!(the_demo_has_a_lease_ending_soon_and_an_instance_in_the_bin);

async fn a_volume_in_the_recycle_bin_is_restored_or_purged(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let da = dept_admin(&ts, &c).await;
    settings(&c, &[60], 60, 3).await;
    let vol = |name: &'static str| {
        let c = &c;
        async move {
            let (st, v) = c
                .member
                .post(
                    "/v1/volumes",
                    json!({ "project_id": c.project, "name": name, "size_gib": 10 }),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            v["id"].as_str().expect("id").to_string()
        }
    };
    let keep = vol("keep").await;
    let gone = vol("gone").await;
    let i = one_instance(&c, "host-of-volume", None).await;
    // An attached volume is not released; a detached one is, and leaves the list.
    let (st, b) = c
        .member
        .post(
            &format!("/v1/volumes/{keep}/attach"),
            json!({ "instance_id": i }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = c
        .member
        .post(&format!("/v1/volumes/{keep}/release"), json!({}))
        .await;
    assert_eq!(
        (st, b["error"]["details"]["reason"].as_str()),
        (StatusCode::CONFLICT, Some("attached")),
        "{b}"
    );
    let (st, _) = c
        .member
        .post(&format!("/v1/volumes/{keep}/detach"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    for v in [&keep, &gone] {
        let (st, b) = c
            .member
            .post(
                &format!("/v1/volumes/{v}/release"),
                json!({ "reason": "迁移完成" }),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        assert!(b["purge_at"].is_string(), "{b}");
    }
    let (_, list) = c
        .member
        .get(&format!("/v1/volumes?project_id={}", c.project))
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    let (_, bin) = c
        .member
        .get(&format!(
            "/v1/volumes?project_id={}&recycled=true",
            c.project
        ))
        .await;
    assert_eq!(bin["items"].as_array().map(Vec::len), Some(2), "{bin}");
    // In the bin: not attachable; restored by the department admin only.
    let (st, b) = c
        .member
        .post(
            &format!("/v1/volumes/{keep}/attach"),
            json!({ "instance_id": i }),
        )
        .await;
    assert_eq!(
        (st, b["error"]["details"]["reason"].as_str()),
        (StatusCode::CONFLICT, Some("in_recycle_bin")),
        "{b}"
    );
    let (st, _) = c
        .member
        .post(&format!("/v1/volumes/{keep}/restore"), json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, b) = da
        .post(&format!("/v1/volumes/{keep}/restore"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["recycled_at"].is_null(), "{b}");
    // The other is purged after 3 s: gone, its space and quota given back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, _) = c.member.get(&format!("/v1/volumes/{gone}")).await;
        if st == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "never purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(
        (
            q["used"]["volumes"].as_i64(),
            q["used"]["disk_gib"].as_i64()
        ),
        (Some(1), Some(50)),
        "{q}"
    );
    assert_check_clean(&c).await;
}
both_databases!(a_volume_in_the_recycle_bin_is_restored_or_purged);

/// Not a test: how long the lease manager takes to record reminders, 1,000 leases due at
/// once (`docs/BENCHMARKS.md`). Run with
/// `cargo nextest run -p zy-server --run-ignored only -E 'test(lease_manager_throughput)' --no-capture`.
async fn lease_manager_throughput(db: Db) {
    let ts = TestServer::start(db.clone()).await;
    let c = cloud(&ts, 40).await;
    c.admin.put("/v1/quotas", json!({ "project_id": c.project, "limits": { "instances": 2000, "vcpus": 100000, "memory_mib": 100000000, "disk_gib": 10000000, "volumes": 10 } })).await;
    let (_, p) = c.admin.get(&format!("/v1/projects/{}", c.project)).await;
    let d = p["department_id"].as_str().expect("department").to_string();
    c.admin.put("/v1/quotas", json!({ "department_id": d, "limits": { "instances": 2000, "vcpus": 100000, "memory_mib": 100000000, "disk_gib": 10000000, "volumes": 10 } })).await;
    // Reminders far from now while the instances are made, so none is due yet.
    settings(&c, &[60], 3600, 3600).await;
    for k in 0..2 {
        let (st, b) = create(
            &c,
            &format!("bulk{k}"),
            500,
            json!({ "lease_end": in_secs(3600), "start": false }),
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    }
    crate::compute::settle(&c).await;
    let m =
        zy_server::app::leases::LeaseManager(ts.server.as_ref().expect("running").state.clone());
    // Now every lease is due for its reminder (and re-examined at once).
    settings(&c, &[7200], 3600, 3600).await;
    let started = Instant::now();
    let (mut reminded, mut passes, mut busiest) = (0u64, 0u32, (0u64, Duration::ZERO));
    while started.elapsed() < Duration::from_secs(60) {
        let t = Instant::now();
        let st = m.activate().await.expect("pass");
        let took = t.elapsed();
        let n = st["reminded"].as_u64().unwrap_or(0);
        reminded += n;
        passes += 1;
        if n > busiest.0 {
            busiest = (n, took);
        }
        if n == 0 && st["rescheduled"].as_u64() == Some(0) && st["lost_races"].as_u64() == Some(0) {
            break;
        }
    }
    eprintln!(
        "{db:?}: {reminded} reminders recorded by the measured passes ({passes} passes, the runner's own pass took the rest) in {:?}; busiest pass {} reminders in {:?}",
        started.elapsed(),
        busiest.0,
        busiest.1
    );
}

mod lease_manager_throughput {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, not a test"]
    async fn sqlite() {
        super::lease_manager_throughput(crate::common::Db::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, not a test"]
    async fn postgres() {
        if let Some(db) = crate::common::Db::postgres() {
            super::lease_manager_throughput(db).await
        }
    }
}
