//! Where placement looks first, per zone. Scanning every host per decision is too slow for
//! a 10,000-host pack zone, so enabled hosts are filed by what they can still take:
//!
//! - *pristine* hosts (nothing on them) are grouped by shape — provider and capacity — so
//!   one check per shape answers for all its hosts and packing takes one only when no used
//!   host fits;
//! - *open* hosts are used and can still fit the smallest flavor ever claimed; under
//!   packing this set stays small because hosts fill up before new ones are opened;
//! - *full* hosts are used and cannot fit that smallest flavor, so they cannot fit any
//!   request at least that large and are skipped without being looked at;
//! - every enabled host is also ordered by load, for spread and for the rare request
//!   smaller than the smallest flavor, which the open set cannot answer.
//!
//! Every host is filed in exactly one class; a change to a host is always detach, change,
//! attach, which keeps the bookkeeping in one place.

use std::collections::{BTreeMap, BTreeSet};

use crate::filter;
use crate::host::{HostId, HostState, Slot, Usage};

/// Which part of the index holds a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Not enabled: in no index at all.
    Out,
    Pristine,
    Open,
    Full,
}

/// What makes two pristine hosts interchangeable for every filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Shape {
    pub(crate) provider: u32,
    pub(crate) capacity: Usage,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ZoneIndex {
    /// Unordered: packing compares every open host anyway, and order lets removal be O(1).
    pub(crate) open: Vec<HostId>,
    /// Lowest id first within a shape, so ties break the same way a full scan would.
    pub(crate) pristine: BTreeMap<Shape, BTreeSet<HostId>>,
    pub(crate) by_load: BTreeSet<(u64, HostId)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Index {
    pub(crate) zones: BTreeMap<u32, ZoneIndex>,
    /// Each open host's position in its zone's `open`, by host id.
    open_pos: Vec<u32>,
    /// The smallest amount of each resource any claimed instance needed; it only shrinks.
    smallest: Usage,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            zones: BTreeMap::new(),
            open_pos: Vec::new(),
            // Until something is claimed no used host counts as open, and the
            // scheduler scans instead: correct, and only until the first claim.
            smallest: Usage::MAX,
        }
    }
}

impl Index {
    /// Whether the open set holds every used host that could fit `demand`.
    pub(crate) fn answers(&self, demand: &Usage) -> bool {
        demand.covers(&self.smallest)
    }

    /// Lowers the smallest flavor to include `demand`; true when hosts filed as full must
    /// be looked at again because some of them may now be open.
    pub(crate) fn note_demand(&mut self, demand: &Usage) -> bool {
        let smallest = self.smallest.meet(*demand);
        let lowered = smallest != self.smallest;
        self.smallest = smallest;
        lowered
    }

    pub(crate) fn attach(&mut self, id: HostId, slot: &mut Slot) {
        if slot.host.state != HostState::Enabled {
            slot.class = Class::Out;
            return;
        }
        let zone = self.zones.entry(slot.host.zone).or_default();
        slot.load_key = slot.weights.load(&slot.used);
        zone.by_load.insert((slot.load_key, id));
        slot.class = if slot.is_pristine() {
            let shape = Shape {
                provider: slot.host.provider,
                capacity: slot.capacity,
            };
            zone.pristine.entry(shape).or_default().insert(id);
            Class::Pristine
        } else if filter::capacity(&slot.free(), &self.smallest).is_ok() {
            if self.open_pos.len() <= id.index() {
                self.open_pos.resize(id.index() + 1, 0);
            }
            // A zone with more than u32::MAX open hosts cannot exist: ids are u32.
            self.open_pos[id.index()] = zone.open.len() as u32;
            zone.open.push(id);
            Class::Open
        } else {
            Class::Full
        };
    }

