//! The simulated world: hosts, their root disks and instances, and which instance each
//! volume is attached to, with every driver operation as a plain synchronous function.
//! Keeping this apart from the async shell in `lib.rs` is what keeps the lock sections
//! tiny and visibly free of awaits: the shell waits out its latency first, then locks,
//! calls exactly one of these, and unlocks.
//!
//! Operations check everything that can refuse a request before they change anything,
//! so a refused or injected-failure call leaves no trace and a retry starts clean.

use crate::console::{Console, Entry, Event};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;
use zy_compute::{DriverError, InstanceSpec, PowerState};

#[derive(Debug, Default)]
pub(crate) struct World {
    hosts: HashMap<Uuid, Host>,
    /// volume → (host, instance), so one volume never ends up in two instances.
    volumes: HashMap<Uuid, (Uuid, Uuid)>,
    /// Counters of running instances for the metrics history (see [`Meter`]).
    meters: HashMap<Uuid, Meter>,
    /// Instances told to burn their CPU (tests of alerts and the demo).
    burning: std::collections::HashSet<Uuid>,
}

#[derive(Debug)]
struct Host {
    alive: bool,
    /// Root disks by instance id, with their size in GiB.
    disks: HashMap<Uuid, u64>,
    instances: HashMap<Uuid, Instance>,
}

impl Host {
    fn new() -> Self {
        Self {
            alive: true,
            disks: HashMap::new(),
            instances: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Instance {
    spec: InstanceSpec,
    /// Only ever `Running` or `Stopped`; a missing instance is simply not in the map.
    power: PowerState,
    console: Console,
    /// Attached volumes and their size in GiB.
    volumes: BTreeMap<Uuid, u64>,
}

impl Instance {
    fn boot(&mut self, now: u64) {
        self.power = PowerState::Running;
        self.console.record(
            now,
            Event::Boot {
                vcpus: self.spec.vcpus,
                memory_mib: self.spec.memory_mib,
                gpus: self.spec.gpus,
                disk_gib: self.spec.disk_gib,
                volumes: self.volumes.len(),
            },
        );
    }
}

/// What a reader of the console needs, copied out so rendering happens unlocked.
pub(crate) struct ConsoleSnapshot {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) entries: Vec<Entry>,
}

/// Totals over the whole simulated provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimCounts {
    pub hosts_alive: usize,
    pub instances: usize,
    pub running: usize,
    pub disks: usize,
}

fn permanent(message: &str) -> DriverError {
    DriverError::Permanent(message.to_owned())
}

fn injected() -> DriverError {
    DriverError::Transient("injected failure (simulated provider)".to_owned())
}

fn check_shape(spec: &InstanceSpec) -> Result<(), DriverError> {
    if spec.vcpus == 0 || spec.memory_mib == 0 {
        return Err(permanent(
            "an instance needs at least one vCPU and some memory",
        ));
    }
    Ok(())
}

/// A host that a call may create things on. Hosts come into being on first use: the
/// server's host ids are the inventory, the simulator has none of its own.
fn usable_host(hosts: &mut HashMap<Uuid, Host>, host_id: Uuid) -> Result<&mut Host, DriverError> {
    let host = hosts.entry(host_id).or_insert_with(Host::new);
    if host.alive {
        Ok(host)
    } else {
        Err(DriverError::HostDown(host_id))
    }
}

/// A host that a call only looks at or removes from; `None` when it was never used, so
/// status polls and deletes with stray ids do not grow the map.
fn known_host(
    hosts: &mut HashMap<Uuid, Host>,
    host_id: Uuid,
) -> Result<Option<&mut Host>, DriverError> {
    match hosts.get_mut(&host_id) {
        Some(host) if !host.alive => Err(DriverError::HostDown(host_id)),
        other => Ok(other),
    }
}

impl World {
    pub(crate) fn create_disk(
        &mut self,
        spec: &InstanceSpec,
        fail: impl FnOnce() -> bool,
    ) -> Result<(), DriverError> {
        let host = usable_host(&mut self.hosts, spec.host_id)?;
        if host.disks.contains_key(&spec.instance_id) {
            return Ok(());
        }
        if spec.disk_gib == 0 {
            return Err(permanent("a root disk needs at least 1 GiB"));
        }
        if fail() {
            return Err(injected());
        }
        host.disks.insert(spec.instance_id, spec.disk_gib);
        Ok(())
    }

