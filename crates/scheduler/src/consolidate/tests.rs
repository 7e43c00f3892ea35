//! Hand-made plans checked move by move, then property tests that replay any plan one move
//! at a time against a model that knows nothing of the planner's tree.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

/// A host of `vcpus` vCPUs (as many cores, 1 GiB each) with disk to spare.
fn host(id: u32, vcpus: u32) -> PlanHost {
    PlanHost {
        id: HostId(id),
        zone: 0,
        state: HostState::Enabled,
        capacity: Usage {
            vcpus,
            memory_mib: u64::from(vcpus) * 1024,
            disk_gib: 1000,
            gpus: 0,
        },
        cores: vcpus,
    }
}

fn vm(id: u64, host: u32, vcpus: u32) -> PlanInstance {
    PlanInstance {
        id: InstanceId(id),
        host: HostId(host),
        demand: Usage {
            vcpus,
            memory_mib: u64::from(vcpus) * 1024,
            disk_gib: 10,
            gpus: 0,
        },
        cpu_used_millis: 0,
        group: None,
        movable: true,
    }
}

fn grouped(mut instance: PlanInstance, group: u64, policy: GroupPolicy) -> PlanInstance {
    instance.group = Some((GroupId(group), policy));
    instance
}

fn input(hosts: Vec<PlanHost>, instances: Vec<PlanInstance>) -> ConsolidationInput {
    ConsolidationInput {
        hosts,
        instances,
        target: Target::default(),
    }
}

fn step(instance: u64, from: u32, to: u32) -> Move {
    Move {
        instance: InstanceId(instance),
        from: HostId(from),
        to: HostId(to),
    }
}

fn ids(hosts: &[u32]) -> Vec<HostId> {
    hosts.iter().map(|&id| HostId(id)).collect()
}

/// Three 10-vCPU hosts holding 6, 2 and 1 vCPUs; the ceiling allows 8 on each.
fn three_hosts() -> ConsolidationInput {
    input(
        vec![host(0, 10), host(1, 10), host(2, 10)],
        vec![vm(1, 0, 3), vm(2, 0, 3), vm(3, 1, 2), vm(4, 2, 1)],
    )
}

#[test]
fn the_least_used_host_empties_into_the_fullest_with_room() {
    let plan = plan_consolidation(&three_hosts());
    assert_eq!(plan.moves, vec![step(4, 2, 0)]);
    assert_eq!(plan.freed_hosts, ids(&[2]));
    // Host 1's two vCPUs would take host 0 to 9 of 10, over the 80 % ceiling.
    assert_eq!(
        plan.skipped,
        vec![
            (HostId(0), Skip::Receiving),
            (HostId(1), Skip::NoRoom(InstanceId(3)))
        ]
    );
    assert_eq!(plan.before.overall.hosts_in_use, 3);
    assert_eq!(plan.before.overall.vcpu_share_permille(), 300);
    assert_eq!(plan.after.overall.hosts_in_use, 2);
    assert_eq!(plan.after.overall.vcpu_share_permille(), 450);
    assert_eq!(plan.after.overall.memory_share_permille(), 450);
    assert_eq!(plan.after.zones[&0], plan.after.overall);
}

#[test]
fn a_higher_ceiling_frees_more() {
    let mut input = three_hosts();
    input.target.ceiling_permille = 1000;
    let plan = plan_consolidation(&input);
    // Host 2's instance goes first (host 0: 7), then host 1's (host 0: 9).
    assert_eq!(plan.moves, vec![step(4, 2, 0), step(3, 1, 0)]);
    assert_eq!(plan.freed_hosts, ids(&[2, 1]));
    assert_eq!(plan.after.overall.hosts_in_use, 1);
    assert_eq!(plan.after.overall.vcpu_share_permille(), 900);
}

