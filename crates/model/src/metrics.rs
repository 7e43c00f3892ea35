//! Metrics history, the pure part: which series exist, how a block of points is encoded
//! for the database, and how points roll up into coarser resolutions. The server's
//! collector (`zy_server::monitoring`) and the store (`zy_store::metrics`) use these; this
//! module knows nothing of either.
//!
//! **Layout.** One row per (scope, entity, resolution, block start) holds every series of
//! that entity for the block, encoded by [`Block::encode`]: a version byte, the number of
//! columns and points, the timestamps as delta-of-delta zig-zag varints (a steady 10 s
//! beat costs one byte a point), then per column a presence bitmap (omitted when every
//! point is present) and the values, fixed-point hundredths, as zig-zag varint deltas.
//! Raw points (10 s) live in 10-minute blocks, 1-minute rollups in 1-hour blocks, 1-hour
//! rollups in 1-day blocks. A rollup point has four columns per series: min, max, sum and
//! count (the average is sum / count), so rolling up a rollup gives exactly the rollup of
//! the raw points ([`Acc::merge`]).

use serde::{Deserialize, Serialize};

/// Values are kept as fixed-point hundredths (0.01 % of CPU, 0.01 byte/s …).
pub const SCALE: f64 = 100.0;

/// The measured series, in their column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// CPU use in % of the allotted vCPUs (host: its own busy CPU where its agent
    /// measures it, else the share of its physical CPUs its guests use).
    Cpu,
    /// Memory in use, % of the allotted memory.
    Mem,
    /// Memory in use, MiB.
    MemUsed,
    /// Disk reads, bytes/s.
    DiskRead,
    /// Disk writes, bytes/s.
    DiskWrite,
    /// Root disk in use, % (where the host knows it).
    DiskUsed,
    /// Network received, bytes/s (where the host measures it).
    NetRx,
    /// Network sent, bytes/s.
    NetTx,
    /// 1 while the instance runs and its host answers (host: while it answers), else 0;
    /// for a project, department, zone or provider: how many members are up.
    Up,
}

impl Series {
    pub const ALL: [Series; 9] = [
        Series::Cpu,
        Series::Mem,
        Series::MemUsed,
        Series::DiskRead,
        Series::DiskWrite,
        Series::DiskUsed,
        Series::NetRx,
        Series::NetTx,
        Series::Up,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Series::Cpu => "cpu",
            Series::Mem => "mem",
            Series::MemUsed => "mem_used",
            Series::DiskRead => "disk_read",
            Series::DiskWrite => "disk_write",
            Series::DiskUsed => "disk_used",
            Series::NetRx => "net_rx",
            Series::NetTx => "net_tx",
            Series::Up => "up",
        }
    }

    pub fn parse(s: &str) -> Option<Series> {
        Series::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The unit shown next to the figures.
    pub fn unit(self) -> &'static str {
        match self {
            Series::Cpu | Series::Mem | Series::DiskUsed => "%",
            Series::MemUsed => "MiB",
            Series::DiskRead | Series::DiskWrite | Series::NetRx | Series::NetTx => "B/s",
            Series::Up => "",
        }
    }
}

/// What a series belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricScope {
    Instance,
    Host,
    Project,
    Department,
    Zone,
    Provider,
}

impl MetricScope {
    pub const ALL: [MetricScope; 6] = [
        MetricScope::Instance,
        MetricScope::Host,
        MetricScope::Project,
        MetricScope::Department,
        MetricScope::Zone,
        MetricScope::Provider,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MetricScope::Instance => "instance",
            MetricScope::Host => "host",
            MetricScope::Project => "project",
            MetricScope::Department => "department",
            MetricScope::Zone => "zone",
            MetricScope::Provider => "provider",
        }
    }

    pub fn parse(s: &str) -> Option<MetricScope> {
        MetricScope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A stored resolution: its point spacing and the span of one block, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The collector's points (every 10 s), kept one day.
    Raw,
    /// 1-minute rollups, kept 30 days.
    Minute,
    /// 1-hour rollups, kept 400 days.
    Hour,
}

