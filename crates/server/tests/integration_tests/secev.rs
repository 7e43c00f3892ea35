//! Security events and vulnerability tracking against the real server: syslog lines sent
//! over UDP and TCP on 127.0.0.1 become events mapped to the right department through
//! the address plan; a full queue drops and counts UDP lines and loses nothing else;
//! security-group drops recorded by direct call; scanner files (CSV and Nessus XML)
//! imported with duplicates, a re-scan that verifies and reopens, the states a department
//! and the security admin move findings through; hostile input gets a clear 4xx.

use crate::both_databases;
use crate::common::*;
use crate::world::{Caller, World};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(crate) async fn syslog_server(db: Db, queue: usize) -> TestServer {
    TestServer::start_custom(db, false, |c| {
        c.syslog_udp = Some("127.0.0.1:0".parse().expect("addr"));
        c.syslog_tcp = Some("127.0.0.1:0".parse().expect("addr"));
        c.syslog_queue = queue;
    })
    .await
}

pub(crate) fn addrs(ts: &TestServer) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let st = &ts.server.as_ref().expect("running").state.syslog;
    (
        st.udp_addr().expect("udp bound"),
        st.tcp_addr().expect("tcp bound"),
    )
}

/// Polls the event list (as `s`, with `query`) until it holds `n` events.
async fn events(s: &Session, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, b) = s
            .get(&format!("/v1/security-events?limit=500{query}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let items = b["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n || Instant::now() > deadline {
            assert_eq!(items.len(), n, "events for {query}: {b}");
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Now as an RFC 3164 timestamp (`Dec  1 10:16:02`, Asia/Shanghai).
fn bsd_now() -> String {
    chrono::Utc::now()
        .with_timezone(&zy_model::time::shanghai())
        .format("%b %e %H:%M:%S")
        .to_string()
}

/// `from=…&to=…` covering the last 400 days.
fn all_days() -> String {
    let today = chrono::Utc::now()
        .with_timezone(&zy_model::time::shanghai())
        .date_naive();
    format!("from={}&to={}", today - chrono::Days::new(399), today)
}

fn with_dst<'a>(items: &'a [Value], dst: &str) -> &'a Value {
    items
        .iter()
        .find(|e| e["dst_ip"] == dst)
        .unwrap_or_else(|| panic!("no event to {dst} in {items:?}"))
}

async fn syslog_lines_over_udp_and_tcp_become_events_of_the_right_department(db: Db) {
    use tokio::io::AsyncWriteExt;
    let ts = syslog_server(db, 65_536).await;
    let admin = ts.platform_admin().await;
    let sec = ts.admin("secadmin").await;
    let wjw = department(&admin, "宜宾市卫健委", "WJW").await;
    let gaj = department(&admin, "宜宾市公安局", "GAJ").await;
    for (cidr, d) in [("10.20.0.0/16", &wjw), ("10.20.5.0/24", &gaj)] {
        let (st, b) = sec
            .post(
                "/v1/address-plan",
                json!({ "cidr": cidr, "department_id": d }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }
    let (udp, tcp) = addrs(&ts);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let now = bsd_now();
    for line in [
        // Huawei-USG-like key=value, RFC 5424: the /16 of 卫健委.
        "<36>1 - fw-core-01 USG - POLICY - vsys=public, protocol=6, source-ip=203.0.113.9, source-port=51234, destination-ip=10.20.1.15, destination-port=3389, policy-name=deny-rdp, action=deny".to_string(),
        // CEF, RFC 3164: the nested /24 of 公安局 wins over the /16.
        format!("<134>{now} ids01 CEF:0|Acme|Sentinel IPS|5.1|4012|Exploit attempt|8|src=198.51.100.5 dst=10.20.5.6 spt=1025 dpt=80 proto=TCP act=blocked cat=/Intrusion/Exploit"),
    ] {
        sock.send_to(line.as_bytes(), udp).await.expect("send");
    }
    let mut stream = tokio::net::TcpStream::connect(tcp).await.expect("tcp");
    // Octet counting (RFC 6587), then newline framing on the same connection.
    let waf = format!("<131>{now} waf-gw-02 WAF: 日志类型:WAF应用防护日志, 源IP:198.51.100.7, 源端口:40022, 目的IP:10.20.1.16, 目的端口:443, 攻击类型:SQL注入, 严重级别:高, 动作:拒绝");
    let framed = format!("{} {}", waf.len(), waf);
    stream.write_all(framed.as_bytes()).await.expect("write");
    // Outbound: our 10.20.9.9 (卫健委) calls out; mapped by its source.
    stream
        .write_all(b"<13>1 - av01 - - - - LEEF:1.0|Acme|AV Gateway|2.0|VirusFound|src=10.20.9.9\tdst=192.0.2.1\tsev=9\tcat=Trojan\n")
        .await
        .expect("write");
    stream
        .write_all(format!("<30>{now} box systemd[1]: Started something unrelated.\n").as_bytes())
        .await
        .expect("write");
    stream.flush().await.expect("flush");

    let all = events(&sec, "", 5).await;
    let rdp = with_dst(&all, "10.20.1.15");
    assert_eq!(rdp["department_id"], json!(wjw));
    assert_eq!(rdp["category"], "policy_deny");
    assert_eq!(rdp["action"], "blocked");
    assert_eq!(rdp["appliance"], "fw-core-01");
    assert_eq!(rdp["dst_port"], 3389);
    let ips = with_dst(&all, "10.20.5.6");
    assert_eq!(
        ips["department_id"],
        json!(gaj),
        "the most specific block wins"
    );
    assert_eq!(
        (
            ips["format"].as_str(),
            ips["category"].as_str(),
            ips["severity"].as_str()
        ),
        (Some("cef"), Some("intrusion"), Some("high"))
    );
    let sqli = with_dst(&all, "10.20.1.16");
    assert_eq!(
        (sqli["category"].as_str(), sqli["severity"].as_str()),
        (Some("web_attack"), Some("high"))
    );
    assert_eq!(sqli["department_id"], json!(wjw));
    let virus = with_dst(&all, "192.0.2.1");
    assert_eq!(
        virus["department_id"],
        json!(wjw),
        "outbound events map by their source"
    );
    assert_eq!(virus["category"], "virus");
    let other = all
        .iter()
        .find(|e| e["format"] == "unknown")
        .expect("unknown kept");
    assert_eq!(other["category"], "other");
    assert!(other["message"]
        .as_str()
        .unwrap_or("")
        .contains("Started something unrelated"));
    assert_eq!(other["department_id"], Value::Null);

    // A department admin sees their own department's events only.
    let boss = ts.new_user(&admin, "wjw.boss", Some(&wjw)).await;
    ts.grant(
        &admin,
        &boss,
        zy_model::role::Role::DeptAdmin,
        Some(&wjw),
        None,
    )
    .await;
    let mine = events(&boss, "", 3).await;
    assert!(
        mine.iter().all(|e| e["department_id"] == json!(wjw)),
        "{mine:?}"
    );
    let (st, _) = boss
        .get(&format!("/v1/security-events?department_id={gaj}"))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Filters and paging.
    events(&sec, "&category=web_attack", 1).await;
    events(&sec, "&address=10.20.5.6", 1).await;
    events(&sec, "&q=deny-rdp", 1).await;
    let (st, b) = sec.get("/v1/security-events?limit=2").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let cursor = b["next_cursor"].as_str().expect("more pages").to_string();
    let (_, b2) = sec
        .get(&format!("/v1/security-events?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(b2["items"].as_array().map(Vec::len), Some(2));
    assert_ne!(b["items"][0]["seq"], b2["items"][0]["seq"]);

    // The pre-aggregated counts agree.
    let (st, b) = sec
        .get(&format!(
            "/v1/security-events/counts?by=department&{}",
            all_days()
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let n = |k: &str| {
        b["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["key"] == k)
            .map(|c| c["events"].as_i64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert_eq!((n(&wjw), n(&gaj), n("")), (3, 1, 1), "{b}");
    let (st, b) = boss
        .get(&format!(
            "/v1/security-events/counts?by=category&{}",
            all_days()
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let total: i64 = b["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["events"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(total, 3, "a department admin counts only their own: {b}");

    let (st, b) = sec.get("/v1/security-events/intake").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["received"].as_u64(),
            b["written"].as_u64(),
            b["dropped"].as_u64()
        ),
        (Some(5), Some(5), Some(0)),
        "{b}"
    );

    // Hostile queries and plan entries: clear 4xx.
    for q in [
        "by=nothing",
        "by=day&from=2026-13-01",
        "by=day&from=2026-12-01&to=2026-01-01",
    ] {
        let (st, _) = sec.get(&format!("/v1/security-events/counts?{q}")).await;
        assert!(st.is_client_error(), "{q}: {st}");
    }
    for q in [
        "cursor=abc",
        "limit=0",
        "address=not-an-ip",
        "category=nonsense",
    ] {
        let (st, _) = sec.get(&format!("/v1/security-events?{q}")).await;
        assert!(st.is_client_error(), "{q}: {st}");
    }
    for (cidr, want) in [
        ("10.20.0.0/16", 409),
        ("10.20.1.0/8", 422),
        ("300.1.1.0/24", 422),
        ("10.0.0.0/4", 422),
        ("x", 422),
    ] {
        let (st, b) = sec
            .post(
                "/v1/address-plan",
                json!({ "cidr": cidr, "department_id": wjw }),
            )
            .await;
        assert_eq!(st.as_u16(), want, "{cidr}: {b}");
    }
}
both_databases!(syslog_lines_over_udp_and_tcp_become_events_of_the_right_department);

async fn a_full_queue_drops_and_counts_udp_lines_and_loses_nothing_else(db: Db) {
    let pg = matches!(db, Db::Postgres(_));
    let ts = syslog_server(db, 50).await;
    let sec = ts.admin("secadmin").await;
    let (udp, _) = addrs(&ts);
    // Hold the writer back: on SQLite by holding the one writer slot, on PostgreSQL by
    // locking the events table.
    let mut hold = ts.store().begin_write().await.expect("hold");
    if pg {
        sqlx::query("LOCK TABLE security_events IN EXCLUSIVE MODE")
            .execute(&mut *hold)
            .await
            .expect("lock");
    }
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    for i in 0..400 {
        let line = format!(
            "<134>{} fw{i} src=192.0.2.{} dst=10.9.9.9 action=deny",
            bsd_now(),
            i % 250
        );
        sock.send_to(line.as_bytes(), udp).await.expect("send");
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let stats = || ts.server.as_ref().expect("running").state.syslog.status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats().received < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = stats();
    assert!(s.queued <= 50, "the queue stays within its bound: {s:?}");
    assert!(
        s.dropped > 0,
        "a full queue drops UDP lines and counts them: {s:?}"
    );
    hold.rollback().await.expect("release");
    // Everything received is written or counted as dropped; nothing else is lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats();
        if s.written + s.dropped == s.received || Instant::now() > deadline {
            assert_eq!(s.written + s.dropped, s.received, "{s:?}");
            assert_eq!(s.lost_on_error, 0, "{s:?}");
            let (_, b) = sec.get("/v1/security-events/intake").await;
            assert_eq!(
                b["dropped"].as_u64(),
                Some(s.dropped),
                "visible in the API: {b}"
            );
            assert_eq!(b["queue_bound"].as_u64(), Some(50));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
both_databases!(a_full_queue_drops_and_counts_udp_lines_and_loses_nothing_else);

/// A burst over TCP larger than one INSERT statement (several full statements and a
/// partial one per batch, parsed while the previous batch is written) is stored whole,
/// each line with its own fields: placeholders and binding order agree on both databases.
async fn a_tcp_burst_is_stored_whole_with_each_lines_own_fields(db: Db) {
    use tokio::io::AsyncWriteExt;
    let ts = syslog_server(db, 65_536).await;
    let (_, tcp) = addrs(&ts);
    let n: i64 = 1_000;
    let mut burst = String::new();
    for i in 0..n {
        burst.push_str(&format!(
            "<134>{} fw01 src=192.0.2.{} dst=10.77.{}.{} spt={} dpt=443 proto=tcp action=deny\n",
            bsd_now(),
            i % 250 + 1,
            i / 250,
            i % 250 + 1,
            10_000 + i
        ));
    }
    let mut stream = tokio::net::TcpStream::connect(tcp).await.expect("tcp");
    stream.write_all(burst.as_bytes()).await.expect("write");
    stream.shutdown().await.expect("shutdown");
    let stats = || ts.server.as_ref().expect("running").state.syslog.status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats().written < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = stats();
    assert_eq!(
        (s.received, s.written, s.dropped),
        (n as u64, n as u64, 0),
        "{s:?}"
    );
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT CAST(src_port AS BIGINT), src_ip, dst_ip, CAST(dst_port AS BIGINT) FROM security_events ORDER BY src_port",
    )
    .fetch_all(ts.store().pool())
    .await
    .expect("events");
    assert_eq!(rows.len() as i64, n);
    for (i, (spt, src, dst, dpt)) in rows.into_iter().enumerate() {
        let i = i as i64;
        assert_eq!(
            (spt, src, dst, dpt),
            (
                10_000 + i,
                format!("192.0.2.{}", i % 250 + 1),
                format!("10.77.{}.{}", i / 250, i % 250 + 1),
                443
            ),
            "line {i}"
        );
    }
    let counted: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(events), 0) AS BIGINT) FROM security_event_counts",
    )
    .fetch_one(ts.store().pool())
    .await
    .expect("counts");
    assert_eq!(counted, n, "the day counts hold every event");
}
both_databases!(a_tcp_burst_is_stored_whole_with_each_lines_own_fields);

const RESCAN: &str = r#"<?xml version="1.0"?>
<NessusClientData_v2><Report name="复扫">
<ReportHost name="10.30.0.8"><HostProperties><tag name="host-ip">10.30.0.8</tag></HostProperties>
<ReportItem port="22" svc_name="ssh" protocol="tcp" severity="3" pluginID="WEAKPW" pluginName="Weak password"><solution>Use a strong password</solution></ReportItem>
<ReportItem port="3306" svc_name="mysql" protocol="tcp" severity="2" pluginID="MYSQL-OLD" pluginName="MySQL outdated"/>
</ReportHost>
</Report></NessusClientData_v2>"#;

async fn vulnerabilities_are_imported_deduplicated_worked_and_verified_by_a_rescan(db: Db) {
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let boss = w.session(Caller::DeptAdmin);
    let other = w.session(Caller::OtherDeptAdmin);
    let (st, b) = w
        .sec
        .post(
            "/v1/address-plan",
            json!({ "cidr": "10.30.0.0/16", "department_id": w.d }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let csv = "漏洞名称,IP地址,端口,风险等级,漏洞编号,CVE,修复建议\n\
               Apache Struts2 远程代码执行,10.30.0.8,8080,严重,S2-045,CVE-2017-5638,升级 Struts2\n\
               弱口令,10.30.0.8,22,高危,WEAKPW,,修改为强口令\n\
               Apache Struts2 远程代码执行,10.30.0.8,8080,严重,S2-045,CVE-2017-5638,升级 Struts2\n\
               MySQL outdated,10.30.0.8,3306,中危,MYSQL-OLD,,升级\n\
               外部主机,203.0.113.50,80,low,EXT-1,,\n";
    let (st, b) = w
        .sec
        .post(
            "/v1/vulnerability-imports",
            json!({ "source": "2026-11 月度扫描.csv", "format": "csv", "content": csv }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(
        (
            b["created"].as_i64(),
            b["duplicates"].as_i64(),
            b["hosts"].as_i64()
        ),
        (Some(4), Some(1), Some(2)),
        "{b}"
    );
    // The same file again: nothing new, every finding seen again.
    let (_, b) = w
        .sec
        .post(
            "/v1/vulnerability-imports",
            json!({ "source": "again.csv", "format": "csv", "content": csv }),
        )
        .await;
    assert_eq!(
        (b["created"].as_i64(), b["updated"].as_i64()),
        (Some(0), Some(4)),
        "{b}"
    );

    let (st, b) = boss.get("/v1/vulnerabilities").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let mine = b["items"].as_array().expect("items").clone();
    assert_eq!(
        mine.len(),
        3,
        "the department sees its three findings, not the outside host: {b}"
    );
    let find = |id: &str| {
        mine.iter()
            .find(|v| v["vuln_id"] == id)
            .expect("finding")
            .clone()
    };
    let struts = find("S2-045");
    let (weak, mysql) = (find("WEAKPW"), find("MYSQL-OLD"));
    assert_eq!(struts["severity"], "critical");
    let days = |v: &Value| {
        let d = zy_model::time::Timestamp::parse_rfc3339(v["deadline"].as_str().expect("deadline"))
            .expect("time");
        let f =
            zy_model::time::Timestamp::parse_rfc3339(v["first_seen"].as_str().expect("first_seen"))
                .expect("time");
        d.secs_since(f) / 86_400
    };
    assert_eq!(
        (days(&struts), days(&weak), days(&mysql)),
        (7, 15, 30),
        "deadlines by severity"
    );
    let (_, b) = other.get("/v1/vulnerabilities").await;
    assert_eq!(
        b["items"].as_array().map(Vec::len),
        Some(0),
        "another department sees none"
    );

    let state = |id: &Value, body: Value| {
        let path = format!("/v1/vulnerabilities/{}/state", id.as_str().expect("id"));
        async move { (path.clone(), body) }
    };
    let (p, body) = state(&struts["id"], json!({ "state": "fixing" })).await;
    let (st, b) = boss.post(&p, body).await;
    assert_eq!(
        (st, b["state"].as_str()),
        (StatusCode::OK, Some("fixing")),
        "{b}"
    );
    let (p, body) = state(
        &struts["id"],
        json!({ "state": "fixed", "note": "已升级到 2.5.33" }),
    )
    .await;
    let (st, b) = boss.post(&p, body).await;
    assert_eq!(
        (st, b["state"].as_str()),
        (StatusCode::OK, Some("fixed")),
        "{b}"
    );
    let (p, body) = state(&weak["id"], json!({ "state": "fixed" })).await;
    assert_eq!(boss.post(&p, body).await.0, StatusCode::OK);
    // Not theirs, not their move, not a move at all.
    let (p, body) = state(&mysql["id"], json!({ "state": "fixing" })).await;
    assert_eq!(other.post(&p, body).await.0, StatusCode::FORBIDDEN);
    let (p, body) = state(
        &mysql["id"],
        json!({ "state": "accepted", "note": "内网隔离" }),
    )
    .await;
    assert_eq!(
        boss.post(&p, body).await.0,
        StatusCode::FORBIDDEN,
        "only the security admin accepts a risk"
    );
    let (p, body) = state(&mysql["id"], json!({ "state": "accepted" })).await;
    assert_eq!(
        w.sec.post(&p, body).await.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required"
    );
    let (p, body) = state(&mysql["id"], json!({ "state": "verified" })).await;
    assert_eq!(
        w.sec.post(&p, body).await.0,
        StatusCode::CONFLICT,
        "only a re-scan verifies"
    );

    // The re-scan still reports the weak password (claimed fixed: reopened) and MySQL
    // (open: seen again), and no longer Struts2 (claimed fixed: verified).
    let (st, b) = w
        .sec
        .post(
            "/v1/vulnerability-imports",
            json!({ "source": "复扫.nessus", "format": "nessus", "content": RESCAN }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(
        (
            b["verified"].as_i64(),
            b["reopened"].as_i64(),
            b["updated"].as_i64(),
            b["created"].as_i64()
        ),
        (Some(1), Some(1), Some(1), Some(0)),
        "{b}"
    );
    let (_, b) = boss.get("/v1/vulnerabilities?state=verified").await;
    assert_eq!(b["items"][0]["vuln_id"], "S2-045", "{b}");
    let (_, b) = boss.get("/v1/vulnerabilities?state=open").await;
    assert_eq!(b["items"].as_array().map(Vec::len), Some(2), "{b}");

    let (st, b) = w.sec.get("/v1/vulnerabilities/counts?by=department").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let row = b["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| r["key"] == json!(w.d))
        .expect("row")
        .clone();
    assert_eq!(
        (
            row["open"].as_i64(),
            row["verified"].as_i64(),
            row["fixed_within_deadline"].as_i64(),
            row["overdue"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(0)),
        "{row}"
    );

    // Malformed files and bodies: clear 4xx, never 5xx.
    for (format, content) in [
        ("csv", ""),
        ("csv", "address,title\n1.2.3.4,x\n"),
        (
            "csv",
            "address,title,severity,vuln_id\n1.2.3.999,x,high,1\n",
        ),
        ("nessus", "<NessusClientData_v2><Report>"),
        ("nessus", "<?xml version=\"1.0\"?><other/>"),
        ("nessus", "<!DOCTYPE a [<!ENTITY b \"c\">]><a>&b;</a>"),
        ("pdf", "x"),
    ] {
        let (st, b) = w
            .sec
            .post(
                "/v1/vulnerability-imports",
                json!({ "source": "bad", "format": format, "content": content }),
            )
            .await;
        assert_eq!(
            st,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{format} {content:?}: {b}"
        );
    }

    // Security-group drops on our own hosts, as the networks part records them.
    let instance: zy_model::id::InstanceId = w.instance.parse().expect("id");
    let host = zy_model::id::HostId::new();
    let now = zy_model::time::Timestamp::now();
    let mut tx = ts.store().begin_write().await.expect("tx");
    zy_server::app::secev::record_local_drops(
        &mut tx,
        host,
        Some(instance),
        "tap-web01",
        42,
        now.plus_secs(-10),
        now,
    )
    .await
    .expect("recorded");
    tx.commit().await.expect("commit");
    let (_, b) = boss.get("/v1/security-events?source=security_group").await;
    let e = &b["items"][0];
    assert_eq!(
        (
            e["count"].as_i64(),
            e["category"].as_str(),
            e["action"].as_str()
        ),
        (Some(42), Some("policy_deny"), Some("blocked")),
        "{b}"
    );
    assert_eq!(e["department_id"], json!(w.d));
    assert_eq!(e["instance_id"], json!(w.instance));
    let (_, b) = boss.get("/v1/security-events/counts?by=action").await;
    assert_eq!(
        b["items"][0]["events"].as_i64(),
        Some(42),
        "counted with their count: {b}"
    );
}
both_databases!(vulnerabilities_are_imported_deduplicated_worked_and_verified_by_a_rescan);

async fn an_alert_rule_fires_through_the_notifications(db: Db) {
    let ts = syslog_server(db, 65_536).await;
    let admin = ts.platform_admin().await;
    let sec = ts.admin("secadmin").await;
    let d = department(&admin, "宜宾市卫健委", "WJW").await;
    let (st, b) = sec
        .post(
            "/v1/address-plan",
            json!({ "cidr": "10.40.0.0/16", "department_id": d }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, b) = sec.post("/v1/security-event-rules", json!({ "name": "卫健委高危攻击", "department_id": d, "min_severity": "high", "threshold": 3, "window_minutes": 10 })).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, _) = sec
        .post(
            "/v1/security-event-rules",
            json!({ "name": "x", "min_severity": "high", "threshold": 0, "window_minutes": 10 }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (udp, _) = addrs(&ts);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    for i in 0..4 {
        let line = format!("<131>{} waf01 WAF: src=198.51.100.{i} dst=10.40.0.8 attack_type=SQL injection severity=high action=block", bsd_now());
        sock.send_to(line.as_bytes(), udp).await.expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, b) = sec.get("/v1/me/notifications").await;
        let alerts: Vec<&Value> = b["items"]
            .as_array()
            .map(|a| a.iter().filter(|n| n["kind"] == "security_alert").collect())
            .unwrap_or_default();
        if !alerts.is_empty() {
            assert_eq!(alerts.len(), 1, "{b}");
            assert!(
                alerts[0]["title"]
                    .as_str()
                    .unwrap_or("")
                    .contains("卫健委高危攻击"),
                "{b}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no alert: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
both_databases!(an_alert_rule_fires_through_the_notifications);

async fn the_demo_has_an_address_plan_events_and_findings(db: Db) {
    let ts = TestServer::start_with(db, true).await;
    let sec = ts.admin("secadmin").await;
    let (_, plan) = sec.get("/v1/address-plan").await;
    let blocks = plan["items"].as_array().map(Vec::len).unwrap_or(0);
    assert!(blocks >= 5, "a block per bureau: {plan}");
    let (_, b) = sec.get("/v1/security-events/counts?by=department").await;
    let mapped: i64 = b["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["key"] != "")
        .map(|c| c["events"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(mapped, 560, "every replayed line maps to a bureau: {b}");
    let (_, b) = sec.get("/v1/vulnerabilities?overdue=true").await;
    assert!(
        !b["items"].as_array().map(Vec::is_empty).unwrap_or(true),
        "the demo scan has overdue findings: {b}"
    );
}
both_databases!(the_demo_has_an_address_plan_events_and_findings);
