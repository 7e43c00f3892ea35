//! Client commands for supervision (监管): `supervision indicators | providers |
//! departments | dashboard | refresh | report …` (indicators with their inputs, providers
//! side by side, departments ranked, the monthly operations reports) and `idle list |
//! reclaim | dismiss | reclaimed | settings` (idle and zombie resources).

use crate::client::Client;
use crate::output::{one, table};
use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum SupervisionCmd {
    /// One provider's or department's indicators with their inputs:
    /// `zhengyun supervision indicators department <id> --period 2026-11`.
    Indicators {
        /// provider or department.
        scope: String,
        id: String,
        /// YYYY-MM (default: this month).
        #[arg(long)]
        period: Option<String>,
    },
    /// Providers side by side.
    Providers {
        #[arg(long)]
        period: Option<String>,
    },
    /// Departments ranked by an indicator (cpu_utilisation, spend, idle_resources …).
    Departments {
        #[arg(long)]
        period: Option<String>,
        #[arg(long, default_value = "cpu_utilisation")]
        sort: String,
    },
    /// The dashboard's totals (监管大屏).
    Dashboard,
    /// Recompute this month's indicators now (supervisor).
    Refresh,
    /// Monthly operations reports (运维报告).
    #[command(subcommand)]
    Report(ReportCmd),
}

#[derive(Subcommand)]
pub enum ReportCmd {
    /// Stored reports.
    List,
    /// Generate (or regenerate) a report now: the platform's, or a provider's.
    Create {
        /// YYYY-MM.
        month: String,
        #[arg(long)]
        provider: Option<String>,
    },
    /// Download a report as pdf or xlsx.
    Download {
        id: String,
        #[arg(long, default_value = "pdf")]
        format: String,
        /// File to write (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum IdleCmd {
    /// Idle and zombie resources (open and reclaiming unless --state).
    List {
        /// open, reclaiming, reclaimed, dismissed, cleared or all.
        #[arg(long)]
        state: Option<String>,
    },
    /// Turn a finding into a submitted release or change request (a volume: delete it).
    Reclaim { id: String },
    /// Keep the resource, with a reason.
    Dismiss {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Capacity reclaimed per month and department.
    Reclaimed,
    /// Show the thresholds, or set them (platform admin).
    Settings {
        #[arg(long)]
        cpu_p95_percent: Option<f64>,
        #[arg(long)]
        cpu_window_days: Option<i64>,
        #[arg(long)]
        stopped_days: Option<i64>,
        #[arg(long)]
        unattached_days: Option<i64>,
    },
}

/// An indicator set as rows: code, indicator, value, unit, inputs.
fn print_set(v: &Value) {
    println!(
        "{} · {} · {}",
        v["name"].as_str().unwrap_or(""),
        v["scope"].as_str().unwrap_or(""),
        v["period"].as_str().unwrap_or("")
    );
    let rows: Vec<Value> = v["indicators"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            let inputs = i["inputs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| format!("{}={}", x["name"].as_str().unwrap_or(""), x["value"]))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            json!({
                "code": i["code"], "title": i["title_zh"], "value": i["value"],
                "unit": i["unit"], "inputs": inputs,
            })
        })
        .collect();
    table(
        &rows,
        &[
            ("代码 code", "code"),
            ("指标 indicator", "title"),
            ("值 value", "value"),
            ("单位 unit", "unit"),
            ("输入 inputs", "inputs"),
        ],
    );
}

/// Sets side by side: one row per set with the named indicators' values.
fn print_sets(items: &[Value], names: &[(&str, &str)]) {
    let rows: Vec<Value> = items
        .iter()
        .map(|s| {
            let mut row = json!({ "name": s["name"] });
            for (_, n) in names {
                let v = s["indicators"]
                    .as_array()
                    .and_then(|a| a.iter().find(|i| i["name"] == *n))
                    .map(|i| i["value"].clone())
                    .unwrap_or(Value::Null);
                row[*n] = v;
            }
            row
        })
        .collect();
    let mut cols = vec![("名称 name", "name")];
    cols.extend(names.iter().copied());
    table(&rows, &cols);
}

