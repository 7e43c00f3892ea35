//! Client commands for operations (运维): `ticket` (工单: list, show with the timeline,
//! open, accept, resolve, reopen, comment, close with a rating, deadlines), `inspection`
//! (巡检: plans, run now, runs) and `sla` (服务质量考核: scores, compute, policy).

use crate::client::Client;
use crate::output::{one, table};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum TicketCmd {
    /// Tickets the caller may see, newest first.
    List {
        /// open, accepted, resolved or closed.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        provider: Option<String>,
    },
    /// One ticket with its timeline.
    Show { id: String },
    /// Open a ticket: about a resource (`--instance`, `--volume`, `--host`) or general
    /// (`--provider`, `--department`).
    Open {
        #[arg(long)]
        title: String,
        /// fault, service_request, change or consultation.
        #[arg(long, default_value = "fault")]
        kind: String,
        /// l1 (most urgent) … l4.
        #[arg(long, default_value = "l3")]
        priority: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, conflicts_with_all = ["volume", "host"])]
        instance: Option<String>,
        #[arg(long, conflicts_with = "host")]
        volume: Option<String>,
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        department: Option<String>,
    },
    /// The provider's operator accepts it (its response).
    Accept {
        id: String,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
    Resolve {
        id: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// The department sends a resolved ticket back.
    Reopen {
        id: String,
        #[arg(long)]
        note: String,
    },
    Comment {
        id: String,
        #[arg(long)]
        note: String,
    },
    /// The department confirms and rates (1–5).
    Close {
        id: String,
        #[arg(long)]
        rating: Option<i64>,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Response and resolution deadlines per priority; set with `--priority l1
    /// --response 15 --resolution 240` (minutes).
    Deadlines {
        #[arg(long, requires_all = ["response", "resolution"])]
        priority: Option<String>,
        #[arg(long)]
        response: Option<i64>,
        #[arg(long)]
        resolution: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum InspectionCmd {
    Plans,
    /// A daily plan: `inspection add --name 每日巡检 --checks host_health,capacity,cert_expiry,admin_check --hour 2`.
    Add {
        #[arg(long)]
        name: String,
        /// Comma-separated: host_health, capacity, cert_expiry, admin_check, audit_chain
        /// (the auditor's, alone).
        #[arg(long)]
        checks: String,
        #[arg(long, default_value_t = 2)]
        hour: i64,
    },
    Remove {
        id: String,
    },
    /// Runs a plan now and prints its results.
    Run {
        id: String,
    },
    Runs {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    Show {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum SlaCmd {
    /// Stored scores, of one month (YYYY-MM) or all.
    Scores {
        #[arg(long)]
        month: Option<String>,
    },
    /// Computes the month's scores now and writes each provider's credit line.
    Compute { month: String },
    /// Weights and credit bands.
    Policy,
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

const TICKET_COLS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("标题 title", "title"),
    ("类型 kind", "kind"),
    ("级别 priority", "priority"),
    ("状态 state", "state"),
    ("云服务商 provider", "provider_id"),
    ("响应时限 respond by", "respond_by"),
    ("解决时限 resolve by", "resolve_by"),
    ("升级 escalation", "escalation"),
    ("评分 rating", "rating"),
];

fn show_ticket(v: &Value, json: bool) {
    if json {
        crate::output::json(v);
        return;
    }
    one(v, TICKET_COLS, false);
    table(
        &v["timeline"].as_array().cloned().unwrap_or_default(),
        &[
            ("时间 at", "at"),
            ("操作人 actor", "actor"),
            ("动作 action", "action"),
            ("说明 note", "note"),
        ],
    );
}

pub async fn ticket(c: &Client, cmd: TicketCmd, json: bool) -> Result<()> {
    let step = |id: &str, what: &str| format!("/v1/tickets/{id}/{what}");
    let v = match cmd {
        TicketCmd::List { state, provider } => {
            let mut q = Vec::new();
            if let Some(s) = state {
                q.push(("state", s));
            }
            if let Some(p) = provider {
                q.push(("provider_id", p));
            }
            let v = c.get("/v1/tickets", &q).await?;
            if !json {
                table(&items(&v), TICKET_COLS);
                return Ok(());
            }
            crate::output::json(&v);
            return Ok(());
        }
        TicketCmd::Show { id } => c.get(&format!("/v1/tickets/{id}"), &[]).await?,
        TicketCmd::Open {
            title,
            kind,
            priority,
            description,
            instance,
            volume,
            host,
            provider,
            department,
        } => {
            let subject = [("instance", instance), ("volume", volume), ("host", host)]
                .into_iter()
                .find_map(|(k, v)| v.map(|v| (k, v)));
            let body = json!({
                "title": title, "kind": kind, "priority": priority, "description": description,
                "subject_kind": subject.as_ref().map(|s| s.0),
                "subject_id": subject.as_ref().map(|s| s.1.clone()),
                "provider_id": provider, "department_id": department,
            });
            let t = c.post("/v1/tickets", body).await?;
            one(&t, TICKET_COLS, json);
            return Ok(());
        }
        TicketCmd::Accept { id, assignee, note } => {
            c.post(
                &step(&id, "accept"),
                json!({ "assignee": assignee, "note": note }),
            )
            .await?
        }
        TicketCmd::Resolve { id, note } => {
            c.post(&step(&id, "resolve"), json!({ "note": note }))
                .await?
        }
        TicketCmd::Reopen { id, note } => {
            c.post(&step(&id, "reopen"), json!({ "note": note }))
                .await?
        }
        TicketCmd::Comment { id, note } => {
            c.post(&step(&id, "comments"), json!({ "note": note }))
                .await?
        }
        TicketCmd::Close { id, rating, note } => {
            c.post(
                &step(&id, "close"),
                json!({ "rating": rating, "note": note }),
            )
            .await?
        }
        TicketCmd::Deadlines {
            priority,
            response,
            resolution,
        } => {
            let mut v = c.get("/v1/ticket-settings", &[]).await?;
            if let (Some(p), Some(r), Some(s)) = (priority, response, resolution) {
                if let Some(list) = v["deadlines"].as_array_mut() {
                    for d in list.iter_mut().filter(|d| d["priority"] == p.as_str()) {
                        d["response_mins"] = json!(r);
                        d["resolution_mins"] = json!(s);
                    }
                }
                v = c.put("/v1/ticket-settings", v).await?;
            }
            if json {
                crate::output::json(&v);
            } else {
                table(
                    &v["deadlines"].as_array().cloned().unwrap_or_default(),
                    &[
                        ("级别 priority", "priority"),
                        ("响应 response (min)", "response_mins"),
                        ("解决 resolution (min)", "resolution_mins"),
                    ],
                );
            }
            return Ok(());
        }
    };
    show_ticket(&v, json);
    Ok(())
}

const RUN_COLS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("计划 plan", "plan_name"),
    ("触发 trigger", "trigger"),
    ("开始 started", "started_at"),
    ("通过 passed", "passed"),
    ("检查项 checks", "checks"),
    ("未通过 failed", "failed"),
];

fn show_run(v: &Value, json: bool) {
    if json {
        crate::output::json(v);
        return;
    }
    one(v, RUN_COLS, false);
    table(
        &v["results"].as_array().cloned().unwrap_or_default(),
        &[
            ("检查 check", "check"),
            ("云服务商 provider", "provider_id"),
            ("通过 passed", "passed"),
            ("详情 detail", "detail"),
            ("工单 ticket", "ticket_id"),
        ],
    );
}

pub async fn inspection(c: &Client, cmd: InspectionCmd, json: bool) -> Result<()> {
    match cmd {
        InspectionCmd::Plans => {
            let v = c.get("/v1/inspection-plans", &[]).await?;
            if json {
                crate::output::json(&v);
            } else {
                table(
                    &items(&v),
                    &[
                        ("ID", "id"),
                        ("名称 name", "name"),
                        ("检查 checks", "checks"),
                        ("时刻 hour", "hour"),
                        ("归属 owner", "owner"),
                        ("上次 last day", "last_day"),
                    ],
                );
            }
        }
        InspectionCmd::Add { name, checks, hour } => {
            let checks: Vec<&str> = checks.split(',').map(str::trim).collect();
            let v = c
                .post(
                    "/v1/inspection-plans",
                    json!({ "name": name, "checks": checks, "hour": hour }),
                )
                .await?;
            one(&v, &[("ID", "id"), ("名称 name", "name")], json);
        }
        InspectionCmd::Remove { id } => {
            c.delete(&format!("/v1/inspection-plans/{id}")).await?;
            println!("已删除 removed");
        }
        InspectionCmd::Run { id } => {
            let v = c
                .post(&format!("/v1/inspection-plans/{id}/run"), json!({}))
                .await?;
            show_run(&v, json);
        }
        InspectionCmd::Runs { limit } => {
            let v = c
                .get("/v1/inspection-runs", &[("limit", limit.to_string())])
                .await?;
            if json {
                crate::output::json(&v);
            } else {
                table(&items(&v), RUN_COLS);
            }
        }
        InspectionCmd::Show { id } => {
            let v = c.get(&format!("/v1/inspection-runs/{id}"), &[]).await?;
            show_run(&v, json);
        }
    }
    Ok(())
}

pub async fn sla(c: &Client, cmd: SlaCmd, json: bool) -> Result<()> {
    let v = match cmd {
        SlaCmd::Scores { month } => {
            let q: Vec<(&str, String)> = month.map(|m| ("month", m)).into_iter().collect();
            c.get("/v1/sla/scores", &q).await?
        }
        SlaCmd::Compute { month } => {
            c.post(&format!("/v1/sla/scores/{month}/compute"), json!({}))
                .await?
        }
        SlaCmd::Policy => {
            let v = c.get("/v1/sla/policy", &[]).await?;
            crate::output::json(&v);
            return Ok(());
        }
    };
    if json {
        crate::output::json(&v);
        return Ok(());
    }
    let rows: Vec<Value> = items(&v)
        .into_iter()
        .map(|mut s| {
            s["availability"] = json!(format!(
                "{:.4}%",
                s["availability_ppm"].as_f64().unwrap_or(0.0) / 10_000.0
            ));
            let fen = s["credit_fen"].as_i64().unwrap_or(0);
            s["credit_yuan"] = json!(format!("{}.{:02}", fen / 100, fen % 100));
            s
        })
        .collect();
    table(
        &rows,
        &[
            ("月份 month", "month"),
            ("云服务商 provider", "provider_name"),
            ("得分 score", "score"),
            ("可用性 availability", "availability"),
            ("停机分钟 down min", "down_minutes"),
            ("扣减 credit %", "credit_pct"),
            ("扣减金额 credit (元)", "credit_yuan"),
        ],
    );
    Ok(())
}
