//! `zhengyun admin check`: verifies the invariants the sagas promise and reports every
//! discrepancy — per-host allocations equal the sum of the live instances placed there;
//! quota use equals the live resources in each department and project; no disk on a
//! provider without a live instance that owns it, and no live instance without its disk;
//! no instance left between states (or with a desired state it does not have) without a
//! saga working on it; no volume attached to an instance that is gone; no anti-affinity
//! slot held on a host its instance is not on; an instance in the recycle bin wants to be
//! stopped (or deleted, once purged), has a purge time and still holds its quota and its
//! host's capacity (both are counted above like any live instance's); an instance whose
//! lease ended does not want to run.

use super::Compute;
use std::collections::{HashMap, HashSet};
use zy_model::compute::InstanceState;
use zy_model::Error;
use zy_store::Store;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Discrepancy {
    /// `host_allocation`, `quota_usage`, `orphaned_disk`, `missing_disk`, `stuck_instance`,
    /// `recycle_bin`, `lease`, …
    pub kind: String,
    /// What it is about, e.g. `host <id>` or `project <id>`.
    pub subject: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub ok: bool,
    pub hosts_checked: usize,
    pub instances_checked: usize,
    pub quotas_checked: usize,
    pub discrepancies: Vec<Discrepancy>,
}

fn d(kind: &str, subject: String, expected: String, actual: String) -> Discrepancy {
    Discrepancy {
        kind: kind.into(),
        subject,
        expected,
        actual,
    }
}

