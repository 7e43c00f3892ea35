//! Volumes: extra qcow2 disks `vol-<uuid>.qcow2` in a VM's directory, hot-plugged as
//! virtio-blk PCI devices (`blockdev-add` + `device_add`, and `device_del` → wait for
//! `DEVICE_DELETED` → `blockdev-del`). The machine type (`pc`) has ACPI hot-plug on its
//! root PCI bus, so no extra bridges are needed. `volumes.json` lists what is attached,
//! so a VM started later gets its volumes on the command line.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::hypervisor::{remove_if_exists, volume_device, volume_node, Hypervisor, TOOL_TIMEOUT};
use crate::process::run;
use crate::spec::{VmStatus, VolumeAttachment};

/// How long a guest may take to release an unplugged disk.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(60);

impl Hypervisor {
    /// Creates the volume's disk if missing and attaches it (hot-plug when running).
    /// Idempotent.
    pub async fn attach_volume(&self, id: Uuid, vol: Uuid, size_gib: u64) -> Result<()> {
        if !(1..=16384).contains(&size_gib) {
            return Err(Error::BadSpec(format!(
                "volume size must be 1-16384 GiB, not {size_gib}"
            )));
        }
        let _g = self.lock(id).await;
        let paths = self.paths(id);
        if !paths.dir.exists() {
            return Err(Error::not_found(format!("VM {id}")));
        }
        let file = paths.volume(vol);
        if !file.exists() {
            let tmp = paths.dir.join(format!("vol-{vol}.creating"));
            run(
                "qemu-img",
                [
                    OsString::from("create"),
                    OsString::from("-q"),
                    OsString::from("-f"),
                    OsString::from("qcow2"),
                    tmp.clone().into_os_string(),
                    OsString::from(format!("{size_gib}G")),
                ],
                TOOL_TIMEOUT,
            )
            .await?;
            tokio::fs::rename(&tmp, &file)
                .await
                .map_err(|e| Error::io("install volume", e))?;
        }
        let mut attached = self.attached(id).await?;
        if !attached.iter().any(|a| a.id == vol) {
            attached.push(VolumeAttachment { id: vol, size_gib });
            self.set_attached(id, &attached).await?;
        }
        if let VmStatus::Running { .. } = self.status(id).await {
            let mut q = self.qmp(id).await?;
            let node = volume_node(vol);
            if !has_node(&mut q, &node).await? {
                q.execute(
                    "blockdev-add",
                    Some(json!({
                        "driver": "qcow2",
                        "node-name": node,
                        "file": { "driver": "file", "filename": file },
                    })),
                )
                .await?;
            }
            if !has_device(&mut q, &volume_device(vol)).await? {
                q.execute(
                    "device_add",
                    Some(json!({
                        "driver": "virtio-blk-pci",
                        "drive": node,
                        "id": volume_device(vol),
                    })),
                )
                .await?;
            }
        }
        tracing::info!(vm = %id, volume = %vol, size_gib, "volume attached");
        Ok(())
    }

    /// Detaches a volume (hot-unplug when running; waits for the guest to let go).
    /// Idempotent; the volume's disk is kept.
    pub async fn detach_volume(&self, id: Uuid, vol: Uuid) -> Result<()> {
        let _g = self.lock(id).await;
        let paths = self.paths(id);
        if !paths.dir.exists() {
            return Err(Error::not_found(format!("VM {id}")));
        }
        if let VmStatus::Running { .. } = self.status(id).await {
            let mut q = self.qmp(id).await?;
            let dev = volume_device(vol);
            if has_device(&mut q, &dev).await? {
                match q.execute("device_del", Some(json!({ "id": dev }))).await {
                    Ok(_) => {}
                    // An unplug asked for earlier is still under way: wait for it.
                    Err(Error::Qmp { desc, .. }) if desc.contains("process of unplug") => {}
                    Err(e) => return Err(e),
                }
                let d = dev.clone();
                q.wait_event("DEVICE_DELETED", UNPLUG_TIMEOUT, move |data: &Value| {
                    data["device"].as_str() == Some(d.as_str())
                })
                .await?;
            }
            let node = volume_node(vol);
            if has_node(&mut q, &node).await? {
                q.execute("blockdev-del", Some(json!({ "node-name": node })))
                    .await?;
            }
        }
        let mut attached = self.attached(id).await?;
        if attached.iter().any(|a| a.id == vol) {
            attached.retain(|a| a.id != vol);
            self.set_attached(id, &attached).await?;
        }
        tracing::info!(vm = %id, volume = %vol, "volume detached");
        Ok(())
    }

    /// Removes a detached volume's disk. Idempotent.
    pub async fn delete_volume(&self, id: Uuid, vol: Uuid) -> Result<()> {
        let _g = self.lock(id).await;
        if self.attached(id).await?.iter().any(|a| a.id == vol) {
            return Err(Error::BadSpec(format!(
                "volume {vol} is attached to VM {id}; detach it first"
            )));
        }
        remove_if_exists(&self.paths(id).volume(vol)).await
    }

    /// The volumes attached to a VM.
    pub async fn volumes(&self, id: Uuid) -> Result<Vec<VolumeAttachment>> {
        if !self.paths(id).dir.exists() {
            return Err(Error::not_found(format!("VM {id}")));
        }
        self.attached(id).await
    }
}

async fn has_node(q: &mut crate::qmp::Qmp, node: &str) -> Result<bool> {
    let nodes = q
        .execute("query-named-block-nodes", Some(json!({ "flat": true })))
        .await?;
    Ok(nodes
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n["node-name"].as_str() == Some(node))))
}

async fn has_device(q: &mut crate::qmp::Qmp, id: &str) -> Result<bool> {
    let list = q
        .execute("qom-list", Some(json!({ "path": "/machine/peripheral" })))
        .await?;
    Ok(list
        .as_array()
        .is_some_and(|a| a.iter().any(|p| p["name"].as_str() == Some(id))))
}
