//! Supervision benchmark (run outside CI): a province — 5 providers, 10,000 hosts, 100,000
//! instances, 100 departments, 30 days of hourly metrics per provider and department —
//! seeded straight into a fresh database (synthetic rows, labelled by their names), then
//! the supervision task's materialisation is timed once and every read the dashboard and
//! the console pages make is timed `RUNS` times (p50 / p99 / max): the providers side by
//! side and departments ranked (from the snapshots), one provider's and one department's
//! indicators computed live, a trend (snapshot history), and the open idle findings.
//!
//! Run: `cargo run --release -p zy-server --example supervision_bench` (SQLite in a
//! temporary file) or with `DATABASE_URL=postgres://…` (a fresh schema). `INSTANCES=`,
//! `HOSTS=`, `DEPARTMENTS=`, `RUNS=` change the size.

use std::time::Instant;
use zy_model::metrics::{Block, Resolution, RollupAcc, Series};
use zy_model::supervision::IndicatorScope;
use zy_server::app::supervision::{self as sup, Period};
use zy_store::metrics::BlockRow;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn id(kind: u128, n: usize) -> String {
    uuid::Uuid::from_u128(kind << 96 | n as u128).to_string()
}

/// Inserts rows of `cols` columns, 500 rows per statement, in one transaction per 20,000.
async fn insert(
    store: &zy_store::Store,
    table: &str,
    cols: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<(), Box<dyn std::error::Error>> {
    for tx_rows in rows.chunks(20_000) {
        let mut tx = store.begin_write().await?;
        for chunk in tx_rows.chunks(500) {
            let mut text = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push('(');
                text.push_str(&r.join(", "));
                text.push(')');
            }
            sqlx::query(&text).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

fn q(s: &str) -> String {
    format!("'{s}'")
}

fn history(scope: &'static str, entity: &str, level: f64, now: i64) -> Vec<BlockRow> {
    let today = Resolution::Hour.block_start(now);
    (1..=30)
        .map(|d| {
            let start = today - d * 86_400;
            let mut b = Block::new(Resolution::Hour.columns());
            for h in 0..24 {
                let t = start + h * 3600;
                let mut acc = RollupAcc::new(t);
                let v: Vec<Option<i64>> = Series::ALL
                    .iter()
                    .map(|s| match s {
                        Series::Cpu => zy_model::metrics::fixed(level + (h % 8) as f64),
                        Series::Mem => zy_model::metrics::fixed(level + 20.0),
                        _ => None,
                    })
                    .collect();
                for _ in 0..60 {
                    acc.add_raw(&v);
                }
                b.push(t, &acc.columns());
            }
            BlockRow {
                scope,
                entity: entity.to_string(),
                res: Resolution::Hour,
                block_start: start,
                data: b.encode(),
            }
        })
        .collect()
}

async fn time<F, Fut, T>(
    name: &str,
    runs: usize,
    mut f: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, zy_model::Error>>,
{
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await.map_err(|e| format!("{name}: {e:?}"))?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| ms[((p / 100.0 * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{name:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        at(50.0),
        at(99.0),
        ms[ms.len() - 1]
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let instances = env("INSTANCES", 100_000);
    let hosts = env("HOSTS", 10_000);
    let departments = env("DEPARTMENTS", 100);
    let providers = 5;
    let runs = env("RUNS", 200);
    let dir = std::env::temp_dir().join(format!("zy-sup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (url, schema) = match std::env::var("DATABASE_URL") {
        Ok(u) => (u, Some(format!("zy_sup_{}", std::process::id()))),
        Err(_) => (format!("sqlite://{}", dir.join("bench.db").display()), None),
    };
    let store = zy_store::Store::open(&url, schema.as_deref(), 4).await?;
    let now_us = zy_model::time::Timestamp::now().0;
    let now = now_us / 1_000_000;
    let seeded = Instant::now();
    let ts = now_us.to_string();

    insert(
        &store,
        "providers",
        &["id", "name", "kind", "created_at"],
        (0..providers)
            .map(|p| {
                vec![
                    q(&id(1, p)),
                    q(&format!("bench-provider-{p}")),
                    q("sim"),
                    ts.clone(),
                ]
            })
            .collect(),
    )
    .await?;
    insert(
        &store,
        "zones",
        &["id", "provider_id", "region", "name", "created_at"],
        (0..providers)
            .map(|p| {
                vec![
                    q(&id(2, p)),
                    q(&id(1, p)),
                    q("bench"),
                    q("zone"),
                    ts.clone(),
                ]
            })
            .collect(),
    )
    .await?;
    let per_host = instances.div_ceil(hosts).max(1);
    insert(
        &store,
        "hosts",
        &[
            "id",
            "zone_id",
            "provider_id",
            "name",
            "slot",
            "vcpus",
            "memory_mib",
            "disk_gib",
            "cpu_ratio_permille",
            "mem_ratio_permille",
            "used_vcpus",
            "used_memory_mib",
            "created_at",
        ],
        (0..hosts)
            .map(|h| {
                let p = h % providers;
                vec![
                    q(&id(3, h)),
                    q(&id(2, p)),
                    q(&id(1, p)),
                    q(&format!("bench-host-{h}")),
                    h.to_string(),
                    "64".into(),
                    "262144".into(),
                    "4000".into(),
                    "4000".into(),
                    "1000".into(),
                    (per_host * 2).to_string(),
                    (per_host * 4096).to_string(),
                    ts.clone(),
                ]
            })
            .collect(),
    )
    .await?;
    insert(
        &store,
        "departments",
        &["id", "name", "code", "created_at", "updated_at"],
        (0..departments)
            .map(|d| {
                vec![
                    q(&id(4, d)),
                    q(&format!("bench-department-{d}")),
                    q(&format!("B{d}")),
                    ts.clone(),
                    ts.clone(),
                ]
            })
            .collect(),
    )
    .await?;
    insert(
        &store,
        "projects",
        &["id", "department_id", "name", "created_at", "updated_at"],
        (0..departments)
            .map(|d| {
                vec![
                    q(&id(5, d)),
                    q(&id(4, d)),
                    q("bench-project"),
                    ts.clone(),
                    ts.clone(),
                ]
            })
            .collect(),
    )
    .await?;
    insert(
        &store,
        "quotas",
        &[
            "scope_type",
            "scope_id",
            "max_instances",
            "max_vcpus",
            "max_memory_mib",
            "max_disk_gib",
            "max_volumes",
            "used_instances",
            "used_vcpus",
            "used_memory_mib",
        ],
        (0..departments)
            .map(|d| {
                let n = instances / departments;
                vec![
                    q("department"),
                    q(&id(4, d)),
                    "100000".into(),
                    "1000000".into(),
                    "1000000000".into(),
                    "100000000".into(),
                    "1000".into(),
                    n.to_string(),
                    (n * 2).to_string(),
                    (n * 4096).to_string(),
                ]
            })
            .collect(),
    )
    .await?;
    insert(
        &store,
        "instances",
        &[
            "id",
            "project_id",
            "department_id",
            "name",
            "flavor_id",
            "flavor_name",
            "image_id",
            "image_name",
            "vcpus",
            "memory_mib",
            "disk_gib",
            "gpus",
            "zone_id",
            "provider_id",
            "host_id",
            "state",
            "desired",
            "work",
            "created_at",
            "updated_at",
        ],
        (0..instances)
            .map(|i| {
                let (d, h) = (i % departments, i / per_host);
                let p = h % providers;
                let state = if i % 10 == 0 { "stopped" } else { "running" };
                vec![
                    q(&id(6, i)),
                    q(&id(5, d)),
                    q(&id(4, d)),
                    q(&format!("bench-vm-{i}")),
                    q(&id(7, 0)),
                    q("2C4G"),
                    q(&id(8, 0)),
                    q("bench"),
                    "2".into(),
                    "4096".into(),
                    "40".into(),
                    "0".into(),
                    q(&id(2, p)),
                    q(&id(1, p)),
                    q(&id(3, h)),
                    q(state),
                    q(state),
                    "0".into(),
                    ts.clone(),
                    ts.clone(),
                ]
            })
            .collect(),
    )
    .await?;
    let mut rows = Vec::new();
    for p in 0..providers {
        rows.extend(history("provider", &id(1, p), 30.0 + p as f64 * 5.0, now));
    }
    for d in 0..departments {
        rows.extend(history(
            "department",
            &id(4, d),
            10.0 + (d % 40) as f64,
            now,
        ));
    }
    zy_store::metrics::write_blocks(&store, &rows).await?;
    println!(
        "seeded {providers} providers, {hosts} hosts, {instances} instances, {departments} departments, {} metric blocks in {:.1} s",
        rows.len(),
        seeded.elapsed().as_secs_f64()
    );

    let p = Period::parse(&store, None).await?;
    let t = Instant::now();
    let n = sup::materialise(&store, &p).await?;
    println!(
        "materialise (the supervision task's pass): {n} sets in {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let one_dept = id(4, 7);
    let one_prov = id(1, 2);
    time("providers side by side (snapshots)", runs, || {
        sup::all_sets(&store, IndicatorScope::Provider, &p)
    })
    .await?;
    time("departments ranked by spend (snapshots)", runs, || async {
        let mut v = sup::all_sets(&store, IndicatorScope::Department, &p).await?;
        sup::rank(&mut v, "spend");
        Ok(v)
    })
    .await?;
    time("one department's indicators, live", runs, || {
        sup::compute(
            &store,
            IndicatorScope::Department,
            Some(one_dept.as_str()),
            &p,
        )
    })
    .await?;
    time("one provider's indicators, live", runs, || {
        sup::compute(
            &store,
            IndicatorScope::Provider,
            Some(one_prov.as_str()),
            &p,
        )
    })
    .await?;
    time("trend: 6 months of one department", runs, || {
        zy_store::supervision::snapshot_history(
            &store,
            "department",
            &one_dept,
            "2000-01",
            "2099-12",
        )
    })
    .await?;
    time("open idle findings (all departments)", runs, || {
        zy_store::supervision::findings(&store, None, &[zy_model::supervision::IdleState::Open])
    })
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
