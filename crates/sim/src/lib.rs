//! The simulated provider: an in-process [`ComputeDriver`] that keeps hosts, root disks,
//! instances and volume attachments in memory. It lets the whole server run, be tested
//! and be demonstrated without hardware, and lets scale runs drive tens of thousands of
//! instances on a laptop. Like a real provider it can be slow (a random latency per
//! call), flaky (injected transient failures when creating or starting) and lose a whole
//! host ([`SimProvider::kill_host`]); everything it shows is labelled as simulated.
//!
//! This file is the async shell: it waits out the latency, then takes the lock for one
//! synchronous operation in `state`. The lock is never held across an await, and with
//! zero latency the timer is never touched, so the simulator costs the control plane
//! next to nothing.

mod console;
mod rng;
mod state;

#[cfg(test)]
mod tests;

use rng::Rng;
use state::World;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;
use zy_compute::{ComputeDriver, DriverFuture, InstanceSpec, PowerState};

pub use state::SimCounts;

/// How the simulated provider behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seeds injected failures and latencies, so a failing run can be replayed.
    pub seed: u64,
    /// Added to every call: a uniformly random delay in \[min, max\] (zero by default, so
    /// benchmarks measure the control plane only).
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Probability in \[0, 1\] that a `create_disk` or `ensure_instance` (when it would
    /// create or start) fails with
    /// [`DriverError::Transient`](zy_compute::DriverError::Transient).
    pub create_failure_p: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0x5eed,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            create_failure_p: 0.0,
        }
    }
}

/// The simulated provider. Cheap to share: put it in an `Arc` and hand out clones.
pub struct SimProvider {
    world: Mutex<World>,
    rng: Rng,
    /// The bits of an `f64`, so tests and operators can change it while calls are running.
    create_failure_p: AtomicU64,
    latency_min: Duration,
    /// Never below `latency_min`.
    latency_max: Duration,
    /// Fixes the simulated figures of each instance (metrics history).
    seed: u64,
    /// Load balancers as state only (host, configuration): nothing carries traffic.
    lbs: Mutex<std::collections::HashMap<Uuid, (Uuid, zy_compute::agent::LbSpecWire)>>,
}

impl SimProvider {
    pub fn new(config: SimConfig) -> Self {
        let provider = Self {
            world: Mutex::new(World::default()),
            rng: Rng::new(config.seed),
            create_failure_p: AtomicU64::new(0),
            latency_min: config.latency_min,
            latency_max: config.latency_max.max(config.latency_min),
            seed: config.seed,
            lbs: Mutex::default(),
        };
        provider.set_create_failure_p(config.create_failure_p);
        provider
    }

    /// Changes the failure probability at run time; clamped to \[0, 1\], NaN means 0.
    pub fn set_create_failure_p(&self, p: f64) {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.create_failure_p.store(p.to_bits(), Ordering::Relaxed);
    }

    pub fn create_failure_p(&self) -> f64 {
        f64::from_bits(self.create_failure_p.load(Ordering::Relaxed))
    }

    /// The host stops answering: every call for it fails with
    /// [`DriverError::HostDown`](zy_compute::DriverError::HostDown), and its instances and
    /// disks are lost, as when a real machine dies.
    pub fn kill_host(&self, host_id: Uuid) {
        self.world().kill_host(host_id);
    }

    /// The guest uses all its CPU from now on (or stops doing so): what a busy loop in a
    /// real guest does, for tests of alerts and for the demo.
    pub fn set_cpu_burn(&self, instance_id: Uuid, burning: bool) {
        self.world().set_burning(instance_id, burning);
    }

    /// The host answers again, empty (a repaired or reinstalled machine).
    pub fn revive_host(&self, host_id: Uuid) {
        self.world().revive_host(host_id);
    }

    /// The instances a host has, by id, with their power state; empty for a dead host.
    pub fn instances_on(&self, host_id: Uuid) -> Vec<(Uuid, PowerState)> {
        self.world().instances_on(host_id)
    }

    /// The instance ids whose root disks a host has, sorted; empty for a dead host.
    pub fn disks_on(&self, host_id: Uuid) -> Vec<Uuid> {
        self.world().disks_on(host_id)
    }

    /// Totals over live hosts.
    pub fn counts(&self) -> SimCounts {
        self.world().counts()
    }

    /// Every root disk as (host id, instance id), sorted: what `admin check` compares
    /// with the database to find orphans.
    pub fn all_disks(&self) -> Vec<(Uuid, Uuid)> {
        self.world().all_disks()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // Operations validate before they mutate and nothing in them panics by design, so
        // a poisoned lock still guards a consistent world; refusing all further calls
        // would only turn one bug into many.
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn latency(&self) {
        if self.latency_max.is_zero() {
            return;
        }
        let span = (self.latency_max - self.latency_min).as_nanos();
        let extra = self.rng.up_to(u64::try_from(span).unwrap_or(u64::MAX));
        tokio::time::sleep(self.latency_min + Duration::from_nanos(extra)).await;
    }

    /// Decides, only when asked, whether this call fails; operations ask only when they
    /// would create or start something, so idempotent repeats never fail spuriously.
    fn failure(&self) -> impl FnOnce() -> bool + '_ {
        move || self.rng.chance(self.create_failure_p())
    }
}

impl Default for SimProvider {
    fn default() -> Self {
        Self::new(SimConfig::default())
    }
}

impl fmt::Debug for SimProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimProvider")
            .field("latency_min", &self.latency_min)
            .field("latency_max", &self.latency_max)
            .field("create_failure_p", &self.create_failure_p())
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

