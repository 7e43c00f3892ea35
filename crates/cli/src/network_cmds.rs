//! Client commands for virtual networks: `vpc`, `subnet`, `nic`, `sg` (security groups)
//! and `eip` (elastic IPs), over the public API only.

use crate::client::Client;
use crate::compute_cmds::project_id;
use crate::output::{self, record, table};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum VpcCmd {
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Create a project's VPC, or (with --department and no --project) a department's
    /// shared one.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Outbound access (出网) for NICs without an elastic IP (default on).
        #[arg(long, value_parser = on_off)]
        outbound: Option<bool>,
    },
    /// Change a VPC: `--outbound on|off` switches its outbound access.
    Update {
        id: String,
        #[arg(long, value_parser = on_off)]
        outbound: Option<bool>,
    },
    /// A VPC with its subnets.
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
}

/// `on` / `off` (also `true`/`false`, `yes`/`no`).
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

#[derive(Subcommand)]
pub enum SubnetCmd {
    Create {
        #[arg(long)]
        vpc: String,
        #[arg(long)]
        name: String,
        /// e.g. 10.0.1.0/24
        #[arg(long)]
        cidr: String,
        #[arg(long)]
        gateway: Option<String>,
        /// Repeat for several.
        #[arg(long = "dns")]
        dns: Vec<String>,
        #[arg(long)]
        no_dhcp: bool,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum NicCmd {
    /// The NICs of an instance.
    List {
        instance: String,
    },
    /// Add a NIC to an instance (next free address unless --ip).
    Create {
        instance: String,
        #[arg(long)]
        subnet: String,
        #[arg(long)]
        ip: Option<String>,
        /// Security group ids; repeat for several.
        #[arg(long = "sg")]
        groups: Vec<String>,
    },
    /// Replace a NIC's security groups.
    SetGroups {
        id: String,
        #[arg(long = "sg")]
        groups: Vec<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum SgCmd {
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Create a group (outbound open, inbound closed until rules are added).
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    Show {
        id: String,
    },
    /// Add one rule, e.g. `--direction ingress --protocol tcp --ports 8080 --remote 10.0.0.0/8`.
    AddRule {
        id: String,
        #[arg(long, default_value = "ingress")]
        direction: String,
        #[arg(long)]
        protocol: String,
        /// A port or a range `8000-8080` (TCP/UDP).
        #[arg(long)]
        ports: Option<String>,
        /// A CIDR, or a security group id.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Remove the rule at a position (as `show` lists them, from 1).
    RemoveRule {
        id: String,
        position: usize,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum EipCmd {
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// The external networks (e.g. 政务外网) elastic IPs come from.
    Networks,
    /// Defines a zone's external network (the platform admin): its CIDR, gateway and the
    /// interface (or bridge) that carries it on every host of the zone. The zone's VPCs
    /// then get outbound access through it, and its elastic IPs 1:1 NAT.
    NetworkCreate {
        /// Zone id.
        #[arg(long)]
        zone: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        cidr: String,
        /// Default: the first host address.
        #[arg(long)]
        gateway: Option<String>,
        #[arg(long)]
        host_interface: String,
    },
    Allocate {
        #[arg(long)]
        project: String,
        /// External network id or name.
        #[arg(long)]
        network: String,
    },
    Bind {
        id: String,
        #[arg(long)]
        nic: String,
    },
    Unbind {
        id: String,
    },
    Release {
        id: String,
    },
}

const VPC_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("项目 project", "project_id"),
    ("VNI", "vni"),
    ("出网 outbound", "outbound"),
];
const SUBNET_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("网段 cidr", "cidr"),
    ("网关 gateway", "gateway"),
    ("DHCP", "dhcp"),
];
const NIC_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("序号 index", "index"),
    ("地址 ip", "ip"),
    ("MAC", "mac"),
    ("子网 subnet", "subnet_id"),
    ("安全组 groups", "security_group_ids"),
];
const SG_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("项目 project", "project_id"),
    ("版本 generation", "generation"),
];
const RULE_COLS: &[(&str, &str)] = &[
    ("方向 direction", "direction"),
    ("协议 protocol", "protocol"),
    ("起始端口 from", "port_min"),
    ("结束端口 to", "port_max"),
    ("远端 CIDR", "remote_cidr"),
    ("远端安全组 group", "remote_group_id"),
];
const EIP_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("地址 address", "address"),
    ("项目 project", "project_id"),
    ("网卡 nic", "nic_id"),
];
const EXT_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("网段 cidr", "cidr"),
    ("网关 gateway", "gateway"),
    ("接口 interface", "host_interface"),
];

fn list(v: &Value, cols: &[(&str, &str)], json: bool) {
    if json {
        output::json(v)
    } else {
        table(v.as_array().map(Vec::as_slice).unwrap_or(&[]), cols)
    }
}

fn one(v: &Value, cols: &[(&str, &str)], json: bool) {
    if json {
        output::json(v)
    } else {
        record(v, cols)
    }
}

async fn by_project(c: &Client, path: &str, project: Option<String>) -> Result<Value> {
    let mut q = Vec::new();
    if let Some(p) = project {
        q.push(("project_id", project_id(c, &p).await?));
    }
    c.get(path, &q).await
}

pub async fn vpc(c: &Client, cmd: VpcCmd, json: bool) -> Result<()> {
    match cmd {
        VpcCmd::List { project } => {
            list(&by_project(c, "/v1/vpcs", project).await?, VPC_COLS, json)
        }
        VpcCmd::Create {
            name,
            project,
            department,
            description,
            outbound,
        } => {
            let project = match project {
                Some(p) => Some(project_id(c, &p).await?),
                None => None,
            };
            let body = json!({ "name": name, "project_id": project, "department_id": department, "description": description, "outbound": outbound });
            one(&c.post("/v1/vpcs", body).await?, VPC_COLS, json)
        }
        VpcCmd::Update { id, outbound } => {
            let body = json!({ "outbound": outbound });
            one(
                &c.patch(&format!("/v1/vpcs/{id}"), body).await?,
                VPC_COLS,
                json,
            )
        }
        VpcCmd::Show { id } => {
            let v = c.get(&format!("/v1/vpcs/{id}"), &[]).await?;
            if json {
                output::json(&v)
            } else {
                record(&v, VPC_COLS);
                println!();
                table(
                    v["subnets"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                    SUBNET_COLS,
                );
            }
        }
        VpcCmd::Delete { id } => {
            c.delete(&format!("/v1/vpcs/{id}")).await?;
            eprintln!("已删除 deleted");
        }
    }
    Ok(())
}

pub async fn subnet(c: &Client, cmd: SubnetCmd, json: bool) -> Result<()> {
    match cmd {
        SubnetCmd::Create {
            vpc,
            name,
            cidr,
            gateway,
            dns,
            no_dhcp,
        } => {
            let body = json!({ "name": name, "cidr": cidr, "gateway": gateway, "dns_servers": dns, "dhcp": !no_dhcp });
            one(
                &c.post(&format!("/v1/vpcs/{vpc}/subnets"), body).await?,
                SUBNET_COLS,
                json,
            )
        }
        SubnetCmd::Delete { id } => {
            c.delete(&format!("/v1/subnets/{id}")).await?;
            eprintln!("已删除 deleted");
        }
    }
    Ok(())
}

pub async fn nic(c: &Client, cmd: NicCmd, json: bool) -> Result<()> {
    match cmd {
        NicCmd::List { instance } => list(
            &c.get(&format!("/v1/instances/{instance}/nics"), &[])
                .await?,
            NIC_COLS,
            json,
        ),
        NicCmd::Create {
            instance,
            subnet,
            ip,
            groups,
        } => {
            let body = json!({ "subnet_id": subnet, "ip": ip, "security_group_ids": groups });
            one(
                &c.post(&format!("/v1/instances/{instance}/nics"), body)
                    .await?,
                NIC_COLS,
                json,
            )
        }
        NicCmd::SetGroups { id, groups } => one(
            &c.put(
                &format!("/v1/nics/{id}/security-groups"),
                json!({ "security_group_ids": groups }),
            )
            .await?,
            NIC_COLS,
            json,
        ),
        NicCmd::Delete { id } => {
            c.delete(&format!("/v1/nics/{id}")).await?;
            eprintln!("已删除 deleted");
        }
    }
    Ok(())
}

fn show_group(v: &Value, json: bool) {
    if json {
        output::json(v)
    } else {
        record(v, SG_COLS);
        println!();
        table(
            v["rules"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            RULE_COLS,
        );
    }
}

/// `8080` or `8000-8080` as (first, last).
fn port_range(s: &str) -> Result<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.trim().parse::<u16>().with_context(|| {
            format!("端口应为 1-65535 的数字 a port is a number from 1 to 65535: {x}")
        })
    };
    Ok((p(a)?, p(b)?))
}

pub async fn sg(c: &Client, cmd: SgCmd, json: bool) -> Result<()> {
    match cmd {
        SgCmd::List { project } => list(
            &by_project(c, "/v1/security-groups", project).await?,
            SG_COLS,
            json,
        ),
        SgCmd::Create {
            project,
            name,
            description,
        } => {
            let project = project_id(c, &project).await?;
            let body = json!({ "project_id": project, "name": name, "description": description });
            show_group(&c.post("/v1/security-groups", body).await?, json)
        }
        SgCmd::Show { id } => show_group(
            &c.get(&format!("/v1/security-groups/{id}"), &[]).await?,
            json,
        ),
        SgCmd::AddRule {
            id,
            direction,
            protocol,
            ports,
            remote,
        } => {
            let g = c.get(&format!("/v1/security-groups/{id}"), &[]).await?;
            let mut rule = json!({ "direction": direction, "protocol": protocol });
            if let Some(p) = ports {
                let (lo, hi) = port_range(&p)?;
                rule["port_min"] = json!(lo);
                rule["port_max"] = json!(hi);
            }
            match remote {
                Some(r) if uuid::Uuid::parse_str(&r).is_ok() => rule["remote_group_id"] = json!(r),
                Some(r) => rule["remote_cidr"] = json!(r),
                None => {}
            }
            let mut rules = g["rules"].as_array().cloned().unwrap_or_default();
            rules.push(rule);
            let body = json!({ "generation": g["generation"], "rules": rules });
            show_group(
                &c.put(&format!("/v1/security-groups/{id}/rules"), body)
                    .await?,
                json,
            )
        }
        SgCmd::RemoveRule { id, position } => {
            let g = c.get(&format!("/v1/security-groups/{id}"), &[]).await?;
            let mut rules = g["rules"].as_array().cloned().unwrap_or_default();
            anyhow::ensure!(
                (1..=rules.len()).contains(&position),
                "没有第 {position} 条规则 there is no rule {position}"
            );
            rules.remove(position - 1);
            let body = json!({ "generation": g["generation"], "rules": rules });
            show_group(
                &c.put(&format!("/v1/security-groups/{id}/rules"), body)
                    .await?,
                json,
            )
        }
        SgCmd::Delete { id } => {
            c.delete(&format!("/v1/security-groups/{id}")).await?;
            eprintln!("已删除 deleted");
        }
    }
    Ok(())
}

pub async fn eip(c: &Client, cmd: EipCmd, json: bool) -> Result<()> {
    match cmd {
        EipCmd::List { project } => list(
            &by_project(c, "/v1/elastic-ips", project).await?,
            EIP_COLS,
            json,
        ),
        EipCmd::Networks => list(&c.get("/v1/external-networks", &[]).await?, EXT_COLS, json),
        EipCmd::NetworkCreate {
            zone,
            name,
            cidr,
            gateway,
            host_interface,
        } => {
            let body = json!({ "zone_id": zone, "name": name, "cidr": cidr, "gateway": gateway, "host_interface": host_interface });
            one(
                &c.post("/v1/external-networks", body).await?,
                EXT_COLS,
                json,
            )
        }
        EipCmd::Allocate { project, network } => {
            let project = project_id(c, &project).await?;
            let network = if uuid::Uuid::parse_str(&network).is_ok() {
                network
            } else {
                let all = c.get("/v1/external-networks", &[]).await?;
                all.as_array()
                    .into_iter()
                    .flatten()
                    .find(|x| x["name"].as_str() == Some(network.as_str()))
                    .and_then(|x| x["id"].as_str().map(str::to_string))
                    .with_context(|| {
                        format!("找不到外部网络 no such external network: {network}")
                    })?
            };
            let body = json!({ "project_id": project, "external_network_id": network });
            one(&c.post("/v1/elastic-ips", body).await?, EIP_COLS, json)
        }
        EipCmd::Bind { id, nic } => one(
            &c.post(
                &format!("/v1/elastic-ips/{id}/bind"),
                json!({ "nic_id": nic }),
            )
            .await?,
            EIP_COLS,
            json,
        ),
        EipCmd::Unbind { id } => one(
            &c.post(&format!("/v1/elastic-ips/{id}/unbind"), json!({}))
                .await?,
            EIP_COLS,
            json,
        ),
        EipCmd::Release { id } => {
            c.delete(&format!("/v1/elastic-ips/{id}")).await?;
            eprintln!("已释放 released");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_ranges_parse_one_port_or_a_range() {
        assert_eq!(super::port_range("8080").ok(), Some((8080, 8080)));
        assert_eq!(super::port_range("8000-8080").ok(), Some((8000, 8080)));
        assert!(super::port_range("http").is_err());
        assert!(super::port_range("70000").is_err());
    }
}
