//! The `kvm` compute driver: real hosts, each run by `zhengyun agent`, called over mutual
//! TLS. The driver dials `<host id>.agents.zhengyun.internal` (resolved to the address the
//! agent joined with), so rustls checks that the certificate names exactly that host.
//!
//! Network failures are transient, not "host down": an agent restarting must not make a
//! delete believe the disks are gone. Declaring a host dead is an operator's (or the HA
//! monitor's) decision.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;
use zy_compute::agent::*;
use zy_compute::{ComputeDriver, DriverError, DriverFuture, InstanceSpec, PowerState};

/// One agent's HTTP client.
#[derive(Clone)]
pub struct AgentClient {
    base: String,
    http: reqwest::Client,
}

impl AgentClient {
    pub fn new(
        host_id: Uuid,
        address: std::net::SocketAddr,
        tls: &rustls::ClientConfig,
    ) -> Result<AgentClient, String> {
        let name = zy_pki::agent_dns_name(&host_id.to_string());
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .resolve(&name, address)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(600))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(AgentClient {
            base: format!("https://{name}:{}", address.port()),
            http,
        })
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, DriverError> {
        let resp = req
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| DriverError::Transient(format!("agent unreachable: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: Option<AgentError> = resp.json().await.ok();
        let msg = body
            .map(|b| format!("{}: {}", b.code, b.message))
            .unwrap_or_else(|| status.to_string());
        if status.is_server_error() || status.as_u16() == 409 || status.as_u16() == 429 {
            Err(DriverError::Transient(format!("agent: {msg}")))
        } else {
            Err(DriverError::Permanent(format!("agent: {msg}")))
        }
    }

    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<T, DriverError> {
        self.send(self.http.get(format!("{}{path}", self.base)), timeout)
            .await?
            .json()
            .await
            .map_err(|e| DriverError::Transient(format!("agent answered nonsense: {e}")))
    }

    async fn text(&self, path: &str) -> Result<String, DriverError> {
        self.send(
            self.http.get(format!("{}{path}", self.base)),
            Duration::from_secs(10),
        )
        .await?
        .text()
        .await
        .map_err(|e| DriverError::Transient(e.to_string()))
    }

    /// A heartbeat that renews the host's self-fencing lease (see `compute::ha`).
    pub async fn heartbeat_with_lease(
        &self,
        lease: &FenceLease,
        timeout: Duration,
    ) -> Result<HostReport, DriverError> {
        self.call(
            reqwest::Method::POST,
            "/v1/host/lease",
            Some(lease),
            timeout,
        )
        .await?
        .json()
        .await
        .map_err(|e| DriverError::Transient(format!("agent answered nonsense: {e}")))
    }

    /// Pushes the host's network state. `Ok(Err(applied))` when the agent already applied
    /// a newer generation (`applied`, read back from it).
    pub async fn put_network(
        &self,
        state: &NetworkState,
        timeout: Duration,
    ) -> Result<Result<NetworkReport, i64>, DriverError> {
        let resp = self
            .http
            .put(format!("{}/v1/network", self.base))
            .json(state)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| DriverError::Transient(format!("agent unreachable: {e}")))?;
        if resp.status().as_u16() == 409 {
            let now: NetworkReport = self.get("/v1/network", timeout).await?;
            return Ok(Err(now.generation));
        }
        let resp = self.send_checked(resp).await?;
        resp.json()
            .await
            .map(Ok)
            .map_err(|e| DriverError::Transient(format!("agent answered nonsense: {e}")))
    }

    async fn send_checked(
        &self,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response, DriverError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: Option<AgentError> = resp.json().await.ok();
        let msg = body
            .map(|b| format!("{}: {}", b.code, b.message))
            .unwrap_or_else(|| status.to_string());
        if status.is_server_error() || status.as_u16() == 429 {
            Err(DriverError::Transient(format!("agent: {msg}")))
        } else {
            Err(DriverError::Permanent(format!("agent: {msg}")))
        }
    }

    async fn call<B: serde::Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<reqwest::Response, DriverError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req, timeout).await
    }
}

