//! The consolidation planner: from where instances run and how busy they measure, a plan of
//! live migrations that empties hosts, so the rest run at the seeds' 60–80 % instead of
//! under 10 %. The platform admin sees the plan (moves, hosts freed, utilisation before and
//! after) and approves it; the server executes it one move at a time and may stop anywhere.
//!
//! Every prefix of the plan is a safe state: the moves are ordered so that each one lands
//! in room that exists at that point, under the ceiling, never beside a member of its
//! anti-affinity group, and always within its zone (live migration does not cross zones).
//! Members of affinity groups are never moved — one migration at a time would split the
//! group between two hosts — so, like instances that cannot live-migrate, they pin their
//! host. Maintenance and down hosts neither receive nor are emptied.
//!
//! Algorithm, per zone: hosts are tried least allocated first; each one's instances,
//! largest first, go to the first receiving host with room under the ceiling — pinned
//! hosts first (they stay in use anyway), then the fullest first; a host's moves are kept
//! only when every instance found a place, otherwise they are all given back and the host
//! is reported with the instance that did not fit. Only hosts already running instances
//! receive, so a plan never starts a host, and a host that received is not emptied later
//! (no instance moves twice). Finding the first fitting host is a descent in a max-tree
//! over the receivers' remaining room, which gives up after 512 receivers turned down, so
//! 100,000 instances on 10,000 hosts plan in well under a second (`examples/consolidate.rs`)
//! whatever the mix of hosts.
//!
//! Pure and deterministic: integers only, ties broken by id, and the input's order does
//! not matter as long as instance ids are unique.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use crate::group::IdHash;
use crate::host::{Host, HostId, HostState, Usage, Weights};
use crate::request::{GroupId, GroupPolicy};

/// An instance as the server numbers it for one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub u64);

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "instance #{}", self.0)
    }
}

/// A host as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanHost {
    pub id: HostId,
    pub zone: u32,
    /// Only `Enabled` hosts receive or are emptied.
    pub state: HostState,
    /// What may be handed out, overcommit included: [`Host::capacity`].
    pub capacity: Usage,
    /// Physical CPU threads: measured CPU use is a share of these, not of the overcommitted
    /// vCPUs.
    pub cores: u32,
}

impl PlanHost {
    /// The planner's view of a scheduler host.
    pub fn of(host: &Host) -> PlanHost {
        PlanHost {
            id: host.id,
            zone: host.zone,
            state: host.state,
            capacity: host.capacity(),
            cores: host.vcpus,
        }
    }
}

/// A running (or placed) instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInstance {
    pub id: InstanceId,
    pub host: HostId,
    /// What it holds on its host (its flavor), the same amounts the scheduler claims.
    pub demand: Usage,
    /// Measured CPU use in thousandths of a vCPU (1000: one vCPU busy all the time), e.g.
    /// averaged over the last day.
    pub cpu_used_millis: u32,
    pub group: Option<(GroupId, GroupPolicy)>,
    /// False when it cannot live-migrate (volumes attached, stopped on a local disk, …):
    /// it stays, and its host cannot be emptied.
    pub movable: bool,
}

/// How full receiving hosts may become and when a plan is worth proposing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The most a receiving host may hold after a move, in thousandths of its capacity, for
    /// allocated vCPUs, allocated memory and measured CPU each. Values above 1000 count as
    /// 1000; disk and GPUs are always allowed up to capacity.
    pub ceiling_permille: u32,
    /// A zone whose plan frees fewer hosts than this proposes nothing: moving guests costs
    /// each a short pause, which a single freed host may not be worth.
    pub min_hosts_freed: u32,
}

