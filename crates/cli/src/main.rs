//! `zhengyun`: the one binary. `zhengyun server` runs the control plane; every other
//! subcommand is a client of the public HTTP API (tables for people, `--json` for scripts).

mod audit_cmds;
mod billing_cmds;
mod client;
mod commands;
mod compute_cmds;
mod ha_cmds;
mod inventory_cmds;
mod lb_cmds;
mod lease_cmds;
mod metrics_cmds;
mod network_cmds;
mod notify_cmds;
mod ops_cmds;
mod output;
mod request_cmds;
mod secev_cmds;
mod supervision_cmds;
mod tenancy_cmds;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "zhengyun",
    version,
    about = "政云 zhengyun — 政务云管理平台 / government cloud platform"
)]
struct Cli {
    /// The server's address (default: saved at login, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "ZHENGYUN_SERVER")]
    server: Option<String>,
    /// Use this API token instead of the saved login session.
    #[arg(long, global = true, env = "ZHENGYUN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane server.
    Server(ServerArgs),
    /// Run the host agent: joins the control plane once with a one-time token, then runs
    /// instances as QEMU virtual machines and serves the control plane over mutual TLS.
    Agent(AgentArgs),
    /// Print the OpenAPI document generated from the code.
    Openapi,
    /// Log in and save the session in the user's config dir.
    Login(commands::LoginArgs),
    /// End the saved session.
    Logout,
    /// Show who you are logged in as, and your roles.
    Me,
    /// Change your password.
    Password(commands::PasswordArgs),
    /// Second factor (TOTP): enrol, confirm, compute a code.
    #[command(subcommand)]
    Mfa(commands::MfaCmd),
    /// Departments (委办局).
    #[command(subcommand, alias = "dept")]
    Department(commands::DepartmentCmd),
    /// Projects (业务系统).
    #[command(subcommand)]
    Project(commands::ProjectCmd),
    /// User accounts, and the security admin's locks and resets.
    #[command(subcommand)]
    User(commands::UserCmd),
    /// Role grants (who holds which role where).
    #[command(subcommand, alias = "role")]
    Membership(commands::MembershipCmd),
    /// API tokens for scripts.
    #[command(subcommand)]
    Token(commands::TokenCmd),
    /// Security settings (security admin).
    #[command(subcommand)]
    Security(commands::SecurityCmd),
    /// The audit log (auditor).
    #[command(subcommand)]
    Audit(commands::AuditCmd),
    /// Cloud service providers (云服务商).
    #[command(subcommand)]
    Provider(inventory_cmds::ProviderCmd),
    /// Zones (资源池/可用区).
    #[command(subcommand)]
    Zone(inventory_cmds::ZoneCmd),
    /// Hosts (宿主机).
    #[command(subcommand)]
    Host(inventory_cmds::HostCmd),
    /// Flavors (规格).
    #[command(subcommand)]
    Flavor(inventory_cmds::FlavorCmd),
    /// Images and templates (镜像/应用模板).
    #[command(subcommand)]
    Image(inventory_cmds::ImageCmd),
    /// Quotas (配额) of departments and projects.
    #[command(subcommand)]
    Quota(compute_cmds::QuotaCmd),
    /// Instances (云主机).
    #[command(subcommand, alias = "vm")]
    Instance(compute_cmds::InstanceCmd),
    /// Volumes (云硬盘).
    #[command(subcommand)]
    Volume(compute_cmds::VolumeCmd),
    /// Storage pools.
    #[command(subcommand)]
    Pool(inventory_cmds::PoolCmd),
    /// Virtual private networks (虚拟私有网络) and their subnets.
    #[command(subcommand)]
    Vpc(network_cmds::VpcCmd),
    /// Subnets (子网) of a VPC.
    #[command(subcommand)]
    Subnet(network_cmds::SubnetCmd),
    /// Network interfaces (网卡) of instances.
    #[command(subcommand)]
    Nic(network_cmds::NicCmd),
    /// Security groups (安全组) and their rules.
    #[command(subcommand)]
    Sg(network_cmds::SgCmd),
    /// Elastic IPs (弹性IP) and the external networks they come from.
    #[command(subcommand)]
    Eip(network_cmds::EipCmd),
    /// Load balancers (负载均衡): listeners, pools, members and their health.
    #[command(subcommand)]
    Lb(lb_cmds::LbCmd),
    /// Resource requests (资源申请): apply, review, accept.
    #[command(subcommand)]
    Request(request_cmds::RequestCmd),
    /// Approval chains (审批流程) and requests-only departments.
    #[command(subcommand)]
    ApprovalChain(request_cmds::ChainCmd),
    /// Your notifications (站内信) and notification preferences.
    #[command(subcommand)]
    Inbox(notify_cmds::InboxCmd),
    /// Notification delivery: mail settings, webhooks and delivery logs.
    #[command(subcommand)]
    Notify(notify_cmds::NotifyCmd),
    /// High availability (高可用): recoveries, instance policies, maintenance evacuation.
    #[command(subcommand)]
    Ha(ha_cmds::HaCmd),
    /// Host groups and their HA policy (主机组).
    #[command(subcommand)]
    HostGroup(ha_cmds::HostGroupCmd),
    /// Consolidation plans (资源整合): free hosts by live migration, on approval.
    #[command(subcommand)]
    Consolidation(ha_cmds::ConsolidationCmd),
    /// The recycle bin (回收站): released instances until they are restored or purged.
    #[command(subcommand)]
    RecycleBin(lease_cmds::RecycleBinCmd),
    /// Metrics history (监控): CPU, memory, disk, network and availability over time.
    #[command(subcommand)]
    Metrics(metrics_cmds::MetricsCmd),
    /// Alerts (告警): rules, what fires now and its history, silences.
    #[command(subcommand)]
    Alert(metrics_cmds::AlertCmd),
    /// Tickets (工单): open, accept, resolve, reopen, close with a rating; deadlines.
    #[command(subcommand)]
    Ticket(ops_cmds::TicketCmd),
    /// Inspections (巡检): daily plans of automated checks, run now, results.
    #[command(subcommand)]
    Inspection(ops_cmds::InspectionCmd),
    /// Provider SLA scores (服务质量考核): monthly scores, compute, weights and bands.
    #[command(subcommand)]
    Sla(ops_cmds::SlaCmd),
    /// Bills (账单): list, show, export, close a month, adjust, confirm, pay; providers.
    #[command(subcommand)]
    Bill(billing_cmds::BillCmd),
    /// Price lists (价格目录): versions per provider.
    #[command(subcommand)]
    Price(billing_cmds::PriceCmd),
    /// Usage and its cost per resource (计量), this month unless --month.
    Usage {
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        provider: Option<String>,
    },
    /// Department budgets (预算).
    #[command(subcommand)]
    Budget(billing_cmds::BudgetCmd),
    /// Reconciliation with providers' invoices (对账).
    #[command(subcommand)]
    Reconcile(billing_cmds::ReconcileCmd),
    /// The address plan (地址规划): CIDR blocks of departments, for mapping security events
    /// and vulnerabilities.
    #[command(subcommand)]
    AddressPlan(secev_cmds::AddressPlanCmd),
    /// Security events (安全事件): list, counts, the syslog intake, alert rules, policy.
    #[command(subcommand)]
    Secevent(secev_cmds::SecEventCmd),
    /// Vulnerability tracking (漏洞管理): import scans, list, move findings, counts.
    #[command(subcommand)]
    Vuln(secev_cmds::VulnCmd),
    /// Supervision (监管): indicators with their inputs, providers side by side,
    /// departments ranked, the dashboard's totals, monthly operations reports.
    #[command(subcommand)]
    Supervision(supervision_cmds::SupervisionCmd),
    /// Idle and zombie resources (闲置资源): list, reclaim in one step, dismiss, reclaimed
    /// capacity, thresholds.
    #[command(subcommand)]
    Idle(supervision_cmds::IdleCmd),
    /// Platform administration.
    #[command(subcommand)]
    Admin(AdminCmd),
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Verify the invariants: host allocations, quota use, disks.
    Check,
    /// The background tasks of every replica: last run, duration, outcome, next run.
    Tasks,
    /// Sagas still running or undoing.
    Sagas,
    /// Lease settings: reminders, grace period, recycle-bin retention (shown; changed with
    /// any option).
    LeaseSettings(lease_cmds::LeaseSettingsArgs),
}

