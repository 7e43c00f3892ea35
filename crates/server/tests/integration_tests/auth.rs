//! Login rules (MLPS level 3): lockout, idle sessions, password expiry, second factor,
//! CSRF for cookie sessions, and API tokens.

use crate::both_databases;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;
use zy_model::role::Role;

async fn five_wrong_passwords_lock_the_account(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let user = ts.new_user(&admin, "zhang.wei", None).await;
    let anon = ts.anonymous();
    for i in 1..=4 {
        let (st, body) = anon
            .post(
                "/v1/auth/login",
                json!({ "username": "zhang.wei", "password": "Wrong#Pass2026" }),
            )
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_credentials");
        assert_eq!(body["error"]["details"]["remaining_attempts"], 5 - i);
    }
    let (st, body) = anon
        .post(
            "/v1/auth/login",
            json!({ "username": "zhang.wei", "password": "Wrong#Pass2026" }),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "account_locked");
    // Even the right password is refused while locked, and existing sessions ended.
    let err = ts
        .login("zhang.wei", USER_PASSWORD)
        .await
        .err()
        .expect("locked");
    assert_eq!(err.1["error"]["code"], "account_locked");
    let (st, _) = user.get("/v1/me").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The security admin unlocks it.
    let sec = ts.admin("secadmin").await;
    let (st, body) = sec
        .post(&format!("/v1/users/{}/unlock", user.user_id), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    ts.login("zhang.wei", USER_PASSWORD)
        .await
        .expect("unlocked");
    // Every failure was audited.
    let auditor = ts.admin("auditor").await;
    let (_, log) = auditor
        .get("/v1/audit?action=login&outcome=failure&limit=100")
        .await;
    let n = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["actor_name"] == "zhang.wei")
        .count();
    assert_eq!(n, 6, "{log}");
}
both_databases!(five_wrong_passwords_lock_the_account);

async fn idle_sessions_expire(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let user = ts.new_user(&admin, "wang.fang", None).await;
    let (st, _) = user.get("/v1/me").await;
    assert_eq!(st, StatusCode::OK);
    let old = zy_model::time::Timestamp::now().plus_secs(-31 * 60).0;
    sql(
        &ts,
        &format!(
            "UPDATE sessions SET last_seen_at = {old} WHERE user_id = '{}'",
            user.user_id
        ),
    )
    .await;
    let (st, body) = user.get("/v1/me").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
}
both_databases!(idle_sessions_expire);

async fn expired_passwords_must_be_changed(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let user = ts.new_user(&admin, "liu.yang", None).await;
    let old = zy_model::time::Timestamp::now().plus_secs(-91 * 86_400).0;
    sql(
        &ts,
        &format!(
            "UPDATE users SET password_changed_at = {old} WHERE id = '{}'",
            user.user_id
        ),
    )
    .await;
    let (st, body) = user.get("/v1/tokens").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "password_change_required");
    let (_, me) = user.get("/v1/me").await;
    assert_eq!(me["required_action"], "change_password");
}
both_databases!(expired_passwords_must_be_changed);

