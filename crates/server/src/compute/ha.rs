//! High availability with fencing (the `ha_monitor` task, one replica).
//!
//! 1. **Detect.** A real host whose agent no replica has heard from for [`DETECT`] (or
//!    any host set `down`) is declared failed: `ok → fencing`, in the database. From then
//!    on no replica renews the host's self-fencing lease (`monitor.rs` renews only hosts
//!    whose HA state is `ok`).
//! 2. **Fence.** The agent kills its shared-storage guests once its lease runs out
//!    (`zy_agent::fence`). The lease is [`LEASE`] long from the instant the control plane
//!    issued the last grant; a grant issued by a replica that had not yet seen the
//!    `fencing` state can be at most one poll pass ([`monitor::INTERVAL`] plus
//!    [`HEARTBEAT_TIMEOUT`]) later, and the agent refuses grants whose issue time is more
//!    than `LEASE_MAX_SKEW_MS` off its own clock. So after [`fence_wait`] every guest of the
//!    host is surely stopped — whether the host died or is alive behind a partition — and
//!    the host becomes `failed` (and `down`). The shared disk's own lock (QEMU's image
//!    locking on the shared file system) is the second guard: a copy still running keeps
//!    the new one from opening the disk, and the restart waits.
//! 3. **Recover.** Instances on the failed host, highest priority first: those whose root
//!    disk is on shared storage (and with no volume on the failed host) are placed on
//!    another host of the same zone through the scheduler — capacity claimed and
//!    anti-affinity kept in one transaction with the move — and restarted by the
//!    `instance_recover` saga (or left stopped, by policy); those on the host's own disk
//!    become `lost`, with the host and the reason. Every instance's detection, fence and
//!    running-again times are kept in `ha_recoveries`.
//! 4. **Return.** A failed host heard from again has the guests that now run elsewhere
//!    removed (never their shared disks) and its HA state goes back to `ok`; it stays
//!    `down` until the platform admin enables it.
//!
//! Simulated hosts have no agent: they are declared failed when set `down`, and their
//! simulated machine is gone at once, so they are fenced without waiting.

use super::monitor;
use crate::compute::sagas::instance::{demand, place_request};
use crate::compute::sagas::recover::{RecoverParams, RECOVER};
use crate::compute::Compute;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use zy_compute::agent::{HostReport, LEASE_MAX_SKEW_MS};
use zy_compute::PowerState;
use zy_model::compute::{GroupPolicy, HaPolicy, HostState, InstanceState};
use zy_model::ha::{HaRecovery, RecoveryOutcome};
use zy_model::id::HaRecoveryId;
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::ha::{self, Stranded};
use zy_store::{instances, Store};

/// Heartbeats missed for this long declare a real host failed (vSphere: 15 s).
pub const DETECT: Duration = Duration::from_secs(8);
/// The self-fencing lease each heartbeat grants.
pub const LEASE: Duration = Duration::from_secs(8);
/// The deadline of one heartbeat call.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// From the failure's declaration until every guest of the host has surely stopped: the
/// lease, one late poll pass, the clock skew a grant may show, and the agent's check.
pub fn fence_wait() -> Duration {
    LEASE
        + monitor::INTERVAL
        + HEARTBEAT_TIMEOUT
        + Duration::from_millis(LEASE_MAX_SKEW_MS as u64)
        + AGENT_CHECK
}

/// How often an agent checks its lease (`zy_agent::fence::CHECK`, which the server does
/// not link; a test keeps the two equal).
const AGENT_CHECK: Duration = Duration::from_millis(500);

/// How many stranded instances one pass handles.
const BATCH: i64 = 1000;

pub struct HaMonitor {
    compute: Arc<Compute>,
    store: Store,
    /// When this task began: heartbeats missed while no control plane ran do not count.
    started: Timestamp,
}

pub fn task(compute: Arc<Compute>, store: Store) -> Arc<dyn crate::tasks::Task> {
    Arc::new(HaMonitor {
        compute,
        store,
        started: Timestamp::now(),
    })
}

#[derive(Default, serde::Serialize)]
struct Pass {
    declared: u32,
    fenced: u32,
    recovering: u32,
    lost: u32,
    failed: u32,
    cleaned: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_back: Option<String>,
}

