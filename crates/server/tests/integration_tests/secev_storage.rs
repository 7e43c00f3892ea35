//! Security events as stored, on both databases: what arrives over the network is kept
//! byte for byte whatever it holds (tabs, backslashes, newlines, quotes, Chinese, NUL),
//! every column of a written batch reads back as written — on PostgreSQL the batch goes in
//! by `COPY … FROM STDIN`, whose text format escapes exactly these — and the day counts
//! always add up to the events.

use crate::both_databases;
use crate::common::*;
use crate::secev::{addrs, syslog_server};
use std::time::{Duration, Instant};
use zy_model::id::{DepartmentId, InstanceId, ProviderId};
use zy_model::secev::{Category, EventAction, EventFormat, EventSource, Severity};
use zy_model::syslog::MAX_MESSAGE_CHARS;
use zy_store::secev::{EventFilter, NewEvent};

/// Every category's count in the day counts equals its events' count.
async fn assert_counts_match_events(store: &zy_store::Store, events: i64) {
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT category, CAST(SUM(events) AS BIGINT) FROM security_event_counts GROUP BY category ORDER BY category",
    )
    .fetch_all(store.pool())
    .await
    .expect("counts");
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "SELECT category, CAST(SUM(count) AS BIGINT) FROM security_events GROUP BY category ORDER BY category",
    )
    .fetch_all(store.pool())
    .await
    .expect("events");
    assert_eq!(counted, stored, "the day counts agree with the events");
    assert_eq!(
        counted.iter().map(|(_, n)| n).sum::<i64>(),
        events,
        "{counted:?}"
    );
}

