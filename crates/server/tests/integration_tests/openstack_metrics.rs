//! Metrics of instances on an OpenStack provider (issue 17): the `openstack_metrics` task
//! reads Nova's server diagnostics and the figures come out of the same pipeline as a KVM
//! guest's — the metrics query, the charts' series and the alert rules. Against the real
//! bed (Nova's fake virt driver answers fixed figures, which the test reads from Nova itself)
//! and against a loopback stub for what the bed cannot do: counters that move, a policy
//! that refuses diagnostics, and an outage.

use crate::common::*;
use crate::openstack::{bed, cloud, Nova};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zy_model::role::Role;

fn state(ts: &TestServer) -> zy_server::state::AppState {
    ts.server.as_ref().expect("running").state.clone()
}

/// The last raw point of each asked series of an instance (`None` for a gap).
async fn latest(s: &Session, id: &str, series: &str) -> Vec<Option<f64>> {
    let from = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .to_rfc3339()
        .replace('+', "%2B");
    let (st, v) = s
        .get(&format!(
            "/v1/metrics/query?scope=instance&id={id}&series={series}&from={from}&step=10"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| {
            s["values"]
                .as_array()
                .and_then(|a| a.iter().rev().find(|x| !x.is_null()))
                .and_then(Value::as_f64)
        })
        .collect()
}

/// Polls `latest` until `ok` holds.
async fn until_series(
    s: &Session,
    id: &str,
    series: &str,
    limit: Duration,
    ok: impl Fn(&[Option<f64>]) -> bool,
) -> Vec<Option<f64>> {
    let deadline = Instant::now() + limit;
    loop {
        let v = latest(s, id, series).await;
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{series} of {id}: {v:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn sum(d: &Value, list: &str, field: &str) -> u64 {
    d[list]
        .as_array()
        .expect(list)
        .iter()
        .filter_map(|x| x[field].as_u64())
        .sum()
}

/// An instance made through zhengyun on the bed: two passes of the task read Nova's
/// diagnostics (the first gives memory and up, the second CPU and traffic from the change),
/// and the query API, the stored reading and an alert rule all agree with what Nova says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openstack_instances_report_nova_diagnostics_through_the_metrics_pipeline() {
    let Some(b) = bed() else {
        return;
    };
    // The runner's own pass is far away: the test drives the task by hand.
    let ts = TestServer::start_custom(Db::Sqlite, false, |c| c.openstack_metrics_secs = 900).await;
    let c = cloud(&ts, &b).await;
    let nova = Nova::login(&b).await;
    let id = c.create("metrics-01", 1).await.remove(0);
    // The bed may be busy with a benchmark's servers: generous limits.
    c.wait_for(&id, &["running"], Duration::from_secs(600))
        .await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let server = loop {
        let s = nova.servers_of(&id).await;
        if s.len() == 1 && s[0]["status"] == "ACTIVE" && s[0]["OS-EXT-STS:task_state"].is_null() {
            break s[0]["id"].as_str().expect("server id").to_string();
        }
        assert!(Instant::now() < deadline, "never ACTIVE: {s:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let diagnostics = format!("/servers/{server}/diagnostics");

    let task = zy_server::monitoring::openstack::OpenStackMetrics::new(state(&ts));
    let first = task.pass().await.expect("first pass");
    let d1 = nova.get(&diagnostics).await;
    assert_eq!(first[&c.provider]["read"], 1, "{first}");
    assert!(first[&c.provider].get("diagnostics").is_none(), "{first}");
    // Two readings some seconds apart, as a period would be.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = task.pass().await.expect("second pass");
    let d2 = nova.get(&diagnostics).await;
    assert_eq!(second[&c.provider]["read"], 1, "{second}");
    eprintln!("Nova's diagnostics: {d2}");

    // The stored reading holds Nova's own counters.
    let reading = zy_store::metrics::provider_readings(ts.store(), Some(&c.provider), 0)
        .await
        .expect("readings")
        .into_iter()
        .find(|r| r.instance_id == id)
        .expect("a reading of the instance");
    assert!(reading.running);
    let counters: Value =
        serde_json::from_str(reading.counters.as_deref().expect("counters")).expect("json");
    assert_eq!(
        counters["cpu_time_ns"].as_u64(),
        Some(sum(&d2, "cpu_details", "time"))
    );
    assert_eq!(
        counters["net_rx_bytes"].as_u64(),
        Some(sum(&d2, "nic_details", "rx_octets"))
    );
    assert_eq!(
        counters["net_tx_bytes"].as_u64(),
        Some(sum(&d2, "nic_details", "tx_octets"))
    );
    assert_eq!(
        counters["memory_used_mib"].as_u64(),
        d2["memory_details"]["used"].as_u64()
    );

    // The series through the query API: what the instance page charts and alerts read.
    let used = d2["memory_details"]["used"].as_f64().expect("memory used");
    let moved = |list: &str, field: &str| sum(&d2, list, field) != sum(&d1, list, field);
    let v = until_series(
        &c.member,
        &id,
        "up,mem_used,cpu,net_rx,net_tx",
        Duration::from_secs(60),
        |v| v[0] == Some(1.0) && v[2].is_some(),
    )
    .await;
    assert_eq!(v[1], Some(used), "memory in use as Nova says: {v:?}");
    for (k, (list, field)) in [
        (2, ("cpu_details", "time")),
        (3, ("nic_details", "rx_octets")),
        (4, ("nic_details", "tx_octets")),
    ] {
        let x = v[k].unwrap_or_else(|| panic!("series {k} missing: {v:?}"));
        if moved(list, field) {
            assert!(x > 0.0, "{list}.{field} moved: {v:?}");
        } else {
            assert_eq!(x, 0.0, "{list}.{field} stood still in Nova: {v:?}");
        }
    }

    // An alert rule on the instance reads the same series: memory in use below Nova's
    // figure plus one fires.
    let da = ts
        .new_user(&c.admin, "dsj.admin", Some(&c.department))
        .await;
    ts.grant(&c.admin, &da, Role::DeptAdmin, Some(&c.department), None)
        .await;
    let (st, rule) = da
        .post(
            "/v1/alert-rules",
            json!({ "name": "内存读数", "kind": "threshold", "scope": "instance", "id": id,
                    "series": "mem_used", "op": "lt", "threshold": used + 1.0 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rule}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, active) = c.member.get("/v1/alerts").await;
        if active["items"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["rule_id"] == rule["id"]
                    && x["state"] == "firing"
                    && x["target_id"] == id.as_str()
            })
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "the rule never fired: {active}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Leave the bed as found.
    let (st, v) = c.member.delete(&format!("/v1/instances/{id}")).await;
    assert!(st.is_success(), "{st} {v}");
    c.wait_for(&id, &["deleted", "recycled"], Duration::from_secs(300))
        .await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !nova.servers_of(&id).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the server outlived its instance"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the stub's Nova does with requests.
const ANSWERS: u8 = 0;
const POLICY: u8 = 1;
const DOWN: u8 = 2;

const SERVERS: [&str; 2] = [
    "6a2f3c1e-0000-4000-8000-00000000000a",
    "6a2f3c1e-0000-4000-8000-00000000000b",
];

/// A loopback Keystone and Nova with two servers of its project. Diagnostics follow the
/// clock — half a vCPU busy and 1,000 B/s received since `t0`, 256 MiB in use — or are
/// refused by policy (403), or the whole provider answers 503. Returns Keystone's URL.
async fn stub(mode: Arc<AtomicU8>, calls: Arc<AtomicUsize>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let t0 = Instant::now();
    let b = base.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (base, mode, calls) = (b.clone(), mode.clone(), calls.clone());
            tokio::spawn(async move {
                let Some(text) = crate::world::read_request(&mut s).await else {
                    return;
                };
                let line = text.lines().next().unwrap_or_default().to_string();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let server = |id: &str| {
                    json!({"id": id, "name": format!("outside-{}", &id[34..]), "status": "ACTIVE",
                           "tenant_id": "stub-project", "metadata": {},
                           "flavor": {"vcpus": 1, "ram": 512, "disk": 1, "original_name": "m1.tiny"},
                           "OS-EXT-SRV-ATTR:hypervisor_hostname": "stub-hv"})
                };
                let mode = mode.load(Ordering::SeqCst);
                let (status, extra, body) = if path.starts_with("/v3/auth/tokens") {
                    let body = json!({"token": {"expires_at": "2099-01-01T00:00:00Z",
                        "project": {"id": "stub-project"},
                        "catalog": [{"type": "compute", "endpoints": [
                            {"interface": "public", "region_id": "RegionOne", "url": format!("{base}/compute")}]}]}});
                    (201, "X-Subject-Token: stub-token\r\n", body)
                } else if mode == DOWN {
                    (
                        503,
                        "",
                        json!({"error": {"code": 503, "message": "nova-api is down"}}),
                    )
                } else if path == "/compute" || path == "/compute/" {
                    (
                        200,
                        "",
                        json!({"version": {"version": "2.79", "min_version": "2.1"}}),
                    )
                } else if path.starts_with("/compute/os-hypervisors") {
                    (
                        200,
                        "",
                        json!({"hypervisors": [{"id": "1", "hypervisor_hostname": "stub-hv", "state": "up",
                            "vcpus": 64, "memory_mb": 262144, "local_gb": 4000, "service": {"host": "stub-hv"}}]}),
                    )
                } else if path.starts_with("/compute/os-availability-zone") {
                    (200, "", json!({"availabilityZoneInfo": []}))
                } else if path.starts_with("/compute/servers/detail") {
                    (
                        200,
                        "",
                        json!({"servers": SERVERS.iter().map(|s| server(s)).collect::<Vec<_>>()}),
                    )
                } else if path.ends_with("/diagnostics") {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if mode == POLICY {
                        (
                            403,
                            "",
                            json!({"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed."}}),
                        )
                    } else {
                        let ms = t0.elapsed().as_millis() as u64;
                        (
                            200,
                            "",
                            json!({"state": "running", "uptime": 1000 + ms / 1000, "num_cpus": 1,
                                "cpu_details": [{"id": 0, "time": ms * 500_000, "utilisation": null}],
                                "memory_details": {"maximum": 512, "used": 256},
                                "nic_details": [{"mac_address": "fa:16:3e:00:00:01",
                                    "rx_octets": ms, "tx_octets": 0}],
                                "disk_details": [{"read_bytes": 0, "write_bytes": 0}]}),
                        )
                    }
                } else if let Some(id) = path.strip_prefix("/compute/servers/") {
                    match SERVERS.iter().find(|s| id.starts_with(*s)) {
                        Some(s) => (200, "", json!({"server": server(s)})),
                        None => (
                            404,
                            "",
                            json!({"itemNotFound": {"code": 404, "message": "no such server"}}),
                        ),
                    }
                } else {
                    (
                        404,
                        "",
                        json!({"itemNotFound": {"code": 404, "message": "not in the stub"}}),
                    )
                };
                crate::world::answer(&mut s, status, extra, &body).await;
            });
        }
    });
    format!("{base}/v3")
}

/// The task's row as `GET /v1/system/tasks` shows it, once `ok` holds for it.
async fn task_row(admin: &Session, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (st, v) = admin.get("/v1/system/tasks").await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if let Some(t) = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == "openstack_metrics" && t["active"] == true)
        {
            if ok(t) {
                return t.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "openstack_metrics never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Without the bed: figures from moving counters (CPU from the change of CPU time, bytes
/// per second), then an outage — the run's error recorded, the last readings kept, and the
/// first reading after it continues from them — then a policy that refuses diagnostics:
/// reported once in the status (not an error), instances still shown up, and only one
/// server asked per pass afterwards.
async fn diagnostics_refused_or_a_provider_down_is_reported_and_loses_nothing(db: Db) {
    let ts = TestServer::start_custom(db, false, |c| c.openstack_metrics_secs = 2).await;
    let admin = ts.platform_admin().await;
    let mode = Arc::new(AtomicU8::new(ANSWERS));
    let calls = Arc::new(AtomicUsize::new(0));
    let keystone = stub(mode.clone(), calls.clone()).await;
    let d = department(&admin, "宜宾市数据局", "SJJ").await;
    let p = project(&admin, &d, "纳管项目").await;
    let mut settings = crate::world::openstack_settings_mapped(&keystone, &d, &p);
    settings["adoption"] = json!("auto");
    let (st, prov) = admin
        .post(
            "/v1/providers",
            json!({ "name": "监控测试云", "kind": "openstack", "openstack": settings }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{prov}");
    let provider = prov["id"].as_str().expect("id").to_string();
    // The stub's two servers are adopted: their instance ids are the Nova ids.
    let sync = crate::openstack::zone_and_sync(&admin, &provider, "OpenStack 区").await;
    for id in SERVERS {
        let (st, i) = admin.get(&format!("/v1/instances/{id}")).await;
        assert_eq!(st, StatusCode::OK, "{sync} {i}");
        assert_eq!(i["state"], "running", "{i}");
    }
    let vm = SERVERS[0];

    // Half a vCPU busy, 1,000 B/s in, nothing out, 256 MiB of 512 in use.
    let v = until_series(
        &admin,
        vm,
        "cpu,net_rx,net_tx,mem_used,mem,up",
        Duration::from_secs(60),
        // Up from the first reading on (the points before it, adoption's, were down).
        |v| v[0].is_some() && v[1].is_some() && v[5] == Some(1.0),
    )
    .await;
    let near = |x: Option<f64>, want: f64| x.is_some_and(|x| (x - want).abs() <= want * 0.1);
    assert!(near(v[0], 50.0), "cpu: {v:?}");
    assert!(near(v[1], 1000.0), "net_rx: {v:?}");
    assert_eq!(v[2], Some(0.0), "net_tx: {v:?}");
    assert_eq!(v[3], Some(256.0), "mem_used: {v:?}");
    assert_eq!(v[4], Some(50.0), "mem: {v:?}");
    assert_eq!(v[5], Some(1.0), "up: {v:?}");
    let t = task_row(&admin, Duration::from_secs(30), |t| {
        t["last_status"][&provider]["read"] == 2
    })
    .await;
    assert!(t["last_error"].is_null(), "{t}");

    // The provider goes down: the run fails with the provider's reason, nothing stored is
    // thrown away.
    let before = zy_store::metrics::provider_readings(ts.store(), Some(&provider), 0)
        .await
        .expect("readings");
    assert_eq!(before.len(), 2, "{before:?}");
    mode.store(DOWN, Ordering::SeqCst);
    let t = task_row(&admin, Duration::from_secs(60), |t| {
        t["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&provider) && e.contains("unavailable"))
    })
    .await;
    assert_eq!(t["last_outcome"], "error", "{t}");
    let during = zy_store::metrics::provider_readings(ts.store(), Some(&provider), 0)
        .await
        .expect("readings");
    for r in &before {
        let kept = during
            .iter()
            .find(|x| x.instance_id == r.instance_id)
            .expect("kept");
        assert_eq!(kept.counters, r.counters, "the counters are kept");
    }
    // Back (after the circuit breaker's pause): the first reading continues from the
    // counters of before the outage, so the CPU share comes at once.
    let stamp = before.iter().map(|r| r.read_at).max().unwrap_or(0);
    mode.store(ANSWERS, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(90);
    let after = loop {
        let rows = zy_store::metrics::provider_readings(ts.store(), Some(&provider), stamp + 1)
            .await
            .expect("readings");
        if let Some(r) = rows.iter().find(|r| r.instance_id == vm) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "never read again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let figures: Vec<Option<f64>> =
        serde_json::from_str(after.figures.as_deref().expect("figures")).expect("json");
    assert!(near(figures[0], 50.0), "cpu over the outage: {figures:?}");
    task_row(&admin, Duration::from_secs(30), |t| {
        t["last_outcome"] == "ok"
    })
    .await;

    // The policy refuses diagnostics: reported in the status, the run is no failure, the
    // instances stay up, and later passes ask one server only.
    mode.store(POLICY, Ordering::SeqCst);
    let t = task_row(&admin, Duration::from_secs(60), |t| {
        t["last_status"][&provider]["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("policy") && d.contains("403"))
    })
    .await;
    assert_eq!(t["last_outcome"], "ok", "{t}");
    assert!(t["last_error"].is_null(), "{t}");
    // The first refused pass may have asked both servers at once; later ones ask one.
    task_row(&admin, Duration::from_secs(60), |t| {
        t["last_status"][&provider]["asked"] == 1
            && t["last_status"][&provider]["diagnostics"].is_string()
    })
    .await;
    assert!(calls.load(Ordering::SeqCst) > 0);
    let v = until_series(&admin, vm, "up,cpu", Duration::from_secs(30), |v| {
        v[0] == Some(1.0)
    })
    .await;
    assert_eq!(v[0], Some(1.0), "{v:?}");
}
crate::both_databases!(diagnostics_refused_or_a_provider_down_is_reported_and_loses_nothing);
