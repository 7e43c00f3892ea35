//! `zhengyun agent`: the program on each physical host. It joins the control plane once
//! with a one-time token (sending a CSR and the capacity it measured), then serves the
//! control plane's idempotent "ensure" calls over mutual TLS and runs each instance as a
//! QEMU process through `zy_qemu`.
//!
//! Restarting the agent never touches a VM: at start it adopts the VMs it finds in its
//! data directory, and a supervisor restarts guests that died unexpectedly when their
//! policy says so (and counts it, so the control plane records the crash). Load balancers
//! (HAProxy in network namespaces, [`lb`]) are adopted the same way.

pub mod api;
pub mod fence;
pub mod identity;
pub mod lb;
pub mod net;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use uuid::Uuid;
use zy_compute::agent::*;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    /// Where to serve the mutual-TLS API (port 0: any free port at first join, the same
    /// port afterwards).
    pub listen: SocketAddr,
    /// `host:port` the control plane dials, when it differs from `listen`.
    pub advertise: Option<String>,
    /// The control plane's URL and a one-time join token (first start only).
    pub server: Option<String>,
    pub join_token: Option<String>,
    /// The host's name in the inventory (default: the machine's host name).
    pub name: Option<String>,
    pub qemu_bin: PathBuf,
    /// Template directories (with `template.json`) to install when missing.
    pub templates: Vec<PathBuf>,
    /// `kvm` or `tcg` to skip the probe (tests); probed when `None`.
    pub accel: Option<zy_qemu::Accel>,
    /// The network namespace the data plane (bridges, VXLAN, taps, rule set) and QEMU
    /// live in; `None`: the host's own.
    pub netns: Option<String>,
    /// This host's address on the underlay network, where the other hosts' VXLAN tunnels
    /// reach it; without one the host carries VPCs only locally.
    pub underlay: Option<std::net::Ipv4Addr>,
}

pub struct AgentState {
    pub hv: zy_qemu::Hypervisor,
    pub host_id: Uuid,
    /// Host the control plane gives the source of a live migration to reach us.
    pub migration_host: String,
    qemu_version: String,
    crashes: Mutex<HashMap<Uuid, u32>>,
    fence: fence::Lease,
    pub net: net::DataPlane,
    /// The load balancers (HAProxy in network namespaces) of this host.
    pub lbs: lb::Lbs,
}

