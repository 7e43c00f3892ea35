//! Bad and hostile input gets a clear 4xx with the one error body, never a 5xx, a panic
//! or a partial write: specific cases first, then random requests against every
//! operation in the OpenAPI document.

use crate::both_databases;
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod schema;

async fn send(
    ts: &TestServer,
    s: &Session,
    method: Method,
    path: &str,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = ts.http.request(method, format!("{}{}", ts.url, path));
    if let Some(b) = &s.bearer {
        req = req.bearer_auth(b);
    }
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    let resp = req.body(body).send().await.expect("sent");
    let st = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (st, v)
}

async fn malformed_requests_get_clear_errors(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let j = Some("application/json");
    type Case<'a> = (Method, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/departments",
            j,
            b"{\"name\": ".to_vec(),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            b"[1,2,3]".to_vec(),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            br#"{"name": 42, "code": "A"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            br#"{"name": "a", "code": "A", "colour": "red"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/v1/departments",
            Some("text/plain"),
            br#"{"name": "a", "code": "A"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/departments",
            None,
            Vec::new(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            vec![b' '; 2 * 1024 * 1024],
            413,
            "payload_too_large",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            br#"{"name": "", "code": "A"}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            br#"{"name": "\u0000\u0001", "code": "A"}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            br#"{"name": "x", "code": "lower case"}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/departments",
            j,
            vec![0xff, 0xfe, 0x00],
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/departments/not-a-uuid",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/departments/../../etc/passwd",
            None,
            Vec::new(),
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/departments/01a2ffff-0000-7000-8000-000000000000",
            None,
            Vec::new(),
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/projects?limit=0",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?limit=99999999999999999999999",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?limit=-5",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?limit=abc",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?cursor=%00%01garbage",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?sort=password_hash",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?department_id=1",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?unknown=1",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/projects?q=%27%3B%20DROP%20TABLE%20projects%3B--",
            None,
            Vec::new(),
            200,
            "",
        ),
        (
            Method::GET,
            "/v1/audit?from=yesterday",
            None,
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            Method::PUT,
            "/v1/departments",
            j,
            b"{}".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/v1/no-such-thing",
            None,
            Vec::new(),
            404,
            "not_found",
        ),
        (
            Method::PATCH,
            "/v1/departments/01a2ffff-0000-7000-8000-000000000000",
            j,
            br#"{"generation": "x"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/v1/memberships",
            j,
            br#"{"user_id": "x", "role": "god", "scope_type": "platform"}"#.to_vec(),
            400,
            "invalid_request",
        ),
    ];
    for (m, path, ctype, body, want, code) in cases {
        let (st, v) = send(&ts, &admin, m.clone(), path, ctype, body).await;
        assert_eq!(st.as_u16(), want, "{m} {path}: {v}");
        if want >= 400 {
            assert_error_body(st, &v);
            assert_eq!(v["error"]["code"], code, "{m} {path}: {v}");
        }
    }
    let (_, list) = admin.get("/v1/departments").await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "nothing was half-written"
    );
    // English on request.
    let resp = ts
        .http
        .get(format!("{}/v1/me", ts.url))
        .header("accept-language", "en-US")
        .send()
        .await
        .expect("sent");
    let v: Value = resp.json().await.expect("json");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.is_ascii()),
        "{v}"
    );
}
both_databases!(malformed_requests_get_clear_errors);

async fn random_methods_and_paths_do_not_grow_the_metrics(db: Db) {
    let ts = TestServer::start(db).await;
    let anon = ts.anonymous();
    for i in 0..20 {
        let m = Method::from_bytes(format!("ZYM{i}").as_bytes()).expect("method");
        let (st, v) = send(&ts, &anon, m, &format!("/v1/zyrandom{i}"), None, vec![]).await;
        assert!(st.is_client_error(), "{st} {v}");
        let (st, _) = send(
            &ts,
            &anon,
            Method::GET,
            &format!("/v1/zyrandom{i}/x"),
            None,
            vec![],
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, _) = send(
            &ts,
            &anon,
            Method::from_bytes(b"ZYMX").expect("m"),
            "/v1/departments",
            None,
            vec![],
        )
        .await;
        assert!(st.is_client_error());
    }
    let text = ts
        .http
        .get(format!("{}/metrics", ts.url))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(!text.contains("zyrandom"), "a path became a label");
    assert!(!text.contains("ZYM"), "a method became a label");
    assert!(
        text.contains("route=\"unmatched\",method=\"other\""),
        "{text}"
    );
    assert!(
        text.contains("route=\"unmatched\",method=\"GET\""),
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("zhengyun_http_requests_total{"))
        .count();
    assert!(series <= 4, "{text}");
}
both_databases!(random_methods_and_paths_do_not_grow_the_metrics);