pub fn wire_spec(spec: &InstanceSpec) -> VmSpecWire {
    VmSpecWire {
        hostname: hostname(&spec.name),
        vcpus: spec.vcpus,
        memory_mib: spec.memory_mib,
        disk_gib: spec.disk_gib,
        template: spec.image.clone(),
        user_data: spec.user_data.clone(),
        restart_on_crash: true,
        shared_dir: spec.shared_dir.clone(),
    }
}

/// An RFC 1123 host name from an instance name (which may be Chinese): ASCII letters,
/// digits and hyphens kept, everything else dropped; `vm` when nothing is left.
pub fn hostname(name: &str) -> String {
    let mut h: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect();
    h = h.trim_matches('-').to_string();
    if h.is_empty() {
        "vm".into()
    } else {
        h
    }
}

/// Short timeouts for quick calls, long ones for what waits on a guest.
const QUICK: Duration = Duration::from_secs(30);
const SLOW: Duration = Duration::from_secs(120);
const MIGRATION: Duration = Duration::from_secs(900);

pub struct KvmDriver {
    agents: RwLock<HashMap<Uuid, AgentClient>>,
}

impl KvmDriver {
    pub fn new() -> Arc<KvmDriver> {
        Arc::new(KvmDriver {
            agents: RwLock::new(HashMap::new()),
        })
    }

    pub fn set_agent(&self, host: Uuid, client: AgentClient) {
        if let Ok(mut m) = self.agents.write() {
            m.insert(host, client);
        }
    }

    pub fn agent(&self, host: Uuid) -> Result<AgentClient, DriverError> {
        self.agents
            .read()
            .ok()
            .and_then(|m| m.get(&host).cloned())
            .ok_or_else(|| {
                DriverError::Transient(format!("no agent registered for host {host} yet"))
            })
    }
}