impl Resolution {
    pub fn code(self) -> i64 {
        match self {
            Resolution::Raw => 0,
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }
    /// Seconds between points (raw: the collection interval, nominally 10 s).
    pub fn step(self) -> i64 {
        match self {
            Resolution::Raw => 10,
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }
    pub fn block_secs(self) -> i64 {
        match self {
            Resolution::Raw => 600,
            Resolution::Minute => 3600,
            Resolution::Hour => 86_400,
        }
    }
    pub fn retention_secs(self) -> i64 {
        match self {
            Resolution::Raw => 86_400,
            Resolution::Minute => 30 * 86_400,
            Resolution::Hour => 400 * 86_400,
        }
    }
    pub fn block_start(self, t: i64) -> i64 {
        t.div_euclid(self.block_secs()) * self.block_secs()
    }
    /// Columns per point: one per series for raw points, four (min, max, sum, count) for
    /// rollups.
    pub fn columns(self) -> usize {
        match self {
            Resolution::Raw => Series::COUNT,
            _ => Series::COUNT * 4,
        }
    }
}

/// Points of one block: timestamps (epoch seconds, increasing) and one column of optional
/// fixed-point values per timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    pub ts: Vec<i64>,
    pub cols: Vec<Vec<Option<i64>>>,
}

/// A stored block that cannot be read (corrupt or from a newer version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics block cannot be decoded: {0}")]
pub struct DecodeError(&'static str);

const VERSION: u8 = 1;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.at).ok_or(DecodeError("truncated"))?;
        self.at += 1;
        Ok(b)
    }
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(DecodeError("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }
    fn len(&mut self, max: usize) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        usize::try_from(v)
            .ok()
            .filter(|v| *v <= max)
            .ok_or(DecodeError("length out of range"))
    }
}

/// Most points a block may hold (a day of 10 s points, with room to spare).
const MAX_POINTS: usize = 1 << 14;
const MAX_COLS: usize = 256;

