//! Minute-level availability from monitoring (issue 15 item 6): for every instance that
//! should be running, the collector's readings within the current minute and how many of
//! them found it unreachable (its host did not answer, or answered that the guest is not
//! running). A minute that closes with most of its readings missed is a **down minute**;
//! the SLA score counts it against the provider (`app::sla::month_score`).
//!
//! Most, not any: a single reading lost to a slow host (the collector's per-host deadline)
//! says little about the guest, while a guest that is gone for most of a minute was not
//! usable in it. Minutes nobody measured (the control plane itself was down) count for
//! nobody: the provider is not blamed for the platform's own outage.

use std::collections::HashMap;
use zy_store::metrics::DownMinute;

/// Down minutes waiting to be written while the database refuses writes, at most.
pub const MAX_PENDING: usize = 100_000;

struct Open {
    minute: i64,
    provider_id: String,
    readings: i64,
    missed: i64,
}

impl Open {
    fn close(self, instance_id: String) -> Option<DownMinute> {
        (self.missed * 2 > self.readings).then_some(DownMinute {
            instance_id,
            provider_id: self.provider_id,
            minute: self.minute,
            readings: self.readings,
            missed: self.missed,
        })
    }
}

/// The minutes in progress, per instance.
#[derive(Default)]
pub struct Tally {
    open: HashMap<String, Open>,
}

impl Tally {
    /// One reading at `t` (epoch seconds) of the instances that should run: (instance,
    /// provider, answered). Returns the minutes that closed down: an instance's minute
    /// closes when a reading falls in a later minute, or when it no longer should run.
    pub fn reading<'a>(
        &mut self,
        t: i64,
        running: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
    ) -> Vec<DownMinute> {
        let minute = t - t.rem_euclid(60);
        let mut out = Vec::new();
        let mut next = HashMap::with_capacity(self.open.len());
        for (id, provider, up) in running {
            let mut open = match self.open.remove(id) {
                Some(o) if o.minute == minute => o,
                prev => {
                    out.extend(prev.and_then(|o| o.close(id.to_string())));
                    Open {
                        minute,
                        provider_id: provider.to_string(),
                        readings: 0,
                        missed: 0,
                    }
                }
            };
            open.readings += 1;
            open.missed += i64::from(!up);
            next.insert(id.to_string(), open);
        }
        // Instances that stopped running (or left): their last minute closes now.
        for (id, o) in self.open.drain() {
            out.extend(o.close(id));
        }
        self.open = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut Tally, at: i64, ups: &[(&str, bool)]) -> Vec<(String, i64, i64)> {
        t.reading(at, ups.iter().map(|(i, u)| (*i, "p", *u)))
            .into_iter()
            .map(|d| (d.instance_id, d.minute, d.missed))
            .collect()
    }

    #[test]
    fn a_minute_counts_down_when_most_of_its_readings_missed() {
        let mut t = Tally::default();
        // Minute 600: a missed 4 of 6 readings, b 3 of 6 (half is not most).
        for (k, at) in (600..660).step_by(10).enumerate() {
            assert!(run(&mut t, at, &[("a", k >= 4), ("b", k >= 3)]).is_empty());
        }
        let mut closed = run(&mut t, 660, &[("a", true), ("b", true)]);
        closed.sort();
        assert_eq!(closed, vec![("a".to_string(), 600, 4)]);
        // A quiet minute closes with nothing to say.
        for at in (670..720).step_by(10) {
            assert!(run(&mut t, at, &[("a", true), ("b", true)]).is_empty());
        }
        assert!(run(&mut t, 720, &[("a", true), ("b", true)]).is_empty());
    }

    #[test]
    fn an_instance_that_stops_running_closes_its_minute_and_a_gap_skips_minutes() {
        let mut t = Tally::default();
        assert!(run(&mut t, 600, &[("a", false)]).is_empty());
        assert!(run(&mut t, 610, &[("a", false)]).is_empty());
        // a is stopped by its department: its partial minute (2 of 2 missed) closes.
        assert_eq!(run(&mut t, 620, &[]), vec![("a".to_string(), 600, 2)]);
        // The collector was away for minutes 660–719: those minutes are nobody's.
        assert!(run(&mut t, 650, &[("a", true)]).is_empty());
        assert!(run(&mut t, 720, &[("a", false)]).is_empty());
        assert_eq!(
            run(&mut t, 780, &[("a", true)]),
            vec![("a".to_string(), 720, 1)]
        );
    }
}
