//! Rating (计费): prices usage against the price-list version in force at each instant.
//! Pure: no IO, no clock, no allocation in the hot path.
//!
//! - **Ledger → intervals.** [`intervals`] turns one resource's usage events (in any order:
//!   they are sorted by instant and sequence) into intervals exact to the second, clipped to
//!   a period.
//! - **Exact sums, one rounding.** Each interval adds an exact fraction of a fen to its
//!   [`Line`] (an `i128` numerator over [`DENOM`]); [`Line::amount`] rounds **once per bill
//!   line**, half away from zero. Because the sum is exact and integer, it does not depend
//!   on the order the intervals arrive in, and splitting a period into two lines changes
//!   the total by at most one fen per extra line (each rounding moves it ≤ ½ fen).
//! - **Prices.** Per vCPU-hour, per GiB-hour of memory, per GPU-hour, per GiB-month of
//!   system disk and of volume (a GiB-month is 720 h), or a flavor bundle per hour instead of
//!   vCPU + memory + GPU; a share of compute charged while stopped (disk always is); the
//!   provider contract's discount and a department's discount, both per mille.
//! - [`estimate_monthly`] prices what a request asks for over one 720-hour month.
//! - [`reconcile`] matches a provider's claimed lines against ours.

pub mod reconcile;

pub use reconcile::{reconcile, ClaimLine, Difference, DifferenceKind, ReconcileReport};

use zy_model::billing::{Rate, Rates};
use zy_model::Money;

/// Seconds in an hour and hours in a billing GiB-month.
const HOUR: i128 = 3600;
const MONTH_HOURS: i128 = 720;
/// The exact unit: 1 fen = `DENOM` units. Rates are in 0.01 fen (`Rate::SCALE` per yuan →
/// 100 per fen); memory is metered in MiB (1024 per GiB); disk prices are per 720 hours;
/// the stopped share and the two discounts are per mille each.
pub const DENOM: i128 = 100 * HOUR * 1024 * MONTH_HOURS * 1000 * 1000 * 1000;

/// What a resource is doing over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Running,
    Stopped,
    /// A volume that exists.
    Allocated,
    /// Not billed.
    None,
}

/// What a metered resource looked like from an instant on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub status: Status,
    pub volume: bool,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    /// Index into [`PriceList::flavor_id`]'s table, if the flavor has a bundle price in
    /// some version.
    pub flavor: Option<u16>,
}

/// One ledger event: from `at` (Unix seconds) the resource is `snapshot`. `seq` orders
/// events at the same second (the ledger's sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub at: i64,
    pub snapshot: Snapshot,
}

/// `[start, end)` in Unix seconds, with what the resource was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
    pub snapshot: Snapshot,
}

/// Intervals of one resource within `[from, to)` from its events, which may come in any
/// order; the last state before `from` carries into the period, the last one runs to `to`.
/// Intervals with `Status::None` are dropped.
pub fn intervals(events: &mut [Event], from: i64, to: i64) -> Vec<Interval> {
    events.sort_unstable_by_key(|e| (e.at, e.seq));
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let end = events.get(i + 1).map_or(to, |n| n.at);
        let (s, t) = (e.at.max(from), end.min(to));
        if s < t && e.snapshot.status != Status::None {
            out.push(Interval {
                start: s,
                end: t,
                snapshot: e.snapshot,
            });
        }
    }
    out
}

/// Rates of one version with the flavor bundles resolved to the list's flavor table.
#[derive(Debug, Clone)]
struct Compiled {
    from: i64,
    vcpu: i128,
    mem: i128,
    gpu: i128,
    disk: i128,
    volume: i128,
    bundle: Vec<Option<i128>>,
    stopped_permille: i128,
    keep_permille: i128,
    departments: Vec<(String, i128)>,
}

/// A provider's price list: its versions, sorted by when they take effect.
#[derive(Debug, Clone, Default)]
pub struct PriceList {
    versions: Vec<Compiled>,
    flavors: Vec<String>,
}