impl Default for Target {
    fn default() -> Target {
        Target {
            ceiling_permille: 800,
            min_hosts_freed: 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsolidationInput {
    /// Ids should be unique; a repeated id keeps its first entry.
    pub hosts: Vec<PlanHost>,
    /// Instances on hosts not listed are ignored.
    pub instances: Vec<PlanInstance>,
    pub target: Target,
}

/// One live migration of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub instance: InstanceId,
    pub from: HostId,
    pub to: HostId,
}

/// Why a host that runs instances is not freed by the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// In maintenance or down: left alone.
    NotEnabled(HostState),
    /// Runs an instance that cannot live-migrate.
    Unmovable(InstanceId),
    /// Runs a member of an affinity group, which is never moved.
    Affinity(InstanceId),
    /// This instance found no other host with room under the ceiling (among the first 512
    /// its search turned down, a bound on the work for mixes of hosts each short of a
    /// different resource).
    NoRoom(InstanceId),
    /// Receives instances from hosts the plan frees.
    Receiving,
    /// Its zone's plan frees fewer hosts than [`Target::min_hosts_freed`].
    NotWorthIt,
}

impl Skip {
    /// A stable name for API responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotEnabled(_) => "not_enabled",
            Skip::Unmovable(_) => "unmovable",
            Skip::Affinity(_) => "affinity",
            Skip::NoRoom(_) => "no_room",
            Skip::Receiving => "receiving",
            Skip::NotWorthIt => "not_worth_it",
        }
    }
}

/// Sums over the hosts running at least one instance (in any state). The shares are these
/// sums' ratios, i.e. the capacity-weighted mean of the hosts' shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Occupancy {
    pub hosts_in_use: u32,
    pub allocated: Usage,
    pub capacity: Usage,
    pub cpu_used_millis: u64,
    pub cores: u64,
}

impl Occupancy {
    /// Allocated vCPUs in thousandths of the (overcommitted) vCPU capacity.
    pub fn vcpu_share_permille(&self) -> u32 {
        permille(
            u128::from(self.allocated.vcpus),
            u128::from(self.capacity.vcpus),
        )
    }

    /// Allocated memory in thousandths of the (overcommitted) memory capacity.
    pub fn memory_share_permille(&self) -> u32 {
        permille(
            u128::from(self.allocated.memory_mib),
            u128::from(self.capacity.memory_mib),
        )
    }

    /// Measured CPU use in thousandths of the physical threads.
    pub fn measured_cpu_permille(&self) -> u32 {
        permille(
            u128::from(self.cpu_used_millis),
            u128::from(self.cores) * 1000,
        )
    }

    fn add(&mut self, host: &PlanHost, used: Usage, cpu_used_millis: u64) {
        self.hosts_in_use += 1;
        self.allocated = self.allocated.saturating_add(used);
        self.capacity = self.capacity.saturating_add(host.capacity);
        self.cpu_used_millis = self.cpu_used_millis.saturating_add(cpu_used_millis);
        self.cores = self.cores.saturating_add(u64::from(host.cores));
    }
}

fn permille(part: u128, whole: u128) -> u32 {
    let ratio = (part * 1000).checked_div(whole).unwrap_or(0);
    u32::try_from(ratio).unwrap_or(u32::MAX)
}

/// Utilisation overall and for every zone that has hosts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Utilisation {
    pub overall: Occupancy,
    pub zones: BTreeMap<u32, Occupancy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// In execution order: each host's moves together, hosts in the order they are freed.
    pub moves: Vec<Move>,
    /// In the order the moves empty them.
    pub freed_hosts: Vec<HostId>,
    pub before: Utilisation,
    pub after: Utilisation,
    /// Every host running instances before the plan and not freed by it, by id.
    pub skipped: Vec<(HostId, Skip)>,
}

/// How many receivers one instance's search may reach and turn down (short of room in a
/// resource the tree's maxima could not rule out, or holding a member of its anti-affinity
/// group) before it counts as finding no room. Without it, receivers each short of a
/// different resource would make every search visit them all: this keeps a plan at
/// O(instances × this × log hosts) whatever the mix.
const SEARCH_BUDGET: u32 = 512;

/// Room is compared in five dimensions: allocated vCPUs, memory, disk, GPUs, measured CPU.
type Room = [u64; 5];

