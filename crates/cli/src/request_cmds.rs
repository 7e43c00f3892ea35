//! `zhengyun request …` and `zhengyun approval-chain …`: resource requests (资源申请) and
//! how they are reviewed, over the public API.

use crate::client::Client;
use crate::compute_cmds::{project_id, show};
use crate::output::{self, record, table};
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum RequestCmd {
    /// My requests (`--view all|to-decide|deliveries` for the others).
    List {
        #[arg(long, default_value = "mine")]
        view: String,
        #[arg(long)]
        state: Option<String>,
    },
    /// A new draft for instances (N × flavor + image) and volumes.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        title: String,
        /// 用途.
        #[arg(long)]
        purpose: String,
        /// Instances as `name:flavor:image:count` (repeatable), e.g. `web:2C4G:CentOS-7.9:2`.
        #[arg(long = "instances")]
        instances: Vec<String>,
        /// Volumes as `name:size_gib` (repeatable).
        #[arg(long = "volume")]
        volumes: Vec<String>,
        /// 使用期限, RFC 3339 (e.g. 2027-06-30T00:00:00+08:00).
        #[arg(long)]
        lease_end: Option<String>,
        /// 等保级别 1–4.
        #[arg(long)]
        mlps_level: Option<u8>,
        /// Submit it at once.
        #[arg(long)]
        submit: bool,
    },
    /// A request with its timeline.
    Get {
        id: String,
    },
    Submit {
        id: String,
    },
    Withdraw {
        id: String,
    },
    Copy {
        id: String,
    },
    /// Approve the current step (a supervisor may choose the provider and zone).
    Approve {
        id: String,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        comment: Option<String>,
    },
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Send it back to the requester for changes.
    Return {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Accept a delivery (验收), or report a problem with `--problem`.
    Accept {
        id: String,
        #[arg(long)]
        problem: Option<String>,
    },
    /// Hand a delivery over again after a reported problem (providers' operators).
    Redeliver {
        id: String,
        #[arg(long)]
        note: String,
    },
}

#[derive(Subcommand)]
pub enum ChainCmd {
    /// The chains configured (or, with `--department`, the ones that apply to it).
    List {
        #[arg(long)]
        department: Option<String>,
    },
    /// Sets a chain: steps as `name:role:hours` (role dept_admin, supervisor or finance).
    Set {
        #[arg(long)]
        department: Option<String>,
        #[arg(long, default_value = "new")]
        kind: String,
        #[arg(long = "step", required = true)]
        steps: Vec<String>,
        /// Approve without review at or below this many vCPUs.
        #[arg(long)]
        auto_max_vcpus: Option<u32>,
    },
    /// Back to the platform's default for the department (or the built-in default).
    Delete {
        /// `platform` or a department id.
        scope: String,
        kind: String,
    },
    /// Whether a department takes resources only through requests.
    RequestsOnly {
        department: String,
        #[arg(long)]
        enabled: bool,
    },
}

const REQUEST_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("标题 title", "title"),
    ("类型 kind", "kind"),
    ("状态 state", "state"),
    ("申请人 requester", "requester_name"),
    ("步骤 step", "current_step"),
    ("提交 submitted", "submitted_at"),
];

const EVENT_COLS: &[(&str, &str)] = &[
    ("时间 at", "at"),
    ("动作 action", "action"),
    ("人员 by", "actor_name"),
    ("步骤 step", "step"),
    ("意见 reason", "reason"),
];

fn split<const N: usize>(s: &str, what: &str) -> Result<[String; N]> {
    let parts: Vec<String> = s.split(':').map(str::to_string).collect();
    match parts.try_into() {
        Ok(a) => Ok(a),
        Err(_) => bail!("{what} 格式不对 malformed: {s}"),
    }
}

fn one(v: &Value, json: bool) -> Result<()> {
    if json {
        output::json(v);
    } else {
        record(v, REQUEST_COLS);
    }
    Ok(())
}

