//! Client commands for monitoring (监控): `metrics query` prints one entity's series over
//! a range as a table of time and values (or the server's JSON); `alert rule | list |
//! silence` manage alert rules, show alerts and their history, and set silences.

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
    /// Remote write to a Prometheus-compatible store: show, or set with --url (and
    /// --token, from ZHENGYUN_REMOTE_WRITE_TOKEN to keep it out of the shell history);
    /// --disable stops it.
    RemoteWrite {
        #[arg(long)]
        url: Option<String>,
        #[arg(long, env = "ZHENGYUN_REMOTE_WRITE_TOKEN")]
        token: Option<String>,
        #[arg(long)]
        disable: bool,
    },
}

pub async fn metrics(c: &Client, cmd: MetricsCmd, json: bool) -> Result<()> {
    match cmd {
        MetricsCmd::RemoteWrite {
            url,
            token,
            disable,
        } => {
            let v = if url.is_some() || disable {
                let current = c.get("/v1/metrics/remote-write", &[]).await?;
                let url = url.unwrap_or_else(|| current["url"].as_str().unwrap_or("").to_string());
                c.put(
                    "/v1/metrics/remote-write",
                    json!({ "enabled": !disable, "url": url, "bearer_token": token }),
                )
                .await?
            } else {
                c.get("/v1/metrics/remote-write", &[]).await?
            };
            crate::output::one(
                &v,
                &[
                    ("启用 enabled", "enabled"),
                    ("地址 url", "url"),
                    ("有令牌 token", "has_token"),
                ],
                json,
            );
            Ok(())
        }
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

#[derive(Subcommand)]
pub enum AlertCmd {
    /// Alert rules: list, add, remove.
    #[command(subcommand)]
    Rule(RuleCmd),
    /// What is pending or firing now; with --history, the fired and resolved alerts.
    List {
        #[arg(long)]
        history: bool,
        /// Newest history entries (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Silences: list, add, remove.
    #[command(subcommand)]
    Silence(SilenceCmd),
}

#[derive(Subcommand)]
pub enum RuleCmd {
    List,
    /// A threshold rule: `alert rule add "CPU 过高" --scope project --id <id> --series cpu
    /// --gt 90 --for 10m`; host down: `--scope provider --id <id> --target host --series up
    /// --lt 1`; crashes: `--crashes 3`.
    Add {
        name: String,
        /// instance, project, department, host, zone or provider.
        #[arg(long)]
        scope: String,
        #[arg(long)]
        id: String,
        /// instance (default) or host.
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        series: Option<String>,
        /// Fires above this value.
        #[arg(long, conflicts_with = "lt")]
        gt: Option<f64>,
        /// Fires below this value.
        #[arg(long)]
        lt: Option<f64>,
        /// How long it must hold, e.g. 10m.
        #[arg(long = "for", default_value = "0")]
        for_: String,
        /// Crashes within an hour (a crash rule instead of a threshold).
        #[arg(long, conflicts_with_all = ["gt", "lt", "series"])]
        crashes: Option<i64>,
        /// Open a ticket (工单) to the provider when the alert fires.
        #[arg(long)]
        open_ticket: bool,
    },
    Remove {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum SilenceCmd {
    List,
    /// No notices for the scope's alerts for a while: `alert silence add --scope host
    /// --id <id> --for 2h --reason 计划内维护`.
    Add {
        #[arg(long)]
        scope: String,
        #[arg(long)]
        id: String,
        #[arg(long = "for")]
        for_: String,
        #[arg(long)]
        reason: String,
    },
    Remove {
        id: String,
    },
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

pub async fn alert(c: &Client, cmd: AlertCmd, json: bool) -> Result<()> {
    let v = match cmd {
        AlertCmd::Rule(RuleCmd::List) => {
            let v = c.get("/v1/alert-rules", &[]).await?;
            if !json {
                table(
                    &items(&v),
                    &[
                        ("ID", "id"),
                        ("名称 name", "name"),
                        ("类型 kind", "kind"),
                        ("范围 scope", "scope"),
                        ("对象 entity", "entity_id"),
                        ("指标 series", "series"),
                        ("比较 op", "op"),
                        ("阈值 threshold", "threshold"),
                        ("持续 for (s)", "for_secs"),
                        ("崩溃 crashes", "crash_count"),
                    ],
                );
                return Ok(());
            }
            v
        }
        AlertCmd::Rule(RuleCmd::Add {
            name,
            scope,
            id,
            target,
            series,
            gt,
            lt,
            for_,
            crashes,
            open_ticket,
        }) => {
            let body = match crashes {
                Some(n) => {
                    json!({ "name": name, "kind": "crashes", "scope": scope, "id": id, "crash_count": n, "open_ticket": open_ticket })
                }
                None => {
                    let (op, threshold) = match (gt, lt) {
                        (_, Some(x)) => ("lt", Some(x)),
                        (x, None) => ("gt", x),
                    };
                    json!({ "name": name, "kind": "threshold", "scope": scope, "id": id, "target": target, "series": series, "op": op, "threshold": threshold, "for_secs": parse_duration(&for_)?, "open_ticket": open_ticket })
                }
            };
            c.post("/v1/alert-rules", body).await?
        }
        AlertCmd::Rule(RuleCmd::Remove { id }) => {
            c.delete(&format!("/v1/alert-rules/{id}")).await?;
            println!("已删除 removed");
            return Ok(());
        }
        AlertCmd::List { history, limit } => {
            let v = if history {
                c.get("/v1/alerts/history", &[("limit", limit.to_string())])
                    .await?
            } else {
                c.get("/v1/alerts", &[]).await?
            };
            if !json {
                let when = if history {
                    ("时间 at", "at")
                } else {
                    ("起始 since", "since")
                };
                table(
                    &items(&v),
                    &[
                        when,
                        ("规则 rule", "rule_name"),
                        ("对象 target", "target_name"),
                        ("状态 state", "state"),
                        ("值 value", "value"),
                        ("静默 silenced", "silenced"),
                    ],
                );
                return Ok(());
            }
            v
        }
        AlertCmd::Silence(SilenceCmd::List) => {
            let v = c.get("/v1/alert-silences", &[]).await?;
            if !json {
                table(
                    &items(&v),
                    &[
                        ("ID", "id"),
                        ("范围 scope", "scope"),
                        ("对象 entity", "entity_id"),
                        ("开始 starts", "starts_at"),
                        ("结束 ends", "ends_at"),
                        ("原因 reason", "reason"),
                    ],
                );
                return Ok(());
            }
            v
        }
        AlertCmd::Silence(SilenceCmd::Add {
            scope,
            id,
            for_,
            reason,
        }) => {
            let ends = chrono::Utc::now() + chrono::Duration::seconds(parse_duration(&for_)?);
            c.post(
                "/v1/alert-silences",
                json!({ "scope": scope, "id": id, "ends_at": ends.to_rfc3339(), "reason": reason }),
            )
            .await?
        }
        AlertCmd::Silence(SilenceCmd::Remove { id }) => {
            c.delete(&format!("/v1/alert-silences/{id}")).await?;
            println!("已删除 removed");
            return Ok(());
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
