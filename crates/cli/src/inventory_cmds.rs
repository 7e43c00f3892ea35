//! Client commands for the inventory: providers, zones, hosts, storage pools, flavors and
//! images.

use crate::client::Client;
use crate::compute_cmds::{items, show};
use crate::output;
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

// Parsed once per run: the size of the `create` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum ProviderCmd {
    List,
    /// Add a provider: `sim` (simulated), `kvm` (hosts joined by `zhengyun agent`) or
    /// `openstack` (an existing OpenStack cloud: `--auth-url` and an application credential
    /// or a password; the secret is read from ZHENGYUN_OPENSTACK_SECRET when not given).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "sim")]
        kind: String,
        #[arg(long)]
        description: Option<String>,
        /// Keystone v3 URL (openstack).
        #[arg(long)]
        auth_url: Option<String>,
        #[arg(long, default_value = "RegionOne")]
        region: String,
        /// Application credential id (preferred) …
        #[arg(long)]
        app_cred_id: Option<String>,
        /// … or a user name with `--project` (password authentication).
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// The application credential's secret or the password.
        #[arg(long)]
        secret: Option<String>,
        /// The Neutron network new servers get a port on.
        #[arg(long)]
        network: Option<String>,
        /// A CA certificate (PEM file) to trust.
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        /// Do not verify the provider's TLS certificate (test clouds only).
        #[arg(long)]
        insecure: bool,
        /// Map an OpenStack project to a zhengyun department and project, as
        /// `OPENSTACK_PROJECT_ID=DEPARTMENT_ID:PROJECT_ID` (repeatable): servers found there
        /// are adopted (纳管) into them.
        #[arg(long = "map-project")]
        map_project: Vec<String>,
        /// What the synchronisation does with servers that appeared outside zhengyun in a
        /// mapped project: `flag` (tell the supervisor; the admin adopts by hand) or `auto`.
        #[arg(long, default_value = "flag")]
        adoption: String,
    },
    /// An OpenStack provider's settings (never the secret).
    OpenstackShow {
        id: String,
    },
    /// Replace an OpenStack provider's settings and mappings from a JSON file (the body of
    /// PUT /v1/providers/{id}/openstack; the credential's secret may be left out to keep the
    /// stored one while the Keystone URL, identity and TLS trust stay the same).
    OpenstackSet {
        id: String,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Read an OpenStack provider's hypervisors now (shown as its hosts).
    Sync {
        id: String,
    },
    /// What changed in an OpenStack provider without going through zhengyun: servers and
    /// volumes (the drift history; `--state all` for every item).
    Drift {
        id: String,
        /// open (default), adopted, dismissed, resolved or all.
        #[arg(long)]
        state: Option<String>,
    },
    /// Adopt (纳管) a server or volume that appeared in an OpenStack provider: it becomes an
    /// instance or volume of the mapped department and project.
    DriftAdopt {
        id: String,
        item: String,
    },
    /// Dismiss a drift item (it stays dismissed).
    DriftDismiss {
        id: String,
        item: String,
        #[arg(long)]
        reason: String,
    },
    /// Failure injection and latency of a simulated provider.
    SetSim {
        id: String,
        #[arg(long, default_value_t = 0.0)]
        failure_p: f64,
        #[arg(long, default_value_t = 0)]
        latency_min_ms: u64,
        #[arg(long, default_value_t = 0)]
        latency_max_ms: u64,
    },
}

#[derive(Subcommand)]
pub enum ZoneCmd {
    List,
    Create {
        #[arg(long)]
        provider: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        name: String,
        /// pack (default) or spread
        #[arg(long)]
        strategy: Option<String>,
    },
    /// How the scheduler fills the zone: pack (utilisation) or spread.
    SetStrategy {
        id: String,
        strategy: String,
    },
}