#[derive(Args)]
struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ZHENGYUN_LISTEN")]
    listen: SocketAddr,
    /// Directory for the SQLite database and other state.
    #[arg(long, default_value = "data", env = "ZHENGYUN_DATA_DIR")]
    data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL (several replicas), or `sqlite://…`; default: SQLite in the data dir.
    #[arg(long, env = "ZHENGYUN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// PostgreSQL schema to keep the tables in (several deployments or test runs in one database).
    #[arg(long, env = "ZHENGYUN_DATABASE_SCHEMA")]
    database_schema: Option<String>,
    /// Load the demo data set (宜宾 bureaus, projects, users of every role) on first start.
    #[arg(long)]
    demo: bool,
    /// Mark cookies Secure (when served behind HTTPS).
    #[arg(long)]
    secure_cookies: bool,
    /// Database connections in the pool.
    #[arg(long, default_value_t = 16)]
    max_connections: u32,
    /// Longest an API request may take; slower ones are answered 503 with Retry-After.
    #[arg(long, default_value_t = 30)]
    request_timeout_secs: u64,
    /// Let finance move the metering clock forward (POST /v1/billing/clock), to try billing
    /// with back-dated months. For tests and trials only, never in production.
    #[arg(long, env = "ZHENGYUN_TEST_CLOCK")]
    test_clock: bool,
    /// Receive security events from firewalls, WAFs and IDSs as syslog over UDP on this
    /// address (RFC 5424 / RFC 3164), e.g. 127.0.0.1:5514. Off by default.
    #[arg(long)]
    syslog_udp: Option<std::net::SocketAddr>,
    /// The same over TCP (octet counting or one message per line).
    #[arg(long)]
    syslog_tcp: Option<std::net::SocketAddr>,
    /// Lines the syslog queue holds before UDP lines are dropped (and counted).
    #[arg(long, default_value_t = 65_536)]
    syslog_queue: usize,
    /// Key that seals second-factor seeds (default: <data dir>/secret.key, created at first
    /// start). Replicas sharing a database must share this file.
    #[arg(long, env = "ZHENGYUN_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// With --demo: also run a host agent in this process with this guest template
    /// directory (from `cargo xtask template`), so the demo's "本机 KVM" provider runs
    /// real QEMU virtual machines. Its state lives in <data dir>/local-agent.
    #[arg(long)]
    local_agent_template: Option<PathBuf>,
    /// With --demo: register the OpenStack test bed of `cargo xtask openstack up` as the
    /// provider "OpenStack 测试床" (once), from its env file (target/openstack-bed/env).
    #[arg(long, env = "ZHENGYUN_DEMO_OPENSTACK")]
    demo_openstack: Option<PathBuf>,
}

