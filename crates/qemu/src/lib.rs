//! `zy_qemu`: the QEMU layer of a zhengyun host. One QEMU process per VM, everything
//! about a VM in `<data>/vms/<uuid>/`, templates in `<data>/templates/<name>/`. The agent
//! (and through it the server's `kvm` compute driver) uses this crate to create linked-
//! clone disks, start and stop VMs (ACPI first), hot-plug volumes, read consoles and
//! metrics, adopt VMs after a restart and live-migrate VMs with their disks.
//!
//! Modules: [`hypervisor`] (VM life cycle and files), [`volumes`] (hot-plug),
//! [`migrate`] (live migration), [`metrics`], [`template`] (install and verify),
//! [`accel`] (KVM probe with TCG fallback), [`qmp`] (the monitor protocol client),
//! [`cgroup`] (best-effort limits), [`error`].
//!
//! The guest contract (what the `zy-busybox` template built by `cargo xtask template`
//! does): hostname and user data from fw_cfg `opt/zhengyun/{hostname,user-data}`,
//! `ZHENGYUN-READY hostname=<name> disk_bytes=<n> boot=<count>` on the serial console
//! when booted, `ZY-BLOCK add|remove|resize <dev>` on disk changes, a clean power-off on
//! the ACPI power button.

pub mod accel;
pub mod cgroup;
pub mod error;
pub mod hypervisor;
mod listing;
pub mod metrics;
pub mod migrate;
pub mod nics;
mod process;
pub mod qmp;
pub mod spec;
pub mod template;
pub mod volumes;

pub use accel::{probe_accel, Accel, PROBE_TIMEOUT};
pub use cgroup::Limits;
pub use error::{Error, ErrorKind, Result};
pub use hypervisor::{Hypervisor, StartReport, StopReport, KERNEL_CMDLINE};
pub use metrics::{host_capacity, BlockStats, HostCapacity, VmMetrics};
pub use migrate::{IncomingEndpoint, MigrationReport};
pub use spec::{AdoptedVm, VmNic, VmSpec, VmStatus, VolumeAttachment};
pub use template::{Manifest, ManifestFile, Template};
