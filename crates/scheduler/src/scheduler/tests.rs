use super::*;
use crate::filter::Filter;
use crate::request::GroupPolicy;

/// 4 cores at 2.0 (8 vCPUs), 16 GiB, 100 GiB disk.
fn host(id: u32, zone: u32, provider: u32) -> Host {
    Host {
        id: HostId(id),
        zone,
        provider,
        state: HostState::Enabled,
        vcpus: 4,
        memory_mib: 16_384,
        disk_gib: 100,
        gpus: 0,
        cpu_ratio_permille: 2000,
        mem_ratio_permille: 1000,
    }
}

fn flavor(vcpus: u32, memory_gib: u64) -> Request {
    Request {
        vcpus,
        memory_mib: memory_gib * 1024,
        disk_gib: 10,
        ..Request::default()
    }
}

fn used(vcpus: u32, memory_gib: u64) -> Usage {
    Usage {
        vcpus,
        memory_mib: memory_gib * 1024,
        disk_gib: 0,
        gpus: 0,
    }
}

fn scheduler(hosts: impl IntoIterator<Item = (Host, Usage)>) -> Scheduler {
    let mut scheduler = Scheduler::new();
    for (host, usage) in hosts {
        scheduler.add_host(host, usage);
    }
    scheduler
}

fn in_group(request: Request, group: u64, policy: GroupPolicy) -> Request {
    Request {
        group: Some((GroupId(group), policy)),
        ..request
    }
}

#[test]
fn pack_fills_the_fullest_host_that_fits() {
    let mut s = scheduler([
        (host(0, 0, 0), used(2, 4)),
        (host(1, 0, 0), used(6, 12)),
        (host(2, 0, 0), used(4, 8)),
        (host(3, 0, 0), Usage::ZERO),
    ]);
    assert_eq!(s.place(&flavor(2, 4)), Ok(HostId(1)));
    // Host 1 has 2 vCPUs left: a 4-vCPU instance goes to the next fullest.
    assert_eq!(s.place(&flavor(4, 4)), Ok(HostId(2)));
    // Once the index has seen a claim, the same choice comes from the open set.
    s.claim(HostId(1), &flavor(1, 1)).expect("host 1 has room");
    assert_eq!(s.place(&flavor(1, 1)), Ok(HostId(1)));
}

#[test]
fn pack_takes_an_empty_host_only_when_no_used_host_fits() {
    let mut s = scheduler([
        (host(0, 0, 0), Usage::ZERO),
        (host(1, 0, 0), used(1, 2)),
        (host(2, 0, 0), Usage::ZERO),
    ]);
    assert_eq!(s.place_and_claim(&flavor(4, 8)), Ok(HostId(1)));
    assert_eq!(s.place_and_claim(&flavor(4, 8)), Ok(HostId(0)));
    assert_eq!(s.place_and_claim(&flavor(3, 6)), Ok(HostId(1)));
    assert_eq!(s.place_and_claim(&flavor(4, 8)), Ok(HostId(0)));
    assert_eq!(s.place_and_claim(&flavor(1, 1)), Ok(HostId(2)));
}

#[test]
fn pack_prefers_the_smaller_empty_host_that_fits() {
    let big = Host {
        vcpus: 32,
        memory_mib: 131_072,
        ..host(0, 0, 0)
    };
    let s = scheduler([(big, Usage::ZERO), (host(1, 0, 0), Usage::ZERO)]);
    assert_eq!(s.place(&flavor(2, 4)), Ok(HostId(1)));
    assert_eq!(s.place(&flavor(16, 32)), Ok(HostId(0)));
}

#[test]
fn spread_picks_the_emptiest_host() {
    let mut s = scheduler([
        (host(0, 0, 0), used(4, 8)),
        (host(1, 0, 0), used(2, 4)),
        (host(2, 0, 0), used(6, 12)),
    ]);
    s.set_default_strategy(Strategy::Spread);
    assert_eq!(s.place_and_claim(&flavor(1, 2)), Ok(HostId(1)));
    assert_eq!(s.place_and_claim(&flavor(1, 2)), Ok(HostId(1)));
    // Host 1 (4 vCPUs, 8 GiB) now ties host 0; the lower id wins.
    assert_eq!(s.place_and_claim(&flavor(1, 2)), Ok(HostId(0)));
    assert_eq!(s.place_and_claim(&flavor(1, 2)), Ok(HostId(1)));
}

#[test]
fn zone_strategy_overrides_the_default() {
    let mut s = scheduler([
        (host(0, 1, 0), used(6, 12)),
        (host(1, 1, 0), used(2, 4)),
        (host(2, 2, 0), used(6, 12)),
        (host(3, 2, 0), used(2, 4)),
    ]);
    s.set_zone_strategy(2, Strategy::Spread);
    let in_zone = |zone| Request {
        zone: Some(zone),
        ..flavor(1, 2)
    };
    assert_eq!(s.strategy_for(Some(1)), Strategy::Pack);
    assert_eq!(s.strategy_for(Some(2)), Strategy::Spread);
    assert_eq!(s.place(&in_zone(1)), Ok(HostId(0)));
    assert_eq!(s.place(&in_zone(2)), Ok(HostId(3)));
    // No zone asked: the default (pack) across all zones.
    assert_eq!(s.place(&flavor(1, 2)), Ok(HostId(0)));
}

