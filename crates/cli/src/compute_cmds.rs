//! Client commands for compute: quotas, instances, volumes and the invariant check.

use crate::client::Client;
use crate::output::{self, record, table};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum QuotaCmd {
    Show {
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        project: Option<String>,
    },
    Set {
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        instances: i64,
        #[arg(long)]
        vcpus: i64,
        #[arg(long)]
        memory_gib: i64,
        #[arg(long)]
        disk_gib: i64,
        #[arg(long, default_value_t = 100)]
        volumes: i64,
    },
}

#[derive(Subcommand)]
pub enum InstanceCmd {
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        /// Include deleted instances.
        #[arg(long)]
        deleted: bool,
    },
    /// Create instances; `--count 200` makes name-001 … name-200.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        flavor: String,
        #[arg(long)]
        image: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long)]
        disk_gib: Option<u64>,
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        /// Server group name; with --anti-affinity or --affinity.
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        anti_affinity: bool,
        #[arg(long)]
        affinity: bool,
        /// Create without starting.
        #[arg(long)]
        stopped: bool,
        /// Wait until every new instance is running (or failed).
        #[arg(long)]
        wait: bool,
        /// A file whose content is handed to the guest at boot (a shell script for the
        /// zy-busybox template).
        #[arg(long)]
        user_data: Option<std::path::PathBuf>,
        /// A lease (使用期限) ending this many days from now: reminders before, stopped at
        /// the end, released to the recycle bin after the grace period.
        #[arg(long)]
        lease_days: Option<u32>,
        /// A NIC on a VPC subnet, repeatable: `subnet=<id>[,ip=<address>][,sg=<group id>…]`.
        #[arg(long = "nic")]
        nics: Vec<String>,
    },
    Get {
        id: String,
    },
    Start {
        id: String,
    },
    Stop {
        id: String,
    },
    Reboot {
        id: String,
    },
    Resize {
        id: String,
        #[arg(long)]
        flavor: String,
        #[arg(long)]
        disk_gib: Option<u64>,
    },
    Delete {
        id: String,
    },
    /// Every state change with its time and reason.
    Events {
        id: String,
    },
    /// The sagas that changed the instance: kind, state, step, error.
    Sagas {
        id: String,
    },
    /// The serial console's last lines.
    Console {
        id: String,
    },
    /// Live-migrate a running instance to another host of its provider.
    Migrate {
        id: String,
        /// Target host id (default: the emptiest other host).
        #[arg(long)]
        to: Option<String>,
        /// Wait until the migration ends and show its downtime.
        #[arg(long)]
        wait: bool,
    },
    /// Set, extend (`--days 30`, `--end …`) or remove (`--clear`) the lease (使用期限);
    /// department admins.
    Lease {
        id: String,
        #[command(flatten)]
        end: crate::lease_cmds::LeaseEnd,
        #[arg(long)]
        clear: bool,
    },
    /// Release to the recycle bin (回收站): stopped, disks kept, deleted for good after the
    /// retention unless restored.
    Release {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Bring back from the recycle bin (stopped), optionally with a new lease; department
    /// admins.
    Restore {
        id: String,
        #[command(flatten)]
        end: crate::lease_cmds::LeaseEnd,
    },
    /// The instance's live migrations.
    Migrations {
        id: String,
    },
    /// CPU time, memory and disk I/O of a running instance.
    Metrics {
        id: String,
    },
}

const MIGRATION_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("状态 state", "state"),
    ("源 from", "source_host_name"),
    ("目标 to", "target_host_name"),
    ("停机 downtime ms", "downtime_ms"),
    ("耗时 total ms", "total_ms"),
    ("错误 error", "error"),
];

const INSTANCE_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("规格 flavor", "flavor_name"),
    ("镜像 image", "image_name"),
    ("状态 state", "state"),
    ("目标 desired", "desired"),
    ("宿主机 host", "host_name"),
    ("来源 origin", "origin"),
];