impl AgentState {
    pub fn crashes_of(&self, id: Uuid) -> u32 {
        self.crashes
            .lock()
            .map(|m| m.get(&id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn count_crash(&self, id: Uuid) {
        if let Ok(mut m) = self.crashes.lock() {
            *m.entry(id).or_insert(0) += 1;
        }
    }

    /// The NICs the data plane has for a VM, as QEMU devices.
    pub async fn vm_nics(&self, id: Uuid) -> Vec<zy_qemu::VmNic> {
        self.net
            .nics_of(id)
            .await
            .into_iter()
            .map(|n| zy_qemu::VmNic {
                id: n.id,
                tap: net::names::tap(n.id),
                mac: n.mac,
            })
            .collect()
    }

    /// A VM's spec from the control plane's, with its NICs from the data plane.
    pub async fn spec_of(&self, id: Uuid, wire: &VmSpecWire) -> zy_qemu::VmSpec {
        let mut spec = api::vm_spec(id, wire);
        spec.nics = self.vm_nics(id).await;
        spec
    }

    /// Gives every VM on this host the NICs the data plane has for it (hot-plug when
    /// running).
    pub async fn sync_nics(&self) -> Result<(), zy_qemu::Error> {
        let mut first = None;
        for id in self.hv.list().await? {
            let nics = self.vm_nics(id).await;
            if let Err(e) = self.hv.set_nics(id, &nics).await {
                tracing::warn!(vm = %id, error = %e, "cannot bring the VM's NICs to the network state");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Forgets a VM that left this host.
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut m) = self.crashes.lock() {
            m.remove(&id);
        }
    }

    pub async fn capacity(&self) -> Result<HostCapacity, zy_qemu::Error> {
        let c = self.hv.host_capacity().await?;
        Ok(HostCapacity {
            vcpus: c.cores,
            memory_mib: c.memory_bytes >> 20,
            disk_gib: c.disk_total_bytes >> 30,
            disk_free_gib: c.disk_free_bytes >> 30,
            accel: c.accel.as_str().to_string(),
            qemu_version: self.qemu_version.clone(),
        })
    }

    pub async fn host_report(&self) -> Result<HostReport, zy_qemu::Error> {
        let mut vms = Vec::new();
        for id in self.hv.list().await? {
            let st = self.hv.status(id).await;
            vms.push(api::report(id, st, self.crashes_of(id)));
        }
        Ok(HostReport {
            host_id: self.host_id,
            capacity: self.capacity().await?,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            vms,
            load: load(),
            lease_left_ms: self.fence.left_ms(),
            fenced: self.fence.fenced(),
            underlay: self.net.underlay().map(|a| a.to_string()),
            addresses: self.net.own_addresses().await,
        })
    }
}

fn load() -> HostLoad {
    let load_milli = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map(|l| (l * 1000.0) as u64)
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        mem.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (cpu_busy_ms, cpu_total_ms) = std::fs::read_to_string("/proc/stat")
        .map(|s| cpu_times_ms(&s))
        .unwrap_or_default();
    let (net_rx_bytes, net_tx_bytes) = std::fs::read_to_string("/proc/net/dev")
        .map(|s| {
            physical_traffic(&s, |name| {
                std::path::Path::new("/sys/class/net")
                    .join(name)
                    .join("device")
                    .exists()
            })
        })
        .unwrap_or_default();
    HostLoad {
        load_milli,
        memory_used_mib: field("MemTotal:").saturating_sub(field("MemAvailable:")) >> 10,
        cpu_busy_ms,
        cpu_total_ms,
        net_rx_bytes,
        net_tx_bytes,
    }
}

/// Busy and total CPU time in ms from `/proc/stat`'s first line (all cores, in clock
/// ticks of 1/100 s, the kernel's USER_HZ on every Linux architecture we run on).
/// Idle and I/O wait count as not busy; steal counts as busy, since the guest lost it.
fn cpu_times_ms(stat: &str) -> (u64, u64) {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    ((total.saturating_sub(idle)) * 10, total * 10)
}

/// Bytes received and sent by the interfaces `physical` accepts, from `/proc/net/dev`;
/// bridges, taps, tunnels and loopback would count guest traffic twice.
fn physical_traffic(dev: &str, physical: impl Fn(&str) -> bool) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in dev.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if !physical(name.trim()) {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

async fn qemu_version(bin: &std::path::Path) -> String {
    match tokio::process::Command::new(bin)
        .arg("--version")
        .output()
        .await
    {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// A running agent.
pub struct Agent {
    pub addr: SocketAddr,
    pub state: Arc<AgentState>,
    serve: tokio::task::JoinHandle<()>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// Stops serving. The VMs keep running (they are separate processes).
    pub async fn stop(self) {
        self.serve.abort();
        self.supervisor.abort();
        let _ = self.serve.await;
        let _ = self.supervisor.await;
    }

    pub async fn wait(self) {
        let _ = self.serve.await;
        self.supervisor.abort();
    }
}

/// Prepares the host (templates, acceleration, adoption), joins if needed and serves.
pub async fn start(cfg: AgentConfig) -> Result<Agent, String> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", cfg.data_dir.display()))?;
    for t in &cfg.templates {
        let name = zy_qemu::Template::open(t)
            .await
            .map_err(|e| format!("template {}: {e}", t.display()))?;
        let installed = cfg.data_dir.join("templates").join(name.name());
        if !installed.join("template.json").exists() {
            zy_qemu::Template::install(&cfg.data_dir, t)
                .await
                .map_err(|e| format!("cannot install template {}: {e}", t.display()))?;
            tracing::info!(template = name.name(), "template installed");
        }
    }
    let accel = match cfg.accel {
        Some(a) => a,
        None => probe(&cfg).await,
    };
    let hv = zy_qemu::Hypervisor::new(&cfg.data_dir, &cfg.qemu_bin, accel)
        .map_err(|e| e.to_string())?
        .with_netns(cfg.netns.clone());

    let stored = identity::load(&cfg.data_dir)?;
    let mut listen = cfg.listen;
    if let Some((id, _)) = &stored {
        if listen.port() == 0 {
            if let Some(port) = id.address.rsplit(':').next().and_then(|p| p.parse().ok()) {
                listen.set_port(port);
            }
        }
    }
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = tcp.local_addr().map_err(|e| e.to_string())?;
    let advertise = cfg.advertise.clone().unwrap_or_else(|| addr.to_string());

    let qemu_version = qemu_version(&cfg.qemu_bin).await;
    let (id, key) = match stored {
        Some(s) => s,
        None => {
            let (Some(server), Some(token)) = (&cfg.server, &cfg.join_token) else {
                return Err("this host has not joined yet: give --server and --join-token (from `zhengyun host join-token`)".into());
            };
            let probe_state = AgentState {
                hv: zy_qemu::Hypervisor::new(&cfg.data_dir, &cfg.qemu_bin, accel)
                    .map_err(|e| e.to_string())?,
                host_id: Uuid::nil(),
                migration_host: String::new(),
                qemu_version: qemu_version.clone(),
                crashes: Default::default(),
                fence: fence::Lease::load(&cfg.data_dir),
                net: net::DataPlane::new(&cfg.data_dir, cfg.netns.clone(), cfg.underlay),
                lbs: lb::Lbs::new(&cfg.data_dir),
            };
            let capacity = probe_state.capacity().await.map_err(|e| e.to_string())?;
            let name = cfg.name.clone().unwrap_or_else(machine_name);
            let joined =
                identity::join(&cfg.data_dir, server, token, &name, &advertise, capacity).await?;
            tracing::info!(host_id = %joined.0.host_id, "joined the control plane");
            joined
        }
    };
    let tls = zy_pki::agent_server_config(
        &zy_pki::Identity {
            cert_pem: id.cert_pem.clone(),
            key_pem: key,
        },
        &id.client_ca_pem,
    )
    .map_err(|e| e.to_string())?;
    let migration_host = advertise
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let state = Arc::new(AgentState {
        hv,
        host_id: id.host_id,
        migration_host,
        qemu_version,
        crashes: Default::default(),
        fence: fence::Lease::load(&cfg.data_dir),
        net: net::DataPlane::new(&cfg.data_dir, cfg.netns.clone(), cfg.underlay),
        lbs: lb::Lbs::new(&cfg.data_dir),
    });
    // The network first: a guest restarted below needs its taps.
    if let Err(e) = state.net.adopt().await {
        tracing::error!(error = %e, "cannot restore the host's network state");
    }
    adopt(&state).await;
    let lbs = state.lbs.adopt().await;
    if lbs > 0 {
        tracing::info!(found = lbs, "adopted the load balancers on this host");
    }
    let listener = tls::TlsListener::new(tcp, tls).map_err(|e| e.to_string())?;
    let router = api::router(state.clone());
    let serve = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "agent API stopped");
        }
    });
    let supervisor = tokio::spawn(supervise(state.clone()));
    tracing::info!(%addr, host_id = %id.host_id, accel = accel.as_str(), "agent serving (mutual TLS)");
    Ok(Agent {
        addr,
        state,
        serve,
        supervisor,
    })
}

async fn probe(cfg: &AgentConfig) -> zy_qemu::Accel {
    let Some(t) = cfg.templates.first() else {
        tracing::warn!("no template to probe KVM with; guests run under TCG");
        return zy_qemu::Accel::Tcg;
    };
    match zy_qemu::Template::open(t).await {
        Ok(t) => zy_qemu::probe_accel(&cfg.qemu_bin, &t, zy_qemu::PROBE_TIMEOUT).await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the template to probe KVM; guests run under TCG");
            zy_qemu::Accel::Tcg
        }
    }
}

fn machine_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Finds the VMs already on this host; restarts those that died while nobody watched
/// and whose policy says so.
async fn adopt(state: &AgentState) {
    match state.hv.adopt().await {
        Ok(vms) => {
            let running = vms
                .iter()
                .filter(|v| matches!(v.status, zy_qemu::VmStatus::Running { .. }))
                .count();
            tracing::info!(found = vms.len(), running, "adopted the VMs on this host");
            for v in vms {
                if let zy_qemu::VmStatus::Crashed { pid } = v.status {
                    tracing::warn!(vm = %v.spec.id, pid, "VM died while the agent was away");
                    restart_crashed(state, &v.spec).await;
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot look for existing VMs"),
    }
}

async fn restart_crashed(state: &AgentState, spec: &zy_qemu::VmSpec) {
    state.count_crash(spec.id);
    if !spec.restart_on_crash {
        return;
    }
    if spec.shared_dir.is_some() && !state.fence.may_run_shared() {
        // Another host may be running it by now: only the control plane decides.
        tracing::warn!(vm = %spec.id, "not restarting a shared-storage VM without a valid lease");
        return;
    }
    match state.hv.start(spec).await {
        Ok(_) => tracing::info!(vm = %spec.id, "restarted a VM that died unexpectedly"),
        Err(e) => tracing::error!(vm = %spec.id, error = %e, "cannot restart a VM that died"),
    }
}

/// Watches for guests that die without being asked to, and fences: once the lease with
/// the control plane has run out, every guest whose disk another host can open is killed
/// (checked twice a second, so within [`fence::CHECK`] of the lease's end).
async fn supervise(state: Arc<AgentState>) {
    let mut tick = 0u32;
    loop {
        tokio::time::sleep(fence::CHECK).await;
        if state.fence.expired() {
            fence::fence_shared(&state).await;
        }
        tick += 1;
        if !tick.is_multiple_of(4) {
            continue;
        }
        let Ok(ids) = state.hv.list().await else {
            continue;
        };
        for id in ids {
            if let zy_qemu::VmStatus::Crashed { pid } = state.hv.status(id).await {
                tracing::warn!(vm = %id, pid, "VM died unexpectedly");
                match state.hv.spec(id).await {
                    Ok(spec) => restart_crashed(&state, &spec).await,
                    Err(e) => tracing::error!(vm = %id, error = %e, "no spec for a dead VM"),
                }
            }
        }
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;

    #[test]
    fn cpu_times_leave_idle_and_iowait_out_of_busy() {
        let stat = "cpu  100 5 45 800 50 0 0 0 0 0\ncpu0 50 2 20 400 25 0 0 0 0 0\n";
        // total 1000 ticks, idle+iowait 850 → busy 150 ticks = 1500 ms.
        assert_eq!(cpu_times_ms(stat), (1_500, 10_000));
        assert_eq!(cpu_times_ms("intr 1 2 3"), (0, 0));
    }

    #[test]
    fn only_physical_interfaces_count() {
        let dev = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9000      10    0    0    0     0          0         0     9000      10    0    0    0     0       0          0
  eth0: 1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
zb100: 500       5    0    0    0     0          0         0      700       7    0    0    0     0       0          0
";
        assert_eq!(physical_traffic(dev, |n| n == "eth0"), (1000, 2000));
    }
}

/// Helpers of the data plane's tests (golden texts, commands in namespaces).
#[cfg(test)]
pub(crate) mod test_util {
    use std::process::Stdio;

    /// Compares a rendered text with its golden file (`src/<rel>`), rewriting the file
    /// instead when `ZY_UPDATE_GOLDEN` is set.
    pub fn golden(rel: &str, got: &str, golden: &str) {
        if std::env::var_os("ZY_UPDATE_GOLDEN").is_some() {
            std::fs::write(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src")
                    .join(rel),
                got,
            )
            .expect("write golden");
        }
        assert_eq!(
            got, golden,
            "render changed; rerun with ZY_UPDATE_GOLDEN=1 and review the diff"
        );
    }

    /// Runs a command quietly: whether it succeeded.
    pub fn sh(args: &[&str]) -> bool {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}
