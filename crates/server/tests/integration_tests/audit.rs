//! The audit log: what gets recorded, tamper detection, export, retention, fail-closed.

use crate::both_databases;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn every_change_and_login_is_recorded(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾市安监局", "AJJ").await;
    let (st, _) = admin
        .post(
            "/v1/departments",
            json!({ "name": "宜宾市安监局", "code": "X" }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = admin.get("/v1/audit").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let auditor = ts.admin("auditor").await;
    let (st, log) = auditor.get("/v1/audit?limit=200").await;
    assert_eq!(st, StatusCode::OK);
    let items = log["items"].as_array().expect("items");
    let created = items
        .iter()
        .find(|r| r["action"] == "create_department" && r["outcome"] == "success")
        .expect("create recorded");
    assert_eq!(created["actor_name"], "admin");
    assert_eq!(created["target_id"], d.as_str());
    assert_eq!(created["source_ip"], "127.0.0.1");
    assert!(created["actor_roles"]
        .as_str()
        .is_some_and(|r| r.contains("platform_admin")));
    assert_eq!(created["request_id"].as_str().map(str::len), Some(36));
    let conflict = items
        .iter()
        .find(|r| r["action"] == "create_department" && r["outcome"] == "failure")
        .expect("failure recorded");
    assert!(conflict["detail"]
        .as_str()
        .is_some_and(|d| d.contains("conflict")));
    assert!(items.iter().any(|r| r["action"] == "login"
        && r["actor_name"] == "admin"
        && r["outcome"] == "success"));
    assert!(items
        .iter()
        .any(|r| r["action"] == "change_password" && r["actor_name"] == "auditor"));
    // Reading is not a change, so the refused read by the platform admin is not a record,
    // but the auditor's own reads are.
    assert!(items
        .iter()
        .all(|r| !(r["actor_name"] == "admin" && r["action"] == "list_audit")));
    let (_, again) = auditor.get("/v1/audit?action=list_audit").await;
    assert!(!again["items"].as_array().expect("items").is_empty());
    // Filters by actor and paging newest first.
    let (_, page1) = auditor.get("/v1/audit?limit=3").await;
    let seqs: Vec<i64> = page1["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["seq"].as_i64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let c = page1["next_cursor"].as_str().expect("more pages");
    let (_, page2) = auditor.get(&format!("/v1/audit?limit=3&cursor={c}")).await;
    assert!(page2["items"][0]["seq"].as_i64() < seqs.last().copied());
}
both_databases!(every_change_and_login_is_recorded);

/// Drops the append-only guard, as someone with direct database access could.
async fn drop_guards(ts: &TestServer) {
    match ts.db {
        Db::Sqlite => {
            sql(ts, "DROP TRIGGER audit_log_no_update").await;
            sql(ts, "DROP TRIGGER audit_log_keep_180_days").await;
        }
        Db::Postgres(_) => sql(ts, "DROP TRIGGER audit_log_guard ON audit_log").await,
    }
}

async fn verify_names_the_first_altered_or_deleted_record(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    for i in 0..5 {
        department(&admin, &format!("部门{i}"), &format!("D{i}")).await;
    }
    let auditor = ts.admin("auditor").await;
    let (st, report) = auditor.get("/v1/audit/verify").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    // The guard refuses a direct update…
    let blocked = sqlx::raw_sql("UPDATE audit_log SET actor_name = 'nobody' WHERE seq = 6")
        .execute(ts.store().pool())
        .await;
    assert!(
        blocked.is_err(),
        "the append-only trigger must refuse updates"
    );
    // …and once it is dropped, the chain still tells.
    drop_guards(&ts).await;
    sql(
        &ts,
        "UPDATE audit_log SET actor_name = 'nobody' WHERE seq = 6",
    )
    .await;
    let (_, report) = auditor.get("/v1/audit/verify").await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_problem"]["seq"], 6, "{report}");
    assert_eq!(report["first_problem"]["kind"], "altered");
    sql(
        &ts,
        "UPDATE audit_log SET actor_name = 'admin' WHERE seq = 6",
    )
    .await;
    let (_, report) = auditor.get("/v1/audit/verify").await;
    assert_eq!(
        report["ok"], true,
        "restoring the content restores the chain: {report}"
    );
    sql(&ts, "DELETE FROM audit_log WHERE seq = 4").await;
    let (_, report) = auditor.get("/v1/audit/verify").await;
    assert_eq!(report["first_problem"]["seq"], 5, "{report}");
    assert_eq!(report["first_problem"]["kind"], "deleted");
}
both_databases!(verify_names_the_first_altered_or_deleted_record);

async fn young_records_are_never_purged(db: Db) {
    let ts = TestServer::start(db).await;
    let auditor = ts.admin("auditor").await;
    let recent = zy_model::time::Timestamp::now()
        .plus_secs(-10 * 86_400)
        .to_rfc3339();
    let (st2, body2) = auditor
        .post("/v1/audit/purge", json!({ "before": recent }))
        .await;
    assert_eq!(st2, StatusCode::UNPROCESSABLE_ENTITY, "{body2}");
    // The database refuses it too, whatever the application says.
    let r = sqlx::raw_sql("DELETE FROM audit_log")
        .execute(ts.store().pool())
        .await;
    assert!(
        r.is_err(),
        "the retention trigger must refuse deleting young records"
    );
    let (_, report) = auditor.get("/v1/audit/verify").await;
    assert_eq!(report["ok"], true);
}
both_databases!(young_records_are_never_purged);

async fn exports_are_csv_or_json_lines(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    department(&admin, "宜宾市人社局", "RSJ").await;
    let auditor = ts.admin("auditor").await;
    let get = |fmt: &'static str| {
        let ts = &ts;
        let bearer = auditor.bearer.clone().expect("bearer");
        async move {
            ts.http
                .get(format!("{}/v1/audit/export?format={fmt}", ts.url))
                .bearer_auth(bearer)
                .send()
                .await
                .expect("export")
        }
    };
    let csv = get("csv").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"]
        .to_str()
        .is_ok_and(|c| c.starts_with("text/csv")));
    let text = csv.text().await.expect("text");
    assert!(text.starts_with('\u{feff}'));
    assert!(text.contains("create_department") && text.contains("宜宾市人社局"));
    let lines = get("jsonl").await.text().await.expect("text");
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(records.len() >= 5);
    assert!(records
        .windows(2)
        .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()));
    let (st, _) = auditor.get("/v1/audit/export?format=xml").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}
