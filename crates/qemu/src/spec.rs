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
    /// A directory mounted on every host of the zone (NFS or a cluster file system; one
    /// directory shared by several agents in tests). When set, the root disk lives in
    /// `<shared_dir>/disks/<id>/` (cloned from the template copy in
    /// `<shared_dir>/templates/`) so another host can run the VM after a failure or take
    /// it by live migration without copying the disk; QEMU's own image locks keep two
    /// hosts from opening it at once.
    #[serde(default)]
    pub shared_dir: Option<std::path::PathBuf>,
    /// NICs on taps of the host's data plane (`-netdev tap`); a VM without any gets
    /// QEMU's user-mode network instead.
    #[serde(default)]
    pub nics: Vec<VmNic>,
}

/// A NIC of a VM: a virtio-net device on an existing tap (the agent's data plane made
/// it and put it on its VPC's bridge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmNic {
    pub id: Uuid,
    pub tap: String,
    pub mac: String,
}

impl VmNic {
    fn validate(&self) -> Result<()> {
        let tap_ok = !self.tap.is_empty()
            && self.tap.len() <= 15
            && self.tap.chars().all(|c| c.is_ascii_alphanumeric());
        let parts: Vec<&str> = self.mac.split(':').collect();
        let mac_ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if !tap_ok || !mac_ok {
            return Err(Error::BadSpec(format!(
                "NIC {}: tap {:?} or MAC {:?} is malformed",
                self.id, self.tap, self.mac
            )));
        }
        Ok(())
    }
}

impl VmSpec {
    /// Where the root disk lives when it is on shared storage.
    pub fn shared_disk_dir(&self) -> Option<std::path::PathBuf> {
        self.shared_dir
            .as_ref()
            .map(|d| d.join("disks").join(self.id.to_string()))
    }

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
        if let Some(d) = &self.shared_dir {
            if !d.is_absolute() {
                return Err(Error::BadSpec(format!(
                    "the shared storage directory {} must be an absolute path",
                    d.display()
                )));
            }
        }
        for n in &self.nics {
            n.validate()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn ok() -> VmSpec {
        VmSpec {
            id: Uuid::new_v4(),
            hostname: "web-01".into(),
            vcpus: 2,
            memory_mib: 512,
            disk_gib: 10,
            template: "zy-busybox".into(),
            user_data: Some("echo hi".into()),
            forward_port: Some((2222, 22)),
            shared_dir: None,
            restart_on_crash: true,
            nics: vec![],
        }
    }

    #[test]
    fn specs_qemu_cannot_honour_are_refused_as_permanent() {
        assert!(ok().validate().is_ok());
        let bad: &[fn(&mut VmSpec)] = &[
            |s| s.hostname = "Web_01".into(),
            |s| s.hostname = "-web".into(),
            |s| s.hostname = "a".repeat(64),
            |s| s.hostname = "web,01".into(),
            |s| s.vcpus = 0,
            |s| s.memory_mib = 16,
            |s| s.disk_gib = 0,
            |s| s.template = "../etc".into(),
            |s| s.user_data = Some("x".repeat(MAX_USER_DATA + 1)),
            |s| s.forward_port = Some((0, 22)),
            |s| {
                s.nics = vec![VmNic {
                    id: Uuid::nil(),
                    tap: "zt0,script=/x".into(),
                    mac: "fa:16:5a:00:00:01".into(),
                }]
            },
        ];
        for (i, change) in bad.iter().enumerate() {
            let mut s = ok();
            change(&mut s);
            let err = s.validate().expect_err(&format!("case {i}"));
            assert_eq!(err.kind(), ErrorKind::Permanent, "case {i}: {err}");
        }
    }

    #[test]
    fn volume_node_names_fit_qemus_limit() {
        let n = crate::hypervisor::volume_node(Uuid::new_v4());
        assert!(n.len() <= 31 && n.starts_with('v'), "{n}");
    }
}
