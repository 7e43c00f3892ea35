//! The `metrics_collector` task: every interval (10 s) it reads each host's counters
//! through its provider's driver, turns counters into rates, derives the host and the
//! aggregate (project, department, zone, provider) figures, appends one point per entity
//! to the blocks in progress, rolls up minutes and hours as they close, and writes the
//! changed blocks in batches (every minute by default).
//!
//! **One replica** collects (a singleton): the counters of the previous reading and the
//! blocks in progress live in its memory, and a second collector would only write the
//! same rows twice. A replica that takes the task over (or a restart) first reads the
//! blocks in progress back from the database, so nothing already written is lost and the
//! rollups stay exact; at most the points since the last write are missed.
//!
//! It never stalls on one slow host: hosts are read at most [`CONCURRENCY`] at a time,
//! each within a deadline of 80 % of the interval (at most 5 s); a host that misses it
//! counts as down for that point.

use super::{Latest, Values};
use crate::state::AppState;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;
use zy_compute::{DriverError, HostCounters, HostSample, InstanceCounters};
use zy_model::id::ProviderId;
use zy_model::metrics::{fixed, Block, Resolution, RollupAcc, Series};
use zy_model::Error;
use zy_store::metrics::{BlockRow, MeteredHost, MeteredInstance};

/// Hosts read at the same time.
pub const CONCURRENCY: usize = 16;
/// Closed blocks an entity keeps while the database refuses writes, before the oldest
/// are dropped (bounded memory during an outage).
const MAX_CLOSED: usize = 16;

pub fn task(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(Collector {
        s,
        mem: Mutex::new(Memory::default()),
        unsent: Mutex::new(Default::default()),
    })
}

pub struct Collector {
    s: AppState,
    mem: Mutex<Memory>,
    /// Readings the remote-write receiver has not taken yet, oldest first (bounded).
    unsent: Mutex<std::collections::VecDeque<Vec<u8>>>,
}

/// Readings kept for a remote-write receiver that is away: 30 readings (5 minutes at the
/// default interval), at most 32 MiB; older ones are dropped first (the embedded store
/// keeps every point anyway).
const UNSENT_READINGS: usize = 30;
const UNSENT_BYTES: usize = 32 << 20;

#[derive(Default)]
struct Memory {
    /// Per instance: when its counters were read, and what they were.
    prev: HashMap<Uuid, (i64, InstanceCounters)>,
    /// Per host whose agent measures its own figures: when, and what they were.
    prev_host: HashMap<String, (i64, HostCounters)>,
    entities: HashMap<(&'static str, String), Entity>,
    /// The blocks in progress were read back from the database.
    seeded: bool,
    last_flush: i64,
    last_trim_hour: i64,
    /// Minute-level availability of the instances that should run.
    tally: super::availability::Tally,
    /// Down minutes not written yet (bounded: the oldest go first).
    down: Vec<zy_store::metrics::DownMinute>,
}

/// The blocks in progress of one entity.
struct Entity {
    raw_start: i64,
    raw: Block,
    raw_dirty: bool,
    minute_acc: RollupAcc,
    minute_start: i64,
    minute: Block,
    minute_dirty: bool,
    hour_acc: RollupAcc,
    hour_start: i64,
    hour: Block,
    hour_dirty: bool,
    closed: Vec<(Resolution, i64, Block)>,
    last_point: i64,
}

impl Entity {
    fn new() -> Entity {
        Entity {
            raw_start: i64::MIN,
            raw: Block::new(Resolution::Raw.columns()),
            raw_dirty: false,
            minute_acc: RollupAcc::new(i64::MIN),
            minute_start: i64::MIN,
            minute: Block::new(Resolution::Minute.columns()),
            minute_dirty: false,
            hour_acc: RollupAcc::new(i64::MIN),
            hour_start: i64::MIN,
            hour: Block::new(Resolution::Hour.columns()),
            hour_dirty: false,
            closed: Vec::new(),
            last_point: i64::MIN,
        }
    }

    fn close(&mut self, res: Resolution, start: i64, b: Block) {
        if !b.is_empty() && start != i64::MIN {
            if self.closed.len() >= MAX_CLOSED {
                self.closed.remove(0);
            }
            self.closed.push((res, start, b));
        }
    }

    /// Puts back a block read from the database and the accumulators it implies.
    fn seed(&mut self, res: Resolution, start: i64, b: Block, now: i64) {
        match res {
            Resolution::Raw => {
                self.raw_start = start;
                // The minute in progress is rebuilt from its raw points.
                let minute = now - now.rem_euclid(60);
                let mut acc = RollupAcc::new(minute);
                for (i, &t) in b.ts.iter().enumerate() {
                    if t >= minute {
                        let v: Vec<Option<i64>> = b.cols.iter().map(|c| c[i]).collect();
                        acc.add_raw(&v);
                    }
                    self.last_point = self.last_point.max(t);
                }
                self.minute_acc = acc;
                self.raw = b;
            }
            Resolution::Minute => {
                self.minute_start = start;
                let hour = now - now.rem_euclid(3600);
                let mut acc = RollupAcc::new(hour);
                for (i, &t) in b.ts.iter().enumerate() {
                    if t >= hour {
                        acc.add_rollup(&b, i);
                    }
                }
                self.hour_acc = acc;
                self.minute = b;
            }
            Resolution::Hour => {
                self.hour_start = start;
                self.hour = b;
            }
        }
    }

