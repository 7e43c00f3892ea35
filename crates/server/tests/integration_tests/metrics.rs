//! Metrics history: the collector reads the simulated provider, the figures come back
//! through the query API per instance, host, project, department, zone and provider, each
//! scope only for those who may see it, and every malformed query gets a clear 4xx (400
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