fn period_q(period: Option<String>) -> Vec<(&'static str, String)> {
    period.map(|p| vec![("period", p)]).unwrap_or_default()
}

pub async fn supervision(c: &Client, cmd: SupervisionCmd, json: bool) -> Result<()> {
    match cmd {
        SupervisionCmd::Indicators { scope, id, period } => {
            let mut q = vec![("scope", scope), ("id", id)];
            q.extend(period_q(period));
            let v = c.get("/v1/supervision/indicators", &q).await?;
            if json {
                crate::output::json(&v);
            } else {
                print_set(&v);
            }
        }
        SupervisionCmd::Providers { period } => {
            let v = c
                .get("/v1/supervision/providers", &period_q(period))
                .await?;
            if json {
                crate::output::json(&v);
            } else {
                print_sets(
                    v["items"].as_array().map_or(&[][..], Vec::as_slice),
                    &[
                        ("可用率% P1", "host_availability"),
                        ("vCPU分配% P3", "vcpu_allocation"),
                        ("vCPU余量 P4", "vcpu_headroom"),
                        ("CPU利用% P6", "cpu_utilisation"),
                        ("运行 P8", "instances_running"),
                        ("金额(分) P10", "spend"),
                    ],
                );
            }
        }
        SupervisionCmd::Departments { period, sort } => {
            let mut q = period_q(period);
            q.push(("sort", sort));
            let v = c.get("/v1/supervision/departments", &q).await?;
            if json {
                crate::output::json(&v);
            } else {
                print_sets(
                    v["items"].as_array().map_or(&[][..], Vec::as_slice),
                    &[
                        ("云主机 D1", "instances_held"),
                        ("vCPU D2", "vcpus_held"),
                        ("CPU利用% D5", "cpu_utilisation"),
                        ("闲置 D7", "idle_resources"),
                        ("费用(分) D10", "spend"),
                        ("预算% D11", "budget_use"),
                    ],
                );
            }
        }
        SupervisionCmd::Dashboard => {
            let v = c.get("/v1/supervision/dashboard", &[]).await?;
            if json {
                crate::output::json(&v);
            } else {
                println!(
                    "{} · {}",
                    v["period"].as_str().unwrap_or(""),
                    v["view"].as_str().unwrap_or("")
                );
                crate::output::record(
                    &v["totals"],
                    &[
                        ("云服务商 providers", "providers"),
                        ("部门 departments", "departments"),
                        ("宿主机 hosts", "hosts"),
                        ("可用宿主机 hosts up", "hosts_up"),
                        ("云主机 instances", "instances"),
                        ("运行中 running", "instances_running"),
                        ("CPU 利用率 %", "cpu_utilisation"),
                        ("费用（分）spend fen", "spend_fen"),
                        ("闲置资源 idle", "idle_open"),
                        ("告警 firing", "alerts_firing"),
                        ("安全事件 events", "security_events"),
                    ],
                );
            }
        }
        SupervisionCmd::Refresh => {
            let v = c.post("/v1/supervision/refresh", json!({})).await?;
            one(&v, &[("指标集 sets", "sets")], json);
        }
        SupervisionCmd::Report(r) => report(c, r, json).await?,
    }
    Ok(())
}

const REPORT_COLS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("月份 month", "month"),
    ("标题 title", "title"),
    ("PDF 字节", "pdf_bytes"),
    ("XLSX 字节", "xlsx_bytes"),
    ("生成 by", "created_by"),
    ("时间 at", "created_at"),
];

