//! Leases (使用期限) and the recycle bin (回收站): the platform's settings and the pure rule
//! that says what the lease manager does next for one instance. Reminders go out before the
//! end (7, 3 and 1 days by default), at the end the instance is stopped, after the grace
//! period it is released to the recycle bin, and after the retention it is purged.
//!
//! The rule is a function of the clock and of what has been recorded so far, so the task
//! that applies it can run on any replica, after any restart, and record each step with a
//! conditional update.

use crate::time::Timestamp;
use crate::{t, Error};
use serde::{Deserialize, Serialize};

const DAY: i64 = 86_400;
/// Longest duration any setting may have (ten years).
pub const MAX_SECS: i64 = 10 * 365 * DAY;
/// Most reminders per lease.
pub const MAX_REMINDERS: usize = 10;

/// Durations in seconds, so a test (or a trial) can run a whole lease in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// When reminders go out, in seconds before the lease ends (default 7, 3 and 1 days).
    pub reminder_offsets_secs: Vec<i64>,
    /// Seconds between the end (the instance is stopped) and the release to the recycle
    /// bin (default 7 days).
    pub grace_secs: i64,
    /// Seconds an instance stays in the recycle bin before it is purged (default 7 days).
    pub retention_secs: i64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            reminder_offsets_secs: vec![7 * DAY, 3 * DAY, DAY],
            grace_secs: 7 * DAY,
            retention_secs: 7 * DAY,
        }
    }
}

impl LeaseSettings {
    /// Checks the ranges and returns the settings with the offsets sorted, largest first
    /// and without duplicates.
    pub fn validated(mut self) -> Result<LeaseSettings, Error> {
        if self.reminder_offsets_secs.len() > MAX_REMINDERS
            || self
                .reminder_offsets_secs
                .iter()
                .any(|o| !(1..=MAX_SECS).contains(o))
        {
            return Err(Error::validation(
                "reminder_offsets_secs",
                t!("提醒时间最多 {} 个，每个须在 1 秒到 10 年之间" ; "at most {} reminders, each between 1 second and 10 years before the end", MAX_REMINDERS),
            ));
        }
        if !(0..=MAX_SECS).contains(&self.grace_secs) {
            return Err(Error::validation(
                "grace_secs",
                t!(
                    "宽限期须在 0 秒到 10 年之间",
                    "the grace period must be between 0 seconds and 10 years"
                ),
            ));
        }
        if !(0..=MAX_SECS).contains(&self.retention_secs) {
            return Err(Error::validation(
                "retention_secs",
                t!(
                    "回收站保留期须在 0 秒到 10 年之间",
                    "the recycle-bin retention must be between 0 seconds and 10 years"
                ),
            ));
        }
        self.reminder_offsets_secs.sort_unstable_by(|a, b| b.cmp(a));
        self.reminder_offsets_secs.dedup();
        Ok(self)
    }
}

/// What has been recorded for one instance's current lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseProgress {
    pub end: Timestamp,
    /// The smallest reminder offset already sent for this end.
    pub reminded: Option<i64>,
    /// The instance has been stopped because the lease ended.
    pub ended: bool,
}

/// The lease manager's next step for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStep {
    /// Send the reminder for this offset (seconds before the end). When several offsets
    /// have passed unsent (a lease set close to its end, a server that was down), only the
    /// nearest one is sent: one reminder, not a burst of stale ones.
    Remind(i64),
    /// Stop the instance: the lease has ended.
    End,
    /// Release the instance to the recycle bin: the grace period is over.
    Release,
    /// Nothing yet.
    Wait,
}

pub fn step(now: Timestamp, p: &LeaseProgress, s: &LeaseSettings) -> LeaseStep {
    if p.ended {
        return if now >= p.end.plus_secs(s.grace_secs) {
            LeaseStep::Release
        } else {
            LeaseStep::Wait
        };
    }
    if now >= p.end {
        return LeaseStep::End;
    }
    s.reminder_offsets_secs
        .iter()
        .copied()
        .filter(|&o| p.reminded.is_none_or(|r| o < r) && now >= p.end.plus_secs(-o))
        .min()
        .map_or(LeaseStep::Wait, LeaseStep::Remind)
}

/// When [`step`] next returns something other than `Wait` (the earliest such moment).
pub fn next_at(p: &LeaseProgress, s: &LeaseSettings) -> Timestamp {
    if p.ended {
        return p.end.plus_secs(s.grace_secs);
    }
    s.reminder_offsets_secs
        .iter()
        .copied()
        .filter(|&o| p.reminded.is_none_or(|r| o < r))
        .map(|o| p.end.plus_secs(-o))
        .chain([p.end])
        .min()
        .unwrap_or(p.end)
}

/// A lease end someone asks for: in the future and at most ten years ahead.
pub fn check_end(field: &str, end: Timestamp, now: Timestamp) -> Result<(), Error> {
    if end <= now || end > now.plus_secs(MAX_SECS) {
        return Err(Error::validation(
            field,
            t!(
                "使用期限的结束时间须晚于现在，且不超过 10 年",
                "the lease end must be in the future and at most 10 years away"
            ),
        ));
    }
    Ok(())
}

