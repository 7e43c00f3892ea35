//! The [`Hypervisor`]: one QEMU process per VM under a data dir. Everything about a VM
//! lives in `<data>/vms/<uuid>/` — `spec.json`, `root.qcow2` (a linked clone of its
//! template), `vol-<uuid>.qcow2` volumes and `volumes.json`, `qemu.pid`, `qmp.sock`,
//! `serial.log` (and `serial.log.1` once it passed 16 MiB), `user-data` — so the directory is the whole truth: a new `Hypervisor` on
//! the same data dir finds every VM again ([`Hypervisor::adopt`]), and deleting the
//! directory removes the VM. QEMU runs daemonised in its own session, so VMs outlive the
//! process that started them.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::process::{alive, kill9, poll_until, run};
use crate::qmp::Qmp;
use crate::spec::{AdoptedVm, VmSpec, VmStatus, VolumeAttachment};
use crate::template::Template;
use crate::Accel;

/// Time allowed for a short QMP exchange (connect, one command).
pub(crate) const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for `qemu-img`.
pub(crate) const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// The kernel command line every VM boots with (the hostname is appended).
pub const KERNEL_CMDLINE: &str = "console=ttyS0 quiet panic=-1 i8042.noaux mitigations=off";
/// At most this much of the serial log is read for [`Hypervisor::console_log`].
const CONSOLE_TAIL_BYTES: u64 = 1 << 20;
/// A serial log larger than this is moved to `serial.log.1` when the VM starts.
const SERIAL_ROTATE_BYTES: u64 = 16 << 20;
/// Longest unix socket path the kernel accepts.
const MAX_SOCKET_PATH: usize = 107;

/// The files of one VM.
#[derive(Debug, Clone)]
pub(crate) struct VmPaths {
    pub dir: PathBuf,
}

impl VmPaths {
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub fn serial(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    pub fn serial_old(&self) -> PathBuf {
        self.dir.join("serial.log.1")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.join("root.qcow2")
    }
    pub fn user_data(&self) -> PathBuf {
        self.dir.join("user-data")
    }
    pub fn volumes(&self) -> PathBuf {
        self.dir.join("volumes.json")
    }
    pub fn volume(&self, vol: Uuid) -> PathBuf {
        self.dir.join(format!("vol-{vol}.qcow2"))
    }
}

/// What [`Hypervisor::start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    pub pid: u32,
    /// False when the VM was already running (nothing was done).
    pub started: bool,
    /// How long QEMU took to daemonise (process created, devices set up).
    pub spawn_ms: u64,
    /// The CPU and memory limits that apply: `-smp`/`-m` always, and a cgroup v2 group
    /// (`cpu.max`, `memory.max`) when the host lets us create one.
    pub limits: crate::cgroup::Limits,
}

/// What [`Hypervisor::stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    pub was_running: bool,
    /// The guest powered off on the ACPI power button within the timeout.
    pub graceful: bool,
    pub elapsed_ms: u64,
}

/// One host's VMs.
pub struct Hypervisor {
    pub(crate) data_dir: PathBuf,
    pub(crate) qemu_bin: PathBuf,
    pub(crate) accel: Accel,
    locks: std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    verified: tokio::sync::Mutex<HashMap<String, Template>>,
    /// The network namespace QEMU runs in (where the taps of the data plane are).
    pub(crate) netns: Option<String>,
}