#[test]
fn largest_instances_go_first_and_fill_the_fullest_host() {
    let plan = plan_consolidation(&input(
        vec![host(0, 10), host(1, 10), host(2, 10)],
        vec![vm(1, 0, 6), vm(2, 1, 5), vm(3, 2, 1), vm(4, 2, 2)],
    ));
    // The 2-vCPU instance fills host 0 to its ceiling, the 1-vCPU one goes to host 1.
    assert_eq!(plan.moves, vec![step(4, 2, 0), step(3, 2, 1)]);
    assert_eq!(plan.freed_hosts, ids(&[2]));
    assert_eq!(
        plan.skipped,
        vec![(HostId(0), Skip::Receiving), (HostId(1), Skip::Receiving)]
    );
}

#[test]
fn a_host_that_cannot_be_emptied_gives_back_the_room_it_took() {
    let g = GroupPolicy::AntiAffinity;
    let plan = plan_consolidation(&input(
        vec![host(0, 10), host(1, 10), host(2, 10), host(3, 10)],
        vec![
            // Host 0 ("X"): room for 3 more under the ceiling.
            vm(1, 0, 5),
            // Host 1 ("B"): at the ceiling.
            vm(2, 1, 8),
            // Host 2 ("A"): its 3 fits on X, but its group member only on host 3, which
            // already holds one.
            vm(3, 2, 3),
            grouped(vm(4, 2, 1), 7, g),
            // Host 3 ("C"): tried after A, and fits only if A's 3 went back.
            vm(5, 3, 2),
            grouped(vm(6, 3, 1), 7, g),
            vm(7, 3, 1),
        ],
    ));
    assert_eq!(
        plan.moves,
        vec![step(5, 3, 0), step(6, 3, 0), step(7, 3, 2)]
    );
    assert_eq!(plan.freed_hosts, ids(&[3]));
    assert_eq!(
        plan.skipped,
        vec![
            (HostId(0), Skip::Receiving),
            (HostId(1), Skip::NoRoom(InstanceId(2))),
            (HostId(2), Skip::Receiving),
        ]
    );
}

#[test]
fn anti_affinity_members_never_share_a_host() {
    let g = GroupPolicy::AntiAffinity;
    let plan = plan_consolidation(&input(
        vec![host(0, 10), host(1, 10), host(2, 10)],
        vec![
            vm(1, 0, 4),
            grouped(vm(2, 0, 1), 9, g),
            vm(3, 1, 3),
            grouped(vm(4, 2, 1), 9, g),
        ],
    ));
    // Host 0 is fuller but holds a member of group 9.
    assert_eq!(plan.moves, vec![step(4, 2, 1)]);
    assert_eq!(plan.freed_hosts, ids(&[2]));
    // Host 0's 4 vCPUs would fit on host 1, but its member no longer would.
    assert_eq!(
        plan.skipped,
        vec![
            (HostId(0), Skip::NoRoom(InstanceId(2))),
            (HostId(1), Skip::Receiving)
        ]
    );
}

#[test]
fn pinned_and_disabled_hosts_stay_and_disabled_ones_receive_nothing() {
    let mut unmovable = vm(2, 1, 1);
    unmovable.movable = false;
    let mut maintenance = host(0, 10);
    maintenance.state = HostState::Maintenance;
    let mut down = host(5, 10);
    down.state = HostState::Down;
    let plan = plan_consolidation(&input(
        vec![
            maintenance,
            host(1, 10),
            host(2, 10),
            host(3, 10),
            host(4, 10),
            down,
        ],
        vec![
            vm(1, 0, 5),
            unmovable,
            grouped(vm(3, 2, 1), 4, GroupPolicy::Affinity),
            vm(4, 3, 2),
            vm(5, 4, 4),
            vm(6, 5, 1),
        ],
    ));
    // Hosts 3 and 4 may be emptied, into the pinned hosts first (they stay in use anyway),
    // never into the fuller one in maintenance.
    assert_eq!(plan.moves, vec![step(4, 3, 1), step(5, 4, 1)]);
    assert_eq!(plan.freed_hosts, ids(&[3, 4]));
    assert_eq!(
        plan.skipped,
        vec![
            (HostId(0), Skip::NotEnabled(HostState::Maintenance)),
            (HostId(1), Skip::Unmovable(InstanceId(2))),
            (HostId(2), Skip::Affinity(InstanceId(3))),
            (HostId(5), Skip::NotEnabled(HostState::Down)),
        ]
    );
}