#[derive(Args)]
struct AgentArgs {
    /// Directory for the agent's identity, templates and VMs.
    #[arg(long, default_value = "agent-data", env = "ZHENGYUN_AGENT_DATA_DIR")]
    data_dir: PathBuf,
    /// Where to serve the mutual-TLS API (port 0: a free port, kept across restarts).
    #[arg(long, default_value = "127.0.0.1:0", env = "ZHENGYUN_AGENT_LISTEN")]
    listen: SocketAddr,
    /// `host:port` the control plane dials, if not the listen address.
    #[arg(long)]
    advertise: Option<String>,
    /// The control plane's URL (first start).
    #[arg(long, env = "ZHENGYUN_SERVER")]
    server: Option<String>,
    /// One-time join token from `zhengyun host join-token` (first start).
    #[arg(long, env = "ZHENGYUN_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// The host's name in the inventory (default: the machine's host name).
    #[arg(long)]
    name: Option<String>,
    /// Template directory (with template.json, built by `cargo xtask template`) to install;
    /// may be given several times.
    #[arg(long = "template")]
    templates: Vec<PathBuf>,
    /// `auto` probes whether guests really run under KVM here; `kvm` or `tcg` to force.
    #[arg(long, default_value = "auto")]
    accel: String,
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// This host's IPv4 address where the other hosts' VXLAN tunnels reach it (the
    /// underlay); without it VPCs stay local to this host.
    #[arg(long)]
    underlay: Option<std::net::Ipv4Addr>,
    /// Run the data plane (bridges, VXLAN, taps, rule set) and QEMU in this network
    /// namespace instead of the host's own.
    #[arg(long)]
    netns: Option<String>,
}

