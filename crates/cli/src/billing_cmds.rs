//! Client commands for metering and billing: usage, price lists, bills (list, show,
//! export, close, adjust, confirm, pay), provider bills, budgets and reconciliation.
//! Amounts are fen in the API and shown as yuan here.

use crate::client::Client;
use crate::compute_cmds::{items, show};
use crate::output::{self, record, table};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum BillCmd {
    /// Bills of a month (every department), or one department's over the months.
    List {
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        department: Option<String>,
    },
    /// One department's bill with its lines and adjustments.
    Show { month: String, department: String },
    /// The bill as CSV, XLSX or a printable PDF (to a file, or standard output).
    Export {
        month: String,
        department: String,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// `csv`, `xlsx` or `pdf`.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Close a month (finance): every department's bill is written and can no longer change.
    Close { month: String },
    /// Add an adjustment line to a closed bill (finance): `--amount -12.50 --reason …`.
    Adjust {
        month: String,
        department: String,
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        reason: String,
    },
    /// Confirm your department's closed bill (department admin).
    Confirm { month: String, department: String },
    /// Record a confirmed bill as paid (finance).
    Pay { month: String, department: String },
    /// What the city owes each provider, by department.
    Providers {
        #[arg(long)]
        month: Option<String>,
    },
    /// Months: closed ones and the open one.
    Months,
}

#[derive(Subcommand)]
pub enum PriceCmd {
    /// Price-list versions (of one provider or all).
    List {
        #[arg(long)]
        provider: Option<String>,
    },
    /// Publish a version from a JSON file of rates (see the API's `Rates`), taking effect
    /// at `--from` (RFC 3339, in the future).
    Add {
        #[arg(long)]
        provider: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        rates: std::path::PathBuf,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Withdraw a version that has not taken effect.
    Withdraw { id: String },
}

#[derive(Subcommand)]
pub enum BudgetCmd {
    Show {
        department: String,
    },
    /// Set a department's monthly budget in yuan (finance).
    Set {
        department: String,
        #[arg(long)]
        yuan: String,
    },
}

#[derive(Subcommand)]
pub enum ReconcileCmd {
    /// Import a provider's CSV (columns resource_id/资源ID, hours/用量小时, amount/金额) and
    /// match it against the meter.
    Import {
        #[arg(long)]
        provider: String,
        #[arg(long)]
        month: String,
        file: std::path::PathBuf,
    },
    List {
        #[arg(long)]
        provider: Option<String>,
    },
}

/// Fen → yuan text in every listed money field of each object.
fn yuan(v: &mut Value, fields: &[&str]) {
    for f in fields {
        if let Some(n) = v.get(*f).and_then(Value::as_i64) {
            v[*f] = Value::String(zy_model::Money(n).yuan());
        }
    }
}

fn money_rows(v: &Value, fields: &[&str]) -> Vec<Value> {
    items(v)
        .iter()
        .cloned()
        .map(|mut x| {
            yuan(&mut x, fields);
            x
        })
        .collect()
}

fn hours(secs: &Value) -> Value {
    json!(format!("{:.2}", secs.as_i64().unwrap_or(0) as f64 / 3600.0))
}

pub async fn bill(c: &Client, cmd: BillCmd, json: bool) -> Result<()> {
    match cmd {
        BillCmd::List { month, department } => {
            let mut q = Vec::new();
            if let Some(m) = month {
                q.push(("month", m));
            }
            if let Some(d) = department {
                q.push(("department_id", d));
            }
            let v = c.get("/v1/bills", &q).await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let rows = money_rows(&v, &["usage_total", "adjustments_total", "total"]);
            table(
                &rows,
                &[
                    ("月份 month", "month"),
                    ("部门 department", "department_name"),
                    ("状态 state", "state"),
                    ("用量 usage ¥", "usage_total"),
                    ("调整 adj. ¥", "adjustments_total"),
                    ("合计 total ¥", "total"),
                ],
            );
        }
        BillCmd::Show { month, department } => {
            let v = c
                .get(&format!("/v1/bills/{month}/{department}"), &[])
                .await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let mut head = v.clone();
            yuan(&mut head, &["usage_total", "adjustments_total", "total"]);
            record(
                &head,
                &[
                    ("月份 month", "month"),
                    ("部门 department", "department_name"),
                    ("状态 state", "state"),
                    ("用量 usage ¥", "usage_total"),
                    ("调整 adjustments ¥", "adjustments_total"),
                    ("合计 total ¥", "total"),
                ],
            );
            let lines: Vec<Value> = v["lines"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut l| {
                    yuan(&mut l, &["amount"]);
                    l["running_h"] = hours(&l["running_secs"]);
                    l["stopped_h"] = hours(&l["stopped_secs"]);
                    l
                })
                .collect();
            println!();
            table(
                &lines,
                &[
                    ("项目 project", "project_name"),
                    ("云服务商 provider", "provider_name"),
                    ("资源 resource", "name"),
                    ("类型 kind", "kind"),
                    ("运行时 running h", "running_h"),
                    ("停机/占用 stopped h", "stopped_h"),
                    ("金额 amount ¥", "amount"),
                ],
            );
            let adj: Vec<Value> = v["adjustments"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut a| {
                    yuan(&mut a, &["amount"]);
                    a
                })
                .collect();
            if !adj.is_empty() {
                println!();
                table(
                    &adj,
                    &[
                        ("调整 adjustment ¥", "amount"),
                        ("原因 reason", "reason"),
                        ("时间 at", "created_at"),
                    ],
                );
            }
        }
        BillCmd::Export {
            month,
            department,
            out,
            format,
        } => {
            let resp = c
                .send(
                    Method::GET,
                    &format!("/v1/bills/{month}/{department}/export"),
                    &[("format", format)],
                    None,
                )
                .await?;
            let bytes = resp.bytes().await.context("reading the export")?;
            match out {
                Some(p) => {
                    std::fs::write(&p, &bytes)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                    eprintln!("已导出 exported to {}", p.display());
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
        }
        BillCmd::Close { month } => {
            let mut v = c
                .post(&format!("/v1/billing/months/{month}/close"), json!({}))
                .await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            yuan(&mut v, &["total"]);
            record(
                &v,
                &[
                    ("月份 month", "month"),
                    ("已月结 closed", "closed"),
                    ("合计 total ¥", "total"),
                ],
            );
        }
        BillCmd::Adjust {
            month,
            department,
            amount,
            reason,
        } => {
            let Some(m) = zy_model::Money::parse_yuan(&amount) else {
                bail!("金额须为最多两位小数的元 the amount is yuan with at most two decimals: {amount}");
            };
            let v = c
                .post(
                    &format!("/v1/bills/{month}/{department}/adjustments"),
                    json!({ "amount": m.0, "reason": reason }),
                )
                .await?;
            print_state(&v, json);
        }
        BillCmd::Confirm { month, department } => {
            let v = c
                .post(
                    &format!("/v1/bills/{month}/{department}/confirm"),
                    json!({}),
                )
                .await?;
            print_state(&v, json);
        }
        BillCmd::Pay { month, department } => {
            let v = c
                .post(&format!("/v1/bills/{month}/{department}/pay"), json!({}))
                .await?;
            print_state(&v, json);
        }
        BillCmd::Providers { month } => {
            let q: Vec<(&str, String)> = month.map(|m| vec![("month", m)]).unwrap_or_default();
            let v = c.get("/v1/provider-bills", &q).await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let mut rows = Vec::new();
            for p in items(&v) {
                for d in p["departments"].as_array().cloned().unwrap_or_default() {
                    let mut r = json!({ "month": p["month"], "provider": p["provider_name"], "department": d["department_name"], "amount": d["amount"] });
                    yuan(&mut r, &["amount"]);
                    rows.push(r);
                }
                let mut r = json!({ "month": p["month"], "provider": p["provider_name"], "department": "合计 total", "amount": p["total"] });
                yuan(&mut r, &["amount"]);
                rows.push(r);
            }
            table(
                &rows,
                &[
                    ("月份 month", "month"),
                    ("云服务商 provider", "provider"),
                    ("部门 department", "department"),
                    ("金额 amount ¥", "amount"),
                ],
            );
        }
        BillCmd::Months => {
            let v = c.get("/v1/billing/months", &[]).await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            table(
                &money_rows(&v, &["total"]),
                &[
                    ("月份 month", "month"),
                    ("已月结 closed", "closed"),
                    ("月结时间 closed at", "closed_at"),
                    ("合计 total ¥", "total"),
                ],
            );
        }
    }
    Ok(())
}

fn print_state(v: &Value, json: bool) {
    if json {
        return output::json(v);
    }
    let mut v = v.clone();
    yuan(&mut v, &["usage_total", "adjustments_total", "total"]);
    record(
        &v,
        &[
            ("月份 month", "month"),
            ("部门 department", "department_name"),
            ("状态 state", "state"),
            ("合计 total ¥", "total"),
        ],
    );
}

pub async fn price(c: &Client, cmd: PriceCmd, json: bool) -> Result<()> {
    match cmd {
        PriceCmd::List { provider } => {
            let q: Vec<(&str, String)> = provider
                .map(|p| vec![("provider_id", p)])
                .unwrap_or_default();
            let v = c.get("/v1/price-versions", &q).await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let rows: Vec<Value> = items(&v)
                .iter()
                .map(|x| json!({ "id": x["id"], "provider_id": x["provider_id"], "effective_from": x["effective_from"], "in_effect": x["in_effect"],
                    "vcpu_hour": x["rates"]["vcpu_hour"], "memory_gib_hour": x["rates"]["memory_gib_hour"], "disk_gib_month": x["rates"]["disk_gib_month"], "volume_gib_month": x["rates"]["volume_gib_month"] }))
                .collect();
            table(
                &rows,
                &[
                    ("编号 id", "id"),
                    ("云服务商 provider", "provider_id"),
                    ("生效 from", "effective_from"),
                    ("已生效 in effect", "in_effect"),
                    ("vCPU·时 ¥", "vcpu_hour"),
                    ("内存GiB·时 ¥", "memory_gib_hour"),
                    ("磁盘GiB·月 ¥", "disk_gib_month"),
                    ("云硬盘GiB·月 ¥", "volume_gib_month"),
                ],
            );
        }
        PriceCmd::Add {
            provider,
            from,
            rates,
            note,
        } => {
            let text = std::fs::read_to_string(&rates)
                .with_context(|| format!("cannot read {}", rates.display()))?;
            let r: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", rates.display()))?;
            let v = c.post("/v1/price-versions", json!({ "provider_id": provider, "effective_from": from, "rates": r, "note": note })).await?;
            output::one(
                &v,
                &[("编号 id", "id"), ("生效 from", "effective_from")],
                json,
            );
        }
        PriceCmd::Withdraw { id } => {
            c.delete(&format!("/v1/price-versions/{id}")).await?;
            if !json {
                println!("已撤回 withdrawn {id}");
            }
        }
    }
    Ok(())
}

pub async fn usage(
    c: &Client,
    month: Option<String>,
    department: Option<String>,
    project: Option<String>,
    provider: Option<String>,
    json: bool,
) -> Result<()> {
    let mut q = Vec::new();
    for (k, v) in [
        ("month", month),
        ("department_id", department),
        ("project_id", project),
        ("provider_id", provider),
    ] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    let v = c.get("/v1/usage", &q).await?;
    if json {
        output::json(&v);
        return Ok(());
    }
    let rows: Vec<Value> = money_rows(&v, &["amount"])
        .into_iter()
        .map(|mut l| {
            l["running_h"] = hours(&l["running_secs"]);
            l["stopped_h"] = hours(&l["stopped_secs"]);
            l
        })
        .collect();
    table(
        &rows,
        &[
            ("项目 project", "project_name"),
            ("资源 resource", "name"),
            ("类型 kind", "kind"),
            ("运行时 running h", "running_h"),
            ("停机/占用 stopped h", "stopped_h"),
            ("金额 amount ¥", "amount"),
        ],
    );
    Ok(())
}

pub async fn budget(c: &Client, cmd: BudgetCmd, json: bool) -> Result<()> {
    let v = match cmd {
        BudgetCmd::Show { department } => c.get(&format!("/v1/budgets/{department}"), &[]).await?,
        BudgetCmd::Set {
            department,
            yuan: y,
        } => {
            let Some(m) = zy_model::Money::parse_yuan(&y) else {
                bail!("预算须为最多两位小数的元 the budget is yuan with at most two decimals: {y}");
            };
            c.put(
                &format!("/v1/budgets/{department}"),
                json!({ "monthly": m.0 }),
            )
            .await?
        }
    };
    if json {
        output::json(&v);
        return Ok(());
    }
    let mut r = v.clone();
    yuan(&mut r, &["monthly", "spent", "forecast"]);
    record(
        &r,
        &[
            ("月份 month", "month"),
            ("月预算 budget ¥", "monthly"),
            ("已用 spent ¥", "spent"),
            ("月末预测 forecast ¥", "forecast"),
            ("已用‰ used", "used_permille"),
        ],
    );
    Ok(())
}

pub async fn reconcile(c: &Client, cmd: ReconcileCmd, json: bool) -> Result<()> {
    match cmd {
        ReconcileCmd::Import {
            provider,
            month,
            file,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let source = file
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_else(|| "import.csv".into());
            // A workbook goes base64-encoded; anything else is CSV text.
            let body = if source.to_lowercase().ends_with(".xlsx") {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
                json!({ "provider_id": provider, "month": month, "source": source, "xlsx_base64": b64 })
            } else {
                let csv = String::from_utf8(bytes).context("the CSV file is not UTF-8")?;
                json!({ "provider_id": provider, "month": month, "source": source, "csv": csv })
            };
            let v = c.post("/v1/reconciliations", body).await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let mut head = v.clone();
            yuan(&mut head, &["our_total", "their_total", "delta"]);
            record(
                &head,
                &[
                    ("月份 month", "month"),
                    ("一致 matched", "matched"),
                    ("我方 ours ¥", "our_total"),
                    ("对方 theirs ¥", "their_total"),
                    ("差额 delta ¥", "delta"),
                ],
            );
            let rows: Vec<Value> = v["differences"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut d| {
                    yuan(&mut d, &["our_amount", "their_amount", "delta"]);
                    d
                })
                .collect();
            println!();
            table(
                &rows,
                &[
                    ("资源 resource", "resource_id"),
                    ("差异 kind", "kind"),
                    ("我方 0.01h", "our_centihours"),
                    ("对方 0.01h", "their_centihours"),
                    ("我方 ours ¥", "our_amount"),
                    ("对方 theirs ¥", "their_amount"),
                    ("差额 delta ¥", "delta"),
                ],
            );
        }
        ReconcileCmd::List { provider } => {
            let q: Vec<(&str, String)> = provider
                .map(|p| vec![("provider_id", p)])
                .unwrap_or_default();
            let v = c.get("/v1/reconciliations", &q).await?;
            let rows = money_rows(&v, &["our_total", "their_total", "delta"]);
            show(
                &json!({ "items": rows }),
                &[
                    ("编号 id", "id"),
                    ("月份 month", "month"),
                    ("文件 source", "source"),
                    ("一致 matched", "matched"),
                    ("差额 delta ¥", "delta"),
                ],
                json,
            );
        }
    }
    Ok(())
}
