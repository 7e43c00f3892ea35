//! The replica's view for placement: the pure scheduler (`zy-scheduler`) over every host,
//! with the maps between database ids and the scheduler's dense numbers. It proposes a
//! host; the database claim decides. After a failed claim the host is re-read, so the
//! view converges on the truth; a full reload runs at start and periodically.

use std::collections::HashMap;
use std::sync::Mutex;
use zy_model::compute::{GroupPolicy, HostState, Strategy};
use zy_model::id::{HostId, ProviderId, ServerGroupId, ZoneId};
use zy_model::{t, Error, Text};
use zy_scheduler as sched;
use zy_store::inventory::HostRow;

/// Where a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMeta {
    pub id: HostId,
    pub zone: ZoneId,
    pub provider: ProviderId,
}

#[derive(Default)]
struct View {
    sched: sched::Scheduler,
    by_slot: HashMap<u32, HostMeta>,
    slot_of: HashMap<HostId, u32>,
    zones: HashMap<ZoneId, u32>,
    providers: HashMap<ProviderId, u32>,
    groups: HashMap<ServerGroupId, u64>,
}

impl View {
    fn zone_idx(&mut self, z: ZoneId) -> u32 {
        let n = self.zones.len() as u32;
        *self.zones.entry(z).or_insert(n)
    }
    fn provider_idx(&mut self, p: ProviderId) -> u32 {
        let n = self.providers.len() as u32;
        *self.providers.entry(p).or_insert(n)
    }
    fn group_idx(&mut self, g: ServerGroupId) -> u64 {
        let n = self.groups.len() as u64;
        *self.groups.entry(g).or_insert(n)
    }
}

#[derive(Default)]
pub struct Placement {
    view: Mutex<View>,
}

/// What an instance needs from the scheduler.
#[derive(Debug, Clone)]
pub struct PlaceRequest {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    pub zone: Option<ZoneId>,
    /// Allowed providers (the user's preference intersected with the image's carriers).
    pub providers: Option<Vec<ProviderId>>,
    pub group: Option<(ServerGroupId, GroupPolicy)>,
}

pub(crate) fn to_state(s: HostState) -> sched::HostState {
    match s {
        HostState::Enabled => sched::HostState::Enabled,
        HostState::Maintenance => sched::HostState::Maintenance,
        HostState::Down => sched::HostState::Down,
    }
}

impl Placement {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, View>, Error> {
        self.view
            .lock()
            .map_err(|_| Error::internal("placement view poisoned"))
    }

    /// Rebuilds the view from the database: hosts with their usage, zone strategies and
    /// the members of server groups.
    pub async fn load(&self, store: &zy_store::Store) -> Result<(), Error> {
        let hosts = zy_store::inventory::hosts(store, None).await?;
        let zones = zy_store::inventory::zones(store).await?;
        let live = zy_store::instances::live(store).await?;
        let mut v = self.lock()?;
        *v = View::default();
        for z in &zones {
            let zi = v.zone_idx(z.id);
            if z.strategy == Strategy::Spread {
                v.sched.set_zone_strategy(zi, sched::Strategy::Spread);
            }
        }
        for h in &hosts {
            add(&mut v, h);
        }
        for i in live.iter().filter(|i| i.capacity_held) {
            if let (Some(g), Some(h)) = (i.instance.group_id, i.instance.host_id) {
                let gi = v.group_idx(g);
                if let Some(slot) = v.slot_of.get(&h).copied() {
                    let _ = v
                        .sched
                        .restore_member(sched::GroupId(gi), sched::HostId(slot));
                }
            }
        }
        Ok(())
    }

    /// Adds or refreshes hosts (after creating them, or after a lost claim race).
    pub fn upsert(&self, rows: &[HostRow]) {
        if let Ok(mut v) = self.lock() {
            for h in rows {
                add(&mut v, h);
            }
        }
    }

    pub fn set_zone_strategy(&self, zone: ZoneId, s: Strategy) {
        if let Ok(mut v) = self.lock() {
            let zi = v.zone_idx(zone);
            v.sched.set_zone_strategy(
                zi,
                if s == Strategy::Spread {
                    sched::Strategy::Spread
                } else {
                    sched::Strategy::Pack
                },
            );
        }
    }