async fn run_agent(a: AgentArgs) -> anyhow::Result<()> {
    init_logging();
    let accel = match a.accel.as_str() {
        "auto" => None,
        "kvm" => Some(zy_qemu::Accel::Kvm),
        "tcg" => Some(zy_qemu::Accel::Tcg),
        other => anyhow::bail!("--accel must be auto, kvm or tcg, not {other}"),
    };
    let agent = zy_agent::start(zy_agent::AgentConfig {
        data_dir: a.data_dir,
        listen: a.listen,
        advertise: a.advertise,
        server: a.server,
        join_token: a.join_token,
        name: a.name,
        qemu_bin: a.qemu,
        templates: a.templates,
        accel,
        netns: a.netns,
        underlay: a.underlay,
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "zhengyun agent: host {} serving on {} (mutual TLS)",
        agent.state.host_id, agent.addr
    );
    tokio::select! {
        _ = agent_wait_signal() => {}
    }
    agent.stop().await;
    Ok(())
}

async fn agent_wait_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> std::process::ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    let result = rt.block_on(async move {
        match cli.command {
            Command::Server(a) => run_server(a).await,
            Command::Agent(a) => run_agent(a).await,
            Command::Openapi => {
                println!("{}", zy_server::api::openapi().to_pretty_json()?);
                Ok(())
            }
            other => commands::run(cli.server, cli.token, cli.json, other).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if json {
                if let Some(f) = e.downcast_ref::<client::ApiFailure>() {
                    output::json(&f.body);
                    return std::process::ExitCode::FAILURE;
                }
            }
            eprintln!("错误 error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `zhengyun … | head` closes our stdout early; Rust then panics in `println!`. A CLI
/// should just stop quietly, as other Unix tools do.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZHENGYUN_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_target(false)
        .init();
}

/// The demo's local host agent, in the server's process (its VMs are QEMU processes of
/// their own, so they outlive it like any agent's).
async fn local_agent(
    server: &zy_server::Server,
    data_dir: &std::path::Path,
    template: PathBuf,
) -> anyhow::Result<zy_agent::Agent> {
    let dir = data_dir.join("local-agent");
    let token = match zy_agent::identity::load(&dir).map_err(|e| anyhow::anyhow!(e))? {
        Some(_) => None,
        None => Some(
            zy_server::demo::local_join_token(&server.state.store)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message.en))?,
        ),
    };
    zy_agent::start(zy_agent::AgentConfig {
        data_dir: dir,
        listen: "127.0.0.1:0".parse()?,
        advertise: None,
        server: Some(format!("http://{}", server.addr)),
        join_token: token,
        name: Some("localhost".into()),
        qemu_bin: "qemu-system-x86_64".into(),
        templates: vec![template],
        accel: None,
        netns: None,
        underlay: None,
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}

/// The demo's OpenStack provider: the local test bed, registered once and synchronised
/// at once so its hypervisor and drift show without waiting for the periodic task.
async fn demo_openstack(server: &zy_server::Server, env: &std::path::Path) {
    use zy_server::demo::openstack;
    let registered = match openstack::read_env(env) {
        Ok(vars) => openstack::register(&server.state, &vars).await,
        Err(e) => Err(e),
    };
    match registered {
        Ok(Some(id)) => {
            println!(
                "OpenStack 测试床：已接入为云服务商「{}」the OpenStack bed is the provider {}",
                openstack::PROVIDER,
                id
            );
            let state = server.state.clone();
            tokio::spawn(async move {
                if let Err(e) = zy_server::app::openstack::sync(&state, id).await {
                    eprintln!(
                        "OpenStack 测试床首次同步失败 first sync failed: {}",
                        e.message.zh
                    );
                }
            });
        }
        Ok(None) => {}
        Err(e) => eprintln!(
            "OpenStack 测试床未接入 the OpenStack bed was not registered: {} / {}",
            e.message.zh, e.message.en
        ),
    }
}

async fn run_server(a: ServerArgs) -> anyhow::Result<()> {
    init_logging();
    let config = zy_server::Config {
        listen: a.listen,
        database_url: a.database_url,
        pg_schema: a.database_schema,
        data_dir: a.data_dir.clone(),
        demo: a.demo,
        secure_cookies: a.secure_cookies,
        max_connections: a.max_connections,
        lease_secs: 30,
        secret_key_file: a.secret_key_file,
        request_timeout: std::time::Duration::from_secs(a.request_timeout_secs.max(1)),
        test_clock: a.test_clock,
        syslog_udp: a.syslog_udp,
        syslog_tcp: a.syslog_tcp,
        syslog_queue: a.syslog_queue,
        ..Default::default()
    };
    let server = zy_server::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message.zh).context(e.internal.unwrap_or_default()))?;
    if let Some(c) = &server.credentials {
        println!("\n首次启动：已创建三员管理账号（一次性密码只显示这一次，首次登录须修改并绑定双因素认证）");
        println!("First start: the three admin accounts were created (one-time passwords are shown only now; change them at first login and enrol a second factor)");
        for (user, role, otp) in &c.accounts {
            println!(
                "  {user:<10} {:<18} {otp}",
                format!("{} ({role})", role.zh_name())
            );
        }
        println!();
    }
    if server.state.config.demo {
        println!("演示数据已就绪 demo data: 部门账号 wjw.admin / wjw.user / wjw.dev …，jianguan（监管）、caizheng（财政）、inspur.ops / ctyun.ops（浪潮云、天翼云运维）；密码 password: {}", zy_server::demo::DEMO_PASSWORD);
    }
    println!("zhengyun 政云 listening on http://{}", server.addr);
    let mut agent = None;
    if let (true, Some(t)) = (server.state.config.demo, a.local_agent_template) {
        match local_agent(&server, &a.data_dir, t).await {
            Ok(ag) => {
                println!(
                    "本机 KVM：宿主机 agent 已接入 local agent joined, host {} ({})",
                    ag.state.host_id,
                    ag.state.hv.accel().as_str()
                );
                agent = Some(ag);
            }
            Err(e) => eprintln!("本机 KVM 未启用 local KVM host not started: {e:#}"),
        }
    }
    if let (true, Some(env)) = (server.state.config.demo, &a.demo_openstack) {
        demo_openstack(&server, env).await;
    }
    server.wait().await;
    if let Some(ag) = agent {
        ag.stop().await;
    }
    Ok(())
}
