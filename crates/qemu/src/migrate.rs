//! Live migration between two hypervisors on one machine (two data dirs), disk
//! included. The target's [`Hypervisor::prepare_incoming`] creates an empty overlay of
//! the same template and size, starts QEMU with `-incoming defer`, exports the disk
//! writable over NBD on 127.0.0.1 and listens for the migration stream. The source's
//! [`Hypervisor::migrate_out`] mirrors the top layer of its disk into that export
//! (`blockdev-mirror sync=top`: the template is the same on both sides), migrates RAM and
//! device state once the mirror is in sync, ends the mirror without pivoting, stops and
//! removes the source. [`Hypervisor::finish_incoming`] makes sure the target runs and
//! closes the NBD server.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::hypervisor::{create_overlay, Hypervisor, QMP_TIMEOUT};
use crate::process::{free_port, poll_until};
use crate::qmp::Qmp;
use crate::spec::{VmSpec, VmStatus};

/// How long the disk mirror may take to reach sync, and RAM migration to complete.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(300);
const MIRROR_JOB: &str = "zy-migrate-root";
const NBD_EXPORT: &str = "root";
const NBD_NODE: &str = "zy-migrate-target";

/// Where a prepared target listens (both on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IncomingEndpoint {
    pub migrate_port: u16,
    pub nbd_port: u16,
}

/// What a migration cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// The guest was paused this long (QEMU's own figure).
    pub downtime_ms: u64,
    /// From the start of the disk mirror to the source's end.
    pub total_ms: u64,
    /// Of which the disk mirror took this long to reach sync.
    pub mirror_ms: u64,
    /// RAM and device state sent.
    pub ram_bytes: u64,
    /// Disk data sent by the mirror.
    pub disk_bytes: u64,
}

impl Hypervisor {
    /// Target side, step 1: a paused QEMU waiting for `spec`'s VM, with its disk
    /// exported for the source's mirror. If the migration fails, [`Hypervisor::delete`]
    /// the VM here; the source keeps running.
    pub async fn prepare_incoming(&self, spec: &VmSpec) -> Result<IncomingEndpoint> {
        spec.validate()?;
        let template = self.template(&spec.template).await?;
        let _g = self.lock(spec.id).await;
        let paths = self.paths(spec.id);
        if let VmStatus::Running { .. } = self.status(spec.id).await {
            return Err(Error::BadSpec(format!(
                "VM {} already runs on the target",
                spec.id
            )));
        }
        tokio::fs::create_dir_all(&paths.dir)
            .await
            .map_err(|e| Error::io(format!("create {}", paths.dir.display()), e))?;
        let shared = spec.shared_dir.is_some();
        if shared {
            // The disk is already where the target can open it: nothing to copy. QEMU
            // opens it inactive (no write lock) until the hand-over.
            self.link_shared_disk(spec).await?;
        } else {
            create_overlay(&template.root_disk(), &paths.root(), spec.disk_gib).await?;
        }
        self.write_spec(spec).await?;
        self.set_attached(spec.id, &[]).await?;
        self.start_locked(spec, Some(())).await?;
        let ep = IncomingEndpoint {
            migrate_port: free_port()?,
            nbd_port: if shared { 0 } else { free_port()? },
        };
        let mut q = self.qmp(spec.id).await?;
        if shared {
            q.execute(
                "migrate-incoming",
                Some(json!({ "uri": format!("tcp:127.0.0.1:{}", ep.migrate_port) })),
            )
            .await?;
            tracing::info!(vm = %spec.id, ?ep, "incoming migration prepared (shared storage)");
            return Ok(ep);
        }
        q.execute(
            "nbd-server-start",
            Some(json!({ "addr": { "type": "inet",
                "data": { "host": "127.0.0.1", "port": ep.nbd_port.to_string() } } })),
        )
        .await?;
        q.execute(
            "block-export-add",
            Some(
                json!({ "type": "nbd", "id": NBD_EXPORT, "node-name": "root",
                "name": NBD_EXPORT, "writable": true }),
            ),
        )
        .await?;
        q.execute(
            "migrate-incoming",
            Some(json!({ "uri": format!("tcp:127.0.0.1:{}", ep.migrate_port) })),
        )
        .await?;
        tracing::info!(vm = %spec.id, ?ep, "incoming migration prepared");
        Ok(ep)
    }

