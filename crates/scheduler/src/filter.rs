//! The filters, in the one order everything uses: placement, claims and the explanation of
//! a refusal all ask [`check`], so the index can never accept a host a claim would refuse,
//! and a refusal names the same filter a claim would.

use crate::group::Members;
use crate::host::{HostId, HostState, Slot, Usage};
use crate::request::{GroupPolicy, Request};

/// One reason a host cannot take an instance. The order of the variants is the order the
/// filters run in; a host is charged to the first one that rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    /// In maintenance or down.
    State,
    /// In another zone than the one asked for.
    Zone,
    /// Run by a provider the request does not allow.
    Provider,
    /// Not the host the affinity group's members are on.
    Affinity,
    /// Already holds a member of the anti-affinity group.
    AntiAffinity,
    CapacityVcpu,
    CapacityMemory,
    CapacityDisk,
    Gpu,
}

impl Filter {
    pub const ALL: [Filter; 9] = [
        Filter::State,
        Filter::Zone,
        Filter::Provider,
        Filter::Affinity,
        Filter::AntiAffinity,
        Filter::CapacityVcpu,
        Filter::CapacityMemory,
        Filter::CapacityDisk,
        Filter::Gpu,
    ];

    /// A stable name for API error details and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Filter::State => "state",
            Filter::Zone => "zone",
            Filter::Provider => "provider",
            Filter::Affinity => "affinity",
            Filter::AntiAffinity => "anti_affinity",
            Filter::CapacityVcpu => "capacity_vcpu",
            Filter::CapacityMemory => "capacity_memory",
            Filter::CapacityDisk => "capacity_disk",
            Filter::Gpu => "gpu",
        }
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request's group resolved once per decision, not once per host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupView<'a> {
    pub(crate) policy: GroupPolicy,
    pub(crate) members: Option<&'a Members>,
}

impl GroupView<'_> {
    /// An affinity group that already has members decides the candidates by itself.
    pub(crate) fn pinned(&self) -> Option<&Members> {
        match (self.policy, self.members) {
            (GroupPolicy::Affinity, Some(members)) if !members.is_empty() => Some(members),
            _ => None,
        }
    }
}

/// Whether `host` may take the instance, or the first filter that says no.
pub(crate) fn check(
    host: HostId,
    slot: &Slot,
    request: &Request,
    demand: &Usage,
    group: Option<GroupView<'_>>,
) -> Result<(), Filter> {
    if slot.host.state != HostState::Enabled {
        return Err(Filter::State);
    }
    if request.zone.is_some_and(|zone| zone != slot.host.zone) {
        return Err(Filter::Zone);
    }
    if let Some(providers) = &request.providers {
        if !providers.contains(&slot.host.provider) {
            return Err(Filter::Provider);
        }
    }
    if let Some(group) = group {
        let member = group.members.is_some_and(|m| m.contains(host));
        match group.policy {
            GroupPolicy::Affinity if !member && group.pinned().is_some() => {
                return Err(Filter::Affinity)
            }
            GroupPolicy::AntiAffinity if member => return Err(Filter::AntiAffinity),
            _ => {}
        }
    }
    capacity(&slot.free(), demand)
}

