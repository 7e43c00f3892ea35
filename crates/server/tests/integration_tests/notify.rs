//! Notifications end to end: a notice exists exactly when its transaction commits; the
//! inbox (unread first, paging, marking read, someone else's notice invisible); recipients
//! by role and scope; e-mail through a real SMTP server (aiosmtpd on loopback) with the
//! Chinese subject decoded and the recipient's language and preferences honoured; webhooks
//! signed with HMAC-SHA256, retried after a 500 and logged; deliveries queued while the
//! server was down sent after it starts.

use crate::both_databases;
use crate::common::*;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zy_model::id::UserId;
use zy_model::role::{Role, Scope};
use zy_server::notify::{self, Notice, NoticeKind};

fn uid(s: &Session) -> UserId {
    s.user_id.parse().expect("user id")
}

fn notice(kind: NoticeKind, to: Vec<UserId>, params: Value) -> Notice {
    Notice {
        kind,
        to,
        params,
        link: Some("/requests/REQ-1".into()),
        subject: Some(uuid::Uuid::now_v7()),
    }
}

async fn enqueue(ts: &TestServer, n: &Notice) {
    let mut tx = ts.store().begin_write().await.expect("tx");
    notify::enqueue(&mut tx, n).await.expect("enqueue");
    tx.commit().await.expect("commit");
}

async fn count(ts: &TestServer, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(ts.store().pool())
        .await
        .expect("count");
    n
}