impl PriceList {
    /// `versions`: (effective from, Unix seconds; rates). Order does not matter; a later
    /// version supersedes an earlier one from its instant on.
    pub fn new(versions: &[(i64, &Rates)]) -> PriceList {
        let mut flavors: Vec<String> = Vec::new();
        for (_, r) in versions {
            for f in &r.flavors {
                if !flavors.contains(&f.flavor) {
                    flavors.push(f.flavor.clone());
                }
            }
        }
        let mut compiled: Vec<Compiled> = versions
            .iter()
            .map(|(from, r)| Compiled {
                from: *from,
                vcpu: rate(r.vcpu_hour),
                mem: rate(r.memory_gib_hour),
                gpu: rate(r.gpu_hour),
                disk: rate(r.disk_gib_month),
                volume: rate(r.volume_gib_month),
                bundle: flavors
                    .iter()
                    .map(|name| {
                        r.flavors
                            .iter()
                            .find(|f| &f.flavor == name)
                            .map(|f| rate(f.per_hour))
                    })
                    .collect(),
                stopped_permille: i128::from(r.stopped_compute_permille.min(1000)),
                keep_permille: 1000 - i128::from(r.discount_permille.min(1000)),
                departments: r
                    .department_discounts
                    .iter()
                    .map(|d| {
                        (
                            d.department_id.to_string(),
                            1000 - i128::from(d.permille.min(1000)),
                        )
                    })
                    .collect(),
            })
            .collect();
        compiled.sort_by_key(|c| c.from);
        PriceList {
            versions: compiled,
            flavors,
        }
    }

    /// The index of a flavor with a bundle price in some version.
    pub fn flavor_id(&self, name: &str) -> Option<u16> {
        self.flavors
            .iter()
            .position(|f| f == name)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Index of the version in force at `t`, if any.
    fn at(&self, t: i64) -> Option<usize> {
        let n = self.versions.partition_point(|v| v.from <= t);
        n.checked_sub(1)
    }

    /// A department's per-mille share kept after its discount, one per version.
    pub fn department(&self, department: &str) -> DeptKeep {
        DeptKeep(
            self.versions
                .iter()
                .map(|v| {
                    v.departments
                        .iter()
                        .find(|(d, _)| d == department)
                        .map_or(1000, |(_, k)| *k)
                })
                .collect(),
        )
    }
}

/// A department's discount under each version of one price list (see
/// [`PriceList::department`]).
#[derive(Debug, Clone)]
pub struct DeptKeep(Vec<i128>);

fn rate(r: Rate) -> i128 {
    i128::from(r.0)
}

/// One bill line in the making: exact quantities and an exact amount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Line {
    pub running_secs: i64,
    pub stopped_secs: i64,
    pub vcpu_secs: i64,
    pub memory_mib_secs: i64,
    pub disk_gib_secs: i64,
    pub gpu_secs: i64,
    /// The amount in units of 1/[`DENOM`] fen.
    pub exact: i128,
}

impl Line {
    /// Adds an interval, priced by the version in force at each of its instants (an
    /// interval that spans a new version's start is split there). Time before the first
    /// version is metered but not charged.
    pub fn add(&mut self, list: &PriceList, dept: &DeptKeep, iv: &Interval) {
        let s = iv.snapshot;
        let secs = iv.end - iv.start;
        if secs <= 0 {
            return;
        }
        match s.status {
            Status::Running => self.running_secs += secs,
            Status::Stopped | Status::Allocated => self.stopped_secs += secs,
            Status::None => return,
        }
        let compute = s.status == Status::Running && !s.volume;
        if compute {
            self.vcpu_secs += secs * i64::from(s.vcpus);
            self.memory_mib_secs += secs * s.memory_mib as i64;
            self.gpu_secs += secs * i64::from(s.gpus);
        }
        self.disk_gib_secs += secs * s.disk_gib as i64;

        let mut start = iv.start;
        let mut idx = list.at(start);
        loop {
            let next = idx.map_or(0, |i| i + 1);
            let piece_end = list
                .versions
                .get(next)
                .map_or(iv.end, |v| v.from.min(iv.end));
            if let Some(i) = idx {
                self.exact += price_piece(
                    &list.versions[i],
                    dept.0[i],
                    &s,
                    i128::from(piece_end - start),
                );
            }
            if piece_end >= iv.end {
                break;
            }
            start = piece_end;
            idx = Some(next);
        }
    }

