//! Hosts as the scheduler sees them: where they are, how big they are, how far they may be
//! overcommitted, and the integer usage arithmetic every filter and index shares. Capacity
//! never touches floating point, so two server replicas fed the same rows reach the same
//! decision bit for bit.

use crate::index::Class;

/// A host's position in the scheduler's host table. The server maps its database rows onto
/// dense indices `0..n`; the table grows to the largest id it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub u32);

impl HostId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host #{}", self.0)
    }
}

/// Only `Enabled` hosts receive instances; the other two keep what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostState {
    #[default]
    Enabled,
    Maintenance,
    Down,
}

/// A physical host with its overcommit ratios.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub id: HostId,
    pub zone: u32,
    pub provider: u32,
    pub state: HostState,
    /// Physical cores; `cpu_ratio_permille` turns them into schedulable vCPUs.
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    /// 4000 means 4.0 vCPUs per physical core.
    pub cpu_ratio_permille: u32,
    /// 1000 means no memory overcommit.
    pub mem_ratio_permille: u32,
}

impl Host {
    /// What may be handed out: physical size times ratio, rounded down. Disk and GPUs are
    /// never overcommitted because a thin disk that fills up or a shared GPU fails the
    /// instance rather than slowing it.
    pub fn capacity(&self) -> Usage {
        Usage {
            vcpus: scale_u32(self.vcpus, self.cpu_ratio_permille),
            memory_mib: scale_u64(self.memory_mib, self.mem_ratio_permille),
            disk_gib: self.disk_gib,
            gpus: self.gpus,
        }
    }
}

fn scale_u32(amount: u32, permille: u32) -> u32 {
    let scaled = u64::from(amount) * u64::from(permille) / 1000;
    u32::try_from(scaled).unwrap_or(u32::MAX)
}

fn scale_u64(amount: u64, permille: u32) -> u64 {
    let scaled = u128::from(amount) * u128::from(permille) / 1000;
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// An amount of every schedulable resource: what a host has handed out, what it can hand
/// out, or what one instance needs. The derived order is lexicographic, there only so that
/// host shapes can key a map; [`Usage::covers`] is the comparison that means "fits".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usage {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
}

impl Usage {
    pub const ZERO: Usage = Usage {
        vcpus: 0,
        memory_mib: 0,
        disk_gib: 0,
        gpus: 0,
    };

    /// Larger than any real demand: the smallest flavor before any has been seen.
    pub(crate) const MAX: Usage = Usage {
        vcpus: u32::MAX,
        memory_mib: u64::MAX,
        disk_gib: u64::MAX,
        gpus: u32::MAX,
    };

    pub fn is_zero(&self) -> bool {
        *self == Usage::ZERO
    }

    pub fn saturating_add(self, other: Usage) -> Usage {
        Usage {
            vcpus: self.vcpus.saturating_add(other.vcpus),
            memory_mib: self.memory_mib.saturating_add(other.memory_mib),
            disk_gib: self.disk_gib.saturating_add(other.disk_gib),
            gpus: self.gpus.saturating_add(other.gpus),
        }
    }

    pub fn saturating_sub(self, other: Usage) -> Usage {
        Usage {
            vcpus: self.vcpus.saturating_sub(other.vcpus),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            disk_gib: self.disk_gib.saturating_sub(other.disk_gib),
            gpus: self.gpus.saturating_sub(other.gpus),
        }
    }

    /// The smaller amount of each resource.
    pub(crate) fn meet(self, other: Usage) -> Usage {
        Usage {
            vcpus: self.vcpus.min(other.vcpus),
            memory_mib: self.memory_mib.min(other.memory_mib),
            disk_gib: self.disk_gib.min(other.disk_gib),
            gpus: self.gpus.min(other.gpus),
        }
    }

    /// At least `other` in every resource.
    pub fn covers(&self, other: &Usage) -> bool {
        self.vcpus >= other.vcpus
            && self.memory_mib >= other.memory_mib
            && self.disk_gib >= other.disk_gib
            && self.gpus >= other.gpus
    }
}

/// Fixed-point `1 / capacity` per resource, so that a host's load is four multiplications
/// instead of four divisions in the placement hot loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Weights([u64; 4]);