    fn add(&mut self, t: i64, values: &[Option<i64>]) {
        self.last_point = t;
        let rs = Resolution::Raw.block_start(t);
        if rs != self.raw_start {
            let old = std::mem::replace(&mut self.raw, Block::new(Resolution::Raw.columns()));
            self.close(Resolution::Raw, self.raw_start, old);
            self.raw_start = rs;
        }
        self.raw.push(t, values);
        self.raw_dirty = true;
        let minute = t - t.rem_euclid(60);
        if self.minute_acc.start != minute {
            let done = std::mem::replace(&mut self.minute_acc, RollupAcc::new(minute));
            if !done.is_empty() && done.start != i64::MIN {
                self.push_minute(done);
            }
        }
        self.minute_acc.add_raw(values);
    }

    fn push_minute(&mut self, acc: RollupAcc) {
        let bs = Resolution::Minute.block_start(acc.start);
        if bs != self.minute_start {
            let old = std::mem::replace(&mut self.minute, Block::new(Resolution::Minute.columns()));
            self.close(Resolution::Minute, self.minute_start, old);
            self.minute_start = bs;
        }
        self.minute.push(acc.start, &acc.columns());
        self.minute_dirty = true;
        let hour = acc.start - acc.start.rem_euclid(3600);
        if self.hour_acc.start != hour {
            let done = std::mem::replace(&mut self.hour_acc, RollupAcc::new(hour));
            if !done.is_empty() && done.start != i64::MIN {
                self.push_hour(done);
            }
        }
        for (a, m) in self.hour_acc.series.iter_mut().zip(acc.series.iter()) {
            a.merge(m);
        }
    }

    fn push_hour(&mut self, acc: RollupAcc) {
        let bs = Resolution::Hour.block_start(acc.start);
        if bs != self.hour_start {
            let old = std::mem::replace(&mut self.hour, Block::new(Resolution::Hour.columns()));
            self.close(Resolution::Hour, self.hour_start, old);
            self.hour_start = bs;
        }
        self.hour.push(acc.start, &acc.columns());
        self.hour_dirty = true;
    }

    fn rows(&self, scope: &'static str, entity: &str, out: &mut Vec<BlockRow>) {
        let mut row = |res: Resolution, start: i64, b: &Block| {
            out.push(BlockRow {
                scope,
                entity: entity.to_string(),
                res,
                block_start: start,
                data: b.encode(),
            })
        };
        for (res, start, b) in &self.closed {
            row(*res, *start, b);
        }
        if self.raw_dirty {
            row(Resolution::Raw, self.raw_start, &self.raw);
        }
        if self.minute_dirty {
            row(Resolution::Minute, self.minute_start, &self.minute);
        }
        if self.hour_dirty {
            row(Resolution::Hour, self.hour_start, &self.hour);
        }
    }

    fn written(&mut self) {
        self.closed.clear();
        self.raw_dirty = false;
        self.minute_dirty = false;
        self.hour_dirty = false;
    }
}

/// What one host answered.
enum Answer {
    Sample(HostSample),
    Down,
}

impl crate::tasks::Task for Collector {
    fn name(&self) -> &'static str {
        "metrics_collector"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(self.s.config.metrics_interval_secs.max(1))
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(self.pass())
    }
}