    /// The line's amount: the exact sum rounded once, half away from zero.
    pub fn amount(&self) -> Money {
        round(self.exact)
    }
}

/// The exact price of `secs` seconds of one snapshot under one version, in 1/[`DENOM`] fen.
#[inline]
fn price_piece(v: &Compiled, dept_keep: i128, s: &Snapshot, secs: i128) -> i128 {
    // Per second, in units of 1/(100 · 3600 · 1024 · 720 · 1000) fen: a rate is in 0.01 fen
    // per hour (per 720 hours for disks); memory counts in MiB (1/1024 GiB); the last 1000
    // carries the stopped share in per mille.
    let disk_rate = if s.volume { v.volume } else { v.disk };
    let disk = disk_rate * s.disk_gib as i128 * 1024 * 1000;
    let share = match s.status {
        Status::Running if !s.volume => 1000,
        Status::Stopped if !s.volume => v.stopped_permille,
        _ => 0,
    };
    let compute = if share == 0 {
        0
    } else {
        let per_hour = match s
            .flavor
            .and_then(|f| v.bundle.get(usize::from(f)).copied().flatten())
        {
            Some(bundle) => bundle * 1024,
            None => {
                (v.vcpu * i128::from(s.vcpus) + v.gpu * i128::from(s.gpus)) * 1024
                    + v.mem * s.memory_mib as i128
            }
        };
        per_hour * MONTH_HOURS * share
    };
    (disk + compute) * secs * v.keep_permille * dept_keep
}

/// Rounds an exact amount to fen, half away from zero (the one rounding rule).
pub fn round(exact: i128) -> Money {
    let q = exact / DENOM;
    let r = exact % DENOM;
    let q = if 2 * r.abs() >= DENOM {
        q + exact.signum()
    } else {
        q
    };
    Money(i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX }))
}

/// One thing a request asks for, for [`estimate_monthly`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EstimateItem {
    Instance {
        flavor: String,
        vcpus: u32,
        memory_mib: u64,
        disk_gib: u64,
        gpus: u32,
        count: u32,
    },
    Volume {
        size_gib: u64,
        count: u32,
    },
}

/// The cost of running what a request asks for over one 720-hour month under `rates`
/// (running all the time, no department discount), rounded once.
pub fn estimate_monthly(rates: &Rates, items: &[EstimateItem]) -> Money {
    let list = PriceList::new(&[(0, rates)]);
    let dept = list.department("");
    let secs = (MONTH_HOURS * HOUR) as i64;
    let mut line = Line::default();
    for item in items {
        let (snapshot, count) = match item {
            EstimateItem::Instance {
                flavor,
                vcpus,
                memory_mib,
                disk_gib,
                gpus,
                count,
            } => (
                Snapshot {
                    status: Status::Running,
                    volume: false,
                    vcpus: *vcpus,
                    memory_mib: *memory_mib,
                    disk_gib: *disk_gib,
                    gpus: *gpus,
                    flavor: list.flavor_id(flavor),
                },
                *count,
            ),
            EstimateItem::Volume { size_gib, count } => (
                Snapshot {
                    status: Status::Allocated,
                    volume: true,
                    vcpus: 0,
                    memory_mib: 0,
                    disk_gib: *size_gib,
                    gpus: 0,
                    flavor: None,
                },
                *count,
            ),
        };
        for _ in 0..count {
            line.add(
                &list,
                &dept,
                &Interval {
                    start: 0,
                    end: secs,
                    snapshot,
                },
            );
        }
    }
    line.amount()
}

#[cfg(test)]
mod tests;