async fn admins_must_use_a_second_factor(db: Db) {
    let ts = TestServer::start(db).await;
    let otp = ts.one_time_password("auditor");
    let s = ts.login("auditor", &otp).await.expect("login");
    let (st, _) = s
        .post(
            "/v1/me/password",
            json!({ "current_password": otp, "new_password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.get("/v1/audit").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "mfa_enrolment_required");
    let (_, e) = s.post("/v1/me/mfa/enrol", json!({})).await;
    assert!(e["qr_svg"].as_str().is_some_and(|q| q.contains("<svg")));
    assert!(e["otpauth_uri"]
        .as_str()
        .is_some_and(|u| u.starts_with("otpauth://totp/")));
    let secret = zy_model::totp::base32_decode(e["secret"].as_str().expect("secret")).expect("b32");
    let (st, _) = s
        .post("/v1/me/mfa/confirm", json!({ "code": "000000" }))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let now = chrono::Utc::now().timestamp();
    let (st, codes) = s
        .post(
            "/v1/me/mfa/confirm",
            json!({ "code": zy_model::totp::code_at(&secret, now) }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let recovery: Vec<String> = codes["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (st, _) = s.get("/v1/audit").await;
    assert_eq!(st, StatusCode::OK);
    // The seed is sealed in the database, not stored as the app shows it.
    let stored: String =
        sqlx::query_scalar("SELECT totp_secret FROM users WHERE username = 'auditor'")
            .fetch_one(ts.store().pool())
            .await
            .expect("read");
    assert!(
        stored.starts_with("v1:") && !stored.contains(e["secret"].as_str().expect("secret")),
        "{stored}"
    );
    // From now on a password alone is not enough.
    let err = ts
        .login("auditor", ADMIN_PASSWORD)
        .await
        .err()
        .expect("needs a code");
    assert_eq!(err.1["error"]["code"], "mfa_required");
    // The code just used for enrolment cannot be replayed; the next one works.
    let anon = ts.anonymous();
    let (st, _) = anon.post("/v1/auth/login", json!({ "username": "auditor", "password": ADMIN_PASSWORD, "totp_code": zy_model::totp::code_at(&secret, now) })).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, body) = anon.post("/v1/auth/login", json!({ "username": "auditor", "password": ADMIN_PASSWORD, "totp_code": zy_model::totp::code_at(&secret, now + 30) })).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // A recovery code works once.
    let (st, _) = anon.post("/v1/auth/login", json!({ "username": "auditor", "password": ADMIN_PASSWORD, "recovery_code": recovery[0] })).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = anon.post("/v1/auth/login", json!({ "username": "auditor", "password": ADMIN_PASSWORD, "recovery_code": recovery[0] })).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
both_databases!(admins_must_use_a_second_factor);

async fn cookie_sessions_need_the_csrf_token_for_changes(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    ts.new_user(&admin, "chen.jie", None).await;
    let (st, body) = ts
        .anonymous()
        .post(
            "/v1/auth/login",
            json!({ "username": "chen.jie", "password": USER_PASSWORD }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        body.get("session_token").is_none(),
        "browsers never see the session secret"
    );
    let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
    // Log in again through raw HTTP to read the cookie.
    let resp = ts
        .http
        .post(format!("{}/v1/auth/login", ts.url))
        .json(&json!({ "username": "chen.jie", "password": USER_PASSWORD }))
        .send()
        .await
        .expect("login");
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("zy_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let csrf2 = resp.json::<serde_json::Value>().await.expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    assert_ne!(csrf, csrf2);
    let cookie = session.split(';').next().expect("pair").to_string();
    let read = ts
        .http
        .get(format!("{}/v1/me", ts.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("me");
    assert_eq!(read.status(), StatusCode::OK);
    let change = json!({ "name": "浏览器令牌" });
    let no_csrf = ts
        .http
        .post(format!("{}/v1/tokens", ts.url))
        .header("cookie", &cookie)
        .json(&change)
        .send()
        .await
        .expect("post");
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let with_csrf = ts
        .http
        .post(format!("{}/v1/tokens", ts.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf2)
        .json(&change)
        .send()
        .await
        .expect("post");
    assert_eq!(with_csrf.status(), StatusCode::CREATED);
}
both_databases!(cookie_sessions_need_the_csrf_token_for_changes);

async fn api_tokens_work_until_revoked_or_expired(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let (st, created) = admin
        .post(
            "/v1/tokens",
            json!({ "name": "备份脚本", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_string();
    let token_id = created["token"]["id"].as_str().expect("id").to_string();
    let script = Session {
        bearer: Some(secret.clone()),
        ..ts.anonymous()
    };
    let (st, me) = script.get("/v1/me").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["auth"], "token");
    let (st, _) = script
        .post(
            "/v1/departments",
            json!({ "name": "脚本创建的部门", "code": "SCRIPT" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    // A token cannot mint more tokens.
    let (st, _) = script.post("/v1/tokens", json!({ "name": "另一个" })).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // The secret is stored hashed only.
    let stored: Vec<String> = sqlx::query_scalar("SELECT secret_hash FROM api_tokens")
        .fetch_all(ts.store().pool())
        .await
        .expect("read");
    assert!(stored
        .iter()
        .all(|h| h.len() == 64 && !h.contains(&secret[4..])));
    // Expired tokens stop working.
    let past = zy_model::time::Timestamp::now().plus_secs(-1).0;
    sql(
        &ts,
        &format!("UPDATE api_tokens SET expires_at = {past} WHERE id = '{token_id}'"),
    )
    .await;
    let (st, _) = script.get("/v1/me").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let future = zy_model::time::Timestamp::now().plus_secs(3600).0;
    sql(
        &ts,
        &format!("UPDATE api_tokens SET expires_at = {future} WHERE id = '{token_id}'"),
    )
    .await;
    let (st, _) = admin.delete(&format!("/v1/tokens/{token_id}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = script.get("/v1/me").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let (st, _) = admin
        .post(
            "/v1/tokens",
            json!({ "name": "太久", "expires_in_days": 4000 }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
}
both_databases!(api_tokens_work_until_revoked_or_expired);

async fn the_three_admins_stay_separate(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let sec = ts.admin("secadmin").await;
    let auditor = ts.admin("auditor").await;
    // Each keeps to its own job.
    assert_eq!(admin.get("/v1/audit").await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.get("/v1/audit/verify").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        admin.get("/v1/security/settings").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        sec.post(
            "/v1/departments",
            json!({ "name": "安全部门", "code": "SEC" })
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(sec.get("/v1/projects").await.0, StatusCode::FORBIDDEN);
    assert_eq!(sec.get("/v1/audit").await.0, StatusCode::FORBIDDEN);
    assert_eq!(auditor.get("/v1/users").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        auditor.get("/v1/departments").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auditor
            .post(
                "/v1/departments",
                json!({ "name": "审计部门", "code": "AUD" })
            )
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Nobody appoints another kind of admin.
    let someone = ts.new_user(&admin, "zhao.lei", None).await;
    let (st, _) = admin
        .post(
            "/v1/memberships",
            json!({ "user_id": someone.user_id, "role": "auditor", "scope_type": "platform" }),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // An auditor may appoint an auditor, but not on an account that is already another admin.
    let (st, body) = auditor
        .post(
            "/v1/memberships",
            json!({ "user_id": admin.user_id, "role": "auditor", "scope_type": "platform" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    ts.grant(&auditor, &someone, Role::Auditor, None, None)
        .await;
    let (st, _) = admin
        .post(
            "/v1/memberships",
            json!({ "user_id": someone.user_id, "role": "supervisor", "scope_type": "platform" }),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "supervisor is not one of the three"
    );
    let (st, body) = sec.post("/v1/memberships", json!({ "user_id": someone.user_id, "role": "security_admin", "scope_type": "platform" })).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    // The last auditor cannot be removed; with two, one can.
    let (_, mine) = auditor
        .get(&format!("/v1/memberships?user_id={}", auditor.user_id))
        .await;
    let my_membership = mine["items"][0]["id"].as_str().expect("id").to_string();
    let (_, theirs) = admin
        .get(&format!("/v1/memberships?user_id={}", someone.user_id))
        .await;
    let their_auditor = theirs["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|m| m["role"] == "auditor")
        .expect("auditor grant")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        auditor
            .delete(&format!("/v1/memberships/{my_membership}"))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "not one's own roles"
    );
    assert_eq!(
        auditor
            .delete(&format!("/v1/memberships/{their_auditor}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}
both_databases!(the_three_admins_stay_separate);

async fn department_admins_cannot_escalate(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let wjw = department(&admin, "宜宾市卫计委", "WJW").await;
    let gaj = department(&admin, "宜宾市公安局", "GAJ").await;
    let p = project(&admin, &wjw, "全民健康信息平台").await;
    let da = ts.new_user(&admin, "wjw.boss", Some(&wjw)).await;
    ts.grant(&admin, &da, Role::DeptAdmin, Some(&wjw), None)
        .await;
    let staff = ts.new_user(&admin, "wjw.staff", Some(&wjw)).await;
    // Within the department: fine.
    ts.grant(&da, &staff, Role::DeptMember, Some(&wjw), Some(&p))
        .await;
    // Outside it, or above it: refused.
    for (role, scope, d) in [
        ("dept_member", "department", Some(gaj.as_str())),
        ("supervisor", "platform", None),
        ("platform_admin", "platform", None),
    ] {
        let (st, body) = da.post("/v1/memberships", json!({ "user_id": staff.user_id, "role": role, "scope_type": scope, "department_id": d })).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role}: {body}");
    }
    assert_eq!(
        da.post(
            "/v1/projects",
            json!({ "department_id": gaj, "name": "越权项目" })
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        da.post(
            "/v1/projects",
            json!({ "department_id": wjw, "name": "预约挂号服务系统" })
        )
        .await
        .0,
        StatusCode::CREATED
    );
    // Without a filter, a department admin lists the people of their own department only.
    let (st, people) = da.get("/v1/users?limit=100").await;
    assert_eq!(st, StatusCode::OK, "{people}");
    let names: Vec<&str> = people["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert!(
        names.contains(&"wjw.staff") && !names.contains(&"admin"),
        "{names:?}"
    );
    assert_eq!(
        da.get(&format!("/v1/users?department_id={gaj}")).await.0,
        StatusCode::FORBIDDEN
    );
    // A project member sees only that project.
    let (_, ps) = staff.get("/v1/projects").await;
    assert_eq!(ps["items"].as_array().map(Vec::len), Some(1));
}
both_databases!(department_admins_cannot_escalate);

async fn revocation_applies_at_once_on_the_same_replica(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let (_, created) = admin.post("/v1/tokens", json!({ "name": "脚本" })).await;
    let script = Session {
        bearer: created["secret"].as_str().map(str::to_string),
        ..ts.anonymous()
    };
    // Warm the authentication cache, then revoke: the very next call is refused.
    assert_eq!(script.get("/v1/projects").await.0, StatusCode::OK);
    let id = created["token"]["id"].as_str().expect("id");
    assert_eq!(
        admin.delete(&format!("/v1/tokens/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(script.get("/v1/projects").await.0, StatusCode::UNAUTHORIZED);
    // Same for a lock by the security admin.
    let user = ts.new_user(&admin, "sun.li", None).await;
    assert_eq!(user.get("/v1/me").await.0, StatusCode::OK);
    let sec = ts.admin("secadmin").await;
    assert_eq!(
        sec.post(&format!("/v1/users/{}/lock", user.user_id), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(user.get("/v1/me").await.0, StatusCode::UNAUTHORIZED);
}
both_databases!(revocation_applies_at_once_on_the_same_replica);

/// A login as raw HTTP: status, `Retry-After` (if any) and the body.
async fn login_attempt(
    ts: &TestServer,
    username: &str,
    password: &str,
) -> (StatusCode, Option<u64>, serde_json::Value) {
    let resp = ts
        .http
        .post(format!("{}/v1/auth/login", ts.url))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("sent");
    let st = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !st.is_success() {
        assert_error_body(st, &body);
    }
    (st, retry, body)
}

/// Sets the two login limits as the security admin and returns the answer.
async fn set_login_limits(
    by: &Session,
    per_address: u32,
    per_account: u32,
) -> (StatusCode, serde_json::Value) {
    let (st, mut settings) = by.get("/v1/security/settings").await;
    assert_eq!(st, StatusCode::OK, "{settings}");
    settings["login_attempts_per_address_per_minute"] = json!(per_address);
    settings["login_attempts_per_account_per_minute"] = json!(per_account);
    by.put("/v1/security/settings", settings).await
}

async fn a_login_burst_beyond_the_hash_bound_gets_429_not_5xx(db: Db) {
    let ts = TestServer::start(db).await;
    let sec = ts.admin("secadmin").await;
    // Only the hash bound is under test here, not the rate limits.
    let (st, body) = set_login_limits(&sec, 100_000, 1_000).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let burst = 33 * cores + 250;
    let ts = std::sync::Arc::new(ts);
    let tasks: Vec<_> = (0..burst)
        .map(|i| {
            let ts = ts.clone();
            tokio::spawn(async move {
                login_attempt(&ts, &format!("nobody-{i}"), "Wrong#Pass2026").await
            })
        })
        .collect();
    let (mut refused, mut wrong) = (0, 0);
    for t in tasks {
        let (st, retry, body) = t.await.expect("task");
        assert!(!st.is_server_error(), "{st} {body}");
        match st {
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                assert!(retry.is_some_and(|s| s >= 1), "429 without Retry-After");
            }
            StatusCode::UNAUTHORIZED => wrong += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused > 0, "{burst} concurrent logins, none refused");
    assert!(wrong >= cores, "only {wrong} logins were checked");
    // The server is still fine for everyone else.
    let (st, _) = sec.get("/v1/me").await;
    assert_eq!(st, StatusCode::OK);
}
both_databases!(a_login_burst_beyond_the_hash_bound_gets_429_not_5xx);

async fn login_limits_per_address_and_account_are_the_security_admins(db: Db) {
    let ts = TestServer::start(db).await;
    let sec = ts.admin("secadmin").await;
    let admin = ts.platform_admin().await;
    // Only the security admin sets them, within bounds.
    let (_, mut settings) = sec.get("/v1/security/settings").await;
    assert_eq!(settings["login_attempts_per_address_per_minute"], 120);
    assert_eq!(settings["login_attempts_per_account_per_minute"], 10);
    settings["login_attempts_per_account_per_minute"] = json!(1_000);
    let (st, body) = admin.put("/v1/security/settings", settings).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, body) = set_login_limits(&sec, 100, 0).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"]["field"],
        "login_attempts_per_account_per_minute"
    );
    let (st, body) = set_login_limits(&sec, 1_000_000, 3).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Per address: three tries a minute from here, then even the right password waits.
    let (st, body) = set_login_limits(&sec, 3, 1_000).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["login_attempts_per_address_per_minute"], 3);
    for name in ["a.ghost", "b.ghost", "c.ghost"] {
        let (st, _, body) = login_attempt(&ts, name, "Wrong#Pass2026").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    }
    let otp = ts.one_time_password("auditor");
    let (st, retry, body) = login_attempt(&ts, "auditor", &otp).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let secs = retry.expect("Retry-After");
    assert!((1..=20).contains(&secs), "{secs}");
    assert_eq!(body["error"]["details"]["retry_after_secs"], secs);

    // Per account: raised for addresses (at once), three tries a minute for a name,
    // whether it exists or not.
    let (st, body) = set_login_limits(&sec, 1_000, 3).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    for _ in 0..3 {
        let (st, _, body) = login_attempt(&ts, "ghost.user", "Wrong#Pass2026").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (st, retry, body) = login_attempt(&ts, "ghost.user", "Wrong#Pass2026").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(retry.is_some());
    // Upper case is the same account; another account is not affected.
    let (st, _, _) = login_attempt(&ts, "GHOST.USER", "Wrong#Pass2026").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    let (st, _, body) = login_attempt(&ts, "other.ghost", "Wrong#Pass2026").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");

    // Raised again, sign-ins work; every failure is in the audit log: checked ones one by
    // one, refused ones in a summary per source.
    let (st, body) = set_login_limits(&sec, 120, 10).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let state = &ts.server.as_ref().expect("running").state;
    assert_eq!(state.refusals.pending(), 3);
    state.refusals.flush(state).await.expect("summary written");
    assert_eq!(state.refusals.pending(), 0);
    let auditor = ts.admin("auditor").await;
    let (st, log) = auditor
        .get("/v1/audit?action=login&outcome=failure&limit=100")
        .await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let items = log["items"].as_array().expect("items");
    let checked = |name: &str| {
        items
            .iter()
            .filter(|r| r["actor_name"] == name && r["target_type"] == "user")
            .count()
    };
    assert_eq!(checked("ghost.user"), 3, "{log}");
    assert_eq!(checked("other.ghost"), 1, "{log}");
    let summary = items
        .iter()
        .find(|r| r["target_type"] == "refused_attempts")
        .expect("a summary of refused attempts");
    let detail: serde_json::Value =
        serde_json::from_str(summary["detail"].as_str().unwrap_or("{}")).unwrap_or_default();
    assert_eq!(detail["attempts"], 3, "{detail}");
    assert_eq!(detail["codes"]["rate_limited"], 3, "{detail}");
    assert!(detail["names"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n == "ghost.user")));
    let (st, v) = auditor.get("/v1/audit/verify").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true, "{v}");
}
both_databases!(login_limits_per_address_and_account_are_the_security_admins);