#[test]
fn instances_move_only_within_their_zone() {
    let mut far = host(2, 20);
    far.zone = 1;
    let plan = plan_consolidation(&input(
        vec![host(0, 10), host(1, 10), far],
        vec![vm(1, 0, 4), vm(2, 1, 2), vm(3, 2, 14)],
    ));
    // Zone 1's host is fuller and has room, but is in another zone.
    assert_eq!(plan.moves, vec![step(2, 1, 0)]);
    assert_eq!(
        plan.skipped,
        vec![
            (HostId(0), Skip::Receiving),
            (HostId(2), Skip::NoRoom(InstanceId(3)))
        ]
    );
    assert_eq!(plan.after.zones[&0].hosts_in_use, 1);
    assert_eq!(plan.after.zones[&1], plan.before.zones[&1]);
}

#[test]
fn measured_cpu_counts_against_the_ceiling_too() {
    let busy = |cpu_used_millis| {
        let mut hot = vm(1, 0, 2);
        hot.cpu_used_millis = 7500;
        let mut light = vm(2, 1, 1);
        light.cpu_used_millis = cpu_used_millis;
        plan_consolidation(&input(vec![host(0, 10), host(1, 10)], vec![hot, light]))
    };
    // Host 0 has allocation room but measures 7.5 of 10 cores busy; the ceiling is 8.
    let plan = busy(1000);
    assert!(plan.moves.is_empty());
    assert_eq!(
        plan.skipped,
        vec![
            (HostId(0), Skip::NoRoom(InstanceId(1))),
            (HostId(1), Skip::NoRoom(InstanceId(2)))
        ]
    );
    assert_eq!(plan.before.overall.measured_cpu_permille(), 425);
    let plan = busy(500);
    assert_eq!(plan.moves, vec![step(2, 1, 0)]);
    assert_eq!(plan.after.overall.measured_cpu_permille(), 800);
}

#[test]
fn a_zone_freeing_too_few_hosts_proposes_nothing() {
    let mut input = three_hosts();
    input.target.min_hosts_freed = 2;
    let plan = plan_consolidation(&input);
    assert!(plan.moves.is_empty());
    assert!(plan.freed_hosts.is_empty());
    assert_eq!(
        plan.skipped,
        vec![
            (HostId(0), Skip::NotWorthIt),
            (HostId(1), Skip::NoRoom(InstanceId(3))),
            (HostId(2), Skip::NotWorthIt),
        ]
    );
    assert_eq!(plan.after, plan.before);
}

#[test]
fn an_empty_cloud_plans_nothing() {
    let plan = plan_consolidation(&input(vec![host(0, 10)], vec![]));
    assert_eq!(plan.moves, vec![]);
    assert_eq!(plan.skipped, vec![]);
    assert_eq!(plan.before.overall, Occupancy::default());
    assert_eq!(plan.before.zones[&0], Occupancy::default());
}