impl crate::tasks::Task for HaMonitor {
    fn name(&self) -> &'static str {
        "ha_monitor"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let mut pass = Pass::default();
            self.detect(&mut pass).await?;
            self.fence(&mut pass).await?;
            self.recover(&mut pass).await?;
            self.reclaim(&mut pass).await?;
            if pass.recovering > 0 {
                self.compute.wake.notify_one();
            }
            serde_json::to_value(&pass).map_err(|e| Error::internal(e.to_string()))
        })
    }
}

fn micros(d: Duration) -> i64 {
    d.as_micros() as i64
}

impl HaMonitor {
    async fn detect(&self, pass: &mut Pass) -> Result<(), Error> {
        let now = Timestamp::now();
        let mut suspects = ha::suspects(&self.store, Timestamp(now.0 - micros(DETECT))).await?;
        // Heartbeats count from this task's start at the earliest (a host set down by an
        // operator counts at once).
        if now.0 - self.started.0 < micros(DETECT) {
            suspects.retain(|s| s.state == HostState::Down);
        }
        if suspects.is_empty() {
            return Ok(());
        }
        // When most real hosts go silent at once, the likelier failure is the control
        // plane's own network: fencing them all would stop the whole estate for nothing.
        let silent = suspects
            .iter()
            .filter(|s| s.last_seen.is_some() && s.state != HostState::Down)
            .count() as i64;
        let with_agents = ha::agent_hosts(&self.store).await?;
        if silent >= 2 && silent * 2 > with_agents {
            pass.held_back = Some(format!(
                "{silent} of {with_agents} hosts silent at once: the control plane may be isolated; not fencing"
            ));
            tracing::error!(
                silent,
                with_agents,
                "most hosts are silent at once; HA holds back (check the control plane's network)"
            );
            return Ok(());
        }
        for s in suspects {
            let mut tx = self.store.begin_write().await?;
            if ha::begin_fencing(&mut tx, s.host_id, s.last_seen, now).await? {
                crate::app::commit_system(
                    tx,
                    "ha_host_failed",
                    "host",
                    &s.host_id.to_string(),
                    serde_json::json!({ "last_seen": s.last_seen, "fence_wait_ms": fence_wait().as_millis() as u64 }),
                )
                .await?;
                pass.declared += 1;
                tracing::error!(host = %s.host_id, last_seen = ?s.last_seen, "host declared failed; fencing");
            }
        }
        Ok(())
    }

    async fn fence(&self, pass: &mut Pass) -> Result<(), Error> {
        let now = Timestamp::now();
        for f in ha::fencing(&self.store).await? {
            let simulated = self
                .compute
                .drivers
                .get(f.provider_id)
                .map(|d| d.kind() != "kvm")
                .unwrap_or(false);
            let wait = if simulated {
                Duration::ZERO
            } else {
                fence_wait()
            };
            if now.0 - f.since.0 < micros(wait) {
                continue;
            }
            let mut tx = self.store.begin_write().await?;
            if ha::fail_host(&mut tx, f.host_id, now).await? {
                crate::app::commit_system(
                    tx,
                    "ha_host_fenced",
                    "host",
                    &f.host_id.to_string(),
                    serde_json::json!({ "detected_at": f.since }),
                )
                .await?;
                pass.fenced += 1;
                if let Ok(Some(h)) = zy_store::inventory::host(self.store.pool(), f.host_id).await {
                    self.compute.placement.upsert(&[h]);
                }
                tracing::warn!(host = %f.host_id, "host fenced; recovering its instances");
            }
        }
        Ok(())
    }

    async fn recover(&self, pass: &mut Pass) -> Result<(), Error> {
        for s in ha::stranded(&self.store, BATCH).await? {
            if let Err(e) = self.recover_one(&s, pass).await {
                tracing::warn!(instance = %s.row.instance.id, error = %e, "cannot recover an instance yet");
            }
        }
        Ok(())
    }

