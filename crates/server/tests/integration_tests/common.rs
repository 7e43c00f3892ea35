//! The test fixture: a real server on a random port with a fresh database (a SQLite file
//! in a temporary directory, or a fresh schema in PostgreSQL), and HTTP helpers that log
//! in as any role.

#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;
use zy_model::role::Role;

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite,
    Postgres(String),
}

impl Db {
    /// PostgreSQL from `ZHENGYUN_TEST_PG_URL`. Without it the PostgreSQL variant is
    /// skipped, unless `ZHENGYUN_TEST_REQUIRE_PG=1` (as `cargo xtask test` sets), when
    /// its absence fails the test.
    pub fn postgres() -> Option<Db> {
        match std::env::var("ZHENGYUN_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Some(Db::Postgres(url)),
            _ => {
                if std::env::var("ZHENGYUN_TEST_REQUIRE_PG").as_deref() == Ok("1") {
                    panic!("ZHENGYUN_TEST_PG_URL is not set but PostgreSQL tests are required");
                }
                eprintln!("skipping the PostgreSQL variant: ZHENGYUN_TEST_PG_URL is not set");
                None
            }
        }
    }
}

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_databases {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::common::Db::postgres() {
                    super::$name(db).await
                }
            }
        }
    };
}

pub struct TestServer {
    pub url: String,
    pub server: Option<zy_server::Server>,
    pub passwords: Vec<(String, Role, String)>,
    pub dir: PathBuf,
    pub db: Db,
    pub http: reqwest::Client,
    pub config: zy_server::Config,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("zhengyun-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The admins' passwords after their first login.
pub const ADMIN_PASSWORD: &str = "Changed#Pass2026";
pub const USER_PASSWORD: &str = "Member#Pass2026";

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        Self::start_with(db, false).await
    }

    pub async fn start_with(db: Db, demo: bool) -> TestServer {
        Self::start_custom(db, demo, |_| {}).await
    }

