//! Every operation × every role, against a checked-in table of who may call what
//! (DESIGN.md §2). An operation in the OpenAPI document without an entry here fails the
//! test, so a new endpoint cannot ship without deciding its authorisation.

use crate::both_databases;
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use zy_model::role::Role;

/// Who may call an operation: `Public` needs no login; otherwise the roles allowed
/// (anything but 401/403), every other role must get 403.
enum Allowed {
    Public,
    Authenticated,
    Roles(&'static [&'static str]),
}

const PA: &str = "platform_admin";
const SEC: &str = "security_admin";
const AUD: &str = "auditor";
const SUP: &str = "supervisor";
const FIN: &str = "finance";
const DA: &str = "dept_admin";
const DM: &str = "dept_member";
const PO: &str = "provider_operator";

/// The table. Order matters only in that `logout` comes last (it ends the session).
const TABLE: &[(&str, Allowed)] = &[
    ("login", Allowed::Public),
    ("healthz", Allowed::Public),
    ("readyz", Allowed::Public),
    ("metrics", Allowed::Public),
    ("me", Allowed::Authenticated),
    ("change_password", Allowed::Authenticated),
    ("enrol_mfa", Allowed::Authenticated),
    ("confirm_mfa", Allowed::Authenticated),
    ("list_departments", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("create_department", Allowed::Roles(&[PA])),
    ("get_department", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("update_department", Allowed::Roles(&[PA])),
    ("delete_department", Allowed::Roles(&[PA])),
    ("list_projects", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("create_project", Allowed::Roles(&[PA, DA])),
    ("get_project", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("update_project", Allowed::Roles(&[PA, DA])),
    ("delete_project", Allowed::Roles(&[PA, DA])),
    ("list_users", Allowed::Roles(&[PA, SEC, DA])),
    ("create_user", Allowed::Roles(&[PA, DA])),
    ("get_user", Allowed::Roles(&[PA, SEC, DA])),
    ("update_user", Allowed::Roles(&[PA, DA])),
    ("delete_user", Allowed::Roles(&[PA, DA])),
    ("list_memberships", Allowed::Roles(&[PA, SEC])),
    ("grant_membership", Allowed::Roles(&[PA, DA])),
    ("revoke_membership", Allowed::Roles(&[PA, DA])),
    ("list_tokens", Allowed::Authenticated),
    ("create_token", Allowed::Authenticated),
    ("revoke_token", Allowed::Roles(&[PA, SEC])),
    ("lock_user", Allowed::Roles(&[SEC])),
    ("unlock_user", Allowed::Roles(&[SEC])),
    ("reset_user_password", Allowed::Roles(&[SEC])),
    ("reset_user_mfa", Allowed::Roles(&[SEC])),
    ("get_security_settings", Allowed::Roles(&[SEC])),
    ("update_security_settings", Allowed::Roles(&[SEC])),
    ("list_audit", Allowed::Roles(&[AUD])),
    ("verify_audit", Allowed::Roles(&[AUD])),
    ("export_audit", Allowed::Roles(&[AUD])),
    ("purge_audit", Allowed::Roles(&[AUD])),
    ("list_providers", Allowed::Authenticated),
    ("create_provider", Allowed::Roles(&[PA])),
    ("update_provider", Allowed::Roles(&[PA])),
    ("list_zones", Allowed::Authenticated),
    ("create_zone", Allowed::Roles(&[PA])),
    ("update_zone", Allowed::Roles(&[PA])),
    ("list_hosts", Allowed::Roles(&[PA, SUP, PO])),
    ("create_hosts", Allowed::Roles(&[PA])),
    ("update_host", Allowed::Roles(&[PA])),
    ("list_flavors", Allowed::Authenticated),
    ("create_flavor", Allowed::Roles(&[PA])),
    ("list_images", Allowed::Authenticated),
    ("create_image", Allowed::Roles(&[PA])),
    ("get_quota", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("set_quota", Allowed::Roles(&[PA, DA])),
    ("list_instances", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("create_instances", Allowed::Roles(&[PA, DA, DM])),
    ("get_instance", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("delete_instance", Allowed::Roles(&[PA, DA, DM])),
    ("start_instance", Allowed::Roles(&[PA, DA, DM])),
    ("stop_instance", Allowed::Roles(&[PA, DA, DM])),
    ("reboot_instance", Allowed::Roles(&[PA, DA, DM])),
    ("resize_instance", Allowed::Roles(&[PA, DA, DM])),
    ("instance_events", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("instance_console", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("admin_check", Allowed::Roles(&[PA])),
    ("instance_sagas", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("list_tasks", Allowed::Roles(&[PA])),
    ("list_sagas", Allowed::Roles(&[PA])),
    ("create_join_token", Allowed::Roles(&[PA])),
    ("list_join_tokens", Allowed::Roles(&[PA])),
    ("join_agent", Allowed::Public),
    ("list_agents", Allowed::Roles(&[PA, SUP, PO])),
    ("migrate_instance", Allowed::Roles(&[PA])),
    (
        "instance_migrations",
        Allowed::Roles(&[PA, SUP, FIN, DA, DM]),
    ),
    ("instance_metrics", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("list_storage_pools", Allowed::Roles(&[PA, SUP, PO])),
    ("create_storage_pool", Allowed::Roles(&[PA])),
    ("list_volumes", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("create_volume", Allowed::Roles(&[PA, DA, DM])),
    ("get_volume", Allowed::Roles(&[PA, SUP, FIN, DA, DM])),
    ("delete_volume", Allowed::Roles(&[PA, DA, DM])),
    ("attach_volume", Allowed::Roles(&[PA, DA, DM])),
    ("detach_volume", Allowed::Roles(&[PA, DA, DM])),
    ("extend_volume", Allowed::Roles(&[PA, DA, DM])),
    ("logout", Allowed::Authenticated),
];

struct World {
    admin: Session,
    d: String,
    p: String,
    u: String,
    provider: String,
    zone: String,
    host: String,
    n: std::sync::atomic::AtomicU32,
}

impl World {
    async fn volume(&self) -> String {
        let n = self.fresh();
        let (_, b) = self
            .admin
            .post(
                "/v1/volumes",
                json!({ "project_id": self.p, "name": format!("vol{n}"), "size_gib": 10 }),
            )
            .await;
        b["id"].as_str().unwrap_or_default().to_string()
    }

    async fn instance(&self) -> String {
        let n = self.fresh();
        let (_, b) = self.admin.post("/v1/instances", json!({ "project_id": self.p, "name": format!("vm{n}"), "flavor": "1C2G", "image": "CentOS-7.9" })).await;
        b["items"][0]["id"].as_str().unwrap_or_default().to_string()
    }
}

impl World {
    fn fresh(&self) -> u32 {
        self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

/// The request for an operation; creates fresh objects for destructive ones so every
/// role meets the same situation.
async fn request(w: &World, op: &str) -> (Method, String, Option<Value>) {
    let n = w.fresh();
    let (d, p, u) = (&w.d, &w.p, &w.u);
    match op {
        "login" => (Method::POST, "/v1/auth/login".into(), Some(json!({ "username": "nobody", "password": "x" }))),
        "logout" => (Method::POST, "/v1/auth/logout".into(), None),
        "healthz" => (Method::GET, "/healthz".into(), None),
        "readyz" => (Method::GET, "/readyz".into(), None),
        "metrics" => (Method::GET, "/metrics".into(), None),
        "me" => (Method::GET, "/v1/me".into(), None),
        "change_password" => (Method::POST, "/v1/me/password".into(), Some(json!({ "current_password": "wrong", "new_password": "Another#Pass2026" }))),
        "enrol_mfa" => (Method::POST, "/v1/me/mfa/enrol".into(), None),
        "confirm_mfa" => (Method::POST, "/v1/me/mfa/confirm".into(), Some(json!({ "code": "000000" }))),
        "list_departments" => (Method::GET, "/v1/departments".into(), None),
        "create_department" => (Method::POST, "/v1/departments".into(), Some(json!({ "name": format!("部门{n}"), "code": format!("D{n}") }))),
        "get_department" => (Method::GET, format!("/v1/departments/{d}"), None),
        "update_department" => (Method::PATCH, format!("/v1/departments/{d}"), Some(json!({ "description": format!("v{n}") }))),
        "delete_department" => {
            let d2 = department(&w.admin, &format!("待删部门{n}"), &format!("X{n}")).await;
            (Method::DELETE, format!("/v1/departments/{d2}"), None)
        }
        "list_projects" => (Method::GET, "/v1/projects".into(), None),
        "create_project" => (Method::POST, "/v1/projects".into(), Some(json!({ "department_id": d, "name": format!("项目{n}") }))),
        "get_project" => (Method::GET, format!("/v1/projects/{p}"), None),
        "update_project" => (Method::PATCH, format!("/v1/projects/{p}"), Some(json!({ "description": format!("v{n}") }))),
        "delete_project" => {
            let p2 = project(&w.admin, d, &format!("待删项目{n}")).await;
            (Method::DELETE, format!("/v1/projects/{p2}"), None)
        }
        "list_users" => (Method::GET, "/v1/users".into(), None),
        "create_user" => (Method::POST, "/v1/users".into(), Some(json!({ "username": format!("new.user{n}"), "display_name": "新用户", "department_id": d }))),
        "get_user" => (Method::GET, format!("/v1/users/{u}"), None),
        "update_user" => (Method::PATCH, format!("/v1/users/{u}"), Some(json!({ "phone": "0831-1234567" }))),
        "delete_user" => {
            let (_, b) = w.admin.post("/v1/users", json!({ "username": format!("gone.user{n}"), "display_name": "待删", "department_id": d })).await;
            (Method::DELETE, format!("/v1/users/{}", b["user"]["id"].as_str().unwrap_or_default()), None)
        }
        "list_memberships" => (Method::GET, "/v1/memberships".into(), None),
        "grant_membership" => {
            let (_, b) = w.admin.post("/v1/users", json!({ "username": format!("granted{n}"), "display_name": "受权", "department_id": d })).await;
            let body = json!({ "user_id": b["user"]["id"], "role": "dept_member", "scope_type": "department", "department_id": d });
            (Method::POST, "/v1/memberships".into(), Some(body))
        }
        "revoke_membership" => {
            let (_, b) = w.admin.post("/v1/users", json!({ "username": format!("revoked{n}"), "display_name": "撤权", "department_id": d })).await;
            let (_, m) = w.admin.post("/v1/memberships", json!({ "user_id": b["user"]["id"], "role": "dept_member", "scope_type": "project", "project_id": p })).await;
            (Method::DELETE, format!("/v1/memberships/{}", m["id"].as_str().unwrap_or_default()), None)
        }
        "list_tokens" => (Method::GET, "/v1/tokens".into(), None),
        "create_token" => (Method::POST, "/v1/tokens".into(), Some(json!({ "name": format!("令牌{n}") }))),
        "revoke_token" => {
            let (_, t) = w.admin.post("/v1/tokens", json!({ "name": format!("管理员令牌{n}") })).await;
            (Method::DELETE, format!("/v1/tokens/{}", t["token"]["id"].as_str().unwrap_or_default()), None)
        }
        "lock_user" => (Method::POST, format!("/v1/users/{u}/lock"), Some(json!({ "minutes": 1 }))),
        "unlock_user" => (Method::POST, format!("/v1/users/{u}/unlock"), None),
        "reset_user_password" => (Method::POST, format!("/v1/users/{u}/reset-password"), None),
        "reset_user_mfa" => (Method::POST, format!("/v1/users/{u}/reset-mfa"), None),
        "get_security_settings" => (Method::GET, "/v1/security/settings".into(), None),
        "update_security_settings" => (Method::PUT, "/v1/security/settings".into(), Some(serde_json::to_value(zy_model::security::SecuritySettings::default()).unwrap_or_default())),
        "list_audit" => (Method::GET, "/v1/audit".into(), None),
        "verify_audit" => (Method::GET, "/v1/audit/verify".into(), None),
        "export_audit" => (Method::GET, "/v1/audit/export".into(), None),
        "purge_audit" => (Method::POST, "/v1/audit/purge".into(), Some(json!({ "before": "2020-01-01T00:00:00+08:00" }))),
        "list_providers" => (Method::GET, "/v1/providers".into(), None),
        "create_provider" => (Method::POST, "/v1/providers".into(), Some(json!({ "name": format!("模拟云{n}"), "kind": "sim" }))),
        "update_provider" => (Method::PATCH, format!("/v1/providers/{}", w.provider), Some(json!({ "sim": { "failure_probability": 0.0 } }))),
        "list_zones" => (Method::GET, "/v1/zones".into(), None),
        "create_zone" => (Method::POST, "/v1/zones".into(), Some(json!({ "provider_id": w.provider, "region": "宜宾", "name": format!("区{n}") }))),
        "update_zone" => (Method::PATCH, format!("/v1/zones/{}", w.zone), Some(json!({ "strategy": "pack" }))),
        "list_hosts" => (Method::GET, "/v1/hosts".into(), None),
        "create_hosts" => (Method::POST, "/v1/hosts".into(), Some(json!({ "zone_id": w.zone, "name_prefix": format!("h{n}"), "vcpus": 8, "memory_mib": 16384, "disk_gib": 500 }))),
        "update_host" => (Method::PATCH, format!("/v1/hosts/{}", w.host), Some(json!({ "state": "enabled" }))),
        "list_flavors" => (Method::GET, "/v1/flavors".into(), None),
        "create_flavor" => (Method::POST, "/v1/flavors".into(), Some(json!({ "name": format!("F{n}"), "vcpus": 1, "memory_mib": 1024 }))),
        "list_images" => (Method::GET, "/v1/images".into(), None),
        "create_image" => (Method::POST, "/v1/images".into(), Some(json!({ "name": format!("img{n}"), "os": "Linux", "min_disk_gib": 20 }))),
        "get_quota" => (Method::GET, format!("/v1/quotas?department_id={d}"), None),
        "set_quota" => (Method::PUT, "/v1/quotas".into(), Some(json!({ "project_id": p, "limits": { "instances": 100, "vcpus": 400, "memory_mib": 819200, "disk_gib": 20480, "volumes": 100 } }))),
        "list_instances" => (Method::GET, "/v1/instances".into(), None),
        "create_instances" => (Method::POST, "/v1/instances".into(), Some(json!({ "project_id": p, "name": format!("new{n}"), "flavor": "1C2G", "image": "CentOS-7.9" }))),
        "get_instance" => (Method::GET, format!("/v1/instances/{}", w.instance().await), None),
        "delete_instance" => (Method::DELETE, format!("/v1/instances/{}", w.instance().await), None),
        "start_instance" => (Method::POST, format!("/v1/instances/{}/start", w.instance().await), None),
        "stop_instance" => (Method::POST, format!("/v1/instances/{}/stop", w.instance().await), None),
        "reboot_instance" => (Method::POST, format!("/v1/instances/{}/reboot", w.instance().await), None),
        "resize_instance" => (Method::POST, format!("/v1/instances/{}/resize", w.instance().await), Some(json!({ "flavor": "1C2G" }))),
        "instance_events" => (Method::GET, format!("/v1/instances/{}/events", w.instance().await), None),
        "instance_console" => (Method::GET, format!("/v1/instances/{}/console", w.instance().await), None),
        "admin_check" => (Method::GET, "/v1/admin/check".into(), None),
        "instance_sagas" => (Method::GET, format!("/v1/instances/{}/sagas", w.instance().await), None),
        "list_tasks" => (Method::GET, "/v1/system/tasks".into(), None),
        "list_sagas" => (Method::GET, "/v1/system/sagas".into(), None),
        "create_join_token" => (Method::POST, format!("/v1/zones/{}/join-tokens", w.zone), Some(json!({ "valid_hours": 1 }))),
        "list_join_tokens" => (Method::GET, "/v1/join-tokens".into(), None),
        "join_agent" => (Method::POST, "/v1/agents/join".into(), Some(json!({ "token": "zyj_wrong", "csr_pem": "x", "name": "h", "address": "127.0.0.1:1", "capacity": { "vcpus": 2, "memory_mib": 4096, "disk_gib": 10, "disk_free_gib": 5, "accel": "tcg", "qemu_version": "" } }))),
        "list_agents" => (Method::GET, "/v1/agents".into(), None),
        "migrate_instance" => (Method::POST, format!("/v1/instances/{}/migrate", w.instance().await), Some(json!({}))),
        "instance_migrations" => (Method::GET, format!("/v1/instances/{}/migrations", w.instance().await), None),
        "instance_metrics" => (Method::GET, format!("/v1/instances/{}/metrics", w.instance().await), None),
        "list_storage_pools" => (Method::GET, "/v1/storage-pools".into(), None),
        "create_storage_pool" => (Method::POST, "/v1/storage-pools".into(), Some(json!({ "zone_id": w.zone, "name": format!("池{n}"), "capacity_gib": 1000 }))),
        "list_volumes" => (Method::GET, "/v1/volumes".into(), None),
        "create_volume" => (Method::POST, "/v1/volumes".into(), Some(json!({ "project_id": p, "name": format!("盘{n}"), "size_gib": 10 }))),
        "get_volume" => (Method::GET, format!("/v1/volumes/{}", w.volume().await), None),
        "delete_volume" => (Method::DELETE, format!("/v1/volumes/{}", w.volume().await), None),
        "attach_volume" => (Method::POST, format!("/v1/volumes/{}/attach", w.volume().await), Some(json!({ "instance_id": w.instance().await }))),
        "detach_volume" => (Method::POST, format!("/v1/volumes/{}/detach", w.volume().await), None),
        "extend_volume" => (Method::POST, format!("/v1/volumes/{}/extend", w.volume().await), Some(json!({ "size_gib": 20 }))),
        other => panic!("operation {other} has no request in the authorisation table test; add it to TABLE and request()"),
    }
}

async fn every_operation_allows_exactly_the_roles_in_the_table(db: Db) {
    let ts = TestServer::start(db).await;
    // The table covers exactly the documented operations.
    let doc = zy_server::api::openapi();
    let documented: BTreeSet<String> = doc
        .paths
        .paths
        .values()
        .flat_map(|i| {
            [&i.get, &i.post, &i.put, &i.patch, &i.delete]
                .into_iter()
                .flatten()
                .filter_map(|o| o.operation_id.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let tabled: BTreeSet<String> = TABLE.iter().map(|(op, _)| op.to_string()).collect();
    let missing: Vec<_> = documented.difference(&tabled).collect();
    assert!(
        missing.is_empty(),
        "operations without an authorisation entry: {missing:?}"
    );
    let stale: Vec<_> = tabled.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "table entries for operations that no longer exist: {stale:?}"
    );

    let admin = ts.platform_admin().await;
    let sec = ts.admin("secadmin").await;
    let aud = ts.admin("auditor").await;
    let d = department(&admin, "宜宾市卫计委", "WJW").await;
    let p = project(&admin, &d, "全民健康信息平台").await;
    let mut roles: Vec<(&str, Session)> = vec![(PA, admin.clone()), (SEC, sec), (AUD, aud)];
    for (name, role) in [
        (SUP, Role::Supervisor),
        (FIN, Role::Finance),
        ("provider_operator", Role::ProviderOperator),
    ] {
        let s = ts
            .new_user(&admin, &format!("{}.x", name.replace('_', "-")), None)
            .await;
        ts.grant(&admin, &s, role, None, None).await;
        roles.push((name, s));
    }
    let da = ts.new_user(&admin, "wjw.boss", Some(&d)).await;
    ts.grant(&admin, &da, Role::DeptAdmin, Some(&d), None).await;
    let dm = ts.new_user(&admin, "wjw.staff", Some(&d)).await;
    ts.grant(&admin, &dm, Role::DeptMember, Some(&d), None)
        .await;
    roles.push((DA, da));
    roles.push((DM, dm));
    let target = ts.new_user(&admin, "target.user", Some(&d)).await;
    let (_, prov) = admin
        .post("/v1/providers", json!({ "name": "测试云", "kind": "sim" }))
        .await;
    let provider = prov["id"].as_str().expect("provider").to_string();
    let (_, zone) = admin
        .post(
            "/v1/zones",
            json!({ "provider_id": provider, "region": "宜宾", "name": "一区" }),
        )
        .await;
    let zone = zone["id"].as_str().expect("zone").to_string();
    let (_, hosts) = admin.post("/v1/hosts", json!({ "zone_id": zone, "name_prefix": "h", "vcpus": 8, "memory_mib": 16384, "disk_gib": 500 })).await;
    let host = hosts["items"][0]["id"].as_str().expect("host").to_string();
    admin
        .post(
            "/v1/flavors",
            json!({ "name": "1C2G", "vcpus": 1, "memory_mib": 2048 }),
        )
        .await;
    admin
        .post(
            "/v1/images",
            json!({ "name": "CentOS-7.9", "os": "Linux", "min_disk_gib": 40 }),
        )
        .await;
    let w = World {
        admin: admin.clone(),
        d,
        p,
        u: target.user_id.clone(),
        provider,
        zone,
        host,
        n: std::sync::atomic::AtomicU32::new(0),
    };

    let mut wrong = Vec::new();
    for (op, allowed) in TABLE {
        // Anonymous callers.
        let (m, path, body) = request(&w, op).await;
        let (st, _) = ts.anonymous().raw(m.clone(), &path, body).await;
        let public = matches!(allowed, Allowed::Public);
        // Logging in and joining with bad credentials are refused as 401 by design.
        if public == (st == StatusCode::UNAUTHORIZED) && *op != "login" && *op != "join_agent" {
            wrong.push(format!("{op} anonymous → {st}"));
        }
        if public {
            continue;
        }
        for (role, s) in &roles {
            let (m, path, body) = request(&w, op).await;
            let (st, resp) = s.raw(m, &path, body).await;
            let refused = st == StatusCode::FORBIDDEN || st == StatusCode::UNAUTHORIZED;
            let expected_ok = match allowed {
                Allowed::Authenticated => true,
                Allowed::Roles(rs) => rs.contains(role),
                Allowed::Public => true,
            };
            if refused == expected_ok {
                wrong.push(format!("{op} as {role} → {st} {resp}"));
            }
            if refused {
                assert_eq!(
                    resp["error"]["code"], "forbidden",
                    "{op} as {role}: refusals say forbidden, not {resp}"
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "authorisation differs from the table:\n{}",
        wrong.join("\n")
    );
}
both_databases!(every_operation_allows_exactly_the_roles_in_the_table);
