//! Supervision: every indicator recomputed here from the API's raw data (hosts, instances,
//! the metrics query) and compared with the engine's; a department admin sees only their
//! own department; an instance idle for 14 days (back-dated hourly metrics, written
//! through the store as labelled test data) is flagged and released in one step, a
//! zombie instance and a detached volume are found, and the reclaimed capacity counted;
//! the monthly report is read back with pdftotext and Python's zipfile; every malformed
//! query or body gets a clear 4xx.

use crate::billing::pdf_says;
use crate::both_databases;
use crate::common::*;
use crate::compute::{cloud, create, settle};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zy_model::metrics::{Block, Resolution, RollupAcc, Series};
use zy_model::role::Role;
use zy_model::time::Timestamp;
use zy_server::app::billing::{month_bounds, month_of};
use zy_server::app::supervision::month_back;
use zy_store::metrics::BlockRow;

/// Test data: `hours` hourly rollups from `start` (epoch seconds, on an hour) for one
/// entity, CPU from `cpu(hour index)` and memory 10 points above, grouped in day blocks.
fn hour_rows(
    scope: &'static str,
    entity: &str,
    start: i64,
    hours: i64,
    cpu: impl Fn(i64) -> f64,
) -> Vec<BlockRow> {
    let mut rows: Vec<BlockRow> = Vec::new();
    let mut block = Block::new(Resolution::Hour.columns());
    let mut day = Resolution::Hour.block_start(start);
    for k in 0..hours {
        let h = start + k * 3600;
        if Resolution::Hour.block_start(h) != day {
            rows.push(BlockRow {
                scope,
                entity: entity.to_string(),
                res: Resolution::Hour,
                block_start: day,
                data: block.encode(),
            });
            block = Block::new(Resolution::Hour.columns());
            day = Resolution::Hour.block_start(h);
        }
        let mut acc = RollupAcc::new(h);
        let v: Vec<Option<i64>> = Series::ALL
            .iter()
            .map(|s| match s {
                Series::Cpu => zy_model::metrics::fixed(cpu(k)),
                Series::Mem => zy_model::metrics::fixed(cpu(k) + 10.0),
                Series::Up => Some(100),
                _ => None,
            })
            .collect();
        acc.add_raw(&v);
        block.push(h, &acc.columns());
    }
    rows.push(BlockRow {
        scope,
        entity: entity.to_string(),
        res: Resolution::Hour,
        block_start: day,
        data: block.encode(),
    });
    rows
}

fn indicator<'a>(set: &'a Value, name: &str) -> &'a Value {
    set["indicators"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("{name} missing in {set}"))
}

fn value(set: &Value, name: &str) -> Option<f64> {
    indicator(set, name)["value"].as_f64()
}

fn input(set: &Value, name: &str, input: &str) -> f64 {
    indicator(set, name)["inputs"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == input))
        .and_then(|i| i["value"].as_f64())
        .unwrap_or_else(|| panic!("{name}.{input} missing in {set}"))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// The mean of the hourly CPU of `scope`/`id` over `month`, read back through the