/// Polls `f` until it returns `Some`, for at most `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_notice_exists_exactly_when_its_transaction_commits(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾市卫健委", "WJW").await;
    let li = ts.new_user(&admin, "li.si", Some(&d)).await;
    let wang = ts.new_user(&admin, "wang.wu", Some(&d)).await;
    // A webhook, so a rollback must take its outbox row away too.
    let (st, b) = admin
        .post(
            "/v1/webhooks",
            json!({ "name": "OA", "url": "http://127.0.0.1:9/x" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let n = notice(
        NoticeKind::ApprovalNeeded,
        vec![uid(&li), uid(&li), uid(&wang)],
        json!({ "request": "REQ-1", "title": "扩容 10 台", "department": "卫健委", "step": "部门审批", "deadline": "2026-12-01 18:00" }),
    );
    let mut tx = ts.store().begin_write().await.expect("tx");
    notify::enqueue(&mut tx, &n).await.expect("enqueue");
    tx.rollback().await.expect("rollback");
    assert_eq!(count(&ts, "notifications").await, 0);
    assert_eq!(count(&ts, "notification_deliveries").await, 0);

    enqueue(&ts, &n).await;
    assert_eq!(count(&ts, "notifications").await, 2, "duplicates removed");
    assert_eq!(
        count(&ts, "notification_deliveries").await,
        1,
        "one webhook call"
    );

    let (st, c) = li.get("/v1/me/notifications/unread-count").await;
    assert_eq!((st, c["unread"].as_i64()), (StatusCode::OK, Some(1)));
    let (_, page) = li.get("/v1/me/notifications").await;
    let item = &page["items"][0];
    assert_eq!(item["title"], "待审批：扩容 10 台");
    assert!(
        item["body"].as_str().unwrap_or("").contains("部门审批"),
        "{item}"
    );
    assert_eq!(item["link"], "/requests/REQ-1");
    let id = item["id"].as_str().expect("id").to_string();
    // English for a client that asks for it.
    let resp = li
        .http
        .get(format!("{}/v1/me/notifications", ts.url))
        .bearer_auth(li.bearer.as_deref().unwrap_or(""))
        .header("accept-language", "en")
        .send()
        .await
        .expect("get");
    let en: Value = resp.json().await.expect("json");
    assert_eq!(en["items"][0]["title"], "Approval needed: 扩容 10 台");

    // Someone else's notice does not exist for you.
    let (st, _) = wang
        .post(&format!("/v1/me/notifications/{id}/read"), json!({}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = li
        .post(&format!("/v1/me/notifications/{id}/read"), json!({}))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, c) = li.get("/v1/me/notifications/unread-count").await;
    assert_eq!(c["unread"], 0);
    let (_, c) = wang.get("/v1/me/notifications/unread-count").await;
    assert_eq!(
        c["unread"], 1,
        "reading one's own copy leaves the others' alone"
    );
    let (st, m) = wang.post("/v1/me/notifications/read-all", json!({})).await;
    assert_eq!((st, m["marked"].as_u64()), (StatusCode::OK, Some(1)));
}
both_databases!(a_notice_exists_exactly_when_its_transaction_commits);

async fn the_inbox_lists_unread_first_and_pages(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let u = ts.new_user(&admin, "zhao.liu", None).await;
    for i in 0..7 {
        enqueue(
            &ts,
            &notice(
                NoticeKind::LeaseEnding,
                vec![uid(&u)],
                json!({ "resource": "云主机", "name": format!("vm-{i}"), "days": 3 }),
            ),
        )
        .await;
    }
    // Read the two oldest.
    let (_, all) = u.get("/v1/me/notifications?limit=100").await;
    let items = all["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 7);
    assert!(
        items[0]["title"].as_str().unwrap_or("").ends_with("vm-6"),
        "newest first"
    );
    for it in &items[5..] {
        let (st, _) = u
            .post(
                &format!(
                    "/v1/me/notifications/{}/read",
                    it["id"].as_str().unwrap_or("")
                ),
                json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, page) = u
            .get(&format!("/v1/me/notifications?limit=3&cursor={cursor}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{page}");
        for it in page["items"].as_array().expect("items") {
            seen.push((
                it["read"].as_bool().unwrap_or(false),
                it["id"].as_str().unwrap_or("").to_string(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "every notice once: {seen:?}");
    let reads: Vec<bool> = seen.iter().map(|s| s.0).collect();
    assert_eq!(reads, vec![false, false, false, false, false, true, true]);
    let (_, unread) = u.get("/v1/me/notifications?unread=true").await;
    assert_eq!(unread["items"].as_array().map(Vec::len), Some(5));
    for bad in ["%%%", "bm90LWEtY3Vyc29y", "MTpub3QtYS11dWlk"] {
        let (st, _) = u.get(&format!("/v1/me/notifications?cursor={bad}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    }
}
both_databases!(the_inbox_lists_unread_first_and_pages);

async fn holders_resolve_recipients_by_role_and_scope(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "公安局", "GAJ").await;
    let p = project(&admin, &d, "天网").await;
    let d2 = department(&admin, "教育局", "JYJ").await;
    let boss = ts.new_user(&admin, "gaj.boss", Some(&d)).await;
    ts.grant(&admin, &boss, Role::DeptAdmin, Some(&d), None)
        .await;
    let staff = ts.new_user(&admin, "gaj.staff", Some(&d)).await;
    ts.grant(&admin, &staff, Role::DeptMember, Some(&d), None)
        .await;
    let dev = ts.new_user(&admin, "gaj.dev", Some(&d)).await;
    ts.grant(&admin, &dev, Role::DeptMember, Some(&d), Some(&p))
        .await;
    let other = ts.new_user(&admin, "jyj.boss", Some(&d2)).await;
    ts.grant(&admin, &other, Role::DeptAdmin, Some(&d2), None)
        .await;
    let sup = ts.new_user(&admin, "jianguan", None).await;
    ts.grant(&admin, &sup, Role::Supervisor, None, None).await;

    let dept = Scope::Department(d.parse().expect("d"));
    let proj = Scope::Project(d.parse().expect("d"), p.parse().expect("p"));
    let mut tx = ts.store().begin_write().await.expect("tx");
    let sorted = |mut v: Vec<UserId>| {
        v.sort();
        v
    };
    let admins = notify::holders(&mut tx, Role::DeptAdmin, dept)
        .await
        .expect("holders");
    assert_eq!(admins, vec![uid(&boss)]);
    let members = notify::holders(&mut tx, Role::DeptMember, dept)
        .await
        .expect("holders");
    assert_eq!(members, sorted(vec![uid(&staff), uid(&dev)]));
    let in_project = notify::holders(&mut tx, Role::DeptMember, proj)
        .await
        .expect("holders");
    assert_eq!(in_project, sorted(vec![uid(&staff), uid(&dev)]));
    let sups = notify::holders(&mut tx, Role::Supervisor, Scope::Platform)
        .await
        .expect("holders");
    assert_eq!(sups, vec![uid(&sup)]);
    let sups_here = notify::holders(&mut tx, Role::Supervisor, dept)
        .await
        .expect("holders");
    assert_eq!(
        sups_here,
        vec![uid(&sup)],
        "a platform grant holds everywhere"
    );
    tx.rollback().await.expect("rollback");
}
both_databases!(holders_resolve_recipients_by_role_and_scope);

// ---- E-mail through a real SMTP server ----

/// aiosmtpd on a loopback port, writing every mail into a Maildir.
struct SmtpServer {
    child: std::process::Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's python3 with python3-aiosmtpd (`cargo xtask test` installs it).
const PYTHON: &str = "/usr/bin/python3";

async fn smtp_server() -> Option<SmtpServer> {
    smtp_server_with(&[]).await
}

/// aiosmtpd with extra options (e.g. `--tlscert`/`--tlskey`: STARTTLS offered and required).
async fn smtp_server_with(extra: &[&str]) -> Option<SmtpServer> {
    let present = std::process::Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        if std::env::var("ZY_REQUIRE_SMTP").as_deref() == Ok("1") {
            panic!("python3-aiosmtpd is missing but the SMTP test is required");
        }
        eprintln!("skipping: python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd)");
        return None;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let maildir = temp_dir().join("maildir");
    let child = std::process::Command::new(PYTHON)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(extra)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("aiosmtpd starts");
    let s = SmtpServer {
        child,
        port,
        maildir,
    };
    eventually(20, "aiosmtpd to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    Some(s)
}

/// Every mail delivered so far: (headers, decoded body).
fn mails(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let raw = std::fs::read_to_string(e.path()).unwrap_or_default();
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let body = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        out.push((head.to_string(), body));
    }
    out
}

/// A header's value with its RFC 2047 words decoded (independently of the server's code).
fn header(head: &str, name: &str) -> Option<String> {
    let mut value = None::<String>;
    for line in head.lines() {
        if let Some(v) = value.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push_str(line);
                continue;
            }
            break;
        }
        if let Some(rest) = line.strip_prefix(&format!("{name}: ")) {
            value = Some(rest.to_string());
        }
    }
    let v = value?;
    let mut out = Vec::new();
    for w in v.split_whitespace() {
        match w
            .strip_prefix("=?UTF-8?B?")
            .and_then(|w| w.strip_suffix("?="))
        {
            Some(b) => out.extend(base64::engine::general_purpose::STANDARD.decode(b).ok()?),
            None => out.extend(w.as_bytes()),
        }
    }
    String::from_utf8(out).ok()
}

async fn mail_reaches_a_real_smtp_server_in_the_recipients_language(db: Db) {
    let Some(smtp) = smtp_server().await else {
        return;
    };
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let (st, b) = admin
        .put(
            "/v1/notify/mail",
            json!({ "enabled": true, "host": "127.0.0.1", "port": smtp.port, "from": "noreply@zwy.yibin.gov.cn", "security": "none", "password": "relay-secret-不可泄露" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["password_set"], true);
    assert!(
        !b.to_string().contains("relay-secret"),
        "the password is never returned"
    );
    // Credentials without AUTH offered by the relay are refused permanently: drop them.
    let (st, b) = admin
        .put(
            "/v1/notify/mail",
            json!({ "enabled": true, "host": "127.0.0.1", "port": smtp.port, "from": "noreply@zwy.yibin.gov.cn", "security": "none", "password": "" }),
        )
        .await;
    assert_eq!(
        (st, b["password_set"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{b}"
    );

    let mk = |name: &'static str, email: &'static str| {
        let admin = admin.clone();
        async move {
            let (st, b) = admin
                .post(
                    "/v1/users",
                    json!({ "username": name, "display_name": name, "email": email }),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{b}");
            b["user"]["id"]
                .as_str()
                .expect("id")
                .parse::<UserId>()
                .expect("uid")
        }
    };
    let zh = mk("zhang.san", "zhang.san@wjw.yibin.gov.cn").await;
    let en = mk("li.lei", "li.lei@wjw.yibin.gov.cn").await;
    let off = mk("han.meimei", "han.meimei@wjw.yibin.gov.cn").await;
    let no_mail = ts.new_user(&admin, "no.mail", None).await;
    // Preferences are one's own: set them through the store as each user would.
    for (u, body) in [
        (en, json!({ "language": "en" })),
        (off, json!({ "email_off": ["request_approved"] })),
    ] {
        let mut tx = ts.store().begin_write().await.expect("tx");
        let mut p = zy_store::notifications::get_prefs(&mut *tx, u)
            .await
            .expect("prefs");
        if let Some(l) = body["language"].as_str() {
            p.language = l.to_string();
        }
        if let Some(k) = body["email_off"].as_array() {
            p.email_off = k
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
        }
        assert!(zy_store::notifications::put_prefs(&mut tx, u, &p, None)
            .await
            .expect("put"));
        tx.commit().await.expect("commit");
    }
    enqueue(
        &ts,
        &notice(
            NoticeKind::RequestApproved,
            vec![zh, en, off, uid(&no_mail)],
            json!({ "request": "REQ-2026-0042", "title": "全民健康平台扩容", "approver": "王局长" }),
        ),
    )
    .await;
    let got = eventually(30, "two mails", || async {
        let m = mails(&smtp.maildir);
        (m.len() >= 2).then_some(m)
    })
    .await;
    assert_eq!(
        got.len(),
        2,
        "han.meimei turned the kind off; no.mail has no address"
    );
    let by_to = |addr: &str| {
        got.iter()
            .find(|(h, _)| header(h, "To").is_some_and(|t| t.contains(addr)))
            .cloned()
            .unwrap_or_else(|| panic!("no mail to {addr}: {got:?}"))
    };
    let (h, body) = by_to("zhang.san@wjw.yibin.gov.cn");
    assert_eq!(
        header(&h, "Subject").as_deref(),
        Some("申请已通过：全民健康平台扩容")
    );
    assert!(
        body.contains("王局长") && body.contains("/requests/REQ-1"),
        "{body}"
    );
    assert!(h.contains("charset=UTF-8"), "{h}");
    let (h, body) = by_to("li.lei@wjw.yibin.gov.cn");
    assert_eq!(
        header(&h, "Subject").as_deref(),
        Some("Request approved: 全民健康平台扩容")
    );
    assert!(body.contains("was approved by 王局长"), "{body}");

    // The delivery log says sent, for the platform admin only. The sender records a
    // delivery after the SMTP server took it, so the log may lag the mailbox a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let (st, log) = admin.get("/v1/notify/mail/deliveries").await;
        assert_eq!(st, StatusCode::OK, "{log}");
        let items = log["items"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{log}");
        if items
            .iter()
            .all(|d| d["state"] == "sent" && d["attempts"] == 1)
        {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all recorded as sent once: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !log.to_string().contains("body"),
        "the log does not carry the mail's text"
    );
    let (st, _) = no_mail.get("/v1/notify/mail/deliveries").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // The sealed password never reached the settings row in clear.
    let (row,): (String,) = sqlx::query_as("SELECT value FROM settings WHERE key = 'notify_mail'")
        .fetch_one(ts.store().pool())
        .await
        .expect("row");
    assert!(!row.contains("relay-secret"), "{row}");
}
both_databases!(mail_reaches_a_real_smtp_server_in_the_recipients_language);

/// The newest e-mail in the delivery log once it has been tried at least once.
async fn first_attempt_of_newest_mail(admin: &Session) -> Value {
    eventually(15, "a first attempt", || {
        let admin = admin.clone();
        async move {
            let (_, log) = admin.get("/v1/notify/mail/deliveries").await;
            let d = log["items"][0].clone();
            (d["attempts"].as_i64().unwrap_or(0) >= 1).then_some(d)
        }
    })
    .await
}

async fn mail_to_a_relay_that_is_down_is_retried_not_lost(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let (st, b) = admin
        .put("/v1/notify/mail", json!({ "enabled": true, "host": "127.0.0.1", "port": port, "from": "noreply@zwy.yibin.gov.cn", "security": "none" }))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = admin
        .post("/v1/users", json!({ "username": "zhou.qi", "display_name": "周七", "email": "zhou.qi@jyj.yibin.gov.cn" }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let u: UserId = b["user"]["id"].as_str().expect("id").parse().expect("uid");
    enqueue(
        &ts,
        &notice(
            NoticeKind::Purged,
            vec![u],
            json!({ "resource": "云硬盘", "name": "data-1" }),
        ),
    )
    .await;
    let row = first_attempt_of_newest_mail(&admin).await;
    assert_eq!(row["state"], "pending", "{row}");
    assert!(
        row["last_error"].as_str().unwrap_or("").contains("connect"),
        "{row}"
    );
    assert!(row["next_attempt_at"].is_string(), "{row}");
}
both_databases!(mail_to_a_relay_that_is_down_is_retried_not_lost);

/// A CA and a certificate for `localhost` signed by it: (CA PEM, cert PEM, key PEM).
fn internal_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

async fn mail_goes_over_starttls_to_a_relay_under_an_internal_ca(db: Db) {
    let (ca, cert, key) = internal_ca();
    let dir = temp_dir();
    let (cert_file, key_file) = (dir.join("relay.crt"), dir.join("relay.key"));
    std::fs::write(&cert_file, cert).expect("cert");
    std::fs::write(&key_file, key).expect("key");
    let tls = [
        "--tlscert",
        cert_file.to_str().expect("path"),
        "--tlskey",
        key_file.to_str().expect("path"),
    ];
    let Some(smtp) = smtp_server_with(&tls).await else {
        return;
    };
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let (st, b) = admin
        .post("/v1/users", json!({ "username": "wu.shi", "display_name": "吴十", "email": "wu.shi@zwb.yibin.gov.cn" }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let u: UserId = b["user"]["id"].as_str().expect("id").parse().expect("uid");
    let settings = |ca: Option<&str>| json!({ "enabled": true, "host": "127.0.0.1", "port": smtp.port, "from": "noreply@zwy.yibin.gov.cn", "security": "starttls", "ca_pem": ca });
    // Without the internal CA the relay's certificate is not trusted: nothing is sent.
    let (st, b) = admin.put("/v1/notify/mail", settings(None)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    enqueue(
        &ts,
        &notice(
            NoticeKind::Restored,
            vec![u],
            json!({ "resource": "云主机", "name": "gw-01" }),
        ),
    )
    .await;
    let row = first_attempt_of_newest_mail(&admin).await;
    assert!(
        row["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("TLS handshake"),
        "{row}"
    );
    assert!(mails(&smtp.maildir).is_empty());
    // Trusting it, the retry goes through over TLS.
    let (st, b) = admin.put("/v1/notify/mail", settings(Some(&ca))).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(
        b["ca_pem"]
            .as_str()
            .is_some_and(|p| p.contains("BEGIN CERTIFICATE")),
        "{b}"
    );
    let row = eventually(20, "the delivery to end", || {
        let admin = admin.clone();
        async move {
            let (_, log) = admin.get("/v1/notify/mail/deliveries").await;
            let d = log["items"][0].clone();
            (d["state"] != "pending" || d["attempts"].as_i64().unwrap_or(0) >= 3).then_some(d)
        }
    })
    .await;
    assert_eq!(row["state"], "sent", "{row}");
    let got = mails(&smtp.maildir);
    assert_eq!(
        header(&got[0].0, "Subject").as_deref(),
        Some("已恢复：gw-01")
    );
    let (st, _) = admin
        .put("/v1/notify/mail", settings(Some("not a certificate")))
        .await;
    assert!(st.is_client_error(), "{st}");
    let _ = std::fs::remove_dir_all(dir);
}
both_databases!(mail_goes_over_starttls_to_a_relay_under_an_internal_ca);

// ---- Webhooks ----

#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    /// Answer 500 to this many calls first.
    fail_first: Arc<Mutex<u32>>,
}

async fn receiver(fail_first: u32) -> (Receiver, u16, tokio::task::JoinHandle<()>) {
    let r = Receiver {
        fail_first: Arc::new(Mutex::new(fail_first)),
        ..Default::default()
    };
    let state = r.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Receiver>,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    s.calls.lock().expect("lock").push((headers, body));
                    let mut f = s.fail_first.lock().expect("lock");
                    if *f > 0 {
                        *f -= 1;
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (r, port, h)
}

/// What a receiver does: recompute the signature with the secret it was given.
fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &str) -> bool {
    use hmac::{Hmac, Mac};
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let ts = h("x-zhengyun-timestamp");
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("{ts}.{body}").as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    h("x-zhengyun-signature") == format!("sha256={want}")
}

async fn webhooks_are_signed_retried_after_a_500_and_logged(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let d = department(&admin, "宜宾市卫健委", "WJW").await;
    let d2 = department(&admin, "宜宾市教育局", "JYJ").await;
    let boss = ts.new_user(&admin, "wjw.boss", Some(&d)).await;
    ts.grant(&admin, &boss, Role::DeptAdmin, Some(&d), None)
        .await;
    let member = ts.new_user(&admin, "wjw.staff", Some(&d)).await;
    let outsider = ts.new_user(&admin, "jyj.staff", Some(&d2)).await;
    let (rx, port, _h) = receiver(1).await;
    let (st, created) = boss
        .post(
            "/v1/webhooks",
            json!({ "name": "卫健委 OA", "url": format!("http://127.0.0.1:{port}/hook"), "kinds": ["request_rejected"], "department_id": d }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("secret shown once")
        .to_string();
    let id = created["webhook"]["id"].as_str().expect("id").to_string();
    let (_, list) = boss.get("/v1/webhooks").await;
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown only once"
    );
    // Another department's admin cannot create one for this department.
    let (st, _) = member
        .post(
            "/v1/webhooks",
            json!({ "name": "x", "url": "http://127.0.0.1:9/x", "department_id": d }),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A kind it does not want, and a notice for another department: nothing sent.
    enqueue(
        &ts,
        &notice(NoticeKind::RequestApproved, vec![uid(&member)], json!({})),
    )
    .await;
    enqueue(
        &ts,
        &notice(NoticeKind::RequestRejected, vec![uid(&outsider)], json!({})),
    )
    .await;
    // The one it wants.
    enqueue(
        &ts,
        &notice(NoticeKind::RequestRejected, vec![uid(&member)], json!({ "request": "REQ-7", "title": "数据库扩容", "approver": "监管", "reason": "预算不足" })),
    )
    .await;
    let calls = eventually(20, "a retried call", || {
        let rx = rx.clone();
        async move {
            let c = rx.calls.lock().expect("lock").clone();
            (c.len() >= 2).then_some(c)
        }
    })
    .await;
    assert_eq!(calls.len(), 2, "one failure, one success, nothing else");
    for (headers, body) in &calls {
        assert!(
            verify(&secret, headers, body),
            "signature checks with the secret"
        );
        assert!(!verify("zwh_wrong", headers, body));
        assert_eq!(headers["x-zhengyun-event"], "request_rejected");
        let v: Value = serde_json::from_str(body).expect("json body");
        assert_eq!(v["kind"], "request_rejected");
        assert_eq!(v["zh"]["subject"], "申请未通过：数据库扩容");
        assert_eq!(v["en"]["subject"], "Request rejected: 数据库扩容");
        assert_eq!(v["params"]["reason"], "预算不足");
    }
    assert_eq!(
        calls[0].0["x-zhengyun-delivery"], calls[1].0["x-zhengyun-delivery"],
        "a retry carries the same delivery id"
    );
    let log = eventually(10, "the log to say sent", || {
        let boss = boss.clone();
        let id = id.clone();
        async move {
            let (_, log) = boss.get(&format!("/v1/webhooks/{id}/deliveries")).await;
            (log["items"][0]["state"] == "sent").then_some(log)
        }
    })
    .await;
    let d0 = &log["items"][0];
    assert_eq!(
        (d0["attempts"].as_i64(), d0["last_status"].as_i64()),
        (Some(2), Some(204)),
        "{log}"
    );
    assert_eq!(log["items"].as_array().map(Vec::len), Some(1), "{log}");
    let (st, _) = member.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "the log is for the subscription's owners"
    );
}
both_databases!(webhooks_are_signed_retried_after_a_500_and_logged);

async fn deliveries_queued_while_down_are_sent_after_a_restart(db: Db) {
    let mut ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let u = ts.new_user(&admin, "sun.ba", None).await;
    let (rx, port, _h) = receiver(0).await;
    let (st, b) = admin
        .post(
            "/v1/webhooks",
            json!({ "name": "全平台", "url": format!("http://127.0.0.1:{port}/hook") }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    ts.stop().await;
    // Written while no server runs, as a crash right after the commit would leave it.
    let store = zy_store::Store::open(&ts.config.database_url(), ts.config.pg_schema.as_deref(), 2)
        .await
        .expect("store");
    let mut tx = store.begin_write().await.expect("tx");
    notify::enqueue(
        &mut tx,
        &notice(
            NoticeKind::LeaseExpired,
            vec![uid(&u)],
            json!({ "resource": "云主机", "name": "web-01" }),
        ),
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    // A claim left behind by a replica that died mid-send.
    sqlx::query(
        "UPDATE notification_deliveries SET lease_owner = 'dead', lease_until = 9000000000000000",
    )
    .execute(store.pool())
    .await
    .expect("claim");
    store.close().await;
    assert!(rx.calls.lock().expect("lock").is_empty());
    ts.restart().await;
    if matches!(ts.db, Db::Postgres(_)) {
        // PostgreSQL replicas wait for a dead claim to run out; expire it for the test.
        sql(&ts, "UPDATE notification_deliveries SET lease_until = 0").await;
    }
    eventually(20, "the queued call", || {
        let rx = rx.clone();
        async move { (!rx.calls.lock().expect("lock").is_empty()).then_some(()) }
    })
    .await;
    assert_eq!(rx.calls.lock().expect("lock").len(), 1);
}
both_databases!(deliveries_queued_while_down_are_sent_after_a_restart);

async fn bad_inputs_get_clear_4xx(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let u = ts.new_user(&admin, "qian.jiu", None).await;
    for body in [
        json!({ "name": "x", "url": "ftp://example.gov.cn/x" }),
        json!({ "name": "x", "url": "javascript:alert(1)" }),
        json!({ "name": "", "url": "http://127.0.0.1/x" }),
        json!({ "name": "x", "url": "http://127.0.0.1/x", "kinds": ["no_such_kind"] }),
        json!({ "name": "x", "url": "http://127.0.0.1/x", "secret": "mine" }),
    ] {
        let (st, b) = admin.post("/v1/webhooks", body.clone()).await;
        assert!(
            st.is_client_error() && st != StatusCode::FORBIDDEN,
            "{body}: {st} {b}"
        );
    }
    for body in [
        json!({ "enabled": true, "host": "a b", "port": 25, "from": "x@y.cn", "security": "none" }),
        json!({ "enabled": true, "host": "smtp.x.cn", "port": 0, "from": "x@y.cn", "security": "none" }),
        json!({ "enabled": true, "host": "smtp.x.cn", "port": 70000, "from": "x@y.cn", "security": "none" }),
        json!({ "enabled": true, "host": "smtp.x.cn", "port": 25, "from": "x@y.cn>\r\nRCPT TO:<z@z.cn", "security": "none" }),
        json!({ "enabled": true, "host": "smtp.x.cn", "port": 25, "from": "x@y.cn", "security": "ssl" }),
    ] {
        let (st, b) = admin.put("/v1/notify/mail", body.clone()).await;
        assert!(
            st == StatusCode::BAD_REQUEST || st == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {st} {b}"
        );
    }
    for body in [
        json!({ "language": "fr" }),
        json!({ "email_off": ["nope"] }),
        json!({ "generation": 99 }),
    ] {
        let (st, b) = u.put("/v1/me/notification-preferences", body.clone()).await;
        assert!(
            [
                StatusCode::BAD_REQUEST,
                StatusCode::UNPROCESSABLE_ENTITY,
                StatusCode::CONFLICT
            ]
            .contains(&st),
            "{body}: {st} {b}"
        );
    }
    let (st, p) = u
        .put(
            "/v1/me/notification-preferences",
            json!({ "language": "en", "email_off": ["purged", "purged"], "generation": 0 }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(
        (p["email_off"].clone(), p["generation"].as_i64()),
        (json!(["purged"]), Some(1))
    );
    let (st, _) = u
        .put(
            "/v1/me/notification-preferences",
            json!({ "language": "zh-CN", "generation": 0 }),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "a stale generation is refused");
    let (st, _) = u
        .post("/v1/me/notifications/not-a-uuid/read", json!({}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}
both_databases!(bad_inputs_get_clear_4xx);