/// A simulated load balancer reports every member up (it carries no traffic to check).
fn sim_lb_report(spec: &zy_compute::agent::LbSpecWire) -> zy_compute::agent::LbReport {
    zy_compute::agent::LbReport {
        running: true,
        members: spec
            .listeners
            .iter()
            .flat_map(|l| {
                l.members.iter().map(|m| zy_compute::agent::LbMemberReport {
                    listener_port: l.port,
                    name: m.name.clone(),
                    health: zy_compute::agent::LbMemberHealth::Up,
                })
            })
            .collect(),
    }
}

fn now() -> u64 {
    // A clock before 1970 is a broken host; the console then just shows the epoch.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ComputeDriver for SimProvider {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn simulated(&self) -> bool {
        true
    }

    fn create_disk<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.latency().await;
            self.world().create_disk(spec, self.failure())
        })
    }

    fn delete_disk(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.latency().await;
            self.world().delete_disk(instance_id, host_id)
        })
    }

    fn ensure_instance<'a>(
        &'a self,
        spec: &'a InstanceSpec,
        state: PowerState,
    ) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.latency().await;
            let now = now();
            self.world()
                .ensure_instance(spec, state, now, self.failure())
        })
    }

    fn reboot(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.latency().await;
            let now = now();
            self.world().reboot(instance_id, host_id, now)
        })
    }

    fn resize<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.latency().await;
            self.world().resize(spec)
        })
    }

    fn delete_instance(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.latency().await;
            self.world().delete_instance(instance_id, host_id)
        })
    }

    fn status(&self, instance_id: Uuid, host_id: Uuid) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            self.latency().await;
            self.world().status(instance_id, host_id)
        })
    }

    fn console_log(
        &self,
        instance_id: Uuid,
        host_id: Uuid,
        max_lines: usize,
    ) -> DriverFuture<'_, String> {
        Box::pin(async move {
            self.latency().await;
            let snapshot = self.world().console(instance_id, host_id)?;
            Ok(console::render(
                &snapshot.name,
                &snapshot.image,
                &snapshot.entries,
                max_lines,
            ))
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
            self.latency().await;
            let now = now();
            self.world()
                .attach_volume(volume_id, size_gib, instance_id, host_id, now)
        })
    }

    fn detach_volume(
        &self,
        volume_id: Uuid,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.latency().await;
            let now = now();
            self.world()
                .detach_volume(volume_id, instance_id, host_id, now)
        })
    }

    fn host_alive(&self, host_id: Uuid) -> DriverFuture<'_, bool> {
        Box::pin(async move {
            self.latency().await;
            Ok(self.world().host_alive(host_id))
        })
    }

    fn live_migration(&self) -> bool {
        true
    }

    fn ensure_load_balancer<'a>(
        &'a self,
        lb_id: Uuid,
        host_id: Uuid,
        spec: &'a zy_compute::agent::LbSpecWire,
    ) -> DriverFuture<'a, zy_compute::agent::LbReport> {
        Box::pin(async move {
            self.latency().await;
            if !self.world().host_alive(host_id) {
                return Err(zy_compute::DriverError::HostDown(host_id));
            }
            let mut lbs = self.lbs.lock().unwrap_or_else(PoisonError::into_inner);
            lbs.insert(lb_id, (host_id, spec.clone()));
            Ok(sim_lb_report(spec))
        })
    }

    fn load_balancer_status(
        &self,
        lb_id: Uuid,
        host_id: Uuid,
    ) -> DriverFuture<'_, Option<zy_compute::agent::LbReport>> {
        Box::pin(async move {
            self.latency().await;
            let lbs = self.lbs.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(lbs
                .get(&lb_id)
                .filter(|(h, _)| *h == host_id && self.world().host_alive(host_id))
                .map(|(_, spec)| sim_lb_report(spec)))
        })
    }

    fn delete_load_balancer(&self, lb_id: Uuid, _host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.latency().await;
            self.lbs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&lb_id);
            Ok(())
        })
    }

    fn prepare_incoming<'a>(
        &'a self,
        spec: &'a InstanceSpec,
    ) -> DriverFuture<'a, zy_compute::agent::IncomingEndpoint> {
        Box::pin(async move {
            self.latency().await;
            self.world().prepare_incoming(spec)?;
            // The simulated "address" of the target is its host id.
            Ok(zy_compute::agent::IncomingEndpoint {
                host: spec.host_id.to_string(),
                migrate_port: 0,
                nbd_port: 0,
            })
        })
    }

    fn migrate_out<'a>(
        &'a self,
        instance_id: Uuid,
        source_host: Uuid,
        to: &'a zy_compute::agent::IncomingEndpoint,
    ) -> DriverFuture<'a, zy_compute::agent::MigrationReport> {
        Box::pin(async move {
            let target: Uuid = to
                .host
                .parse()
                .map_err(|_| zy_compute::DriverError::Permanent("not a simulated target".into()))?;
            let began = std::time::Instant::now();
            self.latency().await;
            self.world().migrate_out(instance_id, source_host, target)?;
            Ok(zy_compute::agent::MigrationReport {
                downtime_ms: 0,
                total_ms: began.elapsed().as_millis() as u64,
                bytes: 0,
            })
        })
    }

    fn abort_incoming(&self, instance_id: Uuid, target_host: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.world().abort_incoming(instance_id, target_host)?;
            Ok(())
        })
    }

    fn host_sample<'a>(
        &'a self,
        host_id: Uuid,
        instances: &'a [Uuid],
    ) -> DriverFuture<'a, zy_compute::HostSample> {
        Box::pin(async move {
            self.latency().await;
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            self.world().sample(host_id, instances, now_ms, self.seed)
        })
    }
}
