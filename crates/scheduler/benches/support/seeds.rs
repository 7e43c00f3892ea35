//! What the placement benchmark and the consolidation example share: the seeds' host and
//! flavor mix and a deterministic random number generator. Included by `#[path]`, not a
//! bench itself.

use zy_scheduler::{Host, HostId, HostState};

/// The seeds' compute host: 64 pCPU at 4.0 vCPUs each, 512 GiB, 8 TiB.
pub fn host(id: u32, zone: u32) -> Host {
    Host {
        id: HostId(id),
        zone,
        provider: 0,
        state: HostState::Enabled,
        vcpus: 64,
        memory_mib: 512 * 1024,
        disk_gib: 8 * 1024,
        gpus: 0,
        cpu_ratio_permille: 4000,
        mem_ratio_permille: 1000,
    }
}

/// The seeds' flavors as (vCPUs, memory GiB, weight), the weights favouring small ones.
const FLAVORS: [(u32, u64, u64); 8] = [
    (1, 2, 25),
    (2, 4, 25),
    (4, 8, 18),
    (4, 16, 10),
    (8, 16, 8),
    (8, 32, 6),
    (16, 32, 4),
    (16, 64, 4),
];

/// [`FLAVORS`] as ((vCPUs, memory GiB), weight), for [`Rng::weighted`].
pub fn flavors() -> Vec<((u32, u64), u64)> {
    FLAVORS
        .iter()
        .map(|&(vcpus, gib, weight)| ((vcpus, gib), weight))
        .collect()
}

/// xorshift64*: deterministic, fast, and enough for picking flavors.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    pub fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|&(_, weight)| weight).sum();
        let mut pick = self.below(total);
        for &(item, weight) in items {
            if pick < weight {
                return item;
            }
            pick -= weight;
        }
        items[items.len() - 1].0
    }
}
