//! Load balancers (负载均衡) on this host: one HAProxy per load balancer, run in its own
//! network namespace `zl<first 10 hex of its id>`, attached by a veth pair to the VPC's
//! bridge `zb<vni>` with the virtual IP on the namespace side. The configuration is
//! rendered by a pure function ([`render`]), checked with `haproxy -c` before it replaces
//! the running one, and applied by a graceful reload (HAProxy in master-worker mode,
//! `SIGUSR2` to the master: the old worker finishes its established connections). Members'
//! health is read from HAProxy's stats socket (`show stat`, parsed by [`parse_stat`]).
//!
//! Everything is keyed by name and files under `<data dir>/lb/<id>/`, so a restarted agent
//! finds what runs (HAProxy daemonises and outlives the agent) and [`Lbs::adopt`] starts
//! again whatever a reboot stopped. Every call is idempotent.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use uuid::Uuid;
use zy_compute::agent::*;

/// The namespace of a load balancer (≤ 15 characters, like every Linux name).
pub fn ns_name(id: Uuid) -> String {
    format!("zl{}", &id.simple().to_string()[..10])
}

/// The host side of its veth pair (on the bridge) and the namespace side.
pub fn veth_names(id: Uuid) -> (String, String) {
    let hex = &id.simple().to_string()[..10];
    (format!("zlh{hex}"), format!("zlv{hex}"))
}

/// The VPC's bridge on this host (the name the data plane gives it).
pub fn bridge_name(vni: u32) -> String {
    format!("zb{vni}")
}

#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// The request cannot be applied as it is (bad addresses, a configuration HAProxy
    /// refuses).
    #[error("{0}")]
    Invalid(String),
    /// Worth another try (a tool failed, HAProxy did not come up in time).
    #[error("{0}")]
    Transient(String),
}

fn ip(field: &str, s: &str) -> Result<Ipv4Addr, LbError> {
    s.parse()
        .map_err(|_| LbError::Invalid(format!("{field} {s:?} is not an IPv4 address")))
}

/// Checks everything that goes into the configuration text, so nothing a caller sends can
/// add a directive: addresses parse, names and paths are plain.
pub fn validate(spec: &LbSpecWire) -> Result<(), LbError> {
    ip("vip", &spec.vip)?;
    ip("gateway", &spec.gateway)?;
    if !(1..=32).contains(&spec.prefix) || spec.vni == 0 || spec.vni > 0x00ff_ffff {
        return Err(LbError::Invalid("prefix or vni out of range".into()));
    }
    let mut ports = std::collections::BTreeSet::new();
    for l in &spec.listeners {
        if l.port == 0 || !ports.insert(l.port) {
            return Err(LbError::Invalid(format!(
                "listener port {} is zero or repeated",
                l.port
            )));
        }
        if !(100..=600_000).contains(&l.interval_ms) || l.rise == 0 || l.fall == 0 {
            return Err(LbError::Invalid("health check timing out of range".into()));
        }
        if let Some(c) = &l.http_check {
            let plain = c.path.starts_with('/')
                && c.path.len() <= 200
                && c.path
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'#');
            if !plain || !(100..=599).contains(&c.status) {
                return Err(LbError::Invalid(format!(
                    "bad HTTP check {:?} {}",
                    c.path, c.status
                )));
            }
        }
        for m in &l.members {
            ip("member address", &m.address)?;
            let name_ok = !m.name.is_empty()
                && m.name.len() <= 32
                && m.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_ok || m.port == 0 || m.weight == 0 || m.weight > 256 {
                return Err(LbError::Invalid(format!("bad member {:?}", m.name)));
            }
        }
    }
    Ok(())
}

