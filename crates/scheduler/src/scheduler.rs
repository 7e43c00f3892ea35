//! The placement engine: the host table, current usage and group membership, and the two
//! strategies that choose among hosts the filters accept. Deciding ([`Scheduler::place`])
//! and consuming ([`Scheduler::claim`]) are separate because the database is the source of
//! truth: the server claims there first and mirrors the claim here only once it holds.

use std::collections::{btree_map, BTreeMap};

use crate::explain::{ClaimError, NoValidHost, Rejections, UnknownHost};
use crate::filter::{self, GroupView};
use crate::group::Groups;
use crate::host::{Host, HostId, HostState, Slot, Usage};
use crate::index::{Class, Index, ZoneIndex};
use crate::request::{GroupId, Request, Strategy};

/// Hosts, their usage and group membership, and how each zone places.
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    slots: Vec<Option<Slot>>,
    hosts: u32,
    index: Index,
    groups: Groups,
    default_strategy: Strategy,
    zone_strategies: BTreeMap<u32, Strategy>,
}

/// A host that passed every filter and the number its strategy ranks it by.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    rank: u64,
    host: HostId,
}

impl Strategy {
    /// Pack wants the highest load after placing, spread the lowest load now; equal ranks
    /// go to the lowest id so that the index and a full scan always agree.
    fn keep_best(self, best: &mut Option<Candidate>, candidate: Candidate) {
        let better = match *best {
            None => true,
            Some(current) => match self {
                Strategy::Pack => (candidate.rank, current.host) > (current.rank, candidate.host),
                Strategy::Spread => (candidate.rank, candidate.host) < (current.rank, current.host),
            },
        };
        if better {
            *best = Some(candidate);
        }
    }

    fn rank(self, slot: &Slot, demand: &Usage) -> u64 {
        match self {
            Strategy::Pack => slot.load_with(demand),
            Strategy::Spread => slot.load_key,
        }
    }
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Adds a host with what its instances already use, or replaces the host with the same
    /// id (its group members stay; its usage becomes `usage`). Ids are table indices, so
    /// keep them dense.
    pub fn add_host(&mut self, host: Host, usage: Usage) {
        let id = host.id;
        if self.slots.len() <= id.index() {
            self.slots.resize_with(id.index() + 1, || None);
        }
        let entry = &mut self.slots[id.index()];
        let group_refs = match entry {
            Some(old) => {
                self.index.detach(id, old);
                old.group_refs
            }
            None => {
                self.hosts += 1;
                0
            }
        };
        let mut slot = Slot::new(host, usage, group_refs);
        self.index.attach(id, &mut slot);
        *entry = Some(slot);
    }

    /// Records an existing member of `group` on `host`, for rebuilding the scheduler from
    /// the database; its resources belong in the usage given to [`Scheduler::add_host`].
    pub fn restore_member(&mut self, group: GroupId, host: HostId) -> Result<(), UnknownHost> {
        self.change(host, |slot, groups| {
            groups.add(group, host);
            slot.group_refs = slot.group_refs.saturating_add(1);
        })
    }

    pub fn set_state(&mut self, host: HostId, state: HostState) -> Result<(), UnknownHost> {
        self.change(host, |slot, _| slot.host.state = state)
    }

    /// The strategy for requests without a zone and for zones without their own.
    pub fn set_default_strategy(&mut self, strategy: Strategy) {
        self.default_strategy = strategy;
    }

    pub fn set_zone_strategy(&mut self, zone: u32, strategy: Strategy) {
        self.zone_strategies.insert(zone, strategy);
    }

    pub fn strategy_for(&self, zone: Option<u32>) -> Strategy {
        zone.and_then(|zone| self.zone_strategies.get(&zone).copied())
            .unwrap_or(self.default_strategy)
    }

    pub fn host(&self, host: HostId) -> Option<&Host> {
        self.slot(host).map(|slot| &slot.host)
    }

    pub fn usage(&self, host: HostId) -> Option<Usage> {
        self.slot(host).map(|slot| slot.used)
    }

    /// Effective capacity: physical size times overcommit ratio.
    pub fn capacity(&self, host: HostId) -> Option<Usage> {
        self.slot(host).map(|slot| slot.capacity)
    }