    /// Starts with the configuration changed by `f` (e.g. the syslog receiver on).
    pub async fn start_custom(
        db: Db,
        demo: bool,
        f: impl FnOnce(&mut zy_server::Config),
    ) -> TestServer {
        // A failed request's internal cause (logged by the middleware, never sent to the
        // client) is printed with a failing test's output, so a 5xx can be diagnosed.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("zy_server=error"))
            .with_test_writer()
            .try_init();
        let dir = temp_dir();
        let (database_url, pg_schema) = match &db {
            Db::Sqlite => (None, None),
            Db::Postgres(url) => (
                Some(url.clone()),
                Some(format!("zt_{}", uuid::Uuid::new_v4().simple())),
            ),
        };
        let config = zy_server::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url,
            pg_schema,
            data_dir: dir.clone(),
            demo,
            secure_cookies: false,
            max_connections: 8,
            lease_secs: 2,
            secret_key_file: None,
            request_timeout: std::time::Duration::from_secs(30),
            request_timer_secs: 1,
            test_clock: true,
            metrics_interval_secs: 2,
            metrics_flush_secs: 0,
            openstack_metrics_secs: 60,
            syslog_udp: None,
            syslog_tcp: None,
            syslog_queue: 65_536,
        };
        let mut config = config;
        f(&mut config);
        let server = zy_server::start(config.clone())
            .await
            .expect("server starts");
        let url = format!("http://{}", server.addr);
        let passwords = server
            .credentials
            .clone()
            .expect("first start creates the admins")
            .accounts;
        let http = reqwest::Client::builder().build().expect("client");
        TestServer {
            url,
            server: Some(server),
            passwords,
            dir,
            db,
            http,
            config,
        }
    }

    /// Stops the server abruptly (in-flight work is dropped, as in a crash) and starts a
    /// new one on the same database.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let server = zy_server::start(self.config.clone())
            .await
            .expect("server restarts");
        self.url = format!("http://{}", server.addr);
        self.server = Some(server);
    }

    pub fn store(&self) -> &zy_store::Store {
        &self.server.as_ref().expect("running").state.store
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    pub fn anonymous(&self) -> Session {
        Session {
            url: self.url.clone(),
            http: self.http.clone(),
            bearer: None,
            username: String::new(),
            user_id: String::new(),
        }
    }

    pub fn one_time_password(&self, username: &str) -> String {
        self.passwords
            .iter()
            .find(|(u, _, _)| u == username)
            .map(|(_, _, p)| p.clone())
            .expect("bootstrap account")
    }

    /// Logs in as one of the bootstrap admins, changes the password and enrols TOTP.
    pub async fn admin(&self, username: &str) -> Session {
        let otp = self.one_time_password(username);
        let s = self.login(username, &otp).await.expect("first login");
        let (st, _) = s
            .post(
                "/v1/me/password",
                json!({ "current_password": otp, "new_password": ADMIN_PASSWORD }),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "password change");
        enrol(&s).await;
        s
    }

    pub async fn platform_admin(&self) -> Session {
        self.admin("admin").await
    }

    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Session, (StatusCode, Value)> {
        let (st, body) = self
            .anonymous()
            .post(
                "/v1/auth/login",
                json!({ "username": username, "password": password, "bearer": true }),
            )
            .await;
        if st != StatusCode::OK {
            return Err((st, body));
        }
        Ok(Session {
            url: self.url.clone(),
            http: self.http.clone(),
            bearer: body["session_token"].as_str().map(str::to_string),
            username: username.to_string(),
            user_id: body["user"]["id"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Creates an account (as the platform admin `by`), lets it change its one-time
    /// password, and returns its session.
    pub async fn new_user(
        &self,
        by: &Session,
        username: &str,
        department: Option<&str>,
    ) -> Session {
        let (st, body) = by.post("/v1/users", json!({ "username": username, "display_name": format!("测试{username}"), "department_id": department })).await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        let otp = body["initial_password"]
            .as_str()
            .expect("one-time password")
            .to_string();
        let s = self
            .login(username, &otp)
            .await
            .expect("login with one-time password");
        let (st, body) = s
            .post(
                "/v1/me/password",
                json!({ "current_password": otp, "new_password": USER_PASSWORD }),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
        s
    }

    /// Grants `role` to `user` (by the given granter) at platform, department or project scope.
    pub async fn grant(
        &self,
        by: &Session,
        user: &Session,
        role: Role,
        department: Option<&str>,
        project: Option<&str>,
    ) -> String {
        let scope = if project.is_some() {
            "project"
        } else if department.is_some() {
            "department"
        } else {
            "platform"
        };
        let (st, body) = by
            .post("/v1/memberships", json!({ "user_id": user.user_id, "role": role, "scope_type": scope, "department_id": department, "project_id": project }))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("membership id").to_string()
    }

    /// Makes `user` an operator of `provider` (a provider operator works for one provider).
    pub async fn grant_provider(&self, by: &Session, user: &Session, provider: &str) -> String {
        let (st, body) = by
            .post("/v1/memberships", json!({ "user_id": user.user_id, "role": "provider_operator", "scope_type": "provider", "provider_id": provider }))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("membership id").to_string()
    }
}

/// An HTTP client acting as one user (bearer session), or anonymous.
#[derive(Clone)]
pub struct Session {
    pub url: String,
    pub http: reqwest::Client,
    pub bearer: Option<String>,
    pub username: String,
    pub user_id: String,
}

impl Session {
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let st = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if st.is_client_error() || st.is_server_error() {
            assert_error_body(st, &v);
        }
        (st, v)
    }
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.raw(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.raw(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.raw(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.raw(reqwest::Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.raw(reqwest::Method::DELETE, path, None).await
    }
}

/// Enrols a TOTP second factor for `s`; returns the secret.
pub async fn enrol(s: &Session) -> Vec<u8> {
    let (st, e) = s.post("/v1/me/mfa/enrol", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{e}");
    let secret =
        zy_model::totp::base32_decode(e["secret"].as_str().expect("secret")).expect("base32");
    let code = zy_model::totp::code_at(&secret, chrono::Utc::now().timestamp());
    let (st, body) = s.post("/v1/me/mfa/confirm", json!({ "code": code })).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    secret
}

/// Every error has the one body shape.
pub fn assert_error_body(st: StatusCode, v: &Value) {
    let e = &v["error"];
    assert!(
        e["code"].is_string(),
        "HTTP {st} without the error body: {v}"
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "HTTP {st} without a message: {v}"
    );
    assert!(
        e["request_id"].as_str().is_some_and(|r| r.len() == 36),
        "HTTP {st} without a request id: {v}"
    );
}

/// Creates a department as `by` and returns its id.
pub async fn department(by: &Session, name: &str, code: &str) -> String {
    let (st, body) = by
        .post("/v1/departments", json!({ "name": name, "code": code }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_string()
}

pub async fn project(by: &Session, department: &str, name: &str) -> String {
    let (st, body) = by
        .post(
            "/v1/projects",
            json!({ "department_id": department, "name": name }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// Runs raw SQL against the test's database (for simulating tampering and crashes).
pub async fn sql(ts: &TestServer, statement: &str) {
    sqlx::raw_sql(statement)
        .execute(ts.store().pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    // A change behind the server's back: forget cached callers as a change through the
    // API would.
    if let Some(s) = &ts.server {
        s.state.auth_cache.clear();
    }
}
