//! The compute driver boundary. The server's reconcilers drive a provider through
//! [`ComputeDriver`] only: "make sure this instance exists and is in this power state",
//! "remove it", "tell me what you have". Every call is idempotent, so a reconciler that
//! crashed half-way can simply call again. Implementations: the simulated provider
//! (`zy-sim`) and, later, the KVM agent client and existing provider clouds.

pub mod agent;

use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// A boxed future, so drivers can live behind `Arc<dyn ComputeDriver>`.
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// Where an instance lives and what it is made of, as a driver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub instance_id: Uuid,
    pub name: String,
    /// The host chosen by the scheduler (the server's host id).
    pub host_id: Uuid,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Size of the root disk (a linked clone of the image on real hosts).
    pub disk_gib: u64,
    pub gpus: u32,
    /// The image (template) name the root disk is cloned from.
    pub image: String,
    /// User data handed to the guest at boot (a shell script for our templates); empty
    /// when none.
    pub user_data: String,
    /// The zone's shared-storage directory when the root disk lives there (HA restart
    /// and live migration without a disk copy); `None` for a host-local disk.
    pub shared_dir: Option<String>,
}

/// The power state a driver reports or is asked to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    Running,
    Stopped,
    /// The driver has no such instance.
    Missing,
}

/// Cumulative counters of one instance as its host measures them at one instant; the
/// control plane turns two readings into rates. `None` where the host does not measure it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceCounters {
    pub instance_id: Uuid,
    /// Whether the guest runs on that host now.
    pub running: bool,
    /// CPU time the guest used since it started, ms.
    pub cpu_time_ms: u64,
    pub memory_used_mib: u64,
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    /// Root disk: bytes in use.
    pub disk_used_bytes: Option<u64>,
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
}

/// A host's own figures at one instant (what the machine as a whole uses, guests and
/// overhead together), for hosts whose agent measures them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCounters {
    /// CPU time spent busy (not idle or waiting for I/O) over all cores since boot, ms.
    pub cpu_busy_ms: u64,
    /// All CPU time over all cores since boot, ms.
    pub cpu_total_ms: u64,
    pub memory_used_mib: u64,
    pub memory_total_mib: u64,
    /// The file system holding the host's disks.
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
    /// Physical interfaces only (bridges, taps, tunnels and loopback left out), bytes
    /// since boot.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// One reading of a host: the counters of the asked instances it has, and the host's
/// own when its agent measures them (`None` for providers that do not).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSample {
    pub instances: Vec<InstanceCounters>,
    pub host: Option<HostCounters>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Worth retrying (timeouts, a busy host, an injected failure).
    #[error("transient driver failure: {0}")]
    Transient(String),
    /// Retrying will not help (bad image, unsupported request).
    #[error("driver refused: {0}")]
    Permanent(String),
    /// The provider accepted the request and works on it asynchronously (a server
    /// building, a volume attaching), or is unavailable for the moment: call again
    /// later; not a failure.
    #[error("in progress at the provider: {0}")]
    InProgress(String),
    /// The host does not answer; its instances need HA handling, not retries.
    #[error("host {0} is down")]
    HostDown(Uuid),
}

/// One provider's compute, as the server drives it. All calls are idempotent.
pub trait ComputeDriver: Send + Sync {
    /// `sim`, `kvm`, … — shown to operators.
    fn kind(&self) -> &'static str;

    /// Whether this provider is simulated (labelled as such in the API and console).
    fn simulated(&self) -> bool;

    /// Creates the instance's root disk if it does not exist.
    fn create_disk<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()>;

    /// Removes the root disk if it exists.
    fn delete_disk(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()>;

    /// Brings the instance to `state` (`Running` or `Stopped`), defining it first if the
    /// host does not have it (the disk must exist).
    fn ensure_instance<'a>(
        &'a self,
        spec: &'a InstanceSpec,
        state: PowerState,
    ) -> DriverFuture<'a, ()>;

