//! Metrics history: the collector reads the simulated provider, the figures come back
//! through the query API per instance, host, project, department, zone and provider, each
//! scope only for those who may see it; alert rules fire and resolve (silences keep them
//! quiet); every malformed query, rule or silence gets a clear 4xx (400
//! when it cannot be read, 422 naming the field when a value breaks a rule).

use crate::both_databases;
use crate::common::*;
use crate::compute::{cloud, create, settle};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Polls the query until `ok` holds for its answer (the collector runs every 2 s in tests).
async fn until(s: &Session, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (st, v) = s.get(path).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path}: never got there: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn values(v: &Value, k: usize) -> Vec<f64> {
    v["series"][k]["values"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

async fn figures_are_collected_and_read_per_scope_by_whoever_may_see_them(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let (st, b) = create(&c, "m", 2, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let items = settle(&c).await;
    let burning = items[0]["id"].as_str().expect("id").to_string();
    let idle = items[1]["id"].as_str().expect("id").to_string();
    let state = &ts.server.as_ref().expect("server").state;
    let sim = state
        .compute
        .drivers
        .sim(c.provider.parse().expect("provider id"))
        .expect("sim");
    sim.set_cpu_burn(burning.parse().expect("uuid"), true);
    let from = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let from = urlencode(&from);
    let q = |scope: &str, id: &str, series: &str| {
        format!("/v1/metrics/query?scope={scope}&id={id}&series={series}&from={from}&step=10")
    };

    // The burning guest shows (almost) all of its CPU, the other one not; both are up.
    let v = until(
        &c.member,
        &q("instance", &burning, "cpu,up,mem,disk_read"),
        |v| values(v, 0).iter().any(|x| *x > 90.0),
    )
    .await;
    assert_eq!(v["resolution"], "raw");
    assert!(values(&v, 1).iter().all(|x| *x == 1.0), "{v}");
    assert!(values(&v, 2).iter().all(|x| *x > 0.0 && *x <= 100.0), "{v}");
    assert!(!values(&v, 3).is_empty(), "disk reads measured: {v}");
    let v = until(&c.member, &q("instance", &idle, "cpu"), |v| {
        !values(v, 0).is_empty()
    })
    .await;
    assert!(values(&v, 0).iter().all(|x| *x < 90.0), "{v}");

    // Aggregates: the project and the department count both instances up.
    let (_, inst) = c.member.get(&format!("/v1/instances/{burning}")).await;
    let dept = inst["department_id"]
        .as_str()
        .expect("department")
        .to_string();
    let host = inst["host_id"].as_str().expect("host").to_string();
    let zone = inst["zone_id"].as_str().expect("zone").to_string();
    let v = until(&c.member, &q("project", &c.project, "up,cpu"), |v| {
        values(v, 0).contains(&2.0)
    })
    .await;
    assert!(values(&v, 1).iter().all(|x| *x > 0.0 && *x <= 100.0), "{v}");
    until(&c.admin, &q("department", &dept, "up"), |v| {
        values(v, 0).contains(&2.0)
    })
    .await;
    until(&c.admin, &q("host", &host, "up,cpu"), |v| {
        values(v, 0).contains(&1.0)
    })
    .await;
    until(&c.admin, &q("zone", &zone, "up"), |v| {
        !values(v, 0).is_empty()
    })
    .await;
    until(&c.admin, &q("provider", &c.provider, "up"), |v| {
        values(v, 0).contains(&2.0)
    })
    .await;

    // A project member reads its project but neither its department nor the hosts.
    for (scope, id) in [
        ("department", dept.as_str()),
        ("host", &host),
        ("zone", &zone),
        ("provider", &c.provider),
    ] {
        let (st, b) = c.member.get(&q(scope, id, "cpu")).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{scope}: {b}");
        assert_error_body(st, &b);
    }

    // The same figures for Prometheus: the burning guest with its department's label.
    let (st, v) = c.admin.get("/v1/metrics/prometheus").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let text = v.as_str().unwrap_or_default().to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("zhengyun_instance_cpu{") && l.contains(&burning))
        .unwrap_or_else(|| panic!("no cpu line for the burning guest:\n{text}"));
    assert!(
        line.contains(&format!("department_id=\"{dept}\"")),
        "{line}"
    );
    assert!(
        line.contains(&format!("project_id=\"{}\"", c.project)),
        "{line}"
    );
    let value: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(value > 90.0, "{line}");
    assert!(text.contains("# TYPE zhengyun_host_up gauge"), "{text}");
    let (st, _) = c.member.get("/v1/metrics/prometheus").await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a project member reads no exposition"
    );

    // Remote write: a loopback receiver gets each reading as snappy-framed protobuf.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = receiver.local_addr().expect("addr").port();
    let (got, mut bodies) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(4);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = receiver.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            let (head, body) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break (head, buf[end + 4..end + 4 + len].to_vec());
                }
            };
            let _ = sock
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .await;
            if got.send((head, body)).await.is_err() {
                break;
            }
        }
    });
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let (st, v) = c
        .admin
        .put(
            "/v1/metrics/remote-write",
            json!({ "enabled": true, "url": url, "bearer_token": "s3cret-token" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["has_token"], true);
    assert!(
        !v.to_string().contains("s3cret"),
        "the token is never returned: {v}"
    );
    let (head, body) = tokio::time::timeout(std::time::Duration::from_secs(30), bodies.recv())
        .await
        .expect("a remote write within 30 s")
        .expect("body");
    assert!(head.contains("content-encoding: snappy"), "{head}");
    assert!(
        head.contains("authorization: bearer s3cret-token"),
        "{head}"
    );
    let proto = snappy_literals(&body);
    let has = |needle: &str| proto.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("zhengyun_instance_cpu"), "series name");
    assert!(
        has(&burning) && has(&dept),
        "instance and department labels"
    );
    let (st, v) = c
        .admin
        .put(
            "/v1/metrics/remote-write",
            json!({ "enabled": false, "url": "" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = c
        .admin
        .put(
            "/v1/metrics/remote-write",
            json!({ "enabled": true, "url": "ftp://x" }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // A host that dies is down, and so are its instances.
    sim.kill_host(host.parse().expect("uuid"));
    until(&c.admin, &q("host", &host, "up"), |v| {
        values(v, 0).last() == Some(&0.0)
    })
    .await;
    until(&c.admin, &q("instance", &burning, "up"), |v| {
        values(v, 0).last() == Some(&0.0)
    })
    .await;
}
both_databases!(figures_are_collected_and_read_per_scope_by_whoever_may_see_them);

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn malformed_metrics_queries_get_a_clear_4xx(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let id = uuid::Uuid::now_v7();
    let now = chrono::Utc::now();
    let iso = |d: chrono::DateTime<chrono::Utc>| urlencode(&d.to_rfc3339());
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("scope=vm&id={id}"), 422, "scope"),
        ("scope=instance&id=abc".into(), 422, "id"),
        (
            format!("scope=instance&id={id}&series=cpu,bogus"),
            422,
            "series",
        ),
        (format!("scope=instance&id={id}&agg=p99"), 422, "agg"),
        (format!("scope=instance&id={id}&step=1"), 422, "step"),
        (format!("scope=instance&id={id}&step=-10"), 422, "step"),
        (
            format!(
                "scope=instance&id={id}&from={}&step=10",
                iso(now - chrono::Duration::days(1))
            ),
            422,
            "step",
        ),
        (
            format!(
                "scope=instance&id={id}&from={}&to={}",
                iso(now),
                iso(now - chrono::Duration::hours(1))
            ),
            422,
            "to",
        ),
        (
            format!(
                "scope=instance&id={id}&from={}",
                iso(now - chrono::Duration::days(500))
            ),
            422,
            "from",
        ),
        (format!("scope=instance&id={id}&from=yesterday"), 400, ""),
        (
            format!("scope=instance&id={id}&step=99999999999999999999"),
            400,
            "",
        ),
        (format!("scope=instance&id={id}&extra=1"), 400, ""),
        (format!("id={id}"), 400, ""),
        (format!("scope=instance&id={id}"), 404, ""),
        (format!("scope=host&id={id}"), 404, ""),
        (format!("scope=department&id={id}"), 404, ""),
    ];
    for (query, status, field) in cases {
        let (st, b) = admin.get(&format!("/v1/metrics/query?{query}")).await;
        assert_eq!(st.as_u16(), status, "{query}: {b}");
        assert_error_body(st, &b);
        if !field.is_empty() {
            assert_eq!(b["error"]["details"]["field"], field, "{query}: {b}");
        }
    }
}
both_databases!(malformed_metrics_queries_get_a_clear_4xx);

/// The inbox items of `kind` the session has.
pub(crate) async fn notices(s: &Session, kind: &str) -> usize {
    let (st, v) = s.get("/v1/me/notifications?limit=200").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .map(|a| a.iter().filter(|i| i["kind"] == kind).count())
        .unwrap_or(0)
}

/// History entries of a rule in a state (`firing` / `resolved`), with their `silenced`.
async fn history(s: &Session, rule: &str, state: &str) -> Vec<bool> {
    let (st, v) = s.get("/v1/alerts/history").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["rule_id"] == rule && e["state"] == state)
                .map(|e| e["silenced"].as_bool().unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !f().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn alerts_fire_and_resolve_on_a_burning_guest_and_a_silence_keeps_them_quiet(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 1).await;
    let (st, b) = create(&c, "hot", 1, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let items = settle(&c).await;
    let vm = items[0]["id"].as_str().expect("id").to_string();
    let dept = items[0]["department_id"]
        .as_str()
        .expect("dept")
        .to_string();
    let host = items[0]["host_id"].as_str().expect("host").to_string();
    let da = ts.new_user(&c.admin, "wjw.admin", Some(&dept)).await;
    ts.grant(
        &c.admin,
        &da,
        zy_model::role::Role::DeptAdmin,
        Some(&dept),
        None,
    )
    .await;
    let state = &ts.server.as_ref().expect("server").state;
    let sim = state
        .compute
        .drivers
        .sim(c.provider.parse().expect("provider id"))
        .expect("sim");

    // A department admin watches the project; a member may not set rules.
    let rule = json!({ "name": "CPU 过高", "kind": "threshold", "scope": "project", "id": c.project, "series": "cpu", "op": "gt", "threshold": 90.0, "for_secs": 4 });
    let (st, b) = c.member.post("/v1/alert-rules", rule.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    let (st, b) = da.post("/v1/alert-rules", rule).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let cpu_rule = b["id"].as_str().expect("rule").to_string();
    // Host rules belong to the platform: the department admin is refused.
    let host_down = json!({ "name": "宿主机宕机", "kind": "threshold", "scope": "provider", "id": c.provider, "target": "host", "series": "up", "op": "lt", "threshold": 1.0 });
    let (st, b) = da.post("/v1/alert-rules", host_down.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");

    sim.set_cpu_burn(vm.parse().expect("uuid"), true);
    eventually("the CPU alert fires", async || {
        history(&da, &cpu_rule, "firing").await == vec![false]
    })
    .await;
    let (_, active) = c.member.get("/v1/alerts").await;
    assert!(
        active["items"].as_array().is_some_and(|a| a
            .iter()
            .any(|x| x["rule_id"] == cpu_rule.as_str()
                && x["state"] == "firing"
                && x["target_id"] == vm.as_str())),
        "{active}"
    );
    assert_eq!(notices(&da, "alert_firing").await, 1);
    sim.set_cpu_burn(vm.parse().expect("uuid"), false);
    eventually("the CPU alert resolves", async || {
        !history(&da, &cpu_rule, "resolved").await.is_empty()
    })
    .await;
    assert_eq!(notices(&da, "alert_resolved").await, 1);

    // Silenced: recorded, nobody told.
    let ends = zy_model::time::Timestamp::now().plus_secs(3600);
    let (st, b) = da
        .post(
            "/v1/alert-silences",
            json!({ "scope": "instance", "id": vm, "ends_at": ends, "reason": "压测" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    sim.set_cpu_burn(vm.parse().expect("uuid"), true);
    eventually("the silenced alert fires", async || {
        history(&da, &cpu_rule, "firing").await.contains(&true)
    })
    .await;
    assert_eq!(notices(&da, "alert_firing").await, 1, "no second notice");

    // Three crashes within the hour fire a crash rule.
    let (st, b) = da
        .post("/v1/alert-rules", json!({ "name": "频繁崩溃", "kind": "crashes", "scope": "instance", "id": vm, "crash_count": 3 }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let crash_rule = b["id"].as_str().expect("rule").to_string();
    for k in 0..3 {
        let at = zy_model::time::Timestamp::now().0;
        sql(&ts, &format!("INSERT INTO instance_events (id, instance_id, at, from_state, to_state, reason) VALUES ('{}', '{vm}', {at}, 'running', 'running', 'the guest died unexpectedly on host {host} ({k})')", uuid::Uuid::now_v7())).await;
    }
    eventually("the crash alert fires", async || {
        !history(&da, &crash_rule, "firing").await.is_empty()
    })
    .await;

    // Host down, for the platform admin.
    let (st, b) = c.admin.post("/v1/alert-rules", host_down).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let down_rule = b["id"].as_str().expect("rule").to_string();
    sim.kill_host(host.parse().expect("uuid"));
    eventually("the host-down alert fires", async || {
        history(&c.admin, &down_rule, "firing").await == vec![false]
    })
    .await;
    // The department sees its own rules only.
    let (_, rules) = da.get("/v1/alert-rules").await;
    assert!(!rules.to_string().contains(&down_rule), "{rules}");
}
both_databases!(alerts_fire_and_resolve_on_a_burning_guest_and_a_silence_keeps_them_quiet);

async fn malformed_alert_rules_and_silences_are_refused(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾市大数据局", "DSJ").await;
    let ok = json!({ "name": "x", "kind": "threshold", "scope": "department", "id": d, "series": "cpu", "threshold": 90.0 });
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let (st, b) = admin.post("/v1/alert-rules", ok.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    for (body, status) in [
        (with("name", json!("")), 422),
        (with("name", json!("x".repeat(65))), 422),
        (with("threshold", Value::Null), 422),
        (with("for_secs", json!(999_999)), 422),
        (with("target", json!("host")), 422),
        (with("crash_count", json!(3)), 422),
        (with("series", json!("bogus")), 400),
        (with("scope", json!("galaxy")), 400),
        (with("id", json!("not-a-uuid")), 422),
        (with("id", json!(uuid::Uuid::now_v7())), 404),
        (with("kind", json!("crashes")), 422),
        (with("extra", json!(1)), 400),
    ] {
        let (st, b) = admin.post("/v1/alert-rules", body.clone()).await;
        assert_eq!(st.as_u16(), status, "{body}: {b}");
        assert_error_body(st, &b);
    }
    let past = zy_model::time::Timestamp::now().plus_secs(-60);
    let far = zy_model::time::Timestamp::now().plus_secs(40 * 86_400);
    for (body, status) in [
        (
            json!({ "scope": "department", "id": d, "ends_at": past, "reason": "x" }),
            422,
        ),
        (
            json!({ "scope": "department", "id": d, "ends_at": far, "reason": "x" }),
            422,
        ),
        (
            json!({ "scope": "department", "id": d, "ends_at": far, "reason": "" }),
            422,
        ),
        (
            json!({ "scope": "department", "id": d, "ends_at": "tomorrow", "reason": "x" }),
            400,
        ),
    ] {
        let (st, b) = admin.post("/v1/alert-silences", body.clone()).await;
        assert_eq!(st.as_u16(), status, "{body}: {b}");
        assert_error_body(st, &b);
    }
    for path in ["/v1/alert-rules/nope", "/v1/alert-silences/nope"] {
        let (st, b) = admin.delete(path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    let (st, b) = admin.get("/v1/alerts/history?limit=0").await;
    assert_eq!(st.as_u16(), 422, "{b}");
}
both_databases!(malformed_alert_rules_and_silences_are_refused);

/// Decodes snappy's block format as far as remote write uses it here (literal elements).
fn snappy_literals(enc: &[u8]) -> Vec<u8> {
    let mut i = 0;
    while enc[i] >= 0x80 {
        i += 1;
    }
    i += 1;
    let mut out = Vec::new();
    while i < enc.len() {
        let tag = enc[i];
        i += 1;
        assert_eq!(tag & 3, 0, "only literal elements are sent");
        let m = match tag >> 2 {
            60 => {
                i += 1;
                usize::from(enc[i - 1])
            }
            61 => {
                i += 2;
                usize::from(u16::from_le_bytes([enc[i - 2], enc[i - 1]]))
            }
            small => usize::from(small),
        } + 1;
        out.extend_from_slice(&enc[i..i + m]);
        i += m;
    }
    out
}

/// A real Prometheus on loopback with its remote-write receiver on; killed with the test.
struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Prometheus {
    /// `None` (the test skips) when the binary is missing, unless the run requires it.
    fn start(dir: &std::path::Path, port: u16) -> Option<Prometheus> {
        let present = std::process::Command::new("prometheus")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            assert!(
                std::env::var("ZY_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
                "prometheus is missing but its test is required (apt-get install prometheus)"
            );
            eprintln!("SKIPPED: prometheus is not installed (apt-get install prometheus)");
            return None;
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("config");
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Some(Prometheus { child, port })
    }

    async fn ready(&self) {
        let url = format!("http://127.0.0.1:{}/-/ready", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(Instant::now() < deadline, "prometheus never became ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Raw samples of the selector over the last `secs`: (labels, [(time s, value)]).
    async fn samples(&self, selector: &str, secs: u32) -> Vec<(Value, Vec<(f64, String)>)> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let Ok(r) = reqwest::Client::new()
            .get(&url)
            .query(&[("query", format!("{selector}[{secs}s]"))])
            .send()
            .await
        else {
            return Vec::new();
        };
        let v: Value = r.json().await.unwrap_or_default();
        v["data"]["result"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        let points = r["values"]
                            .as_array()
                            .map(|ps| {
                                ps.iter()
                                    .filter_map(|p| {
                                        Some((p[0].as_f64()?, p[1].as_str()?.to_string()))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        (r["metric"].clone(), points)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same figures reach a real Prometheus through remote write, labelled with the
/// instance's department and project; readings taken while Prometheus is away are sent
/// once it is back, in time order, so its series has no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_write_reaches_a_real_prometheus_and_fills_an_outage_once_it_is_back() {
    let dir = temp_dir();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let Some(prom) = Prometheus::start(&dir, port) else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let c = cloud(&ts, 1).await;
    let (st, b) = create(&c, "prom", 1, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let items = settle(&c).await;
    let vm = items[0]["id"].as_str().expect("id").to_string();
    let dept = items[0]["department_id"]
        .as_str()
        .expect("dept")
        .to_string();
    prom.ready().await;
    let (st, v) = c
        .admin
        .put(
            "/v1/metrics/remote-write",
            json!({ "enabled": true, "url": format!("http://127.0.0.1:{port}/api/v1/write") }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let selector = format!("zhengyun_instance_up{{instance_id=\"{vm}\"}}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let series = loop {
        let s = prom.samples(&selector, 120).await;
        if s.first().is_some_and(|(_, p)| !p.is_empty()) {
            break s;
        }
        assert!(Instant::now() < deadline, "nothing reached prometheus");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (labels, points) = &series[0];
    assert_eq!(labels["department_id"], dept.as_str(), "{labels}");
    assert_eq!(labels["project_id"], c.project.as_str(), "{labels}");
    assert_eq!(points.last().map(|p| p.1.as_str()), Some("1"), "{points:?}");

    // Prometheus goes away for a while; the readings meanwhile wait and follow it back.
    prom.stop();
    let away = chrono::Utc::now().timestamp() as f64;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let back = chrono::Utc::now().timestamp() as f64;
    let prom = Prometheus::start(&dir, port).expect("prometheus again");
    prom.ready().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s = prom.samples(&selector, 300).await;
        let during = s
            .first()
            .map(|(_, p)| p.iter().filter(|(t, _)| *t > away && *t < back).count())
            .unwrap_or(0);
        // The collector reads every 2 s in tests: about three readings fell in the gap.
        if during >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the readings taken while prometheus was away never arrived: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
}
