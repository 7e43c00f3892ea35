//! What a VM is (the [`VmSpec`] the caller hands in, kept as `spec.json` in the VM's
//! directory) and what state it is in ([`VmStatus`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Largest user-data script accepted (it travels through fw_cfg).
pub const MAX_USER_DATA: usize = 64 * 1024;

/// One VM as the platform wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub id: Uuid,
    /// The guest's hostname (RFC 1123 label: `a-z`, `0-9`, `-`).
    pub hostname: String,
    /// `-smp`: the VM's CPU limit.
    pub vcpus: u32,
    /// `-m`: the VM's memory limit.
    pub memory_mib: u64,
    /// Virtual size of the root disk; at least the template's.
    pub disk_gib: u64,
    /// Name of an installed template.
    pub template: String,
    /// A shell script the guest runs in the background once booted.
    pub user_data: Option<String>,
    /// `(host, guest)` TCP port forwarded from 127.0.0.1 on the host.
    pub forward_port: Option<(u16, u16)>,
    /// The caller's policy, kept with the VM so that [`crate::Hypervisor::adopt`] can
    /// report it next to a VM that died.
    pub restart_on_crash: bool,
}

impl VmSpec {
    /// Refuses specs QEMU or the guest could not honour.
    pub fn validate(&self) -> Result<()> {
        let h = &self.hostname;
        if h.is_empty()
            || h.len() > 63
            || h.starts_with('-')
            || h.ends_with('-')
            || !h
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Error::BadSpec(format!(
                "hostname {h:?} must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
            )));
        }
        if !(1..=64).contains(&self.vcpus) {
            return Err(Error::BadSpec(format!(
                "vcpus must be 1-64, not {}",
                self.vcpus
            )));
        }
        if !(64..=1 << 20).contains(&self.memory_mib) {
            return Err(Error::BadSpec(format!(
                "memory_mib must be 64-1048576, not {}",
                self.memory_mib
            )));
        }
        if !(1..=16384).contains(&self.disk_gib) {
            return Err(Error::BadSpec(format!(
                "disk_gib must be 1-16384, not {}",
                self.disk_gib
            )));
        }
        crate::template::valid_name(&self.template)?;
        if let Some(u) = &self.user_data {
            if u.len() > MAX_USER_DATA {
                return Err(Error::BadSpec(format!(
                    "user data is {} bytes, at most {MAX_USER_DATA}",
                    u.len()
                )));
            }
        }
        if let Some((host, guest)) = self.forward_port {
            if host == 0 || guest == 0 {
                return Err(Error::BadSpec("forwarded ports must not be 0".into()));
            }
        }
        Ok(())
    }
}

/// A VM's state as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmStatus {
    /// Its QEMU process is alive.
    Running { pid: u32 },
    /// Defined (its directory exists) and not running: never started, stopped, or
    /// powered off by the guest.
    Stopped,
    /// Its QEMU process is gone without being stopped (killed, crashed, OOM): the pid
    /// file it leaves behind says so. Starting it again is the caller's decision
    /// ([`VmSpec::restart_on_crash`]).
    Crashed { pid: u32 },
    /// No such VM on this host.
    Missing,
}

/// A VM found by [`crate::Hypervisor::adopt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedVm {
    pub spec: VmSpec,
    pub status: VmStatus,
    /// For a running VM: whether its QMP monitor answered.
    pub responsive: bool,
}

/// A volume attached to a VM (kept in `volumes.json`, re-attached at every start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub id: Uuid,
    pub size_gib: u64,
}