    /// How many enabled hosts could take part in a request's zone/provider filter; for
    /// refusing impossible anti-affinity requests up front.
    pub fn enabled_hosts(&self, zone: Option<ZoneId>, providers: Option<&[ProviderId]>) -> usize {
        let Ok(v) = self.lock() else { return 0 };
        v.by_slot
            .iter()
            .filter(|(slot, m)| {
                zone.is_none_or(|z| z == m.zone)
                    && providers.is_none_or(|ps| ps.contains(&m.provider))
                    && v.sched
                        .host(sched::HostId(**slot))
                        .is_some_and(|h| h.state == sched::HostState::Enabled)
            })
            .count()
    }

    fn request(v: &mut View, r: &PlaceRequest) -> sched::Request {
        sched::Request {
            vcpus: r.vcpus,
            memory_mib: r.memory_mib,
            disk_gib: r.disk_gib,
            gpus: r.gpus,
            zone: r.zone.map(|z| v.zone_idx(z)),
            providers: r
                .providers
                .as_ref()
                .map(|ps| ps.iter().map(|p| v.provider_idx(*p)).collect()),
            group: r.group.map(|(g, p)| {
                let gi = v.group_idx(g);
                (
                    sched::GroupId(gi),
                    if p == GroupPolicy::Affinity {
                        sched::GroupPolicy::Affinity
                    } else {
                        sched::GroupPolicy::AntiAffinity
                    },
                )
            }),
        }
    }

    /// Proposes a host and books it in the view (undo with [`Placement::unbook`] if the
    /// database claim fails).
    pub fn propose(&self, r: &PlaceRequest) -> Result<HostMeta, Error> {
        let mut v = self.lock()?;
        // Each zone is filled by its own strategy (pack or spread), so a request without a
        // zone is placed zone by zone (in creation order) among the zones it may use.
        if r.zone.is_none() {
            let mut zones: Vec<ZoneId> = v
                .by_slot
                .values()
                .filter(|m| {
                    r.providers
                        .as_ref()
                        .is_none_or(|ps| ps.contains(&m.provider))
                })
                .map(|m| m.zone)
                .collect();
            zones.sort();
            zones.dedup();
            for z in zones {
                let req = Self::request(
                    &mut v,
                    &PlaceRequest {
                        zone: Some(z),
                        ..r.clone()
                    },
                );
                if let Ok(host) = v.sched.place_and_claim(&req) {
                    return v
                        .by_slot
                        .get(&host.0)
                        .copied()
                        .ok_or_else(|| Error::internal("scheduler chose an unknown host"));
                }
            }
        }
        // One zone asked for, or none fits: the scheduler over all of them explains why.
        let req = Self::request(&mut v, r);
        let host = v.sched.place_and_claim(&req).map_err(no_valid_host)?;
        v.by_slot
            .get(&host.0)
            .copied()
            .ok_or_else(|| Error::internal("scheduler chose an unknown host"))
    }

    /// Takes back a booking (the database said no, or the instance was released).
    pub fn unbook(&self, host: HostId, r: &PlaceRequest) {
        if let Ok(mut v) = self.lock() {
            let req = Self::request(&mut v, r);
            if let Some(slot) = v.slot_of.get(&host).copied() {
                let _ = v.sched.release(sched::HostId(slot), &req);
            }
        }
    }