#[derive(Subcommand)]
pub enum HostCmd {
    List {
        #[arg(long)]
        provider: Option<String>,
    },
    /// Add hosts: `--count 20 --prefix inspur` makes inspur-0001 … inspur-0020.
    Create {
        #[arg(long)]
        zone: String,
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long)]
        vcpus: u32,
        #[arg(long)]
        memory_gib: u64,
        #[arg(long)]
        disk_gib: u64,
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        /// vCPU overcommit, e.g. 4.0
        #[arg(long, default_value_t = 4.0)]
        cpu_ratio: f64,
        #[arg(long, default_value_t = 1.0)]
        mem_ratio: f64,
    },
    /// enabled, maintenance or down
    SetState { id: String, state: String },
    /// A one-time token for `zhengyun agent --join-token` (real hosts join kvm zones).
    JoinToken {
        #[arg(long)]
        zone: String,
        /// How long it can be used (1–168 hours).
        #[arg(long, default_value_t = 24)]
        valid_hours: u32,
    },
    /// The agents of real hosts: address, acceleration (kvm/tcg), last heartbeat.
    Agents,
}

#[derive(Subcommand)]
pub enum FlavorCmd {
    List,
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        vcpus: u32,
        #[arg(long)]
        memory_gib: u64,
        #[arg(long, default_value_t = 0)]
        gpus: u32,
    },
}

#[derive(Subcommand)]
pub enum ImageCmd {
    List,
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        os: String,
        #[arg(long)]
        min_disk_gib: u64,
        /// Providers that carry it (repeatable); all when omitted.
        #[arg(long)]
        provider: Vec<String>,
    },
}

pub async fn provider(c: &Client, cmd: ProviderCmd, json: bool) -> Result<()> {
    let cols = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("类型 kind", "kind"),
        ("模拟 simulated", "simulated"),
    ];
    match cmd {
        ProviderCmd::List => show(&c.get("/v1/providers", &[]).await?, cols, json),
        ProviderCmd::Create {
            name,
            kind,
            description,
            auth_url,
            region,
            app_cred_id,
            username,
            project,
            secret,
            network,
            ca_file,
            insecure,
            map_project,
            adoption,
        } => {
            let mut body = json!({ "name": name, "kind": kind, "description": description });
            if kind == "openstack" {
                let secret = secret
                    .or_else(|| std::env::var("ZHENGYUN_OPENSTACK_SECRET").ok())
                    .ok_or_else(|| anyhow::anyhow!("--secret or ZHENGYUN_OPENSTACK_SECRET is needed for an openstack provider"))?;
                let credential = match (app_cred_id, username, project) {
                    (Some(id), None, _) => {
                        json!({ "type": "application_credential", "id": id, "secret": secret })
                    }
                    (None, Some(u), Some(p)) => {
                        json!({ "type": "password", "username": u, "password": secret, "project": p })
                    }
                    _ => anyhow::bail!("give either --app-cred-id, or --username with --project"),
                };
                let ca_pem = match ca_file {
                    Some(f) => Some(std::fs::read_to_string(&f)?),
                    None => None,
                };
                let mut projects = Vec::new();
                for m in &map_project {
                    let (os, zy) = m.split_once('=').ok_or_else(|| {
                        anyhow::anyhow!("--map-project wants OPENSTACK_PROJECT_ID=DEPARTMENT_ID:PROJECT_ID, got {m}")
                    })?;
                    let (d, p) = zy.split_once(':').ok_or_else(|| {
                        anyhow::anyhow!("--map-project wants OPENSTACK_PROJECT_ID=DEPARTMENT_ID:PROJECT_ID, got {m}")
                    })?;
                    projects.push(
                        json!({ "openstack_project": os, "department_id": d, "project_id": p }),
                    );
                }
                body["openstack"] = json!({ "auth_url": auth_url, "region": region, "credential": credential,
                    "network": network, "ca_pem": ca_pem, "verify_tls": !insecure,
                    "projects": projects, "adoption": adoption });
            }
            let v = c.post("/v1/providers", body).await?;
            output::one(&v, cols, json)
        }
        ProviderCmd::OpenstackShow { id } => {
            let v = c.get(&format!("/v1/providers/{id}/openstack"), &[]).await?;
            output::one(
                &v,
                &[
                    ("Keystone auth_url", "auth_url"),
                    ("区域 region", "region"),
                    ("凭据 credential", "credential_type"),
                    ("凭据编号 credential_id", "credential_id"),
                    ("网络 network", "network"),
                    ("纳管 adoption", "adoption"),
                ],
                json,
            )
        }
        ProviderCmd::OpenstackSet { id, file } => {
            let body: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
            let v = c
                .put(&format!("/v1/providers/{id}/openstack"), body)
                .await?;
            output::one(
                &v,
                &[
                    ("Keystone auth_url", "auth_url"),
                    ("区域 region", "region"),
                    ("凭据 credential", "credential_type"),
                ],
                json,
            )
        }
        ProviderCmd::Sync { id } => {
            let v = c
                .post(&format!("/v1/providers/{id}/openstack/sync"), json!({}))
                .await?;
            output::one(
                &v,
                &[
                    ("计算节点 hypervisors", "hypervisors"),
                    ("新增主机 hosts_added", "hosts_added"),
                    ("更新主机 hosts_updated", "hosts_updated"),
                    ("新差异 drift_new", "drift_new"),
                    ("待处理差异 drift_open", "drift_open"),
                    ("已纳管 adopted", "adopted"),
                ],
                json,
            )
        }
        ProviderCmd::Drift { id, state } => {
            let q: Vec<(&str, String)> = state.map(|s| ("state", s)).into_iter().collect();
            show(
                &c.get(&format!("/v1/providers/{id}/openstack/drift"), &q)
                    .await?,
                &[
                    ("编号 id", "id"),
                    ("类型 kind", "kind"),
                    ("变化 change", "change"),
                    ("名称 name", "name"),
                    ("外部编号 external_id", "external_id"),
                    ("状态 state", "state"),
                    ("实例 instance_id", "instance_id"),
                    ("详情 detail", "detail"),
                    ("原因 reason", "reason"),
                ],
                json,
            )
        }
        ProviderCmd::DriftAdopt { id, item } => {
            let v = c
                .post(
                    &format!("/v1/providers/{id}/openstack/drift/{item}/adopt"),
                    json!({}),
                )
                .await?;
            output::one(
                &v,
                &[
                    ("编号 id", "id"),
                    ("名称 name", "name"),
                    ("来源 origin", "origin"),
                    ("部门 department_id", "department_id"),
                    ("项目 project_id", "project_id"),
                    ("状态 state", "state"),
                ],
                json,
            )
        }
        ProviderCmd::DriftDismiss { id, item, reason } => {
            let v = c
                .post(
                    &format!("/v1/providers/{id}/openstack/drift/{item}/dismiss"),
                    json!({ "reason": reason }),
                )
                .await?;
            output::one(
                &v,
                &[
                    ("编号 id", "id"),
                    ("状态 state", "state"),
                    ("原因 reason", "reason"),
                ],
                json,
            )
        }
        ProviderCmd::SetSim {
            id,
            failure_p,
            latency_min_ms,
            latency_max_ms,
        } => {
            let v = c.patch(&format!("/v1/providers/{id}"), json!({ "sim": { "failure_probability": failure_p, "latency_min_ms": latency_min_ms, "latency_max_ms": latency_max_ms } })).await?;
            output::one(&v, cols, json)
        }
    }
    Ok(())
}