pub(crate) fn items(v: &Value) -> &[Value] {
    v["items"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub(crate) fn show(v: &Value, cols: &[(&str, &str)], json: bool) {
    if json {
        output::json(v)
    } else {
        table(items(v), cols)
    }
}

/// Accepts an id or a name from a catalogue list (`/v1/providers`, `/v1/zones`).
pub(crate) async fn catalogue_id(c: &Client, path: &str, what: &str, key: &str) -> Result<String> {
    if uuid::Uuid::parse_str(key).is_ok() {
        return Ok(key.to_string());
    }
    let list = c.get(path, &[]).await?;
    items(&list)
        .iter()
        .find(|x| x["name"].as_str() == Some(key))
        .and_then(|x| x["id"].as_str().map(str::to_string))
        .with_context(|| format!("找不到{what} no such {what}: {key}"))
}

/// Accepts a project id or name.
pub(crate) async fn project_id(c: &Client, p: &str) -> Result<String> {
    if uuid::Uuid::parse_str(p).is_ok() {
        return Ok(p.to_string());
    }
    let page = c
        .get(
            "/v1/projects",
            &[("q", p.to_string()), ("limit", "1000".into())],
        )
        .await?;
    let found: Vec<&Value> = items(&page)
        .iter()
        .filter(|x| x["name"].as_str() == Some(p))
        .collect();
    match found.as_slice() {
        [one] => Ok(one["id"].as_str().unwrap_or_default().to_string()),
        [] => bail!("找不到项目 no such project: {p}"),
        _ => bail!("有多个同名项目，请用编号 several projects are named {p}; use its id"),
    }
}

/// `subnet=<id>[,ip=<address>][,sg=<group id>…]` of `--nic` as a create body item.
fn parse_nic(spec: &str) -> Result<Value> {
    let (mut subnet, mut ip, mut groups) = (None, None, Vec::new());
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("subnet", v)) if !v.is_empty() => subnet = Some(v.to_string()),
            Some(("ip", v)) if !v.is_empty() => ip = Some(v.to_string()),
            Some(("sg", v)) if !v.is_empty() => groups.push(v.to_string()),
            _ => bail!("--nic {spec}: expected subnet=<id>[,ip=<address>][,sg=<group id>]"),
        }
    }
    let Some(subnet) = subnet else {
        bail!("--nic {spec}: subnet=<id> is required");
    };
    Ok(json!({ "subnet_id": subnet, "ip": ip, "security_group_ids": groups }))
}

fn print_quota(v: &Value) {
    let rows: Vec<Value> = [
        ("instances", "云主机 instances"),
        ("vcpus", "vCPU"),
        ("memory_mib", "内存 memory MiB"),
        ("disk_gib", "磁盘 disk GiB"),
        ("volumes", "云硬盘 volumes"),
    ]
    .into_iter()
    .map(|(k, label)| json!({ "resource": label, "used": v["used"][k], "limit": v["limits"][k] }))
    .collect();
    table(
        &rows,
        &[
            ("资源 resource", "resource"),
            ("已用 used", "used"),
            ("上限 limit", "limit"),
        ],
    );
}

pub async fn quota(c: &Client, cmd: QuotaCmd, json: bool) -> Result<()> {
    let scope = |d: Option<String>, p: Option<String>| -> Result<Vec<(&'static str, String)>> {
        match (d, p) {
            (Some(d), None) => Ok(vec![("department_id", d)]),
            (None, Some(p)) => Ok(vec![("project_id", p)]),
            _ => bail!("give --department or --project"),
        }
    };
    match cmd {
        QuotaCmd::Show {
            department,
            project,
        } => {
            let project = match project {
                Some(p) => Some(project_id(c, &p).await?),
                None => None,
            };
            let v = c.get("/v1/quotas", &scope(department, project)?).await?;
            if json {
                output::json(&v)
            } else {
                print_quota(&v)
            }
        }
        QuotaCmd::Set {
            department,
            project,
            instances,
            vcpus,
            memory_gib,
            disk_gib,
            volumes,
        } => {
            let project = match project {
                Some(p) => Some(project_id(c, &p).await?),
                None => None,
            };
            let limits = json!({ "instances": instances, "vcpus": vcpus, "memory_mib": memory_gib * 1024, "disk_gib": disk_gib, "volumes": volumes });
            let v = c
                .put(
                    "/v1/quotas",
                    json!({ "department_id": department, "project_id": project, "limits": limits }),
                )
                .await?;
            if json {
                output::json(&v)
            } else {
                print_quota(&v)
            }
        }
    }
    Ok(())
}