    /// Source side: moves the running VM to the prepared target, then stops it here and
    /// removes its directory. On failure the source keeps running.
    pub async fn migrate_out(&self, id: Uuid, to: IncomingEndpoint) -> Result<MigrationReport> {
        let _g = self.lock(id).await;
        if !self.attached(id).await?.is_empty() {
            return Err(Error::BadSpec(
                "detach the VM's volumes before migrating it".into(),
            ));
        }
        let pid = match self.status(id).await {
            VmStatus::Running { pid } => pid,
            VmStatus::Missing => return Err(Error::not_found(format!("VM {id}"))),
            _ => return Err(Error::NotRunning(id)),
        };
        let began = Instant::now();
        let mut q = self.qmp(id).await?;
        let result = migrate(&mut q, to, began).await;
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(vm = %id, error = %e, "migration failed; the VM stays here");
                let _ = q.execute("migrate_cancel", None).await;
                let _ = q
                    .execute(
                        "block-job-cancel",
                        Some(json!({ "device": MIRROR_JOB, "force": true })),
                    )
                    .await;
                let _ = wait_job_gone(&mut q, Duration::from_secs(10)).await;
                let _ = q
                    .execute("blockdev-del", Some(json!({ "node-name": NBD_NODE })))
                    .await;
                if q.execute("query-status", None)
                    .await
                    .ok()
                    .and_then(|s| s["status"].as_str().map(|st| st != "running"))
                    == Some(true)
                {
                    let _ = q.execute("cont", None).await;
                }
                return Err(e);
            }
        };
        // The source is paused for good; end it and forget it.
        let _ = q.execute_with("quit", None, Duration::from_secs(5)).await;
        drop(q);
        let tag = crate::hypervisor::vm_tag(id);
        if !poll_until(Duration::from_secs(10), || {
            !crate::process::alive(pid, &tag)
        })
        .await
        {
            crate::process::kill9(pid).await;
        }
        let dir = self.paths(id).dir;
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|e| Error::io(format!("remove {}", dir.display()), e))?;
        crate::cgroup::remove(id).await;
        let mut report = report;
        report.total_ms = began.elapsed().as_millis() as u64;
        tracing::info!(vm = %id, ?report, "VM migrated out");
        Ok(report)
    }

    /// Target side, last step: waits for the incoming migration to complete, resumes the
    /// guest if it is paused and stops the NBD server.
    pub async fn finish_incoming(&self, id: Uuid) -> Result<()> {
        let _g = self.lock(id).await;
        let mut q = self.qmp(id).await?;
        let deadline = Instant::now() + MIGRATION_TIMEOUT;
        loop {
            let m = q.execute("query-migrate", None).await?;
            match m["status"].as_str() {
                Some("completed") => break,
                Some("failed") | Some("cancelled") => {
                    return Err(Error::Qmp {
                        command: "migrate-incoming".into(),
                        class: "MigrationFailed".into(),
                        desc: m["error-desc"].as_str().unwrap_or("failed").into(),
                    })
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("incoming migration of VM {id}"),
                    after: MIGRATION_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shared = self.spec(id).await.is_ok_and(|s| s.shared_dir.is_some());
        if !shared {
            let _ = q
                .execute("block-export-del", Some(json!({ "id": NBD_EXPORT })))
                .await;
            q.execute("nbd-server-stop", None).await?;
        }
        let st = q.execute("query-status", None).await?;
        if st["status"].as_str() != Some("running") {
            q.execute("cont", None).await?;
        }
        tracing::info!(vm = %id, "incoming migration finished; VM runs here");
        Ok(())
    }
}

async fn migrate(q: &mut Qmp, to: IncomingEndpoint, began: Instant) -> Result<MigrationReport> {
    // `nbd_port` 0: the disk is on shared storage, only RAM and device state move.
    let mirror = to.nbd_port != 0;
    if mirror {
        start_mirror(q, to).await?;
    }
    let mirror_ms = began.elapsed().as_millis() as u64;
    q.execute(
        "migrate-set-parameters",
        Some(json!({ "max-bandwidth": 1u64 << 30, "downtime-limit": 300 })),
    )
    .await?;
    q.execute(
        "migrate",
        Some(json!({ "uri": format!("tcp:127.0.0.1:{}", to.migrate_port) })),
    )
    .await?;
    let deadline = Instant::now() + MIGRATION_TIMEOUT;
    let done = loop {
        let m = q.execute("query-migrate", None).await?;
        match m["status"].as_str() {
            Some("completed") => break m,
            Some("failed") | Some("cancelled") => {
                return Err(Error::Qmp {
                    command: "migrate".into(),
                    class: "MigrationFailed".into(),
                    desc: m["error-desc"].as_str().unwrap_or("failed").into(),
                })
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: "migration to complete".into(),
                after: MIGRATION_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let disk_bytes = if mirror { end_mirror(q).await? } else { 0 };
    Ok(MigrationReport {
        downtime_ms: done["downtime"].as_u64().unwrap_or(0),
        total_ms: 0,
        mirror_ms,
        ram_bytes: done["ram"]["transferred"].as_u64().unwrap_or(0),
        disk_bytes,
    })
}

/// Mirrors the top layer of the root disk into the target's export until in sync.
async fn start_mirror(q: &mut Qmp, to: IncomingEndpoint) -> Result<()> {
    q.execute(
        "blockdev-add",
        Some(
            json!({ "driver": "nbd", "node-name": NBD_NODE, "export": NBD_EXPORT,
            "server": { "type": "inet", "host": "127.0.0.1", "port": to.nbd_port.to_string() } }),
        ),
    )
    .await?;
    q.execute(
        "blockdev-mirror",
        Some(json!({ "job-id": MIRROR_JOB, "device": "root", "target": NBD_NODE, "sync": "top" })),
    )
    .await?;
    let job_ready = |j: &Value| j["device"].as_str() == Some(MIRROR_JOB);
    q.wait_event("BLOCK_JOB_READY", MIGRATION_TIMEOUT, job_ready)
        .await?;
    Ok(())
}

/// Ends a mirror in sync without switching the source to the target; returns the bytes sent.
async fn end_mirror(q: &mut Qmp) -> Result<u64> {
    let jobs = q.execute("query-block-jobs", None).await?;
    let disk_bytes = jobs
        .as_array()
        .and_then(|a| a.iter().find(|j| j["device"].as_str() == Some(MIRROR_JOB)))
        .and_then(|j| j["offset"].as_u64())
        .unwrap_or(0);
    // Ready mirror + cancel = finish without switching the source to the target disk.
    q.execute("block-job-cancel", Some(json!({ "device": MIRROR_JOB })))
        .await?;
    wait_job_gone(q, Duration::from_secs(30)).await?;
    q.execute("blockdev-del", Some(json!({ "node-name": NBD_NODE })))
        .await?;
    Ok(disk_bytes)
}

async fn wait_job_gone(q: &mut Qmp, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let jobs = q
            .execute_with("query-block-jobs", None, QMP_TIMEOUT)
            .await?;
        let present = jobs
            .as_array()
            .is_some_and(|a| a.iter().any(|j| j["device"].as_str() == Some(MIRROR_JOB)));
        if !present {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: "the disk mirror to end".into(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