/// One resource at full capacity weighs 2^40; four of them still fit a u64 many times over.
const FULL: u64 = 1 << 40;

impl Weights {
    pub(crate) fn of(capacity: &Usage) -> Weights {
        // A resource the host lacks (no GPUs) must not make it look busy; one larger than
        // FULL cannot be weighed with precision and is left out rather than rounded wrongly.
        let weight = |cap: u64| FULL.checked_div(cap).unwrap_or(0);
        Weights([
            weight(u64::from(capacity.vcpus)),
            weight(capacity.memory_mib),
            weight(capacity.disk_gib),
            weight(u64::from(capacity.gpus)),
        ])
    }

    /// The sum of each resource's used fraction, scaled by 2^40: one number to rank hosts
    /// by how busy they are.
    pub(crate) fn load(&self, used: &Usage) -> u64 {
        let [vcpus, memory, disk, gpus] = self.0;
        u64::from(used.vcpus)
            .saturating_mul(vcpus)
            .saturating_add(used.memory_mib.saturating_mul(memory))
            .saturating_add(used.disk_gib.saturating_mul(disk))
            .saturating_add(u64::from(used.gpus).saturating_mul(gpus))
    }
}

/// A host with its usage and what the indices need to find it again.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) host: Host,
    pub(crate) capacity: Usage,
    pub(crate) used: Usage,
    pub(crate) weights: Weights,
    /// Group members on this host, summed over all groups: a host holding none and using
    /// nothing is interchangeable with every other empty host of its shape.
    pub(crate) group_refs: u32,
    pub(crate) class: Class,
    /// The load this host is filed under in its zone's load index.
    pub(crate) load_key: u64,
}

impl Slot {
    pub(crate) fn new(host: Host, used: Usage, group_refs: u32) -> Slot {
        let capacity = host.capacity();
        Slot {
            weights: Weights::of(&capacity),
            host,
            capacity,
            used,
            group_refs,
            class: Class::Out,
            load_key: 0,
        }
    }

    pub(crate) fn is_pristine(&self) -> bool {
        self.used.is_zero() && self.group_refs == 0
    }

    pub(crate) fn free(&self) -> Usage {
        self.capacity.saturating_sub(self.used)
    }

    /// The load after placing `demand` here: pack prefers the highest.
    pub(crate) fn load_with(&self, demand: &Usage) -> u64 {
        self.weights.load(&self.used.saturating_add(*demand))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vcpus: u32, cpu_ratio: u32, memory_mib: u64, mem_ratio: u32) -> Host {
        Host {
            id: HostId(0),
            zone: 0,
            provider: 0,
            state: HostState::Enabled,
            vcpus,
            memory_mib,
            disk_gib: 100,
            gpus: 1,
            cpu_ratio_permille: cpu_ratio,
            mem_ratio_permille: mem_ratio,
        }
    }

    #[test]
    fn capacity_applies_overcommit_to_cpu_and_memory_only() {
        let capacity = host(64, 4000, 1024, 1500).capacity();
        assert_eq!(capacity.vcpus, 256);
        assert_eq!(capacity.memory_mib, 1536);
        assert_eq!(capacity.disk_gib, 100);
        assert_eq!(capacity.gpus, 1);
    }

    #[test]
    fn capacity_rounds_down_and_never_overflows() {
        assert_eq!(host(3, 1500, 3, 1000).capacity().vcpus, 4);
        let huge = host(u32::MAX, u32::MAX, u64::MAX, u32::MAX).capacity();
        assert_eq!(huge.vcpus, u32::MAX);
        assert_eq!(huge.memory_mib, u64::MAX);
    }

    #[test]
    fn load_ranks_a_busier_host_higher_and_ignores_missing_resources() {
        let capacity = Usage {
            vcpus: 100,
            memory_mib: 1000,
            disk_gib: 10,
            gpus: 0,
        };
        let weights = Weights::of(&capacity);
        let half = Usage {
            vcpus: 50,
            memory_mib: 500,
            disk_gib: 5,
            gpus: 0,
        };
        let full_load = weights.load(&capacity);
        assert!(weights.load(&half) < full_load);
        assert_eq!(weights.load(&Usage::ZERO), 0);
        assert!(full_load <= 3 * FULL);
    }
}