async fn report(c: &Client, cmd: ReportCmd, json: bool) -> Result<()> {
    match cmd {
        ReportCmd::List => {
            let v = c.get("/v1/supervision/reports", &[]).await?;
            if json {
                crate::output::json(&v);
            } else {
                table(
                    v["items"].as_array().map_or(&[][..], Vec::as_slice),
                    REPORT_COLS,
                );
            }
        }
        ReportCmd::Create { month, provider } => {
            let v = c
                .post(
                    "/v1/supervision/reports",
                    json!({ "month": month, "provider_id": provider }),
                )
                .await?;
            one(&v, REPORT_COLS, json);
        }
        ReportCmd::Download { id, format, out } => {
            let resp = c
                .send(
                    Method::GET,
                    &format!("/v1/supervision/reports/{id}/{format}"),
                    &[],
                    None,
                )
                .await?;
            let bytes = resp.bytes().await.context("reading the report")?;
            match out {
                Some(p) => {
                    std::fs::write(&p, &bytes)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                    eprintln!("已下载 written to {}", p.display());
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
        }
    }
    Ok(())
}

const IDLE_COLS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("类型 kind", "kind"),
    ("资源 resource", "resource_name"),
    ("建议 advice", "recommendation"),
    ("目标规格 flavor", "target_flavor"),
    ("vCPU", "vcpus"),
    ("内存MiB", "memory_mib"),
    ("磁盘GiB", "disk_gib"),
    ("月费（分）fen", "monthly_fen"),
    ("状态 state", "state"),
    ("申请 request", "request_id"),
];

pub async fn idle(c: &Client, cmd: IdleCmd, json: bool) -> Result<()> {
    match cmd {
        IdleCmd::List { state } => {
            let q: Vec<(&str, String)> = state.map(|s| vec![("state", s)]).unwrap_or_default();
            let v = c.get("/v1/idle-resources", &q).await?;
            if json {
                crate::output::json(&v);
            } else {
                table(
                    v["items"].as_array().map_or(&[][..], Vec::as_slice),
                    IDLE_COLS,
                );
            }
        }
        IdleCmd::Reclaim { id } => {
            let v = c
                .post(&format!("/v1/idle-resources/{id}/reclaim"), json!({}))
                .await?;
            one(&v, IDLE_COLS, json);
        }
        IdleCmd::Dismiss { id, reason } => {
            let v = c
                .post(
                    &format!("/v1/idle-resources/{id}/dismiss"),
                    json!({ "reason": reason }),
                )
                .await?;
            one(&v, IDLE_COLS, json);
        }
        IdleCmd::Reclaimed => {
            let v = c.get("/v1/idle-resources/reclaimed", &[]).await?;
            if json {
                crate::output::json(&v);
            } else {
                table(
                    v["items"].as_array().map_or(&[][..], Vec::as_slice),
                    &[
                        ("月份 month", "month"),
                        ("部门 department", "department_id"),
                        ("项数 findings", "findings"),
                        ("vCPU", "vcpus"),
                        ("内存MiB", "memory_mib"),
                        ("磁盘GiB", "disk_gib"),
                        ("月费（分）fen", "monthly_fen"),
                    ],
                );
            }
        }
        IdleCmd::Settings {
            cpu_p95_percent,
            cpu_window_days,
            stopped_days,
            unattached_days,
        } => {
            let mut v = c.get("/v1/idle-settings", &[]).await?;
            if cpu_p95_percent.is_some()
                || cpu_window_days.is_some()
                || stopped_days.is_some()
                || unattached_days.is_some()
            {
                if let Some(x) = cpu_p95_percent {
                    v["cpu_p95_percent"] = json!(x);
                }
                if let Some(x) = cpu_window_days {
                    v["cpu_window_days"] = json!(x);
                }
                if let Some(x) = stopped_days {
                    v["stopped_days"] = json!(x);
                }
                if let Some(x) = unattached_days {
                    v["unattached_days"] = json!(x);
                }
                v = c.put("/v1/idle-settings", v).await?;
            }
            one(
                &v,
                &[
                    ("CPU p95 阈值 %", "cpu_p95_percent"),
                    ("观察天数 window days", "cpu_window_days"),
                    ("停机天数 stopped days", "stopped_days"),
                    ("未挂载天数 unattached days", "unattached_days"),
                ],
                json,
            );
        }
    }
    Ok(())
}
