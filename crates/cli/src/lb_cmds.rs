//! Client commands for load balancers (负载均衡): `lb list|create|show|delete` and the
//! listener and member edits, each a read of the current configuration and a whole
//! replacement conditional on its generation (over the public API only).

use crate::client::Client;
use crate::compute_cmds::project_id;
use crate::output::{self, record, table};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum LbCmd {
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Create a load balancer with its virtual IP on a subnet (listeners are added after).
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        subnet: String,
        #[arg(long)]
        name: String,
        /// A fixed virtual IP of the subnet (default: the next free one).
        #[arg(long)]
        vip: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// A load balancer with its listeners and each member's health.
    Show {
        id: String,
    },
    /// Add a listener, e.g. `--protocol http --port 80 --algorithm round_robin --check-path /healthz`.
    AddListener {
        id: String,
        /// `tcp` or `http`.
        #[arg(long)]
        protocol: String,
        #[arg(long)]
        port: u16,
        /// `round_robin` or `least_connections`.
        #[arg(long, default_value = "round_robin")]
        algorithm: String,
        /// Check members by HTTP GET of this path (default: a TCP connect).
        #[arg(long)]
        check_path: Option<String>,
        #[arg(long)]
        check_status: Option<u16>,
        #[arg(long, default_value_t = 2000)]
        interval_ms: u32,
        #[arg(long, default_value_t = 2)]
        rise: u8,
        #[arg(long, default_value_t = 3)]
        fall: u8,
    },
    RemoveListener {
        id: String,
        port: u16,
    },
    /// Add a member (an instance's NIC and port) to a listener's pool.
    AddMember {
        id: String,
        #[arg(long)]
        listener: u16,
        #[arg(long)]
        nic: String,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 1)]
        weight: u16,
    },
    RemoveMember {
        id: String,
        #[arg(long)]
        listener: u16,
        #[arg(long)]
        nic: String,
    },
    Delete {
        id: String,
    },
}

const LB_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("虚拟IP vip", "vip"),
    ("状态 state", "state"),
    ("宿主机 host", "host_id"),
    ("模拟 simulated", "simulated"),
    ("版本 generation", "generation"),
    ("错误 error", "last_error"),
];
const LISTENER_COLS: &[(&str, &str)] = &[
    ("端口 port", "port"),
    ("协议 protocol", "protocol"),
    ("算法 algorithm", "algorithm"),
];
const MEMBER_COLS: &[(&str, &str)] = &[
    ("监听端口 listener", "listener_port"),
    ("网卡 nic", "nic_id"),
    ("地址 address", "address"),
    ("端口 port", "port"),
    ("健康 status", "status"),
];

fn show(v: &Value, json: bool) {
    if json {
        return output::json(v);
    }
    record(v, LB_COLS);
    println!();
    table(
        v["listeners"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        LISTENER_COLS,
    );
    println!();
    table(
        v["members"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        MEMBER_COLS,
    );
}

/// Replaces the listeners after `edit` changed the current ones.
async fn edit(
    c: &Client,
    id: &str,
    json: bool,
    f: impl FnOnce(&mut Vec<Value>) -> Result<()>,
) -> Result<()> {
    let lb = c.get(&format!("/v1/load-balancers/{id}"), &[]).await?;
    let mut ls = lb["listeners"].as_array().cloned().unwrap_or_default();
    f(&mut ls)?;
    let body = json!({ "generation": lb["generation"], "listeners": ls });
    show(
        &c.put(&format!("/v1/load-balancers/{id}/listeners"), body)
            .await?,
        json,
    );
    Ok(())
}

fn listener(ls: &mut [Value], port: u16) -> Result<&mut Value> {
    ls.iter_mut()
        .find(|l| l["port"] == json!(port))
        .ok_or_else(|| {
            anyhow::anyhow!("端口 {port} 没有监听器 there is no listener on port {port}")
        })
}

pub async fn lb(c: &Client, cmd: LbCmd, json: bool) -> Result<()> {
    match cmd {
        LbCmd::List { project } => {
            let mut q = Vec::new();
            if let Some(p) = project {
                q.push(("project_id", project_id(c, &p).await?));
            }
            let v = c.get("/v1/load-balancers", &q).await?;
            if json {
                output::json(&v)
            } else {
                table(v.as_array().map(Vec::as_slice).unwrap_or(&[]), LB_COLS)
            }
        }
        LbCmd::Create {
            project,
            subnet,
            name,
            vip,
            description,
        } => {
            let project = project_id(c, &project).await?;
            let body = json!({ "project_id": project, "subnet_id": subnet, "name": name, "vip": vip, "description": description });
            show(&c.post("/v1/load-balancers", body).await?, json)
        }
        LbCmd::Show { id } => show(
            &c.get(&format!("/v1/load-balancers/{id}"), &[]).await?,
            json,
        ),
        LbCmd::AddListener {
            id,
            protocol,
            port,
            algorithm,
            check_path,
            check_status,
            interval_ms,
            rise,
            fall,
        } => {
            edit(c, &id, json, |ls| {
                ls.push(json!({
                    "protocol": protocol, "port": port, "algorithm": algorithm,
                    "health_check": { "http_path": check_path, "expected_status": check_status,
                        "interval_ms": interval_ms, "rise": rise, "fall": fall },
                    "members": [],
                }));
                Ok(())
            })
            .await?
        }
        LbCmd::RemoveListener { id, port } => {
            edit(c, &id, json, |ls| {
                listener(ls, port)?;
                ls.retain(|l| l["port"] != json!(port));
                Ok(())
            })
            .await?
        }
        LbCmd::AddMember {
            id,
            listener: lp,
            nic,
            port,
            weight,
        } => {
            edit(c, &id, json, |ls| {
                let l = listener(ls, lp)?;
                if let Some(m) = l["members"].as_array_mut() {
                    m.push(json!({ "nic_id": nic, "port": port, "weight": weight }));
                }
                Ok(())
            })
            .await?
        }
        LbCmd::RemoveMember {
            id,
            listener: lp,
            nic,
        } => {
            edit(c, &id, json, |ls| {
                let l = listener(ls, lp)?;
                if let Some(m) = l["members"].as_array_mut() {
                    m.retain(|x| x["nic_id"] != json!(nic));
                }
                Ok(())
            })
            .await?
        }
        LbCmd::Delete { id } => {
            c.delete(&format!("/v1/load-balancers/{id}")).await?;
            eprintln!("正在删除 being deleted");
        }
    }
    Ok(())
}