both_databases!(exports_are_csv_or_json_lines);

async fn a_change_whose_record_cannot_be_written_does_not_happen(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    match ts.db {
        Db::Sqlite => sql(&ts, "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END;").await,
        Db::Postgres(_) => {
            sql(
                &ts,
                "CREATE FUNCTION audit_broken() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END; $$; \
                 CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_broken();",
            )
            .await
        }
    }
    let (st, body) = admin
        .post(
            "/v1/departments",
            json!({ "name": "不应存在", "code": "GHOST" }),
        )
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM departments")
        .fetch_one(ts.store().pool())
        .await
        .expect("count");
    assert_eq!(
        n, 0,
        "the department must not exist without its audit record"
    );
}
both_databases!(a_change_whose_record_cannot_be_written_does_not_happen);

async fn an_anchor_catches_a_log_rewritten_as_a_whole(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    department(&admin, "宜宾市统计局", "TJJ").await;
    let auditor = ts.admin("auditor").await;
    let (_, first) = auditor.get("/v1/audit/verify").await;
    let (anchor_seq, anchor_hash) = (
        first["head_seq"].as_i64().expect("seq"),
        first["head_hash"].as_str().expect("hash").to_string(),
    );
    // Someone with the database rewrites record 2 and recomputes every hash after it.
    drop_guards(&ts).await;
    let store = ts.store();
    let mut records = zy_store::audit::batch_after(store, &Default::default(), 0, 10_000)
        .await
        .expect("records");
    records[1].actor_name = "nobody".into();
    let mut prev = records[0].hash.clone();
    for r in records.iter_mut().skip(1) {
        r.prev_hash = prev.clone();
        r.hash = r.compute_hash();
        prev = r.hash.clone();
        sqlx::query(
            "UPDATE audit_log SET actor_name = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
        )
        .bind(&r.actor_name)
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .bind(r.seq)
        .execute(store.pool())
        .await
        .expect("rewrite");
    }
    sqlx::query("UPDATE audit_head SET hash = $1")
        .bind(&prev)
        .execute(store.pool())
        .await
        .expect("head");
    let (_, plain) = auditor.get("/v1/audit/verify").await;
    assert_eq!(
        plain["ok"], true,
        "a consistent forgery passes the chain alone: {plain}"
    );
    let (st, anchored) = auditor
        .get(&format!(
            "/v1/audit/verify?anchor_seq={anchor_seq}&anchor_hash={anchor_hash}"
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(anchored["ok"], false, "{anchored}");
    assert_eq!(anchored["first_problem"]["seq"], anchor_seq, "{anchored}");
    let (st, _) = auditor.get("/v1/audit/verify?anchor_seq=3").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "an anchor needs both parts");
}
both_databases!(an_anchor_catches_a_log_rewritten_as_a_whole);

/// Verification while changes keep being recorded: every record appended during the walk
/// is part of the chain, never reported as tampering.
async fn verify_while_changes_are_recorded_finds_an_intact_chain(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let auditor = ts.admin("auditor").await;
    let writer = async {
        for k in 0..60 {
            let (st, v) = admin
                .post(
                    "/v1/departments",
                    json!({ "name": format!("并发审计部门{k}"), "code": format!("CA{k}") }),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
        }
    };
    let checker = async {
        let mut checks = 0;
        for _ in 0..30 {
            let (st, report) = auditor.get("/v1/audit/verify").await;
            assert_eq!(st, StatusCode::OK, "{report}");
            assert_eq!(report["ok"], true, "{report}");
            checks += 1;
        }
        checks
    };
    let ((), checks) = tokio::join!(writer, checker);
    assert_eq!(checks, 30);
}
both_databases!(verify_while_changes_are_recorded_finds_an_intact_chain);