impl Block {
    pub fn new(columns: usize) -> Block {
        Block {
            ts: Vec::new(),
            cols: vec![Vec::new(); columns],
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Appends a point; `values` has one entry per column. A timestamp not after the
    /// last one replaces that point's values (a repeated pass) instead of going back.
    pub fn push(&mut self, t: i64, values: &[Option<i64>]) {
        if let Some(&last) = self.ts.last() {
            if t <= last {
                if t == last {
                    for (c, v) in self.cols.iter_mut().zip(values) {
                        if let Some(x) = c.last_mut() {
                            *x = *v;
                        }
                    }
                }
                return;
            }
        }
        self.ts.push(t);
        for (i, c) in self.cols.iter_mut().enumerate() {
            c.push(values.get(i).copied().flatten());
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let n = self.ts.len();
        let mut out = Vec::with_capacity(8 + n * (1 + self.cols.len() * 2));
        out.push(VERSION);
        put_varint(&mut out, self.cols.len() as u64);
        put_varint(&mut out, n as u64);
        let (mut prev, mut prev_delta) = (0i64, 0i64);
        for (i, &t) in self.ts.iter().enumerate() {
            if i == 0 {
                put_varint(&mut out, zigzag(t));
            } else {
                let delta = t.wrapping_sub(prev);
                put_varint(&mut out, zigzag(delta.wrapping_sub(prev_delta)));
                prev_delta = delta;
            }
            prev = t;
        }
        for col in &self.cols {
            if col.iter().all(Option::is_some) {
                out.push(1);
            } else {
                out.push(0);
                let mut bits = vec![0u8; n.div_ceil(8)];
                for (i, v) in col.iter().enumerate() {
                    if v.is_some() {
                        bits[i / 8] |= 1 << (i % 8);
                    }
                }
                out.extend_from_slice(&bits);
            }
            let mut last = 0i64;
            for v in col.iter().flatten() {
                put_varint(&mut out, zigzag(v.wrapping_sub(last)));
                last = *v;
            }
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Block, DecodeError> {
        let mut r = Reader { buf, at: 0 };
        if r.byte()? != VERSION {
            return Err(DecodeError("unknown version"));
        }
        let ncols = r.len(MAX_COLS)?;
        let n = r.len(MAX_POINTS)?;
        let mut ts = Vec::with_capacity(n);
        let (mut prev, mut prev_delta) = (0i64, 0i64);
        for i in 0..n {
            let v = unzigzag(r.varint()?);
            let t = if i == 0 {
                v
            } else {
                let delta = prev_delta.wrapping_add(v);
                prev_delta = delta;
                prev.wrapping_add(delta)
            };
            ts.push(t);
            prev = t;
        }
        let mut cols = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let present: Vec<bool> = match r.byte()? {
                1 => vec![true; n],
                0 => {
                    let mut p = Vec::with_capacity(n);
                    let bytes: Vec<u8> = (0..n.div_ceil(8))
                        .map(|_| r.byte())
                        .collect::<Result<_, _>>()?;
                    for i in 0..n {
                        p.push(bytes[i / 8] & (1 << (i % 8)) != 0);
                    }
                    p
                }
                _ => return Err(DecodeError("bad presence flag")),
            };
            let mut last = 0i64;
            let mut col = Vec::with_capacity(n);
            for p in present {
                if p {
                    last = last.wrapping_add(unzigzag(r.varint()?));
                    col.push(Some(last));
                } else {
                    col.push(None);
                }
            }
            cols.push(col);
        }
        if r.at != buf.len() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(Block { ts, cols })
    }
}

/// Min, max, sum and count of the points of one interval, for one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Acc {
    pub min: i64,
    pub max: i64,
    pub sum: i64,
    pub count: i64,
}

impl Acc {
    pub fn add(&mut self, v: i64) {
        self.merge(&Acc {
            min: v,
            max: v,
            sum: v,
            count: 1,
        });
    }

    pub fn merge(&mut self, o: &Acc) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum = self.sum.saturating_add(o.sum);
        self.count += o.count;
    }

    pub fn avg(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The four rollup columns of this accumulator (absent when it saw nothing).
    pub fn columns(&self) -> [Option<i64>; 4] {
        if self.count == 0 {
            return [None; 4];
        }
        [
            Some(self.min),
            Some(self.max),
            Some(self.sum),
            Some(self.count),
        ]
    }

    /// Reads series `s` of point `i` of a rollup block.
    pub fn from_rollup(b: &Block, s: usize, i: usize) -> Acc {
        let get = |k: usize| {
            b.cols
                .get(s * 4 + k)
                .and_then(|c| c.get(i).copied().flatten())
        };
        match (get(0), get(1), get(2), get(3)) {
            (Some(min), Some(max), Some(sum), Some(count)) if count > 0 => Acc {
                min,
                max,
                sum,
                count,
            },
            _ => Acc::default(),
        }
    }
}

/// One accumulator per series, for the interval being rolled up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupAcc {
    /// Start of the interval (epoch seconds).
    pub start: i64,
    pub series: [Acc; Series::COUNT],
}

impl RollupAcc {
    pub fn new(start: i64) -> RollupAcc {
        RollupAcc {
            start,
            series: [Acc::default(); Series::COUNT],
        }
    }
    pub fn add_raw(&mut self, values: &[Option<i64>]) {
        for (a, v) in self.series.iter_mut().zip(values) {
            if let Some(v) = v {
                a.add(*v);
            }
        }
    }
    pub fn add_rollup(&mut self, b: &Block, i: usize) {
        for (s, a) in self.series.iter_mut().enumerate() {
            a.merge(&Acc::from_rollup(b, s, i));
        }
    }
    pub fn columns(&self) -> Vec<Option<i64>> {
        self.series.iter().flat_map(|a| a.columns()).collect()
    }
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|a| a.count == 0)
    }
}

