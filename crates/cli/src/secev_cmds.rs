//! Client commands for security events and vulnerabilities: `address-plan list | add |
//! remove` (地址规划), `secevent list | counts | intake | rules | add-rule | remove-rule |
//! policy` (安全事件), and `vuln list | import | set | counts` (漏洞管理).

use crate::client::Client;
use crate::compute_cmds::items;
use crate::output::{self, table};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum AddressPlanCmd {
    /// The blocks of the address plan and their departments.
    List,
    /// Assign a CIDR block to a department (security admin).
    Add {
        /// e.g. 10.20.0.0/16
        cidr: String,
        #[arg(long)]
        department: String,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove a block by its id.
    Remove { id: String },
}

#[derive(Subcommand)]
pub enum SecEventCmd {
    /// Security events, newest first.
    List {
        #[arg(long)]
        department: Option<String>,
        /// attack, intrusion, virus, web_attack, scan, brute_force, policy_deny, other
        #[arg(long)]
        category: Option<String>,
        /// critical, high, medium, low, info
        #[arg(long)]
        severity: Option<String>,
        /// blocked or allowed
        #[arg(long)]
        action: Option<String>,
        /// Source or destination address.
        #[arg(long)]
        address: Option<String>,
        /// Text in the raw message or the rule.
        #[arg(long)]
        q: Option<String>,
        /// From (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Event counts grouped by day, department, provider, category, severity or action.
    Counts {
        #[arg(long, default_value = "day")]
        by: String,
        /// First day YYYY-MM-DD (default 29 days ago).
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        department: Option<String>,
    },
    /// The syslog receiver: received, written, dropped, queued.
    Intake,
    /// Alert rules on events.
    Rules,
    /// Add an alert rule: at least THRESHOLD events of SEVERITY or worse in MINUTES.
    AddRule {
        name: String,
        #[arg(long)]
        threshold: i64,
        #[arg(long)]
        minutes: i64,
        #[arg(long, default_value = "high")]
        severity: String,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        category: Option<String>,
    },
    /// Remove an alert rule by its id.
    RemoveRule { id: String },
    /// The security policy (event retention, repair deadlines); changed with any option.
    Policy {
        #[arg(long)]
        retention_days: Option<i64>,
        #[arg(long)]
        critical_days: Option<i64>,
        #[arg(long)]
        high_days: Option<i64>,
        #[arg(long)]
        medium_days: Option<i64>,
        #[arg(long)]
        low_days: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum VulnCmd {
    /// Vulnerability findings.
    List {
        #[arg(long)]
        department: Option<String>,
        /// open, fixing, fixed, verified, accepted
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        address: Option<String>,
        /// Only findings past their deadline.
        #[arg(long)]
        overdue: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Import a scanner file: CSV or a Nessus v2 export (.nessus).
    Import {
        file: std::path::PathBuf,
        /// csv or nessus (default: by the file's extension).
        #[arg(long)]
        format: Option<String>,
    },
    /// Move a finding: fixing, fixed (department); accepted, open (security admin).
    Set {
        id: String,
        state: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Counts per department or provider: open, overdue, fixed within deadline.
    Counts {
        #[arg(long, default_value = "department")]
        by: String,
    },
}

fn push(q: &mut Vec<(&'static str, String)>, k: &'static str, v: Option<String>) {
    if let Some(v) = v {
        q.push((k, v));
    }
}

const BLOCK_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("网段 CIDR", "cidr"),
    ("部门 department", "department_name"),
    ("云服务商 provider", "provider_id"),
    ("说明 description", "description"),
];

pub async fn address_plan(c: &Client, cmd: AddressPlanCmd, json: bool) -> Result<()> {
    match cmd {
        AddressPlanCmd::List => {
            let v = c.get("/v1/address-plan", &[]).await?;
            if json {
                output::json(&v)
            } else {
                table(items(&v), BLOCK_COLS)
            }
        }
        AddressPlanCmd::Add {
            cidr,
            department,
            provider,
            description,
        } => {
            let v = c
                .post(
                    "/v1/address-plan",
                    json!({ "cidr": cidr, "department_id": department, "provider_id": provider, "description": description }),
                )
                .await?;
            output::one(&v, BLOCK_COLS, json)
        }
        AddressPlanCmd::Remove { id } => {
            c.delete(&format!("/v1/address-plan/{id}")).await?;
            if !json {
                println!("已删除 removed {id}");
            }
        }
    }
    Ok(())
}

const EVENT_COLS: &[(&str, &str)] = &[
    ("时间 at", "at"),
    ("设备 appliance", "appliance"),
    ("类别 category", "category"),
    ("级别 severity", "severity"),
    ("处置 action", "action"),
    ("源 source", "src_ip"),
    ("目的 destination", "dst_ip"),
    ("端口 port", "dst_port"),
    ("规则 rule", "rule"),
    ("部门 department", "department_id"),
];

const RULE_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("部门 department", "department_id"),
    ("类别 category", "category"),
    ("级别 severity", "min_severity"),
    ("阈值 threshold", "threshold"),
    ("窗口(秒) window s", "window_secs"),
    ("上次告警 last fired", "last_fired_at"),
];

pub async fn secevent(c: &Client, cmd: SecEventCmd, json: bool) -> Result<()> {
    match cmd {
        SecEventCmd::List {
            department,
            category,
            severity,
            action,
            address,
            q,
            from,
            limit,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            push(&mut query, "department_id", department);
            push(&mut query, "category", category);
            push(&mut query, "severity", severity);
            push(&mut query, "action", action);
            push(&mut query, "address", address);
            push(&mut query, "q", q);
            push(&mut query, "from", from);
            let v = c.get("/v1/security-events", &query).await?;
            if json {
                output::json(&v)
            } else {
                table(items(&v), EVENT_COLS)
            }
        }
        SecEventCmd::Counts {
            by,
            from,
            to,
            department,
        } => {
            let mut query = vec![("by", by)];
            push(&mut query, "from", from);
            push(&mut query, "to", to);
            push(&mut query, "department_id", department);
            let v = c.get("/v1/security-events/counts", &query).await?;
            if json {
                output::json(&v)
            } else {
                table(
                    items(&v),
                    &[("分组 key", "key"), ("事件数 events", "events")],
                )
            }
        }
        SecEventCmd::Intake => {
            let v = c.get("/v1/security-events/intake", &[]).await?;
            output::one(
                &v,
                &[
                    ("UDP", "udp"),
                    ("TCP", "tcp"),
                    ("已接收 received", "received"),
                    ("已写入 written", "written"),
                    ("队列满丢弃 dropped", "dropped"),
                    ("排队中 queued", "queued"),
                    ("队列上限 queue bound", "queue_bound"),
                    ("写入失败 write errors", "write_errors"),
                ],
                json,
            )
        }
        SecEventCmd::Rules => {
            let v = c.get("/v1/security-event-rules", &[]).await?;
            if json {
                output::json(&v)
            } else {
                table(items(&v), RULE_COLS)
            }
        }
        SecEventCmd::AddRule {
            name,
            threshold,
            minutes,
            severity,
            department,
            category,
        } => {
            let v = c
                .post(
                    "/v1/security-event-rules",
                    json!({ "name": name, "threshold": threshold, "window_minutes": minutes, "min_severity": severity, "department_id": department, "category": category }),
                )
                .await?;
            output::one(&v, RULE_COLS, json)
        }
        SecEventCmd::RemoveRule { id } => {
            c.delete(&format!("/v1/security-event-rules/{id}")).await?;
            if !json {
                println!("已删除 removed {id}");
            }
        }
        SecEventCmd::Policy {
            retention_days,
            critical_days,
            high_days,
            medium_days,
            low_days,
        } => {
            let mut v = c.get("/v1/security-policy", &[]).await?;
            let mut changed = false;
            for (k, x) in [
                ("event_retention_days", retention_days),
                ("deadline_days_critical", critical_days),
                ("deadline_days_high", high_days),
                ("deadline_days_medium", medium_days),
                ("deadline_days_low", low_days),
            ] {
                if let Some(x) = x {
                    v[k] = json!(x);
                    changed = true;
                }
            }
            if changed {
                v = c.put("/v1/security-policy", v).await?;
            }
            output::one(
                &v,
                &[
                    ("事件保留天数 retention days", "event_retention_days"),
                    ("严重 critical", "deadline_days_critical"),
                    ("高危 high", "deadline_days_high"),
                    ("中危 medium", "deadline_days_medium"),
                    ("低危 low", "deadline_days_low"),
                ],
                json,
            )
        }
    }
    Ok(())
}

const VULN_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("地址 address", "address"),
    ("端口 port", "port"),
    ("漏洞 title", "title"),
    ("级别 severity", "severity"),
    ("状态 state", "state"),
    ("期限 deadline", "deadline"),
    ("超期 overdue", "overdue"),
    ("部门 department", "department_id"),
];

pub async fn vuln(c: &Client, cmd: VulnCmd, json: bool) -> Result<()> {
    match cmd {
        VulnCmd::List {
            department,
            state,
            severity,
            address,
            overdue,
            limit,
        } => {
            let mut q = vec![("limit", limit.to_string())];
            push(&mut q, "department_id", department);
            push(&mut q, "state", state);
            push(&mut q, "severity", severity);
            push(&mut q, "address", address);
            if overdue {
                q.push(("overdue", "true".into()));
            }
            let v = c.get("/v1/vulnerabilities", &q).await?;
            if json {
                output::json(&v)
            } else {
                table(items(&v), VULN_COLS)
            }
        }
        VulnCmd::Import { file, format } => {
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("读取文件失败 cannot read {}", file.display()))?;
            let format = match format {
                Some(f) => f,
                None => match file.extension().and_then(|e| e.to_str()) {
                    Some("csv") => "csv".into(),
                    Some("nessus" | "xml") => "nessus".into(),
                    _ => bail!("请用 --format 指定 csv 或 nessus / give --format csv or nessus"),
                },
            };
            let source = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scan".into());
            let v = c
                .post(
                    "/v1/vulnerability-imports",
                    json!({ "source": source, "format": format, "content": content }),
                )
                .await?;
            output::one(
                &v,
                &[
                    ("编号 id", "id"),
                    ("主机 hosts", "hosts"),
                    ("漏洞 findings", "findings"),
                    ("新增 created", "created"),
                    ("更新 updated", "updated"),
                    ("重新打开 reopened", "reopened"),
                    ("复扫确认 verified", "verified"),
                    ("重复 duplicates", "duplicates"),
                ],
                json,
            )
        }
        VulnCmd::Set { id, state, note } => {
            let v = c
                .post(
                    &format!("/v1/vulnerabilities/{id}/state"),
                    json!({ "state": state, "note": note }),
                )
                .await?;
            output::one(&v, VULN_COLS, json)
        }
        VulnCmd::Counts { by } => {
            let v = c.get("/v1/vulnerabilities/counts", &[("by", by)]).await?;
            if json {
                output::json(&v)
            } else {
                table(
                    items(&v),
                    &[
                        ("分组 key", "key"),
                        ("待修复 open", "open"),
                        ("超期 overdue", "overdue"),
                        ("已修复 fixed", "fixed"),
                        ("已验证 verified", "verified"),
                        ("按期修复 in time", "fixed_within_deadline"),
                        ("接受风险 accepted", "accepted"),
                    ],
                )
            }
        }
    }
    Ok(())
}
