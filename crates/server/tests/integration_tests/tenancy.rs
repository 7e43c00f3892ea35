//! Departments, projects and users: create, read, update, delete, paging, filters,
//! uniqueness and refusing to delete what still has children.

use crate::both_databases;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn names_are_unique_in_their_scope(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let wjw = department(&admin, "宜宾市卫计委", "WJW").await;
    let (st, body) = admin
        .post(
            "/v1/departments",
            json!({ "name": "宜宾市卫计委", "code": "WJW2" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (st, _) = admin
        .post(
            "/v1/departments",
            json!({ "name": "另一个部门", "code": "WJW" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // The same project name is fine in another department, not in the same one.
    let ajj = department(&admin, "宜宾市安监局", "AJJ").await;
    project(&admin, &wjw, "全民健康信息平台").await;
    project(&admin, &ajj, "全民健康信息平台").await;
    let (st, body) = admin
        .post(
            "/v1/projects",
            json!({ "department_id": wjw, "name": "全民健康信息平台" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
}
both_databases!(names_are_unique_in_their_scope);

async fn deleting_a_department_with_children_is_refused(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾市人社局", "RSJ").await;
    let p = project(&admin, &d, "社保卡服务平台").await;
    let (st, body) = admin.delete(&format!("/v1/departments/{d}")).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["details"]["projects"], 1);
    let (st, _) = admin.delete(&format!("/v1/projects/{p}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = admin.delete(&format!("/v1/departments/{d}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = admin.get(&format!("/v1/departments/{d}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
both_databases!(deleting_a_department_with_children_is_refused);

async fn paging_returns_every_project_once_in_order(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾市公安局", "GAJ").await;
    for i in 0..57 {
        project(&admin, &d, &format!("系统-{i:03}")).await;
    }
    for sort in ["name", "-name", "created_at", "-created_at"] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/projects?limit=10&sort={sort}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (st, page) = admin.get(&path).await;
            assert_eq!(st, StatusCode::OK, "{page}");
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 10);
            seen.extend(
                items
                    .iter()
                    .map(|p| p["name"].as_str().expect("name").to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 57, "sort {sort}");
        let mut expected = seen.clone();
        expected.sort();
        if sort.starts_with('-') {
            expected.reverse();
        }
        assert_eq!(seen, expected, "sort {sort}");
    }
    let (st, page) = admin.get("/v1/projects?q=-00").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(10));
    // A cursor made for one sort is refused for another.
    let (_, first) = admin.get("/v1/projects?limit=5&sort=name").await;
    let c = first["next_cursor"].as_str().expect("cursor");
    let (st, _) = admin
        .get(&format!("/v1/projects?limit=5&sort=-name&cursor={c}"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}
both_databases!(paging_returns_every_project_once_in_order);

async fn updates_respect_the_generation(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾市工商局", "GSJ").await;
    let (st, v1) = admin
        .patch(
            &format!("/v1/departments/{d}"),
            json!({ "description": "市场监管", "generation": 1 }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v1}");
    assert_eq!(v1["generation"], 2);
    let (st, body) = admin
        .patch(
            &format!("/v1/departments/{d}"),
            json!({ "name": "改名", "generation": 1 }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let (_, now) = admin.get(&format!("/v1/departments/{d}")).await;
    assert_eq!(now["name"], "宜宾市工商局");
}
both_databases!(updates_respect_the_generation);

async fn users_are_created_with_a_one_time_password(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾广播电视大学", "DD").await;
    let (st, body) = admin
        .post(
            "/v1/users",
            json!({ "username": "li.na", "display_name": "李娜", "department_id": d }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let otp = body["initial_password"].as_str().expect("otp").to_string();
    assert_eq!(body["user"]["must_change_password"], true);
    let s = ts.login("li.na", &otp).await.expect("login");
    // Until the password is changed, nothing else works.
    let (st, body) = s.get("/v1/projects").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "password_change_required");
    let (st, _) = s
        .post(
            "/v1/me/password",
            json!({ "current_password": otp, "new_password": "short" }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .post(
            "/v1/me/password",
            json!({ "current_password": otp, "new_password": USER_PASSWORD }),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, me) = s.get("/v1/me").await;
    assert_eq!(st, StatusCode::OK);
    assert!(me.get("required_action").is_none(), "{me}");
    // A user holding roles cannot be deleted until they are revoked.
    let dept_member = ts
        .grant(&admin, &s, zy_model::role::Role::DeptMember, Some(&d), None)
        .await;
    let (st, _) = admin.delete(&format!("/v1/users/{}", s.user_id)).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = admin
        .delete(&format!("/v1/memberships/{dept_member}"))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = admin.delete(&format!("/v1/users/{}", s.user_id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get("/v1/me").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
both_databases!(users_are_created_with_a_one_time_password);

async fn the_demo_data_set_has_every_role(db: Db) {
    let ts = TestServer::start_with(db, true).await;
    let admin = ts.platform_admin().await;
    let (_, depts) = admin.get("/v1/departments?limit=100").await;
    let names: Vec<&str> = depts["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(names.contains(&"宜宾市卫生和计划生育委员会"), "{names:?}");
    assert!(names.len() >= 5);
    let (_, ms) = admin.get("/v1/memberships?limit=1000").await;
    let roles: std::collections::HashSet<&str> = ms["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    for r in zy_model::role::Role::ALL {
        assert!(roles.contains(r.as_str()), "no demo user holds {r}");
    }
    let member = ts
        .login("wjw.user", zy_server::demo::DEMO_PASSWORD)
        .await
        .expect("demo login");
    let (st, ps) = member.get("/v1/projects").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        ps["items"].as_array().map(Vec::len),
        Some(2),
        "a WJW member sees WJW's two projects only"
    );
}
both_databases!(the_demo_data_set_has_every_role);