pub async fn instance(c: &Client, cmd: InstanceCmd, json: bool) -> Result<()> {
    match cmd {
        InstanceCmd::List {
            project,
            limit,
            deleted,
        } => {
            let mut q = vec![("limit", limit.unwrap_or(1000).to_string())];
            if let Some(p) = project {
                q.push(("project_id", project_id(c, &p).await?));
            }
            if deleted {
                q.push(("deleted", "true".into()));
            }
            let v = c.get("/v1/instances", &q).await?;
            if json {
                output::json(&v);
            } else {
                table(items(&v), INSTANCE_COLS);
                let mut counts = std::collections::BTreeMap::new();
                for i in items(&v) {
                    *counts
                        .entry(i["state"].as_str().unwrap_or("?").to_string())
                        .or_insert(0) += 1;
                }
                println!("{counts:?}");
            }
        }
        InstanceCmd::Create {
            project,
            name,
            flavor,
            image,
            count,
            disk_gib,
            zone,
            provider,
            group,
            anti_affinity,
            affinity,
            stopped,
            wait,
            user_data,
            lease_days,
            nics,
        } => {
            let nics = nics
                .iter()
                .map(|n| parse_nic(n))
                .collect::<Result<Vec<_>>>()?;
            let project = project_id(c, &project).await?;
            let user_data = match user_data {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?,
                ),
                None => None,
            };
            let provider = match provider {
                Some(p) => Some(catalogue_id(c, "/v1/providers", "provider", &p).await?),
                None => None,
            };
            let zone = match zone {
                Some(z) => Some(catalogue_id(c, "/v1/zones", "zone", &z).await?),
                None => None,
            };
            let group = match (group, anti_affinity, affinity) {
                (Some(g), true, false) => json!({ "name": g, "policy": "anti_affinity" }),
                (Some(g), false, true) => json!({ "name": g, "policy": "affinity" }),
                (None, false, false) => Value::Null,
                _ => bail!("--group needs exactly one of --anti-affinity or --affinity"),
            };
            let body = json!({
                "project_id": project, "name": name, "flavor": flavor, "image": image, "count": count, "disk_gib": disk_gib,
                "zone_id": zone, "provider_id": provider, "group": group, "start": !stopped,
                "user_data": user_data,
                "lease_end": lease_days.map(|d| (chrono::Utc::now() + chrono::Duration::days(d as i64)).to_rfc3339()),
                "nics": nics,
            });
            let v = c.post("/v1/instances", body).await?;
            let ids: Vec<String> = items(&v)
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect();
            if wait {
                wait_for(c, &project, &ids).await?;
            }
            if json {
                output::json(&v)
            } else {
                println!("已提交 accepted: {} 台云主机 instances", ids.len());
            }
        }
        InstanceCmd::Get { id } => {
            let v = c.get(&format!("/v1/instances/{id}"), &[]).await?;
            if json {
                output::json(&v)
            } else {
                record(
                    &v,
                    &[
                        ("编号 id", "id"),
                        ("名称 name", "name"),
                        ("规格 flavor", "flavor_name"),
                        ("vCPU", "vcpus"),
                        ("内存 MiB", "memory_mib"),
                        ("磁盘 GiB", "disk_gib"),
                        ("镜像 image", "image_name"),
                        ("状态 state", "state"),
                        ("目标 desired", "desired"),
                        ("云服务商 provider", "provider_id"),
                        ("宿主机 host", "host_name"),
                        ("宿主机编号 host id", "host_id"),
                        ("错误 error", "last_error"),
                        ("使用期限 lease end", "lease_end"),
                        ("期限已到 lease ended", "lease_ended"),
                        ("移入回收站 recycled at", "recycled_at"),
                        ("彻底删除 purge at", "purge_at"),
                    ],
                )
            }
        }
        InstanceCmd::Start { id } => act(c, &id, "start", json).await?,
        InstanceCmd::Stop { id } => act(c, &id, "stop", json).await?,
        InstanceCmd::Reboot { id } => act(c, &id, "reboot", json).await?,
        InstanceCmd::Resize {
            id,
            flavor,
            disk_gib,
        } => {
            let v = c
                .post(
                    &format!("/v1/instances/{id}/resize"),
                    json!({ "flavor": flavor, "disk_gib": disk_gib }),
                )
                .await?;
            if json {
                output::json(&v)
            } else {
                println!(
                    "已提交 accepted: {} → {}",
                    crate::output::cell(&v["name"]),
                    crate::output::cell(&v["flavor_name"])
                )
            }
        }
        InstanceCmd::Delete { id } => {
            let v = c.delete(&format!("/v1/instances/{id}")).await?;
            if json {
                output::json(&v)
            } else {
                println!("已提交删除 delete accepted")
            }
        }
        InstanceCmd::Sagas { id } => show(
            &c.get(&format!("/v1/instances/{id}/sagas"), &[]).await?,
            SAGA_COLS,
            json,
        ),
        InstanceCmd::Events { id } => show(
            &c.get(&format!("/v1/instances/{id}/events"), &[]).await?,
            &[
                ("时间 time", "at"),
                ("从 from", "from_state"),
                ("到 to", "to_state"),
                ("原因 reason", "reason"),
            ],
            json,
        ),
        InstanceCmd::Console { id } => {
            let v = c.get(&format!("/v1/instances/{id}/console"), &[]).await?;
            if json {
                output::json(&v)
            } else {
                println!("{}", v["output"].as_str().unwrap_or(""))
            }
        }
        InstanceCmd::Lease { id, end, clear } => {
            crate::lease_cmds::lease(c, &id, &end, clear, json).await?
        }
        InstanceCmd::Release { id, reason } => {
            crate::lease_cmds::release(c, &id, reason, json).await?
        }
        InstanceCmd::Restore { id, end } => crate::lease_cmds::restore(c, &id, &end, json).await?,
        InstanceCmd::Migrate { id, to, wait } => {
            let mut v = c
                .post(
                    &format!("/v1/instances/{id}/migrate"),
                    json!({ "target_host_id": to }),
                )
                .await?;
            if wait {
                let mid = v["id"].as_str().unwrap_or_default().to_string();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
                loop {
                    let list = c
                        .get(&format!("/v1/instances/{id}/migrations"), &[])
                        .await?;
                    if let Some(m) = items(&list)
                        .iter()
                        .find(|m| m["id"].as_str() == Some(mid.as_str()))
                    {
                        if m["state"].as_str() != Some("running") {
                            v = m.clone();
                            break;
                        }
                    }
                    if std::time::Instant::now() > deadline {
                        bail!("the migration is still running after 15 minutes");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            output::one(&v, MIGRATION_COLS, json);
            if v["state"].as_str() == Some("failed") {
                bail!(
                    "迁移失败 migration failed: {}",
                    v["error"].as_str().unwrap_or("")
                );
            }
        }
        InstanceCmd::Migrations { id } => show(
            &c.get(&format!("/v1/instances/{id}/migrations"), &[])
                .await?,
            MIGRATION_COLS,
            json,
        ),
        InstanceCmd::Metrics { id } => {
            let v = c.get(&format!("/v1/instances/{id}/metrics"), &[]).await?;
            if json || v["metrics"].is_null() {
                if v["metrics"].is_null() && !json {
                    println!("暂无监控数据 no metrics (the instance is not running, or its provider does not measure)");
                } else {
                    output::json(&v)
                }
            } else {
                record(
                    &v["metrics"],
                    &[
                        ("CPU 时间 ms", "cpu_time_ms"),
                        ("内存占用 MiB rss", "memory_rss_mib"),
                        ("内存 MiB", "memory_mib"),
                        ("磁盘占用 bytes", "disk_used_bytes"),
                        ("读 bytes", "disk_read_bytes"),
                        ("写 bytes", "disk_write_bytes"),
                    ],
                )
            }
        }
    }
    Ok(())
}

async fn act(c: &Client, id: &str, what: &str, json: bool) -> Result<()> {
    let v = c
        .post(&format!("/v1/instances/{id}/{what}"), json!({}))
        .await?;
    if json {
        output::json(&v)
    } else {
        println!(
            "已提交 accepted: {what} {}",
            crate::output::cell(&v["name"])
        );
    }
    Ok(())
}

/// Polls until the given instances are running, stopped or failed.
async fn wait_for(c: &Client, project: &str, ids: &[String]) -> Result<()> {
    let want: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let v = c
            .get(
                "/v1/instances",
                &[
                    ("project_id", project.to_string()),
                    ("limit", "1000".into()),
                ],
            )
            .await?;
        let mine: Vec<&Value> = items(&v)
            .iter()
            .filter(|i| i["id"].as_str().is_some_and(|x| want.contains(x)))
            .collect();
        let moving = mine
            .iter()
            .filter(|i| i["state"] != i["desired"] && i["state"] != "error")
            .count();
        if moving == 0 {
            let failed = mine.iter().filter(|i| i["state"] == "error").count();
            eprintln!(
                "完成 done: {} 台就绪 ready, {failed} 台失败 failed",
                mine.len() - failed
            );
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("timed out with {moving} instances still moving");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

pub async fn admin_check(c: &Client, json: bool) -> Result<()> {
    let v = c
        .get("/v1/admin/check", &[])
        .await
        .context("running the check")?;
    if json {
        output::json(&v);
    } else if v["ok"].as_bool() == Some(true) {
        println!(
            "一致 consistent: {} hosts, {} instances, {} quotas checked, no discrepancy",
            v["hosts_checked"], v["instances_checked"], v["quotas_checked"]
        );
    } else {
        table(
            v["discrepancies"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            &[
                ("类型 kind", "kind"),
                ("对象 subject", "subject"),
                ("应为 expected", "expected"),
                ("实为 actual", "actual"),
            ],
        );
    }
    if v["ok"].as_bool() != Some(true) {
        std::process::exit(2);
    }
    Ok(())
}

const SAGA_COLS: &[(&str, &str)] = &[
    ("开始 started", "created_at"),
    ("类型 kind", "kind"),
    ("状态 state", "state"),
    ("步骤 step", "step"),
    ("重试 tries", "attempts"),
    ("错误 error", "error"),
    ("对象 target", "target_id"),
];

pub async fn admin_tasks(c: &Client, json: bool) -> Result<()> {
    let v = c
        .get("/v1/system/tasks", &[])
        .await
        .context("listing the background tasks")?;
    show(
        &v,
        &[
            ("任务 task", "name"),
            ("副本 replica", "replica"),
            ("单例 singleton", "singleton"),
            ("执行中 active", "active"),
            ("上次 last run", "last_started"),
            ("耗时 ms", "last_duration_ms"),
            ("结果 outcome", "last_outcome"),
            ("状态 status", "last_status"),
            ("错误 error", "last_error"),
            ("下次 next run", "next_run"),
            ("失败 failures", "failures"),
        ],
        json,
    );
    Ok(())
}

pub async fn admin_sagas(c: &Client, json: bool) -> Result<()> {
    let v = c
        .get("/v1/system/sagas", &[])
        .await
        .context("listing the sagas")?;
    show(&v, SAGA_COLS, json);
    Ok(())
}

#[derive(Subcommand)]
pub enum VolumeCmd {
    List {
        #[arg(long)]
        project: Option<String>,
    },
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        size_gib: u64,
        #[arg(long)]
        pool: Option<String>,
    },
    Get {
        id: String,
    },
    Attach {
        id: String,
        #[arg(long)]
        instance: String,
    },
    Detach {
        id: String,
    },
    Extend {
        id: String,
        #[arg(long)]
        size_gib: u64,
    },
    Delete {
        id: String,
    },
    /// Release a detached volume to the recycle bin (回收站).
    Release {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Bring a volume back from the recycle bin; department admins.
    Restore {
        id: String,
    },
}

const VOLUME_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("大小GiB size", "size_gib"),
    ("状态 state", "state"),
    ("云主机 instance", "instance_id"),
];

pub async fn volume(c: &Client, cmd: VolumeCmd, json: bool) -> Result<()> {
    let one = |v: &Value| {
        if json {
            output::json(v)
        } else {
            record(v, VOLUME_COLS)
        }
    };
    match cmd {
        VolumeCmd::List { project } => {
            let mut q = vec![("limit", "1000".to_string())];
            if let Some(p) = project {
                q.push(("project_id", project_id(c, &p).await?));
            }
            show(&c.get("/v1/volumes", &q).await?, VOLUME_COLS, json)
        }
        VolumeCmd::Create {
            project,
            name,
            size_gib,
            pool,
        } => {
            let project = project_id(c, &project).await?;
            one(&c.post("/v1/volumes", json!({ "project_id": project, "name": name, "size_gib": size_gib, "pool_id": pool })).await?)
        }
        VolumeCmd::Get { id } => one(&c.get(&format!("/v1/volumes/{id}"), &[]).await?),
        VolumeCmd::Attach { id, instance } => one(&c
            .post(
                &format!("/v1/volumes/{id}/attach"),
                json!({ "instance_id": instance }),
            )
            .await?),
        VolumeCmd::Detach { id } => one(&c
            .post(&format!("/v1/volumes/{id}/detach"), json!({}))
            .await?),
        VolumeCmd::Extend { id, size_gib } => one(&c
            .post(
                &format!("/v1/volumes/{id}/extend"),
                json!({ "size_gib": size_gib }),
            )
            .await?),
        VolumeCmd::Delete { id } => {
            let path = format!("/v1/volumes/{id}");
            let resp = c.send(reqwest::Method::DELETE, &path, &[], None).await?;
            if resp.status() == reqwest::StatusCode::ACCEPTED {
                // The provider is slow or refuses for now; the delete saga goes on.
                eprintln!("删除中，稍后完成 being deleted (the provider has not finished; check `volume list` later)");
            } else {
                eprintln!("已删除 deleted");
            }
        }
        VolumeCmd::Release { id, reason } => {
            crate::lease_cmds::release_volume(c, &id, reason, json).await?
        }
        VolumeCmd::Restore { id } => crate::lease_cmds::restore_volume(c, &id, json).await?,
    }
    Ok(())
}

#[cfg(test)]
mod nic_tests {
    use super::parse_nic;
    use serde_json::json;

    #[test]
    fn nic_specs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_nic("subnet=s1,ip=10.0.0.5,sg=g1,sg=g2").expect("ok"),
            json!({ "subnet_id": "s1", "ip": "10.0.0.5", "security_group_ids": ["g1", "g2"] })
        );
        assert_eq!(
            parse_nic("subnet=s1").expect("ok"),
            json!({ "subnet_id": "s1", "ip": null, "security_group_ids": [] })
        );
        for bad in ["", "ip=10.0.0.5", "subnet=", "subnet=s1,mac=x", "s1"] {
            assert!(parse_nic(bad).is_err(), "{bad}");
        }
    }
}
