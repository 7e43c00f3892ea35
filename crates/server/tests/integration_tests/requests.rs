//! Resource requests: from a draft through two reviews to delivered and accepted
//! instances; quota checked at submit and never oversubscribed by two final approvals at
//! the same instant; departments that take resources only through requests; reasons on
//! rejections and returns; failed deliveries rolled back; reminders sent once.

use crate::both_databases;
use crate::common::*;
use crate::compute::{assert_check_clean, cloud, Cloud};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use zy_model::role::Role;

async fn department_of(c: &Cloud) -> String {
    let (st, p) = c.admin.get(&format!("/v1/projects/{}", c.project)).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    p["department_id"].as_str().expect("department").to_string()
}

fn body(c: &Cloud, title: &str, count: u32, flavor: &str) -> Value {
    json!({
        "project_id": c.project,
        "kind": "new",
        "title": title,
        "purpose": "全民健康信息平台扩容",
        "mlps_level": 3,
        "lease_end": "2030-12-31T00:00:00+08:00",
        "items": [
            { "type": "instances", "name": title, "flavor": flavor, "image": "CentOS-7.9", "count": count },
            { "type": "volume", "name": format!("{title}-data"), "size_gib": 10 }
        ]
    })
}

async fn draft(c: &Cloud, title: &str, count: u32, flavor: &str) -> String {
    let (st, r) = c
        .member
        .post("/v1/requests", body(c, title, count, flavor))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    assert_eq!(r["state"], "draft");
    r["id"].as_str().expect("id").to_string()
}

async fn submit(c: &Cloud, id: &str) -> (StatusCode, Value) {
    c.member
        .post(&format!("/v1/requests/{id}/submit"), json!({}))
        .await
}

/// A request the department's chain approves without review (for the saga tests).
pub(crate) async fn auto_approved(c: &Cloud, title: &str) -> String {
    let d = department_of(c).await;
    let chain = json!({ "department_id": d, "kind": "new", "steps": [{ "name": "部门审核", "role": "dept_admin", "scope": "department", "deadline_hours": 24 }], "auto_max_vcpus": 64 });
    let (st, v) = c.admin.put("/v1/approval-chains", chain).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = draft(c, title, 1, "2C4G").await;
    let (st, v) = submit(c, &id).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "delivering", "approved without review: {v}");
    id
}