    pub(crate) fn delete_disk(
        &mut self,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> Result<(), DriverError> {
        let Some(host) = known_host(&mut self.hosts, host_id)? else {
            return Ok(());
        };
        // A real host cannot remove the image under a running guest; the server must
        // stop or delete the instance first, and the simulator holds it to that.
        if host
            .instances
            .get(&instance_id)
            .is_some_and(|i| i.power == PowerState::Running)
        {
            return Err(permanent("the root disk is in use by a running instance"));
        }
        host.disks.remove(&instance_id);
        Ok(())
    }

    pub(crate) fn ensure_instance(
        &mut self,
        spec: &InstanceSpec,
        state: PowerState,
        now: u64,
        fail: impl FnOnce() -> bool,
    ) -> Result<(), DriverError> {
        if state == PowerState::Missing {
            return Err(permanent(
                "ensure_instance needs Running or Stopped; use delete_instance",
            ));
        }
        let host = usable_host(&mut self.hosts, spec.host_id)?;
        let has_disk = host.disks.contains_key(&spec.instance_id);
        match host.instances.get_mut(&spec.instance_id) {
            Some(instance) if instance.power == state => Ok(()),
            Some(instance) if state == PowerState::Running => {
                // The disk may have been deleted while the instance was stopped.
                if !has_disk {
                    return Err(permanent("no root disk"));
                }
                if fail() {
                    return Err(injected());
                }
                instance.boot(now);
                Ok(())
            }
            Some(instance) => {
                instance.power = PowerState::Stopped;
                instance.console.record(now, Event::PowerOff);
                Ok(())
            }
            None => {
                if !has_disk {
                    return Err(permanent("no root disk"));
                }
                check_shape(spec)?;
                if fail() {
                    return Err(injected());
                }
                let mut instance = Instance {
                    spec: spec.clone(),
                    power: PowerState::Stopped,
                    console: Console::default(),
                    volumes: BTreeMap::new(),
                };
                if state == PowerState::Running {
                    instance.boot(now);
                }
                host.instances.insert(spec.instance_id, instance);
                Ok(())
            }
        }
    }

    pub(crate) fn reboot(
        &mut self,
        instance_id: Uuid,
        host_id: Uuid,
        now: u64,
    ) -> Result<(), DriverError> {
        let instance = known_host(&mut self.hosts, host_id)?
            .and_then(|h| h.instances.get_mut(&instance_id))
            .ok_or_else(|| permanent("no such instance"))?;
        if instance.power != PowerState::Running {
            return Err(permanent("only a running instance can be rebooted"));
        }
        instance.console.record(now, Event::Restart);
        instance.boot(now);
        Ok(())
    }

    pub(crate) fn resize(&mut self, spec: &InstanceSpec) -> Result<(), DriverError> {
        let host = known_host(&mut self.hosts, spec.host_id)?
            .ok_or_else(|| permanent("no such instance"))?;
        let instance = host
            .instances
            .get_mut(&spec.instance_id)
            .ok_or_else(|| permanent("no such instance"))?;
        let disk = host
            .disks
            .get_mut(&spec.instance_id)
            .ok_or_else(|| permanent("no root disk"))?;
        if spec.disk_gib < *disk {
            return Err(DriverError::Permanent(format!(
                "disks never shrink ({} GiB requested, {} GiB now)",
                spec.disk_gib, *disk
            )));
        }
        check_shape(spec)?;
        let current = &instance.spec;
        let unchanged = current.vcpus == spec.vcpus
            && current.memory_mib == spec.memory_mib
            && current.gpus == spec.gpus
            && *disk == spec.disk_gib;
        // A retried resize that already took effect must not fail just because the
        // instance has been started again since.
        if unchanged {
            return Ok(());
        }
        if instance.power == PowerState::Running {
            return Err(permanent("stop the instance before resizing it"));
        }
        instance.spec.vcpus = spec.vcpus;
        instance.spec.memory_mib = spec.memory_mib;
        instance.spec.gpus = spec.gpus;
        instance.spec.disk_gib = spec.disk_gib;
        *disk = spec.disk_gib;
        Ok(())
    }

    pub(crate) fn delete_instance(
        &mut self,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> Result<(), DriverError> {
        let Some(host) = known_host(&mut self.hosts, host_id)? else {
            return Ok(());
        };
        if let Some(instance) = host.instances.remove(&instance_id) {
            for volume_id in instance.volumes.keys() {
                self.volumes.remove(volume_id);
            }
        }
        Ok(())
    }

    /// Live migration, target side: the disk and a stopped instance wait on the target.
    pub(crate) fn prepare_incoming(&mut self, spec: &InstanceSpec) -> Result<(), DriverError> {
        check_shape(spec)?;
        let host = usable_host(&mut self.hosts, spec.host_id)?;
        if host
            .instances
            .get(&spec.instance_id)
            .is_some_and(|i| i.power == PowerState::Running)
        {
            return Err(permanent("the instance already runs on the target"));
        }
        host.disks.insert(spec.instance_id, spec.disk_gib);
        host.instances.entry(spec.instance_id).or_insert(Instance {
            spec: spec.clone(),
            power: PowerState::Stopped,
            console: Console::default(),
            volumes: BTreeMap::new(),
        });
        Ok(())
    }

    /// Live migration, source side: the guest leaves the source and runs on the target
    /// (its console goes with it).
    pub(crate) fn migrate_out(
        &mut self,
        instance_id: Uuid,
        source: Uuid,
        target: Uuid,
    ) -> Result<(), DriverError> {
        usable_host(&mut self.hosts, target)?;
        let src = usable_host(&mut self.hosts, source)?;
        let running = src
            .instances
            .get(&instance_id)
            .is_some_and(|i| i.power == PowerState::Running);
        if !running {
            return Err(permanent("the instance does not run on the source"));
        }
        if !src.instances[&instance_id].volumes.is_empty() {
            return Err(permanent(
                "detach the instance's volumes before migrating it",
            ));
        }
        let Some(mut moved) = src.instances.remove(&instance_id) else {
            return Err(permanent("no such instance"));
        };
        src.disks.remove(&instance_id);
        let dst = usable_host(&mut self.hosts, target)?;
        let Some(waiting) = dst.instances.get_mut(&instance_id) else {
            // Not prepared: put it back and refuse.
            let src = usable_host(&mut self.hosts, source)?;
            src.disks.insert(instance_id, moved.spec.disk_gib);
            src.instances.insert(instance_id, moved);
            return Err(permanent("the target was not prepared"));
        };
        moved.spec.host_id = target;
        waiting.spec = moved.spec;
        waiting.console = moved.console;
        waiting.power = PowerState::Running;
        Ok(())
    }

    /// Undo of a prepared target: the waiting (stopped) copy goes.
    pub(crate) fn abort_incoming(
        &mut self,
        instance_id: Uuid,
        target: Uuid,
    ) -> Result<(), DriverError> {
        let Some(host) = known_host(&mut self.hosts, target)? else {
            return Ok(());
        };
        if host
            .instances
            .get(&instance_id)
            .is_some_and(|i| i.power != PowerState::Running)
        {
            host.instances.remove(&instance_id);
            host.disks.remove(&instance_id);
        }
        Ok(())
    }

    pub(crate) fn status(
        &mut self,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> Result<PowerState, DriverError> {
        Ok(known_host(&mut self.hosts, host_id)?
            .and_then(|h| h.instances.get(&instance_id))
            .map_or(PowerState::Missing, |i| i.power))
    }

    pub(crate) fn console(
        &mut self,
        instance_id: Uuid,
        host_id: Uuid,
    ) -> Result<ConsoleSnapshot, DriverError> {
        let instance = known_host(&mut self.hosts, host_id)?
            .and_then(|h| h.instances.get(&instance_id))
            .ok_or_else(|| permanent("no such instance"))?;
        Ok(ConsoleSnapshot {
            name: instance.spec.name.clone(),
            image: instance.spec.image.clone(),
            entries: instance.console.entries(),
        })
    }

    pub(crate) fn attach_volume(
        &mut self,
        volume_id: Uuid,
        size_gib: u64,
        instance_id: Uuid,
        host_id: Uuid,
        now: u64,
    ) -> Result<(), DriverError> {
        let instance = known_host(&mut self.hosts, host_id)?
            .and_then(|h| h.instances.get_mut(&instance_id))
            .ok_or_else(|| permanent("no such instance"))?;
        match self.volumes.get(&volume_id) {
            Some(&at) if at == (host_id, instance_id) => return Ok(()),
            Some(_) => return Err(permanent("the volume is attached to another instance")),
            None => {}
        }
        if size_gib == 0 {
            return Err(permanent("a volume needs at least 1 GiB"));
        }
        instance.volumes.insert(volume_id, size_gib);
        self.volumes.insert(volume_id, (host_id, instance_id));
        if instance.power == PowerState::Running {
            instance.console.record(
                now,
                Event::VolumeAttached {
                    volume_id,
                    size_gib,
                },
            );
        }
        Ok(())
    }

    pub(crate) fn detach_volume(
        &mut self,
        volume_id: Uuid,
        instance_id: Uuid,
        host_id: Uuid,
        now: u64,
    ) -> Result<(), DriverError> {
        let Some(instance) =
            known_host(&mut self.hosts, host_id)?.and_then(|h| h.instances.get_mut(&instance_id))
        else {
            return Ok(());
        };
        if instance.volumes.remove(&volume_id).is_none() {
            return Ok(());
        }
        self.volumes.remove(&volume_id);
        if instance.power == PowerState::Running {
            instance
                .console
                .record(now, Event::VolumeDetached { volume_id });
        }
        Ok(())
    }

    pub(crate) fn host_alive(&self, host_id: Uuid) -> bool {
        self.hosts.get(&host_id).is_none_or(|h| h.alive)
    }

    /// Like a machine losing power for good: whatever ran or was stored there is gone.
    pub(crate) fn kill_host(&mut self, host_id: Uuid) {
        let host = self.hosts.entry(host_id).or_insert_with(Host::new);
        host.alive = false;
        host.disks.clear();
        host.instances.clear();
        self.volumes.retain(|_, (h, _)| *h != host_id);
    }

    pub(crate) fn revive_host(&mut self, host_id: Uuid) {
        self.hosts.entry(host_id).or_insert_with(Host::new).alive = true;
    }

    pub(crate) fn instances_on(&self, host_id: Uuid) -> Vec<(Uuid, PowerState)> {
        let mut out: Vec<_> = self
            .hosts
            .get(&host_id)
            .map(|h| h.instances.iter().map(|(id, i)| (*id, i.power)).collect())
            .unwrap_or_default();
        out.sort_unstable_by_key(|(id, _)| *id);
        out
    }

    pub(crate) fn disks_on(&self, host_id: Uuid) -> Vec<Uuid> {
        let mut out: Vec<_> = self
            .hosts
            .get(&host_id)
            .map(|h| h.disks.keys().copied().collect())
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    pub(crate) fn all_disks(&self) -> Vec<(Uuid, Uuid)> {
        let mut out: Vec<_> = self
            .hosts
            .iter()
            .flat_map(|(host_id, h)| h.disks.keys().map(move |d| (*host_id, *d)))
            .collect();
        out.sort_unstable();
        out
    }

    pub(crate) fn counts(&self) -> SimCounts {
        let mut counts = SimCounts::default();
        for host in self.hosts.values().filter(|h| h.alive) {
            counts.hosts_alive += 1;
            counts.instances += host.instances.len();
            counts.running += host
                .instances
                .values()
                .filter(|i| i.power == PowerState::Running)
                .count();
            counts.disks += host.disks.len();
        }
        counts
    }
}

/// The simulated figures of one running instance: counters advanced on each reading by
/// the rates of that moment, so two readings give plausible rates. The rates follow a
/// slow wave around a level fixed by the seed and the instance id (deterministic per
/// seed); a burning instance uses all its CPU.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meter {
    last_ms: u64,
    cpu_ms: f64,
    read: f64,
    write: f64,
    rx: f64,
    tx: f64,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in [0, 1) fixed by the seed, the instance and which figure it is.
fn unit(seed: u64, id: Uuid, k: u64) -> f64 {
    let (a, b) = id.as_u64_pair();
    (mix(seed ^ mix(a ^ mix(b ^ k))) >> 11) as f64 / (1u64 << 53) as f64
}

/// A slow wave in [-1, 1] with a period of 20–80 minutes, phase fixed per instance.
fn wave(seed: u64, id: Uuid, now_ms: u64) -> f64 {
    let period = 1_200_000.0 + 3_600_000.0 * unit(seed, id, 1);
    let phase = std::f64::consts::TAU * unit(seed, id, 2);
    (std::f64::consts::TAU * now_ms as f64 / period + phase).sin()
}

impl World {
    pub(crate) fn set_burning(&mut self, instance_id: Uuid, burning: bool) {
        if burning {
            self.burning.insert(instance_id);
        } else {
            self.burning.remove(&instance_id);
        }
    }

    pub(crate) fn sample(
        &mut self,
        host_id: Uuid,
        wanted: &[Uuid],
        now_ms: u64,
        seed: u64,
    ) -> Result<zy_compute::HostSample, DriverError> {
        let host = self.hosts.get(&host_id).map_or(Ok(None), |h| {
            if h.alive {
                Ok(Some(h))
            } else {
                Err(DriverError::HostDown(host_id))
            }
        })?;
        let mut out = zy_compute::HostSample::default();
        for id in wanted {
            let running = host
                .and_then(|h| h.instances.get(id))
                .filter(|i| i.power == PowerState::Running);
            let Some(inst) = running else {
                // A guest that stops starts its counters again, like a real one.
                self.meters.remove(id);
                continue;
            };
            let spec = &inst.spec;
            let m = self.meters.entry(*id).or_insert(Meter {
                last_ms: now_ms,
                ..Meter::default()
            });
            let dt = now_ms.saturating_sub(m.last_ms) as f64 / 1000.0;
            m.last_ms = now_ms;
            let w = wave(seed, *id, now_ms);
            let cpu = if self.burning.contains(id) {
                0.99
            } else {
                (0.05 + 0.4 * unit(seed, *id, 3) + 0.15 * w).clamp(0.01, 1.0)
            };
            let io = 1.0 + 0.6 * w;
            m.cpu_ms += dt * 1000.0 * f64::from(spec.vcpus) * cpu;
            m.read += dt * (20_000.0 + 2_000_000.0 * unit(seed, *id, 4)) * io;
            m.write += dt * (10_000.0 + 1_000_000.0 * unit(seed, *id, 5)) * io;
            m.rx += dt * (5_000.0 + 500_000.0 * unit(seed, *id, 6)) * io;
            m.tx += dt * (5_000.0 + 300_000.0 * unit(seed, *id, 7)) * io;
            let mem_share = (0.3 + 0.5 * unit(seed, *id, 8) + 0.05 * w).clamp(0.05, 1.0);
            let disk_size = spec.disk_gib.saturating_mul(1 << 30);
            let disk_share = 0.15 + 0.6 * unit(seed, *id, 9);
            out.instances.push(zy_compute::InstanceCounters {
                instance_id: *id,
                running: true,
                cpu_time_ms: m.cpu_ms as u64,
                memory_used_mib: (spec.memory_mib as f64 * mem_share) as u64,
                disk_read_bytes: m.read as u64,
                disk_write_bytes: m.write as u64,
                disk_used_bytes: Some((disk_size as f64 * disk_share) as u64),
                net_rx_bytes: Some(m.rx as u64),
                net_tx_bytes: Some(m.tx as u64),
            });
        }
        Ok(out)
    }
}
