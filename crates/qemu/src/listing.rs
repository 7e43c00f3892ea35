//! Which VMs a host has, and changing a stopped VM's recorded spec (what the next start
//! uses), for the agent.

use crate::error::{Error, Result};
use crate::spec::{VmSpec, VmStatus};
use crate::Hypervisor;
use uuid::Uuid;

impl Hypervisor {
    /// The ids of every VM directory on this host.
    pub async fn list(&self) -> Result<Vec<Uuid>> {
        let vms = self.data_dir.join("vms");
        let mut rd = tokio::fs::read_dir(&vms)
            .await
            .map_err(|e| Error::io(format!("read {}", vms.display()), e))?;
        let mut ids = Vec::new();
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| Error::io(format!("read {}", vms.display()), e))?
        {
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Records a new spec for an existing VM (new vCPU or memory take effect at its next
    /// start). The disk is not touched: grow it with [`Hypervisor::resize_disk`].
    pub async fn update_spec(&self, spec: &VmSpec) -> Result<()> {
        spec.validate()?;
        if self.status(spec.id).await == VmStatus::Missing {
            return Err(Error::not_found(format!("VM {}", spec.id)));
        }
        let _g = self.lock(spec.id).await;
        let mut current = self.spec(spec.id).await?;
        current.vcpus = spec.vcpus;
        current.memory_mib = spec.memory_mib;
        current.hostname = spec.hostname.clone();
        current.user_data = spec.user_data.clone();
        current.restart_on_crash = spec.restart_on_crash;
        self.write_spec(&current).await
    }
}