/// Rolls raw points up into intervals of `step` seconds (pure; what the collector does
/// incrementally). Intervals without any point are left out.
pub fn rollup_raw(raw: &Block, step: i64) -> Block {
    rollup_by(&raw.ts, step, |a, i| {
        let values: Vec<Option<i64>> = raw.cols.iter().map(|c| c[i]).collect();
        a.add_raw(&values);
    })
}

/// Rolls rollup points up into coarser intervals of `step` seconds.
pub fn rollup_rollup(b: &Block, step: i64) -> Block {
    rollup_by(&b.ts, step, |a, i| a.add_rollup(b, i))
}

/// One rollup point per interval of `step` seconds that holds any of `ts`; `add` puts
/// point `i` into its interval's accumulator.
fn rollup_by(ts: &[i64], step: i64, mut add: impl FnMut(&mut RollupAcc, usize)) -> Block {
    let mut out = Block::new(Series::COUNT * 4);
    let mut acc: Option<RollupAcc> = None;
    for (i, &t) in ts.iter().enumerate() {
        let start = t.div_euclid(step) * step;
        if acc.as_ref().is_some_and(|a| a.start != start) {
            if let Some(a) = acc.take() {
                out.push(a.start, &a.columns());
            }
        }
        add(acc.get_or_insert_with(|| RollupAcc::new(start)), i);
    }
    if let Some(a) = acc {
        out.push(a.start, &a.columns());
    }
    out
}

/// A figure as stored (hundredths, rounded), for the collector.
pub fn fixed(v: f64) -> Option<i64> {
    v.is_finite().then(|| (v * SCALE).round() as i64)
}

/// How a query combines the points of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Avg,
    Min,
    Max,
}

impl Aggregate {
    pub fn parse(s: &str) -> Option<Aggregate> {
        match s {
            "avg" => Some(Aggregate::Avg),
            "min" => Some(Aggregate::Min),
            "max" => Some(Aggregate::Max),
            _ => None,
        }
    }
    pub fn of(self, a: &Acc) -> Option<f64> {
        if a.count == 0 {
            return None;
        }
        let v = match self {
            Aggregate::Avg => a.sum as f64 / a.count as f64,
            Aggregate::Min => a.min as f64,
            Aggregate::Max => a.max as f64,
        };
        Some(v / SCALE)
    }
}

/// The answer to a metrics query: shared timestamps (start of each step, epoch seconds)
/// and one column of values per asked series (`null` where nothing was measured).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsResult {
    pub scope: MetricScope,
    pub id: String,
    /// The stored resolution read (`raw` 10 s, `minute`, `hour`).
    pub resolution: Resolution,
    /// Seconds per point (never finer than the resolution).
    pub step: i64,
    pub from: i64,
    pub to: i64,
    pub agg: Aggregate,
    pub timestamps: Vec<i64>,
    pub series: Vec<SeriesValues>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeriesValues {
    pub series: Series,
    /// `%`, `MiB`, `B/s` or empty (`up`).
    pub unit: String,
    pub values: Vec<Option<f64>>,
}

/// Most points a query returns per series.
pub const MAX_POINTS_PER_QUERY: i64 = 2000;

/// A validated query: which resolution to read and how to bucket it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub res: Resolution,
    pub from: i64,
    pub to: i64,
    pub step: i64,
}