pub async fn run(c: &Compute, store: &Store) -> Result<CheckReport, Error> {
    let hosts = zy_store::inventory::hosts(store, None).await?;
    let live = zy_store::instances::live(store).await?;
    let quotas = zy_store::quotas::all(store).await?;
    let volumes = zy_store::volumes::all(store).await?;
    let pools = zy_store::inventory::pools(store).await?;
    let mut out = Vec::new();

    let mut per_host: HashMap<String, (i64, i64, i64, i64)> = HashMap::new();
    for r in live.iter().filter(|r| r.capacity_held) {
        if let Some(h) = r.instance.host_id {
            let e = per_host.entry(h.to_string()).or_default();
            e.0 += r.instance.vcpus as i64;
            e.1 += r.instance.memory_mib as i64;
            e.2 += r.instance.disk_gib as i64;
            e.3 += r.instance.gpus as i64;
        }
    }
    for h in &hosts {
        let want = per_host
            .get(&h.host.id.to_string())
            .copied()
            .unwrap_or_default();
        let have = (
            h.host.used_vcpus as i64,
            h.host.used_memory_mib as i64,
            h.host.used_disk_gib as i64,
            h.host.used_gpus as i64,
        );
        if want != have {
            out.push(d(
                "host_allocation",
                format!("host {} ({})", h.host.id, h.host.name),
                format!("{want:?}"),
                format!("{have:?}"),
            ));
        }
    }

    // (scope type, id) → (instances, vCPU, memory MiB, disk GiB, volumes) in use.
    type Use = (i64, i64, i64, i64, i64);
    let mut per_scope: HashMap<(String, String), Use> = HashMap::new();
    for v in &volumes {
        for key in [
            ("department".to_string(), v.department_id.to_string()),
            ("project".to_string(), v.project_id.to_string()),
        ] {
            let e = per_scope.entry(key).or_default();
            e.3 += v.size_gib as i64;
            e.4 += 1;
        }
    }
    let mut per_pool: HashMap<String, i64> = HashMap::new();
    for v in &volumes {
        *per_pool.entry(v.pool_id.to_string()).or_default() += v.size_gib as i64;
    }
    for p in &pools {
        let want = per_pool.get(&p.id.to_string()).copied().unwrap_or_default();
        if want != p.used_gib as i64 {
            out.push(d(
                "pool_allocation",
                format!("storage pool {} ({})", p.id, p.name),
                want.to_string(),
                p.used_gib.to_string(),
            ));
        }
    }
    for r in live.iter().filter(|r| r.quota_held) {
        let i = &r.instance;
        for key in [
            ("department".to_string(), i.department_id.to_string()),
            ("project".to_string(), i.project_id.to_string()),
        ] {
            let e = per_scope.entry(key).or_default();
            e.0 += 1;
            e.1 += i.vcpus as i64;
            e.2 += i.memory_mib as i64;
            e.3 += i.disk_gib as i64;
        }
    }
    for q in &quotas {
        let want = per_scope
            .get(&(q.scope_type.clone(), q.scope_id.clone()))
            .copied()
            .unwrap_or_default();
        let have = (
            q.used.instances,
            q.used.vcpus,
            q.used.memory_mib,
            q.used.disk_gib,
            q.used.volumes,
        );
        if want != have {
            out.push(d(
                "quota_usage",
                format!("{} {}", q.scope_type, q.scope_id),
                format!("{want:?}"),
                format!("{have:?}"),
            ));
        }
    }

    // Disks on the simulated providers against the instances that should own them.
    let owners: HashSet<(String, String)> = live
        .iter()
        .filter(|r| r.instance.state != InstanceState::Error)
        .filter_map(|r| {
            r.instance
                .host_id
                .map(|h| (h.to_string(), r.instance.id.to_string()))
        })
        .collect();
    let mut on_disk = HashSet::new();
    for (_, sim) in c.drivers.all_sims() {
        for (host, inst) in sim.all_disks() {
            on_disk.insert((host.to_string(), inst.to_string()));
            if !owners.contains(&(host.to_string(), inst.to_string())) {
                out.push(d(
                    "orphaned_disk",
                    format!("disk of instance {inst} on host {host}"),
                    "no disk".into(),
                    "disk exists".into(),
                ));
            }
        }
    }
    let sim_providers: HashSet<String> = c
        .drivers
        .all_sims()
        .into_iter()
        .map(|(p, _)| p.to_string())
        .collect();
    for r in &live {
        let i = &r.instance;
        let on_sim = i
            .provider_id
            .is_some_and(|p| sim_providers.contains(&p.to_string()));
        if on_sim && matches!(i.state, InstanceState::Running | InstanceState::Stopped) {
            if let Some(h) = i.host_id {
                if !on_disk.contains(&(h.to_string(), i.id.to_string())) {
                    out.push(d(
                        "missing_disk",
                        format!("instance {}", i.id),
                        "disk exists".into(),
                        "no disk".into(),
                    ));
                }
            }
        }
    }
    // Nothing half-done: whatever is between states has a saga on it.
    let busy: HashSet<String> = zy_store::sagas::active(store, 1_000_000)
        .await?
        .into_iter()
        .map(|s| s.target_id)
        .collect();
    for r in &live {
        let i = &r.instance;
        if busy.contains(&i.id.to_string()) {
            continue;
        }
        let settled = match i.state {
            InstanceState::Running | InstanceState::Stopped => {
                i.desired == i.state && !r.reboot_pending
            }
            InstanceState::Error => i.desired != InstanceState::Deleted,
            _ => false,
        };
        if !settled {
            out.push(d(
                "stuck_instance",
                format!("instance {} ({})", i.id, i.name),
                format!(
                    "state {} (desired) or a saga working on it",
                    i.desired.as_str()
                ),
                format!("state {}, no saga", i.state.as_str()),
            ));
        }
    }
    for r in &live {
        let i = &r.instance;
        if i.recycled_at.is_some() {
            let wants = matches!(i.desired, InstanceState::Stopped | InstanceState::Deleted);
            let holds = r.quota_held || i.state == InstanceState::Error;
            if !wants || i.purge_at.is_none() || !holds {
                out.push(d(
                    "recycle_bin",
                    format!("instance {} ({})", i.id, i.name),
                    "desired stopped or deleted, a purge time, quota held".into(),
                    format!(
                        "desired {}, purge_at {:?}, quota held {}",
                        i.desired.as_str(),
                        i.purge_at.map(|t| t.to_rfc3339()),
                        r.quota_held
                    ),
                ));
            }
        }
        if i.lease_ended && i.desired == InstanceState::Running {
            out.push(d(
                "lease",
                format!("instance {} ({})", i.id, i.name),
                "stopped: its lease ended".into(),
                "desired running".into(),
            ));
        }
    }
    for v in volumes.iter().filter(|v| v.recycled_at.is_some()) {
        if v.instance_id.is_some() || v.purge_at.is_none() {
            out.push(d(
                "recycle_bin",
                format!("volume {} ({})", v.id, v.name),
                "detached, with a purge time".into(),
                format!(
                    "attached to {:?}, purge_at {:?}",
                    v.instance_id,
                    v.purge_at.map(|t| t.to_rfc3339())
                ),
            ));
        }
    }
    let live_ids: HashMap<String, Option<String>> = live
        .iter()
        .map(|r| {
            (
                r.instance.id.to_string(),
                r.instance.host_id.map(|h| h.to_string()),
            )
        })
        .collect();
    for v in &volumes {
        if let Some(i) = v.instance_id {
            if !live_ids.contains_key(&i.to_string()) && !busy.contains(&v.id.to_string()) {
                out.push(d(
                    "volume_attachment",
                    format!("volume {} ({})", v.id, v.name),
                    "attached to a live instance".into(),
                    format!("attached to instance {i}, which is gone"),
                ));
            }
        }
    }
    for (instance, host) in zy_store::instances::anti_affinity_slots(store).await? {
        let on = live_ids.get(&instance).cloned().flatten();
        if on.as_deref() != Some(host.as_str()) && !busy.contains(&instance) {
            out.push(d(
                "anti_affinity_slot",
                format!("instance {instance}"),
                format!("slot on host {}", on.unwrap_or_else(|| "none".into())),
                format!("slot on host {host}"),
            ));
        }
    }
    Ok(CheckReport {
        ok: out.is_empty(),
        hosts_checked: hosts.len(),
        instances_checked: live.len(),
        quotas_checked: quotas.len(),
        discrepancies: out,
    })
}