    /// Proposes the target of a live migration of an instance on `source`, with the same
    /// filters as a create (zone, provider, capacity with overcommit, GPU, affinity,
    /// anti-affinity), and books it. `target` is the operator's choice, checked by the
    /// same filters; otherwise the scheduler chooses among every host but the source.
    pub fn propose_move(
        &self,
        r: &PlaceRequest,
        source: HostId,
        target: Option<HostId>,
    ) -> Result<HostMeta, Error> {
        let mut v = self.lock()?;
        let req = Self::request(&mut v, r);
        let chosen = match target {
            Some(t) => {
                let slot = v
                    .slot_of
                    .get(&t)
                    .copied()
                    .ok_or_else(|| Error::not_found("host", t))?;
                v.sched
                    .claim(sched::HostId(slot), &req)
                    .map_err(|e| match e {
                        sched::ClaimError::Rejected { filter, .. } => Error::conflict(t!(
                            "目标宿主机不满足放置条件（{}）" ; "the target host does not pass the placement filters ({})",
                            filter.as_str()
                        ))
                        .with_details(serde_json::json!({ "reason": "no_valid_host", "filter": filter.as_str() })),
                        sched::ClaimError::UnknownHost(_) => Error::not_found("host", t),
                    })?;
                slot
            }
            None => {
                // The source must not be chosen: out of service in the view for this one
                // decision, under the view's lock.
                let src = v.slot_of.get(&source).copied().map(sched::HostId);
                let before = src.and_then(|h| v.sched.host(h).map(|x| x.state));
                if let Some(h) = src {
                    let _ = v.sched.set_state(h, sched::HostState::Maintenance);
                }
                let placed = v.sched.place_and_claim(&req);
                if let (Some(h), Some(st)) = (src, before) {
                    let _ = v.sched.set_state(h, st);
                }
                placed.map_err(no_valid_host)?.0
            }
        };
        v.by_slot
            .get(&chosen)
            .copied()
            .ok_or_else(|| Error::internal("scheduler chose an unknown host"))
    }

    pub fn set_state(&self, host: HostId, s: HostState) {
        if let Ok(mut v) = self.lock() {
            if let Some(slot) = v.slot_of.get(&host).copied() {
                let _ = v.sched.set_state(sched::HostId(slot), to_state(s));
            }
        }
    }
}

fn add(v: &mut View, h: &HostRow) {
    let zi = v.zone_idx(h.host.zone_id);
    let pi = v.provider_idx(h.host.provider_id);
    let host = sched::Host {
        id: sched::HostId(h.slot),
        zone: zi,
        provider: pi,
        state: to_state(h.host.state),
        vcpus: h.host.vcpus,
        memory_mib: h.host.memory_mib,
        disk_gib: h.host.disk_gib,
        gpus: h.host.gpus,
        cpu_ratio_permille: h.host.cpu_ratio_permille,
        mem_ratio_permille: h.host.mem_ratio_permille,
    };
    let used = sched::Usage {
        vcpus: h.host.used_vcpus,
        memory_mib: h.host.used_memory_mib,
        disk_gib: h.host.used_disk_gib,
        gpus: h.host.used_gpus,
    };
    v.sched.add_host(host, used);
    v.by_slot.insert(
        h.slot,
        HostMeta {
            id: h.host.id,
            zone: h.host.zone_id,
            provider: h.host.provider_id,
        },
    );
    v.slot_of.insert(h.host.id, h.slot);
}

/// Turns the scheduler's explanation into an error a person can act on.
pub fn no_valid_host(e: sched::NoValidHost) -> Error {
    let reason: Text = match e.main_reason() {
        Some(sched::Filter::AntiAffinity) => t!(
            "反亲和主机组的成员数超过了可用宿主机数，请减少数量或改用其他可用区",
            "the anti-affinity group has more members than there are usable hosts; create fewer or choose another zone"
        ),
        Some(sched::Filter::Affinity) => t!("亲和主机组所在的宿主机已没有足够资源", "the affinity group's host has no room left"),
        Some(sched::Filter::Zone) | Some(sched::Filter::Provider) => {
            t!("所选可用区或云服务商中没有可用的宿主机", "no usable host in the chosen zone or provider")
        }
        Some(sched::Filter::State) => t!("没有处于启用状态的宿主机", "no host is enabled"),
        Some(sched::Filter::Gpu) => t!("没有剩余 GPU 足够的宿主机", "no host has enough free GPUs"),
        _ => t!("资源池容量不足，没有宿主机能容纳该规格", "not enough capacity: no host can take this flavor"),
    };
    let rejected: serde_json::Map<String, serde_json::Value> = e
        .rejected
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| (f.as_str().to_string(), serde_json::json!(n)))
        .collect();
    Error::conflict(reason).with_details(
        serde_json::json!({ "reason": "no_valid_host", "hosts": e.hosts, "rejected": rejected }),
    )
}