async fn agent_join_checks_its_token_before_anything_else(db: Db) {
    let ts = TestServer::start(db).await;
    let anon = ts.anonymous();
    // Everything else is wrong too; the answer is about the token, so nothing else was
    // looked at (a valid token with this CSR would be a 422 about csr_pem).
    let bodies = [
        json!({ "token": "zyj_wrong", "csr_pem": "not a csr", "name": "", "address": "no-such-host.invalid:1", "capacity": { "vcpus": 0, "memory_mib": 0, "disk_gib": 0, "disk_free_gib": 0, "accel": "tcg", "qemu_version": "" } }),
        json!({ "token": "x".repeat(5000), "csr_pem": "y".repeat(20000), "name": "h", "address": "127.0.0.1:1", "capacity": { "vcpus": 2, "memory_mib": 4096, "disk_gib": 10, "disk_free_gib": 5, "accel": "tcg", "qemu_version": "" } }),
    ];
    let started = std::time::Instant::now();
    for _ in 0..25 {
        for b in &bodies {
            let (st, v) = anon.post("/v1/agents/join", b.clone()).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
            assert_eq!(v["error"]["code"], "unauthenticated", "{v}");
        }
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "50 bad joins took {:?}",
        started.elapsed()
    );
    // Audited as one summary, not fifty writes.
    let state = &ts.server.as_ref().expect("running").state;
    assert_eq!(state.refusals.pending(), 50);
    state.refusals.flush(state).await.expect("written");
    let auditor = ts.admin("auditor").await;
    let (st, log) = auditor.get("/v1/audit?action=join_agent&limit=100").await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let items = log["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{log}");
    assert!(items[0]["detail"]
        .as_str()
        .is_some_and(|d| d.contains("\"attempts\":50")));
}
both_databases!(agent_join_checks_its_token_before_anything_else);

/// A small deterministic generator, so a failure can be replayed with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn string(&mut self) -> String {
        let long = "x".repeat(300);
        let pieces = [
            "",
            "a",
            "宜宾",
            "\u{0}",
            "'; DROP TABLE users;--",
            "%",
            "_",
            "\u{202e}",
            "🙂",
            "admin",
            "../",
            "\\",
            "\"",
            long.as_str(),
            "0",
            "-1",
            "true",
            "null",
        ];
        (0..self.below(4))
            .map(|_| self.pick(&pieces).to_string())
            .collect()
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 2 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => json!(self.string()),
            4 => json!(1e308 * (self.below(3) as f64)),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => {
                let keys = [
                    "name",
                    "code",
                    "description",
                    "department_id",
                    "project_id",
                    "user_id",
                    "role",
                    "scope_type",
                    "username",
                    "display_name",
                    "password",
                    "generation",
                    "expires_in_days",
                    "minutes",
                    "before",
                    "code",
                    "current_password",
                    "new_password",
                    "bearer",
                    "totp_code",
                    "junk",
                ];
                Value::Object(
                    (0..self.below(6))
                        .map(|_| (self.pick(&keys).to_string(), self.value(depth + 1)))
                        .collect(),
                )
            }
        }
    }
}

async fn random_requests_against_every_operation_never_fail_the_server(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let auditor = ts.admin("auditor").await;
    let d = department(&admin, "宜宾市卫计委", "WJW").await;
    let doc = zy_server::api::openapi();
    let seed: u64 = std::env::var("ZHENGYUN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let rounds: u64 = std::env::var("ZHENGYUN_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rng = Rng(seed);
    let ids = [
        d.clone(),
        uuid::Uuid::now_v7().to_string(),
        "x".into(),
        "%E5%AE%9C".into(),
        "0".repeat(500),
        "00000000-0000-0000-0000-000000000000".into(),
    ];
    let mut tried = 0;
    for (path, item) in &doc.paths.paths {
        let ops = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let param_names: Vec<String> = op
                .parameters
                .iter()
                .flatten()
                .map(|p| p.name.clone())
                .collect();
            for _ in 0..rounds {
                let who = match rng.below(3) {
                    0 => &admin,
                    1 => &auditor,
                    _ => &ts.anonymous(),
                };
                let mut p = path.clone();
                if let (Some(a), Some(b)) = (p.find('{'), p.find('}')) {
                    let id = rng.pick(&ids[..]).clone();
                    p.replace_range(a..=b, &id);
                }
                let mut query = Vec::new();
                for name in &param_names {
                    if name != "id" && rng.below(2) == 0 {
                        let v = match rng.below(4) {
                            0 => (rng.next() as i64).to_string(),
                            1 => rng.pick(&ids[..]).clone(),
                            _ => rng.string(),
                        };
                        query.push((name.clone(), v));
                    }
                }
                let body = serde_json::to_vec(&rng.value(0)).unwrap_or_default();
                let mut req = ts
                    .http
                    .request(method.clone(), format!("{}{}", ts.url, p))
                    .query(&query);
                if let Some(b) = &who.bearer {
                    req = req.bearer_auth(b);
                }
                if method != Method::GET {
                    req = req
                        .header(
                            "content-type",
                            *rng.pick(&[
                                "application/json",
                                "application/json; charset=utf-8",
                                "text/plain",
                                "application/x-www-form-urlencoded",
                            ]),
                        )
                        .body(body.clone());
                }
                let resp = req.send().await.expect("sent");
                let st = resp.status();
                let text = resp.text().await.unwrap_or_default();
                assert!(
                    st.as_u16() < 500,
                    "{method} {p} {query:?} body={} → {st}: {text}",
                    String::from_utf8_lossy(&body)
                );
                if st.is_client_error() {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    assert_error_body(st, &v);
                }
                tried += 1;
            }
        }
    }
    assert!(tried > 100);
    // The server still works and the audit chain is intact after all of it.
    let auditor = ts.admin_session_refresh(&auditor).await;
    let (st, report) = auditor.get("/v1/audit/verify").await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");
}
both_databases!(random_requests_against_every_operation_never_fail_the_server);

