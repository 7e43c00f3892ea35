//! Client commands for high availability, maintenance and consolidation: `ha recoveries |
//! policy`, `host-group list | set | delete`, `host evacuate | evacuation` (here as `ha
//! evacuate | evacuation`) and `consolidation propose | list | show | approve | stop`.

use crate::client::Client;
use crate::output::{self, record, table};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Subcommand)]
pub enum HaCmd {
    /// Recoveries after host failures: detection, fence and running-again times.
    Recoveries {
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        instance: Option<String>,
    },
    /// An instance's HA policy: restart, leave_stopped or inherit (its host group's).
    Policy {
        instance: String,
        policy: String,
        /// Restart order 0–100, higher first (platform admin).
        #[arg(long)]
        priority: Option<i32>,
    },
    /// Put a host into maintenance and live-migrate its running instances away.
    Evacuate {
        host: String,
        /// Wait until the evacuation ends, showing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// The last evacuation of a host and its progress.
    Evacuation { host: String },
}

#[derive(Subcommand)]
pub enum HostGroupCmd {
    List,
    /// Create or change a group: its HA policy and its hosts (comma-separated ids).
    Set {
        name: String,
        #[arg(long)]
        policy: String,
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum ConsolidationCmd {
    /// Compute a plan that frees hosts (receiving hosts kept under the ceiling).
    Propose {
        /// Ceiling of allocated vCPU and memory on receiving hosts, ‰ (default 800).
        #[arg(long)]
        ceiling: Option<u32>,
        #[arg(long)]
        zone: Option<String>,
    },
    List,
    Show {
        id: String,
    },
    /// Approve a proposed plan: its migrations run one at a time.
    Approve {
        id: String,
    },
    /// Stop an executing plan after the move in progress.
    Stop {
        id: String,
    },
}

const RECOVERY_COLS: &[(&str, &str)] = &[
    ("云主机 instance", "instance_name"),
    ("故障宿主机 host", "host_name"),
    ("结果 outcome", "outcome"),
    ("恢复耗时秒 secs", "recovery_secs"),
    ("发现 detected", "detected_at"),
    ("隔离 fenced", "fenced_at"),
    ("恢复 restarted", "restarted_at"),
    ("原因 reason", "reason"),
];

const EVAC_FIELDS: &[(&str, &str)] = &[
    ("宿主机 host", "host_id"),
    ("状态 state", "state"),
    ("剩余 remaining", "remaining"),
    ("已迁出 migrated", "migrated"),
    ("迁移中 in progress", "in_progress"),
    ("开始 started", "started_at"),
    ("结束 finished", "finished_at"),
];

const PLAN_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("状态 state", "state"),
    ("已完成 done", "next_move"),
    ("创建 created", "created_at"),
];

fn show_evacuation(v: &Value, json: bool) {
    if json {
        output::json(v);
        return;
    }
    record(v, EVAC_FIELDS);
    let failures = v["failures"].as_array().cloned().unwrap_or_default();
    if !failures.is_empty() {
        println!("\n未能迁出 could not leave:");
        table(
            &failures,
            &[
                ("云主机 instance", "instance_id"),
                ("原因 reason", "reason"),
            ],
        );
    }
}

fn show_plan(v: &Value, json: bool) {
    if json {
        output::json(v);
        return;
    }
    record(
        v,
        &[
            ("编号 id", "id"),
            ("状态 state", "state"),
            ("已完成 done", "next_move"),
            ("版本 generation", "generation"),
        ],
    );
    let pct = |x: &Value| format!("{:.1}%", x.as_f64().unwrap_or(0.0) / 10.0);
    println!(
        "使用中宿主机 hosts in use: {} → {}   vCPU 分配 {} → {}   内存分配 memory {} → {}   腾空 freed: {}",
        v["before"]["hosts_in_use"],
        v["after"]["hosts_in_use"],
        pct(&v["before"]["cpu_alloc_permille"]),
        pct(&v["after"]["cpu_alloc_permille"]),
        pct(&v["before"]["mem_alloc_permille"]),
        pct(&v["after"]["mem_alloc_permille"]),
        v["freed_hosts"].as_array().map(Vec::len).unwrap_or(0),
    );
    let moves = v["moves"].as_array().cloned().unwrap_or_default();
    table(
        &moves,
        &[
            ("云主机 instance", "instance_name"),
            ("从 from", "from_host_id"),
            ("到 to", "to_host_id"),
        ],
    );
    let skipped = v["skipped"].as_array().cloned().unwrap_or_default();
    if !skipped.is_empty() {
        println!("\n跳过 skipped:");
        table(
            &skipped,
            &[
                ("云主机 instance", "instance_id"),
                ("原因 reason", "reason"),
            ],
        );
    }
}

pub async fn ha(c: &Client, cmd: HaCmd, json: bool) -> Result<()> {
    match cmd {
        HaCmd::Recoveries { host, instance } => {
            let mut q = Vec::new();
            if let Some(h) = host {
                q.push(("host_id", h));
            }
            if let Some(i) = instance {
                q.push(("instance_id", i));
            }
            let v = c.get("/v1/ha/recoveries", &q).await?;
            if json {
                output::json(&v);
            } else {
                table(
                    v["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                    RECOVERY_COLS,
                );
            }
        }
        HaCmd::Policy {
            instance,
            policy,
            priority,
        } => {
            let v = c
                .put(
                    &format!("/v1/instances/{instance}/ha"),
                    json!({ "ha_policy": policy, "priority": priority }),
                )
                .await?;
            output::one(
                &v,
                &[
                    ("编号 id", "id"),
                    ("名称 name", "name"),
                    ("高可用策略 HA policy", "ha_policy"),
                    ("优先级 priority", "ha_priority"),
                ],
                json,
            );
        }
        HaCmd::Evacuate { host, wait } => {
            let mut v = c
                .post(&format!("/v1/hosts/{host}/evacuate"), json!({}))
                .await?;
            while wait && v["state"] == "running" {
                eprintln!(
                    "迁出中 evacuating: {} left, {} migrated, {} in progress",
                    v["remaining"], v["migrated"], v["in_progress"]
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
                v = c.get(&format!("/v1/hosts/{host}/evacuation"), &[]).await?;
            }
            show_evacuation(&v, json);
        }
        HaCmd::Evacuation { host } => {
            let v = c.get(&format!("/v1/hosts/{host}/evacuation"), &[]).await?;
            show_evacuation(&v, json);
        }
    }
    Ok(())
}

pub async fn host_group(c: &Client, cmd: HostGroupCmd, json: bool) -> Result<()> {
    let cols = &[
        ("名称 name", "name"),
        ("高可用策略 HA policy", "ha_policy"),
        ("宿主机 hosts", "hosts"),
    ];
    match cmd {
        HostGroupCmd::List => {
            let v = c.get("/v1/host-groups", &[]).await?;
            if json {
                output::json(&v);
            } else {
                table(
                    v["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                    cols,
                );
            }
        }
        HostGroupCmd::Set {
            name,
            policy,
            hosts,
        } => {
            let v = c
                .put(
                    &format!("/v1/host-groups/{name}"),
                    json!({ "ha_policy": policy, "hosts": hosts }),
                )
                .await?;
            output::one(&v, cols, json);
        }
        HostGroupCmd::Delete { name } => {
            c.delete(&format!("/v1/host-groups/{name}")).await?;
            eprintln!("已删除 deleted");
        }
    }
    Ok(())
}

pub async fn consolidation(c: &Client, cmd: ConsolidationCmd, json: bool) -> Result<()> {
    match cmd {
        ConsolidationCmd::Propose { ceiling, zone } => {
            let v = c
                .post(
                    "/v1/consolidation/plans",
                    json!({ "ceiling_permille": ceiling, "zone_id": zone }),
                )
                .await?;
            show_plan(&v, json);
        }
        ConsolidationCmd::List => {
            let v = c.get("/v1/consolidation/plans", &[]).await?;
            if json {
                output::json(&v);
            } else {
                table(
                    v["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                    PLAN_COLS,
                );
            }
        }
        ConsolidationCmd::Show { id } => {
            let v = c.get(&format!("/v1/consolidation/plans/{id}"), &[]).await?;
            show_plan(&v, json);
        }
        ConsolidationCmd::Approve { id } => {
            let p = c.get(&format!("/v1/consolidation/plans/{id}"), &[]).await?;
            let v = c
                .post(
                    &format!("/v1/consolidation/plans/{id}/approve"),
                    json!({ "generation": p["generation"] }),
                )
                .await?;
            show_plan(&v, json);
        }
        ConsolidationCmd::Stop { id } => {
            let v = c
                .post(&format!("/v1/consolidation/plans/{id}/stop"), json!({}))
                .await?;
            show_plan(&v, json);
        }
    }
    Ok(())
}
