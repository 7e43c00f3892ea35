//! Login rate limits, in memory on each replica: a token bucket per key (a source address,
//! or an account name). A bucket holds `per_minute` attempts and refills at `per_minute`
//! per minute, so a burst of that size is allowed and then one attempt every `60 /
//! per_minute` seconds. The limit is read at each attempt, so a change by the security
//! admin applies at once. Successful logins give their attempt back, so a shared office
//! address is held back only by its failures.
//!
//! Memory is bounded: at most `capacity` keys. When the table is full, buckets that have
//! refilled completely (idle for a minute, nothing to remember) are dropped; if that is
//! not enough, the least recently used half goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Attempts spent and not yet refilled, as of `at`. Keeping what was spent (rather than
/// what is left) makes a changed limit apply at once: raised, more attempts are allowed
/// immediately; lowered, a key over the new limit waits until it is under it.
struct Bucket {
    spent: f64,
    at: Instant,
}

impl Bucket {
    fn spent_at(&self, per_minute: u32, now: Instant) -> f64 {
        let rate = per_minute as f64 / 60.0;
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        (self.spent - secs * rate).max(0.0)
    }
}

pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    capacity: usize,
}

impl RateLimiter {
    pub fn new(capacity: usize) -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            capacity: capacity.max(2),
        }
    }

    /// Takes one attempt for `key`. `Err(seconds)` says when the next one is allowed.
    pub fn take(&self, key: &str, per_minute: u32, now: Instant) -> Result<(), u32> {
        let per_minute = per_minute.max(1);
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if !map.contains_key(key) && map.len() >= self.capacity {
            evict(&mut map, self.capacity, per_minute, now);
        }
        let b = map.entry(key.to_string()).or_insert(Bucket {
            spent: 0.0,
            at: now,
        });
        b.spent = b.spent_at(per_minute, now);
        b.at = now;
        let limit = per_minute as f64;
        if b.spent + 1.0 <= limit {
            b.spent += 1.0;
            Ok(())
        } else {
            let rate = limit / 60.0;
            Err(((b.spent + 1.0 - limit) / rate).ceil().max(1.0) as u32)
        }
    }

    /// Returns an attempt taken for `key` (the login succeeded).
    pub fn give_back(&self, key: &str) {
        if let Ok(mut map) = self.buckets.lock() {
            if let Some(b) = map.get_mut(key) {
                b.spent = (b.spent - 1.0).max(0.0);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict(map: &mut HashMap<String, Bucket>, capacity: usize, per_minute: u32, now: Instant) {
    map.retain(|_, b| b.spent_at(per_minute, now) > 0.0);
    if map.len() < capacity {
        return;
    }
    let mut ages: Vec<Instant> = map.values().map(|b| b.at).collect();
    let mid = ages.len() / 2;
    let (_, cut, _) = ages.select_nth_unstable(mid);
    let cut = *cut;
    map.retain(|_, b| b.at > cut);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_one_attempt_per_interval() {
        let l = RateLimiter::new(100);
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(l.take("10.0.0.1", 6, t0), Ok(()));
        }
        // 6 a minute: the next attempt is 10 s away.
        assert_eq!(l.take("10.0.0.1", 6, t0), Err(10));
        assert_eq!(l.take("10.0.0.1", 6, t0 + Duration::from_secs(5)), Err(5));
        assert_eq!(l.take("10.0.0.1", 6, t0 + Duration::from_secs(10)), Ok(()));
        // Other keys are not affected.
        assert_eq!(l.take("10.0.0.2", 6, t0), Ok(()));
    }

    #[test]
    fn a_success_gives_its_attempt_back() {
        let l = RateLimiter::new(100);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.take("wjw.user", 1, t0), Ok(()));
            l.give_back("wjw.user");
        }
        assert_eq!(l.take("wjw.user", 1, t0), Ok(()));
        assert!(l.take("wjw.user", 1, t0).is_err());
    }

    #[test]
    fn a_changed_limit_applies_at_once() {
        let l = RateLimiter::new(100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("10.0.0.1", 3, t0), Ok(()));
        }
        assert!(l.take("10.0.0.1", 3, t0).is_err());
        assert_eq!(l.take("10.0.0.1", 100, t0), Ok(()));
        // Lowered below what was spent: wait until under the new limit.
        assert_eq!(l.take("10.0.0.1", 2, t0), Err(90));
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let l = RateLimiter::new(1000);
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_millis(i as u64);
            let _ = l.take(&format!("user-{i}"), 5, now);
            assert!(l.len() <= 1000);
        }
        // A key used a moment ago is still limited after the flood of new keys.
        let now = t0 + Duration::from_millis(100_000);
        for _ in 0..5 {
            let _ = l.take("victim", 5, now);
        }
        for i in 0..400u32 {
            let _ = l.take(&format!("late-{i}"), 5, now);
        }
        assert!(l.take("victim", 5, now).is_err());
    }

    #[test]
    fn idle_buckets_are_dropped_first() {
        let l = RateLimiter::new(4);
        let t0 = Instant::now();
        for k in ["a", "b", "c", "d"] {
            let _ = l.take(k, 60, t0);
        }
        // A minute later every bucket is full again: all four can go.
        let _ = l.take("e", 60, t0 + Duration::from_secs(61));
        assert_eq!(l.len(), 1);
    }
}