#[test]
fn anti_affinity_never_shares_a_host() {
    let mut s = scheduler((0..3).map(|id| (host(id, 0, 0), Usage::ZERO)));
    let member = in_group(flavor(1, 1), 7, GroupPolicy::AntiAffinity);
    let mut hosts: Vec<HostId> = (0..3)
        .map(|_| s.place_and_claim(&member).expect("a host per member"))
        .collect();
    hosts.sort();
    assert_eq!(hosts, vec![HostId(0), HostId(1), HostId(2)]);
    let refusal = s.place(&member).expect_err("three hosts, three members");
    assert_eq!(refusal.rejected.anti_affinity, 3);
    assert_eq!(refusal.main_reason(), Some(Filter::AntiAffinity));
    // Another group is unaffected, and releasing a member frees its host for the group.
    assert!(s
        .place(&in_group(flavor(1, 1), 8, GroupPolicy::AntiAffinity))
        .is_ok());
    s.release(HostId(1), &member).expect("known host");
    assert_eq!(s.place(&member), Ok(HostId(1)));
    assert_eq!(
        s.claim(HostId(0), &member),
        Err(ClaimError::Rejected {
            host: HostId(0),
            filter: Filter::AntiAffinity
        })
    );
}

#[test]
fn affinity_keeps_the_group_on_one_host() {
    let mut s = scheduler([(host(0, 0, 0), used(6, 12)), (host(1, 0, 0), Usage::ZERO)]);
    let member = in_group(flavor(2, 2), 3, GroupPolicy::Affinity);
    let first = s.place_and_claim(&member).expect("room on host 0");
    assert_eq!(first, HostId(0));
    // Host 0 is now full, host 1 empty: the group still may not move.
    let refusal = s.place(&member).expect_err("the group's host is full");
    assert_eq!(refusal.rejected.affinity, 1);
    assert_eq!(refusal.rejected.capacity_vcpu, 1);
    s.release(HostId(0), &member).expect("known host");
    // With no members left the group may start anywhere again.
    assert_eq!(s.group_members(GroupId(3)).count(), 0);
    assert_eq!(
        s.place(&in_group(flavor(4, 4), 3, GroupPolicy::Affinity)),
        Ok(HostId(1))
    );
}

#[test]
fn maintenance_hosts_get_nothing() {
    let mut s = scheduler([(host(0, 0, 0), used(1, 1)), (host(1, 0, 0), Usage::ZERO)]);
    s.set_state(HostId(0), HostState::Maintenance)
        .expect("known host");
    s.set_state(HostId(1), HostState::Down).expect("known host");
    let refusal = s.place(&flavor(1, 1)).expect_err("nothing enabled");
    assert_eq!(refusal.rejected.state, 2);
    assert_eq!(
        s.claim(HostId(0), &flavor(1, 1)),
        Err(ClaimError::Rejected {
            host: HostId(0),
            filter: Filter::State
        })
    );
    s.set_state(HostId(1), HostState::Enabled)
        .expect("known host");
    assert_eq!(s.place(&flavor(1, 1)), Ok(HostId(1)));
}

#[test]
fn zone_and_provider_constraints_are_honoured() {
    let s = scheduler([
        (host(0, 1, 10), used(4, 4)),
        (host(1, 1, 20), Usage::ZERO),
        (host(2, 2, 10), used(6, 6)),
    ]);
    let zone_one_provider_twenty = Request {
        zone: Some(1),
        providers: Some(vec![20]),
        ..flavor(1, 1)
    };
    assert_eq!(s.place(&zone_one_provider_twenty), Ok(HostId(1)));
    let provider_ten = Request {
        providers: Some(vec![10]),
        ..flavor(1, 1)
    };
    assert_eq!(s.place(&provider_ten), Ok(HostId(2)));
    let nowhere = Request {
        zone: Some(2),
        providers: Some(vec![20]),
        ..flavor(1, 1)
    };
    let refusal = s.place(&nowhere).expect_err("zone 2 has no provider 20");
    assert_eq!((refusal.rejected.zone, refusal.rejected.provider), (2, 1));
}

#[test]
fn overcommit_ratio_sets_capacity() {
    let mut s = scheduler([(host(0, 0, 0), Usage::ZERO)]);
    assert_eq!(s.capacity(HostId(0)).map(|c| c.vcpus), Some(8));
    assert_eq!(s.place_and_claim(&flavor(8, 1)), Ok(HostId(0)));
    let refusal = s.place(&flavor(1, 1)).expect_err("8 vCPUs handed out");
    assert_eq!(refusal.rejected.capacity_vcpu, 1);
}