/// "3 天 4 小时" / "3 d 4 h": a duration as the console and notices show it.
pub fn human(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / DAY, secs % DAY / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} 秒 / {secs} s"),
        (0, 0, m) => format!("{m} 分钟 / {m} min"),
        (0, h, _) => format!("{h} 小时 / {h} h"),
        (d, 0, _) => format!("{d} 天 / {d} d"),
        (d, h, _) => format!("{d} 天 {h} 小时 / {d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp(secs * 1_000_000)
    }

    fn settings(offsets: &[i64], grace: i64) -> LeaseSettings {
        LeaseSettings {
            reminder_offsets_secs: offsets.to_vec(),
            grace_secs: grace,
            retention_secs: 10,
        }
        .validated()
        .expect("valid settings")
    }

    #[test]
    fn defaults_are_seven_three_and_one_day_then_seven_days_grace() {
        let s = LeaseSettings::default().validated().expect("defaults");
        assert_eq!(s.reminder_offsets_secs, vec![7 * DAY, 3 * DAY, DAY]);
        assert_eq!((s.grace_secs, s.retention_secs), (7 * DAY, 7 * DAY));
    }

    #[test]
    fn a_lease_walks_reminders_then_end_then_release() {
        let s = settings(&[30, 10, 20], 5);
        let mut p = LeaseProgress {
            end: at(100),
            reminded: None,
            ended: false,
        };
        assert_eq!(step(at(60), &p, &s), LeaseStep::Wait);
        assert_eq!(next_at(&p, &s), at(70));
        assert_eq!(step(at(70), &p, &s), LeaseStep::Remind(30));
        p.reminded = Some(30);
        assert_eq!(step(at(75), &p, &s), LeaseStep::Wait);
        assert_eq!(next_at(&p, &s), at(80));
        // The server was down from 79 to 95: one reminder (10 s), not two.
        assert_eq!(step(at(95), &p, &s), LeaseStep::Remind(10));
        p.reminded = Some(10);
        assert_eq!(next_at(&p, &s), at(100));
        assert_eq!(step(at(100), &p, &s), LeaseStep::End);
        p.ended = true;
        assert_eq!(step(at(104), &p, &s), LeaseStep::Wait);
        assert_eq!(next_at(&p, &s), at(105));
        assert_eq!(step(at(105), &p, &s), LeaseStep::Release);
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [
            LeaseSettings {
                reminder_offsets_secs: vec![0],
                ..LeaseSettings::default()
            },
            LeaseSettings {
                reminder_offsets_secs: vec![1; 11],
                ..LeaseSettings::default()
            },
            LeaseSettings {
                grace_secs: -1,
                ..LeaseSettings::default()
            },
            LeaseSettings {
                retention_secs: MAX_SECS + 1,
                ..LeaseSettings::default()
            },
        ] {
            assert!(bad.validated().is_err());
        }
    }

    #[test]
    fn durations_read_as_days_and_hours() {
        assert_eq!(human(3 * DAY + 4 * 3600), "3 天 4 小时 / 3 d 4 h");
        assert_eq!(human(DAY), "1 天 / 1 d");
        assert_eq!(human(90), "1 分钟 / 1 min");
        assert_eq!(human(5), "5 秒 / 5 s");
    }

    proptest! {
        /// Driving the rule with a clock that only moves forward, whatever its steps, sends
        /// each reminder at most once, never a reminder after the end, ends once and
        /// releases once after the grace period, and `next_at` never lets a step be missed:
        /// at any moment before `next_at` the rule says `Wait`.
        #[test]
        fn every_step_happens_at_most_once_and_in_order(
            offsets in proptest::collection::vec(1i64..200, 0..5),
            grace in 0i64..100,
            ticks in proptest::collection::vec(1i64..40, 1..60),
        ) {
            let s = settings(&offsets, grace);
            let mut p = LeaseProgress { end: at(300), reminded: None, ended: false };
            let mut now = 0i64;
            let mut sent = Vec::new();
            let (mut ends, mut releases) = (0, 0);
            for t in ticks {
                now += t;
                let probe = next_at(&p, &s);
                if at(now) < probe {
                    prop_assert_eq!(step(at(now), &p, &s), LeaseStep::Wait);
                }
                match step(at(now), &p, &s) {
                    LeaseStep::Remind(o) => {
                        prop_assert!(!sent.contains(&o));
                        prop_assert!(now < 300 && now >= 300 - o);
                        sent.push(o);
                        p.reminded = Some(o);
                    }
                    LeaseStep::End => { prop_assert!(now >= 300); ends += 1; p.ended = true; }
                    LeaseStep::Release => {
                        prop_assert!(now >= 300 + grace);
                        releases += 1;
                        break;
                    }
                    LeaseStep::Wait => {}
                }
            }
            prop_assert!(ends <= 1 && releases <= 1);
            // Reminders went out largest offset first.
            prop_assert!(sent.windows(2).all(|w| w[0] > w[1]));
        }
    }
}
