//! Billing end to end on the test clock: a simulated month with an instance created,
//! stopped, resized, started and deleted and a volume created and deleted at known
//! instants, a price change in the middle, the bill compared line by line with a
//! calculation done here by hand; the month closed and then refused any change but an
//! audited adjustment; confirmation and payment; what the provider is owed; a provider CSV
//! with three planted differences reconciled; the CSV export; a budget alert.

use crate::both_databases;
use crate::common::*;
use crate::compute::{cloud, settle};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use zy_model::role::Role;

const T0: &str = "2031-03-01T00:00:00+08:00";
const DAY: i64 = 86_400;

fn at(days: i64) -> String {
    let t0 = chrono::DateTime::parse_from_rfc3339(T0).expect("T0");
    (t0 + chrono::Duration::seconds(days * DAY)).to_rfc3339()
}

async fn clock(fin: &Session, to: &str) {
    let (st, b) = fin.post("/v1/billing/clock", json!({ "to": to })).await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

async fn act(member: &Session, id: &str, what: &str, body: Value) {
    let (st, b) = member
        .post(&format!("/v1/instances/{id}/{what}"), body)
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{what}: {b}");
}

fn rates(vcpu: &str) -> Value {
    json!({ "vcpu_hour": vcpu, "memory_gib_hour": "0.025", "gpu_hour": "0", "disk_gib_month": "0.35", "volume_gib_month": "0.50" })
}

async fn a_simulated_month_bills_to_the_fen_and_closes_for_good(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 2).await;
    let (_, proj) = c.admin.get(&format!("/v1/projects/{}", c.project)).await;
    let d = proj["department_id"]
        .as_str()
        .expect("department")
        .to_string();
    let fin = ts.new_user(&c.admin, "caizheng", None).await;
    ts.grant(&c.admin, &fin, Role::Finance, None, None).await;
    let boss = ts.new_user(&c.admin, "wjw.boss", Some(&d)).await;
    ts.grant(&c.admin, &boss, Role::DeptAdmin, Some(&d), None)
        .await;

    // Prices: v1 from T0, v2 (vCPU twice as dear) from day 15. Both published beforehand.
    clock(&fin, &at(-1)).await;
    for (from, vcpu) in [(at(0), "0.06"), (at(15), "0.12")] {
        let (st, b) = fin
            .post(
                "/v1/price-versions",
                json!({ "provider_id": c.provider, "effective_from": from, "rates": rates(vcpu) }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }
    // A version may not start in the past (history stays true).
    let (st, b) = fin
        .post(
            "/v1/price-versions",
            json!({ "provider_id": c.provider, "effective_from": at(-2), "rates": rates("1") }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    // Day 0: an instance (2C4G, 40 GiB system disk) and a 100 GiB volume.
    clock(&fin, &at(0)).await;
    let (st, created) = c
        .member
        .post("/v1/instances", json!({ "project_id": c.project, "name": "web", "flavor": "2C4G", "image": "CentOS-7.9" }))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{created}");
    let id = created["items"][0]["id"].as_str().expect("id").to_string();
    let (st, vol) = c
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": "data", "size_gib": 100 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{vol}");
    let vol = vol["id"].as_str().expect("volume").to_string();
    settle(&c).await;
    // Day 10 stop; day 12 resize to 4C8G (stopped); day 13 start; day 20 delete both.
    clock(&fin, &at(10)).await;
    act(&c.member, &id, "stop", json!({})).await;
    settle(&c).await;
    clock(&fin, &at(12)).await;
    act(&c.member, &id, "resize", json!({ "flavor": "4C8G" })).await;
    settle(&c).await;
    clock(&fin, &at(13)).await;
    act(&c.member, &id, "start", json!({})).await;
    settle(&c).await;
    clock(&fin, &at(20)).await;
    let (st, b) = c.member.delete(&format!("/v1/instances/{id}")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let (st, b) = c.member.delete(&format!("/v1/volumes/{vol}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
    settle(&c).await;

    // The draft while the month is open, then close it after it ended.
    let (st, draft) = boss.get(&format!("/v1/bills/2031-03/{d}")).await;
    assert_eq!(st, StatusCode::OK, "{draft}");
    assert_eq!(draft["state"], "draft");
    let (st, b) = fin
        .post("/v1/billing/months/2031-03/close", json!({}))
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a month that has not ended cannot close: {b}"
    );
    clock(&fin, &at(31)).await;
    let (st, b) = fin
        .post("/v1/billing/months/2031-03/close", json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // The calculation by hand, in 0.0001 yuan (prices × hours; GiB-month = 720 h).
    // Instance, running 2C4G days 0–10 (240 h) at v1: 2×600×240 + 4×250×240
    //           running 4C8G days 13–15 (48 h) at v1: 4×600×48 + 8×250×48
    //           running 4C8G days 15–20 (120 h) at v2: 4×1200×120 + 8×250×120
    //           its 40 GiB disk for all 480 h (stopped too): 40×3500×480/720
    let instance = 2 * 600 * 240
        + 4 * 250 * 240
        + 4 * 600 * 48
        + 8 * 250 * 48
        + 4 * 1200 * 120
        + 8 * 250 * 120;
    let instance_exact = instance as f64 + 40.0 * 3500.0 * 480.0 / 720.0;
    // Volume: 100 GiB for 480 h at 0.50 a GiB-month.
    let volume_exact = 100.0 * 5000.0 * 480.0 / 720.0;
    let fen = |x: f64| (x / 100.0).round() as i64; // 0.0001 yuan → fen, rounded once
    let (instance_fen, volume_fen) = (fen(instance_exact), fen(volume_exact));
    assert_eq!((instance_fen, volume_fen), (16485, 3333));

    let (st, bill) = boss.get(&format!("/v1/bills/2031-03/{d}")).await;
    assert_eq!(st, StatusCode::OK, "{bill}");
    assert_eq!(bill["state"], "closed");
    let lines = bill["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2, "{bill}");
    let line = |rid: &str| {
        lines
            .iter()
            .find(|l| l["resource_id"] == rid)
            .unwrap_or_else(|| panic!("no line for {rid}: {bill}"))
    };
    let li = line(&id);
    assert_eq!(li["amount"], instance_fen, "{li}");
    assert_eq!(li["running_secs"], (240 + 48 + 120) * 3600);
    assert_eq!(li["stopped_secs"], 72 * 3600);
    assert_eq!(li["disk_gib_secs"], 40 * 480 * 3600);
    assert_eq!(line(&vol)["amount"], volume_fen);
    assert_eq!(bill["total"], instance_fen + volume_fen);

    // Closed is closed: a second close, and a change behind the API's back, are refused.
    let (st, b) = fin
        .post("/v1/billing/months/2031-03/close", json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    let tampered = sqlx::raw_sql("UPDATE bill_lines SET amount_fen = 1 WHERE month = '2031-03'")
        .execute(ts.store().pool())
        .await;
    assert!(
        tampered.is_err(),
        "the lines of a closed month were changed"
    );
    // The department cannot adjust; finance can, with a reason, and it is audited.
    let adj = json!({ "amount": -500, "reason": "三月宕机两小时，按合同补偿" });
    let (st, _) = boss
        .post(&format!("/v1/bills/2031-03/{d}/adjustments"), adj.clone())
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, b) = fin
        .post(
            &format!("/v1/bills/2031-03/{d}/adjustments"),
            json!({ "amount": -500, "reason": " " }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (st, adjusted) = fin
        .post(&format!("/v1/bills/2031-03/{d}/adjustments"), adj)
        .await;
    assert_eq!(st, StatusCode::OK, "{adjusted}");
    assert_eq!(adjusted["total"], instance_fen + volume_fen - 500);
    assert_eq!(adjusted["usage_total"], instance_fen + volume_fen);
    let aud = ts.admin("auditor").await;
    let (_, log) = aud.get("/v1/audit?action=adjust_bill").await;
    assert!(
        log["items"]
            .as_array()
            .is_some_and(|v| v.iter().any(|r| r["action"] == "adjust_bill")),
        "{log}"
    );

    // closed → confirmed (the department) → paid (finance); a paid bill takes no adjustment.
    let (st, b) = fin
        .post(&format!("/v1/bills/2031-03/{d}/pay"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "paid before confirmed: {b}");
    let (st, b) = boss
        .post(&format!("/v1/bills/2031-03/{d}/confirm"), json!({}))
        .await;
    assert_eq!(
        (st, b["state"].clone()),
        (StatusCode::OK, json!("confirmed")),
        "{b}"
    );
    let (st, b) = fin
        .post(&format!("/v1/bills/2031-03/{d}/pay"), json!({}))
        .await;
    assert_eq!(
        (st, b["state"].clone()),
        (StatusCode::OK, json!("paid")),
        "{b}"
    );
    let (st, b) = fin
        .post(
            &format!("/v1/bills/2031-03/{d}/adjustments"),
            json!({ "amount": 1, "reason": "x" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");

    // What the city owes the provider for March, by department.
    let (st, pb) = fin.get("/v1/provider-bills?month=2031-03").await;
    assert_eq!(st, StatusCode::OK, "{pb}");
    let p = pb["items"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["provider_id"] == c.provider.as_str()))
        .cloned()
        .expect("provider bill");
    assert_eq!(p["total"], instance_fen + volume_fen, "{p}");
    assert_eq!(p["departments"][0]["department_id"], d.as_str());

    // The provider's invoice with three planted differences: one more hour on the
    // instance, a dearer volume, and a machine our meter never saw.
    let csv = format!(
        "\u{feff}资源ID,用量小时,金额\n{id},481,{}\n{vol},480,33.40\nghost-vm-01,720,99.00\n",
        zy_model::Money(instance_fen).yuan()
    );
    let (st, rec) = fin
        .post("/v1/reconciliations", json!({ "provider_id": c.provider, "month": "2031-03", "source": "浪潮云2031年3月账单.csv", "csv": csv }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rec}");
    let diffs: Vec<(String, String)> = rec["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|x| {
            (
                x["resource_id"].as_str().unwrap_or("").to_string(),
                x["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut want = vec![
        (id.clone(), "quantity".to_string()),
        (vol.clone(), "price".to_string()),
        ("ghost-vm-01".to_string(), "missing_on_our_side".to_string()),
    ];
    want.sort();
    let mut got = diffs.clone();
    got.sort();
    assert_eq!(got, want, "{rec}");
    assert_eq!(rec["matched"], 0);
    assert_eq!(rec["delta"], 3340 - volume_fen + 9900, "{rec}");

    // The same invoice as a spreadsheet (deflated, shared strings, as Excel saves it)
    // reports the same three differences.
    let xlsx = xlsx_of(&csv);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(xlsx);
    let (st, rec2) = fin
        .post("/v1/reconciliations", json!({ "provider_id": c.provider, "month": "2031-03", "source": "浪潮云2031年3月账单.xlsx", "xlsx_base64": b64 }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rec2}");
    assert_eq!(rec2["differences"], rec["differences"], "{rec2}");
    assert_eq!(rec2["delta"], rec["delta"]);
    let (st, v) = fin
        .post("/v1/reconciliations", json!({ "provider_id": c.provider, "month": "2031-03", "source": "x.xlsx", "xlsx_base64": "bm90IGEgemlw" }))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, list) = fin.get("/v1/reconciliations").await;
    assert_eq!(
        (st, list["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );

    // The CSV export carries every line and the total.
    let (st, r) = fin.get(&format!("/v1/bills/2031-03/{d}/export")).await;
    assert_eq!(st, StatusCode::OK);
    let r = r.as_str().expect("CSV text").to_string();
    assert!(r.starts_with('\u{feff}'), "BOM");
    assert!(r.contains(&id) && r.contains(&vol), "{r}");
    assert!(
        r.contains(&format!(
            ",{}\r\n",
            zy_model::Money(instance_fen + volume_fen - 500).yuan()
        )),
        "{r}"
    );

    // The XLSX workbook, opened by a real ZIP reader and its sheet read cell by cell.
    let mut rq = fin.http.get(format!(
        "{}/v1/bills/2031-03/{d}/export?format=xlsx",
        fin.url
    ));
    if let Some(b) = &fin.bearer {
        rq = rq.bearer_auth(b);
    }
    let resp = rq.send().await.expect("xlsx");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.expect("xlsx bytes");
    let path = temp_dir().join("bill.xlsx");
    std::fs::write(&path, &bytes).expect("write xlsx");
    let script = r#"
import sys, zipfile, xml.etree.ElementTree as ET
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
ns = {'m': 'http://schemas.openxmlformats.org/spreadsheetml/2006/main'}
names = set(z.namelist())
assert {'[Content_Types].xml', 'xl/workbook.xml', 'xl/worksheets/sheet1.xml'} <= names, names
for r in ET.fromstring(z.read('xl/worksheets/sheet1.xml')).findall('.//m:row', ns):
    cells = []
    for c in r.findall('m:c', ns):
        t = c.find('m:is/m:t', ns)
        v = c.find('m:v', ns)
        cells.append(t.text if t is not None else v.text)
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
    let last = text.lines().last().unwrap_or_default();
    assert!(last.contains("合计 total"), "{text}");
    assert!(
        last.ends_with(&zy_model::Money(instance_fen + volume_fen - 500).yuan()),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&id) && l.ends_with(&zy_model::Money(instance_fen).yuan())),
        "{text}"
    );
    assert!(text.contains("三月宕机两小时"), "{text}");

    // The printable PDF, read by poppler's pdftotext: Chinese text and the total.
    pdf_says(
        &fin,
        &format!("/v1/bills/2031-03/{d}/export?format=pdf"),
        &[
            "宜宾市卫计委",
            "合计",
            "已支付",
            &zy_model::Money(instance_fen + volume_fen - 500).yuan(),
            "web",
        ],
    )
    .await;
}

/// Fetches a PDF and checks that `pdftotext` finds every one of `want` in it. Without
/// pdftotext the check is skipped, unless `ZY_REQUIRE_PDFTOTEXT` (set by `cargo xtask
/// test`, which installs poppler) makes that a failure.
pub(crate) async fn pdf_says(s: &Session, path: &str, want: &[&str]) {
    let mut rq = s.http.get(format!("{}{path}", s.url));
    if let Some(b) = &s.bearer {
        rq = rq.bearer_auth(b);
    }
    let resp = rq.send().await.expect("pdf");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.expect("pdf bytes");
    assert!(bytes.starts_with(b"%PDF-1."), "not a PDF");
    let file = temp_dir().join("bill.pdf");
    std::fs::write(&file, &bytes).expect("write pdf");
    let out = match std::process::Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var_os("ZY_REQUIRE_PDFTOTEXT").is_none(),
                "pdftotext: {e}"
            );
            eprintln!("pdftotext is not installed; the PDF was not read back");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for w in want {
        assert!(text.contains(w), "{w} not in the PDF's text:\n{text}");
    }
}
both_databases!(a_simulated_month_bills_to_the_fen_and_closes_for_good);

async fn a_budget_alert_is_raised_once_at_each_level(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 1).await;
    let (_, proj) = c.admin.get(&format!("/v1/projects/{}", c.project)).await;
    let d = proj["department_id"]
        .as_str()
        .expect("department")
        .to_string();
    let fin = ts.new_user(&c.admin, "caizheng", None).await;
    ts.grant(&c.admin, &fin, Role::Finance, None, None).await;
    clock(&fin, &at(-1)).await;
    let (st, b) = fin
        .post(
            "/v1/price-versions",
            json!({ "provider_id": c.provider, "effective_from": at(0), "rates": rates("1.00") }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    clock(&fin, &at(0)).await;
    let (st, b) = c
        .member
        .post("/v1/instances", json!({ "project_id": c.project, "name": "big", "flavor": "4C8G", "image": "CentOS-7.9" }))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    settle(&c).await;
    // 4 vCPU × ¥1 + 8 GiB × ¥0.025 = ¥4.20 an hour, plus the disk: ¥100 lasts ~23 h.
    let (st, b) = fin
        .put(&format!("/v1/budgets/{d}"), json!({ "monthly": 10_000 }))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    clock(&fin, &at(1)).await;
    let (st, status) = fin.get(&format!("/v1/budgets/{d}")).await;
    assert_eq!(st, StatusCode::OK, "{status}");
    assert!(
        status["spent"].as_i64().is_some_and(|s| s > 10_000),
        "{status}"
    );
    assert!(
        status["forecast"].as_i64() > status["spent"].as_i64(),
        "{status}"
    );
    // The budget_watch task raises 80 % and 100 % once each.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, s) = fin.get(&format!("/v1/budgets/{d}")).await;
        let levels: Vec<i64> = s["alerts"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["level"].as_i64()).collect())
            .unwrap_or_default();
        if levels.len() >= 2 {
            let mut l = levels.clone();
            l.sort();
            assert_eq!(l, vec![80, 100], "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "no budget alerts: {s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
both_databases!(a_budget_alert_is_raised_once_at_each_level);

async fn the_test_clock_only_moves_forward_and_only_where_enabled(db: Db) {
    let mut ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let fin = ts.new_user(&admin, "caizheng", None).await;
    ts.grant(&admin, &fin, Role::Finance, None, None).await;
    clock(&fin, "2032-01-01T00:00:00+08:00").await;
    let (st, b) = fin
        .post(
            "/v1/billing/clock",
            json!({ "to": "2031-12-31T00:00:00+08:00" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    let (st, _) = admin
        .post(
            "/v1/billing/clock",
            json!({ "to": "2033-01-01T00:00:00+08:00" }),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    ts.config.test_clock = false;
    ts.restart().await;
    let fin = ts.login("caizheng", USER_PASSWORD).await.expect("login");
    let (st, b) = fin
        .post(
            "/v1/billing/clock",
            json!({ "to": "2033-01-01T00:00:00+08:00" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
}
both_databases!(the_test_clock_only_moves_forward_and_only_where_enabled);

/// A close that dies before its commit (as under kill -9) leaves nothing: the month is
/// still open, no bill or line was written, and the next close succeeds in full.
async fn a_close_cut_short_leaves_the_month_open(db: Db) {
    let ts = TestServer::start(db).await;
    let c = cloud(&ts, 1).await;
    let fin = ts.new_user(&c.admin, "caizheng", None).await;
    ts.grant(&c.admin, &fin, Role::Finance, None, None).await;
    clock(&fin, &at(-1)).await;
    let (st, b) = fin
        .post(
            "/v1/price-versions",
            json!({ "provider_id": c.provider, "effective_from": at(0), "rates": rates("0.06") }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    clock(&fin, &at(0)).await;
    let (st, b) = c
        .member
        .post("/v1/instances", json!({ "project_id": c.project, "name": "web", "flavor": "2C4G", "image": "CentOS-7.9" }))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    settle(&c).await;
    clock(&fin, &at(31)).await;
    let store = ts.store();
    let (from, to) = zy_server::app::billing::month_bounds("2031-03").expect("month");
    let bills = zy_server::app::billing::month_bills(store, from, to, "2031-03")
        .await
        .expect("rated");
    assert!(bills.iter().any(|b| !b.lines.is_empty()));
    let mut tx = store.begin_write().await.expect("tx");
    zy_store::billing::write_closed_month(&mut tx, "2031-03", zy_model::id::UserId::new(), &bills)
        .await
        .expect("written");
    drop(tx); // the process dies here, before the commit
    for table in ["billing_months", "bills", "bill_lines"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(n, 0, "{table} kept rows of a close that never committed");
    }
    let (st, m) = fin.get("/v1/billing/months").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        m["items"]
            .as_array()
            .is_some_and(|v| v.iter().all(|x| x["closed"] == false)),
        "{m}"
    );
    let (st, b) = fin
        .post("/v1/billing/months/2031-03/close", json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["total"].as_i64().is_some_and(|t| t > 0), "{b}");
}
both_databases!(a_close_cut_short_leaves_the_month_open);

/// `csv` as an `.xlsx` workbook written by Python's zipfile with deflate and shared
/// strings, independently of our own reader and writer.
fn xlsx_of(csv: &str) -> Vec<u8> {
    let script = r#"
import csv, io, sys, zipfile
rows = list(csv.reader(io.StringIO(sys.stdin.read().lstrip('\ufeff'))))
strings, cells = [], []
for r, row in enumerate(rows, 1):
    out = []
    for c, v in enumerate(row):
        ref = chr(65 + c) + str(r)
        try:
            float(v)
            out.append('<c r="%s"><v>%s</v></c>' % (ref, v))
        except ValueError:
            strings.append(v)
            out.append('<c r="%s" t="s"><v>%d</v></c>' % (ref, len(strings) - 1))
    cells.append('<row r="%d">%s</row>' % (r, ''.join(out)))
esc = lambda s: s.replace('&', '&amp;').replace('<', '&lt;')
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('[Content_Types].xml', '<Types/>')
    z.writestr('xl/sharedStrings.xml', '<sst>' + ''.join('<si><t>%s</t></si>' % esc(s) for s in strings) + '</sst>')
    z.writestr('xl/worksheets/sheet1.xml', '<worksheet><sheetData>' + ''.join(cells) + '</sheetData></worksheet>')
sys.stdout.buffer.write(buf.getvalue())
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(csv.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(out.status.success());
    out.stdout
}
