//! Metrics of instances on OpenStack providers: zhengyun has no agent there, so the
//! `openstack_metrics` task (one replica, every `Config::openstack_metrics_secs`, 60 s)
//! reads what Nova exposes — `GET /servers/{id}/diagnostics` — for every running instance
//! of each OpenStack provider, turns two readings into figures by the collector's own rule
//! (`collector::instance_figures`: CPU from the change of CPU time, byte rates from
//! counters, nothing for a counter that went back) and stores the latest reading per
//! instance in `provider_readings`. The metrics collector, on whichever replica runs it,
//! writes those figures as the instance's points until the next reading, so the series,
//! aggregates, charts, alerts and availability of OpenStack instances come out of the same
//! pipeline as those of KVM guests.
//!
//! Separate from the collector because Nova is slow and remote: one call per server, at
//! most [`CONCURRENCY`] at a time per provider through the driver's circuit breaker and
//! limit, each provider within 80 % of the period, providers side by side. No transaction
//! is open while Nova is called: the readings are written in one short transaction after.

use crate::compute::openstack::{OpenStackDriver, Server, UNAVAILABLE};
use crate::monitoring::Values;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use zy_compute::{DriverError, InstanceCounters};
use zy_model::id::{InstanceId, ProviderId};
use zy_model::metrics::Series;
use zy_model::{t, Error};
use zy_store::metrics::ProviderReading;

/// Diagnostics calls in flight per provider (the driver allows 8 calls at a time in all:
/// the rest stays free for the sagas).
pub const CONCURRENCY: usize = 4;

/// Readings older than this are gone (stopped or deleted instances).
const KEEP_MS: i64 = 86_400_000;

/// What one diagnostics answer says, in the units zhengyun uses; `None` where Nova (or its
/// virt driver) did not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Seconds since the guest started.
    pub uptime_s: Option<u64>,
    /// CPU time of all vCPUs, nanoseconds.
    pub cpu_time_ns: Option<u64>,
    pub memory_used_mib: Option<u64>,
    pub memory_max_mib: Option<u64>,
    pub disk_read_bytes: Option<u64>,
    pub disk_write_bytes: Option<u64>,
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
}

/// Sums the present values; `None` when none is present.
fn sum(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.flatten().reduce(|a, b| a.saturating_add(b))
}