fn need(instance: &PlanInstance) -> Room {
    let demand = &instance.demand;
    [
        u64::from(demand.vcpus),
        demand.memory_mib,
        demand.disk_gib,
        u64::from(demand.gpus),
        u64::from(instance.cpu_used_millis),
    ]
}

/// A resource the instance does not use never rejects, as in the scheduler's filters.
fn fits(room: &Room, need: &Room) -> bool {
    room.iter()
        .zip(need)
        .all(|(room, need)| *need == 0 || need <= room)
}

/// A host with what it holds while the plan is made.
#[derive(Debug, Clone)]
struct Bin {
    host: PlanHost,
    /// Allocation limits under the ceiling: vCPUs, memory, disk, GPUs, measured CPU.
    limit: Room,
    used: Room,
    /// Indices into the sorted instances, largest first.
    instances: Vec<usize>,
}

impl Bin {
    fn room(&self) -> Room {
        let mut room = [0; 5];
        for (i, slot) in room.iter_mut().enumerate() {
            *slot = self.limit[i].saturating_sub(self.used[i]);
        }
        room
    }

    fn add(&mut self, need: &Room) {
        for (used, need) in self.used.iter_mut().zip(need) {
            *used = used.saturating_add(*need);
        }
    }

    fn sub(&mut self, need: &Room) {
        for (used, need) in self.used.iter_mut().zip(need) {
            *used = used.saturating_sub(*need);
        }
    }
}

fn limits(host: &PlanHost, ceiling_permille: u32) -> Room {
    let ceiling = u128::from(ceiling_permille.min(1000));
    let scale = |amount: u64| u64::try_from(u128::from(amount) * ceiling / 1000).unwrap_or(0);
    [
        scale(u64::from(host.capacity.vcpus)),
        scale(host.capacity.memory_mib),
        host.capacity.disk_gib,
        u64::from(host.capacity.gpus),
        scale(u64::from(host.cores) * 1000),
    ]
}

/// The receivers in a fixed order, each leaf its room (or closed), each inner node the
/// per-dimension maximum of its open leaves: a subtree whose maximum cannot hold the
/// instance is never entered.
struct RoomTree {
    size: usize,
    max: Vec<Room>,
    open: Vec<bool>,
    /// The least any instance to move needs of each resource: a host with less room than
    /// that in any of them can take nothing and is closed, so that hosts full in one
    /// resource do not lure searches into their subtrees with room in another.
    floor: Room,
}

impl RoomTree {
    fn new(leaves: usize, floor: Room) -> RoomTree {
        let size = leaves.next_power_of_two().max(1);
        RoomTree {
            size,
            max: vec![[0; 5]; 2 * size],
            open: vec![false; 2 * size],
            floor,
        }
    }

    fn set(&mut self, leaf: usize, room: Option<Room>) {
        let floor = &self.floor;
        let room = room.filter(|room| room.iter().zip(floor).all(|(room, floor)| room >= floor));
        let mut node = self.size + leaf;
        self.open[node] = room.is_some();
        self.max[node] = room.unwrap_or([0; 5]);
        while node > 1 {
            node /= 2;
            let (left, right) = (2 * node, 2 * node + 1);
            self.open[node] = self.open[left] || self.open[right];
            let mut max = [0; 5];
            for (i, slot) in max.iter_mut().enumerate() {
                *slot = self.max[left][i].max(self.max[right][i]);
            }
            self.max[node] = max;
        }
    }

    /// The first open leaf at or after `from` whose room holds `need`, unless `budget`
    /// runs out first: each leaf reached that does not fit spends one.
    fn first_fit(&self, from: usize, need: &Room, budget: &mut u32) -> Option<usize> {
        self.find(1, 0, self.size, from, need, budget)
    }

