//! A tiny seeded pseudo-random generator (xorshift64*) behind an atomic, so injected
//! failures and latencies are reproducible from `SimConfig::seed` without pulling `rand`
//! into the build, and drawing a number never takes the world's lock. Statistical quality
//! only has to be good enough for "about one call in five fails".

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(scramble(seed)),
        }
    }

    pub(crate) fn next_u64(&self) -> u64 {
        // The closure always returns `Some`, so both arms carry the previous state.
        let previous = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| Some(step(s)))
            .unwrap_or_else(|s| s);
        step(previous).wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`; draws nothing when the answer is certain, so a
    /// provider without failure injection never touches the generator.
    pub(crate) fn chance(&self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            // The top 53 bits give a uniform float in [0, 1) without rounding bias.
            let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            unit < p
        }
    }

    /// Uniform in `[0, max]`. The modulo bias is below 2^-40 for any latency span.
    pub(crate) fn up_to(&self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        }
    }
}

fn step(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// splitmix64 of the seed: xorshift has a fixed point at zero and neighbouring seeds
/// would otherwise start out correlated.
fn scramble(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 {
        0x9e37_79b9_7f4a_7c15
    } else {
        z
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let draw = |rng: Rng| (0..100).map(|_| rng.next_u64()).collect::<Vec<u64>>();
        assert_eq!(draw(Rng::new(7)), draw(Rng::new(7)));
        assert_ne!(draw(Rng::new(7)), draw(Rng::new(8)));
    }

    #[test]
    fn a_zero_seed_still_produces_numbers() {
        let rng = Rng::new(0);
        assert!((0..10).map(|_| rng.next_u64()).any(|x| x != 0));
    }

    #[test]
    fn up_to_stays_in_range_and_covers_it() {
        let rng = Rng::new(1);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let x = rng.up_to(3);
            assert!(x <= 3);
            seen[usize::try_from(x).expect("x <= 3")] = true;
        }
        assert!(seen.iter().all(|s| *s));
        rng.up_to(u64::MAX);
    }
}