/// Lines holding what COPY's text format and SQL quoting must escape — tabs, backslashes
/// (`\N`, `\.`, `\t` as text), a newline and a carriage return inside an octet-counted
/// frame, quotes, Chinese, a NUL, a line at the parser's length limit — are stored exactly
/// as sent (a NUL, which PostgreSQL cannot store, as U+FFFD), and counted.
async fn awkward_lines_are_stored_byte_for_byte_and_counted(db: Db) {
    use tokio::io::AsyncWriteExt;
    let ts = syslog_server(db, 65_536).await;
    let (_, tcp) = addrs(&ts);
    let head = "<134>1 - fw01 - - - -";
    let mut long = format!("{head} ");
    while long.chars().count() < MAX_MESSAGE_CHARS {
        long.push_str(["长", "\t", "\\", "\n", "'", "\\N"][long.len() % 6]);
    }
    // Exactly the longest message kept, ending in a character the parser does not trim.
    let mut long: String = long.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    long.push('末');
    let lines: Vec<String> = vec![
        format!("{head} tab\there\tand\tthere src=192.0.2.1 dst=10.20.0.1 action=deny"),
        format!(r"{head} back\slash \N \. \\ \t \n C:\Windows\System32 ends\"),
        format!("{head} line one\nline two\r\nline three\rfour"),
        format!(r#"{head} quotes ' '' " "" $1 ? ; DROP TABLE security_events; --"#),
        format!("<131>1 - waf-gw-02 - - - - 日志类型:WAF应用防护日志, 源IP:198.51.100.7, 目的IP:10.20.1.16, 攻击类型:SQL注入, 内容:'union select 1'\t动作:拒绝 😀"),
        "\\.".to_string(),
        "\\N".to_string(),
        format!("{head} nul\0inside"),
        long,
    ];
    let mut stream = tokio::net::TcpStream::connect(tcp).await.expect("tcp");
    for l in &lines {
        // Octet counting (RFC 6587): the frame may hold newlines.
        let frame = format!("{} {l}", l.len());
        stream.write_all(frame.as_bytes()).await.expect("write");
    }
    stream.shutdown().await.expect("shutdown");
    let n = lines.len() as u64;
    let stats = || ts.server.as_ref().expect("running").state.syslog.status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats().written < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = stats();
    assert_eq!((s.received, s.written, s.dropped), (n, n, 0), "{s:?}");

    let mut stored: Vec<String> = sqlx::query_scalar("SELECT message FROM security_events")
        .fetch_all(ts.store().pool())
        .await
        .expect("messages");
    let mut want: Vec<String> = lines.iter().map(|l| l.replace('\0', "\u{fffd}")).collect();
    stored.sort();
    want.sort();
    assert_eq!(stored.len(), want.len());
    for (s, w) in stored.iter().zip(&want) {
        assert_eq!(s, w, "stored byte for byte");
    }
    assert_counts_match_events(ts.store(), n as i64).await;
}
both_databases!(awkward_lines_are_stored_byte_for_byte_and_counted);

/// A batch written the way the intake writes on each database — on PostgreSQL
/// `copy_events` (COPY, in pieces: the batch is larger than one), on SQLite
/// `insert_events` — reads back column for column, NULLs, ids and awkward text included,
/// and its day counts agree with the events.
async fn a_written_batch_reads_back_column_for_column(db: Db) {
    let pg = matches!(db, Db::Postgres(_));
    let ts = TestServer::start(db).await;
    let store = ts.store();
    let (d, p, i) = (DepartmentId::new(), ProviderId::new(), InstanceId::new());
    let awkward = "\t\\N\\.\n\r'\"，中文\\";
    let now = zy_model::time::Timestamp::now().0;
    let events: Vec<NewEvent> = (0..600i64)
        .map(|k| {
            let some = k % 2 == 0;
            NewEvent {
                // Spread over three days, so the counts have several rows.
                at: now - (k % 3) * 86_400_000_000 - k,
                received_at: now + k,
                source: if some {
                    EventSource::Syslog
                } else {
                    EventSource::SecurityGroup
                },
                appliance: format!("fw\\{k}\t{awkward}"),
                format: [EventFormat::Kv, EventFormat::Cef, EventFormat::Leef][k as usize % 3],
                category: Category::ALL[k as usize % Category::ALL.len()],
                severity: Severity::ALL[k as usize % Severity::ALL.len()],
                action: EventAction::ALL[k as usize % EventAction::ALL.len()],
                src_ip: some.then(|| format!("192.0.2.{}", k % 250)),
                src_port: some.then_some(u16::MAX - k as u16),
                dst_ip: (!some).then(|| "2001:db8::1".to_string()),
                dst_port: (k % 3 == 0).then_some(0),
                protocol: some.then(|| format!("tcp{awkward}")),
                rule: (k % 3 != 0).then(|| format!("规则 {k} {awkward}")),
                count: 1 + k % 4,
                department_id: (k % 4 != 0).then_some(d),
                provider_id: (k % 5 != 0).then_some(p),
                instance_id: (k % 7 == 0).then_some(i),
                // About 2 KiB each: 1.2 MiB in all, more than one COPY piece.
                message: format!("{k}: {}", awkward.repeat(120)),
            }
        })
        .collect();
    if pg {
        zy_store::secev::copy_events(store, &events)
            .await
            .expect("copy");
    } else {
        let mut tx = store.begin_write().await.expect("begin");
        zy_store::secev::insert_events(&mut tx, &events)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
    }
    let mut stored = zy_store::secev::search(store, &EventFilter::default(), None, 1_000)
        .await
        .expect("search");
    stored.reverse();
    assert_eq!(stored.len(), events.len());
    for (k, (s, e)) in stored.iter().zip(&events).enumerate() {
        assert_eq!(
            (s.at.0, s.received_at.0, s.source, &s.appliance, s.format),
            (e.at, e.received_at, e.source, &e.appliance, e.format),
            "event {k}"
        );
        assert_eq!(
            (s.category, s.severity, s.action, s.count),
            (e.category, e.severity, e.action, e.count),
            "event {k}"
        );
        assert_eq!(
            (&s.src_ip, s.src_port, &s.dst_ip, s.dst_port),
            (&e.src_ip, e.src_port, &e.dst_ip, e.dst_port),
            "event {k}"
        );
        assert_eq!(
            (&s.protocol, &s.rule, &s.message),
            (&e.protocol, &e.rule, &e.message),
            "event {k}"
        );
        assert_eq!(
            (s.department_id, s.provider_id, s.instance_id),
            (e.department_id, e.provider_id, e.instance_id),
            "event {k}"
        );
    }
    let total: i64 = events.iter().map(|e| e.count).sum();
    assert_counts_match_events(store, total).await;
    // A second batch on the same days adds to the same count rows.
    if pg {
        zy_store::secev::copy_events(store, &events[..30])
            .await
            .expect("copy again");
    } else {
        let mut tx = store.begin_write().await.expect("begin");
        zy_store::secev::insert_events(&mut tx, &events[..30])
            .await
            .expect("insert again");
        tx.commit().await.expect("commit");
    }
    let again: i64 = events[..30].iter().map(|e| e.count).sum();
    assert_counts_match_events(store, total + again).await;
}
both_databases!(a_written_batch_reads_back_column_for_column);