pub async fn zone(c: &Client, cmd: ZoneCmd, json: bool) -> Result<()> {
    let cols = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("地域 region", "region"),
        ("云服务商 provider", "provider_id"),
        ("策略 strategy", "strategy"),
    ];
    match cmd {
        ZoneCmd::List => show(&c.get("/v1/zones", &[]).await?, cols, json),
        ZoneCmd::Create {
            provider,
            region,
            name,
            strategy,
        } => {
            let v = c.post("/v1/zones", json!({ "provider_id": provider, "region": region, "name": name, "strategy": strategy })).await?;
            output::one(&v, cols, json)
        }
        ZoneCmd::SetStrategy { id, strategy } => {
            let v = c
                .patch(&format!("/v1/zones/{id}"), json!({ "strategy": strategy }))
                .await?;
            output::one(&v, cols, json)
        }
    }
    Ok(())
}

pub async fn host(c: &Client, cmd: HostCmd, json: bool) -> Result<()> {
    let cols = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("状态 state", "state"),
        ("vCPU", "vcpus"),
        ("已用 used", "used_vcpus"),
        ("内存MiB memory", "memory_mib"),
        ("已用 used", "used_memory_mib"),
    ];
    match cmd {
        HostCmd::List { provider } => {
            let q: Vec<(&str, String)> = provider
                .map(|p| vec![("provider_id", p)])
                .unwrap_or_default();
            show(&c.get("/v1/hosts", &q).await?, cols, json)
        }
        HostCmd::Create {
            zone,
            prefix,
            count,
            vcpus,
            memory_gib,
            disk_gib,
            gpus,
            cpu_ratio,
            mem_ratio,
        } => {
            let body = json!({
                "zone_id": zone, "name_prefix": prefix, "count": count, "vcpus": vcpus, "memory_mib": memory_gib * 1024,
                "disk_gib": disk_gib, "gpus": gpus,
                "cpu_ratio_permille": (cpu_ratio * 1000.0).round() as u32, "mem_ratio_permille": (mem_ratio * 1000.0).round() as u32
            });
            let v = c.post("/v1/hosts", body).await?;
            if json {
                output::json(&v)
            } else {
                println!("已添加 added {} hosts", items(&v).len())
            }
        }
        HostCmd::SetState { id, state } => {
            let v = c
                .patch(&format!("/v1/hosts/{id}"), json!({ "state": state }))
                .await?;
            output::one(&v, cols, json)
        }
        HostCmd::JoinToken { zone, valid_hours } => {
            let v = c
                .post(
                    &format!("/v1/zones/{zone}/join-tokens"),
                    json!({ "valid_hours": valid_hours }),
                )
                .await?;
            if json {
                output::json(&v)
            } else {
                println!(
                    "接入令牌（只显示这一次）one-time join token (shown once):\n{}\n有效至 valid until {}",
                    v["token"].as_str().unwrap_or(""),
                    crate::output::cell(&v["join_token"]["expires_at"])
                );
            }
        }
        HostCmd::Agents => show(
            &c.get("/v1/agents", &[]).await?,
            &[
                ("宿主机 host", "host_name"),
                ("地址 address", "address"),
                ("加速 accel", "accel"),
                ("在线 alive", "alive"),
                ("最近心跳 last seen", "last_seen"),
            ],
            json,
        ),
    }
    Ok(())
}