/// The kinds of the notices in `s`'s inbox about request `id`.
async fn notices(s: &Session, id: &str) -> Vec<String> {
    let (st, page) = s.get("/v1/me/notifications?limit=100").await;
    assert_eq!(st, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|n| n["subject_id"] == id)
                .filter_map(|n| n["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_state(s: &Session, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, r) = s.get(&format!("/v1/requests/{id}")).await;
        assert_eq!(st, StatusCode::OK, "{r}");
        if r["state"] == want {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "request never became {want}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The department's admin and the platform's supervisor, as reviewers.
async fn reviewers(ts: &TestServer, c: &Cloud) -> (Session, Session) {
    let d = department_of(c).await;
    let lead = ts.new_user(&c.admin, "wjw.lead", Some(&d)).await;
    ts.grant(&c.admin, &lead, Role::DeptAdmin, Some(&d), None)
        .await;
    let sup = ts.new_user(&c.admin, "dsj.sup", None).await;
    ts.grant(&c.admin, &sup, Role::Supervisor, None, None).await;
    (lead, sup)
}

async fn a_request_goes_from_draft_through_two_reviews_to_accepted(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 4).await;
    let (lead, sup) = reviewers(&ts, &c).await;
    let id = draft(&c, "hims", 2, "2C4G").await;
    let (st, r) = submit(&c, &id).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        (r["state"].as_str(), r["current_step"].as_u64()),
        (Some("pending"), Some(0))
    );
    assert_eq!(
        r["steps"].as_array().map(Vec::len),
        Some(2),
        "the default chain: {r}"
    );
    assert_eq!(r["totals"]["vcpus"], 4);

    // Only the step's reviewer decides it; the requester never decides their own.
    let (st, v) = sup
        .post(&format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = c
        .member
        .post(&format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

    assert_eq!(
        notices(&lead, &id).await,
        ["approval_needed"],
        "the step's reviewer is told"
    );
    assert!(
        notices(&sup, &id).await.is_empty(),
        "not yet the supervisor"
    );
    let (_, todo) = lead.get("/v1/requests?view=to_decide").await;
    assert!(
        todo["items"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["id"] == id.as_str())),
        "{todo}"
    );
    let (_, todo) = sup.get("/v1/requests?view=to_decide").await;
    assert_eq!(
        todo["items"].as_array().map(Vec::len),
        Some(0),
        "not yet the supervisor's: {todo}"
    );
    let (st, r) = lead
        .post(
            &format!("/v1/requests/{id}/approve"),
            json!({ "step": 0, "comment": "同意" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        (r["state"].as_str(), r["current_step"].as_u64()),
        (Some("pending"), Some(1))
    );
    // A second approval of the step already decided is refused, never applied twice.
    let (st, v) = lead
        .post(&format!("/v1/requests/{id}/approve"), json!({ "step": 0 }))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "the step moved on: {v}");
    assert_eq!(v["error"]["details"]["reason"], "changed_meanwhile", "{v}");

    let (st, r) = sup
        .post(
            &format!("/v1/requests/{id}/approve"),
            json!({ "step": 1, "provider_id": c.provider }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["state"], "delivering");
    assert_eq!(r["provider_id"], c.provider.as_str());
    let r = wait_state(&c.member, &id, "delivered").await;
    let delivered = r["delivered"].as_array().cloned().unwrap_or_default();
    assert_eq!(delivered.len(), 3, "two instances and a volume: {r}");
    for d in delivered.iter().filter(|d| d["kind"] == "instance") {
        let (_, i) = c
            .member
            .get(&format!("/v1/instances/{}", d["id"].as_str().unwrap_or("")))
            .await;
        assert_eq!(i["state"], "running", "{i}");
        assert_eq!(i["provider_id"], c.provider.as_str());
    }
    let mut told = notices(&c.member, &id).await;
    told.sort();
    assert_eq!(
        told,
        ["request_approved", "request_delivered"],
        "the requester is told"
    );
    assert_eq!(notices(&sup, &id).await, ["approval_needed"]);
    let (st, r) = c
        .member
        .post(&format!("/v1/requests/{id}/accept"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["state"], "accepted");
    let (_, detail) = c.member.get(&format!("/v1/requests/{id}")).await;
    let actions: Vec<&str> = detail["timeline"]
        .as_array()
        .map(|l| l.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        actions,
        [
            "draft",
            "submit",
            "approve",
            "approve",
            "delivered",
            "accept"
        ],
        "{detail}"
    );
    assert_eq!(detail["timeline"][2]["reason"], "同意");
    assert_eq!(detail["timeline"][2]["actor_name"], "测试wjw.lead");
    crate::compute::settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(a_request_goes_from_draft_through_two_reviews_to_accepted);

async fn two_final_approvals_at_once_never_take_more_quota_than_there_is(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 4).await;
    let (lead, sup) = reviewers(&ts, &c).await;
    // Room for 3 instances of 2 vCPUs: each request of 2 fits, both together do not.
    let (st, v) = c
        .admin
        .put("/v1/quotas", json!({ "project_id": c.project, "limits": { "instances": 3, "vcpus": 6, "memory_mib": 1048576, "disk_gib": 100000, "volumes": 100 } }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut ids = Vec::new();
    for t in ["a", "b"] {
        let id = draft(&c, t, 2, "2C4G").await;
        let (st, v) = submit(&c, &id).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, v) = lead
            .post(&format!("/v1/requests/{id}/approve"), json!({}))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        ids.push(id);
    }
    let (pa, pb) = (
        format!("/v1/requests/{}/approve", ids[0]),
        format!("/v1/requests/{}/approve", ids[1]),
    );
    let (a, b) = tokio::join!(sup.post(&pa, json!({})), sup.post(&pb, json!({})));
    let oks = [&a, &b]
        .iter()
        .filter(|(st, _)| *st == StatusCode::OK)
        .count();
    assert_eq!(oks, 1, "exactly one final approval wins: {a:?} {b:?}");
    let loser = if a.0 == StatusCode::OK { &b } else { &a };
    assert_eq!(loser.0, StatusCode::CONFLICT, "{loser:?}");
    assert_eq!(loser.1["error"]["code"], "quota_exceeded", "{loser:?}");
    let lost = if a.0 == StatusCode::OK {
        &ids[1]
    } else {
        &ids[0]
    };
    let (_, r) = c.member.get(&format!("/v1/requests/{lost}")).await;
    assert_eq!(
        r["state"], "pending",
        "the losing request waits for a decision: {r}"
    );

    // Beyond the quota already at submit, with the reason.
    let id = draft(&c, "c", 4, "2C4G").await;
    let (st, v) = submit(&c, &id).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
    let winner = if a.0 == StatusCode::OK {
        &ids[0]
    } else {
        &ids[1]
    };
    wait_state(&c.member, winner, "delivered").await;
    crate::compute::settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(two_final_approvals_at_once_never_take_more_quota_than_there_is);

async fn a_requests_only_department_creates_nothing_directly(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let d = department_of(&c).await;
    let (st, v) = c
        .member
        .put(
            &format!("/v1/departments/{d}/requests-only"),
            json!({ "enabled": true }),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "only the platform admin decides: {v}"
    );
    let (st, v) = c
        .admin
        .put(
            &format!("/v1/departments/{d}/requests-only"),
            json!({ "enabled": true }),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, v) = crate::compute::create(&c, "direct", 1, json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["details"]["reason"], "requests_only", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("申请")),
        "says how to apply: {v}"
    );
    let (st, v) = c
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": "direct", "size_gib": 10 }),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (_, dept) = c.admin.get(&format!("/v1/departments/{d}")).await;
    assert_eq!(dept["requests_only"], true, "{dept}");
    // Requests still work.
    let id = auto_approved(&c, "via-request").await;
    wait_state(&c.member, &id, "delivered").await;
}
both_databases!(a_requests_only_department_creates_nothing_directly);

async fn reviewers_reject_or_return_with_a_reason_and_requesters_edit_withdraw_and_copy(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let (lead, _) = reviewers(&ts, &c).await;
    let id = draft(&c, "r1", 1, "2C4G").await;
    submit(&c, &id).await;
    let (st, v) = lead
        .post(
            &format!("/v1/requests/{id}/return"),
            json!({ "reason": "  " }),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {v}"
    );
    let (st, r) = lead
        .post(
            &format!("/v1/requests/{id}/return"),
            json!({ "reason": "请说明用途" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        (r["state"].as_str(), r["note"].as_str()),
        (Some("returned"), Some("请说明用途"))
    );
    // The requester edits it (with the generation seen) and submits again.
    let mut b = body(&c, "r1", 1, "2C4G");
    b["purpose"] = json!("门诊系统，日均 3 万人次");
    let (st, v) = c.member.put(&format!("/v1/requests/{id}"), b.clone()).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an edit names its generation: {v}"
    );
    b["generation"] = r["generation"].clone();
    let (st, r) = c.member.put(&format!("/v1/requests/{id}"), b.clone()).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let (st, v) = c.member.put(&format!("/v1/requests/{id}"), b).await;
    assert_eq!(st, StatusCode::CONFLICT, "a stale generation: {v}");
    let (st, r) = submit(&c, &id).await;
    assert_eq!(
        (st, r["state"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{r}"
    );
    let (st, r) = lead
        .post(
            &format!("/v1/requests/{id}/reject"),
            json!({ "reason": "已有同类系统" }),
        )
        .await;
    assert_eq!(
        (st, r["state"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{r}"
    );
    let (st, v) = c
        .member
        .post(&format!("/v1/requests/{id}/withdraw"), json!({}))
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a rejected request cannot be withdrawn: {v}"
    );
    let (st, copy) = c
        .member
        .post(&format!("/v1/requests/{id}/copy"), json!({}))
        .await;
    assert_eq!(
        (st, copy["state"].as_str()),
        (StatusCode::CREATED, Some("draft")),
        "{copy}"
    );
    let cid = copy["id"].as_str().expect("id");
    submit(&c, cid).await;
    let (st, r) = c
        .member
        .post(&format!("/v1/requests/{cid}/withdraw"), json!({}))
        .await;
    assert_eq!(
        (st, r["state"].as_str()),
        (StatusCode::OK, Some("withdrawn")),
        "{r}"
    );
    // Mistakes in a draft are named.
    let mut bad = body(&c, "bad", 1, "128C");
    let (st, v) = c.member.post("/v1/requests", bad.clone()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["details"]["field"], "items[0].flavor", "{v}");
    bad["items"] = json!([{ "type": "release", "instance_id": uuid::Uuid::now_v7() }]);
    let (st, v) = c.member.post("/v1/requests", bad).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}
both_databases!(reviewers_reject_or_return_with_a_reason_and_requesters_edit_withdraw_and_copy);

async fn a_delivery_that_cannot_be_made_is_rolled_back_and_says_why(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    // Larger than any host: placement fails, the create is undone, the delivery too.
    let (st, v) = c
        .admin
        .post(
            "/v1/flavors",
            json!({ "name": "128C", "vcpus": 128, "memory_mib": 8192 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let d = department_of(&c).await;
    let chain = json!({ "department_id": d, "kind": "new", "steps": [{ "name": "部门审核", "role": "dept_admin", "scope": "department", "deadline_hours": 24 }], "auto_max_vcpus": 1000 });
    c.admin.put("/v1/approval-chains", chain).await;
    let id = draft(&c, "huge", 1, "128C").await;
    let (st, v) = submit(&c, &id).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let r = wait_state(&c.member, &id, "failed").await;
    assert!(
        r["note"].as_str().is_some_and(|n| n.contains("huge")),
        "names the instance: {r}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, q) = c
            .member
            .get(&format!("/v1/quotas?project_id={}", c.project))
            .await;
        if q["used"]["vcpus"] == 0 && q["used"]["volumes"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "quota given back: {q}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rolled-back instance finishes its delete before the check looks.
    crate::compute::settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(a_delivery_that_cannot_be_made_is_rolled_back_and_says_why);

async fn an_overdue_step_reminds_its_reviewers_once(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let id = draft(&c, "late", 1, "2C4G").await;
    submit(&c, &id).await;
    sql(
        &ts,
        &format!("UPDATE resource_requests SET step_due = 1 WHERE id = '{id}'"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = c.member.get(&format!("/v1/requests/{id}")).await;
        let n = r["timeline"]
            .as_array()
            .map(|l| l.iter().filter(|e| e["action"] == "remind").count())
            .unwrap_or(0);
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no reminder: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Further passes of the timer (every second in tests) never remind again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, r) = c.member.get(&format!("/v1/requests/{id}")).await;
    let n = r["timeline"]
        .as_array()
        .map(|l| l.iter().filter(|e| e["action"] == "remind").count())
        .unwrap_or(0);
    assert_eq!(n, 1, "{r}");
}
both_databases!(an_overdue_step_reminds_its_reviewers_once);

async fn two_replicas_approving_at_once_never_overrun_the_quota(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 4).await;
    let (lead, sup) = reviewers(&ts, &c).await;
    let second = zy_server::start(ts.config.clone())
        .await
        .expect("second replica");
    let sup2 = ts.new_user(&c.admin, "dsj.sup2", None).await;
    ts.grant(&c.admin, &sup2, Role::Supervisor, None, None)
        .await;
    let sup2 = Session {
        url: format!("http://{}", second.addr),
        ..sup2
    };
    let (st, v) = c
        .admin
        .put("/v1/quotas", json!({ "project_id": c.project, "limits": { "instances": 5, "vcpus": 10, "memory_mib": 1048576, "disk_gib": 100000, "volumes": 100 } }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Rounds of two requests of 2 instances each against room for 5: in every round at
    // most what fits is approved, whichever replica answers.
    let mut approved = 0;
    for round in 0..3 {
        let mut ids = Vec::new();
        for k in 0..2 {
            let id = draft(&c, &format!("r{round}{k}"), 2, "2C4G").await;
            let (st, v) = submit(&c, &id).await;
            if st != StatusCode::OK {
                assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
                continue;
            }
            let (st, v) = lead
                .post(&format!("/v1/requests/{id}/approve"), json!({}))
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            ids.push(id);
        }
        if ids.len() < 2 {
            break;
        }
        let (pa, pb) = (
            format!("/v1/requests/{}/approve", ids[0]),
            format!("/v1/requests/{}/approve", ids[1]),
        );
        let (a, b) = tokio::join!(sup.post(&pa, json!({})), sup2.post(&pb, json!({})));
        for (st, v) in [&a, &b] {
            if *st == StatusCode::OK {
                approved += 1;
            } else {
                assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
            }
        }
    }
    assert_eq!(
        approved, 2,
        "room for two requests of two instances: exactly two approved"
    );
    let (_, q) = c
        .member
        .get(&format!("/v1/quotas?project_id={}", c.project))
        .await;
    assert_eq!(q["used"]["instances"], 4, "{q}");
    second.stop().await;
    crate::compute::settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(two_replicas_approving_at_once_never_overrun_the_quota);

async fn a_crash_between_approval_and_delivery_still_ends_delivered(db: Db) {
    let mut ts = TestServer::start(db).await;
    let c = cloud(&ts, 4).await;
    let (lead, sup) = reviewers(&ts, &c).await;
    let id = draft(&c, "crash", 3, "2C4G").await;
    submit(&c, &id).await;
    lead.post(&format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    let (st, v) = sup
        .post(&format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // The server goes away with the delivery and the creates in flight.
    ts.restart().await;
    let member = Session {
        url: ts.url.clone(),
        ..c.member.clone()
    };
    let r = wait_state(&member, &id, "delivered").await;
    assert_eq!(
        r["delivered"].as_array().map(Vec::len),
        Some(4),
        "three instances and a volume: {r}"
    );
    let admin = Session {
        url: ts.url.clone(),
        ..c.admin.clone()
    };
    let (st, report) = admin.get("/v1/admin/check").await;
    assert_eq!(
        (st, &report["ok"]),
        (StatusCode::OK, &json!(true)),
        "{report}"
    );
}
both_databases!(a_crash_between_approval_and_delivery_still_ends_delivered);

async fn a_change_request_resizes_a_stopped_instance_and_adds_a_volume(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let d = department_of(&c).await;
    let chain = json!({ "department_id": d, "kind": "change", "steps": [{ "name": "部门审核", "role": "dept_admin", "scope": "department", "deadline_hours": 24 }], "auto_max_vcpus": 64 });
    let (st, v) = c.admin.put("/v1/approval-chains", chain).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, running) = crate::compute::create(&c, "up", 1, json!({})).await;
    let (_, stopped) = crate::compute::create(&c, "down", 1, json!({ "start": false })).await;
    crate::compute::settle(&c).await;
    let change = |id: &Value| {
        json!({ "project_id": c.project, "kind": "change", "title": "扩容", "purpose": "业务增长",
            "items": [{ "type": "resize", "instance_id": id, "flavor": "4C8G" }, { "type": "volume", "name": "more", "size_gib": 20 }] })
    };
    // A running instance: the delivery says to stop it first, and nothing is taken.
    let (st, r) = c
        .member
        .post("/v1/requests", change(&running["items"][0]["id"]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let (st, v) = submit(&c, r["id"].as_str().unwrap_or("")).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["details"]["reason"], "stop_first", "{v}");
    let (st, r) = c
        .member
        .post("/v1/requests", change(&stopped["items"][0]["id"]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    assert_eq!(r["totals"]["vcpus"], 2, "the difference: {r}");
    let id = r["id"].as_str().expect("id").to_string();
    let (st, v) = submit(&c, &id).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    wait_state(&c.member, &id, "delivered").await;
    let iid = stopped["items"][0]["id"].as_str().unwrap_or("");
    let (_, i) = c.member.get(&format!("/v1/instances/{iid}")).await;
    assert_eq!(
        (i["flavor_name"].as_str(), i["state"].as_str()),
        (Some("4C8G"), Some("stopped")),
        "{i}"
    );
    crate::compute::settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(a_change_request_resizes_a_stopped_instance_and_adds_a_volume);

async fn change_and_release_requests_extend_a_lease_and_give_an_instance_back(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let d = department_of(&c).await;
    for kind in ["change", "release"] {
        let chain = json!({ "department_id": d, "kind": kind, "steps": [{ "name": "部门审核", "role": "dept_admin", "scope": "department", "deadline_hours": 24 }], "auto_max_vcpus": 64 });
        let (st, v) = c.admin.put("/v1/approval-chains", chain).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (_, created) = crate::compute::create(&c, "svc", 1, json!({})).await;
    crate::compute::settle(&c).await;
    let iid = created["items"][0]["id"].clone();
    let body = json!({ "project_id": c.project, "kind": "change", "title": "续期", "purpose": "业务延续一年",
        "items": [{ "type": "extend_lease", "instance_id": iid, "lease_end": "2031-06-30T00:00:00+08:00" }] });
    let (st, r) = c.member.post("/v1/requests", body).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    let (st, v) = submit(&c, &id).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    wait_state(&c.member, &id, "delivered").await;
    let path = format!("/v1/instances/{}", iid.as_str().unwrap_or(""));
    let (_, i) = c.member.get(&path).await;
    assert!(
        i["lease_end"]
            .as_str()
            .is_some_and(|e| e.starts_with("2031-06-30")),
        "{i}"
    );
    let body = json!({ "project_id": c.project, "kind": "release", "title": "下线", "purpose": "系统迁移完成",
        "items": [{ "type": "release", "instance_id": iid }] });
    let (st, r) = c.member.post("/v1/requests", body).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    let (st, v) = submit(&c, &id).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let r = wait_state(&c.member, &id, "delivered").await;
    assert_eq!(r["delivered"][0]["kind"], "released", "{r}");
    let (_, i) = c.member.get(&path).await;
    assert!(i["recycled_at"].is_string(), "in the recycle bin: {i}");
    crate::compute::settle(&c).await;
    assert_check_clean(&c).await;
}
both_databases!(change_and_release_requests_extend_a_lease_and_give_an_instance_back);