    fn find(
        &self,
        node: usize,
        low: usize,
        high: usize,
        from: usize,
        need: &Room,
        budget: &mut u32,
    ) -> Option<usize> {
        if *budget == 0 || high <= from || !self.open[node] {
            return None;
        }
        if !fits(&self.max[node], need) {
            if high - low == 1 {
                *budget -= 1;
            }
            return None;
        }
        if high - low == 1 {
            return Some(low);
        }
        let middle = (low + high) / 2;
        self.find(2 * node, low, middle, from, need, budget)
            .or_else(|| self.find(2 * node + 1, middle, high, from, need, budget))
    }
}

/// Proposes the moves that free the most lightly used hosts; see the module documentation.
pub fn plan_consolidation(input: &ConsolidationInput) -> Plan {
    let mut hosts: Vec<&PlanHost> = input.hosts.iter().collect();
    hosts.sort_by_key(|host| host.id);
    hosts.dedup_by_key(|host| host.id);
    let position: HashMap<HostId, usize, IdHash> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| (host.id, i))
        .collect();

    // Largest first within a host, then by id, whatever order the input came in.
    let mut instances: Vec<&PlanInstance> = input
        .instances
        .iter()
        .filter(|instance| position.contains_key(&instance.host))
        .collect();
    instances.sort_by_key(|instance| (Reverse(instance.demand), instance.id));

    let ceiling = input.target.ceiling_permille;
    let mut bins: Vec<Bin> = hosts
        .iter()
        .map(|host| Bin {
            host: (*host).clone(),
            limit: limits(host, ceiling),
            used: [0; 5],
            instances: Vec::new(),
        })
        .collect();
    let mut location: Vec<usize> = Vec::with_capacity(instances.len());
    for (i, instance) in instances.iter().enumerate() {
        let bin = position[&instance.host];
        bins[bin].add(&need(instance));
        bins[bin].instances.push(i);
        location.push(bin);
    }
    let before = utilisation(&bins, &instances, &location);

    let mut zones: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, bin) in bins.iter().enumerate() {
        zones.entry(bin.host.zone).or_default().push(i);
    }
    let mut planner = Planner {
        instances: &instances,
        bins,
        location,
        anti_affinity: HashMap::default(),
        reasons: vec![None; hosts.len()],
        leaf_of: vec![0; hosts.len()],
        target: input.target,
        moves: Vec::new(),
        origins: Vec::new(),
        freed: Vec::new(),
        skipped: Vec::new(),
    };
    for instance in &instances {
        if let Some((group, GroupPolicy::AntiAffinity)) = instance.group {
            *planner
                .anti_affinity
                .entry((group, position[&instance.host]))
                .or_insert(0) += 1;
        }
    }
    for members in zones.values() {
        planner.plan_zone(members);
    }

    let after = utilisation(&planner.bins, &instances, &planner.location);
    let mut skipped = planner.skipped;
    skipped.sort_by_key(|(host, _)| *host);
    Plan {
        moves: planner.moves,
        freed_hosts: planner.freed,
        before,
        after,
        skipped,
    }
}

fn utilisation(bins: &[Bin], instances: &[&PlanInstance], location: &[usize]) -> Utilisation {
    let mut used = vec![(0u32, Usage::ZERO, 0u64); bins.len()];
    for (instance, &bin) in instances.iter().zip(location) {
        let (count, demand, cpu) = &mut used[bin];
        *count += 1;
        *demand = demand.saturating_add(instance.demand);
        *cpu = cpu.saturating_add(u64::from(instance.cpu_used_millis));
    }
    let mut result = Utilisation::default();
    for (bin, (count, demand, cpu)) in bins.iter().zip(used) {
        let zone = result.zones.entry(bin.host.zone).or_default();
        if count > 0 {
            zone.add(&bin.host, demand, cpu);
            result.overall.add(&bin.host, demand, cpu);
        }
    }
    result
}