/// `decoys` pinned 8-vCPU hosts, alternately left with 1 vCPU and with 1.4 GiB of room
/// and equally loaded (so they alternate in the receivers' order, and every subtree's
/// maxima promise room for 2 vCPUs and 2 GiB); then host `decoys` with exactly that room,
/// and host `decoys + 1` to empty, holding 2 vCPUs / 2 GiB and 1 vCPU / 1 GiB.
fn decoys(decoys: u32) -> ConsolidationInput {
    let mut hosts: Vec<PlanHost> = (0..decoys + 2).map(|id| host(id, 8)).collect();
    let mut instances = Vec::new();
    for id in 0..decoys {
        let mut pinned = vm(u64::from(id), id, 1);
        pinned.movable = false;
        if id % 2 == 0 {
            pinned.demand.vcpus = 5;
        } else {
            pinned.demand.memory_mib = 5 * 1024;
        }
        instances.push(pinned);
    }
    let id = u64::from(decoys);
    instances.push(vm(id, decoys, 4));
    instances.push(vm(id + 1, decoys + 1, 2));
    instances.push(vm(id + 2, decoys + 1, 1));
    hosts.reverse();
    ConsolidationInput {
        hosts,
        instances,
        target: Target::default(),
    }
}

#[test]
fn a_search_gives_up_after_its_budget_of_hosts_turned_down() {
    let fewer = SEARCH_BUDGET - 1;
    let plan = plan_consolidation(&decoys(fewer));
    let id = u64::from(fewer);
    assert_eq!(
        plan.moves,
        vec![step(id + 1, fewer + 1, fewer), step(id + 2, fewer + 1, 0)]
    );
    let plan = plan_consolidation(&decoys(SEARCH_BUDGET));
    assert!(plan.moves.is_empty());
    let id = u64::from(SEARCH_BUDGET);
    assert_eq!(
        plan.skipped[plan.skipped.len() - 2..],
        [
            (HostId(SEARCH_BUDGET), Skip::NoRoom(InstanceId(id))),
            (HostId(SEARCH_BUDGET + 1), Skip::NoRoom(InstanceId(id + 1)))
        ]
    );
}

#[test]
fn hosts_without_room_for_the_smallest_instance_are_not_searched() {
    // The decoys of the test above, but each short of room for even the smallest
    // instance to move in one resource: they leave the tree, and do not count. The host
    // with room is pinned too, with room for both instances.
    let mut input = decoys(2 * SEARCH_BUDGET);
    for instance in &mut input.instances {
        if instance.host == HostId(2 * SEARCH_BUDGET) {
            *instance = vm(instance.id.0, instance.host.0, 3);
            instance.movable = false;
        } else if !instance.movable {
            instance.demand.vcpus = instance.demand.vcpus.max(6);
            instance.demand.memory_mib = instance.demand.memory_mib.max(6 * 1024);
            if instance.id.0 % 2 == 0 {
                instance.demand.memory_mib = 1024;
            } else {
                instance.demand.vcpus = 1;
            }
        }
    }
    let plan = plan_consolidation(&input);
    let (id, host) = (u64::from(2 * SEARCH_BUDGET), 2 * SEARCH_BUDGET);
    assert_eq!(
        plan.moves,
        vec![step(id + 1, host + 1, host), step(id + 2, host + 1, host)]
    );
}

// Property tests.

const ZONES: u32 = 2;
const GROUPS: u64 = 4;

fn policy(group: u64) -> GroupPolicy {
    match group % 2 {
        0 => GroupPolicy::Affinity,
        _ => GroupPolicy::AntiAffinity,
    }
}

fn arbitrary_host() -> impl Strategy<Value = PlanHost> {
    (
        0..ZONES,
        prop_oneof![
            4 => Just(HostState::Enabled),
            1 => Just(HostState::Maintenance),
            1 => Just(HostState::Down),
        ],
        prop::sample::select(vec![0u32, 4, 8, 16]),
        prop::sample::select(vec![0u64, 4096, 8192]),
        prop::sample::select(vec![0u64, 50, 100]),
        0u32..=2,
        0u32..=8,
    )
        .prop_map(
            |(zone, state, vcpus, memory_mib, disk_gib, gpus, cores)| PlanHost {
                id: HostId(0),
                zone,
                state,
                capacity: Usage {
                    vcpus,
                    memory_mib,
                    disk_gib,
                    gpus,
                },
                cores,
            },
        )
}