    /// Hosts known, in any state.
    pub fn len(&self) -> usize {
        self.hosts as usize
    }

    pub fn is_empty(&self) -> bool {
        self.hosts == 0
    }

    /// The hosts holding members of `group`, with how many each holds, in no order.
    pub fn group_members(&self, group: GroupId) -> impl Iterator<Item = (HostId, u32)> + '_ {
        self.groups
            .get(group)
            .into_iter()
            .flat_map(|members| members.iter())
    }

    /// Chooses a host for `request` without consuming anything.
    pub fn place(&self, request: &Request) -> Result<HostId, NoValidHost> {
        self.choose(request).ok_or_else(|| self.explain(request))
    }

    /// Consumes `request`'s resources on `host` after checking every filter again: the
    /// host may have filled up or left service since the decision.
    pub fn claim(&mut self, host: HostId, request: &Request) -> Result<(), ClaimError> {
        let demand = request.demand();
        let slot = self.slot(host).ok_or(ClaimError::UnknownHost(host))?;
        filter::check(host, slot, request, &demand, self.group_view(request))
            .map_err(|filter| ClaimError::Rejected { host, filter })?;
        if self.index.note_demand(&demand) {
            self.refile_full();
        }
        let group = request.group.map(|(group, _)| group);
        self.change(host, |slot, groups| {
            slot.used = slot.used.saturating_add(demand);
            if let Some(group) = group {
                groups.add(group, host);
                slot.group_refs = slot.group_refs.saturating_add(1);
            }
        })
        .map_err(|UnknownHost(host)| ClaimError::UnknownHost(host))
    }

    /// Gives back what a claim of `request` on `host` consumed. Saturating: releasing more
    /// than was claimed leaves zero, never a wrapped-around giant.
    pub fn release(&mut self, host: HostId, request: &Request) -> Result<(), UnknownHost> {
        let demand = request.demand();
        let group = request.group.map(|(group, _)| group);
        self.change(host, |slot, groups| {
            slot.used = slot.used.saturating_sub(demand);
            if let Some(group) = group {
                if groups.remove(group, host) {
                    slot.group_refs = slot.group_refs.saturating_sub(1);
                }
            }
        })
    }

    /// [`Scheduler::place`] then [`Scheduler::claim`], for callers without a database claim
    /// in between (tests, simulations, benchmarks).
    pub fn place_and_claim(&mut self, request: &Request) -> Result<HostId, NoValidHost> {
        let host = self.place(request)?;
        match self.claim(host, request) {
            Ok(()) => Ok(host),
            // Place and claim run the same filters on the same state; this arm only keeps
            // a future divergence from turning into a panic.
            Err(_) => Err(self.explain(request)),
        }
    }

    fn slot(&self, host: HostId) -> Option<&Slot> {
        self.slots.get(host.index()).and_then(Option::as_ref)
    }

    /// Applies `change` to a host while it is out of the index, so the index never files a
    /// host under a state it no longer has.
    fn change(
        &mut self,
        host: HostId,
        change: impl FnOnce(&mut Slot, &mut Groups),
    ) -> Result<(), UnknownHost> {
        let slot = self
            .slots
            .get_mut(host.index())
            .and_then(Option::as_mut)
            .ok_or(UnknownHost(host))?;
        self.index.detach(host, slot);
        change(slot, &mut self.groups);
        self.index.attach(host, slot);
        Ok(())
    }

    /// After the smallest flavor shrank, some full hosts can take it and must become open.
    fn refile_full(&mut self) {
        for (id, slot) in self.slots.iter_mut().enumerate() {
            if let Some(slot) = slot.as_mut().filter(|slot| slot.class == Class::Full) {
                let host = HostId(id as u32);
                self.index.detach(host, slot);
                self.index.attach(host, slot);
            }
        }
    }

    fn group_view(&self, request: &Request) -> Option<GroupView<'_>> {
        request.group.map(|(group, policy)| GroupView {
            policy,
            members: self.groups.get(group),
        })
    }

    fn zones(&self, zone: Option<u32>) -> btree_map::Range<'_, u32, ZoneIndex> {
        match zone {
            Some(zone) => self.index.zones.range(zone..=zone),
            None => self.index.zones.range(..),
        }
    }

    fn choose(&self, request: &Request) -> Option<HostId> {
        let demand = request.demand();
        let group = self.group_view(request);
        let strategy = self.strategy_for(request.zone);
        let passes =
            |host: HostId, slot: &Slot| filter::check(host, slot, request, &demand, group).is_ok();
        let best = if let Some(members) = group.as_ref().and_then(GroupView::pinned) {
            // Only the group's hosts can take it: look at those, never the index.
            let mut best = None;
            for (host, _) in members.iter() {
                if let Some(slot) = self.slot(host).filter(|slot| passes(host, slot)) {
                    let rank = strategy.rank(slot, &demand);
                    strategy.keep_best(&mut best, Candidate { rank, host });
                }
            }
            best
        } else {
            match strategy {
                Strategy::Pack if self.index.answers(&demand) => {
                    self.pack_indexed(request.zone, &demand, passes)
                }
                Strategy::Pack => self.pack_scan(request.zone, &demand, passes),
                Strategy::Spread => self.spread(request.zone, passes),
            }
        };
        best.map(|candidate| candidate.host)
    }

    /// Best fit among open hosts; only when none fits, the best-fitting pristine shape.
    fn pack_indexed(
        &self,
        zone: Option<u32>,
        demand: &Usage,
        passes: impl Fn(HostId, &Slot) -> bool,
    ) -> Option<Candidate> {
        let mut best = None;
        for (_, index) in self.zones(zone) {
            for &host in &index.open {
                if let Some(slot) = self.slot(host).filter(|slot| passes(host, slot)) {
                    let rank = slot.load_with(demand);
                    Strategy::Pack.keep_best(&mut best, Candidate { rank, host });
                }
            }
        }
        if best.is_some() {
            return best;
        }
        for (_, index) in self.zones(zone) {
            // Hosts of one shape pass or fail every filter alike, so the first speaks
            // for all of them.
            for hosts in index.pristine.values() {
                let Some(&host) = hosts.first() else { continue };
                if let Some(slot) = self.slot(host).filter(|slot| passes(host, slot)) {
                    let rank = slot.load_with(demand);
                    Strategy::Pack.keep_best(&mut best, Candidate { rank, host });
                }
            }
        }
        best
    }

    /// Packing for a request smaller than any claimed so far, which full hosts might still
    /// fit: the same choice as [`Scheduler::pack_indexed`], by looking at every host.
    fn pack_scan(
        &self,
        zone: Option<u32>,
        demand: &Usage,
        passes: impl Fn(HostId, &Slot) -> bool,
    ) -> Option<Candidate> {
        let mut used = None;
        let mut pristine = None;
        for (_, index) in self.zones(zone) {
            for &(_, host) in &index.by_load {
                if let Some(slot) = self.slot(host).filter(|slot| passes(host, slot)) {
                    let candidate = Candidate {
                        rank: slot.load_with(demand),
                        host,
                    };
                    let best = if slot.is_pristine() {
                        &mut pristine
                    } else {
                        &mut used
                    };
                    Strategy::Pack.keep_best(best, candidate);
                }
            }
        }
        used.or(pristine)
    }

    /// The least loaded host: per zone, the first in load order that passes.
    fn spread(
        &self,
        zone: Option<u32>,
        passes: impl Fn(HostId, &Slot) -> bool,
    ) -> Option<Candidate> {
        let mut best = None;
        for (_, index) in self.zones(zone) {
            let first = index.by_load.iter().find_map(|&(rank, host)| {
                let slot = self.slot(host)?;
                passes(host, slot).then_some(Candidate { rank, host })
            });
            if let Some(candidate) = first {
                Strategy::Spread.keep_best(&mut best, candidate);
            }
        }
        best
    }

    /// Runs every host through the filters to say why none fits. Linear, but only on the
    /// path that ends in an error for the user.
    fn explain(&self, request: &Request) -> NoValidHost {
        let demand = request.demand();
        let group = self.group_view(request);
        let mut rejected = Rejections::default();
        for (id, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            if let Err(filter) = filter::check(HostId(id as u32), slot, request, &demand, group) {
                rejected.add(filter);
            }
        }
        NoValidHost {
            hosts: self.hosts,
            rejected,
        }
    }
}

#[cfg(test)]
mod tests;
