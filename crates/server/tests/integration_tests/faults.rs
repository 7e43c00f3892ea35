//! Smaller faults found on the way (issue 11, item 7): a project whose instances are all
//! deleted can be deleted (and a refusal names what is left), batch names keep the length
//! rule, and the API names an instance's host.

use crate::both_databases;
use crate::common::*;
use crate::compute::{assert_check_clean, cloud, create, settle};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn a_project_is_deleted_once_nothing_live_is_left(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let (st, created) = create(&c, "web", 2, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{created}");
    settle(&c).await;
    let (st, vol) = c
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": "数据盘", "size_gib": 10 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{vol}");
    let path = format!("/v1/projects/{}", c.project);

    let (st, refused) = c.admin.delete(&path).await;
    assert_eq!(st, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        refused["error"]["details"],
        json!({ "instances": 2, "volumes": 1, "memberships": 1 })
    );
    let zh = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(zh.contains("2 台") && zh.contains("1 块"), "{zh}");
    let en: Value = c
        .admin
        .http
        .delete(format!("{}{path}", c.admin.url))
        .bearer_auth(c.admin.bearer.as_deref().unwrap_or_default())
        .header("Accept-Language", "en")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let en = en["error"]["message"].as_str().unwrap_or_default();
    assert!(
        en.contains("2 instances") && en.contains("1 volumes") && en.contains("1 role grants"),
        "{en}"
    );

    for i in created["items"].as_array().expect("items") {
        let id = i["id"].as_str().expect("id");
        let (st, _) = c.member.delete(&format!("/v1/instances/{id}")).await;
        assert_eq!(st, StatusCode::ACCEPTED);
    }
    let vid = vol["id"].as_str().expect("id");
    let (st, _) = c.member.delete(&format!("/v1/volumes/{vid}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let items = settle(&c).await;
    assert!(items.iter().all(|i| i["state"] == "deleted"), "{items:?}");
    let (_, grants) = c
        .admin
        .get(&format!("/v1/memberships?project_id={}", c.project))
        .await;
    for g in grants["items"].as_array().expect("grants") {
        let gid = g["id"].as_str().expect("id");
        let (st, _) = c.admin.delete(&format!("/v1/memberships/{gid}")).await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }

    let (st, body) = c.admin.delete(&path).await;
    assert_eq!(
        st,
        StatusCode::NO_CONTENT,
        "deleted instances hold nothing: {body}"
    );
    let (st, _) = c.admin.get(&path).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let id = created["items"][0]["id"].as_str().expect("id");
    let (st, _) = c.admin.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "its deleted instances went with it"
    );
    let auditor = ts.admin("auditor").await;
    let (_, audit) = auditor
        .get("/v1/audit?action=delete_instance&limit=10")
        .await;
    assert_eq!(
        audit["items"].as_array().map(Vec::len),
        Some(2),
        "the audit log keeps their history: {audit}"
    );
    let (_, audit) = auditor.get("/v1/audit?action=delete_project&limit=1").await;
    let detail = audit["items"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("\"deleted_instances_removed\":2"),
        "{audit}"
    );
    assert_check_clean(&c).await;
}
both_databases!(a_project_is_deleted_once_nothing_live_is_left);

async fn batch_names_leave_room_for_their_suffix(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 1).await;
    let longest = "长".repeat(64);
    let (st, body) = create(&c, &longest, 2, json!({})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "name", "{body}");
    assert_eq!(body["error"]["details"]["max_length"], 60, "{body}");
    let (st, body) = create(&c, &"长".repeat(60), 2, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["items"][1]["name"].as_str().map(|n| n.chars().count()),
        Some(64)
    );
    let (st, body) = create(&c, &longest, 1, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "one needs no suffix: {body}");

    let (_, zones) = c.admin.get("/v1/zones").await;
    let zone = &zones["items"][0]["id"];
    let (st, body) = c.admin.post("/v1/hosts", json!({ "zone_id": zone, "name_prefix": longest, "count": 2, "vcpus": 16, "memory_mib": 65536, "disk_gib": 2000 })).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "name_prefix", "{body}");
    assert_eq!(body["error"]["details"]["max_length"], 59, "{body}");
    settle(&c).await;
}
both_databases!(batch_names_leave_room_for_their_suffix);

async fn an_instance_names_its_host(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 1).await;
    let (st, created) = create(&c, "oa", 1, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{created}");
    settle(&c).await;
    let (_, hosts) = c.admin.get("/v1/hosts").await;
    let host = &hosts["items"][0];
    let id = created["items"][0]["id"].as_str().expect("id");
    let (_, one) = c.member.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(one["host_id"], host["id"], "{one}");
    assert_eq!(one["host_name"], host["name"], "{one}");
    let (_, page) = c
        .member
        .get(&format!("/v1/instances?project_id={}", c.project))
        .await;
    assert_eq!(page["items"][0]["host_name"], host["name"], "{page}");
}
both_databases!(an_instance_names_its_host);
