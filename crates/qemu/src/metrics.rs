//! What a VM uses and what a host has: CPU time and RSS from `/proc/<pid>`, disk space
//! actually allocated by its qcow2 files, I/O counters from QMP `query-blockstats`; and
//! the host's cores, memory and data-dir disk for the scheduler.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::hypervisor::Hypervisor;
use crate::process::run;
use crate::spec::VmStatus;
use crate::Accel;

/// Linux reports process times in clock ticks of 1/100 s (USER_HZ on every arch we run).
const TICKS_PER_SEC: u64 = 100;

/// One VM's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VmMetrics {
    /// Whether the VM was running (the process figures are zero otherwise).
    pub running: bool,
    /// User + system CPU time of the QEMU process.
    pub cpu_time_ms: u64,
    /// Resident memory of the QEMU process.
    pub rss_bytes: u64,
    /// Configured guest memory (there is no balloon).
    pub memory_bytes: u64,
    /// Space the VM's qcow2 files take on the host (root disk and volumes).
    pub disk_allocated_bytes: u64,
    /// Per virtio disk (`root`, `vol-<uuid>`).
    pub block: Vec<BlockStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlockStats {
    pub device: String,
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub rd_operations: u64,
    pub wr_operations: u64,
}

/// What a host offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCapacity {
    pub cores: u32,
    pub memory_bytes: u64,
    pub memory_available_bytes: u64,
    pub disk_total_bytes: u64,
    pub disk_free_bytes: u64,
    pub accel: Accel,
}

impl Hypervisor {
    /// The VM's usage.
    pub async fn metrics(&self, id: Uuid) -> Result<VmMetrics> {
        let spec = self.spec(id).await?;
        let paths = self.paths(id);
        let mut m = VmMetrics {
            memory_bytes: spec.memory_mib << 20,
            ..Default::default()
        };
        let mut rd = tokio::fs::read_dir(&paths.dir)
            .await
            .map_err(|e| Error::io(format!("read {}", paths.dir.display()), e))?;
        while let Some(e) = rd
            .next_entry()
            .await
            .map_err(|e| Error::io("read VM dir", e))?
        {
            if e.file_name().to_string_lossy().ends_with(".qcow2") {
                if let Ok(md) = e.metadata().await {
                    m.disk_allocated_bytes += md.blocks() * 512;
                }
            }
        }
        let VmStatus::Running { pid } = self.status(id).await else {
            return Ok(m);
        };
        m.running = true;
        if let Ok(stat) = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await {
            // Fields after the command name: state is field 3, utime 14, stime 15.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                m.cpu_time_ms = (ticks(11) + ticks(12)) * 1000 / TICKS_PER_SEC;
            }
        }
        if let Ok(status) = tokio::fs::read_to_string(format!("/proc/{pid}/status")).await {
            m.rss_bytes = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024;
        }
        let _g = self.lock(id).await;
        let mut q = self.qmp(id).await?;
        let stats = q.execute("query-blockstats", Some(json!({}))).await?;
        for s in stats.as_array().into_iter().flatten() {
            let dev = s["qdev"]
                .as_str()
                .or_else(|| s["node-name"].as_str())
                .unwrap_or_default();
            let dev = dev
                .rsplit('/')
                .find(|p| !p.is_empty() && *p != "virtio-backend")
                .unwrap_or(dev);
            let st = &s["stats"];
            let n = |k: &str| st[k].as_u64().unwrap_or(0);
            m.block.push(BlockStats {
                device: dev.to_string(),
                rd_bytes: n("rd_bytes"),
                wr_bytes: n("wr_bytes"),
                rd_operations: n("rd_operations"),
                wr_operations: n("wr_operations"),
            });
        }
        Ok(m)
    }

    /// What this host offers (see [`host_capacity`]).
    pub async fn host_capacity(&self) -> Result<HostCapacity> {
        host_capacity(&self.data_dir, self.accel).await
    }
}

/// Cores, memory and the free/total space of the file system holding `data_dir`.
pub async fn host_capacity(data_dir: &Path, accel: Accel) -> Result<HostCapacity> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let meminfo = tokio::fs::read_to_string("/proc/meminfo")
        .await
        .map_err(|e| Error::io("read /proc/meminfo", e))?;
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let df = run(
        "df",
        [
            std::ffi::OsStr::new("-B1"),
            std::ffi::OsStr::new("--output=size,avail"),
            data_dir.as_os_str(),
        ],
        std::time::Duration::from_secs(10),
    )
    .await?;
    let nums: Vec<u64> = df
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    Ok(HostCapacity {
        cores,
        memory_bytes: kib("MemTotal:"),
        memory_available_bytes: kib("MemAvailable:"),
        disk_total_bytes: nums.first().copied().unwrap_or(0),
        disk_free_bytes: nums.get(1).copied().unwrap_or(0),
        accel,
    })
}
