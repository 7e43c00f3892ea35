//! Syslog intake throughput (docs/BENCHMARKS.md): the real server in-process with the
//! receiver on 127.0.0.1 and an address plan of 50 blocks, then
//!
//! 1. TCP: N lines (a mix of key=value, Chinese key:value, CEF and LEEF) over two
//!    connections as fast as they go; the time until every line is written as an event
//!    (TCP is flow-controlled, so nothing may be dropped);
//! 2. UDP: M lines paced at R lines/s; sent, received, written and dropped (queue full).
//!
//! `cargo run --release -p zy-server --example syslog_bench -- [N] [M] [R] [postgres://…]`

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use zy_model::id::DepartmentId;
use zy_model::secev::AddressBlock;
use zy_model::tenancy::Department;
use zy_model::time::Timestamp;

fn line(i: usize) -> String {
    let dst = format!("10.{}.{}.{}", 20 + i % 50, (i / 7) % 256, i % 250 + 1);
    let src = format!("203.0.113.{}", i % 250 + 1);
    match i % 4 {
        0 => format!("<36>1 - fw-core-01 USG - POLICY - vsys=public, protocol=6, source-ip={src}, source-port={}, destination-ip={dst}, destination-port=3389, policy-name=deny-rdp, action=deny", 1024 + i % 60000),
        1 => format!("<131>Dec  1 10:16:02 waf-gw-02 WAF: 日志类型:WAF应用防护日志, 源IP:{src}, 源端口:40022, 目的IP:{dst}, 目的端口:443, 攻击类型:SQL注入, 严重级别:高, 动作:拒绝"),
        2 => format!("<134>Dec  1 12:00:00 ids01 CEF:0|Acme|Sentinel IPS|5.1|4012|Exploit attempt|8|src={src} dst={dst} spt=1025 dpt=80 proto=TCP act=blocked cat=/Intrusion/Exploit"),
        _ => format!("<13>1 - av01 - - - - LEEF:1.0|Acme|AV Gateway|2.0|VirusFound|src={dst}\tdst={src}\tsev=9\tcat=Trojan"),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let m: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rate: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let pg = args.next();
    let dir =
        std::env::temp_dir().join(format!("zy-syslog-bench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let config = zy_server::Config {
        listen: "127.0.0.1:0".parse()?,
        database_url: pg.clone(),
        pg_schema: pg
            .as_ref()
            .map(|_| format!("zb_{}", uuid::Uuid::now_v7().simple())),
        data_dir: dir.clone(),
        syslog_udp: Some("127.0.0.1:0".parse()?),
        syslog_tcp: Some("127.0.0.1:0".parse()?),
        ..Default::default()
    };
    let server = zy_server::start(config).await?;
    let store = server.state.store.clone();
    let stats = server.state.syslog.clone();
    let now = Timestamp::now();
    let mut tx = store.begin_write().await?;
    let d = Department {
        id: DepartmentId::new(),
        name: "宜宾市卫健委".into(),
        code: "WJW".into(),
        description: String::new(),
        requests_only: false,
        created_at: now,
        updated_at: now,
        generation: 1,
    };
    zy_store::departments::insert(&mut tx, &d).await?;
    for b in 0..50 {
        zy_store::secev::insert_block(
            &mut tx,
            &AddressBlock {
                id: uuid::Uuid::now_v7(),
                cidr: format!("10.{}.0.0/16", 20 + b),
                department_id: d.id,
                department_name: d.name.clone(),
                provider_id: None,
                description: String::new(),
                created_at: now,
            },
        )
        .await?;
    }
    tx.commit().await?;
    let tcp = stats.tcp_addr().ok_or("no tcp")?;
    let udp = stats.udp_addr().ok_or("no udp")?;

    // 1. TCP, as fast as it goes.
    let started = Instant::now();
    let mut senders = Vec::new();
    for c in 0..2 {
        senders.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(tcp).await.expect("connect");
            let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, s);
            for i in (c..n).step_by(2) {
                let mut l = line(i);
                l.push('\n');
                w.write_all(l.as_bytes()).await.expect("write");
            }
            w.flush().await.expect("flush");
        }));
    }
    for s in senders {
        s.await?;
    }
    let sent_after = started.elapsed();
    let mut peak = 0;
    while stats.written.load(Relaxed) < n as u64 {
        peak = peak.max(stats.queued.load(Relaxed));
        if started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let s = stats.status();
    println!(
        "TCP: {n} lines sent in {:.2} s, all written after {:.2} s: {:.0} events/s; written {}, dropped {}, batches {}, peak queue {peak}",
        sent_after.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        s.written,
        s.dropped,
        s.batches
    );

    // 2. UDP, paced.
    let base_written = s.written;
    let base_received = s.received;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let started = Instant::now();
    let per_ms = (rate / 1000).max(1);
    let mut i = 0;
    while i < m {
        for _ in 0..per_ms {
            if i >= m {
                break;
            }
            sock.send_to(line(i).as_bytes(), udp).await?;
            i += 1;
        }
        let due = Duration::from_micros((i as u64 * 1_000_000) / rate as u64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let sent_after = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = stats.status();
        if s.written + s.dropped >= s.received && s.queued == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let s = stats.status();
    println!(
        "UDP: {m} lines sent at {:.0}/s in {:.2} s; received {}, written {} ({:.0} events/s until the last was written), dropped (queue full) {}",
        m as f64 / sent_after.as_secs_f64(),
        sent_after.as_secs_f64(),
        s.received - base_received,
        s.written - base_written,
        (s.written - base_written) as f64 / took.as_secs_f64(),
        s.dropped
    );

    // 3. Nothing lost: the rows in the database and their day counts are exactly the lines
    // sent over TCP plus those the receiver read over UDP minus those it dropped (queue
    // full). Lines the kernel dropped before the receiver read them are reported apart.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM security_events")
        .fetch_one(store.pool())
        .await?;
    let counted: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(events), 0) AS BIGINT) FROM security_event_counts",
    )
    .fetch_one(store.pool())
    .await?;
    let udp_received = s.received - base_received;
    let expected = n as u64 + udp_received - s.dropped;
    let ok = rows as u64 == expected
        && counted as u64 == expected
        && s.lost_on_error == 0
        && s.written == expected;
    println!(
        "check: {rows} events stored, day counts sum {counted}; expected {n} (TCP) + {udp_received} (UDP received) - {} (dropped) = {expected}; UDP lost before the receiver (kernel socket buffer) {}; lost on write errors {}: {}",
        s.dropped,
        m as u64 - udp_received,
        s.lost_on_error,
        if ok { "OK" } else { "MISMATCH" }
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if !ok {
        return Err("stored events do not match the lines sent".into());
    }
    Ok(())
}