impl Hypervisor {
    /// A hypervisor over `data_dir` (created if missing) running `qemu_bin` with `accel`.
    pub fn new(data_dir: &Path, qemu_bin: &Path, accel: Accel) -> Result<Self> {
        let data_dir = std::path::absolute(data_dir)
            .map_err(|e| Error::io(format!("data dir {}", data_dir.display()), e))?;
        std::fs::create_dir_all(data_dir.join("vms"))
            .map_err(|e| Error::io(format!("create {}", data_dir.display()), e))?;
        std::fs::create_dir_all(data_dir.join("templates"))
            .map_err(|e| Error::io(format!("create {}", data_dir.display()), e))?;
        let probe = data_dir
            .join("vms")
            .join(Uuid::nil().to_string())
            .join("qmp.sock");
        if probe.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::BadSpec(format!(
                "data dir {} is too long for QMP socket paths ({} bytes at most)",
                data_dir.display(),
                MAX_SOCKET_PATH - (probe.as_os_str().len() - data_dir.as_os_str().len())
            )));
        }
        Ok(Hypervisor {
            data_dir,
            qemu_bin: qemu_bin.to_path_buf(),
            accel,
            locks: Default::default(),
            verified: Default::default(),
            netns: None,
        })
    }

    /// QEMU runs in this network namespace (`ip netns exec`), where the host's data plane
    /// has its taps.
    pub fn with_netns(mut self, netns: Option<String>) -> Self {
        self.netns = netns;
        self
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    pub(crate) fn paths(&self, id: Uuid) -> VmPaths {
        VmPaths {
            dir: self.data_dir.join("vms").join(id.to_string()),
        }
    }

    /// Serialises operations on one VM (QEMU serves one QMP client at a time).
    pub(crate) async fn lock(&self, id: Uuid) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(id).or_default().clone()
        };
        m.lock_owned().await
    }

    /// The installed template `name`, verified against its manifest on first use.
    pub async fn template(&self, name: &str) -> Result<Template> {
        crate::template::valid_name(name)?;
        let mut verified = self.verified.lock().await;
        if let Some(t) = verified.get(name) {
            return Ok(t.clone());
        }
        let dir = self.data_dir.join("templates").join(name);
        let t = Template::open(&dir).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::not_found(format!("template {name}")),
            other => other,
        })?;
        t.verify().await?;
        verified.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// The spec stored with a VM.
    pub async fn spec(&self, id: Uuid) -> Result<VmSpec> {
        let p = self.paths(id).spec();
        let text = tokio::fs::read_to_string(&p)
            .await
            .map_err(|e| Error::io(format!("VM {id}"), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::BadSpec(format!("unreadable {}: {e}", p.display())))
    }

    pub(crate) async fn write_spec(&self, spec: &VmSpec) -> Result<()> {
        let paths = self.paths(spec.id);
        let text = serde_json::to_string_pretty(spec)
            .map_err(|e| Error::BadSpec(format!("cannot encode spec: {e}")))?;
        write_atomic(&paths.spec(), text.as_bytes()).await
    }

    /// Creates the VM's directory and its root disk, a qcow2 linked clone of the
    /// template's root disk (nothing is copied) of `disk_gib`. Idempotent: an existing
    /// disk is kept.
    pub async fn create_disk(&self, spec: &VmSpec) -> Result<()> {
        spec.validate()?;
        let template = self.template(&spec.template).await?;
        if spec.disk_gib < template.manifest.disk_gib {
            return Err(Error::BadSpec(format!(
                "disk_gib {} is smaller than template {}'s {} GiB",
                spec.disk_gib, spec.template, template.manifest.disk_gib
            )));
        }
        let _g = self.lock(spec.id).await;
        let paths = self.paths(spec.id);
        tokio::fs::create_dir_all(&paths.dir)
            .await
            .map_err(|e| Error::io(format!("create {}", paths.dir.display()), e))?;
        if !paths.spec().exists() {
            self.write_spec(spec).await?;
        }
        if spec.shared_dir.is_some() {
            return self.link_shared_disk(spec).await;
        }
        if paths.root().exists() {
            return Ok(());
        }
        let tmp = paths.dir.join("root.qcow2.creating");
        create_overlay(&template.root_disk(), &tmp, spec.disk_gib).await?;
        tokio::fs::rename(&tmp, paths.root())
            .await
            .map_err(|e| Error::io("install root disk", e))?;
        tracing::info!(vm = %spec.id, gib = spec.disk_gib, template = %spec.template, "root disk created");
        Ok(())
    }

    /// A root disk on shared storage: created there once (a linked clone of the
    /// template's copy on the same storage, so every host resolves the same backing
    /// file), and linked from this host's VM directory. Idempotent; any host may do it.
    pub(crate) async fn link_shared_disk(&self, spec: &VmSpec) -> Result<()> {
        let (Some(shared), Some(disk_dir)) = (&spec.shared_dir, spec.shared_disk_dir()) else {
            return Ok(());
        };
        let paths = self.paths(spec.id);
        tokio::fs::create_dir_all(&paths.dir)
            .await
            .map_err(|e| Error::io(format!("create {}", paths.dir.display()), e))?;
        if !paths.spec().exists() {
            self.write_spec(spec).await?;
        }
        let disk = disk_dir.join("root.qcow2");
        if !disk.exists() {
            let local = self.template(&spec.template).await?;
            let template = Template::install(shared, &local.dir).await?;
            tokio::fs::create_dir_all(&disk_dir)
                .await
                .map_err(|e| Error::io(format!("create {}", disk_dir.display()), e))?;
            let tmp = disk_dir.join(format!("root.qcow2.creating-{}", Uuid::new_v4()));
            create_overlay(&template.root_disk(), &tmp, spec.disk_gib).await?;
            // Another host may have won the race; its disk is as good as ours.
            if disk.exists() {
                remove_if_exists(&tmp).await?;
            } else {
                tokio::fs::rename(&tmp, &disk)
                    .await
                    .map_err(|e| Error::io("install shared root disk", e))?;
                tracing::info!(vm = %spec.id, gib = spec.disk_gib, dir = %disk_dir.display(), "root disk created on shared storage");
            }
        }
        let link = paths.root();
        match tokio::fs::read_link(&link).await {
            Ok(target) if target == disk => return Ok(()),
            Ok(_) => remove_if_exists(&link).await?,
            Err(_) if link.exists() => {
                return Err(Error::BadSpec(format!(
                    "VM {} has a local root disk; it cannot move to shared storage",
                    spec.id
                )))
            }
            Err(_) => {}
        }
        tokio::fs::symlink(&disk, &link)
            .await
            .map_err(|e| Error::io(format!("link {}", link.display()), e))
    }

    /// Removes a root disk kept on shared storage (the VM's directory on each host is
    /// removed by [`Hypervisor::delete`], which never follows the link). Idempotent.
    pub async fn delete_shared_disk(&self, id: Uuid, shared_dir: &Path) -> Result<()> {
        let dir = shared_dir.join("disks").join(id.to_string());
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {
                tracing::info!(vm = %id, dir = %dir.display(), "shared root disk deleted");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", dir.display()), e)),
        }
    }

    /// Self-fencing: kills the VM at once, without asking the guest, and leaves it
    /// stopped (not crashed, so nothing restarts it here). Returns whether it ran.
    pub async fn fence(&self, id: Uuid) -> Result<bool> {
        let _g = self.lock(id).await;
        let VmStatus::Running { pid } = self.status(id).await else {
            self.clean_runtime(id).await.ok();
            return Ok(false);
        };
        let tag = vm_tag(id);
        kill9(pid).await;
        if !poll_until(Duration::from_secs(5), || !alive(pid, &tag)).await {
            return Err(Error::Timeout {
                what: format!("QEMU pid {pid} to exit after SIGKILL"),
                after: Duration::from_secs(5),
            });
        }
        self.clean_runtime(id).await?;
        tracing::warn!(vm = %id, pid, "VM fenced: killed because this host lost its lease with the control plane");
        Ok(true)
    }

    /// The VM's state.
    pub async fn status(&self, id: Uuid) -> VmStatus {
        let paths = self.paths(id);
        if !paths.dir.exists() {
            return VmStatus::Missing;
        }
        match read_pid(&paths.pid()).await {
            None => VmStatus::Stopped,
            Some(pid) if alive(pid, &vm_tag(id)) => VmStatus::Running { pid },
            Some(pid) => VmStatus::Crashed { pid },
        }
    }

    /// Starts the VM (its disk must exist). Idempotent: a running VM is left alone.
    pub async fn start(&self, spec: &VmSpec) -> Result<StartReport> {
        spec.validate()?;
        let _g = self.lock(spec.id).await;
        self.start_locked(spec, None).await
    }

    pub(crate) async fn start_locked(
        &self,
        spec: &VmSpec,
        incoming: Option<()>,
    ) -> Result<StartReport> {
        let paths = self.paths(spec.id);
        if let VmStatus::Running { pid } = self.status(spec.id).await {
            return Ok(StartReport {
                pid,
                started: false,
                spawn_ms: 0,
                limits: crate::cgroup::Limits::plain(spec),
            });
        }
        if !paths.root().exists() {
            return Err(Error::not_found(format!("root disk of VM {}", spec.id)));
        }
        let template = self.template(&spec.template).await?;
        self.write_spec(spec).await?;
        match &spec.user_data {
            Some(u) => write_atomic(&paths.user_data(), u.as_bytes()).await?,
            None => remove_if_exists(&paths.user_data()).await?,
        }
        remove_if_exists(&paths.pid()).await?;
        remove_if_exists(&paths.qmp()).await?;
        rotate_serial(&paths).await?;
        let volumes = self.attached(spec.id).await?;
        let args = self.qemu_args(spec, &paths, &template, &volumes, incoming.is_some());
        let began = Instant::now();
        let qemu = self.qemu_bin.to_string_lossy().into_owned();
        let (program, args) = match &self.netns {
            Some(ns) => {
                let mut a: Vec<OsString> = ["netns", "exec", ns.as_str(), qemu.as_str()]
                    .into_iter()
                    .map(OsString::from)
                    .collect();
                a.extend(args);
                ("ip", a)
            }
            None => (qemu.as_str(), args),
        };
        run(program, &args, Duration::from_secs(60))
            .await
            .map_err(|e| match e {
                Error::Command {
                    command: _,
                    status,
                    stderr,
                } => Error::Command {
                    command: format!("{qemu} for VM {}", spec.id),
                    status,
                    stderr,
                },
                other => other,
            })?;
        let spawn_ms = began.elapsed().as_millis() as u64;
        let pid = read_pid(&paths.pid())
            .await
            .ok_or_else(|| Error::QmpProtocol("QEMU started but wrote no pid file".into()))?;
        let limits = crate::cgroup::apply(spec, pid).await;
        tracing::info!(vm = %spec.id, pid, spawn_ms, accel = ?self.accel, cgroup = ?limits.cgroup, "VM started");
        Ok(StartReport {
            pid,
            started: true,
            spawn_ms,
            limits,
        })
    }

    /// The QEMU command line of a VM (without the binary).
    pub(crate) fn qemu_args(
        &self,
        spec: &VmSpec,
        paths: &VmPaths,
        template: &Template,
        volumes: &[VolumeAttachment],
        incoming: bool,
    ) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: String| a.push(OsString::from(s));
        push("-name".into());
        push(vm_tag(spec.id));
        push("-machine".into());
        push("pc".into());
        push("-accel".into());
        push(self.accel.as_str().into());
        if self.accel == Accel::Kvm {
            push("-cpu".into());
            push("host".into());
        }
        for s in ["-nodefaults", "-no-user-config", "-display", "none"] {
            push(s.into());
        }
        push("-smp".into());
        push(spec.vcpus.to_string());
        push("-m".into());
        push(spec.memory_mib.to_string());
        push("-kernel".into());
        push(template.kernel().to_string_lossy().into());
        push("-initrd".into());
        push(template.initrd().to_string_lossy().into());
        push("-append".into());
        push(format!("{KERNEL_CMDLINE} zy.hostname={}", spec.hostname));
        push("-chardev".into());
        push(format!(
            "file,id=serial0,append=on,path={}",
            opt(&paths.serial())
        ));
        push("-serial".into());
        push("chardev:serial0".into());
        push("-blockdev".into());
        push(format!(
            "driver=qcow2,node-name=root,file.driver=file,file.filename={}",
            opt(&paths.root())
        ));
        push("-device".into());
        push("virtio-blk-pci,drive=root,id=root-disk".into());
        for v in volumes {
            push("-blockdev".into());
            push(format!(
                "driver=qcow2,node-name={},file.driver=file,file.filename={}",
                volume_node(v.id),
                opt(&paths.volume(v.id))
            ));
            push("-device".into());
            push(format!(
                "virtio-blk-pci,drive={},id={}",
                volume_node(v.id),
                volume_device(v.id)
            ));
        }
        if spec.nics.is_empty() {
            let mut net = "user,id=net0,restrict=on".to_string();
            if let Some((host, guest)) = spec.forward_port {
                net.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            }
            push("-netdev".into());
            push(net);
            push("-device".into());
            push(format!("virtio-net-pci,netdev=net0,id={USER_NIC},romfile="));
        }
        for n in &spec.nics {
            push("-netdev".into());
            push(format!(
                "tap,id={},ifname={},script=no,downscript=no",
                crate::nics::netdev_id(n.id),
                n.tap
            ));
            push("-device".into());
            push(format!(
                "virtio-net-pci,netdev={},mac={},id={},romfile=",
                crate::nics::netdev_id(n.id),
                n.mac,
                crate::nics::device_id(n.id)
            ));
        }
        push("-fw_cfg".into());
        push(format!(
            "name=opt/zhengyun/hostname,string={}",
            spec.hostname
        ));
        if spec.user_data.is_some() {
            push("-fw_cfg".into());
            push(format!(
                "name=opt/zhengyun/user-data,file={}",
                opt(&paths.user_data())
            ));
        }
        push("-qmp".into());
        push(format!("unix:{},server=on,wait=off", opt(&paths.qmp())));
        push("-pidfile".into());
        push(paths.pid().to_string_lossy().into());
        if incoming {
            push("-incoming".into());
            push("defer".into());
        }
        push("-daemonize".into());
        a
    }

    /// Opens a QMP session to a running VM.
    pub(crate) async fn qmp(&self, id: Uuid) -> Result<Qmp> {
        match self.status(id).await {
            VmStatus::Running { .. } => Qmp::connect(&self.paths(id).qmp(), QMP_TIMEOUT).await,
            VmStatus::Missing => Err(Error::not_found(format!("VM {id}"))),
            _ => Err(Error::NotRunning(id)),
        }
    }

    /// Stops the VM: ACPI power button (`system_powerdown`) and up to `timeout` for the
    /// guest to power off, then `quit`, then SIGKILL. Idempotent.
    pub async fn stop(&self, id: Uuid, timeout: Duration) -> Result<StopReport> {
        let _g = self.lock(id).await;
        self.stop_locked(id, timeout).await
    }

    pub(crate) async fn stop_locked(&self, id: Uuid, timeout: Duration) -> Result<StopReport> {
        let began = Instant::now();
        let paths = self.paths(id);
        let pid = match self.status(id).await {
            VmStatus::Missing => return Err(Error::not_found(format!("VM {id}"))),
            VmStatus::Running { pid } => pid,
            VmStatus::Stopped | VmStatus::Crashed { .. } => {
                self.clean_runtime(id).await?;
                return Ok(StopReport {
                    was_running: false,
                    graceful: false,
                    elapsed_ms: 0,
                });
            }
        };
        let tag = vm_tag(id);
        let mut graceful = false;
        if !timeout.is_zero() {
            if let Ok(mut q) = Qmp::connect(&paths.qmp(), QMP_TIMEOUT).await {
                if q.execute("system_powerdown", None).await.is_ok() {
                    graceful = poll_until(timeout, || !alive(pid, &tag)).await;
                }
            }
        }
        if !graceful {
            tracing::warn!(vm = %id, pid, "VM did not power off in time; forcing it off");
            if let Ok(mut q) = Qmp::connect(&paths.qmp(), Duration::from_secs(2)).await {
                let _ = q.execute_with("quit", None, Duration::from_secs(2)).await;
            }
            if !poll_until(Duration::from_secs(3), || !alive(pid, &tag)).await {
                kill9(pid).await;
                if !poll_until(Duration::from_secs(10), || !alive(pid, &tag)).await {
                    return Err(Error::Timeout {
                        what: format!("QEMU pid {pid} to exit after SIGKILL"),
                        after: Duration::from_secs(10),
                    });
                }
            }
        }
        self.clean_runtime(id).await?;
        let elapsed_ms = began.elapsed().as_millis() as u64;
        tracing::info!(vm = %id, graceful, elapsed_ms, "VM stopped");
        Ok(StopReport {
            was_running: true,
            graceful,
            elapsed_ms,
        })
    }

    /// Removes what a QEMU process leaves behind (pid file, socket, cgroup).
    async fn clean_runtime(&self, id: Uuid) -> Result<()> {
        let paths = self.paths(id);
        remove_if_exists(&paths.pid()).await?;
        remove_if_exists(&paths.qmp()).await?;
        crate::cgroup::remove(id).await;
        Ok(())
    }

    /// Resets the VM (`system_reset`, like the reset button).
    pub async fn reboot(&self, id: Uuid) -> Result<()> {
        let _g = self.lock(id).await;
        let mut q = self.qmp(id).await?;
        q.execute("system_reset", None).await?;
        tracing::info!(vm = %id, "VM reset");
        Ok(())
    }

    /// Stops the VM at once and removes its directory: disk, volumes, logs, everything.
    /// Idempotent.
    pub async fn delete(&self, id: Uuid) -> Result<()> {
        let _g = self.lock(id).await;
        let paths = self.paths(id);
        if !paths.dir.exists() {
            return Ok(());
        }
        self.stop_locked(id, Duration::ZERO).await?;
        tokio::fs::remove_dir_all(&paths.dir)
            .await
            .map_err(|e| Error::io(format!("remove {}", paths.dir.display()), e))?;
        tracing::info!(vm = %id, "VM deleted");
        Ok(())
    }

    /// The last `max_lines` lines of the serial console.
    pub async fn console_log(&self, id: Uuid, max_lines: usize) -> Result<String> {
        let paths = self.paths(id);
        if !paths.dir.exists() {
            return Err(Error::not_found(format!("VM {id}")));
        }
        let bytes = read_tail(&paths.serial(), CONSOLE_TAIL_BYTES).await?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(max_lines);
        Ok(lines[from..].join("\n"))
    }

    /// Waits until the serial console shows `needle` at least `occurrences` times (the
    /// template's ready marker once per boot, say), polling every 100 ms.
    pub async fn wait_console(
        &self,
        id: Uuid,
        needle: &str,
        occurrences: usize,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let bytes = read_tail(&self.paths(id).serial(), CONSOLE_TAIL_BYTES * 4).await?;
            if String::from_utf8_lossy(&bytes).matches(needle).count() >= occurrences {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{needle:?} on the console of VM {id}"),
                    after: timeout,
                });
            }
            if self.status(id).await == VmStatus::Missing {
                return Err(Error::not_found(format!("VM {id}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Grows the root disk to `gib` (never shrinks): `block_resize` while running, so
    /// the guest sees the new size at once, `qemu-img resize` when stopped.
    pub async fn resize_disk(&self, id: Uuid, gib: u64) -> Result<()> {
        let _g = self.lock(id).await;
        let mut spec = self.spec(id).await?;
        if gib < spec.disk_gib {
            return Err(Error::BadSpec(format!(
                "disks only grow: {gib} GiB is smaller than {} GiB",
                spec.disk_gib
            )));
        }
        if gib == spec.disk_gib {
            return Ok(());
        }
        spec.disk_gib = gib;
        spec.validate()?;
        let bytes = gib << 30;
        match self.status(id).await {
            VmStatus::Running { .. } => {
                let mut q = self.qmp(id).await?;
                q.execute(
                    "block_resize",
                    Some(json!({ "node-name": "root", "size": bytes })),
                )
                .await?;
            }
            _ => {
                let root = self.paths(id).root();
                run(
                    "qemu-img",
                    [
                        OsString::from("resize"),
                        OsString::from("-q"),
                        root.into_os_string(),
                        OsString::from(bytes.to_string()),
                    ],
                    TOOL_TIMEOUT,
                )
                .await?;
            }
        }
        self.write_spec(&spec).await?;
        tracing::info!(vm = %id, gib, "root disk grown");
        Ok(())
    }

    /// Every VM in the data dir with its state — for an agent that restarts and takes
    /// over the VMs it left running. A running VM counts as responsive when its QMP
    /// monitor answers; a VM whose QEMU vanished without being stopped is
    /// [`VmStatus::Crashed`].
    pub async fn adopt(&self) -> Result<Vec<AdoptedVm>> {
        let mut found = Vec::new();
        let vms = self.data_dir.join("vms");
        let mut rd = tokio::fs::read_dir(&vms)
            .await
            .map_err(|e| Error::io(format!("read {}", vms.display()), e))?;
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| Error::io(format!("read {}", vms.display()), e))?
        {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            let spec = match self.spec(id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(vm = %id, error = %e, "VM directory without a usable spec; skipped");
                    continue;
                }
            };
            let status = self.status(id).await;
            let responsive = match status {
                VmStatus::Running { .. } => {
                    let _g = self.lock(id).await;
                    match Qmp::connect(&self.paths(id).qmp(), QMP_TIMEOUT).await {
                        Ok(mut q) => q.execute("query-status", None).await.is_ok(),
                        Err(_) => false,
                    }
                }
                _ => false,
            };
            if let VmStatus::Crashed { pid } = status {
                tracing::warn!(vm = %id, pid, restart_on_crash = spec.restart_on_crash, "VM died unexpectedly");
            }
            found.push(AdoptedVm {
                spec,
                status,
                responsive,
            });
        }
        found.sort_by_key(|v| v.spec.id);
        Ok(found)
    }

    pub(crate) async fn attached(&self, id: Uuid) -> Result<Vec<VolumeAttachment>> {
        match tokio::fs::read_to_string(self.paths(id).volumes()).await {
            Ok(t) => serde_json::from_str(&t)
                .map_err(|e| Error::BadSpec(format!("unreadable volumes.json of VM {id}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("read volumes.json", e)),
        }
    }

    pub(crate) async fn set_attached(&self, id: Uuid, vols: &[VolumeAttachment]) -> Result<()> {
        let text = serde_json::to_string_pretty(vols)
            .map_err(|e| Error::BadSpec(format!("cannot encode volumes: {e}")))?;
        write_atomic(&self.paths(id).volumes(), text.as_bytes()).await
    }
}

/// The `-name` of a VM's QEMU, also how its process is recognised in `/proc`.
/// The device id of the user-mode NIC of a VM without NICs of its own.
pub(crate) const USER_NIC: &str = "net0dev";

pub(crate) fn vm_tag(id: Uuid) -> String {
    format!("zy-{id}")
}

/// Block node names are at most 31 characters.
pub(crate) fn volume_node(vol: Uuid) -> String {
    format!("v{}", &vol.simple().to_string()[..30])
}

pub(crate) fn volume_device(vol: Uuid) -> String {
    format!("vol-{vol}")
}

/// A path as a QEMU option value (commas doubled).
pub(crate) fn opt(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

pub(crate) async fn read_pid(p: &Path) -> Option<u32> {
    tokio::fs::read_to_string(p)
        .await
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The last `max` bytes of a file (empty if it does not exist).
async fn read_tail(p: &Path, max: u64) -> Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = match tokio::fs::File::open(p).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", p.display()), e)),
    };
    let len = f
        .metadata()
        .await
        .map_err(|e| Error::io(format!("read {}", p.display()), e))?
        .len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(max)))
        .await
        .map_err(|e| Error::io(format!("read {}", p.display()), e))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .await
        .map_err(|e| Error::io(format!("read {}", p.display()), e))?;
    Ok(buf)
}

/// Keeps serial logs bounded: a large one becomes `serial.log.1` (replacing the older).
async fn rotate_serial(paths: &VmPaths) -> Result<()> {
    let big = tokio::fs::metadata(paths.serial())
        .await
        .is_ok_and(|m| m.len() > SERIAL_ROTATE_BYTES);
    if big {
        tokio::fs::rename(paths.serial(), paths.serial_old())
            .await
            .map_err(|e| Error::io("rotate serial log", e))?;
    }
    Ok(())
}

pub(crate) async fn remove_if_exists(p: &Path) -> Result<()> {
    match tokio::fs::remove_file(p).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", p.display()), e)),
    }
}

pub(crate) async fn write_atomic(p: &Path, data: &[u8]) -> Result<()> {
    let tmp = p.with_extension("tmp");
    tokio::fs::write(&tmp, data)
        .await
        .map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    tokio::fs::rename(&tmp, p)
        .await
        .map_err(|e| Error::io(format!("write {}", p.display()), e))
}

/// `qemu-img create` of a qcow2 overlay on `backing` (absolute path) of `gib`.
pub(crate) async fn create_overlay(backing: &Path, dest: &Path, gib: u64) -> Result<()> {
    let backing = std::path::absolute(backing).map_err(|e| Error::io("template path", e))?;
    remove_if_exists(dest).await?;
    run(
        "qemu-img",
        [
            OsString::from("create"),
            OsString::from("-q"),
            OsString::from("-f"),
            OsString::from("qcow2"),
            OsString::from("-F"),
            OsString::from("qcow2"),
            OsString::from("-b"),
            backing.into_os_string(),
            dest.as_os_str().to_os_string(),
            OsString::from(format!("{gib}G")),
        ],
        TOOL_TIMEOUT,
    )
    .await
    .map(|_| ())
}