/// Chooses the finest resolution that still holds `from` and is not finer than the step
/// (default: about 240 points), or says what is wrong with the range.
pub fn plan(now: i64, from: i64, to: i64, step: Option<i64>) -> Result<Plan, crate::Error> {
    use crate::t;
    if to <= from {
        return Err(crate::Error::validation(
            "to",
            t!("结束时间须晚于开始时间", "to must be after from"),
        ));
    }
    if to - from > Resolution::Hour.retention_secs() {
        return Err(crate::Error::validation(
            "from",
            t!("查询范围最长 400 天", "the range may span at most 400 days"),
        ));
    }
    let span = to - from;
    let step = match step {
        Some(s) if !(10..=86_400 * 31).contains(&s) => {
            return Err(crate::Error::validation(
                "step",
                t!(
                    "步长须在 10 秒到 31 天之间",
                    "step must be between 10 s and 31 days"
                ),
            ))
        }
        Some(s) => s,
        None => (span / 240).max(10),
    };
    let age = now - from;
    let res = if step < 60 && age <= Resolution::Raw.retention_secs() {
        Resolution::Raw
    } else if step < 3600 && age <= Resolution::Minute.retention_secs() {
        Resolution::Minute
    } else {
        Resolution::Hour
    };
    let step = step.max(res.step());
    if span / step > MAX_POINTS_PER_QUERY {
        return Err(crate::Error::validation(
            "step",
            t!(
                "该范围与步长将返回 {} 个点，超过上限 {}；请加大步长（至少 {} 秒）或缩短范围" ;
                "this range and step would return {} points, more than {}; use a larger step (at least {} s) or a shorter range",
                span / step, MAX_POINTS_PER_QUERY, (span + MAX_POINTS_PER_QUERY - 1) / MAX_POINTS_PER_QUERY
            ),
        ));
    }
    Ok(Plan {
        res,
        from: from - from.rem_euclid(step),
        to,
        step,
    })
}