/// An instance on the host with this index (or, when past the last, on an unknown host).
fn arbitrary_instance(hosts: usize) -> impl Strategy<Value = (usize, PlanInstance)> {
    (
        0..=hosts,
        (
            0u32..5,
            prop::sample::select(vec![0u64, 1000, 2048, 4096]),
            0u64..=30,
            prop_oneof![5 => Just(0u32), 1 => Just(1u32)],
        ),
        0u32..3000,
        prop::option::weighted(0.4, 0..GROUPS),
        prop_oneof![4 => Just(true), 1 => Just(false)],
    )
        .prop_map(
            |(host, (vcpus, memory_mib, disk_gib, gpus), cpu, group, movable)| {
                let instance = PlanInstance {
                    id: InstanceId(0),
                    host: HostId(0),
                    demand: Usage {
                        vcpus,
                        memory_mib,
                        disk_gib,
                        gpus,
                    },
                    cpu_used_millis: cpu,
                    group: group.map(|group| (GroupId(group), policy(group))),
                    movable,
                };
                (host, instance)
            },
        )
}

/// Up to `hosts` hosts and `instances` instances.
fn arbitrary_input(hosts: usize, instances: usize) -> impl Strategy<Value = ConsolidationInput> {
    (
        prop::collection::vec(arbitrary_host(), 1..=hosts),
        prop::collection::vec(arbitrary_instance(hosts), 0..=instances),
        prop::sample::select(vec![500u32, 800, 1000, 1200]),
        0u32..=2,
    )
        .prop_map(|(mut hosts, placed, ceiling_permille, min_hosts_freed)| {
            // Even ids with gaps; odd ids are hosts nobody listed.
            for (i, host) in hosts.iter_mut().enumerate() {
                host.id = HostId(2 * i as u32);
            }
            let instances = placed
                .into_iter()
                .enumerate()
                .map(|(i, (on, mut instance))| {
                    instance.id = InstanceId(i as u64);
                    instance.host = HostId(if on < hosts.len() { 2 * on as u32 } else { 1 });
                    instance
                })
                .collect();
            ConsolidationInput {
                hosts,
                instances,
                target: Target {
                    ceiling_permille,
                    min_hosts_freed,
                },
            }
        })
}

/// Where everything is, kept the slow and obvious way while the plan is replayed.
struct World<'a> {
    hosts: HashMap<HostId, &'a PlanHost>,
    instances: HashMap<InstanceId, &'a PlanInstance>,
    location: HashMap<InstanceId, HostId>,
}

impl World<'_> {
    fn on(&self, host: HostId) -> impl Iterator<Item = &PlanInstance> + '_ {
        self.location
            .iter()
            .filter(move |(_, &on)| on == host)
            .map(|(id, _)| self.instances[id])
    }

    fn in_use(&self) -> Vec<HostId> {
        let mut hosts: Vec<HostId> = self.location.values().copied().collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

fn world(input: &ConsolidationInput) -> World<'_> {
    let hosts: HashMap<HostId, &PlanHost> = input.hosts.iter().map(|h| (h.id, h)).collect();
    let instances = input
        .instances
        .iter()
        .filter(|i| hosts.contains_key(&i.host))
        .map(|i| (i.id, i))
        .collect();
    let location = input
        .instances
        .iter()
        .filter(|i| hosts.contains_key(&i.host))
        .map(|i| (i.id, i.host))
        .collect();
    World {
        hosts,
        instances,
        location,
    }
}

