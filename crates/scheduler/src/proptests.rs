//! Property tests: random hosts and random sequences of placements, claims, releases,
//! state and strategy changes, checked after every step against a model that knows
//! nothing of the index. The model answers every placement by brute force over all hosts,
//! so any disagreement — a false "no valid host", a different best fit, a host over its
//! capacity, a broken group — is the index's fault.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::host::Weights;
// Named apart from proptest's `Strategy` trait, which the generators below need.
use crate::Strategy as Placing;
use crate::{GroupId, GroupPolicy, Host, HostId, HostState, Request, Scheduler, Usage};

const ZONES: u32 = 3;
const PROVIDERS: u32 = 3;
const GROUPS: u64 = 4;

#[derive(Debug, Clone)]
enum Op {
    PlaceAndClaim(Request),
    Place(Request),
    Claim(u32, Request),
    Release(usize),
    SetState(u32, HostState),
    SetZoneStrategy(u32, Placing),
    SetDefaultStrategy(Placing),
}

/// Even groups are affinity groups, odd ones anti-affinity: a group keeps its policy.
fn policy(group: u64) -> GroupPolicy {
    match group % 2 {
        0 => GroupPolicy::Affinity,
        _ => GroupPolicy::AntiAffinity,
    }
}

fn state() -> impl Strategy<Value = HostState> {
    prop_oneof![
        4 => Just(HostState::Enabled),
        1 => Just(HostState::Maintenance),
        1 => Just(HostState::Down),
    ]
}

fn strategy() -> impl Strategy<Value = Placing> {
    prop_oneof![Just(Placing::Pack), Just(Placing::Spread)]
}