impl TestServer {
    /// The same session if still valid (fuzzing may lock or log out accounts).
    async fn admin_session_refresh(&self, s: &Session) -> Session {
        if s.get("/v1/me").await.0 == StatusCode::OK {
            return s.clone();
        }
        let store = self.store();
        let mut tx = store.begin_write().await.expect("tx");
        let uid: zy_model::id::UserId = s.user_id.parse().expect("id");
        zy_store::users::set_lock(&mut tx, uid, None)
            .await
            .expect("unlock");
        tx.commit().await.expect("commit");
        let sealed: String = sqlx::query_scalar("SELECT totp_secret FROM users WHERE id = $1")
            .bind(&s.user_id)
            .fetch_one(store.pool())
            .await
            .expect("secret");
        let opened = self
            .server
            .as_ref()
            .expect("server")
            .state
            .sealer
            .open(&sealed)
            .expect("unseal");
        let secret = zy_model::totp::base32_decode(&opened).expect("b32");
        let code = zy_model::totp::code_at(&secret, chrono::Utc::now().timestamp() + 30);
        let (st, body) = self.anonymous().post("/v1/auth/login", json!({ "username": s.username, "password": ADMIN_PASSWORD, "totp_code": code, "bearer": true })).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        Session {
            bearer: body["session_token"].as_str().map(str::to_string),
            ..s.clone()
        }
    }
}

/// `POST /v1/departments` as raw HTTP: status, `Retry-After` and body.
async fn create_department(
    ts: &TestServer,
    by: &Session,
    body: Value,
) -> (StatusCode, Option<reqwest::header::HeaderValue>, Value) {
    let resp = ts
        .http
        .post(format!("{}/v1/departments", ts.url))
        .bearer_auth(by.bearer.as_deref().unwrap_or_default())
        .json(&body)
        .send()
        .await
        .expect("sent");
    let st = resp.status();
    let retry = resp.headers().get("retry-after").cloned();
    (st, retry, resp.json().await.unwrap_or(Value::Null))
}

/// SQLite has one writer; a change that cannot get its turn in time is told to retry
/// (503 with `Retry-After`), never answered 500 "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_contention_is_503_with_retry_after() {
    let ts = TestServer::start(Db::Sqlite).await;
    let admin = ts.platform_admin().await;
    let held = ts.store().begin_write().await.expect("the writer slot");
    let (st, retry, v) = create_department(
        &ts,
        &admin,
        json!({ "name": "争用测试局", "code": "ZY-BUSY" }),
    )
    .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    assert!(retry.is_some(), "503 without Retry-After");
    drop(held);
    let (st, v) = admin
        .post(
            "/v1/departments",
            json!({ "name": "争用测试局", "code": "ZY-BUSY" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

/// A request that outlives the request timeout is answered 503 with `Retry-After` in the
/// one error body, never a 500.
async fn slow_requests_time_out_with_503(db: Db) {
    let mut ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    // No time at all: a change that waits for the database even once times out.
    ts.config.request_timeout = std::time::Duration::ZERO;
    ts.restart().await;
    let admin = Session {
        url: ts.url.clone(),
        ..admin
    };
    let mut timed_out = 0;
    for i in 0..20 {
        let (st, retry, v) = create_department(
            &ts,
            &admin,
            json!({ "name": format!("超时测试局{i}"), "code": format!("ZY-TO{i}") }),
        )
        .await;
        assert!(
            !st.is_server_error() || st == StatusCode::SERVICE_UNAVAILABLE,
            "{st} {v}"
        );
        if st == StatusCode::SERVICE_UNAVAILABLE {
            assert_error_body(st, &v);
            assert_eq!(v["error"]["code"], "unavailable", "{v}");
            assert!(retry.is_some(), "503 without Retry-After");
            timed_out += 1;
        }
    }
    assert!(timed_out > 0, "no change timed out");
}
both_databases!(slow_requests_time_out_with_503);