pub async fn request(c: &Client, cmd: RequestCmd, json: bool) -> Result<()> {
    let act = |id: &str, verb: &str| format!("/v1/requests/{id}/{verb}");
    match cmd {
        RequestCmd::List { view, state } => {
            let mut q = vec![
                ("limit", "1000".to_string()),
                ("view", view.replace('-', "_")),
            ];
            if let Some(s) = state {
                q.push(("state", s));
            }
            show(&c.get("/v1/requests", &q).await?, REQUEST_COLS, json);
            Ok(())
        }
        RequestCmd::Create {
            project,
            title,
            purpose,
            instances,
            volumes,
            lease_end,
            mlps_level,
            submit,
        } => {
            let mut items = Vec::new();
            for i in &instances {
                let [name, flavor, image, count] = split::<4>(i, "--instances")?;
                let count: u32 = count.parse()?;
                items.push(json!({ "type": "instances", "name": name, "flavor": flavor, "image": image, "count": count }));
            }
            for v in &volumes {
                let [name, size] = split::<2>(v, "--volume")?;
                let size: u64 = size.parse()?;
                items.push(json!({ "type": "volume", "name": name, "size_gib": size }));
            }
            let project = project_id(c, &project).await?;
            let body = json!({ "project_id": project, "kind": "new", "title": title, "purpose": purpose, "items": items, "lease_end": lease_end, "mlps_level": mlps_level });
            let mut r = c.post("/v1/requests", body).await?;
            if submit {
                let id = r["id"].as_str().unwrap_or_default().to_string();
                r = c.post(&act(&id, "submit"), json!({})).await?;
            }
            one(&r, json)
        }
        RequestCmd::Get { id } => {
            let r = c.get(&format!("/v1/requests/{id}"), &[]).await?;
            if json {
                output::json(&r);
            } else {
                record(&r, REQUEST_COLS);
                println!();
                table(
                    r["timeline"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                    EVENT_COLS,
                );
            }
            Ok(())
        }
        RequestCmd::Submit { id } => one(&c.post(&act(&id, "submit"), json!({})).await?, json),
        RequestCmd::Withdraw { id } => one(&c.post(&act(&id, "withdraw"), json!({})).await?, json),
        RequestCmd::Copy { id } => one(&c.post(&act(&id, "copy"), json!({})).await?, json),
        RequestCmd::Approve {
            id,
            provider,
            zone,
            comment,
        } => one(
            &c.post(
                &act(&id, "approve"),
                json!({ "provider_id": provider, "zone_id": zone, "comment": comment }),
            )
            .await?,
            json,
        ),
        RequestCmd::Reject { id, reason } => one(
            &c.post(&act(&id, "reject"), json!({ "reason": reason }))
                .await?,
            json,
        ),
        RequestCmd::Return { id, reason } => one(
            &c.post(&act(&id, "return"), json!({ "reason": reason }))
                .await?,
            json,
        ),
        RequestCmd::Accept { id, problem: None } => {
            one(&c.post(&act(&id, "accept"), json!({})).await?, json)
        }
        RequestCmd::Accept {
            id,
            problem: Some(p),
        } => one(
            &c.post(&act(&id, "problem"), json!({ "reason": p })).await?,
            json,
        ),
        RequestCmd::Redeliver { id, note } => one(
            &c.post(&act(&id, "redeliver"), json!({ "reason": note }))
                .await?,
            json,
        ),
    }
}

const CHAIN_COLS: &[(&str, &str)] = &[
    ("部门 department", "department_id"),
    ("类型 kind", "kind"),
    ("自动审批vCPU auto", "auto_max_vcpus"),
    ("步骤 steps", "steps"),
];

pub async fn chain(c: &Client, cmd: ChainCmd, json: bool) -> Result<()> {
    match cmd {
        ChainCmd::List { department } => {
            let mut q = Vec::new();
            if let Some(d) = department {
                q.push(("department_id", d));
            }
            show(&c.get("/v1/approval-chains", &q).await?, CHAIN_COLS, json);
            Ok(())
        }
        ChainCmd::Set {
            department,
            kind,
            steps,
            auto_max_vcpus,
        } => {
            let mut s = Vec::new();
            for st in &steps {
                let [name, role, hours] = split::<3>(st, "--step")?;
                let scope = if role == "dept_admin" {
                    "department"
                } else {
                    "platform"
                };
                let hours: u32 = hours.parse()?;
                s.push(
                    json!({ "name": name, "role": role, "scope": scope, "deadline_hours": hours }),
                );
            }
            let body = json!({ "department_id": department, "kind": kind, "steps": s, "auto_max_vcpus": auto_max_vcpus });
            let v = c.put("/v1/approval-chains", body).await?;
            if json {
                output::json(&v);
            } else {
                record(&v, CHAIN_COLS);
            }
            Ok(())
        }
        ChainCmd::Delete { scope, kind } => {
            c.delete(&format!("/v1/approval-chains/{scope}/{kind}"))
                .await?;
            eprintln!("已恢复默认审批流程 back to the default chain");
            Ok(())
        }
        ChainCmd::RequestsOnly {
            department,
            enabled,
        } => {
            c.put(
                &format!("/v1/departments/{department}/requests-only"),
                json!({ "enabled": enabled }),
            )
            .await?;
            eprintln!("已设置 set: requests_only = {enabled}");
            Ok(())
        }
    }
}