impl ComputeDriver for KvmDriver {
    fn kind(&self) -> &'static str {
        "kvm"
    }

    fn simulated(&self) -> bool {
        false
    }

    fn create_disk<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let a = self.agent(spec.host_id)?;
            let body = DiskRequest {
                spec: wire_spec(spec),
            };
            a.call(
                reqwest::Method::PUT,
                &format!("/v1/instances/{}/disk", spec.instance_id),
                Some(&body),
                SLOW,
            )
            .await?;
            Ok(())
        })
    }

    fn delete_disk(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let a = self.agent(host_id)?;
            a.call::<()>(
                reqwest::Method::DELETE,
                &format!("/v1/instances/{instance_id}/disk"),
                None,
                SLOW,
            )
            .await?;
            Ok(())
        })
    }

    fn ensure_instance<'a>(
        &'a self,
        spec: &'a InstanceSpec,
        state: PowerState,
    ) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let a = self.agent(spec.host_id)?;
            let state = match state {
                PowerState::Running => WantedPower::Running,
                PowerState::Stopped => WantedPower::Stopped,
                PowerState::Missing => {
                    return self.delete_instance(spec.instance_id, spec.host_id).await
                }
            };
            let body = EnsureRequest {
                spec: wire_spec(spec),
                state,
            };
            a.call(
                reqwest::Method::PUT,
                &format!("/v1/instances/{}", spec.instance_id),
                Some(&body),
                SLOW,
            )
            .await?;
            Ok(())
        })
    }

    fn reboot(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.agent(host_id)?
                .call::<()>(
                    reqwest::Method::POST,
                    &format!("/v1/instances/{instance_id}/reboot"),
                    None,
                    QUICK,
                )
                .await?;
            Ok(())
        })
    }

    fn resize<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let body = EnsureRequest {
                spec: wire_spec(spec),
                state: WantedPower::Stopped,
            };
            self.agent(spec.host_id)?
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/instances/{}/resize", spec.instance_id),
                    Some(&body),
                    SLOW,
                )
                .await?;
            Ok(())
        })
    }

    fn delete_instance(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.agent(host_id)?
                .call::<()>(
                    reqwest::Method::DELETE,
                    &format!("/v1/instances/{instance_id}"),
                    None,
                    SLOW,
                )
                .await?;
            Ok(())
        })
    }

    fn status(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            let r: VmReport = self
                .agent(host_id)?
                .get(&format!("/v1/instances/{instance_id}"), QUICK)
                .await?;
            Ok(match r.state {
                VmState::Running => PowerState::Running,
                VmState::Stopped | VmState::Crashed | VmState::Incoming => PowerState::Stopped,
                VmState::Missing => PowerState::Missing,
            })
        })
    }

    fn console_log(
        &self,
        instance_id: Uuid,
        host_id: Uuid,
        max_lines: usize,
    ) -> DriverFuture<'_, String> {
        Box::pin(async move {
            self.agent(host_id)?
                .text(&format!(
                    "/v1/instances/{instance_id}/console?lines={max_lines}"
                ))
                .await
        })
    }

    fn attach_volume(
        &self,
        volume_id: Uuid,
        size_gib: u64,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.agent(host_id)?
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/instances/{instance_id}/volumes/{volume_id}"),
                    Some(&VolumeRequest { size_gib }),
                    SLOW,
                )
                .await?;
            Ok(())
        })
    }

    fn detach_volume(
        &self,
        volume_id: Uuid,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.agent(host_id)?
                .call::<()>(
                    reqwest::Method::DELETE,
                    &format!("/v1/instances/{instance_id}/volumes/{volume_id}"),
                    None,
                    SLOW,
                )
                .await?;
            Ok(())
        })
    }

    fn ensure_load_balancer<'a>(
        &'a self,
        lb_id: Uuid,
        host_id: Uuid,
        spec: &'a LbSpecWire,
    ) -> DriverFuture<'a, LbReport> {
        Box::pin(async move {
            self.agent(host_id)?
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/load-balancers/{lb_id}"),
                    Some(spec),
                    SLOW,
                )
                .await?
                .json()
                .await
                .map_err(|e| DriverError::Transient(format!("agent answered nonsense: {e}")))
        })
    }

    fn load_balancer_status(
        &self,
        lb_id: Uuid,
        host_id: Uuid,
    ) -> DriverFuture<'_, Option<LbReport>> {
        Box::pin(async move {
            match self
                .agent(host_id)?
                .get::<LbReport>(
                    &format!("/v1/load-balancers/{lb_id}"),
                    Duration::from_secs(10),
                )
                .await
            {
                Ok(r) => Ok(Some(r)),
                Err(DriverError::Permanent(m)) if m.contains("not_found") => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn delete_load_balancer(&self, lb_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.agent(host_id)?
                .call::<()>(
                    reqwest::Method::DELETE,
                    &format!("/v1/load-balancers/{lb_id}"),
                    None,
                    SLOW,
                )
                .await?;
            Ok(())
        })
    }

    fn live_migration(&self) -> bool {
        true
    }

    fn host_alive(&self, host_id: Uuid) -> DriverFuture<'_, bool> {
        Box::pin(async move {
            let Ok(a) = self.agent(host_id) else {
                return Ok(false);
            };
            Ok(a.get::<HostReport>("/v1/host", Duration::from_secs(5))
                .await
                .is_ok())
        })
    }

    /// One `/v1/host` call gives the host's own figures (and tells it answers), then the
    /// guests' counters one by one.
    fn host_sample<'a>(
        &'a self,
        host_id: Uuid,
        instances: &'a [Uuid],
    ) -> DriverFuture<'a, zy_compute::HostSample> {
        Box::pin(async move {
            let report = match self.agent(host_id) {
                Ok(a) => {
                    a.get::<HostReport>("/v1/host", Duration::from_secs(5))
                        .await
                }
                Err(e) => Err(e),
            };
            let Ok(report) = report else {
                return Err(DriverError::HostDown(host_id));
            };
            let c = &report.capacity;
            let host = zy_compute::HostCounters {
                cpu_busy_ms: report.load.cpu_busy_ms,
                cpu_total_ms: report.load.cpu_total_ms,
                memory_used_mib: report.load.memory_used_mib,
                memory_total_mib: c.memory_mib,
                disk_used_bytes: c.disk_gib.saturating_sub(c.disk_free_gib) << 30,
                disk_total_bytes: c.disk_gib << 30,
                net_rx_bytes: report.load.net_rx_bytes,
                net_tx_bytes: report.load.net_tx_bytes,
            };
            let mut counters = zy_compute::instance_counters(self, host_id, instances).await?;
            // Each instance's traffic is the sum over its NICs' taps (the agent's network
            // report); without NICs (or from an older agent) it stays unmeasured.
            if let Ok(net) = self
                .agent(host_id)?
                .get::<NetworkReport>("/v1/network", Duration::from_secs(5))
                .await
            {
                let mut sums: HashMap<Uuid, (u64, u64)> = HashMap::new();
                for n in net.nics.iter().filter(|n| !n.instance_id.is_nil()) {
                    let e = sums.entry(n.instance_id).or_default();
                    e.0 = e.0.saturating_add(n.rx_bytes);
                    e.1 = e.1.saturating_add(n.tx_bytes);
                }
                for c in &mut counters {
                    if let Some((rx, tx)) = sums.get(&c.instance_id) {
                        c.net_rx_bytes = Some(*rx);
                        c.net_tx_bytes = Some(*tx);
                    }
                }
            }
            Ok(zy_compute::HostSample {
                instances: counters,
                host: Some(host),
            })
        })
    }

    fn metrics(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, Option<VmMetrics>> {
        Box::pin(async move {
            let m = self
                .agent(host_id)?
                .get(&format!("/v1/instances/{instance_id}/metrics"), QUICK)
                .await?;
            Ok(Some(m))
        })
    }

    fn prepare_incoming<'a>(
        &'a self,
        spec: &'a InstanceSpec,
    ) -> DriverFuture<'a, IncomingEndpoint> {
        Box::pin(async move {
            let body = EnsureRequest {
                spec: wire_spec(spec),
                state: WantedPower::Running,
            };
            self.agent(spec.host_id)?
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/instances/{}/incoming", spec.instance_id),
                    Some(&body),
                    SLOW,
                )
                .await?
                .json()
                .await
                .map_err(|e| DriverError::Transient(e.to_string()))
        })
    }

    fn migrate_out<'a>(
        &'a self,
        instance_id: Uuid,
        source_host: Uuid,
        to: &'a IncomingEndpoint,
    ) -> DriverFuture<'a, MigrationReport> {
        Box::pin(async move {
            let body = MigrateRequest {
                host: to.host.clone(),
                migrate_port: to.migrate_port,
                nbd_port: to.nbd_port,
            };
            self.agent(source_host)?
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/instances/{instance_id}/migrate"),
                    Some(&body),
                    MIGRATION,
                )
                .await?
                .json()
                .await
                .map_err(|e| DriverError::Transient(e.to_string()))
        })
    }

    fn finish_incoming(&self, instance_id: Uuid, target_host: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.agent(target_host)?
                .call::<()>(
                    reqwest::Method::POST,
                    &format!("/v1/instances/{instance_id}/incoming/finish"),
                    None,
                    QUICK,
                )
                .await?;
            Ok(())
        })
    }

    fn abort_incoming(&self, instance_id: Uuid, target_host: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.agent(target_host)?
                .call::<()>(
                    reqwest::Method::DELETE,
                    &format!("/v1/instances/{instance_id}/incoming"),
                    None,
                    SLOW,
                )
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::hostname;

    #[test]
    fn hostnames_are_rfc1123() {
        assert_eq!(hostname("Web-01"), "web-01");
        assert_eq!(hostname("卫健委门户"), "vm");
        assert_eq!(hostname("--a_b.c--"), "abc");
        assert_eq!(hostname(&"x".repeat(100)).len(), 63);
    }
}
