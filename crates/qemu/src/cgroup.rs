//! Per-VM resource limits beyond `-smp`/`-m`: a cgroup v2 group
//! `/sys/fs/cgroup/zhengyun/<uuid>` with `cpu.max` (vcpus × 100 %) and `memory.max`
//! (guest memory plus QEMU's own overhead). Best effort: hosts without a writable
//! cgroup v2 hierarchy (containers, cgroup v1) run VMs with the QEMU limits only, and
//! [`Limits`] says which applied.

use std::path::PathBuf;

use uuid::Uuid;

use crate::spec::VmSpec;

const ROOT: &str = "/sys/fs/cgroup";
/// Memory QEMU itself needs beside the guest's RAM.
const QEMU_OVERHEAD_MIB: u64 = 256;

/// The limits that apply to one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub vcpus: u32,
    pub memory_mib: u64,
    /// The cgroup holding the QEMU process, when one could be set up.
    pub cgroup: Option<PathBuf>,
    /// Why there is no cgroup, when there is none.
    pub cgroup_skipped: Option<String>,
}

impl Limits {
    pub(crate) fn plain(spec: &VmSpec) -> Self {
        Limits {
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            cgroup: None,
            cgroup_skipped: None,
        }
    }
}

fn group(id: Uuid) -> PathBuf {
    PathBuf::from(ROOT).join("zhengyun").join(id.to_string())
}

/// Puts `pid` into a cgroup with the VM's limits, if the host allows.
pub(crate) async fn apply(spec: &VmSpec, pid: u32) -> Limits {
    let mut limits = Limits::plain(spec);
    match try_apply(spec, pid).await {
        Ok(path) => limits.cgroup = Some(path),
        Err(why) => {
            tracing::debug!(vm = %spec.id, %why, "no cgroup limits");
            limits.cgroup_skipped = Some(why);
        }
    }
    limits
}

async fn try_apply(spec: &VmSpec, pid: u32) -> Result<PathBuf, String> {
    let root = PathBuf::from(ROOT);
    let controllers = tokio::fs::read_to_string(root.join("cgroup.controllers"))
        .await
        .map_err(|_| "no cgroup v2 hierarchy at /sys/fs/cgroup".to_string())?;
    if !(controllers.contains("cpu") && controllers.contains("memory")) {
        return Err("cgroup v2 without cpu and memory controllers".into());
    }
    let parent = root.join("zhengyun");
    let w = |p: PathBuf, v: String| async move {
        tokio::fs::write(&p, v)
            .await
            .map_err(|e| format!("write {}: {e}", p.display()))
    };
    w(root.join("cgroup.subtree_control"), "+cpu +memory".into()).await?;
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(|e| format!("create {}: {e}", parent.display()))?;
    w(parent.join("cgroup.subtree_control"), "+cpu +memory".into()).await?;
    let g = group(spec.id);
    tokio::fs::create_dir_all(&g)
        .await
        .map_err(|e| format!("create {}: {e}", g.display()))?;
    w(
        g.join("cpu.max"),
        format!("{} 100000", u64::from(spec.vcpus) * 100_000),
    )
    .await?;
    w(
        g.join("memory.max"),
        ((spec.memory_mib + QEMU_OVERHEAD_MIB) << 20).to_string(),
    )
    .await?;
    w(g.join("cgroup.procs"), pid.to_string()).await?;
    Ok(g)
}

/// Removes the VM's cgroup (after its process ended), if there is one.
pub(crate) async fn remove(id: Uuid) {
    let _ = tokio::fs::remove_dir(group(id)).await;
}