    pub(crate) fn detach(&mut self, id: HostId, slot: &mut Slot) {
        let class = std::mem::replace(&mut slot.class, Class::Out);
        if class == Class::Out {
            return;
        }
        let Some(zone) = self.zones.get_mut(&slot.host.zone) else {
            debug_assert!(false, "{id} filed in a zone the index does not have");
            return;
        };
        zone.by_load.remove(&(slot.load_key, id));
        match class {
            Class::Pristine => {
                let shape = Shape {
                    provider: slot.host.provider,
                    capacity: slot.capacity,
                };
                if let Some(hosts) = zone.pristine.get_mut(&shape) {
                    hosts.remove(&id);
                    // Empty shapes would be visited by every placement in the zone.
                    if hosts.is_empty() {
                        zone.pristine.remove(&shape);
                    }
                }
            }
            Class::Open => {
                let pos = self.open_pos[id.index()] as usize;
                zone.open.swap_remove(pos);
                if let Some(&moved) = zone.open.get(pos) {
                    self.open_pos[moved.index()] = pos as u32;
                }
            }
            Class::Full | Class::Out => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;

    fn slot(id: u32, zone: u32, used_vcpus: u32) -> Slot {
        let host = Host {
            id: HostId(id),
            zone,
            provider: 0,
            state: HostState::Enabled,
            vcpus: 4,
            memory_mib: 8192,
            disk_gib: 100,
            gpus: 0,
            cpu_ratio_permille: 1000,
            mem_ratio_permille: 1000,
        };
        let used = Usage {
            vcpus: used_vcpus,
            ..Usage::ZERO
        };
        Slot::new(host, used, 0)
    }

    fn one_vcpu() -> Usage {
        Usage {
            vcpus: 1,
            ..Usage::ZERO
        }
    }

    #[test]
    fn hosts_are_filed_by_what_they_can_still_take() {
        let mut index = Index::default();
        index.note_demand(&one_vcpu());
        let mut empty = slot(0, 0, 0);
        let mut used = slot(1, 0, 2);
        let mut full = slot(2, 0, 4);
        index.attach(HostId(0), &mut empty);
        index.attach(HostId(1), &mut used);
        index.attach(HostId(2), &mut full);
        assert_eq!(
            (empty.class, used.class, full.class),
            (Class::Pristine, Class::Open, Class::Full)
        );
        let zone = &index.zones[&0];
        assert_eq!(zone.open, vec![HostId(1)]);
        assert_eq!(zone.pristine.values().flatten().count(), 1);
        assert_eq!(zone.by_load.len(), 3);
    }

    #[test]
    fn detaching_an_open_host_keeps_positions_right() {
        let mut index = Index::default();
        index.note_demand(&one_vcpu());
        let mut slots: Vec<Slot> = (0..4).map(|id| slot(id, 0, 1)).collect();
        for (id, slot) in slots.iter_mut().enumerate() {
            index.attach(HostId(id as u32), slot);
        }
        index.detach(HostId(0), &mut slots[0]);
        index.detach(HostId(2), &mut slots[2]);
        let mut open = index.zones[&0].open.clone();
        open.sort();
        assert_eq!(open, vec![HostId(1), HostId(3)]);
        index.detach(HostId(3), &mut slots[3]);
        index.detach(HostId(1), &mut slots[1]);
        assert!(index.zones[&0].open.is_empty());
        assert!(index.zones[&0].by_load.is_empty());
    }

    #[test]
    fn a_smaller_flavor_is_only_answered_after_it_is_noted() {
        let mut index = Index::default();
        let big = Usage {
            vcpus: 4,
            memory_mib: 4096,
            ..Usage::ZERO
        };
        assert!(!index.answers(&big));
        assert!(index.note_demand(&big));
        assert!(index.answers(&big));
        assert!(!index.answers(&one_vcpu()));
        assert!(!index.note_demand(&big));
    }

    #[test]
    fn disabled_hosts_are_in_no_index() {
        let mut index = Index::default();
        let mut host = slot(0, 0, 0);
        host.host.state = HostState::Maintenance;
        index.attach(HostId(0), &mut host);
        assert_eq!(host.class, Class::Out);
        assert!(index.zones.is_empty());
    }
}
