//! Notification throughput, on the real server with the demo data (docs/BENCHMARKS.md):
//!
//! 1. `enqueue`: N notices, each to every demo account, each in its own write transaction
//!    as a capability would send it (inbox rows + one webhook outbox row), latency per
//!    notice;
//! 2. delivery: the time until a loopback webhook receiver got all N signed calls;
//! 3. the inbox: `GET /v1/me/notifications` (first page of 50, unread first) for an account
//!    with N notices.
//!
//! `cargo run --release -p zy-server --example notify_bench -- [N] [postgres://…]`

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zy_model::id::{UserId, WebhookId};
use zy_model::time::Timestamp;
use zy_server::notify::{enqueue, Notice, NoticeKind};
use zy_store::notifications::{insert_webhook, WebhookRow};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let pg = args.next();
    let dir =
        std::env::temp_dir().join(format!("zy-notify-bench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let config = zy_server::Config {
        listen: "127.0.0.1:0".parse()?,
        database_url: pg.clone(),
        pg_schema: pg
            .as_ref()
            .map(|_| format!("zb_{}", uuid::Uuid::now_v7().simple())),
        data_dir: dir.clone(),
        demo: true,
        secure_cookies: false,
        max_connections: 16,
        lease_secs: 10,
        secret_key_file: None,
        request_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let server = zy_server::start(config).await?;
    let store = server.state.store.clone();

    // The receiver: counts calls, answers 204.
    let got = Arc::new(AtomicUsize::new(0));
    let counter = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let now = Timestamp::now();
    let mut tx = store.begin_write().await?;
    insert_webhook(
        &mut tx,
        &WebhookRow {
            id: WebhookId::new(),
            name: "bench".into(),
            url: format!("http://127.0.0.1:{port}/hook"),
            kinds: vec![],
            department_id: None,
            secret: server.state.sealer.seal("bench-secret")?,
            enabled: true,
            created_at: now,
            created_by: None,
            updated_at: now,
            generation: 1,
        },
    )
    .await?;
    tx.commit().await?;

    let users: Vec<(String, String)> = sqlx::query_as("SELECT id, username FROM users")
        .fetch_all(store.pool())
        .await?;
    let to: Vec<UserId> = users.iter().filter_map(|(id, _)| id.parse().ok()).collect();
    let backend = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    println!(
        "{backend}: {n} notices to {} accounts each, one transaction per notice",
        to.len()
    );

    let start = Instant::now();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let mut tx = store.begin_write().await?;
        enqueue(
            &mut tx,
            &Notice {
                kind: NoticeKind::LeaseEnding,
                to: to.clone(),
                params: json!({ "resource": "云主机", "name": format!("vm-{i}"), "days": 3, "expires_at": "2026-12-03" }),
                link: Some(format!("/portal/instances/{i}")),
                subject: None,
            },
        )
        .await?;
        tx.commit().await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let enq = start.elapsed();
    println!(
        "enqueue: {:.0} notices/s ({:.0} inbox rows/s); per notice p50 {:.2} ms, p99 {:.2} ms",
        n as f64 / enq.as_secs_f64(),
        (n * to.len()) as f64 / enq.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );

    let deadline = Instant::now() + Duration::from_secs(600);
    while got.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = start.elapsed();
    println!(
        "webhook delivery: {} of {n} calls received {:.2} s after the first enqueue ({:.0} calls/s overall)",
        got.load(Ordering::SeqCst),
        all.as_secs_f64(),
        got.load(Ordering::SeqCst) as f64 / all.as_secs_f64()
    );

    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let login: serde_json::Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "username": "wjw.user", "password": zy_server::demo::DEMO_PASSWORD, "bearer": true }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["session_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/v1/me/notifications?limit=50"))
            .bearer_auth(&token)
            .send()
            .await?;
        let _ = r.bytes().await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "inbox first page (50 of {}+ notices): p50 {:.2} ms, p99 {:.2} ms over 200 requests",
        n,
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