/// The HAProxy configuration of a load balancer (pure: same input, same text). `stats`
/// is the path of the stats socket the agent reads members' health from.
pub fn render(id: Uuid, spec: &LbSpecWire, stats: &Path) -> String {
    let mut c = String::new();
    let mut line = |s: &str| {
        c.push_str(s);
        c.push('\n');
    };
    line(&format!(
        "# zhengyun load balancer {id}: written by the agent, do not edit"
    ));
    line("global");
    line(&format!(
        "    stats socket {} mode 600 level admin",
        stats.display()
    ));
    line("    maxconn 4000");
    line("");
    line("defaults");
    line("    timeout connect 5s");
    line("    timeout client 60s");
    line("    timeout server 60s");
    line("    timeout check 2s");
    for l in &spec.listeners {
        let mode = match l.mode {
            LbMode::Tcp => "tcp",
            LbMode::Http => "http",
        };
        line("");
        line(&format!("frontend fe_{}", l.port));
        line(&format!("    mode {mode}"));
        line(&format!("    bind {}:{}", spec.vip, l.port));
        if l.mode == LbMode::Http {
            line("    option forwardfor");
            line("    timeout http-request 10s");
        }
        line(&format!("    default_backend be_{}", l.port));
        line("");
        line(&format!("backend be_{}", l.port));
        line(&format!("    mode {mode}"));
        line(match l.balance {
            LbBalance::RoundRobin => "    balance roundrobin",
            LbBalance::LeastConn => "    balance leastconn",
        });
        if let Some(h) = &l.http_check {
            line("    option httpchk");
            line(&format!("    http-check send meth GET uri {}", h.path));
            line(&format!("    http-check expect status {}", h.status));
        }
        line(&format!(
            "    default-server inter {}ms rise {} fall {}",
            l.interval_ms, l.rise, l.fall
        ));
        for m in &l.members {
            line(&format!(
                "    server {} {}:{} weight {} check",
                m.name, m.address, m.port, m.weight
            ));
        }
    }
    c
}

/// Members' health from the CSV of `show stat` (servers of backends `be_<port>`).
pub fn parse_stat(csv: &str) -> Vec<LbMemberReport> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |n: &str| cols.iter().position(|c| *c == n);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let (Some(p), Some(s), Some(status)) = (f.get(px), f.get(sv), f.get(st)) else {
            continue;
        };
        let Some(port) = p.strip_prefix("be_").and_then(|x| x.parse::<u16>().ok()) else {
            continue;
        };
        if *s == "BACKEND" || *s == "FRONTEND" {
            continue;
        }
        // "UP 1/3" is still up (going down); "DOWN 1/2" still down (going up).
        let health = if status.starts_with("UP") {
            LbMemberHealth::Up
        } else if status.starts_with("DOWN")
            || status.starts_with("MAINT")
            || status.starts_with("NOLB")
            || status.starts_with("DRAIN")
        {
            LbMemberHealth::Down
        } else {
            LbMemberHealth::Unknown
        };
        out.push(LbMemberReport {
            listener_port: port,
            name: s.to_string(),
            health,
        });
    }
    out
}