    async fn recover_one(&self, s: &Stranded, pass: &mut Pass) -> Result<(), Error> {
        let i = &s.row.instance;
        let Some(failed) = i.host_id else {
            return Ok(());
        };
        let policy = i.ha_policy.effective(s.group_policy);
        let record = |outcome, target, reason: Option<String>| HaRecovery {
            id: HaRecoveryId::new(),
            host_id: failed,
            host_name: String::new(),
            instance_id: i.id,
            instance_name: i.name.clone(),
            last_seen_at: s.last_seen,
            detected_at: s.detected_at,
            fenced_at: s.fenced_at,
            restarted_at: None,
            target_host_id: target,
            policy,
            priority: i.ha_priority,
            outcome,
            reason,
            recovery_secs: None,
        };
        let lose = |why: String| async move {
            let mut tx = self.store.begin_write_for(&i.id.to_string()).await?;
            let from = i.state;
            if !instances::transition(&mut tx, i.id, from, InstanceState::Lost, &why).await? {
                return Ok::<_, Error>(());
            }
            instances::set_error(&mut tx, i.id, &why).await?;
            ha::insert_recovery(
                &mut tx,
                &record(RecoveryOutcome::Lost, None, Some(why.clone())),
            )
            .await?;
            crate::app::commit_system(
                tx,
                "ha_instance_lost",
                "instance",
                &i.id.to_string(),
                serde_json::json!({ "host_id": failed, "reason": why }),
            )
            .await
        };
        if s.row.shared_dir.is_none() {
            lose(format!(
                "宿主机 {failed} 故障，云主机的磁盘在该宿主机本地，无法在其他宿主机上恢复 / host {failed} failed and the instance's disk is on that host only; it cannot run elsewhere until the host returns"
            ))
            .await?;
            pass.lost += 1;
            return Ok(());
        }
        if s.volumes > 0 {
            lose(format!(
                "宿主机 {failed} 故障，云主机挂载的云硬盘在该宿主机本地 / host {failed} failed and the instance's volumes are on that host only"
            ))
            .await?;
            pass.lost += 1;
            return Ok(());
        }
        let power = if i.state == InstanceState::Running
            || i.state == InstanceState::Recovering && i.desired == InstanceState::Running
        {
            match policy {
                HaPolicy::LeaveStopped => PowerState::Stopped,
                _ => PowerState::Running,
            }
        } else {
            PowerState::Stopped
        };
        let (Some(zone), Some(provider)) = (i.zone_id, i.provider_id) else {
            return Ok(());
        };
        let mut req = place_request(&self.compute, &self.store, &s.row).await?;
        // The disk is on the zone's shared storage: the new host must be in the same zone.
        req.zone = Some(zone);
        req.providers = Some(vec![provider]);
        let meta = match self.compute.placement.propose_move(&req, failed, None) {
            Ok(m) => m,
            Err(e) => {
                let why = format!(
                    "宿主机 {failed} 故障后没有可用宿主机接收：{} / no host can take it after host {failed} failed: {}",
                    e.message.zh, e.message.en
                );
                let mut tx = self.store.begin_write_for(&i.id.to_string()).await?;
                if instances::transition(&mut tx, i.id, i.state, InstanceState::Error, &why).await?
                {
                    instances::set_error(&mut tx, i.id, &why).await?;
                    ha::insert_recovery(
                        &mut tx,
                        &record(RecoveryOutcome::Failed, None, Some(why.clone())),
                    )
                    .await?;
                    crate::app::commit_system(
                        tx,
                        "ha_instance_not_recovered",
                        "instance",
                        &i.id.to_string(),
                        serde_json::json!({ "host_id": failed, "reason": why }),
                    )
                    .await?;
                    pass.failed += 1;
                }
                return Ok(());
            }
        };
        let unbook = || self.compute.placement.unbook(meta.id, &req);
        let r = async {
            let mut tx = self.store.begin_write_for(&i.id.to_string()).await?;
            if !zy_store::inventory::claim_capacity(&mut tx, meta.id, demand(i)).await? {
                return Ok(false);
            }
            if let Some((g, GroupPolicy::AntiAffinity)) = req.group {
                if !instances::take_anti_affinity_slot(&mut tx, g, meta.id, i.id).await? {
                    return Ok(false);
                }
            }
            if !ha::move_to(&mut tx, i.id, i.state, failed, meta.id, meta.zone)
                .await?
            {
                return Ok(false);
            }
            zy_store::inventory::release_capacity(&mut tx, failed, demand(i)).await?;
            instances::release_anti_affinity_slot_on(&mut tx, i.id, failed).await?;
            let rec = record(RecoveryOutcome::Pending, Some(meta.id), None);
            ha::insert_recovery(&mut tx, &rec).await?;
            let params = RecoverParams {
                recovery_id: rec.id,
                instance_id: i.id,
                failed_host_id: failed,
                target_host_id: meta.id,
                power_on: power == PowerState::Running,
            };
            if crate::saga::start(&mut tx, &RECOVER, &i.id.to_string(), &params)
                .await?
                .is_none()
            {
                return Ok(false);
            }
            crate::app::commit_system(
                tx,
                "ha_instance_recovering",
                "instance",
                &i.id.to_string(),
                serde_json::json!({ "from_host_id": failed, "to_host_id": meta.id, "power_on": params.power_on, "priority": i.ha_priority }),
            )
            .await?;
            Ok::<_, Error>(true)
        }
        .await;
        match r {
            Ok(true) => {
                pass.recovering += 1;
                if let Ok(Some(h)) = zy_store::inventory::host(self.store.pool(), meta.id).await {
                    self.compute.placement.upsert(&[h]);
                }
                Ok(())
            }
            Ok(false) => {
                unbook();
                if let Ok(Some(h)) = zy_store::inventory::host(self.store.pool(), meta.id).await {
                    self.compute.placement.upsert(&[h]);
                }
                Ok(())
            }
            Err(e) => {
                unbook();
                Err(e)
            }
        }
    }