pub async fn flavor(c: &Client, cmd: FlavorCmd, json: bool) -> Result<()> {
    let cols = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("vCPU", "vcpus"),
        ("内存MiB memory", "memory_mib"),
        ("GPU", "gpus"),
    ];
    match cmd {
        FlavorCmd::List => show(&c.get("/v1/flavors", &[]).await?, cols, json),
        FlavorCmd::Create {
            name,
            vcpus,
            memory_gib,
            gpus,
        } => {
            let v = c.post("/v1/flavors", json!({ "name": name, "vcpus": vcpus, "memory_mib": memory_gib * 1024, "gpus": gpus })).await?;
            output::one(&v, cols, json)
        }
    }
    Ok(())
}

pub async fn image(c: &Client, cmd: ImageCmd, json: bool) -> Result<()> {
    let cols = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("系统 os", "os"),
        ("最小磁盘 min disk GiB", "min_disk_gib"),
        ("云服务商 providers", "providers"),
    ];
    match cmd {
        ImageCmd::List => show(&c.get("/v1/images", &[]).await?, cols, json),
        ImageCmd::Create {
            name,
            os,
            min_disk_gib,
            provider,
        } => {
            let v = c.post("/v1/images", json!({ "name": name, "os": os, "min_disk_gib": min_disk_gib, "providers": provider })).await?;
            output::one(&v, cols, json)
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum PoolCmd {
    List,
    Create {
        #[arg(long)]
        zone: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        capacity_gib: u64,
        /// local (default) or shared: a directory mounted at --path on every host of the
        /// zone, holding the zone's instance disks (HA restart, migration without copy).
        #[arg(long, default_value = "local")]
        kind: String,
        #[arg(long)]
        path: Option<String>,
    },
}

pub async fn pool(c: &Client, cmd: PoolCmd, json: bool) -> Result<()> {
    let cols = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("可用区 zone", "zone_id"),
        ("容量GiB capacity", "capacity_gib"),
        ("已用 used", "used_gib"),
        ("类型 kind", "kind"),
        ("挂载路径 path", "path"),
    ];
    match cmd {
        PoolCmd::List => show(&c.get("/v1/storage-pools", &[]).await?, cols, json),
        PoolCmd::Create {
            zone,
            name,
            capacity_gib,
            kind,
            path,
        } => {
            let v = c
                .post(
                    "/v1/storage-pools",
                    json!({ "zone_id": zone, "name": name, "capacity_gib": capacity_gib, "kind": kind, "path": path }),
                )
                .await?;
            output::one(&v, cols, json)
        }
    }
    Ok(())
}