fn tool(candidates: &[&str], name: &str) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a tool; its error output in the error.
async fn run(program: &Path, args: &[&str]) -> Result<String, LbError> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| LbError::Transient(format!("{shown}: timed out")))?
    .map_err(|e| LbError::Transient(format!("{shown}: {e}")))?;
    if !out.status.success() {
        return Err(LbError::Transient(format!(
            "{shown}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `pid` is a live HAProxy.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("X");
    state != "Z"
        && state != "X"
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("haproxy"))
            .unwrap_or(false)
}

async fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}

/// The load balancers of this host.
pub struct Lbs {
    dir: PathBuf,
    ip: PathBuf,
    haproxy: PathBuf,
    /// One change at a time (the tools are quick; a reload is not).
    lock: tokio::sync::Mutex<()>,
}

impl Lbs {
    pub fn new(data_dir: &Path) -> Lbs {
        Lbs {
            dir: data_dir.join("lb"),
            ip: tool(&["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"], "ip"),
            haproxy: tool(&["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"], "haproxy"),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn dir_of(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// The running master's pid. A reloading master replaces its pid file (a new file
    /// under the same name), so a read can find it missing or empty for a moment: with a
    /// configuration in place (HAProxy was started), that is read again for a moment
    /// rather than taken as "not running", which would start a second HAProxy next to
    /// the reloading one.
    fn pid(&self, id: Uuid) -> Option<u32> {
        let dir = self.dir_of(id);
        let path = dir.join("haproxy.pid");
        for _ in 0..25 {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Ok(p) = text.trim().parse::<u32>() {
                        return alive(p).then_some(p);
                    }
                }
                Err(_) if !dir.join("haproxy.cfg").exists() => return None,
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// After `SIGUSR2`: waits until the re-executed master has replaced its pid file, so
    /// the lock is released only once the reload is done.
    async fn wait_reloaded(&self, id: Uuid, pid: u32, before: Option<u64>) {
        use std::os::unix::fs::MetadataExt;
        let path = self.dir_of(id).join("haproxy.pid");
        for _ in 0..100 {
            let now = std::fs::metadata(&path).ok().map(|m| m.ino());
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let replaced = now.is_some() && now != before;
            if (replaced && text.trim().parse::<u32>().ok() == Some(pid)) || !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ip(&self, args: &[&str]) -> Result<String, LbError> {
        run(&self.ip, args).await
    }

    async fn link_exists(&self, name: &str, ns: Option<&str>) -> bool {
        let mut a = Vec::new();
        if let Some(n) = ns {
            a.extend(["-n", n]);
        }
        a.extend(["link", "show", name]);
        self.ip(&a).await.is_ok()
    }

    /// The namespace, the veth pair on the VPC's bridge and the virtual IP; idempotent.
    async fn plumb(&self, id: Uuid, spec: &LbSpecWire) -> Result<(), LbError> {
        let ns = ns_name(id);
        let (host, inner) = veth_names(id);
        let br = bridge_name(spec.vni);
        if !self.link_exists(&br, None).await {
            // Normally the data plane made it already; one without members here yet is
            // made the same way (the data plane adopts it and adds the VXLAN tunnel).
            self.ip(&["link", "add", &br, "type", "bridge"]).await?;
        }
        self.ip(&["link", "set", &br, "up"]).await?;
        if !Path::new("/run/netns").join(&ns).exists() {
            self.ip(&["netns", "add", &ns]).await?;
        }
        if !self.link_exists(&host, None).await {
            self.ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inner, "netns", &ns,
            ])
            .await?;
        }
        self.ip(&["link", "set", &host, "master", &br, "up"])
            .await?;
        self.ip(&["-n", &ns, "link", "set", "lo", "up"]).await?;
        self.ip(&["-n", &ns, "link", "set", &inner, "up"]).await?;
        let addr = format!("{}/{}", spec.vip, spec.prefix);
        self.ip(&["-n", &ns, "addr", "replace", &addr, "dev", &inner])
            .await?;
        self.ip(&[
            "-n",
            &ns,
            "route",
            "replace",
            "default",
            "via",
            &spec.gateway,
            "dev",
            &inner,
        ])
        .await?;
        Ok(())
    }

    /// Runs load balancer `id` with exactly `spec`: plumbing, configuration checked by
    /// HAProxy itself, then a start or a graceful reload when the text changed.
    pub async fn ensure(&self, id: Uuid, spec: &LbSpecWire) -> Result<LbReport, LbError> {
        validate(spec)?;
        {
            let _g = self.lock.lock().await;
            let dir = self.dir_of(id);
            std::fs::create_dir_all(&dir)
                .map_err(|e| LbError::Transient(format!("{}: {e}", dir.display())))?;
            self.plumb(id, spec).await?;
            let spec_json =
                serde_json::to_string(spec).map_err(|e| LbError::Invalid(e.to_string()))?;
            write(&dir.join("spec.json"), &spec_json)?;
            let cfg = dir.join("haproxy.cfg");
            let pid = self.pid(id);
            if spec.listeners.is_empty() {
                // Nothing to serve: HAProxy refuses an empty configuration.
                if let Some(p) = pid {
                    self.stop_pid(p).await;
                }
                let _ = std::fs::remove_file(&cfg);
                return Ok(LbReport {
                    running: false,
                    members: Vec::new(),
                });
            }
            let text = render(id, spec, &dir.join("stats.sock"));
            let same = std::fs::read_to_string(&cfg).is_ok_and(|t| t == text);
            if !(same && pid.is_some()) {
                let next = dir.join("haproxy.cfg.next");
                write(&next, &text)?;
                let next_s = next.to_string_lossy().into_owned();
                if let Err(LbError::Transient(e)) =
                    run(&self.haproxy, &["-c", "-q", "-f", &next_s]).await
                {
                    return Err(LbError::Invalid(format!(
                        "HAProxy refuses the configuration: {e}"
                    )));
                }
                std::fs::rename(&next, &cfg)
                    .map_err(|e| LbError::Transient(format!("{}: {e}", cfg.display())))?;
                match pid {
                    Some(p) => {
                        use std::os::unix::fs::MetadataExt;
                        let before = std::fs::metadata(dir.join("haproxy.pid"))
                            .ok()
                            .map(|m| m.ino());
                        signal(p, "-USR2").await;
                        self.wait_reloaded(id, p, before).await;
                    }
                    None => self.start(id).await?,
                }
            }
        }
        self.report_when_ready(id).await
    }

    async fn start(&self, id: Uuid) -> Result<(), LbError> {
        let dir = self.dir_of(id);
        let err_path = dir.join("start.err");
        let err = std::fs::File::create(&err_path)
            .map_err(|e| LbError::Transient(format!("{}: {e}", err_path.display())))?;
        // Master-worker (-W), daemonised (-D): it outlives the agent. Its output goes to a
        // file, not a pipe the daemon would hold open.
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            Command::new(&self.ip)
                .args(["netns", "exec", &ns_name(id)])
                .arg(&self.haproxy)
                .args(["-W", "-D", "-p"])
                .arg(dir.join("haproxy.pid"))
                .arg("-f")
                .arg(dir.join("haproxy.cfg"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(err)
                .status(),
        )
        .await
        .map_err(|_| LbError::Transient("starting HAProxy timed out".into()))?
        .map_err(|e| LbError::Transient(format!("cannot start HAProxy: {e}")))?;
        if !status.success() {
            let why = std::fs::read_to_string(&err_path).unwrap_or_default();
            return Err(LbError::Transient(format!(
                "HAProxy did not start ({status}): {}",
                why.trim()
            )));
        }
        Ok(())
    }

    async fn stop_pid(&self, pid: u32) {
        signal(pid, "-TERM").await;
        for _ in 0..100 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal(pid, "-KILL").await;
    }

    /// The report once the stats socket answers (a just started or reloaded HAProxy
    /// takes a moment to bind it).
    async fn report_when_ready(&self, id: Uuid) -> Result<LbReport, LbError> {
        let mut last = String::new();
        for _ in 0..60 {
            match self.stats(id).await {
                Ok(members) => {
                    return Ok(LbReport {
                        running: true,
                        members,
                    })
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(LbError::Transient(format!(
            "HAProxy of load balancer {id} does not answer on its stats socket: {last}"
        )))
    }

    async fn stats(&self, id: Uuid) -> Result<Vec<LbMemberReport>, LbError> {
        let sock = self.dir_of(id).join("stats.sock");
        let io = |e: std::io::Error| LbError::Transient(format!("{}: {e}", sock.display()));
        let fut = async {
            let mut s = tokio::net::UnixStream::connect(&sock).await.map_err(io)?;
            s.write_all(b"show stat\n").await.map_err(io)?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.map_err(io)?;
            Ok::<_, LbError>(out)
        };
        let out = tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .map_err(|_| LbError::Transient("stats socket timed out".into()))??;
        Ok(parse_stat(&out))
    }

    /// Members' health now; `None` when this host has no such load balancer.
    pub async fn status(&self, id: Uuid) -> Result<Option<LbReport>, LbError> {
        if !self.dir_of(id).join("spec.json").exists() {
            return Ok(None);
        }
        if self.pid(id).is_none() {
            return Ok(Some(LbReport {
                running: false,
                members: Vec::new(),
            }));
        }
        Ok(Some(LbReport {
            running: true,
            members: self.stats(id).await?,
        }))
    }

    /// Stops HAProxy and removes the namespace, the veth pair and the files; idempotent.
    pub async fn delete(&self, id: Uuid) -> Result<(), LbError> {
        let _g = self.lock.lock().await;
        if let Some(p) = self.pid(id) {
            self.stop_pid(p).await;
        }
        let ns = ns_name(id);
        let (host, _) = veth_names(id);
        if self.link_exists(&host, None).await {
            self.ip(&["link", "del", &host]).await?;
        }
        if Path::new("/run/netns").join(&ns).exists() {
            self.ip(&["netns", "del", &ns]).await?;
        }
        let dir = self.dir_of(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| LbError::Transient(format!("{}: {e}", dir.display())))?;
        }
        Ok(())
    }

    /// At agent start: every load balancer whose HAProxy is not running (the host
    /// rebooted) is brought back from its saved configuration; running ones are left
    /// alone. Returns how many were found.
    pub async fn adopt(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            let Some(id) = e.file_name().to_str().and_then(|s| s.parse::<Uuid>().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(e.path().join("spec.json")) else {
                continue;
            };
            let Ok(spec) = serde_json::from_str::<LbSpecWire>(&text) else {
                continue;
            };
            n += 1;
            if self.pid(id).is_some() {
                continue;
            }
            if let Err(err) = self.ensure(id, &spec).await {
                tracing::error!(lb = %id, error = %err, "cannot bring a load balancer back");
            }
        }
        n
    }
}

fn write(path: &Path, text: &str) -> Result<(), LbError> {
    std::fs::write(path, text).map_err(|e| LbError::Transient(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests;
