//! Consolidation benchmark: 10,000 hosts in 4 zones running 100,000 instances spread at
//! random (Jinan before: under 10 % measured CPU), planned at the default 80 % ceiling.
//! One instance in twenty cannot live-migrate, one in ten belongs to a three-member
//! anti-affinity group, one in a hundred to an affinity pair; a second run makes every
//! instance movable and drops the affinity pairs, to compare with the memory lower bound. Prints the planning time
//! (best of five), the plan's size and the utilisation before and after, and fails when
//! planning takes a second or more.
//!
//! Run: `cargo run --release -p zy-scheduler --example consolidate`

use std::process::ExitCode;
use std::time::{Duration, Instant};

#[path = "../benches/support/seeds.rs"]
mod seeds;

use seeds::{flavors, host, Rng};
use zy_scheduler::{
    plan_consolidation, ConsolidationInput, GroupId, GroupPolicy, HostId, InstanceId, Occupancy,
    PlanHost, PlanInstance, Target, Usage,
};

const HOSTS: u32 = 10_000;
const ZONES: u32 = 4;
const INSTANCES: usize = 100_000;
const LIMIT: Duration = Duration::from_secs(1);

fn input(pins: bool) -> ConsolidationInput {
    let hosts: Vec<PlanHost> = (0..HOSTS)
        .map(|id| PlanHost::of(&host(id, id % ZONES)))
        .collect();
    let flavors = flavors();
    let mut rng = Rng(0x5eed_c0de);
    let mut instances = Vec::with_capacity(INSTANCES);
    let mut group = 0;
    while instances.len() < INSTANCES {
        let (vcpus, gib) = rng.weighted(&flavors);
        let host = rng.below(u64::from(HOSTS)) as u32;
        let roll = rng.below(100);
        let (members, policy) = match roll {
            0 if pins => (2, Some(GroupPolicy::Affinity)),
            1..=10 => (3, Some(GroupPolicy::AntiAffinity)),
            _ => (1, None),
        };
        group += 1;
        for member in 0..members {
            // Anti-affinity members on distinct hosts of one zone, affinity pairs together.
            let on = match policy {
                Some(GroupPolicy::AntiAffinity) => (host + ZONES * member) % HOSTS,
                _ => host,
            };
            let id = instances.len() as u64;
            instances.push(PlanInstance {
                id: InstanceId(id),
                host: HostId(on),
                demand: Usage {
                    vcpus,
                    memory_mib: gib * 1024,
                    disk_gib: 40 + 20 * rng.below(10),
                    gpus: 0,
                },
                // 2–25 % of its vCPUs busy.
                cpu_used_millis: vcpus * (20 + rng.below(231) as u32),
                group: policy.map(|policy| (GroupId(group), policy)),
                movable: rng.below(20) != 0 || !pins,
            });
        }
    }
    instances.truncate(INSTANCES);
    ConsolidationInput {
        hosts,
        instances,
        target: Target::default(),
    }
}

fn describe(label: &str, occupancy: &Occupancy) {
    println!(
        "{label}: {} hosts in use, vCPUs {:.1} % allocated, memory {:.1} % allocated, CPU {:.1} % measured",
        occupancy.hosts_in_use,
        f64::from(occupancy.vcpu_share_permille()) / 10.0,
        f64::from(occupancy.memory_share_permille()) / 10.0,
        f64::from(occupancy.measured_cpu_permille()) / 10.0,
    );
}

fn main() -> ExitCode {
    let mut ok = true;
    for (label, pins) in [("with pins", true), ("all movable", false)] {
        println!("== {label}");
        ok &= run(&input(pins));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Plans `input` five times; false when the best time misses the limit.
fn run(input: &ConsolidationInput) -> bool {
    let mut best = Duration::MAX;
    let mut plan = None;
    for _ in 0..5 {
        let start = Instant::now();
        let planned = plan_consolidation(input);
        best = best.min(start.elapsed());
        plan = Some(planned);
    }
    let Some(plan) = plan else {
        return false;
    };
    println!(
        "{} hosts, {} instances: planned in {:.1} ms (best of 5)",
        input.hosts.len(),
        input.instances.len(),
        best.as_secs_f64() * 1000.0
    );
    println!(
        "{} moves free {} hosts; {} hosts stay in use",
        plan.moves.len(),
        plan.freed_hosts.len(),
        plan.skipped.len()
    );
    let mut reasons = std::collections::BTreeMap::new();
    for (_, skip) in &plan.skipped {
        *reasons.entry(skip.as_str()).or_insert(0) += 1;
    }
    println!("why the others stay: {reasons:?}");
    // No plan can do better than keeping every pinned host, nor than the memory the
    // instances hold at the ceiling.
    let mut pinned: Vec<HostId> = input
        .instances
        .iter()
        .filter(|i| !i.movable || matches!(i.group, Some((_, GroupPolicy::Affinity))))
        .map(|i| i.host)
        .collect();
    pinned.sort();
    pinned.dedup();
    let before = &plan.before.overall;
    let by_memory = before.allocated.memory_mib * 1000
        / (u64::from(Target::default().ceiling_permille) * 512 * 1024);
    println!(
        "lower bounds: {} pinned hosts, {} hosts of memory at the ceiling",
        pinned.len(),
        by_memory
    );
    describe("before", &plan.before.overall);
    describe("after ", &plan.after.overall);
    if best >= LIMIT {
        eprintln!("planning took {best:?}, the limit is {LIMIT:?}");
        return false;
    }
    true
}