/// A host and its starting usage as quarters of its capacity per resource.
fn host() -> impl Strategy<Value = (Host, [u64; 4])> {
    (
        (
            0..ZONES,
            0..PROVIDERS,
            state(),
            // Few distinct sizes, so that equal hosts (and ties between them) are common.
            prop::sample::select(vec![0u32, 2, 4, 7]),
            prop::sample::select(vec![0u64, 4, 8, 16]),
            prop::sample::select(vec![0u64, 50, 100]),
            0u32..=2,
        ),
        (
            prop::sample::select(vec![1000u32, 1500, 2000, 4000]),
            prop::sample::select(vec![1000u32, 1200, 1500]),
            prop::array::uniform4(prop_oneof![3 => Just(0u64), 1 => 0u64..=4]),
        ),
    )
        .prop_map(
            |((zone, provider, state, vcpus, memory_gib, disk_gib, gpus), (cpu, mem, usage))| {
                let host = Host {
                    id: HostId(0),
                    zone,
                    provider,
                    state,
                    vcpus,
                    memory_mib: memory_gib * 1024,
                    disk_gib,
                    gpus,
                    cpu_ratio_permille: cpu,
                    mem_ratio_permille: mem,
                };
                (host, usage)
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    (
        (
            0u32..6,
            0u64..=8,
            0u64..=60,
            prop_oneof![5 => Just(0u32), 1 => 1u32..=2],
        ),
        (
            prop::option::of(0..ZONES),
            prop::option::weighted(0.3, prop::collection::vec(0..PROVIDERS, 0..=2)),
            prop::option::weighted(0.4, 0..GROUPS),
        ),
    )
        .prop_map(
            |((vcpus, memory_gib, disk_gib, gpus), (zone, providers, group))| Request {
                vcpus,
                // Odd sizes keep memory from always dividing capacity evenly.
                memory_mib: memory_gib * 1000,
                disk_gib,
                gpus,
                zone,
                providers,
                group: group.map(|group| (GroupId(group), policy(group))),
            },
        )
}

fn op(hosts: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => request().prop_map(Op::PlaceAndClaim),
        2 => request().prop_map(Op::Place),
        2 => (0..hosts, request()).prop_map(|(host, request)| Op::Claim(host, request)),
        4 => any::<usize>().prop_map(Op::Release),
        1 => (0..hosts, state()).prop_map(|(host, state)| Op::SetState(host, state)),
        1 => (0..ZONES, strategy()).prop_map(|(zone, s)| Op::SetZoneStrategy(zone, s)),
        1 => strategy().prop_map(Op::SetDefaultStrategy),
    ]
}

fn case() -> impl Strategy<Value = (Vec<(Host, [u64; 4])>, Vec<Op>)> {
    prop::collection::vec(host(), 1..10).prop_flat_map(|hosts| {
        let count = hosts.len() as u32;
        (Just(hosts), prop::collection::vec(op(count), 1..80))
    })
}

/// What the scheduler should know, kept the slow and obvious way.
struct Model {
    hosts: Vec<Host>,
    initial: Vec<Usage>,
    live: Vec<(HostId, Request)>,
    default_strategy: Placing,
    zone_strategies: BTreeMap<u32, Placing>,
}

impl Model {
    fn used(&self, host: HostId) -> Usage {
        self.live
            .iter()
            .filter(|(on, _)| *on == host)
            .fold(self.initial[host.index()], |sum, (_, r)| {
                sum.saturating_add(r.demand())
            })
    }

    fn members(&self, group: GroupId) -> BTreeMap<HostId, u32> {
        let mut members = BTreeMap::new();
        for (host, request) in &self.live {
            if request.group.is_some_and(|(g, _)| g == group) {
                *members.entry(*host).or_insert(0) += 1;
            }
        }
        members
    }

    fn in_any_group(&self, host: HostId) -> bool {
        self.live
            .iter()
            .any(|(on, r)| *on == host && r.group.is_some())
    }

    fn admits(&self, host: HostId, request: &Request) -> bool {
        let spec = &self.hosts[host.index()];
        let members = request.group.map(|(group, _)| self.members(group));
        let group_ok = match (request.group, &members) {
            (Some((_, GroupPolicy::Affinity)), Some(m)) => m.is_empty() || m.contains_key(&host),
            (Some((_, GroupPolicy::AntiAffinity)), Some(m)) => !m.contains_key(&host),
            _ => true,
        };
        let free = spec.capacity().saturating_sub(self.used(host));
        spec.state == HostState::Enabled
            && request.zone.is_none_or(|zone| zone == spec.zone)
            && request
                .providers
                .as_ref()
                .is_none_or(|p| p.contains(&spec.provider))
            && group_ok
            && free.covers(&request.demand())
    }

    /// The host the strategy should pick, by looking at every host.
    fn choose(&self, request: &Request) -> Option<HostId> {
        let strategy = request
            .zone
            .and_then(|zone| self.zone_strategies.get(&zone).copied())
            .unwrap_or(self.default_strategy);
        let mut used: Option<(u64, HostId)> = None;
        let mut pristine: Option<(u64, HostId)> = None;
        for spec in &self.hosts {
            let host = spec.id;
            if !self.admits(host, request) {
                continue;
            }
            let weights = Weights::of(&spec.capacity());
            let now = self.used(host);
            let rank = match strategy {
                Placing::Pack => weights.load(&now.saturating_add(request.demand())),
                Placing::Spread => weights.load(&now),
            };
            let bucket = if strategy == Placing::Pack && now.is_zero() && !self.in_any_group(host) {
                &mut pristine
            } else {
                &mut used
            };
            if bucket.is_none_or(|best| better(strategy, (rank, host), best)) {
                *bucket = Some((rank, host));
            }
        }
        used.or(pristine).map(|(_, host)| host)
    }
}

/// Pack prefers the higher rank, spread the lower; either way the lower id breaks a tie.
fn better(
    strategy: Placing,
    (rank, host): (u64, HostId),
    (best_rank, best_host): (u64, HostId),
) -> bool {
    match strategy {
        Placing::Pack => rank > best_rank || (rank == best_rank && host < best_host),
        Placing::Spread => (rank, host) < (best_rank, best_host),
    }
}

fn check_invariants(scheduler: &Scheduler, model: &Model) -> Result<(), TestCaseError> {
    for spec in &model.hosts {
        let used = scheduler.usage(spec.id).expect("every host was added");
        prop_assert_eq!(used, model.used(spec.id), "usage of {}", spec.id);
        prop_assert!(
            spec.capacity().covers(&used),
            "{} over capacity: {:?}",
            spec.id,
            used
        );
    }
    for group in (0..GROUPS).map(GroupId) {
        let members = model.members(group);
        let mut known: Vec<(HostId, u32)> = scheduler.group_members(group).collect();
        known.sort();
        prop_assert_eq!(&known, &members.clone().into_iter().collect::<Vec<_>>());
        match policy(group.0) {
            GroupPolicy::AntiAffinity => {
                prop_assert!(
                    members.values().all(|&count| count == 1),
                    "{:?} shares a host",
                    group
                )
            }
            GroupPolicy::Affinity => prop_assert!(members.len() <= 1, "{:?} split", group),
        }
    }
    Ok(())
}

fn check_place(
    scheduler: &Scheduler,
    model: &Model,
    request: &Request,
) -> Result<(), TestCaseError> {
    let expected = model.choose(request);
    match scheduler.place(request) {
        Ok(host) => prop_assert_eq!(Some(host), expected, "for {:?}", request),
        Err(refusal) => {
            prop_assert_eq!(None, expected, "false 'no valid host' for {:?}", request);
            let charged: u32 = refusal.rejected.iter().map(|(_, count)| count).sum();
            prop_assert_eq!(
                charged as usize,
                model.hosts.len(),
                "every host charged once"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The index never changes an answer: every placement equals brute force over all
    /// hosts, capacity and groups hold after every step, and releasing everything gives
    /// back every host's starting usage.
    #[test]
    fn placement_matches_brute_force_and_keeps_invariants((hosts, ops) in case()) {
        let mut scheduler = Scheduler::new();
        let mut model = Model {
            hosts: Vec::new(),
            initial: Vec::new(),
            live: Vec::new(),
            default_strategy: Placing::Pack,
            zone_strategies: BTreeMap::new(),
        };
        for (id, (mut host, quarters)) in hosts.into_iter().enumerate() {
            host.id = HostId(id as u32);
            let capacity = host.capacity();
            let initial = Usage {
                vcpus: (u64::from(capacity.vcpus) * quarters[0] / 4) as u32,
                memory_mib: capacity.memory_mib * quarters[1] / 4,
                disk_gib: capacity.disk_gib * quarters[2] / 4,
                gpus: (u64::from(capacity.gpus) * quarters[3] / 4) as u32,
            };
            scheduler.add_host(host.clone(), initial);
            model.hosts.push(host);
            model.initial.push(initial);
        }
        for op in ops {
            match op {
                Op::PlaceAndClaim(request) => {
                    check_place(&scheduler, &model, &request)?;
                    if let Ok(host) = scheduler.place_and_claim(&request) {
                        model.live.push((host, request));
                    }
                }
                Op::Place(request) => check_place(&scheduler, &model, &request)?,
                Op::Claim(host, request) => {
                    let host = HostId(host);
                    let admitted = model.admits(host, &request);
                    let claimed = scheduler.claim(host, &request);
                    prop_assert_eq!(claimed.is_ok(), admitted, "claim {:?} on {}", request, host);
                    if claimed.is_ok() {
                        model.live.push((host, request));
                    }
                }
                Op::Release(pick) => {
                    if !model.live.is_empty() {
                        let (host, request) = model.live.swap_remove(pick % model.live.len());
                        scheduler.release(host, &request).expect("host was added");
                    }
                }
                Op::SetState(host, state) => {
                    scheduler.set_state(HostId(host), state).expect("host was added");
                    model.hosts[host as usize].state = state;
                }
                Op::SetZoneStrategy(zone, strategy) => {
                    scheduler.set_zone_strategy(zone, strategy);
                    model.zone_strategies.insert(zone, strategy);
                }
                Op::SetDefaultStrategy(strategy) => {
                    scheduler.set_default_strategy(strategy);
                    model.default_strategy = strategy;
                }
            }
            check_invariants(&scheduler, &model)?;
        }
        for (host, request) in std::mem::take(&mut model.live) {
            scheduler.release(host, &request).expect("host was added");
        }
        for spec in &model.hosts {
            prop_assert_eq!(scheduler.usage(spec.id), Some(model.initial[spec.id.index()]));
            prop_assert_eq!(scheduler.group_members(GroupId(0)).count(), 0);
        }
        check_invariants(&scheduler, &model)?;
    }

    /// From empty hosts, releasing every instance leaves every host at zero.
    #[test]
    fn release_of_everything_returns_usage_to_zero(
        hosts in prop::collection::vec(host(), 1..8),
        requests in prop::collection::vec(request(), 0..60),
    ) {
        let mut scheduler = Scheduler::new();
        for (id, (mut host, _)) in hosts.iter().cloned().enumerate() {
            host.id = HostId(id as u32);
            scheduler.add_host(host, Usage::ZERO);
        }
        let placed: Vec<(HostId, Request)> = requests
            .into_iter()
            .filter_map(|request| Some((scheduler.place_and_claim(&request).ok()?, request)))
            .collect();
        for (host, request) in placed.iter().rev() {
            scheduler.release(*host, request).expect("host was added");
        }
        for id in 0..hosts.len() as u32 {
            prop_assert_eq!(scheduler.usage(HostId(id)), Some(Usage::ZERO));
        }
        for group in 0..GROUPS {
            prop_assert_eq!(scheduler.group_members(GroupId(group)).count(), 0);
        }
    }
}