/// metrics query (independently of the engine): (hours, mean).
async fn hourly_mean(s: &Session, scope: &str, id: &str, month: &str) -> (usize, f64) {
    let (from, to) = month_bounds(month).expect("month");
    let (st, v) = s
        .get(&format!(
            "/v1/metrics/query?scope={scope}&id={id}&series=cpu&step=3600&from={}&to={}",
            urlencode(&from.to_rfc3339()),
            urlencode(&to.to_rfc3339())
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let vals: Vec<f64> = v["series"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(!vals.is_empty(), "{v}");
    (vals.len(), vals.iter().sum::<f64>() / vals.len() as f64)
}

async fn indicators_are_traceable_to_the_raw_data_and_scoped(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let (st, b) = create(&c, "web", 3, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let items = settle(&c).await;
    let dept = items[0]["department_id"]
        .as_str()
        .expect("department")
        .to_string();
    let sup = ts.new_user(&c.admin, "jianguan", None).await;
    ts.grant(&c.admin, &sup, Role::Supervisor, None, None).await;
    let da = ts.new_user(&c.admin, "wjw.admin", Some(&dept)).await;
    ts.grant(&c.admin, &da, Role::DeptAdmin, Some(&dept), None)
        .await;
    let other = department(&c.admin, "宜宾市公安局", "GAJ").await;
    let da2 = ts.new_user(&c.admin, "gaj.admin", Some(&other)).await;
    ts.grant(&c.admin, &da2, Role::DeptAdmin, Some(&other), None)
        .await;

    // Labelled test data: ten days of last month's hourly CPU for the department and the
    // provider, written through the metrics store.
    let last = month_back(&month_of(Timestamp::now()), 1);
    let (from, _) = month_bounds(&last).expect("month");
    let start = from.0 / 1_000_000 + 86_400;
    let mut rows = hour_rows("department", &dept, start, 240, |h| {
        10.0 + (h % 7) as f64 * 3.0
    });
    rows.extend(hour_rows("provider", &c.provider, start, 240, |h| {
        30.0 + (h % 5) as f64 * 4.5
    }));
    zy_store::metrics::write_blocks(ts.store(), &rows)
        .await
        .expect("write test metrics");

    // D5 and P6: the mean of the hourly means, as the metrics query shows them.
    let (st, dset) = sup
        .get(&format!(
            "/v1/supervision/indicators?scope=department&id={dept}&period={last}"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{dset}");
    let (hours, mean) = hourly_mean(&sup, "department", &dept, &last).await;
    assert_eq!(hours, 240);
    assert_eq!(input(&dset, "cpu_utilisation", "hours"), hours as f64);
    assert_eq!(
        value(&dset, "cpu_utilisation"),
        Some(round2(mean)),
        "{dset}"
    );
    assert_eq!(
        value(&dset, "memory_utilisation"),
        Some(round2(mean + 10.0))
    );
    let (st, pset) = sup
        .get(&format!(
            "/v1/supervision/indicators?scope=provider&id={}&period={last}",
            c.provider
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{pset}");
    let (_, pmean) = hourly_mean(&sup, "provider", &c.provider, &last).await;
    assert_eq!(value(&pset, "cpu_utilisation"), Some(round2(pmean)));

    // Capacity, allocation and running instances against the hosts and instances lists.
    let (st, pnow) = sup
        .get(&format!(
            "/v1/supervision/indicators?scope=provider&id={}",
            c.provider
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{pnow}");
    let (_, hosts) = sup
        .get(&format!("/v1/hosts?provider_id={}", c.provider))
        .await;
    let hosts = hosts["items"].as_array().expect("hosts").clone();
    let n = |f: &dyn Fn(&Value) -> f64| hosts.iter().map(f).sum::<f64>();
    let allocatable = n(&|h| {
        (h["vcpus"].as_f64().unwrap_or(0.0) * h["cpu_ratio_permille"].as_f64().unwrap_or(0.0)
            / 1000.0)
            .floor()
    });
    let used = n(&|h| h["used_vcpus"].as_f64().unwrap_or(0.0));
    let up = hosts
        .iter()
        .filter(|h| h["state"] == "enabled" && h["ha_state"] == "ok")
        .count() as f64;
    assert_eq!(value(&pnow, "vcpu_capacity"), Some(allocatable));
    assert_eq!(value(&pnow, "vcpu_headroom"), Some(allocatable - used));
    assert_eq!(
        value(&pnow, "vcpu_allocation"),
        Some(round2(used / allocatable * 100.0))
    );
    assert_eq!(
        value(&pnow, "host_availability"),
        Some(round2(up / hosts.len() as f64 * 100.0))
    );
    let running = items.iter().filter(|i| i["state"] == "running").count() as f64;
    assert_eq!(running, 3.0);
    assert_eq!(value(&pnow, "instances_running"), Some(running));

    // The department's holdings against its instance list; no budget: no budget use.
    let (st, dnow) = da
        .get(&format!(
            "/v1/supervision/indicators?scope=department&id={dept}"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{dnow}");
    assert_eq!(value(&dnow, "instances_held"), Some(3.0));
    let vcpus: f64 = items.iter().filter_map(|i| i["vcpus"].as_f64()).sum();
    assert_eq!(value(&dnow, "vcpus_held"), Some(vcpus));
    assert_eq!(value(&dnow, "budget_use"), None);
    assert!(indicator(&dnow, "spend")["formula"].is_string());

    // Scoping: a department admin reads their own department only.
    for (s, path) in [
        (
            &da,
            format!(
                "/v1/supervision/indicators?scope=provider&id={}",
                c.provider
            ),
        ),
        (
            &da,
            format!("/v1/supervision/indicators?scope=department&id={other}"),
        ),
        (
            &da2,
            format!("/v1/supervision/indicators?scope=department&id={dept}"),
        ),
        (
            &c.member,
            format!("/v1/supervision/indicators?scope=department&id={dept}"),
        ),
        (&da, "/v1/supervision/providers".to_string()),
        (&c.member, "/v1/supervision/dashboard".to_string()),
    ] {
        let (st, v) = s.get(&path).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
        assert_error_body(st, &v);
    }
    let (_, mine) = da.get("/v1/supervision/departments?sort=spend").await;
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, [dept.as_str()]);
    let (_, board) = da.get("/v1/supervision/dashboard").await;
    assert_eq!(board["view"], "department", "{board}");
    assert_eq!(board["providers"].as_array().map(Vec::len), Some(0));
    assert_eq!(board["totals"]["instances"], 3);

    // The supervisor's comparisons after a refresh, and the dashboard summing them.
    let (st, r) = sup.post("/v1/supervision/refresh", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["sets"], 3, "one provider and two departments: {r}");
    let (_, provs) = sup.get("/v1/supervision/providers").await;
    assert_eq!(provs["items"][0]["id"], c.provider.as_str());
    assert_eq!(value(&provs["items"][0], "instances_running"), Some(3.0));
    let (_, ranked) = sup
        .get("/v1/supervision/departments?sort=instances_held")
        .await;
    assert_eq!(ranked["items"][0]["id"], dept.as_str(), "{ranked}");
    assert_eq!(ranked["items"].as_array().map(Vec::len), Some(2));
    let (st, board) = sup.get("/v1/supervision/dashboard").await;
    assert_eq!(st, StatusCode::OK, "{board}");
    assert_eq!(board["view"], "platform");
    assert_eq!(board["totals"]["instances_running"], 3);
    assert_eq!(board["totals"]["hosts"], hosts.len());
    assert_eq!(board["totals"]["vcpus_allocatable"], allocatable as i64);
    // Last month's dashboard: its CPU is the mean of the providers' P6 (one here).
    let (st, past) = sup
        .get(&format!("/v1/supervision/dashboard?period={last}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{past}");
    assert_eq!(
        past["totals"]["cpu_utilisation"].as_f64(),
        Some(round2(pmean)),
        "{}",
        past["totals"]
    );
    let (st, trend) = sup
        .get(&format!(
            "/v1/supervision/trends?scope=department&id={dept}&months=2"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{trend}");
    let last_point = trend["items"].as_array().and_then(|a| a.last()).cloned();
    assert_eq!(
        last_point.map(|p| p["month"].clone()),
        Some(json!(month_of(Timestamp::now())))
    );

    // Hostile inputs: a clear 4xx naming what is wrong.
    for (path, want) in [
        ("/v1/supervision/indicators?scope=zone&id=x", 422),
        (
            &format!("/v1/supervision/indicators?scope=department&id={dept}&period=2026-13")
                as &str,
            422,
        ),
        (
            &format!("/v1/supervision/indicators?scope=department&id={dept}&period=2098-01"),
            422,
        ),
        (
            "/v1/supervision/indicators?scope=department&id=not-a-uuid",
            422,
        ),
        (
            "/v1/supervision/indicators?scope=department&id=00000000-0000-0000-0000-000000000000",
            404,
        ),
        ("/v1/supervision/indicators?scope=department", 400),
        (
            &format!("/v1/supervision/indicators?scope=department&id={dept}&x=1"),
            400,
        ),
        (
            "/v1/supervision/departments?sort=%27%3B%20DROP%20TABLE",
            422,
        ),
        (
            &format!("/v1/supervision/trends?scope=department&id={dept}&months=0"),
            422,
        ),
        (
            &format!("/v1/supervision/trends?scope=department&id={dept}&months=abc"),
            400,
        ),
        ("/v1/supervision/providers?period=11-2026", 422),
        ("/v1/idle-resources?state=gone", 422),
        ("/v1/supervision/reports/not-an-id/pdf", 404),
        (
            "/v1/supervision/reports/00000000-0000-0000-0000-000000000000/docx",
            422,
        ),
    ] {
        let (st, v) = sup.get(path).await;
        assert_eq!(st.as_u16(), want, "{path}: {v}");
        assert_error_body(st, &v);
    }
    for (path, body, want) in [
        ("/v1/supervision/reports", json!({ "month": "2026-1" }), 422),
        (
            "/v1/supervision/reports",
            json!({ "month": "2026-11", "extra": 1 }),
            400,
        ),
        ("/v1/supervision/reports", json!({ "month": 202611 }), 400),
        (
            "/v1/supervision/reports",
            json!({ "month": month_of(Timestamp::now()), "provider_id": "x" }),
            422,
        ),
    ] {
        let (st, v) = sup.post(path, body.clone()).await;
        assert_eq!(st.as_u16(), want, "{path} {body}: {v}");
        assert_error_body(st, &v);
    }
    for body in [
        json!({ "cpu_p95_percent": 0, "cpu_window_days": 14, "stopped_days": 30, "unattached_days": 30 }),
        json!({ "cpu_p95_percent": 5, "cpu_window_days": 31, "stopped_days": 30, "unattached_days": 30 }),
        json!({ "cpu_p95_percent": 5, "cpu_window_days": 14, "stopped_days": -1, "unattached_days": 30 }),
        json!({ "cpu_p95_percent": 5, "cpu_window_days": 14 }),
    ] {
        let (st, v) = c.admin.put("/v1/idle-settings", body.clone()).await;
        assert!(st.is_client_error(), "{body}: {st} {v}");
        assert_error_body(st, &v);
    }
}
both_databases!(indicators_are_traceable_to_the_raw_data_and_scoped);

async fn idle_resources_are_found_and_reclaimed_in_one_step(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let (st, b) = create(&c, "idle", 1, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let (st, b2) = create(&c, "busy", 1, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b2}");
    let items = settle(&c).await;
    let id_of = |name: &str| {
        items
            .iter()
            .find(|i| i["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .and_then(|i| i["id"].as_str())
            .expect("instance")
            .to_string()
    };
    let (idle, busy) = (id_of("idle"), id_of("busy"));
    let dept = items[0]["department_id"]
        .as_str()
        .expect("department")
        .to_string();
    let da = ts.new_user(&c.admin, "wjw.admin", Some(&dept)).await;
    ts.grant(&c.admin, &da, Role::DeptAdmin, Some(&dept), None)
        .await;

    // Labelled test data: the 15 days before today, one guest at 1–3 % CPU with a busy
    // hour now and then (under 5 % of the hours), the other at 40 %.
    let today = Resolution::Hour.block_start(Timestamp::now().0 / 1_000_000);
    let start = today - 15 * 86_400;
    let mut rows = hour_rows("instance", &idle, start, 15 * 24, |h| {
        if h % 50 == 0 {
            70.0
        } else {
            1.0 + (h % 3) as f64
        }
    });
    rows.extend(hour_rows("instance", &busy, start, 15 * 24, |_| 40.0));
    zy_store::metrics::write_blocks(ts.store(), &rows)
        .await
        .expect("write test metrics");

    // A zombie: the busy guest stopped 40 days ago; a volume detached 40 days ago.
    let (st, v) = c
        .member
        .post(&format!("/v1/instances/{busy}/stop"), json!({}))
        .await;
    assert!(st.is_success(), "{v}");
    settle(&c).await;
    let (st, vol) = c
        .admin
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": "old-data", "size_gib": 50 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{vol}");
    let vol = vol["id"].as_str().expect("volume").to_string();
    let forty_days = 40 * 86_400 * 1_000_000i64;
    sql(
        &ts,
        &format!("UPDATE instance_events SET at = at - {forty_days} WHERE instance_id = '{busy}'"),
    )
    .await;
    sql(
        &ts,
        &format!("UPDATE volumes SET updated_at = updated_at - {forty_days} WHERE id = '{vol}'"),
    )
    .await;

    let state = &ts.server.as_ref().expect("server").state;
    let pass = zy_server::app::supervision::idle::detect(&state.store, Timestamp::now())
        .await
        .expect("detect");
    assert_eq!(pass["idle"], 3, "{pass}");
    let (st, list) = da.get("/v1/idle-resources").await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let list = list["items"].as_array().expect("items").clone();
    let find = |kind: &str| {
        list.iter()
            .find(|f| f["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} not found in {list:?}"))
            .clone()
    };
    let low = find("low_cpu");
    assert_eq!(low["resource_id"], idle.as_str());
    assert_eq!(
        low["recommendation"], "release",
        "nothing smaller than 2C4G"
    );
    assert!(low["evidence"]["cpu_p95_percent"].as_f64().expect("p95") < 5.0);
    assert_eq!(low["vcpus"], 2);
    let zombie = find("stopped");
    assert_eq!(zombie["resource_id"], busy.as_str());
    let detached = find("unattached");
    assert_eq!(detached["resource_id"], vol.as_str());
    assert_eq!(detached["disk_gib"], 50);
    // The department indicator counts them.
    let (_, dset) = da
        .get(&format!(
            "/v1/supervision/indicators?scope=department&id={dept}"
        ))
        .await;
    assert_eq!(value(&dset, "idle_resources"), Some(3.0));

    // Releases of up to 64 vCPUs need no review in this department.
    let chain = json!({ "department_id": dept, "kind": "release", "steps": [{ "name": "部门审核", "role": "dept_admin", "scope": "department", "deadline_hours": 24 }], "auto_max_vcpus": 64 });
    let (st, v) = c.admin.put("/v1/approval-chains", chain).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Only the department admin reclaims; a member is refused.
    let path = format!(
        "/v1/idle-resources/{}/reclaim",
        low["id"].as_str().expect("id")
    );
    let (st, v) = c.member.post(&path, json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = da.post(&path, json!({ "generation": 99 })).await;
    assert_eq!(st, StatusCode::CONFLICT, "a stale generation: {v}");
    let (st, f) = da.post(&path, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{f}");
    assert_eq!(f["state"], "reclaiming");
    let rid = f["request_id"].as_str().expect("request").to_string();
    let (st, r) = da.get(&format!("/v1/requests/{rid}")).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["kind"], "release");
    assert_ne!(r["state"], "draft", "submitted in the same step: {r}");
    let (st, v) = da.post(&path, json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT, "twice: {v}");

    // The zombie is kept with a reason; the volume is deleted in one step.
    let dpath = format!(
        "/v1/idle-resources/{}/dismiss",
        zombie["id"].as_str().expect("id")
    );
    let (st, v) = da.post(&dpath, json!({ "reason": "" })).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, v) = da
        .post(&dpath, json!({ "reason": "灾备演练用，季度启动一次" }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "dismissed");
    let (st, v) = da
        .post(
            &format!(
                "/v1/idle-resources/{}/reclaim",
                detached["id"].as_str().expect("id")
            ),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = da.get(&format!("/v1/volumes/{vol}")).await;
    assert!(
        st == StatusCode::NOT_FOUND || st == StatusCode::OK,
        "the volume went to the recycle bin or away"
    );

    // Once the release is delivered the next pass settles it; the capacity is counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        zy_server::app::supervision::idle::detect(&state.store, Timestamp::now())
            .await
            .expect("detect");
        let (_, rec) = da.get("/v1/idle-resources/reclaimed").await;
        let vcpus: i64 = rec["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["vcpus"].as_i64()).sum())
            .unwrap_or(0);
        let disk: i64 = rec["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["disk_gib"].as_i64()).sum())
            .unwrap_or(0);
        if vcpus == 2 && disk >= 50 {
            assert_eq!(
                rec["items"][0]["month"],
                month_of(Timestamp::now()).as_str()
            );
            break;
        }
        if std::time::Instant::now() > deadline {
            let (_, r) = da.get(&format!("/v1/requests/{rid}")).await;
            panic!("never reclaimed: {rec}; the request: {r}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let (_, all) = da.get("/v1/idle-resources?state=all").await;
    let states: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|x| x["state"].as_str())
        .collect();
    assert!(
        states.contains(&"dismissed") && states.contains(&"reclaimed"),
        "{all}"
    );
}
both_databases!(idle_resources_are_found_and_reclaimed_in_one_step);

async fn the_monthly_report_reads_back_as_pdf_and_xlsx(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 1).await;
    let (st, b) = create(&c, "web", 2, json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    settle(&c).await;
    let sup = ts.new_user(&c.admin, "jianguan", None).await;
    ts.grant(&c.admin, &sup, Role::Supervisor, None, None).await;
    let month = month_of(Timestamp::now());
    let (st, r) = sup
        .post("/v1/supervision/reports", json!({ "month": month }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    assert!(r["pdf_bytes"].as_i64().expect("size") > 500);
    let (st, pr) = sup
        .post(
            "/v1/supervision/reports",
            json!({ "month": month, "provider_id": c.provider }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{pr}");
    let (_, list) = sup.get("/v1/supervision/reports").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");

    pdf_says(
        &sup,
        &format!("/v1/supervision/reports/{id}/pdf"),
        &[
            "全平台运维报告",
            "资源概况",
            "浪潮云（模拟）",
            "运行云主机 2 台",
            "安全",
        ],
    )
    .await;
    pdf_says(
        &sup,
        &format!(
            "/v1/supervision/reports/{}/pdf",
            pr["id"].as_str().expect("id")
        ),
        &["浪潮云（模拟） 运维报告", "分配率与实际利用率"],
    )
    .await;

    let mut rq = sup
        .http
        .get(format!("{}/v1/supervision/reports/{id}/xlsx", sup.url));
    if let Some(b) = &sup.bearer {
        rq = rq.bearer_auth(b);
    }
    let resp = rq.send().await.expect("xlsx");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.expect("bytes");
    let path = temp_dir().join("report.xlsx");
    std::fs::write(&path, &bytes).expect("write");
    let script = r#"
import sys, zipfile, xml.etree.ElementTree as ET
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
ns = {'m': 'http://schemas.openxmlformats.org/spreadsheetml/2006/main'}
wb = ET.fromstring(z.read('xl/workbook.xml'))
print('|'.join(s.get('name') for s in wb.findall('.//m:sheet', ns)))
for r in ET.fromstring(z.read('xl/worksheets/sheet2.xml')).findall('.//m:row', ns):
    cells = []
    for c in r.findall('m:c', ns):
        t = c.find('m:is/m:t', ns)
        v = c.find('m:v', ns)
        cells.append(t.text if t is not None else (v.text if v is not None else ''))
    print('\t'.join(cells))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("运维报告 report|指标 indicators"),
        "{text}"
    );
    // Every indicator row carries its code and inputs; P8 shows the two instances.
    let p8 = text
        .lines()
        .find(|l| l.split('\t').nth(2) == Some("P8"))
        .unwrap_or_else(|| panic!("P8 row missing: {text}"));
    assert_eq!(p8.split('\t').nth(4), Some("2"), "{p8}");
    assert!(p8.contains("running=2"), "{p8}");
    assert!(text.lines().any(|l| l.contains("\tD10\t")), "{text}");
}
both_databases!(the_monthly_report_reads_back_as_pdf_and_xlsx);
