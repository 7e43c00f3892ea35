//! Self-fencing. The control plane renews this host's lease with every heartbeat it pulls
//! (`POST /v1/host/lease`). When the lease runs out — the control plane cannot reach us,
//! or has declared this host failed and stopped renewing — the agent kills every guest
//! whose root disk lives on shared storage, because the control plane will restart those
//! guests on another host once the lease's time has passed. So a partitioned host that is
//! still alive never runs a second copy of a guest. Guests on local disks cannot run
//! anywhere else and are left alone.
//!
//! The lease's end is kept on disk (`<data>/agent/fence-lease`, wall-clock ms), so an agent
//! restarted during a partition still knows its lease ran out and neither keeps nor
//! restarts shared guests.

use crate::AgentState;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zy_compute::agent::{FenceLease, LEASE_MAX_SKEW_MS};

/// How often the lease is checked.
pub const CHECK: Duration = Duration::from_millis(500);
/// Longest lease the agent accepts (a control plane asking for more is refused).
pub const MAX_LEASE_MS: u64 = 120_000;

pub struct Lease {
    /// `None`: never granted (no HA control plane yet); `Some(t)`: valid until `t`.
    until: Mutex<Option<Instant>>,
    file: PathBuf,
    fenced: AtomicU32,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Lease {
    /// The lease as the last run of the agent left it.
    pub fn load(data_dir: &Path) -> Lease {
        let file = data_dir.join("agent").join("fence-lease");
        let until = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .map(|end_ms| {
                let left = end_ms - now_ms();
                if left > 0 {
                    Instant::now() + Duration::from_millis(left as u64)
                } else {
                    Instant::now()
                }
            });
        Lease {
            until: Mutex::new(until),
            file,
            fenced: AtomicU32::new(0),
        }
    }

    /// Applies a grant; refuses one that is out of bounds or arrived too late.
    pub fn grant(&self, g: FenceLease) -> Result<(), String> {
        if g.valid_ms == 0 || g.valid_ms > MAX_LEASE_MS {
            return Err(format!("valid_ms must be 1–{MAX_LEASE_MS}"));
        }
        let skew = now_ms() - g.issued_at_ms;
        if skew.abs() > LEASE_MAX_SKEW_MS {
            return Err(format!(
                "the grant was issued {skew} ms from this host's clock (at most {LEASE_MAX_SKEW_MS}): check the clocks (NTP)"
            ));
        }
        // Counted from when it was issued, so a late grant is worth less, never more.
        let valid = g.valid_ms as i64 - skew.max(0);
        if valid <= 0 {
            return Ok(());
        }
        let end = Instant::now() + Duration::from_millis(valid as u64);
        {
            let mut u = self.until.lock().unwrap_or_else(|e| e.into_inner());
            if u.is_some_and(|old| old > end) {
                return Ok(());
            }
            *u = Some(end);
        }
        self.persist(now_ms() + valid);
        Ok(())
    }

    fn persist(&self, end_ms: i64) {
        let tmp = self.file.with_extension("tmp");
        let r = std::fs::write(&tmp, end_ms.to_string())
            .and_then(|_| std::fs::rename(&tmp, &self.file));
        if let Err(e) = r {
            tracing::warn!(error = %e, file = %self.file.display(), "cannot record the fence lease");
        }
    }

    /// The lease was granted once and has run out.
    pub fn expired(&self) -> bool {
        let u = self.until.lock().unwrap_or_else(|e| e.into_inner());
        u.is_some_and(|t| Instant::now() >= t)
    }

    /// Whether a shared-storage guest may run here: never granted (HA not in use) or valid.
    pub fn may_run_shared(&self) -> bool {
        !self.expired()
    }

    pub fn left_ms(&self) -> Option<u64> {
        let u = self.until.lock().unwrap_or_else(|e| e.into_inner());
        u.map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64)
    }

    pub fn fenced(&self) -> u32 {
        self.fenced.load(Ordering::Relaxed)
    }
}

/// Kills every running guest whose root disk is on shared storage.
pub async fn fence_shared(state: &AgentState) {
    let Ok(ids) = state.hv.list().await else {
        return;
    };
    for id in ids {
        if !matches!(state.hv.status(id).await, zy_qemu::VmStatus::Running { .. }) {
            continue;
        }
        let shared = state
            .hv
            .spec(id)
            .await
            .is_ok_and(|s| s.shared_dir.is_some());
        if !shared {
            continue;
        }
        match state.hv.fence(id).await {
            Ok(true) => {
                state.fence.fenced.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(vm = %id, error = %e, "cannot fence a VM"),
        }
    }
}