/// Replays `plan` move by move, checking every intermediate state.
fn replay(input: &ConsolidationInput, plan: &Plan) -> Result<(), TestCaseError> {
    let mut world = world(input);
    let before = world.in_use();
    let ceiling = u128::from(input.target.ceiling_permille.min(1000));
    let mut moved = std::collections::HashSet::new();
    let under =
        |amount: u64, capacity: u64| u128::from(amount) * 1000 <= u128::from(capacity) * ceiling;
    for step in &plan.moves {
        let instance = world.instances[&step.instance];
        prop_assert!(instance.movable, "moved an unmovable instance: {step:?}");
        prop_assert!(
            !matches!(instance.group, Some((_, GroupPolicy::Affinity))),
            "moved an affinity member: {step:?}"
        );
        prop_assert_eq!(world.location[&step.instance], step.from);
        prop_assert!(moved.insert(step.instance), "moved twice: {step:?}");
        prop_assert_ne!(step.from, step.to);
        prop_assert!(!plan.freed_hosts.contains(&step.to), "freed host receives");
        let to = world.hosts[&step.to];
        prop_assert_eq!(to.state, HostState::Enabled);
        prop_assert_eq!(to.zone, world.hosts[&step.from].zone);
        prop_assert!(world.on(step.to).next().is_some(), "started an empty host");

        world.location.insert(step.instance, step.to);
        let mut used = Usage::ZERO;
        let mut cpu = 0u64;
        for other in world.on(step.to) {
            used = used.saturating_add(other.demand);
            cpu += u64::from(other.cpu_used_millis);
            if let (Some((group, GroupPolicy::AntiAffinity)), Some((mine, _))) =
                (other.group, instance.group)
            {
                prop_assert!(
                    other.id == instance.id || group != mine,
                    "anti-affinity broken by {step:?}"
                );
            }
        }
        let (cap, need) = (&to.capacity, &instance.demand);
        prop_assert!(need.vcpus == 0 || under(u64::from(used.vcpus), u64::from(cap.vcpus)));
        prop_assert!(need.memory_mib == 0 || under(used.memory_mib, cap.memory_mib));
        prop_assert!(need.disk_gib == 0 || used.disk_gib <= cap.disk_gib);
        prop_assert!(need.gpus == 0 || used.gpus <= cap.gpus);
        prop_assert!(
            instance.cpu_used_millis == 0 || under(cpu, u64::from(to.cores) * 1000),
            "measured ceiling broken by {step:?}"
        );
    }

    let after = world.in_use();
    for freed in &plan.freed_hosts {
        prop_assert!(before.contains(freed));
        prop_assert!(!after.contains(freed), "{freed} still runs instances");
        prop_assert_eq!(world.hosts[freed].state, HostState::Enabled);
    }
    prop_assert!(after.len() <= before.len());
    prop_assert_eq!(after.len(), before.len() - plan.freed_hosts.len());
    prop_assert_eq!(plan.after.overall.hosts_in_use as usize, after.len());
    prop_assert_eq!(plan.before.overall.hosts_in_use as usize, before.len());
    // Every host in use is either freed or skipped with a reason, once.
    let mut accounted: Vec<HostId> = plan
        .skipped
        .iter()
        .map(|(host, _)| *host)
        .chain(plan.freed_hosts.iter().copied())
        .collect();
    accounted.sort();
    prop_assert_eq!(accounted, before);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn every_step_of_every_plan_is_safe(input in arbitrary_input(12, 48)) {
        let plan = plan_consolidation(&input);
        replay(&input, &plan)?;
    }

    #[test]
    fn the_same_input_in_any_order_gives_the_same_plan(input in arbitrary_input(12, 48)) {
        let plan = plan_consolidation(&input);
        prop_assert_eq!(&plan_consolidation(&input.clone()), &plan);
        let mut shuffled = input.clone();
        shuffled.hosts.reverse();
        shuffled.instances.reverse();
        let half = shuffled.instances.len() / 2;
        shuffled.instances.rotate_left(half);
        prop_assert_eq!(&plan_consolidation(&shuffled), &plan);
    }
}

proptest! {
    // Deeper trees and longer plans, fewer of them: the replay is quadratic.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_step_of_every_large_plan_is_safe(input in arbitrary_input(300, 1500)) {
        let plan = plan_consolidation(&input);
        replay(&input, &plan)?;
    }
}