/// Parses a diagnostics body: the standard form of microversion 2.48 and later
/// (`cpu_details`, `memory_details` in MiB, `nic_details` octets, `disk_details` bytes,
/// `uptime`), or the older free-form one of the libvirt driver (`cpu0_time` ns, `memory-rss`
/// KiB, `<disk>_read`/`_write` bytes, `<nic>_rx`/`_tx` bytes).
pub fn parse_diagnostics(v: &Value) -> Diagnostics {
    let num = |v: Option<&Value>| v.and_then(Value::as_u64);
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if v.get("cpu_details").is_some() || v.get("memory_details").is_some() {
        let over = |k: &str, f: &str| sum(list(k).iter().map(|x| num(x.get(f))));
        return Diagnostics {
            uptime_s: num(v.get("uptime")),
            cpu_time_ns: over("cpu_details", "time"),
            memory_used_mib: num(v.pointer("/memory_details/used")),
            memory_max_mib: num(v.pointer("/memory_details/maximum")),
            disk_read_bytes: over("disk_details", "read_bytes"),
            disk_write_bytes: over("disk_details", "write_bytes"),
            net_rx_bytes: over("nic_details", "rx_octets"),
            net_tx_bytes: over("nic_details", "tx_octets"),
        };
    }
    let Some(map) = v.as_object() else {
        return Diagnostics::default();
    };
    let keyed = |ok: &dyn Fn(&str) -> bool| {
        sum(map
            .iter()
            .filter(|(k, _)| ok(k.as_str()))
            .map(|(_, x)| x.as_u64()))
    };
    let cpu = |k: &str| {
        k.strip_prefix("cpu")
            .and_then(|r| r.strip_suffix("_time"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    Diagnostics {
        uptime_s: num(map.get("uptime")),
        cpu_time_ns: keyed(&cpu),
        memory_used_mib: num(map.get("memory-rss")).map(|k| k / 1024),
        memory_max_mib: num(map.get("memory")).map(|k| k / 1024),
        disk_read_bytes: keyed(&|k| k.ends_with("_read")),
        disk_write_bytes: keyed(&|k| k.ends_with("_write")),
        net_rx_bytes: keyed(&|k| k.ends_with("_rx")),
        net_tx_bytes: keyed(&|k| k.ends_with("_tx")),
    }
}

impl Diagnostics {
    fn counters(&self) -> InstanceCounters {
        InstanceCounters {
            instance_id: Uuid::nil(),
            running: true,
            cpu_time_ms: self.cpu_time_ns.unwrap_or(0) / 1_000_000,
            memory_used_mib: self.memory_used_mib.unwrap_or(0),
            disk_read_bytes: self.disk_read_bytes.unwrap_or(0),
            disk_write_bytes: self.disk_write_bytes.unwrap_or(0),
            disk_used_bytes: None,
            net_rx_bytes: self.net_rx_bytes,
            net_tx_bytes: self.net_tx_bytes,
        }
    }
}

/// The figures of a reading, given the previous one (ms before, what it said), for an
/// instance of `vcpus` and `memory_mib`: the collector's rule, with no rate at all across
/// a restart of the guest (its uptime went back) and nothing for what Nova left out.
pub fn figures(
    now: &Diagnostics,
    prev: Option<(i64, &Diagnostics)>,
    vcpus: i64,
    memory_mib: i64,
) -> Values {
    let restarted =
        |p: &Diagnostics| matches!((now.uptime_s, p.uptime_s), (Some(n), Some(o)) if n < o);
    let prev = prev.filter(|&(dt, p)| dt > 0 && !restarted(p));
    let pc = prev.map(|(dt, p)| (dt, p.counters()));
    let mut v = super::collector::instance_figures(
        &now.counters(),
        pc.as_ref().map(|(dt, c)| (*dt, c)),
        vcpus,
        memory_mib,
        0,
    );
    let both = |f: fn(&Diagnostics) -> Option<u64>| {
        f(now).is_some() && prev.is_some_and(|(_, p)| f(p).is_some())
    };
    if !both(|d| d.cpu_time_ns) {
        v[Series::Cpu.index()] = None;
    }
    if !both(|d| d.disk_read_bytes) {
        v[Series::DiskRead.index()] = None;
    }
    if !both(|d| d.disk_write_bytes) {
        v[Series::DiskWrite.index()] = None;
    }
    if now.memory_used_mib.is_none() {
        v[Series::Mem.index()] = None;
        v[Series::MemUsed.index()] = None;
    }
    v
}

/// The figures the collector writes for instances measured by a provider's task: the
/// readings of the last three periods (one missed reading does not mark an instance down).
pub async fn fresh_figures(s: &AppState, now_ms: i64) -> Result<HashMap<Uuid, Values>, Error> {
    let period = i64::try_from(s.config.openstack_metrics_secs.max(1)).unwrap_or(60);
    let since = now_ms - 3 * period * 1000;
    let mut out = HashMap::new();
    for r in zy_store::metrics::provider_readings(&s.store, None, since).await? {
        let Ok(id) = r.instance_id.parse::<Uuid>() else {
            continue;
        };
        let mut v: Values = [None; Series::COUNT];
        if r.running {
            let stored: Vec<Option<f64>> = r
                .figures
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok())
                .unwrap_or_default();
            for (slot, x) in v.iter_mut().zip(stored) {
                *slot = x;
            }
        }
        v[Series::Up.index()] = Some(if r.running { 1.0 } else { 0.0 });
        out.insert(id, v);
    }
    Ok(out)
}

/// A running instance of the provider, as the pass needs it.
struct Wanted {
    id: InstanceId,
    vcpus: i64,
    memory_mib: i64,
}

/// What became of one server's diagnostics call.
enum Got {
    Read(Value),
    /// 403: the provider's policy does not let the credential read diagnostics.
    Refused(String),
    /// 404 (gone meanwhile) or 409 (building, resizing…): skipped this time.
    Skipped,
    /// The provider is down (unreachable, 502–504, 5xx, circuit open).
    Outage(String),
    Failed,
    /// Not asked: the pass ran out of time or the policy already refused.
    NotAsked,
}

fn status_of(e: &DriverError) -> Option<u16> {
    let m = e.to_string();
    let at = m.find(" answered ")? + " answered ".len();
    m.get(at..at + 3)?.parse().ok()
}

fn classify(e: DriverError) -> Got {
    let status = status_of(&e);
    let outage = match &e {
        DriverError::InProgress(m) => m.starts_with(UNAVAILABLE),
        DriverError::Transient(_) => !matches!(status, Some(409 | 429)),
        _ => false,
    };
    match status {
        _ if outage => Got::Outage(e.to_string()),
        Some(403) => Got::Refused(e.to_string()),
        // Gone meanwhile, busy, or over the provider's rate limit: next time.
        Some(404 | 409 | 429) => Got::Skipped,
        _ => Got::Failed,
    }
}

/// The outcome of one provider's pass.
#[derive(Default)]
struct Pass {
    readings: Vec<ProviderReading>,
    /// Diagnostics calls made.
    asked: u32,
    read: u32,
    not_running: u32,
    skipped: u32,
    failed: u32,
    late: u32,
    not_found: u32,
    refused: Option<String>,
    outage: Option<String>,
}

impl Pass {
    fn status(&self, instances: usize) -> Value {
        let mut v = serde_json::json!({
            "instances": instances, "asked": self.asked, "read": self.read, "not_running": self.not_running,
            "skipped": self.skipped, "failed": self.failed, "late": self.late,
            "not_found": self.not_found,
        });
        if let Some(r) = &self.refused {
            v["diagnostics"] = Value::String(format!(
                "refused by the provider's policy (instances are reported up or down only): {r}"
            ));
        }
        if let Some(o) = &self.outage {
            v["error"] = Value::String(o.clone());
        }
        v
    }
}

/// Reads one provider's running instances. Never errs: an outage is in the outcome.
async fn read_provider(
    s: &AppState,
    provider: ProviderId,
    driver: Arc<OpenStackDriver>,
    wanted: Vec<Wanted>,
    probe_only: bool,
    deadline: Instant,
) -> Pass {
    let mut pass = Pass::default();
    let prev: HashMap<String, ProviderReading> = match zy_store::metrics::provider_readings(
        &s.store,
        Some(&provider.to_string()),
        0,
    )
    .await
    {
        Ok(rows) => rows
            .into_iter()
            .map(|r| (r.instance_id.clone(), r))
            .collect(),
        Err(e) => {
            pass.outage = Some(format!("cannot read the previous readings: {e}"));
            return pass;
        }
    };
    let servers = match crate::app::openstack::servers_of(&driver).await {
        Ok(s) => s,
        Err(e) => {
            pass.outage = Some(format!(
                "{}{}",
                e.message.en,
                e.internal.map(|i| format!(": {i}")).unwrap_or_default()
            ));
            return pass;
        }
    };
    // A server zhengyun made carries the instance id as its marker; an adopted one's id
    // is the instance id (`app::openstack::owns`).
    let mut by_instance: HashMap<Uuid, &Server> = HashMap::new();
    for sv in &servers {
        if let Some(m) = sv.marker {
            by_instance.insert(m, sv);
        }
        if let Ok(id) = sv.id.parse() {
            by_instance.entry(id).or_insert(sv);
        }
    }
    let mut ask: Vec<(&Wanted, &Server)> = Vec::new();
    let now_ms = || zy_model::time::Timestamp::now().0 / 1000;
    for w in &wanted {
        let Some(sv) = by_instance.get(&w.id.0).copied() else {
            pass.not_found += 1;
            continue;
        };
        match (sv.status.as_str(), &sv.task_state) {
            ("ACTIVE", None) => ask.push((w, sv)),
            // Being built, resized, rebooted…: diagnostics would be refused (409).
            (_, Some(_))
            | ("BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "REBOOT" | "HARD_REBOOT", _) => {
                pass.skipped += 1
            }
            _ => {
                pass.not_running += 1;
                pass.readings.push(ProviderReading {
                    instance_id: w.id.to_string(),
                    provider_id: provider.to_string(),
                    read_at: now_ms(),
                    running: false,
                    counters: None,
                    figures: None,
                });
            }
        }
    }
    // Once the policy has refused, only one server is asked per pass (to notice a change
    // of policy) instead of every server every minute.
    let asked = if probe_only {
        &ask[..ask.len().min(1)]
    } else {
        &ask[..]
    };
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut calls: Vec<BoxFuture<'static, (usize, Got, i64)>> = Vec::with_capacity(asked.len());
    for (k, (_, sv)) in asked.iter().enumerate() {
        let driver = driver.clone();
        let refused = refused.clone();
        let path = format!("/servers/{}/diagnostics", sv.id);
        calls.push(Box::pin(async move {
            if refused.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() >= deadline {
                return (k, Got::NotAsked, 0);
            }
            let r = tokio::time::timeout_at(
                deadline.into(),
                driver
                    .client
                    .call("compute", reqwest::Method::GET, &path, None),
            )
            .await;
            let got = match r {
                Ok(Ok(v)) => Got::Read(v),
                Ok(Err(e)) => classify(e),
                Err(_) => Got::NotAsked,
            };
            if matches!(got, Got::Refused(_)) {
                refused.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            (k, got, zy_model::time::Timestamp::now().0 / 1000)
        }));
    }
    let results: Vec<_> = futures_util::stream::iter(calls)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (k, got, at) in results {
        let w = asked[k].0;
        if !matches!(got, Got::NotAsked) {
            pass.asked += 1;
        }
        match got {
            Got::Read(body) => {
                pass.read += 1;
                let now = parse_diagnostics(&body);
                let before = prev.get(&w.id.to_string()).and_then(|r| {
                    let d: Diagnostics = serde_json::from_str(r.counters.as_deref()?).ok()?;
                    Some((at - r.read_at, d))
                });
                let v = figures(
                    &now,
                    before.as_ref().map(|(dt, d)| (*dt, d)),
                    w.vcpus,
                    w.memory_mib,
                );
                pass.readings.push(ProviderReading {
                    instance_id: w.id.to_string(),
                    provider_id: provider.to_string(),
                    read_at: at,
                    running: true,
                    counters: serde_json::to_string(&now).ok(),
                    figures: serde_json::to_string(&v.to_vec()).ok(),
                });
            }
            Got::Refused(m) => {
                pass.refused.get_or_insert(m);
            }
            // Not measurable, but Nova says it runs: up, without figures.
            Got::NotAsked if refused.load(std::sync::atomic::Ordering::Relaxed) => {}
            Got::NotAsked => pass.late += 1,
            Got::Skipped => pass.skipped += 1,
            Got::Failed => pass.failed += 1,
            Got::Outage(m) => {
                pass.outage.get_or_insert(m);
            }
        }
    }
    if pass.refused.is_some() {
        // Up (Nova runs them) with nothing else: the chart shows availability at least.
        let read: std::collections::HashSet<String> = pass
            .readings
            .iter()
            .map(|r| r.instance_id.clone())
            .collect();
        for (w, _) in &ask {
            if !read.contains(&w.id.to_string()) {
                pass.readings.push(ProviderReading {
                    instance_id: w.id.to_string(),
                    provider_id: provider.to_string(),
                    read_at: now_ms(),
                    running: true,
                    counters: None,
                    figures: None,
                });
            }
        }
    }
    pass
}

/// The `openstack_metrics` task.
pub struct OpenStackMetrics {
    pub s: AppState,
    /// Providers whose policy refused diagnostics (asked one server per pass until it
    /// answers again).
    refused: Mutex<std::collections::HashSet<ProviderId>>,
}

pub fn task(s: AppState) -> Arc<dyn crate::tasks::Task> {
    Arc::new(OpenStackMetrics::new(s))
}

impl OpenStackMetrics {
    pub fn new(s: AppState) -> OpenStackMetrics {
        OpenStackMetrics {
            s,
            refused: Mutex::new(Default::default()),
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs(self.s.config.openstack_metrics_secs.max(1))
    }

    /// One pass over every OpenStack provider; errs (after storing what the others
    /// answered) when a provider is down, naming it.
    pub async fn pass(&self) -> Result<Value, Error> {
        let s = &self.s;
        let deadline = Instant::now() + self.period().mul_f32(0.8);
        let (_, instances) = zy_store::metrics::metered(&s.store).await?;
        let mut jobs = Vec::new();
        for (p, _) in zy_store::inventory::providers(&s.store).await? {
            if p.kind != "openstack" {
                continue;
            }
            let Some(driver) = s.compute.drivers.openstack(p.id) else {
                continue;
            };
            let pid = p.id.to_string();
            let wanted: Vec<Wanted> = instances
                .iter()
                .filter(|i| i.provider_id == pid && i.state == "running")
                .filter_map(|i| {
                    Some(Wanted {
                        id: InstanceId(i.id.parse().ok()?),
                        vcpus: i.vcpus,
                        memory_mib: i.memory_mib,
                    })
                })
                .collect();
            let probe = self.lock().contains(&p.id);
            jobs.push(async move {
                let n = wanted.len();
                let pass = read_provider(s, p.id, driver, wanted, probe, deadline).await;
                (p.id, n, pass)
            });
        }
        let passes = futures_util::future::join_all(jobs).await;
        let mut out = serde_json::Map::new();
        let mut rows = Vec::new();
        let mut down = Vec::new();
        for (id, n, mut pass) in passes {
            {
                let mut refused = self.lock();
                match &pass.refused {
                    Some(r) if refused.insert(id) => {
                        tracing::warn!(provider = %id, reason = %r, "OpenStack refuses server diagnostics: no metrics beyond up/down")
                    }
                    Some(_) => {}
                    None if pass.read > 0 => {
                        refused.remove(&id);
                    }
                    None => {}
                }
                if pass.refused.is_none() && refused.contains(&id) && pass.read == 0 {
                    pass.refused = Some("still refused (asked again next pass)".into());
                }
            }
            if let Some(e) = &pass.outage {
                down.push(format!("{id}: {e}"));
            }
            out.insert(id.to_string(), pass.status(n));
            rows.append(&mut pass.readings);
        }
        zy_store::metrics::put_provider_readings(&s.store, &rows).await?;
        let now_ms = zy_model::time::Timestamp::now().0 / 1000;
        zy_store::metrics::trim_provider_readings(&s.store, now_ms - KEEP_MS).await?;
        if !down.is_empty() {
            return Err(Error::unavailable(t!(
                "OpenStack 云暂时无法读取监控数据",
                "an OpenStack provider cannot be read for metrics now"
            ))
            .with_internal(down.join("; ")));
        }
        Ok(Value::Object(out))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<ProviderId>> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::tasks::Task for OpenStackMetrics {
    fn name(&self) -> &'static str {
        "openstack_metrics"
    }
    fn period(&self) -> Duration {
        OpenStackMetrics::period(self)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(self.pass())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The body Nova's fake virt driver answers at microversion 2.48 and later.
    fn standard(cpu_ns: u64, rx: u64, tx: u64, uptime: u64) -> Value {
        json!({
            "config_drive": true, "driver": "libvirt", "hypervisor": "kvm",
            "hypervisor_os": "ubuntu", "state": "running", "uptime": uptime,
            "num_cpus": 2, "num_disks": 1, "num_nics": 2,
            "cpu_details": [{"id": 0, "time": cpu_ns / 2, "utilisation": 15},
                            {"id": 1, "time": cpu_ns / 2, "utilisation": null}],
            "memory_details": {"maximum": 2048, "used": 512},
            "nic_details": [
                {"mac_address": "fa:16:3e:00:00:01", "rx_octets": rx, "tx_octets": tx,
                 "rx_packets": 10, "tx_packets": 10, "rx_errors": 0, "tx_errors": 0,
                 "rx_drop": 0, "tx_drop": 0, "rx_rate": null, "tx_rate": null},
                {"mac_address": "fa:16:3e:00:00:02", "rx_octets": 1000, "tx_octets": 0}],
            "disk_details": [{"read_bytes": 262144, "read_requests": 112,
                              "write_bytes": 5778432, "write_requests": 488, "errors_count": 1}]
        })
    }

    #[test]
    fn the_standard_diagnostics_body_is_summed_over_cpus_nics_and_disks() {
        let d = parse_diagnostics(&standard(4_000_000_000, 2_070_139, 140_208, 46_664));
        assert_eq!(
            d,
            Diagnostics {
                uptime_s: Some(46_664),
                cpu_time_ns: Some(4_000_000_000),
                memory_used_mib: Some(512),
                memory_max_mib: Some(2048),
                disk_read_bytes: Some(262_144),
                disk_write_bytes: Some(5_778_432),
                net_rx_bytes: Some(2_071_139),
                net_tx_bytes: Some(140_208),
            }
        );
        // Fields a virt driver leaves null or out are unknown, not zero.
        let d = parse_diagnostics(&json!({"cpu_details": [{"id": 0, "time": null}],
            "memory_details": {"maximum": 512, "used": null}, "nic_details": [], "disk_details": []}));
        assert_eq!(d.cpu_time_ns, None);
        assert_eq!(d.memory_used_mib, None);
        assert_eq!(d.net_rx_bytes, None);
    }

    #[test]
    fn the_older_free_form_body_of_libvirt_is_read_too() {
        let d = parse_diagnostics(&json!({
            "cpu0_time": 17_300_000_000u64, "cpu1_time": 700_000_000u64,
            "memory": 2_097_152, "memory-actual": 2_097_152, "memory-rss": 524_288,
            "vda_read": 262_144, "vda_read_req": 112, "vda_write": 5_778_432,
            "vda_write_req": 488, "vda_errors": -1,
            "tap1e3b_rx": 2_070_139, "tap1e3b_rx_packets": 26_701, "tap1e3b_rx_drop": 0,
            "tap1e3b_tx": 140_208, "tap1e3b_tx_packets": 662
        }));
        assert_eq!(d.cpu_time_ns, Some(18_000_000_000));
        assert_eq!(d.memory_used_mib, Some(512));
        assert_eq!(d.memory_max_mib, Some(2048));
        assert_eq!(d.disk_read_bytes, Some(262_144));
        assert_eq!(d.disk_write_bytes, Some(5_778_432));
        assert_eq!(d.net_rx_bytes, Some(2_070_139));
        assert_eq!(d.net_tx_bytes, Some(140_208));
        assert_eq!(d.uptime_s, None);
    }

    #[test]
    fn cpu_share_comes_from_two_readings_of_cpu_time() {
        let a = parse_diagnostics(&standard(10_000_000_000, 1_000, 500, 100));
        // The first reading: memory, but no CPU and no rates.
        let v = figures(&a, None, 2, 2048);
        assert_eq!(v[Series::Cpu.index()], None);
        assert_eq!(v[Series::NetRx.index()], None);
        assert_eq!(v[Series::MemUsed.index()], Some(512.0));
        assert_eq!(v[Series::Mem.index()], Some(25.0));
        assert_eq!(v[Series::Up.index()], Some(1.0));
        // 60 s later, 30 s more CPU time on 2 vCPUs: 25 %; 60 KB/s in, nothing out.
        let b = parse_diagnostics(&standard(40_000_000_000, 3_601_000, 500, 160));
        let v = figures(&b, Some((60_000, &a)), 2, 2048);
        assert_eq!(v[Series::Cpu.index()], Some(25.0));
        assert_eq!(v[Series::NetRx.index()], Some(60_000.0));
        assert_eq!(v[Series::NetTx.index()], Some(0.0));
        assert_eq!(v[Series::DiskRead.index()], Some(0.0));
        assert_eq!(v[Series::DiskUsed.index()], None, "Nova does not say");
    }

    #[test]
    fn counters_that_go_back_or_a_restarted_guest_give_no_rate() {
        let a = parse_diagnostics(&standard(40_000_000_000, 5_000, 5_000, 1_000));
        // The NIC's counter went back (the port was replugged): no traffic rate, CPU still.
        let b = parse_diagnostics(&standard(46_000_000_000, 100, 6_000, 1_060));
        let v = figures(&b, Some((60_000, &a)), 1, 1024);
        assert_eq!(v[Series::NetRx.index()], None);
        assert_eq!(v[Series::NetTx.index()], Some(1_000.0 / 60.0));
        assert_eq!(v[Series::Cpu.index()], Some(10.0));
        // The guest restarted (uptime went back) with more CPU time than before by chance:
        // no rate at all rather than a wrong one.
        let c = parse_diagnostics(&standard(50_000_000_000, 9_000, 9_000, 30));
        let v = figures(&c, Some((60_000, &b)), 1, 1024);
        assert_eq!(v[Series::Cpu.index()], None);
        assert_eq!(v[Series::NetTx.index()], None);
        assert_eq!(v[Series::MemUsed.index()], Some(512.0));
    }

    #[test]
    fn provider_errors_are_told_apart_by_status() {
        let e = |status: u16| crate::compute::openstack::classify("compute", status, "{}");
        assert!(matches!(classify(e(403)), Got::Refused(_)));
        assert!(matches!(classify(e(404)), Got::Skipped));
        assert!(matches!(classify(e(409)), Got::Skipped));
        assert!(matches!(classify(e(500)), Got::Outage(_)));
        assert!(matches!(classify(e(503)), Got::Outage(_)));
        assert!(matches!(classify(e(400)), Got::Failed));
    }
}