impl Collector {
    async fn pass(&self) -> Result<serde_json::Value, Error> {
        let s = &self.s;
        let interval = i64::try_from(s.config.metrics_interval_secs.max(1)).unwrap_or(10);
        let now_ms = zy_model::time::Timestamp::now().0 / 1000;
        let t = (now_ms / 1000).div_euclid(interval) * interval;
        if !self.lock().seeded {
            let seeds = seed_blocks(s, t).await?;
            let mut m = self.lock();
            for ((scope, entity), res, start, b) in seeds {
                m.entities
                    .entry((scope, entity))
                    .or_insert_with(Entity::new)
                    .seed(res, start, b, t);
            }
            m.seeded = true;
            m.last_flush = t;
        }
        let (hosts, instances) = zy_store::metrics::metered(&s.store).await?;
        let answers = read_hosts(s, &hosts, &instances, interval).await;
        let provided = super::openstack::fresh_figures(s, now_ms).await?;
        let latest = record(
            &mut self.lock(),
            (t, now_ms),
            (&hosts, &instances),
            &answers,
            &provided,
        );
        let down = answers
            .values()
            .filter(|a| matches!(a, Answer::Down))
            .count();
        let entities = latest.len();
        let remote = remote_write(s, t, &latest, &self.unsent).await;
        s.compute.metrics_latest.replace(t, latest);
        let flush_every = i64::try_from(s.config.metrics_flush_secs).unwrap_or(60);
        let mut written = 0;
        if t - self.lock().last_flush >= flush_every {
            written = self.flush(t).await?;
        }
        let mut trimmed = 0;
        let hour = t - t.rem_euclid(3600);
        if self.lock().last_trim_hour != hour {
            for res in [Resolution::Raw, Resolution::Minute, Resolution::Hour] {
                trimmed += zy_store::metrics::trim(&s.store, res, t - res.retention_secs()).await?;
            }
            let mut m = self.lock();
            m.last_trim_hour = hour;
            // Entities without a point for a day (deleted instances) are forgotten.
            m.entities
                .retain(|_, e| e.last_point >= t - 86_400 || !e.closed.is_empty());
        }
        Ok(serde_json::json!({
            "at": t, "hosts": hosts.len(), "hosts_down": down, "instances": instances.len(),
            "entities": entities, "blocks_written": written, "blocks_trimmed": trimmed,
            "remote_write": remote,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.mem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every changed block; on failure they stay marked for the next pass.
    async fn flush(&self, t: i64) -> Result<usize, Error> {
        let rows = {
            let m = self.lock();
            let mut rows = Vec::new();
            for ((scope, id), e) in &m.entities {
                e.rows(scope, id, &mut rows);
            }
            rows
        };
        zy_store::metrics::write_blocks(&self.s.store, &rows).await?;
        let down = std::mem::take(&mut self.lock().down);
        if let Err(e) = zy_store::metrics::record_down_minutes(&self.s.store, &down).await {
            let mut m = self.lock();
            let newer = std::mem::replace(&mut m.down, down);
            m.down.extend(newer);
            return Err(e);
        }
        let mut m = self.lock();
        for e in m.entities.values_mut() {
            e.written();
        }
        m.last_flush = t;
        Ok(rows.len())
    }
}

/// One reading into memory: the figures of every entity (returned), their points added
/// to the blocks in progress, and the minute tally of the instances that should run.
/// `at`: the point's time (s) and the moment of the reading (ms).
fn record(
    m: &mut Memory,
    (t, now_ms): (i64, i64),
    (hosts, instances): (&[MeteredHost], &[MeteredInstance]),
    answers: &HashMap<String, Answer>,
    provided: &HashMap<Uuid, Values>,
) -> super::Latest {
    let latest = compute(m, now_ms, hosts, instances, answers, provided);
    for (key, values) in latest.iter() {
        let fixed: Vec<Option<i64>> = values.iter().map(|v| v.and_then(fixed)).collect();
        m.entities
            .entry((key.0, key.1.clone()))
            .or_insert_with(Entity::new)
            .add(t, &fixed);
    }
    let running = instances.iter().filter(|i| i.state == "running").map(|i| {
        let up = latest
            .get(&("instance", i.id.clone()))
            .and_then(|v| v[Series::Up.index()])
            .is_some_and(|u| u > 0.0);
        (i.id.as_str(), i.provider_id.as_str(), up)
    });
    let closed = m.tally.reading(t, running);
    m.down.extend(closed);
    let over = m
        .down
        .len()
        .saturating_sub(super::availability::MAX_PENDING);
    m.down.drain(..over);
    latest
}

type Seeds = Vec<((&'static str, String), Resolution, i64, Block)>;

async fn seed_blocks(s: &AppState, t: i64) -> Result<Seeds, Error> {
    let mut out = Vec::new();
    for res in [Resolution::Raw, Resolution::Minute, Resolution::Hour] {
        let start = res.block_start(t);
        for (scope, entity, data) in zy_store::metrics::blocks_at(&s.store, res, start).await? {
            let Some(scope) = zy_model::metrics::MetricScope::parse(&scope) else {
                continue;
            };
            match Block::decode(&data) {
                Ok(b) if b.cols.len() == res.columns() => {
                    out.push(((scope.as_str(), entity), res, start, b))
                }
                // A block this binary cannot read is started afresh.
                _ => tracing::warn!(scope = scope.as_str(), entity, "unreadable metrics block"),
            }
        }
    }
    Ok(out)
}

async fn read_hosts(
    s: &AppState,
    hosts: &[MeteredHost],
    instances: &[MeteredInstance],
    interval: i64,
) -> HashMap<String, Answer> {
    let mut by_host: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for i in instances {
        if i.state == "running" {
            if let Ok(id) = i.id.parse() {
                by_host.entry(i.host_id.as_str()).or_default().push(id);
            }
        }
    }
    let deadline = Duration::from_millis(u64::try_from(interval * 800).unwrap_or(8000))
        .min(Duration::from_secs(5));
    let jobs: Vec<_> = hosts
        .iter()
        .map(|h| {
            let wanted = by_host.remove(h.id.as_str()).unwrap_or_default();
            let driver = h
                .provider_id
                .parse::<Uuid>()
                .ok()
                .and_then(|p| s.compute.drivers.get(ProviderId(p)).ok());
            (h.id.clone(), h.id.parse::<Uuid>().ok(), driver, wanted)
        })
        .collect();
    let mut reads: Vec<BoxFuture<'static, (String, Answer)>> = Vec::with_capacity(jobs.len());
    for (id, host_id, driver, wanted) in jobs {
        reads.push(Box::pin(async move {
            let (Some(driver), Some(host_id)) = (driver, host_id) else {
                return (id, Answer::Down);
            };
            let r = tokio::time::timeout(deadline, driver.host_sample(host_id, &wanted)).await;
            let a = match r {
                Ok(Ok(sample)) => Answer::Sample(sample),
                Ok(Err(DriverError::HostDown(_))) | Err(_) => Answer::Down,
                Ok(Err(e)) => {
                    tracing::debug!(host = %id, error = %e, "metrics: host not read");
                    Answer::Down
                }
            };
            (id, a)
        }));
    }
    futures_util::stream::iter(reads)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Sums for an aggregate entity.
#[derive(Default)]
struct Sum {
    cpu_weighted: f64,
    cpu_vcpus: f64,
    mem_used: f64,
    mem_total: f64,
    read: Option<f64>,
    write: Option<f64>,
    disk_used: f64,
    disk_used_n: f64,
    rx: Option<f64>,
    tx: Option<f64>,
    up: f64,
}

fn add_opt(a: &mut Option<f64>, v: Option<f64>) {
    if let Some(v) = v {
        *a = Some(a.unwrap_or(0.0) + v);
    }
}

impl Sum {
    fn add(&mut self, v: &Values, vcpus: f64, memory_mib: f64) {
        if let Some(c) = v[Series::Cpu.index()] {
            self.cpu_weighted += c * vcpus;
            self.cpu_vcpus += vcpus;
        }
        if let Some(m) = v[Series::MemUsed.index()] {
            self.mem_used += m;
            self.mem_total += memory_mib;
        }
        add_opt(&mut self.read, v[Series::DiskRead.index()]);
        add_opt(&mut self.write, v[Series::DiskWrite.index()]);
        if let Some(d) = v[Series::DiskUsed.index()] {
            self.disk_used += d;
            self.disk_used_n += 1.0;
        }
        add_opt(&mut self.rx, v[Series::NetRx.index()]);
        add_opt(&mut self.tx, v[Series::NetTx.index()]);
        self.up += v[Series::Up.index()].unwrap_or(0.0);
    }

    /// `host`: the CPU and memory are shares of the host's own (not of the members').
    fn values(&self, host: Option<(f64, f64)>, up: Option<f64>) -> Values {
        let mut v: Values = [None; Series::COUNT];
        let (cpu_base, mem_base) = host.unwrap_or((self.cpu_vcpus, self.mem_total));
        if cpu_base > 0.0 && (self.cpu_vcpus > 0.0 || host.is_some()) {
            v[Series::Cpu.index()] = Some(self.cpu_weighted / cpu_base);
        }
        if mem_base > 0.0 && (self.mem_total > 0.0 || host.is_some()) {
            v[Series::Mem.index()] = Some(self.mem_used / mem_base * 100.0);
            v[Series::MemUsed.index()] = Some(self.mem_used);
        }
        v[Series::DiskRead.index()] = self.read;
        v[Series::DiskWrite.index()] = self.write;
        if self.disk_used_n > 0.0 {
            v[Series::DiskUsed.index()] = Some(self.disk_used / self.disk_used_n);
        }
        v[Series::NetRx.index()] = self.rx;
        v[Series::NetTx.index()] = self.tx;
        v[Series::Up.index()] = Some(up.unwrap_or(self.up));
        v
    }
}

/// Replaces a host's figures derived from its guests by what the host measured of
/// itself (guests, their QEMU overhead and everything else on the machine): CPU and
/// network from the change since `prev` (ms elapsed, earlier reading), memory and disk
/// use as they stand. The guests' disk I/O stays the sum of theirs.
fn own_figures(v: &mut Values, own: &HostCounters, prev: Option<(i64, &HostCounters)>) {
    if own.memory_total_mib > 0 {
        v[Series::Mem.index()] =
            Some((own.memory_used_mib as f64 / own.memory_total_mib as f64 * 100.0).min(100.0));
        v[Series::MemUsed.index()] = Some(own.memory_used_mib as f64);
    }
    if own.disk_total_bytes > 0 {
        v[Series::DiskUsed.index()] =
            Some((own.disk_used_bytes as f64 / own.disk_total_bytes as f64 * 100.0).min(100.0));
    }
    let Some((dt_ms, p)) = prev.filter(|(dt, _)| *dt > 0) else {
        return;
    };
    let total = own.cpu_total_ms.saturating_sub(p.cpu_total_ms);
    let busy = own.cpu_busy_ms.checked_sub(p.cpu_busy_ms);
    if let (Some(busy), true) = (busy, total > 0) {
        v[Series::Cpu.index()] = Some((busy as f64 / total as f64 * 100.0).min(100.0));
    }
    let dt = dt_ms as f64 / 1000.0;
    let rate = |new: u64, old: u64| (new >= old).then(|| (new - old) as f64 / dt);
    v[Series::NetRx.index()] = rate(own.net_rx_bytes, p.net_rx_bytes);
    v[Series::NetTx.index()] = rate(own.net_tx_bytes, p.net_tx_bytes);
}

/// The figures of one running instance from its cumulative counters and, when there is
/// one, the previous reading (milliseconds before, its counters): memory and disk use as
/// they stand, CPU as a share of the instance's vCPUs and byte rates from the change. A
/// counter that went back (a restarted guest) gives no rate for that point. The one rule
/// for every provider: the KVM agents' and the simulator's readings here, an OpenStack
/// provider's Nova diagnostics in `monitoring::openstack`.
pub fn instance_figures(
    c: &InstanceCounters,
    prev: Option<(i64, &InstanceCounters)>,
    vcpus: i64,
    memory_mib: i64,
    disk_gib: i64,
) -> Values {
    let mut v: Values = [None; Series::COUNT];
    v[Series::Up.index()] = Some(1.0);
    v[Series::MemUsed.index()] = Some(c.memory_used_mib as f64);
    if memory_mib > 0 {
        v[Series::Mem.index()] =
            Some((c.memory_used_mib as f64 / memory_mib as f64 * 100.0).min(100.0));
    }
    if let (Some(used), true) = (c.disk_used_bytes, disk_gib > 0) {
        let size = disk_gib as f64 * (1u64 << 30) as f64;
        v[Series::DiskUsed.index()] = Some((used as f64 / size * 100.0).min(100.0));
    }
    let Some((dt_ms, p)) = prev else {
        return v;
    };
    let dt = dt_ms as f64 / 1000.0;
    let rate = |new: u64, old: u64| (new >= old && dt > 0.0).then(|| (new - old) as f64 / dt);
    let opt_rate = |new: Option<u64>, old: Option<u64>| match (new, old) {
        (Some(n), Some(o)) => rate(n, o),
        _ => None,
    };
    if let Some(ms) = rate(c.cpu_time_ms, p.cpu_time_ms) {
        // ms of CPU per second → % of the allotted vCPUs.
        v[Series::Cpu.index()] = Some((ms / 10.0 / vcpus.max(1) as f64).min(100.0));
    }
    v[Series::DiskRead.index()] = rate(c.disk_read_bytes, p.disk_read_bytes);
    v[Series::DiskWrite.index()] = rate(c.disk_write_bytes, p.disk_write_bytes);
    v[Series::NetRx.index()] = opt_rate(c.net_rx_bytes, p.net_rx_bytes);
    v[Series::NetTx.index()] = opt_rate(c.net_tx_bytes, p.net_tx_bytes);
    v
}

/// Turns one reading into the figures of every entity.
fn compute(
    m: &mut Memory,
    now_ms: i64,
    hosts: &[MeteredHost],
    instances: &[MeteredInstance],
    answers: &HashMap<String, Answer>,
    provided: &HashMap<Uuid, Values>,
) -> Latest {
    let mut out: Latest = HashMap::new();
    let mut counters: HashMap<Uuid, &InstanceCounters> = HashMap::new();
    for a in answers.values() {
        if let Answer::Sample(s) = a {
            for c in &s.instances {
                counters.insert(c.instance_id, c);
            }
        }
    }
    let mut sums: HashMap<(&'static str, &str), Sum> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for i in instances {
        let Ok(id) = i.id.parse::<Uuid>() else {
            continue;
        };
        let vcpus = i.vcpus.max(1) as f64;
        let mut v: Values = [None; Series::COUNT];
        v[Series::Up.index()] = Some(0.0);
        if let Some(p) = provided.get(&id).filter(|_| i.state == "running") {
            // Measured by the provider's own metrics task (an OpenStack provider's Nova
            // diagnostics): its latest figures stand until the next reading.
            v = *p;
        } else if let Some(c) = counters.get(&id).filter(|c| c.running) {
            seen.insert(id);
            let prev = m.prev.get(&id).map(|(at, p)| (now_ms - at, p));
            v = instance_figures(c, prev, i.vcpus, i.memory_mib, i.disk_gib);
            m.prev.insert(id, (now_ms, (*c).clone()));
        }
        for (scope, key) in [
            ("project", i.project_id.as_str()),
            ("department", i.department_id.as_str()),
            ("zone", i.zone_id.as_str()),
            ("provider", i.provider_id.as_str()),
            ("host", i.host_id.as_str()),
        ] {
            sums.entry((scope, key))
                .or_default()
                .add(&v, vcpus, i.memory_mib as f64);
        }
        out.insert(("instance", i.id.clone()), v);
    }
    m.prev.retain(|id, _| seen.contains(id));
    m.prev_host.retain(|id, _| {
        matches!(
            answers.get(id),
            Some(Answer::Sample(HostSample { host: Some(_), .. }))
        )
    });
    for h in hosts {
        let up = matches!(answers.get(&h.id), Some(Answer::Sample(_)));
        let v = if up {
            let sum = sums.remove(&("host", h.id.as_str())).unwrap_or_default();
            let mut v = sum.values(
                Some((h.vcpus.max(1) as f64, h.memory_mib.max(1) as f64)),
                Some(1.0),
            );
            if let Some(Answer::Sample(HostSample {
                host: Some(own), ..
            })) = answers.get(&h.id)
            {
                let prev = m.prev_host.insert(h.id.clone(), (now_ms, own.clone()));
                own_figures(&mut v, own, prev.as_ref().map(|(at, p)| (now_ms - at, p)));
            }
            v
        } else {
            sums.remove(&("host", h.id.as_str()));
            let mut v: Values = [None; Series::COUNT];
            v[Series::Up.index()] = Some(0.0);
            v
        };
        out.insert(("host", h.id.clone()), v);
    }
    for ((scope, key), sum) in sums {
        if scope != "host" {
            out.insert((scope, key.to_string()), sum.values(None, None));
        }
    }
    out
}

/// For the benchmark (`examples/metrics_bench.rs`): `instances` synthetic instances (100
/// per host; 10 departments of 10 projects; 2 zones) read `intervals` times 10 s apart
/// from `start`, through the same rate computation, rollups, encoding and batched writes
/// as the collector (a write every minute). Returns the blocks written.
pub async fn synthetic_ingest(
    store: &zy_store::Store,
    instances: usize,
    intervals: usize,
    start: i64,
) -> Result<usize, Error> {
    let hosts: Vec<MeteredHost> = (0..instances.div_ceil(100))
        .map(|h| MeteredHost {
            id: Uuid::from_u128(1 << 64 | h as u128).to_string(),
            name: format!("host-{h}"),
            zone_id: Uuid::from_u128(2 << 64 | (h % 2) as u128).to_string(),
            provider_id: Uuid::from_u128(3 << 64).to_string(),
            vcpus: 64,
            memory_mib: 262_144,
        })
        .collect();
    let list: Vec<MeteredInstance> = (0..instances)
        .map(|i| MeteredInstance {
            id: Uuid::from_u128(4 << 64 | i as u128).to_string(),
            name: format!("vm-{i}"),
            project_id: Uuid::from_u128(5 << 64 | (i % 100) as u128).to_string(),
            department_id: Uuid::from_u128(6 << 64 | (i % 10) as u128).to_string(),
            zone_id: hosts[i / 100].zone_id.clone(),
            provider_id: hosts[i / 100].provider_id.clone(),
            host_id: hosts[i / 100].id.clone(),
            state: "running".into(),
            vcpus: 2,
            memory_mib: 4096,
            disk_gib: 40,
        })
        .collect();
    let mut m = Memory {
        seeded: true,
        last_flush: start,
        ..Memory::default()
    };
    let mut written = 0;
    for k in 0..intervals {
        let t = start + 10 * k as i64;
        let kk = k as u64;
        let mut answers: HashMap<String, Answer> = HashMap::new();
        for (i, inst) in list.iter().enumerate() {
            let c = InstanceCounters {
                instance_id: inst.id.parse().unwrap_or_default(),
                running: true,
                cpu_time_ms: kk * 200 * (i as u64 % 100),
                memory_used_mib: 1024 + (i as u64 % 2048),
                disk_read_bytes: kk * 10_000 * (i as u64 % 37),
                disk_write_bytes: kk * 5_000 * (i as u64 % 41),
                disk_used_bytes: Some(10 << 30),
                net_rx_bytes: Some(kk * 3_000 * (i as u64 % 13)),
                net_tx_bytes: Some(kk * 2_000 * (i as u64 % 17)),
            };
            match answers
                .entry(inst.host_id.clone())
                .or_insert_with(|| Answer::Sample(HostSample::default()))
            {
                Answer::Sample(s) => s.instances.push(c),
                Answer::Down => {}
            }
        }
        record(
            &mut m,
            (t, t * 1000),
            (&hosts, &list),
            &answers,
            &HashMap::new(),
        );
        if t - m.last_flush >= 60 {
            let mut rows = Vec::new();
            for ((scope, id), e) in &m.entities {
                e.rows(scope, id, &mut rows);
            }
            zy_store::metrics::write_blocks(store, &rows).await?;
            written += rows.len();
            for e in m.entities.values_mut() {
                e.written();
            }
            m.last_flush = t;
        }
    }
    Ok(written)
}

/// Sends the reading to the configured remote-write receiver, if any, after the readings
/// it missed (oldest first, so every series stays in time order); the outcome goes into
/// the task's status (`off`, `ok`, or the error with how many readings wait).
async fn remote_write(
    s: &crate::state::AppState,
    t: i64,
    latest: &super::Latest,
    unsent: &Mutex<std::collections::VecDeque<Vec<u8>>>,
) -> String {
    use super::remote_write as rw;
    let stored: Option<rw::Stored> =
        match zy_store::settings::get(s.store.pool(), rw::SETTINGS_KEY).await {
            Ok(v) => v,
            Err(e) => return format!("cannot read the settings: {e}"),
        };
    let Some(cfg) = stored.filter(|c| c.enabled) else {
        lock_unsent(unsent).clear();
        return "off".into();
    };
    let bearer = match cfg.bearer_sealed.as_deref().map(|b| s.sealer.open(b)) {
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => return format!("cannot open the token: {e}"),
        None => None,
    };
    let labels = match zy_store::instances::labels(&s.store).await {
        Ok(l) => l,
        Err(e) => return format!("cannot read the labels: {e}"),
    };
    keep_unsent(
        &mut lock_unsent(unsent),
        rw::write_request(t, latest, &labels),
    );
    let http = reqwest::Client::new();
    let mut refused = None;
    loop {
        let Some(body) = lock_unsent(unsent).pop_front() else {
            return refused.unwrap_or_else(|| "ok".into());
        };
        match rw::send(&http, &cfg.url, bearer.as_deref(), body.clone()).await {
            Ok(()) => {}
            // The receiver refused this reading itself (e.g. samples it already has):
            // sending it again would be refused again.
            Err(rw::SendError::Refused(e)) => {
                tracing::warn!(url = %cfg.url, error = %e, "remote write refused a reading");
                refused = Some(e);
            }
            Err(rw::SendError::Unavailable(e)) => {
                let mut q = lock_unsent(unsent);
                q.push_front(body);
                tracing::warn!(url = %cfg.url, error = %e, waiting = q.len(), "remote write failed");
                return format!("{e} ({} readings wait)", q.len());
            }
        }
    }
}

fn lock_unsent(
    m: &Mutex<std::collections::VecDeque<Vec<u8>>>,
) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Vec<u8>>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends a reading, dropping the oldest beyond the bounds.
fn keep_unsent(q: &mut std::collections::VecDeque<Vec<u8>>, body: Vec<u8>) {
    q.push_back(body);
    while q.len() > UNSENT_READINGS
        || (q.len() > 1 && q.iter().map(Vec::len).sum::<usize>() > UNSENT_BYTES)
    {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_readings_are_bounded_and_the_oldest_go_first() {
        let mut q = std::collections::VecDeque::new();
        for i in 0..(UNSENT_READINGS + 5) {
            keep_unsent(&mut q, vec![i as u8]);
        }
        assert_eq!(q.len(), UNSENT_READINGS);
        assert_eq!(q.front(), Some(&vec![5u8]), "the five oldest were dropped");
        let mut q = std::collections::VecDeque::new();
        keep_unsent(&mut q, vec![0; UNSENT_BYTES - 10]);
        keep_unsent(&mut q, vec![1; 100]);
        assert_eq!(q.len(), 1, "over the byte bound the oldest goes");
        assert_eq!(q[0], vec![1u8; 100]);
    }

    #[test]
    fn a_guest_whose_host_stops_answering_for_a_minute_has_a_down_minute() {
        let host = |id: &str| MeteredHost {
            id: id.into(),
            name: id.into(),
            zone_id: "z".into(),
            provider_id: "p".into(),
            vcpus: 8,
            memory_mib: 8192,
        };
        let guest = |id: u128, host: &str, state: &str| MeteredInstance {
            id: Uuid::from_u128(id).to_string(),
            name: format!("vm-{id}"),
            project_id: "pr".into(),
            department_id: "d".into(),
            zone_id: "z".into(),
            provider_id: "p".into(),
            host_id: host.into(),
            state: state.into(),
            vcpus: 1,
            memory_mib: 1024,
            disk_gib: 10,
        };
        let hosts = [host("h1"), host("h2")];
        // 1 and 2 run on h1, 3 on h2; 4 is stopped on h1 (nobody expects it to answer).
        let guests = [
            guest(1, "h1", "running"),
            guest(2, "h1", "running"),
            guest(3, "h2", "running"),
            guest(4, "h1", "stopped"),
        ];
        let sample = |ids: &[u128]| {
            Answer::Sample(HostSample {
                instances: ids
                    .iter()
                    .map(|&i| InstanceCounters {
                        instance_id: Uuid::from_u128(i),
                        running: true,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        };
        let mut m = Memory::default();
        // Minute 6000: h1 answers twice, then is silent for four readings; guest 2 alone
        // answers nothing all minute (crashed).
        for k in 0..7i64 {
            let t = 6000 + 10 * k;
            let mut answers = HashMap::new();
            if !(2..6).contains(&k) {
                answers.insert("h1".to_string(), sample(&[1]));
            }
            answers.insert("h2".to_string(), sample(&[3]));
            record(
                &mut m,
                (t, t * 1000),
                (&hosts, &guests),
                &answers,
                &HashMap::new(),
            );
        }
        let mut down: Vec<(String, i64, i64, i64)> = m
            .down
            .iter()
            .map(|d| (d.instance_id.clone(), d.minute, d.readings, d.missed))
            .collect();
        down.sort();
        assert_eq!(
            down,
            vec![
                (Uuid::from_u128(1).to_string(), 6000, 6, 4),
                (Uuid::from_u128(2).to_string(), 6000, 6, 6),
            ]
        );
    }

    #[test]
    fn a_host_that_measures_itself_reports_its_own_cpu_memory_disk_and_traffic() {
        let mut v: Values = [None; Series::COUNT];
        v[Series::Cpu.index()] = Some(10.0); // what its guests use
        v[Series::DiskRead.index()] = Some(4096.0);
        let before = HostCounters {
            cpu_busy_ms: 1_000,
            cpu_total_ms: 10_000,
            memory_used_mib: 1_000,
            memory_total_mib: 4_000,
            disk_used_bytes: 50,
            disk_total_bytes: 100,
            net_rx_bytes: 1_000,
            net_tx_bytes: 2_000,
        };
        // The first reading: no rates yet, the guests' CPU stays.
        own_figures(&mut v, &before, None);
        assert_eq!(v[Series::Cpu.index()], Some(10.0));
        assert_eq!(v[Series::Mem.index()], Some(25.0));
        assert_eq!(v[Series::MemUsed.index()], Some(1_000.0));
        assert_eq!(v[Series::DiskUsed.index()], Some(50.0));
        assert_eq!(v[Series::NetRx.index()], None);
        // 10 s later on 2 cores: 20,000 ms of CPU time, 15,000 of them busy.
        let after = HostCounters {
            cpu_busy_ms: 16_000,
            cpu_total_ms: 30_000,
            net_rx_bytes: 11_000,
            net_tx_bytes: 2_000,
            ..before.clone()
        };
        own_figures(&mut v, &after, Some((10_000, &before)));
        assert_eq!(v[Series::Cpu.index()], Some(75.0));
        assert_eq!(v[Series::NetRx.index()], Some(1_000.0));
        assert_eq!(v[Series::NetTx.index()], Some(0.0));
        assert_eq!(
            v[Series::DiskRead.index()],
            Some(4096.0),
            "guests' I/O kept"
        );
        // Counters that went back (a reboot) give no rate rather than a wrong one.
        let rebooted = HostCounters {
            cpu_busy_ms: 10,
            cpu_total_ms: 100,
            net_rx_bytes: 5,
            ..after.clone()
        };
        let mut w: Values = [None; Series::COUNT];
        own_figures(&mut w, &rebooted, Some((10_000, &after)));
        assert_eq!(w[Series::Cpu.index()], None);
        assert_eq!(w[Series::NetRx.index()], None);
    }

    fn point(t: i64) -> Vec<Option<i64>> {
        (0..Series::COUNT as i64)
            .map(|k| Some((t / 10 * 7 + k * 13) % 10_000))
            .collect()
    }

    #[test]
    fn a_collector_that_restarts_from_its_written_blocks_ends_with_the_same_rollups() {
        let day = 1_800_000_000 - 1_800_000_000 % 86_400;
        let (t0, tm, t1) = (
            day + 4 * 3600 + 1800,
            day + 4 * 3600 + 3000,
            day + 5 * 3600 + 1200,
        );
        let mut a = Entity::new();
        let mut b = Entity::new();
        for t in (t0..=t1).step_by(10) {
            a.add(t, &point(t));
        }
        for t in (t0..=tm).step_by(10) {
            b.add(t, &point(t));
        }
        // What the last write left in the database, read back by a new collector.
        let mut c = Entity::new();
        let now = tm + 10;
        c.seed(Resolution::Raw, b.raw_start, b.raw.clone(), now);
        c.seed(Resolution::Minute, b.minute_start, b.minute.clone(), now);
        c.seed(Resolution::Hour, b.hour_start, b.hour.clone(), now);
        for t in (now..=t1).step_by(10) {
            c.add(t, &point(t));
        }
        assert_eq!(c.raw, a.raw);
        assert_eq!(c.minute, a.minute);
        assert_eq!(c.hour, a.hour);
        assert_eq!(c.minute_acc, a.minute_acc);
        assert_eq!(c.hour_acc, a.hour_acc);
        assert_eq!(a.hour.len(), 1, "the 04:00 hour closed");
    }

    #[test]
    fn rollups_built_point_by_point_equal_the_rollup_of_the_raw_points() {
        let start = 1_800_000_000;
        let mut e = Entity::new();
        let mut all = Block::new(Series::COUNT);
        for t in (start..start + 3 * 3600).step_by(10) {
            e.add(t, &point(t));
            all.push(t, &point(t));
        }
        let minutes = zy_model::metrics::rollup_raw(&all, 60);
        let mut got = Block::new(Resolution::Minute.columns());
        for (_, _, b) in e.closed.iter().filter(|(r, _, _)| *r == Resolution::Minute) {
            for (i, &t) in b.ts.iter().enumerate() {
                got.push(t, &b.cols.iter().map(|c| c[i]).collect::<Vec<_>>());
            }
        }
        for (i, &t) in e.minute.ts.iter().enumerate() {
            got.push(t, &e.minute.cols.iter().map(|c| c[i]).collect::<Vec<_>>());
        }
        // Every minute but the one in progress.
        assert_eq!(got.len(), minutes.len() - 1);
        for (i, &t) in got.ts.iter().enumerate() {
            assert_eq!(t, minutes.ts[i]);
            for (c, col) in got.cols.iter().enumerate() {
                assert_eq!(col[i], minutes.cols[c][i]);
            }
        }
    }
}
