//! Demo data for monitoring: simulated history (a day of 1-minute rollups and 30 days of
//! 1-hour rollups, a daily wave around a level per entity) for the demo's departments and
//! providers, so the charts are not empty on a fresh demo, and a few alert rules. Labelled
//! by the providers being simulated; written in the demo loader's transaction.

use zy_model::alerts::*;
use zy_model::id::{DepartmentId, ProviderId};
use zy_model::metrics::{Block, MetricScope, Resolution, RollupAcc, Series};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::metrics::BlockRow;
use zy_store::Tx;

/// The values of one minute: a daily wave (busy in office hours, Asia/Shanghai) around
/// `level` % CPU.
fn minute_values(t: i64, level: f64) -> Vec<Option<i64>> {
    let hour = ((t + 8 * 3600).rem_euclid(86_400)) as f64 / 3600.0;
    let day = (std::f64::consts::TAU * (hour - 9.0) / 24.0)
        .cos()
        .max(-0.3);
    let jitter = ((t / 60 * 7919) % 97) as f64 / 97.0 - 0.5;
    let cpu = (level + 25.0 * day + 6.0 * jitter).clamp(1.0, 99.0);
    let mem = (level + 20.0 + 5.0 * day).clamp(5.0, 95.0);
    let io = (1.0 + day) * 2_000_000.0;
    Series::ALL
        .iter()
        .map(|s| {
            let v = match s {
                Series::Cpu => cpu,
                Series::Mem => mem,
                Series::MemUsed => mem * 400.0,
                Series::DiskRead => io,
                Series::DiskWrite => io / 2.0,
                Series::DiskUsed => level + 15.0,
                Series::NetRx => io / 3.0,
                Series::NetTx => io / 4.0,
                Series::Up => 1.0,
            };
            zy_model::metrics::fixed(v)
        })
        .collect()
}

fn history(scope: MetricScope, entity: String, level: f64, now: i64) -> Vec<BlockRow> {
    let mut rows = Vec::new();
    let first_day = Resolution::Hour.block_start(now) - 30 * 86_400;
    let mut hour_block = Block::new(Resolution::Hour.columns());
    let mut day = first_day;
    let mut h = first_day;
    while h + 3600 <= now {
        let mut acc = RollupAcc::new(h);
        let recent = h >= now - 86_400;
        let mut minutes = Block::new(Resolution::Minute.columns());
        for m in 0..60 {
            let t = h + m * 60;
            let v = minute_values(t, level);
            let mut ma = RollupAcc::new(t);
            ma.add_raw(&v);
            acc.add_raw(&v);
            if recent {
                minutes.push(t, &ma.columns());
            }
        }
        if recent {
            rows.push(BlockRow {
                scope: scope.as_str(),
                entity: entity.clone(),
                res: Resolution::Minute,
                block_start: h,
                data: minutes.encode(),
            });
        }
        if Resolution::Hour.block_start(h) != day {
            rows.push(BlockRow {
                scope: scope.as_str(),
                entity: entity.clone(),
                res: Resolution::Hour,
                block_start: day,
                data: hour_block.encode(),
            });
            hour_block = Block::new(Resolution::Hour.columns());
            day = Resolution::Hour.block_start(h);
        }
        hour_block.push(h, &acc.columns());
        h += 3600;
    }
    rows.push(BlockRow {
        scope: scope.as_str(),
        entity,
        res: Resolution::Hour,
        block_start: day,
        data: hour_block.encode(),
    });
    rows
}

/// Writes the simulated history of the departments and providers and the demo's rules.
pub async fn load(
    tx: &mut Tx,
    departments: &[DepartmentId],
    providers: &[ProviderId],
) -> Result<(), Error> {
    let now = Timestamp::now().0 / 1_000_000;
    let mut rows = Vec::new();
    for (k, d) in departments.iter().enumerate() {
        rows.extend(history(
            MetricScope::Department,
            d.to_string(),
            20.0 + 7.0 * (k % 6) as f64,
            now,
        ));
    }
    for (k, p) in providers.iter().enumerate() {
        rows.extend(history(
            MetricScope::Provider,
            p.to_string(),
            35.0 + 10.0 * k as f64,
            now,
        ));
    }
    zy_store::metrics::write_blocks_in(tx, &rows).await?;
    let at = Timestamp::now();
    let rule = |name: &str, scope: MetricScope, entity: String, dept: Option<String>| AlertRule {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.into(),
        kind: AlertKind::Threshold,
        scope,
        entity_id: entity,
        department_id: dept,
        target: AlertTarget::Instance,
        series: Some(Series::Cpu),
        op: Some(AlertOp::Gt),
        threshold: Some(90.0),
        for_secs: 600,
        crash_count: None,
        open_ticket: false,
        created_by: "system".into(),
        created_at: at,
    };
    if let Some(d) = departments.first() {
        let mut cpu = rule(
            "CPU 持续 10 分钟超过 90%",
            MetricScope::Department,
            d.to_string(),
            Some(d.to_string()),
        );
        zy_store::alerts::insert_rule(tx, &cpu).await?;
        cpu.id = uuid::Uuid::now_v7().to_string();
        cpu.name = "磁盘使用率超过 85%".into();
        cpu.series = Some(Series::DiskUsed);
        cpu.threshold = Some(85.0);
        cpu.for_secs = 0;
        zy_store::alerts::insert_rule(tx, &cpu).await?;
    }
    for p in providers {
        let mut down = rule("宿主机宕机", MetricScope::Provider, p.to_string(), None);
        down.target = AlertTarget::Host;
        down.series = Some(Series::Up);
        down.op = Some(AlertOp::Lt);
        down.threshold = Some(1.0);
        down.for_secs = 0;
        zy_store::alerts::insert_rule(tx, &down).await?;
    }
    Ok(())
}