    /// Restarts a running instance.
    fn reboot(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()>;

    /// Changes vCPU and memory of a stopped instance (or grows its disk).
    fn resize<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()>;

    /// Stops and undefines the instance if it exists (its disk is separate).
    fn delete_instance(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()>;

    /// The instance's power state as the host sees it.
    fn status(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, PowerState>;

    /// The last lines of the instance's serial console.
    fn console_log(
        &self,
        instance_id: Uuid,
        host_id: Uuid,
        max_lines: usize,
    ) -> DriverFuture<'_, String>;

    /// Attaches a volume (a separate disk of `size_gib`) to an instance; idempotent.
    fn attach_volume(
        &self,
        volume_id: Uuid,
        size_gib: u64,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> DriverFuture<'_, ()>;

    /// Detaches a volume; idempotent.
    fn detach_volume(
        &self,
        volume_id: Uuid,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> DriverFuture<'_, ()>;

    /// Deletes a detached volume's storage at the provider when the provider keeps it
    /// apart from zhengyun's records (an OpenStack provider's Cinder volume); a volume the
    /// provider does not have is deleted already. Idempotent.
    fn delete_volume(&self, _volume_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the host answers.
    fn host_alive(&self, host_id: Uuid) -> DriverFuture<'_, bool>;

    /// Resource use of a running instance, when the provider measures it.
    fn metrics(
        &self,
        _instance_id: Uuid,
        _host_id: Uuid,
    ) -> DriverFuture<'_, Option<agent::VmMetrics>> {
        Box::pin(async { Ok(None) })
    }

    /// Whether this provider moves running instances between its hosts (live migration).
    fn live_migration(&self) -> bool {
        false
    }

    /// One reading of the host's figures for the metrics history: counters of each of
    /// `instances` the host has (those it does not have are left out). The default asks
    /// [`metrics`](Self::metrics) per instance; drivers that can answer in one call do.
    fn host_sample<'a>(
        &'a self,
        host_id: Uuid,
        instances: &'a [Uuid],
    ) -> DriverFuture<'a, HostSample> {
        Box::pin(async move {
            if !self.host_alive(host_id).await? {
                return Err(DriverError::HostDown(host_id));
            }
            Ok(HostSample {
                instances: instance_counters(self, host_id, instances).await?,
                host: None,
            })
        })
    }

    /// Live migration, step 1 on the target host: prepare to receive `spec` (its
    /// `host_id` is the target).
    fn prepare_incoming<'a>(
        &'a self,
        _spec: &'a InstanceSpec,
    ) -> DriverFuture<'a, agent::IncomingEndpoint> {
        Box::pin(async {
            Err(DriverError::Permanent(
                "live migration is not supported by this provider".into(),
            ))
        })
    }

    /// Step 2 on the source host: copy disk and memory to the target and hand over.
    fn migrate_out<'a>(
        &'a self,
        _instance_id: Uuid,
        _source_host: Uuid,
        _to: &'a agent::IncomingEndpoint,
    ) -> DriverFuture<'a, agent::MigrationReport> {
        Box::pin(async {
            Err(DriverError::Permanent(
                "live migration is not supported by this provider".into(),
            ))
        })
    }

    /// Step 3 on the target: the instance runs here now.
    fn finish_incoming(&self, _instance_id: Uuid, _target_host: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Undo of step 1: throw away what the target prepared.
    fn abort_incoming(&self, _instance_id: Uuid, _target_host: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Runs (or changes) load balancer `lb_id` on `host_id` with exactly `spec`; answers
    /// with its members' health. Idempotent: the same spec again changes nothing.
    fn ensure_load_balancer<'a>(
        &'a self,
        _lb_id: Uuid,
        _host_id: Uuid,
        _spec: &'a agent::LbSpecWire,
    ) -> DriverFuture<'a, agent::LbReport> {
        Box::pin(async {
            Err(DriverError::Permanent(
                "load balancers are not supported by this provider".into(),
            ))
        })
    }

    /// The load balancer's members' health now (`None`: the host does not run it).
    fn load_balancer_status(
        &self,
        _lb_id: Uuid,
        _host_id: Uuid,
    ) -> DriverFuture<'_, Option<agent::LbReport>> {
        Box::pin(async { Ok(None) })
    }

    /// Stops the load balancer and removes everything of it from the host; idempotent.
    fn delete_load_balancer(&self, _lb_id: Uuid, _host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The counters of each of `instances` on `host_id`, asked one by one through
/// [`ComputeDriver::metrics`]; those not running there are left out (so they count as
/// down). Stops only when the host itself is down.
pub async fn instance_counters<D: ComputeDriver + ?Sized>(
    driver: &D,
    host_id: Uuid,
    instances: &[Uuid],
) -> Result<Vec<InstanceCounters>, DriverError> {
    let mut out = Vec::new();
    for &id in instances {
        match driver.metrics(id, host_id).await {
            Ok(Some(m)) => out.push(InstanceCounters {
                instance_id: id,
                running: true,
                cpu_time_ms: m.cpu_time_ms,
                memory_used_mib: m.memory_rss_mib,
                disk_read_bytes: m.disk_read_bytes,
                disk_write_bytes: m.disk_write_bytes,
                disk_used_bytes: Some(m.disk_used_bytes),
                net_rx_bytes: None,
                net_tx_bytes: None,
            }),
            // Not running there (or not measurable): left out, so it counts as down.
            Ok(None)
            | Err(DriverError::Permanent(_))
            | Err(DriverError::Transient(_))
            | Err(DriverError::InProgress(_)) => {}
            Err(e @ DriverError::HostDown(_)) => return Err(e),
        }
    }
    Ok(out)
}