struct Planner<'a> {
    instances: &'a [&'a PlanInstance],
    bins: Vec<Bin>,
    /// Each instance's bin as the committed moves leave it.
    location: Vec<usize>,
    /// Anti-affinity members per (group, bin).
    anti_affinity: HashMap<(GroupId, usize), u32, IdHash>,
    /// Why each bin of the zone being planned cannot be emptied, once known.
    reasons: Vec<Option<Skip>>,
    /// Each receiver's leaf in the zone's tree.
    leaf_of: Vec<usize>,
    target: Target,
    moves: Vec<Move>,
    /// For each move, the instance's index and the bin it left.
    origins: Vec<(usize, usize)>,
    freed: Vec<HostId>,
    skipped: Vec<(HostId, Skip)>,
}

impl Planner<'_> {
    fn plan_zone(&mut self, members: &[usize]) {
        let mut in_use = Vec::new();
        for &bin in members {
            let host = &self.bins[bin].host;
            if self.bins[bin].instances.is_empty() {
                continue;
            }
            if host.state != HostState::Enabled {
                self.skipped.push((host.id, Skip::NotEnabled(host.state)));
            } else {
                in_use.push(bin);
            }
        }
        let load = |bin: &Bin| {
            let used = Usage {
                vcpus: u32::try_from(bin.used[0]).unwrap_or(u32::MAX),
                memory_mib: bin.used[1],
                disk_gib: bin.used[2],
                gpus: u32::try_from(bin.used[3]).unwrap_or(u32::MAX),
            };
            Weights::of(&bin.host.capacity).load(&used)
        };

        // Pinned hosts stay in use whatever happens, so they receive first; then the
        // fullest first. Hosts to empty go least full first.
        for &bin in &in_use {
            self.reasons[bin] = self.pin(bin);
        }
        // Taken out for the zone, so that moving instances may borrow the planner.
        let mut reasons = std::mem::take(&mut self.reasons);
        let mut leaf_of = std::mem::take(&mut self.leaf_of);
        let mut receivers = in_use.clone();
        receivers.sort_by_key(|&bin| {
            (
                reasons[bin].is_none(),
                Reverse(load(&self.bins[bin])),
                self.bins[bin].host.id,
            )
        });
        let mut floor = [u64::MAX; 5];
        for &bin in in_use.iter().filter(|&&bin| reasons[bin].is_none()) {
            for &i in &self.bins[bin].instances {
                for (floor, need) in floor.iter_mut().zip(need(self.instances[i])) {
                    *floor = (*floor).min(need);
                }
            }
        }
        let mut tree = RoomTree::new(receivers.len(), floor);
        for (leaf, &bin) in receivers.iter().enumerate() {
            leaf_of[bin] = leaf;
            tree.set(leaf, Some(self.bins[bin].room()));
        }
        let mut candidates = in_use.clone();
        candidates.sort_by_key(|&bin| {
            let bin = &self.bins[bin];
            (load(bin), bin.instances.len(), bin.host.id)
        });

        let mut received = vec![false; receivers.len()];
        let moves_before = self.moves.len();
        let freed_before = self.freed.len();
        for bin in candidates {
            let leaf = leaf_of[bin];
            if received[leaf] {
                continue;
            }
            if reasons[bin].is_some() {
                continue;
            }
            tree.set(leaf, None);
            match self.empty(bin, &receivers, &mut tree) {
                Ok(targets) => {
                    for target in targets {
                        received[leaf_of[target]] = true;
                    }
                    self.freed.push(self.bins[bin].host.id);
                }
                Err(instance) => {
                    reasons[bin] = Some(Skip::NoRoom(instance));
                    tree.set(leaf, Some(self.bins[bin].room()));
                }
            }
        }

        let freed = &self.freed[freed_before..];
        let worth_it = freed.len() as u64 >= u64::from(self.target.min_hosts_freed);
        if !worth_it {
            // Zones share nothing, so only the instances' locations need to be put back
            // for the utilisation after the plan.
            self.moves.truncate(moves_before);
            for (i, from) in self.origins.split_off(moves_before) {
                self.location[i] = from;
            }
            self.freed.truncate(freed_before);
        }
        let freed: std::collections::HashSet<HostId> =
            self.freed[freed_before..].iter().copied().collect();
        for bin in in_use {
            let id = self.bins[bin].host.id;
            if freed.contains(&id) {
                continue;
            }
            // What keeps it in use: a pin, else taking instances (which came after any
            // failed attempt to empty it), else the instance that found no room.
            let reason = match reasons[bin] {
                Some(pin @ (Skip::Unmovable(_) | Skip::Affinity(_))) => pin,
                _ if worth_it && received[leaf_of[bin]] => Skip::Receiving,
                Some(reason) => reason,
                None => Skip::NotWorthIt,
            };
            self.skipped.push((id, reason));
        }
        self.reasons = reasons;
        self.leaf_of = leaf_of;
    }

    /// The first instance that pins `bin`, in the bin's order.
    fn pin(&self, bin: usize) -> Option<Skip> {
        self.bins[bin].instances.iter().find_map(|&i| {
            let instance = self.instances[i];
            if !instance.movable {
                Some(Skip::Unmovable(instance.id))
            } else if matches!(instance.group, Some((_, GroupPolicy::Affinity))) {
                Some(Skip::Affinity(instance.id))
            } else {
                None
            }
        })
    }

    /// Moves every instance off `bin` (closed in the tree) and returns the bins that took
    /// them, or gives every tentative move back and names the instance that found no room.
    fn empty(
        &mut self,
        bin: usize,
        receivers: &[usize],
        tree: &mut RoomTree,
    ) -> Result<Vec<usize>, InstanceId> {
        let mut placed: Vec<(usize, usize, usize)> = Vec::new();
        let list = self.bins[bin].instances.clone();
        let mut failed = None;
        for &i in &list {
            let instance = self.instances[i];
            let need = need(instance);
            let group = match instance.group {
                Some((group, GroupPolicy::AntiAffinity)) => Some(group),
                _ => None,
            };
            let mut from = 0;
            let mut budget = SEARCH_BUDGET;
            let found = loop {
                let Some(leaf) = tree.first_fit(from, &need, &mut budget) else {
                    break None;
                };
                let target = receivers[leaf];
                let clash = group.is_some_and(|group| {
                    self.anti_affinity
                        .get(&(group, target))
                        .is_some_and(|&count| count > 0)
                });
                if !clash {
                    break Some((leaf, target));
                }
                budget = budget.saturating_sub(1);
                from = leaf + 1;
            };
            let Some((leaf, target)) = found else {
                failed = Some(instance.id);
                break;
            };
            self.bins[target].add(&need);
            if let Some(group) = group {
                *self.anti_affinity.entry((group, target)).or_insert(0) += 1;
            }
            tree.set(leaf, Some(self.bins[target].room()));
            placed.push((i, target, leaf));
        }

        if let Some(instance) = failed {
            for &(i, target, leaf) in placed.iter().rev() {
                let moved = self.instances[i];
                self.bins[target].sub(&need(moved));
                if let Some((group, GroupPolicy::AntiAffinity)) = moved.group {
                    if let Some(count) = self.anti_affinity.get_mut(&(group, target)) {
                        *count -= 1;
                    }
                }
                tree.set(leaf, Some(self.bins[target].room()));
            }
            return Err(instance);
        }

        let from = self.bins[bin].host.id;
        let mut targets = Vec::with_capacity(placed.len());
        for (i, target, _) in placed {
            let moved = self.instances[i];
            self.bins[bin].sub(&need(moved));
            if let Some((group, GroupPolicy::AntiAffinity)) = moved.group {
                if let Some(count) = self.anti_affinity.get_mut(&(group, bin)) {
                    *count -= 1;
                }
            }
            self.bins[target].instances.push(i);
            self.location[i] = target;
            self.origins.push((i, bin));
            self.moves.push(Move {
                instance: moved.id,
                from,
                to: self.bins[target].host.id,
            });
            targets.push(target);
        }
        self.bins[bin].instances.clear();
        Ok(targets)
    }
}

#[cfg(test)]
mod tests;
