//! Client commands for the metrics history (监控): `metrics query` prints one entity's
//! series over a range as a table of time and values (or the server's JSON).

use crate::client::Client;
use crate::lease_cmds::parse_duration;
use crate::output::table;
use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Map, Value};

#[derive(Subcommand)]
pub enum MetricsCmd {
    /// One entity's series: `zhengyun metrics query instance <id> --series cpu,mem --since 6h`.
    Query {
        /// instance, host, project, department, zone or provider.
        scope: String,
        /// The entity's id.
        id: String,
        /// Comma-separated: cpu, mem, mem_used, disk_read, disk_write, disk_used, net_rx,
        /// net_tx, up.
        #[arg(long, default_value = "cpu,mem,up")]
        series: String,
        /// How far back, e.g. 1h, 7d, 30d.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Seconds (or 5m, 1h …) per point; default about 240 points.
        #[arg(long)]
        step: Option<String>,
        /// avg, min or max of the points in each step.
        #[arg(long, default_value = "avg")]
        agg: String,
    },
}

pub async fn metrics(c: &Client, cmd: MetricsCmd, json: bool) -> Result<()> {
    match cmd {
        MetricsCmd::Query {
            scope,
            id,
            series,
            since,
            step,
            agg,
        } => {
            let back = parse_duration(&since)?;
            let from = chrono::Utc::now() - chrono::Duration::seconds(back);
            let mut q = vec![
                ("scope", scope),
                ("id", id),
                ("series", series),
                ("from", from.to_rfc3339()),
                ("agg", agg),
            ];
            if let Some(s) = step {
                q.push(("step", parse_duration(&s)?.to_string()));
            }
            let v = c.get("/v1/metrics/query", &q).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print_result(&v);
            Ok(())
        }
    }
}

/// One row per step (Asia/Shanghai time), one column per series with its unit.
fn print_result(v: &Value) {
    let empty = Vec::new();
    let ts = v["timestamps"].as_array().unwrap_or(&empty);
    let series = v["series"].as_array().unwrap_or(&empty);
    let names: Vec<String> = series
        .iter()
        .map(|s| {
            let unit = s["unit"].as_str().unwrap_or("");
            let name = s["series"].as_str().unwrap_or("?");
            if unit.is_empty() {
                name.to_string()
            } else {
                format!("{name} ({unit})")
            }
        })
        .collect();
    let shanghai = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let rows: Vec<Value> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut row = Map::new();
            let when = chrono::DateTime::from_timestamp(t.as_i64().unwrap_or(0), 0)
                .map(|d| {
                    d.with_timezone(&shanghai)
                        .format("%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            row.insert("t".into(), json!(when));
            for (k, s) in series.iter().enumerate() {
                row.insert(format!("s{k}"), s["values"][i].clone());
            }
            Value::Object(row)
        })
        .collect();
    let keys: Vec<String> = (0..series.len()).map(|k| format!("s{k}")).collect();
    let mut cols: Vec<(&str, &str)> = vec![("时间 time", "t")];
    for (n, k) in names.iter().zip(&keys) {
        cols.push((n.as_str(), k.as_str()));
    }
    println!(
        "{} {} · {} · step {} s · {}",
        v["scope"].as_str().unwrap_or(""),
        v["id"].as_str().unwrap_or(""),
        v["resolution"].as_str().unwrap_or(""),
        v["step"],
        v["agg"].as_str().unwrap_or("")
    );
    table(&rows, &cols);
}