#[test]
fn explains_why_no_host_fits() {
    let mut s = scheduler([
        (host(0, 0, 0), Usage::ZERO),
        (host(1, 0, 0), Usage::ZERO),
        (host(2, 1, 0), Usage::ZERO),
        (host(3, 0, 0), Usage::ZERO),
    ]);
    s.set_state(HostId(3), HostState::Maintenance)
        .expect("known host");
    let member = Request {
        zone: Some(0),
        ..in_group(flavor(1, 1), 1, GroupPolicy::AntiAffinity)
    };
    s.place_and_claim(&member).expect("first member");
    s.place_and_claim(&member).expect("second member");
    let refusal = s
        .place(&member)
        .expect_err("the zone has two enabled hosts");
    assert_eq!(refusal.hosts, 4);
    assert_eq!(
        refusal.rejected,
        Rejections {
            state: 1,
            zone: 1,
            anti_affinity: 2,
            ..Rejections::default()
        }
    );
    assert_eq!(refusal.main_reason(), Some(Filter::AntiAffinity));
    let too_big = Request {
        disk_gib: 101,
        ..flavor(1, 1)
    };
    let refusal = s.place(&too_big).expect_err("no host has 101 GiB");
    assert_eq!(refusal.rejected.capacity_disk, 3);
    let gpu = Request {
        gpus: 1,
        ..flavor(1, 1)
    };
    assert_eq!(s.place(&gpu).map_err(|e| e.rejected.gpu), Err(3));
}

#[test]
fn claim_rechecks_capacity() {
    let mut s = scheduler([(host(0, 0, 0), used(6, 4))]);
    let chosen = s.place(&flavor(2, 2)).expect("room for 2 vCPUs");
    s.claim(chosen, &flavor(2, 2)).expect("still room");
    assert_eq!(
        s.claim(chosen, &flavor(2, 2)),
        Err(ClaimError::Rejected {
            host: HostId(0),
            filter: Filter::CapacityVcpu
        })
    );
    let after = Usage {
        disk_gib: 10,
        ..used(8, 6)
    };
    assert_eq!(s.usage(HostId(0)), Some(after));
    assert_eq!(
        s.claim(HostId(9), &flavor(1, 1)),
        Err(ClaimError::UnknownHost(HostId(9)))
    );
}

#[test]
fn release_saturates_and_reopens_a_full_host() {
    let mut s = scheduler([(host(0, 0, 0), Usage::ZERO), (host(1, 0, 0), Usage::ZERO)]);
    let whole = flavor(8, 16);
    assert_eq!(s.place_and_claim(&whole), Ok(HostId(0)));
    assert_eq!(s.place_and_claim(&flavor(4, 4)), Ok(HostId(1)));
    s.release(HostId(0), &flavor(4, 8)).expect("known host");
    // Host 0 was full; with room again it is the fuller of the two for packing.
    assert_eq!(s.place(&flavor(4, 4)), Ok(HostId(0)));
    s.release(HostId(0), &whole).expect("known host");
    s.release(HostId(0), &whole).expect("known host");
    assert_eq!(s.usage(HostId(0)), Some(Usage::ZERO));
    assert_eq!(s.release(HostId(5), &whole), Err(UnknownHost(HostId(5))));
}

#[test]
fn a_flavor_smaller_than_any_claimed_still_finds_full_hosts() {
    let mut s = scheduler([(host(0, 0, 0), Usage::ZERO), (host(1, 0, 0), Usage::ZERO)]);
    s.place_and_claim(&flavor(7, 8)).expect("room");
    // Host 0 cannot fit another 7-vCPU instance but can fit one vCPU, and packing must
    // prefer it over the empty host even though the index filed it as full.
    assert_eq!(s.place(&flavor(1, 1)), Ok(HostId(0)));
    assert_eq!(s.place_and_claim(&flavor(1, 1)), Ok(HostId(0)));
}

#[test]
fn restored_members_count_for_groups() {
    let mut s = scheduler([(host(0, 0, 0), used(1, 1)), (host(1, 0, 0), Usage::ZERO)]);
    s.restore_member(GroupId(4), HostId(0)).expect("known host");
    assert_eq!(
        s.place(&in_group(flavor(1, 1), 4, GroupPolicy::AntiAffinity)),
        Ok(HostId(1))
    );
    assert_eq!(
        s.restore_member(GroupId(4), HostId(2)),
        Err(UnknownHost(HostId(2)))
    );
}

#[test]
fn replacing_a_host_keeps_its_members_and_takes_the_new_usage() {
    let mut s = scheduler([(host(0, 0, 0), Usage::ZERO), (host(1, 0, 0), Usage::ZERO)]);
    let member = in_group(flavor(1, 1), 2, GroupPolicy::AntiAffinity);
    assert_eq!(s.place_and_claim(&member), Ok(HostId(0)));
    let bigger = Host {
        vcpus: 8,
        ..host(0, 0, 0)
    };
    s.add_host(bigger, used(1, 1));
    assert_eq!(s.len(), 2);
    assert_eq!(s.capacity(HostId(0)).map(|c| c.vcpus), Some(16));
    assert_eq!(s.place(&member), Ok(HostId(1)));
}

#[test]
fn an_empty_scheduler_says_there_are_no_hosts() {
    let s = Scheduler::new();
    assert!(s.is_empty());
    let refusal = s.place(&flavor(1, 1)).expect_err("no hosts");
    assert_eq!(refusal.hosts, 0);
}
