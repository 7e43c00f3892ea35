//! Choosing the accelerator: KVM when it really boots a guest, TCG otherwise. Nested
//! hosts may offer `/dev/kvm` and still hang guests in early boot, so `/dev/kvm`
//! existing proves nothing; the probe boots the template and waits for its ready marker.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::hypervisor::{opt, KERNEL_CMDLINE};
use crate::template::Template;

/// How QEMU runs guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation (`-accel kvm -cpu host`).
    Kvm,
    /// Software emulation (`-accel tcg`): slower, works everywhere.
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How long the KVM probe guest may take to print its ready marker.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// Boots `template` under KVM (throw-away disk, serial on a pipe) and returns
/// [`Accel::Kvm`] if its ready marker appears within `timeout`; otherwise logs why and
/// returns [`Accel::Tcg`].
pub async fn probe_accel(qemu_bin: &Path, template: &Template, timeout: Duration) -> Accel {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        tracing::warn!("/dev/kvm is not usable; falling back to TCG (software emulation)");
        return Accel::Tcg;
    }
    let mut c = Command::new(qemu_bin);
    c.args(["-machine", "pc", "-accel", "kvm", "-cpu", "host"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-m", "128", "-smp", "1", "-serial", "stdio"])
        .arg("-kernel")
        .arg(template.kernel())
        .arg("-initrd")
        .arg(template.initrd())
        .args([
            "-append",
            &format!("{KERNEL_CMDLINE} zy.hostname=kvm-probe"),
        ])
        .arg("-drive")
        .arg(format!(
            "file={},format=qcow2,if=virtio,snapshot=on",
            opt(&template.root_disk())
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            tracing::warn!(error = %e, "cannot run QEMU for the KVM probe; falling back to TCG");
            return Accel::Tcg;
        }
    };
    let marker = template.manifest.ready_marker.clone();
    let seen = async {
        let Some(out) = child.stdout.take() else {
            return false;
        };
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains(&marker) {
                return true;
            }
        }
        false
    };
    let outcome = tokio::time::timeout(timeout, seen).await;
    let _ = child.kill().await;
    match outcome {
        Ok(true) => {
            tracing::info!("KVM boots guests; using KVM");
            Accel::Kvm
        }
        Ok(false) => {
            tracing::warn!(
                "QEMU with KVM exited before the guest was ready (unsupported CPU or nested \
                 virtualisation?); falling back to TCG (software emulation)"
            );
            Accel::Tcg
        }
        Err(_) => {
            tracing::warn!(
                timeout_s = timeout.as_secs_f64(),
                "a KVM guest did not reach its ready marker in time (nested virtualisation \
                 hangs early boot?); falling back to TCG (software emulation)"
            );
            Accel::Tcg
        }
    }
}