/// Whether `demand` fits in `free`, or the first resource that is short. A resource the
/// instance does not need never rejects, even on a host already over its capacity.
pub(crate) fn capacity(free: &Usage, demand: &Usage) -> Result<(), Filter> {
    if demand.vcpus > free.vcpus {
        Err(Filter::CapacityVcpu)
    } else if demand.memory_mib > free.memory_mib {
        Err(Filter::CapacityMemory)
    } else if demand.disk_gib > free.disk_gib {
        Err(Filter::CapacityDisk)
    } else if demand.gpus > free.gpus {
        Err(Filter::Gpu)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Groups;
    use crate::host::Host;
    use crate::request::GroupId;

    fn slot(zone: u32, provider: u32, state: HostState) -> Slot {
        let host = Host {
            id: HostId(0),
            zone,
            provider,
            state,
            vcpus: 8,
            memory_mib: 16_384,
            disk_gib: 200,
            gpus: 1,
            cpu_ratio_permille: 2000,
            mem_ratio_permille: 1000,
        };
        Slot::new(host, Usage::ZERO, 0)
    }

    fn small() -> Request {
        Request {
            vcpus: 2,
            memory_mib: 4096,
            disk_gib: 40,
            ..Request::default()
        }
    }

    fn verdict(slot: &Slot, request: &Request) -> Result<(), Filter> {
        check(HostId(0), slot, request, &request.demand(), None)
    }

    #[test]
    fn maintenance_and_down_hosts_are_rejected_by_state() {
        for state in [HostState::Maintenance, HostState::Down] {
            assert_eq!(verdict(&slot(0, 0, state), &small()), Err(Filter::State));
        }
        assert_eq!(verdict(&slot(0, 0, HostState::Enabled), &small()), Ok(()));
    }

    #[test]
    fn zone_filter_only_applies_when_a_zone_is_asked_for() {
        let host = slot(2, 0, HostState::Enabled);
        let anywhere = small();
        let elsewhere = Request {
            zone: Some(1),
            ..small()
        };
        let here = Request {
            zone: Some(2),
            ..small()
        };
        assert_eq!(verdict(&host, &anywhere), Ok(()));
        assert_eq!(verdict(&host, &elsewhere), Err(Filter::Zone));
        assert_eq!(verdict(&host, &here), Ok(()));
    }

    #[test]
    fn provider_allow_list_is_honoured() {
        let host = slot(0, 7, HostState::Enabled);
        let others = Request {
            providers: Some(vec![1, 2]),
            ..small()
        };
        let ours = Request {
            providers: Some(vec![1, 7]),
            ..small()
        };
        let none = Request {
            providers: Some(vec![]),
            ..small()
        };
        assert_eq!(verdict(&host, &others), Err(Filter::Provider));
        assert_eq!(verdict(&host, &ours), Ok(()));
        assert_eq!(verdict(&host, &none), Err(Filter::Provider));
    }

    #[test]
    fn capacity_names_the_first_short_resource_with_overcommit() {
        let host = slot(0, 0, HostState::Enabled);
        // 8 physical cores at 2.0 give 16 vCPUs.
        let sixteen = Request {
            vcpus: 16,
            ..small()
        };
        let seventeen = Request {
            vcpus: 17,
            ..small()
        };
        let memory = Request {
            memory_mib: 16_385,
            ..small()
        };
        let disk = Request {
            disk_gib: 201,
            ..small()
        };
        let gpus = Request { gpus: 2, ..small() };
        assert_eq!(verdict(&host, &sixteen), Ok(()));
        assert_eq!(verdict(&host, &seventeen), Err(Filter::CapacityVcpu));
        assert_eq!(verdict(&host, &memory), Err(Filter::CapacityMemory));
        assert_eq!(verdict(&host, &disk), Err(Filter::CapacityDisk));
        assert_eq!(verdict(&host, &gpus), Err(Filter::Gpu));
    }

    #[test]
    fn group_filters_follow_membership() {
        let host = slot(0, 0, HostState::Enabled);
        let mut groups = Groups::default();
        groups.add(GroupId(1), HostId(0));
        groups.add(GroupId(2), HostId(5));
        let view = |group, policy| GroupView {
            policy,
            members: groups.get(GroupId(group)),
        };
        let run = |group, policy| {
            check(
                HostId(0),
                &host,
                &small(),
                &small().demand(),
                Some(view(group, policy)),
            )
        };
        assert_eq!(run(1, GroupPolicy::AntiAffinity), Err(Filter::AntiAffinity));
        assert_eq!(run(2, GroupPolicy::AntiAffinity), Ok(()));
        assert_eq!(run(1, GroupPolicy::Affinity), Ok(()));
        assert_eq!(run(2, GroupPolicy::Affinity), Err(Filter::Affinity));
        // A group without members yet may start anywhere.
        assert_eq!(run(3, GroupPolicy::Affinity), Ok(()));
    }
}