    /// Failed hosts heard from again: remove the guests that run elsewhere now.
    async fn reclaim(&self, pass: &mut Pass) -> Result<(), Error> {
        for r in ha::returned(&self.store).await? {
            let Ok(report) = serde_json::from_str::<HostReport>(&r.report) else {
                continue;
            };
            let driver = self.compute.drivers.get(r.provider_id)?;
            let mut clean = true;
            for vm in &report.vms {
                let id = zy_model::id::InstanceId(vm.id);
                let stays = match instances::get(self.store.pool(), id).await? {
                    Some(row) => {
                        row.instance.host_id == Some(r.host_id)
                            && row.instance.state != InstanceState::Deleted
                    }
                    None => false,
                };
                if stays {
                    continue;
                }
                // Everything of the VM on this host but a shared disk (the same removal as
                // an abandoned incoming migration's): the guest runs elsewhere now.
                match driver.abort_incoming(vm.id, r.host_id.0).await {
                    Ok(()) => {
                        pass.cleaned += 1;
                        tracing::info!(host = %r.host_id, vm = %vm.id, "removed a stale guest from a returned host");
                    }
                    Err(e) => {
                        clean = false;
                        tracing::warn!(host = %r.host_id, vm = %vm.id, error = %e, "cannot remove a stale guest yet");
                    }
                }
            }
            if clean {
                let mut tx = self.store.begin_write().await?;
                if ha::host_ok(&mut tx, r.host_id).await? {
                    crate::app::commit_system(
                        tx,
                        "ha_host_returned",
                        "host",
                        &r.host_id.to_string(),
                        serde_json::json!({ "stale_guests_removed": pass.cleaned }),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_waits_longer_than_any_lease_a_late_grant_can_give() {
        // A grant issued at the latest one pass after the declaration, stretched by the
        // largest skew the agent accepts, plus the agent's check, ends before the wait.
        let latest_grant = monitor::INTERVAL + HEARTBEAT_TIMEOUT;
        let agent_end =
            latest_grant + LEASE + Duration::from_millis(LEASE_MAX_SKEW_MS as u64) + AGENT_CHECK;
        assert_eq!(AGENT_CHECK, zy_agent::fence::CHECK);
        assert!(fence_wait() >= agent_end);
        assert!(
            DETECT > monitor::INTERVAL * 2,
            "one slow poll must not fail a host"
        );
    }
}
