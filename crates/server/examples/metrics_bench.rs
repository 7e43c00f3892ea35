//! Metrics benchmark (run outside CI): the collector's ingest path for 10,000 instances ×
//! 9 series every 10 s (rates from counters, host and aggregate figures, rollups, block
//! encoding, a batched write every minute) over one simulated hour, measured in CPU time
//! of this process; the disk taken per series per day; and a 30-day per-department
//! utilisation query (1-hour rollups, 720 points) as the API runs it, after 30 days of
//! rollups are loaded for 10 departments.
//!
//! Run: `cargo run --release -p zy-server --example metrics_bench` (SQLite in a temporary
//! file) or with `DATABASE_URL=postgres://…` (a fresh schema). `INSTANCES=…` and
//! `INTERVALS=…` change the size (default 10,000 and 360 = one hour).

use std::time::Instant;
use zy_model::metrics::{self, Aggregate, Block, Resolution, RollupAcc, Series};
use zy_store::metrics::BlockRow;

/// CPU time (user + system) of this process, seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let u: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let s: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (u + s) / tick
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let instances = env("INSTANCES", 10_000);
    let intervals = env("INTERVALS", 360);
    let dir = std::env::temp_dir().join(format!("zy-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (url, schema) = match std::env::var("DATABASE_URL") {
        Ok(u) => (u, Some(format!("zy_metrics_{}", std::process::id()))),
        Err(_) => (format!("sqlite://{}", dir.join("bench.db").display()), None),
    };
    let store = zy_store::Store::open(&url, schema.as_deref(), 4).await?;
    let now = zy_model::time::Timestamp::now().0 / 1_000_000;
    // Start on an hour so the simulated hour closes its 1-hour rollup too.
    let start = now - now % 3600 - 3600;

    let (cpu0, wall) = (cpu_secs(), Instant::now());
    let written =
        zy_server::monitoring::collector::synthetic_ingest(&store, instances, intervals, start)
            .await?;
    let (cpu, secs) = (cpu_secs() - cpu0, wall.elapsed().as_secs_f64());
    let per = cpu / intervals as f64;
    println!(
        "ingest: {instances} instances × {} series, {intervals} readings: {cpu:.1} s CPU ({secs:.1} s wall), {:.0} ms CPU per 10 s reading = {:.1} % of one core; {written} blocks written",
        Series::COUNT,
        per * 1000.0,
        per / 10.0 * 100.0
    );

    // Disk: encoded bytes per series, scaled to one day (raw: 144 ten-minute blocks; minute
    // rollups: 24 one-hour blocks; hour rollups: one block).
    let hours = intervals as f64 / 360.0;
    for (res, rows, bytes) in zy_store::metrics::footprint(&store).await? {
        let entities = rows as f64
            / match res {
                0 => (hours * 6.0).ceil(),
                60 => hours.ceil(),
                _ => 1.0,
            };
        let per_series_day = bytes as f64 / entities / Series::COUNT as f64 / hours.max(1.0) * 24.0;
        let per_series_day = if res == 3600 {
            bytes as f64 / entities / Series::COUNT as f64 * 24.0 / hours.max(1.0)
        } else {
            per_series_day
        };
        println!(
            "disk res {res:>4}: {rows} blocks, {bytes} bytes of encoded data → {per_series_day:.0} bytes per series per day"
        );
    }
    if schema.is_none() {
        let size = std::fs::metadata(dir.join("bench.db"))
            .map(|m| m.len())
            .unwrap_or(0)
            + std::fs::metadata(dir.join("bench.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        println!("sqlite file (with WAL): {size} bytes after {hours:.1} h");
    }

    // 30 days of 1-minute and 1-hour rollups for 10 departments, then the query.
    let days = 30;
    let mut rows = Vec::new();
    for d in 0..10u128 {
        let entity = uuid::Uuid::from_u128(7 << 64 | d).to_string();
        for day in 0..=days {
            let day_start = Resolution::Hour.block_start(now) - day * 86_400;
            let mut hour_block = Block::new(Resolution::Hour.columns());
            for h in 0..24 {
                let hs = day_start + h * 3600;
                let mut minute_block = Block::new(Resolution::Minute.columns());
                let mut hacc = RollupAcc::new(hs);
                for m in 0..60 {
                    let mut acc = RollupAcc::new(hs + m * 60);
                    for p in 0..6 {
                        let v: Vec<Option<i64>> = (0..Series::COUNT as i64)
                            .map(|k| Some(3000 + (h * 100 + m * 7 + p * 3 + k) % 4000))
                            .collect();
                        acc.add_raw(&v);
                    }
                    minute_block.push(acc.start, &acc.columns());
                    for (a, b) in hacc.series.iter_mut().zip(acc.series.iter()) {
                        a.merge(b);
                    }
                }
                rows.push(BlockRow {
                    scope: "department",
                    entity: entity.clone(),
                    res: Resolution::Minute,
                    block_start: hs,
                    data: minute_block.encode(),
                });
                hour_block.push(hs, &hacc.columns());
            }
            rows.push(BlockRow {
                scope: "department",
                entity: entity.clone(),
                res: Resolution::Hour,
                block_start: day_start,
                data: hour_block.encode(),
            });
        }
    }
    zy_store::metrics::write_blocks(&store, &rows).await?;
    let entity = uuid::Uuid::from_u128(7 << 64 | 3).to_string();
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let plan = metrics::plan(now, now - days * 86_400, now, Some(3600))?;
        let blocks = zy_store::metrics::read_blocks(
            &store,
            "department",
            &entity,
            plan.res,
            plan.res.block_start(plan.from),
            plan.res.block_start(plan.to),
        )
        .await?;
        let data: Vec<Vec<u8>> = blocks.into_iter().map(|(_, d)| d).collect();
        let (ts, vals) =
            metrics::evaluate(&plan, &data, &[Series::Cpu, Series::Mem], Aggregate::Avg);
        assert!(ts.len() >= 720 && vals[0].iter().filter(|v| v.is_some()).count() >= 700);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "30-day department query (1-hour rollups, 720 points, cpu+mem): p50 {:.1} ms, max {:.1} ms over 20 runs",
        times[10],
        times[19]
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
