//! NICs on taps: kept in the VM's spec (so every start has them) and hot-plugged into a
//! running guest through QMP (`netdev_add` + `device_add`, `device_del` + `netdev_del`).
//! A guest that gets its first NIC loses the user-mode one it was started with.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::hypervisor::{Hypervisor, USER_NIC};
use crate::spec::{VmNic, VmStatus};

const UNPLUG_TIMEOUT: Duration = Duration::from_secs(60);

/// QEMU's id of a NIC's backend.
pub fn netdev_id(nic: Uuid) -> String {
    format!("nd{}", nic.simple())
}

/// QEMU's id of a NIC's device.
pub fn device_id(nic: Uuid) -> String {
    format!("nic{}", nic.simple())
}

impl Hypervisor {
    /// Makes `nics` the VM's NICs: in its spec, and in the running guest by hot-plug.
    /// Idempotent; a VM that is not on this host is an error (not found).
    pub async fn set_nics(&self, id: Uuid, nics: &[VmNic]) -> Result<()> {
        let _g = self.lock(id).await;
        let mut spec = self.spec(id).await?;
        let wanted = nics.to_vec();
        for n in &wanted {
            if n.tap.len() > 15 || n.tap.is_empty() {
                return Err(Error::BadSpec(format!("tap name {:?}", n.tap)));
            }
        }
        if let VmStatus::Running { .. } = self.status(id).await {
            let mut q = self.qmp(id).await?;
            let devices = peripherals(&mut q).await?;
            for n in &wanted {
                if !devices.contains(&device_id(n.id)) {
                    q.execute(
                        "netdev_add",
                        Some(json!({
                            "type": "tap",
                            "id": netdev_id(n.id),
                            "ifname": n.tap,
                            "script": "no",
                            "downscript": "no",
                        })),
                    )
                    .await
                    .or_else(already_there)?;
                    q.execute(
                        "device_add",
                        Some(json!({
                            "driver": "virtio-net-pci",
                            "netdev": netdev_id(n.id),
                            "mac": n.mac,
                            "id": device_id(n.id),
                            "romfile": "",
                        })),
                    )
                    .await?;
                    tracing::info!(vm = %id, nic = %n.id, tap = %n.tap, "NIC hot-plugged");
                }
            }
            let keep: Vec<String> = wanted.iter().map(|n| device_id(n.id)).collect();
            let mut gone: Vec<String> = devices
                .iter()
                .filter(|d| d.starts_with("nic") && !keep.contains(d))
                .cloned()
                .collect();
            if !wanted.is_empty() && devices.iter().any(|d| d == USER_NIC) {
                gone.push(USER_NIC.to_string());
            }
            for dev in gone {
                match q.execute("device_del", Some(json!({ "id": dev }))).await {
                    Ok(_) => {}
                    Err(Error::Qmp { desc, .. }) if desc.contains("process of unplug") => {}
                    Err(e) => return Err(e),
                }
                let d = dev.clone();
                q.wait_event("DEVICE_DELETED", UNPLUG_TIMEOUT, move |data: &Value| {
                    data["device"].as_str() == Some(d.as_str())
                })
                .await?;
                let netdev = match dev.strip_prefix("nic") {
                    Some(hex) if dev != USER_NIC => format!("nd{hex}"),
                    _ => "net0".to_string(),
                };
                q.execute("netdev_del", Some(json!({ "id": netdev })))
                    .await
                    .ok();
                tracing::info!(vm = %id, device = %dev, "NIC unplugged");
            }
        }
        if spec.nics != wanted {
            spec.nics = wanted;
            self.write_spec(&spec).await?;
        }
        Ok(())
    }
}

fn already_there(e: Error) -> Result<Value> {
    match e {
        Error::Qmp { desc, .. } if desc.contains("Duplicate") || desc.contains("already") => {
            Ok(Value::Null)
        }
        e => Err(e),
    }
}

async fn peripherals(q: &mut crate::qmp::Qmp) -> Result<Vec<String>> {
    let list = q
        .execute("qom-list", Some(json!({ "path": "/machine/peripheral" })))
        .await?;
    Ok(list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}