/// Buckets the points of the blocks read for `plan` into its steps and combines each
/// step by `agg`, for every asked series. Unreadable blocks are skipped.
pub fn evaluate(
    plan: &Plan,
    blocks: &[Vec<u8>],
    series: &[Series],
    agg: Aggregate,
) -> (Vec<i64>, Vec<Vec<Option<f64>>>) {
    let n = usize::try_from((plan.to - plan.from + plan.step - 1) / plan.step).unwrap_or(0);
    let mut accs = vec![vec![Acc::default(); n]; series.len()];
    for data in blocks {
        let Ok(b) = Block::decode(data) else {
            continue;
        };
        if b.cols.len() != plan.res.columns() {
            continue;
        }
        for (i, &t) in b.ts.iter().enumerate() {
            if t < plan.from || t >= plan.to {
                continue;
            }
            let k = usize::try_from((t - plan.from) / plan.step).unwrap_or(usize::MAX);
            if k >= n {
                continue;
            }
            for (si, s) in series.iter().enumerate() {
                match plan.res {
                    Resolution::Raw => {
                        if let Some(v) = b.cols[s.index()][i] {
                            accs[si][k].add(v);
                        }
                    }
                    _ => accs[si][k].merge(&Acc::from_rollup(&b, s.index(), i)),
                }
            }
        }
    }
    let ts = (0..n as i64).map(|k| plan.from + k * plan.step).collect();
    let values = accs
        .iter()
        .map(|col| {
            col.iter()
                .map(|a| agg.of(a).map(|v| (v * 100.0).round() / 100.0))
                .collect()
        })
        .collect();
    (ts, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw_block() -> impl Strategy<Value = Block> {
        (
            0i64..2_000_000_000,
            proptest::collection::vec(
                (
                    1i64..40,
                    proptest::collection::vec(
                        proptest::option::of(-1_000_000i64..1_000_000_000),
                        Series::COUNT,
                    ),
                ),
                0..400,
            ),
        )
            .prop_map(|(start, pts)| {
                let mut b = Block::new(Series::COUNT);
                let mut t = start;
                for (dt, vals) in pts {
                    t += dt;
                    b.push(t, &vals);
                }
                b
            })
    }

    proptest! {
        #[test]
        fn a_block_decodes_to_what_was_encoded(b in raw_block()) {
            let bytes = b.encode();
            prop_assert_eq!(Block::decode(&bytes).expect("decodes"), b);
        }

        #[test]
        fn rolling_up_minutes_into_hours_equals_rolling_up_raw_into_hours(b in raw_block()) {
            let minutes = rollup_raw(&b, 60);
            prop_assert_eq!(rollup_rollup(&minutes, 3600), rollup_raw(&b, 3600));
            let hours = rollup_rollup(&minutes, 3600);
            prop_assert_eq!(rollup_rollup(&hours, 86_400), rollup_raw(&b, 86_400));
        }

        #[test]
        fn garbage_never_panics_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Block::decode(&bytes);
        }
    }

    #[test]
    fn a_steady_ten_second_beat_costs_about_a_byte_per_timestamp() {
        let mut b = Block::new(1);
        for i in 0..60 {
            b.push(1_700_000_000 + i * 10, &[Some(5000)]);
        }
        // Header 3 + first timestamp 5 + 59 timestamps + flag 1 + first value 2 + 59 deltas.
        assert!(b.encode().len() < 135, "{}", b.encode().len());
    }

    #[test]
    fn a_rollup_keeps_min_max_sum_and_count() {
        let mut b = Block::new(Series::COUNT);
        let mut v = vec![None; Series::COUNT];
        for (i, x) in [10, 30, 20].into_iter().enumerate() {
            v[0] = Some(x);
            b.push(i as i64 * 10, &v);
        }
        let r = rollup_raw(&b, 60);
        assert_eq!(r.len(), 1);
        let a = Acc::from_rollup(&r, 0, 0);
        assert_eq!((a.min, a.max, a.sum, a.count), (10, 30, 60, 3));
        assert_eq!(Aggregate::Avg.of(&a), Some(0.2));
        // A series without points has no rollup.
        assert_eq!(Acc::from_rollup(&r, 1, 0).count, 0);
    }

    #[test]
    fn a_query_reads_the_finest_resolution_that_still_holds_its_start() {
        let now = 1_800_000_000;
        let p = plan(now, now - 3600, now, None).expect("plan");
        assert_eq!((p.res, p.step), (Resolution::Raw, 15));
        let p = plan(now, now - 7 * 86_400, now, None).expect("plan");
        assert_eq!((p.res, p.step), (Resolution::Minute, 2520));
        let p = plan(now, now - 30 * 86_400, now, Some(3600)).expect("plan");
        assert_eq!(p.res, Resolution::Hour);
        // Two days back the raw points are gone: minutes, however fine the step asked.
        let p = plan(now, now - 2 * 86_400, now - 2 * 86_400 + 600, Some(10)).expect("plan");
        assert_eq!((p.res, p.step), (Resolution::Minute, 60));
        assert!(plan(now, now, now - 1, None).is_err());
        assert!(
            plan(now, now - 86_400, now, Some(10)).is_err(),
            "8640 points"
        );
        assert!(plan(now, now - 401 * 86_400, now, None).is_err());
        assert!(plan(now, now - 60, now, Some(5)).is_err());
    }

    #[test]
    fn evaluation_buckets_points_and_leaves_gaps_empty() {
        let mut b = Block::new(Series::COUNT);
        let mut v = vec![None; Series::COUNT];
        for (t, x) in [(0, 1000), (10, 3000), (40, 5000)] {
            v[0] = Some(x);
            b.push(t, &v);
        }
        let p = Plan {
            res: Resolution::Raw,
            from: 0,
            to: 60,
            step: 20,
        };
        let (ts, vals) = evaluate(
            &p,
            &[b.encode()],
            &[Series::Cpu, Series::Up],
            Aggregate::Avg,
        );
        assert_eq!(ts, vec![0, 20, 40]);
        assert_eq!(vals[0], vec![Some(20.0), None, Some(50.0)]);
        assert_eq!(vals[1], vec![None, None, None]);
        let (_, max) = evaluate(&p, &[b.encode()], &[Series::Cpu], Aggregate::Max);
        assert_eq!(max[0][0], Some(30.0));
    }

    #[test]
    fn a_repeated_timestamp_replaces_the_point_and_an_older_one_is_ignored() {
        let mut b = Block::new(1);
        b.push(10, &[Some(1)]);
        b.push(10, &[Some(2)]);
        b.push(5, &[Some(3)]);
        assert_eq!(b.ts, vec![10]);
        assert_eq!(b.cols[0], vec![Some(2)]);
    }
}
