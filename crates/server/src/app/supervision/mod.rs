//! Supervision (监管): the indicator engine of docs/INDICATORS.md. Each indicator is a
//! definition in [`DEFS`] — code, name, unit, formula — and a function of the period's
//! [`Facts`] and one entity returning its value and the inputs it used, so every figure
//! on the dashboard can be traced back. Facts are loaded with a few grouped statements
//! for all providers or departments at once (or one of them), from inventory, instances,
//! quotas, the metrics store (hourly rollups), billing and security event counts.
//!
//! The `supervision` task materialises the current (and just finished) month's sets into
//! `indicator_snapshots`, which the comparison views, trends and the dashboard read; the
//! indicators endpoint of one provider or department computes live.
//!
//! Ticket timeliness, inspection results, minute-level availability and SLA scores
//! (T1–T7) come from the operations part's month score (`app::sla::month_score`), loaded
//! per provider into [`Facts::operations`].

pub mod dashboard;
pub mod idle;
pub mod report;

use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use std::collections::HashMap;
use zy_model::id::DepartmentId;
use zy_model::metrics::{Acc, Block, Resolution, Series, SCALE};
use zy_model::role::{Role, Scope};
use zy_model::supervision::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::supervision as repo;
use zy_store::Store;

/// The period of an indicator set: a month, its bounds, `to` capped at now.
#[derive(Debug, Clone)]
pub struct Period {
    pub month: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Period {
    /// `month` (`YYYY-MM`) or the current month of the billing clock; refuses months that
    /// have not begun.
    pub async fn parse(store: &Store, month: Option<&str>) -> Result<Period, Error> {
        let now = crate::app::billing::clock(store).await?;
        let month = match month.map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            None => crate::app::billing::month_of(now),
        };
        let (from, end) = crate::app::billing::month_bounds(&month)?;
        if from > now {
            return Err(Error::validation(
                "period",
                t!(
                    "月份 {} 尚未开始" ; "the month {} has not begun",
                    month
                ),
            ));
        }
        Ok(Period {
            month,
            from,
            to: end.min(now),
        })
    }

    fn days(&self) -> (String, String) {
        let last = Timestamp(self.to.0 - 1).max(self.from);
        (
            zy_store::secev::day_of(self.from.0),
            zy_store::secev::day_of(last.0),
        )
    }
}

/// Mean of the hourly means of one series over the period: (hours with data, sum of the
/// hourly means).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourlyMean {
    pub hours: i64,
    pub sum: f64,
}

impl HourlyMean {
    pub fn mean(&self) -> Option<f64> {
        (self.hours > 0).then(|| round2(self.sum / self.hours as f64))
    }
}

/// Everything the indicators of one scope read for one period.
#[derive(Debug, Default)]
pub struct Facts {
    pub hosts: HashMap<String, repo::HostTotals>,
    pub instances: HashMap<String, repo::InstanceTotals>,
    pub volumes: HashMap<String, (i64, i64)>,
    pub quotas: HashMap<String, repo::QuotaUse>,
    pub security: HashMap<String, (i64, i64)>,
    pub idle: HashMap<String, (i64, i64, i64)>,
    pub cpu: HashMap<String, HourlyMean>,
    pub mem: HashMap<String, HourlyMean>,
    pub spend: HashMap<String, i64>,
    pub budgets: HashMap<String, i64>,
    /// Per provider: the month's SLA score with its ticket, inspection and availability
    /// inputs (provider sets only).
    pub operations: HashMap<String, zy_model::operations::SlaScore>,
}

/// Hourly means of CPU and memory per entity over `[from, to)` from the 1-hour rollups.
async fn hourly_means(
    store: &Store,
    scope: &str,
    entities: &[String],
    p: &Period,
) -> Result<(HashMap<String, HourlyMean>, HashMap<String, HourlyMean>), Error> {
    let (from, to) = (p.from.0 / 1_000_000, p.to.0 / 1_000_000);
    let blocks = zy_store::metrics::read_blocks_many(
        store,
        scope,
        entities,
        Resolution::Hour,
        Resolution::Hour.block_start(from),
        Resolution::Hour.block_start(to),
    )
    .await?;
    let mut cpu: HashMap<String, HourlyMean> = HashMap::new();
    let mut mem: HashMap<String, HourlyMean> = HashMap::new();
    for (entity, data) in blocks {
        let Ok(b) = Block::decode(&data) else {
            continue;
        };
        for (k, &t) in b.ts.iter().enumerate() {
            if t < from || t >= to {
                continue;
            }
            for (series, out) in [(Series::Cpu, &mut cpu), (Series::Mem, &mut mem)] {
                let a = Acc::from_rollup(&b, series.index(), k);
                if let Some(avg) = a.avg() {
                    let m = out.entry(entity.clone()).or_default();
                    m.hours += 1;
                    m.sum += avg / SCALE;
                }
            }
        }
    }
    Ok((cpu, mem))
}

impl Facts {
    /// Loads the facts of `scope` for the period, for one entity or (`None`) all of them.
    pub async fn load(
        store: &Store,
        scope: IndicatorScope,
        entities: &[String],
        p: &Period,
    ) -> Result<Facts, Error> {
        let by = match scope {
            IndicatorScope::Provider => "provider_id",
            IndicatorScope::Department => "department_id",
        };
        let (d0, d1) = p.days();
        let (cpu, mem) = hourly_means(store, scope.as_str(), entities, p).await?;
        let filter = |one: Option<&String>| match (scope, one) {
            (IndicatorScope::Provider, Some(id)) => zy_store::billing::UsageFilter {
                provider_id: id.parse().ok().map(zy_model::id::ProviderId),
                ..Default::default()
            },
            (IndicatorScope::Department, Some(id)) => zy_store::billing::UsageFilter {
                department_id: id.parse().ok().map(DepartmentId),
                ..Default::default()
            },
            _ => Default::default(),
        };
        let one = (entities.len() == 1).then(|| &entities[0]);
        let lines = crate::app::billing::rate_period(store, &filter(one), p.from, p.to).await?;
        let mut spend: HashMap<String, i64> = HashMap::new();
        for l in lines {
            let key = match scope {
                IndicatorScope::Provider => l.provider_id.map(|x| x.to_string()),
                IndicatorScope::Department => Some(l.department_id.to_string()),
            };
            if let Some(k) = key {
                *spend.entry(k).or_default() += l.amount.fen();
            }
        }
        let only = one.map(String::as_str);
        Ok(Facts {
            hosts: match scope {
                IndicatorScope::Provider => repo::host_totals(store, only).await?,
                IndicatorScope::Department => HashMap::new(),
            },
            instances: repo::instance_totals(store, by, only).await?,
            volumes: match scope {
                IndicatorScope::Department => repo::volume_totals(store).await?,
                IndicatorScope::Provider => HashMap::new(),
            },
            quotas: match scope {
                IndicatorScope::Department => repo::department_quotas(store).await?,
                IndicatorScope::Provider => HashMap::new(),
            },
            security: repo::security_totals(store, by, &d0, &d1).await?,
            idle: repo::idle_totals(store).await?,
            cpu,
            mem,
            spend,
            budgets: zy_store::billing::budgets(store)
                .await?
                .into_iter()
                .map(|(d, m)| (d.to_string(), m.fen()))
                .collect(),
            operations: HashMap::new(),
        })
    }
}

/// An indicator's value (when the inputs allow one) and the inputs it used.
pub type Computed = (Option<f64>, Vec<IndicatorInput>);

/// One indicator's definition (docs/INDICATORS.md).
pub struct Def {
    pub code: &'static str,
    pub name: &'static str,
    pub scope: IndicatorScope,
    pub zh: &'static str,
    pub en: &'static str,
    pub unit: &'static str,
    pub formula: &'static str,
    pub compute: fn(&Facts, &str) -> Computed,
}

fn input(name: &str, value: f64, source: &str) -> IndicatorInput {
    IndicatorInput {
        name: name.into(),
        value,
        source: source.into(),
    }
}

fn hourly(m: Option<&HourlyMean>, series: &str, scope: &str) -> (Option<f64>, Vec<IndicatorInput>) {
    let m = m.copied().unwrap_or_default();
    let src = format!("metric_blocks {scope} {series} 1h avg");
    (
        m.mean(),
        vec![
            input("hours", m.hours as f64, &src),
            input("sum_of_hourly_means", round2(m.sum), &src),
        ],
    )
}

fn security(f: &Facts, id: &str) -> (Option<f64>, Vec<IndicatorInput>) {
    let (events, blocked) = f.security.get(id).copied().unwrap_or_default();
    (
        percent(blocked as f64, events as f64),
        vec![
            input("events", events as f64, "security_event_counts"),
            input(
                "blocked",
                blocked as f64,
                "security_event_counts action=blocked",
            ),
        ],
    )
}

/// A share of `met` in `due` (%), with both as inputs.
fn timeliness(met: i64, due: i64, what: &str) -> (Option<f64>, Vec<IndicatorInput>) {
    let src = format!("tickets ({what} deadline, opened in the period)");
    (
        percent(met as f64, due as f64),
        vec![
            input("due", due as f64, &src),
            input("met", met as f64, &src),
        ],
    )
}

/// An indicator from the provider's month score; nothing (no value, no inputs) without one.
fn from_operations(
    f: &Facts,
    id: &str,
    of: fn(&zy_model::operations::SlaScore) -> (Option<f64>, Vec<IndicatorInput>),
) -> (Option<f64>, Vec<IndicatorInput>) {
    f.operations.get(id).map_or((None, Vec::new()), of)
}

fn spend(f: &Facts, id: &str) -> (Option<f64>, Vec<IndicatorInput>) {
    let fen = f.spend.get(id).copied().unwrap_or(0);
    (
        Some(fen as f64),
        vec![input(
            "rated_usage_fen",
            fen as f64,
            "usage ledger × price lists",
        )],
    )
}

/// Every indicator computed by the platform, in order.
pub static DEFS: &[Def] = &[
    Def {
        code: "P1",
        name: "host_availability",
        scope: IndicatorScope::Provider,
        zh: "宿主机可用率",
        en: "Host availability",
        unit: "%",
        formula: "hosts_up / hosts × 100",
        compute: |f, id| {
            let h = f.hosts.get(id).cloned().unwrap_or_default();
            (
                percent(h.hosts_up as f64, h.hosts as f64),
                vec![
                    input("hosts", h.hosts as f64, "hosts"),
                    input(
                        "hosts_up",
                        h.hosts_up as f64,
                        "hosts state=enabled, ha_state=ok",
                    ),
                ],
            )
        },
    },
    Def {
        code: "P2",
        name: "vcpu_capacity",
        scope: IndicatorScope::Provider,
        zh: "vCPU 可分配容量",
        en: "Allocatable vCPUs",
        unit: "vcpus",
        formula: "Σ hosts.vcpus × cpu_ratio",
        compute: |f, id| {
            let h = f.hosts.get(id).cloned().unwrap_or_default();
            (
                Some(h.vcpus_allocatable as f64),
                vec![
                    input("physical_vcpus", h.vcpus as f64, "hosts.vcpus"),
                    input(
                        "allocatable_vcpus",
                        h.vcpus_allocatable as f64,
                        "hosts.vcpus × cpu_ratio_permille / 1000",
                    ),
                ],
            )
        },
    },
    Def {
        code: "P3",
        name: "vcpu_allocation",
        scope: IndicatorScope::Provider,
        zh: "vCPU 分配率",
        en: "vCPU allocation",
        unit: "%",
        formula: "used_vcpus / allocatable_vcpus × 100",
        compute: |f, id| {
            let h = f.hosts.get(id).cloned().unwrap_or_default();
            (
                percent(h.used_vcpus as f64, h.vcpus_allocatable as f64),
                vec![
                    input("used_vcpus", h.used_vcpus as f64, "hosts.used_vcpus"),
                    input("allocatable_vcpus", h.vcpus_allocatable as f64, "P2"),
                ],
            )
        },
    },
    Def {
        code: "P4",
        name: "vcpu_headroom",
        scope: IndicatorScope::Provider,
        zh: "vCPU 余量",
        en: "vCPU headroom",
        unit: "vcpus",
        formula: "allocatable_vcpus − used_vcpus",
        compute: |f, id| {
            let h = f.hosts.get(id).cloned().unwrap_or_default();
            (
                Some((h.vcpus_allocatable - h.used_vcpus) as f64),
                vec![
                    input("allocatable_vcpus", h.vcpus_allocatable as f64, "P2"),
                    input("used_vcpus", h.used_vcpus as f64, "hosts.used_vcpus"),
                ],
            )
        },
    },
    Def {
        code: "P5",
        name: "memory_allocation",
        scope: IndicatorScope::Provider,
        zh: "内存分配率",
        en: "Memory allocation",
        unit: "%",
        formula: "used_memory_mib / memory_mib × 100",
        compute: |f, id| {
            let h = f.hosts.get(id).cloned().unwrap_or_default();
            (
                percent(h.used_memory_mib as f64, h.memory_mib as f64),
                vec![
                    input(
                        "used_memory_mib",
                        h.used_memory_mib as f64,
                        "hosts.used_memory_mib",
                    ),
                    input("memory_mib", h.memory_mib as f64, "hosts.memory_mib"),
                ],
            )
        },
    },
    Def {
        code: "P6",
        name: "cpu_utilisation",
        scope: IndicatorScope::Provider,
        zh: "CPU 实际利用率",
        en: "Real CPU utilisation",
        unit: "%",
        formula: "mean of the hourly mean CPU of the provider's instances (vCPU-weighted)",
        compute: |f, id| hourly(f.cpu.get(id), "cpu", "provider"),
    },
    Def {
        code: "P7",
        name: "memory_utilisation",
        scope: IndicatorScope::Provider,
        zh: "内存实际利用率",
        en: "Real memory utilisation",
        unit: "%",
        formula: "mean of the hourly mean memory use of the provider's instances",
        compute: |f, id| hourly(f.mem.get(id), "mem", "provider"),
    },
    Def {
        code: "P8",
        name: "instances_running",
        scope: IndicatorScope::Provider,
        zh: "运行中云主机",
        en: "Instances running",
        unit: "count",
        formula: "instances with state = running",
        compute: |f, id| {
            let x = f.instances.get(id).cloned().unwrap_or_default();
            (
                Some(x.running as f64),
                vec![
                    input("instances", x.instances as f64, "instances"),
                    input("running", x.running as f64, "instances state=running"),
                ],
            )
        },
    },
    Def {
        code: "P9",
        name: "security_events_blocked",
        scope: IndicatorScope::Provider,
        zh: "安全事件处置率",
        en: "Security events blocked",
        unit: "%",
        formula: "blocked / events × 100 (days of the period)",
        compute: security,
    },
    Def {
        code: "P10",
        name: "spend",
        scope: IndicatorScope::Provider,
        zh: "计费金额",
        en: "Billed amount",
        unit: "fen",
        formula: "Σ rated usage of the provider's resources in the period",
        compute: spend,
    },
    Def {
        code: "D1",
        name: "instances_held",
        scope: IndicatorScope::Department,
        zh: "云主机数",
        en: "Instances held",
        unit: "count",
        formula: "instances not deleted and not in the recycle bin",
        compute: |f, id| {
            let x = f.instances.get(id).cloned().unwrap_or_default();
            (
                Some(x.instances as f64),
                vec![
                    input("instances", x.instances as f64, "instances"),
                    input("running", x.running as f64, "instances state=running"),
                ],
            )
        },
    },
    Def {
        code: "D2",
        name: "vcpus_held",
        scope: IndicatorScope::Department,
        zh: "vCPU 数",
        en: "vCPUs held",
        unit: "vcpus",
        formula: "Σ instances.vcpus",
        compute: |f, id| {
            let x = f.instances.get(id).cloned().unwrap_or_default();
            (
                Some(x.vcpus as f64),
                vec![input("vcpus", x.vcpus as f64, "instances.vcpus")],
            )
        },
    },
    Def {
        code: "D3",
        name: "memory_held",
        scope: IndicatorScope::Department,
        zh: "内存",
        en: "Memory held",
        unit: "MiB",
        formula: "Σ instances.memory_mib",
        compute: |f, id| {
            let x = f.instances.get(id).cloned().unwrap_or_default();
            (
                Some(x.memory_mib as f64),
                vec![input(
                    "memory_mib",
                    x.memory_mib as f64,
                    "instances.memory_mib",
                )],
            )
        },
    },
    Def {
        code: "D4",
        name: "storage_held",
        scope: IndicatorScope::Department,
        zh: "存储",
        en: "Storage held",
        unit: "GiB",
        formula: "Σ instances.disk_gib + Σ volumes.size_gib",
        compute: |f, id| {
            let x = f.instances.get(id).cloned().unwrap_or_default();
            let (n, gib) = f.volumes.get(id).copied().unwrap_or_default();
            (
                Some((x.disk_gib + gib) as f64),
                vec![
                    input("system_disk_gib", x.disk_gib as f64, "instances.disk_gib"),
                    input("volumes", n as f64, "volumes"),
                    input("volume_gib", gib as f64, "volumes.size_gib"),
                ],
            )
        },
    },
    Def {
        code: "D5",
        name: "cpu_utilisation",
        scope: IndicatorScope::Department,
        zh: "CPU 实际利用率",
        en: "Real CPU utilisation",
        unit: "%",
        formula: "mean of the hourly mean CPU of the department's instances (vCPU-weighted)",
        compute: |f, id| hourly(f.cpu.get(id), "cpu", "department"),
    },
    Def {
        code: "D6",
        name: "memory_utilisation",
        scope: IndicatorScope::Department,
        zh: "内存实际利用率",
        en: "Real memory utilisation",
        unit: "%",
        formula: "mean of the hourly mean memory use of the department's instances",
        compute: |f, id| hourly(f.mem.get(id), "mem", "department"),
    },
    Def {
        code: "D7",
        name: "idle_resources",
        scope: IndicatorScope::Department,
        zh: "闲置资源",
        en: "Idle resources",
        unit: "count",
        formula: "open idle findings",
        compute: |f, id| {
            let (n, vcpus, fen) = f.idle.get(id).copied().unwrap_or_default();
            (
                Some(n as f64),
                vec![
                    input("findings", n as f64, "idle_findings state=open"),
                    input("vcpus", vcpus as f64, "idle_findings.vcpus"),
                    input("monthly_fen", fen as f64, "idle_findings.monthly_fen"),
                ],
            )
        },
    },
    Def {
        code: "D8",
        name: "quota_vcpu_use",
        scope: IndicatorScope::Department,
        zh: "vCPU 配额使用率",
        en: "vCPU quota use",
        unit: "%",
        formula: "used_vcpus / max_vcpus × 100",
        compute: |f, id| {
            let q = f.quotas.get(id).cloned().unwrap_or_default();
            (
                percent(q.used_vcpus as f64, q.max_vcpus as f64),
                vec![
                    input("used_vcpus", q.used_vcpus as f64, "quotas department"),
                    input("max_vcpus", q.max_vcpus as f64, "quotas department"),
                ],
            )
        },
    },
    Def {
        code: "D9",
        name: "quota_memory_use",
        scope: IndicatorScope::Department,
        zh: "内存配额使用率",
        en: "Memory quota use",
        unit: "%",
        formula: "used_memory_mib / max_memory_mib × 100",
        compute: |f, id| {
            let q = f.quotas.get(id).cloned().unwrap_or_default();
            (
                percent(q.used_memory_mib as f64, q.max_memory_mib as f64),
                vec![
                    input(
                        "used_memory_mib",
                        q.used_memory_mib as f64,
                        "quotas department",
                    ),
                    input(
                        "max_memory_mib",
                        q.max_memory_mib as f64,
                        "quotas department",
                    ),
                ],
            )
        },
    },
    Def {
        code: "D10",
        name: "spend",
        scope: IndicatorScope::Department,
        zh: "费用",
        en: "Spend",
        unit: "fen",
        formula: "Σ rated usage of the department's resources in the period",
        compute: spend,
    },
    Def {
        code: "D11",
        name: "budget_use",
        scope: IndicatorScope::Department,
        zh: "预算执行率",
        en: "Spend against budget",
        unit: "%",
        formula: "spend / monthly budget × 100",
        compute: |f, id| {
            let fen = f.spend.get(id).copied().unwrap_or(0);
            let budget = f.budgets.get(id).copied();
            (
                budget.and_then(|b| percent(fen as f64, b as f64)),
                vec![
                    input("spend_fen", fen as f64, "D10"),
                    input(
                        "budget_fen",
                        budget.unwrap_or(0) as f64,
                        "budgets.monthly_fen",
                    ),
                ],
            )
        },
    },
    Def {
        code: "D12",
        name: "security_events_blocked",
        scope: IndicatorScope::Department,
        zh: "安全事件处置率",
        en: "Security events blocked",
        unit: "%",
        formula: "blocked / events × 100 (days of the period)",
        compute: security,
    },
    Def {
        code: "T1",
        name: "ticket_response_timeliness",
        scope: IndicatorScope::Provider,
        zh: "工单响应及时率",
        en: "Ticket response timeliness",
        unit: "%",
        formula: "responded in time / tickets due × 100",
        compute: |f, id| {
            from_operations(f, id, |o| {
                timeliness(o.tickets.response_met, o.tickets.response_due, "response")
            })
        },
    },
    Def {
        code: "T2",
        name: "ticket_resolution_timeliness",
        scope: IndicatorScope::Provider,
        zh: "工单解决及时率",
        en: "Ticket resolution timeliness",
        unit: "%",
        formula: "resolved in time / tickets due × 100",
        compute: |f, id| {
            from_operations(f, id, |o| {
                timeliness(
                    o.tickets.resolution_met,
                    o.tickets.resolution_due,
                    "resolution",
                )
            })
        },
    },
    Def {
        code: "T3",
        name: "ticket_escalations",
        scope: IndicatorScope::Provider,
        zh: "工单升级数",
        en: "Tickets escalated",
        unit: "count",
        formula: "tickets opened in the period that missed a deadline",
        compute: |f, id| {
            from_operations(f, id, |o| {
                (
                    Some(o.tickets.escalated as f64),
                    vec![
                        input("opened", o.tickets.opened as f64, "tickets"),
                        input(
                            "escalated",
                            o.tickets.escalated as f64,
                            "tickets escalation > 0",
                        ),
                    ],
                )
            })
        },
    },
    Def {
        code: "T4",
        name: "satisfaction",
        scope: IndicatorScope::Provider,
        zh: "满意度",
        en: "Satisfaction",
        unit: "score",
        formula: "Σ rating / rated tickets (1–5)",
        compute: |f, id| {
            from_operations(f, id, |o| {
                (
                    o.tickets.satisfaction_avg.map(round2),
                    vec![
                        input("ratings", o.tickets.ratings as f64, "tickets.rating"),
                        input("rating_sum", o.tickets.rating_sum as f64, "tickets.rating"),
                    ],
                )
            })
        },
    },
    Def {
        code: "T5",
        name: "inspection_pass_rate",
        scope: IndicatorScope::Provider,
        zh: "巡检通过率",
        en: "Inspection pass rate",
        unit: "%",
        formula: "checks passed / checks × 100",
        compute: |f, id| {
            from_operations(f, id, |o| {
                (
                    percent(o.inspections.passed as f64, o.inspections.checks as f64),
                    vec![
                        input("checks", o.inspections.checks as f64, "inspection runs"),
                        input("passed", o.inspections.passed as f64, "inspection runs"),
                    ],
                )
            })
        },
    },
    Def {
        code: "T6",
        name: "minute_availability",
        scope: IndicatorScope::Provider,
        zh: "分钟级可用率",
        en: "Minute-level availability",
        unit: "%",
        formula: "(service minutes − down minutes) / service minutes × 100",
        compute: |f, id| {
            from_operations(f, id, |o| {
                (
                    (o.service_minutes > 0).then(|| round2(o.availability_ppm as f64 / 10_000.0)),
                    vec![
                        input(
                            "service_minutes",
                            o.service_minutes as f64,
                            "usage ledger, running",
                        ),
                        input(
                            "down_minutes",
                            o.down_minutes as f64,
                            "metric_blocks instance up 1m",
                        ),
                    ],
                )
            })
        },
    },
    Def {
        code: "T7",
        name: "sla_score",
        scope: IndicatorScope::Provider,
        zh: "服务质量考核得分",
        en: "SLA score",
        unit: "score",
        formula: "Σ part × weight / 100 (availability, timeliness, inspection, satisfaction)",
        compute: |f, id| {
            from_operations(f, id, |o| {
                (
                    Some(round2(o.score)),
                    vec![
                        input("availability_part", round2(o.parts[0]), "T6 → band"),
                        input("timeliness_part", round2(o.parts[1]), "T1, T2"),
                        input("inspection_part", round2(o.parts[2]), "T5"),
                        input("satisfaction_part", round2(o.parts[3]), "T4"),
                        input("credit_fen", o.credit_fen as f64, "SLA credit bands × fee"),
                    ],
                )
            })
        },
    },
];

/// The indicator sets of `entities` (id, name) from loaded facts.
pub fn sets(
    scope: IndicatorScope,
    entities: &[(String, String)],
    facts: &Facts,
    p: &Period,
    now: Timestamp,
) -> Vec<IndicatorSet> {
    entities
        .iter()
        .map(|(id, name)| IndicatorSet {
            scope,
            id: id.clone(),
            name: name.clone(),
            period: p.month.clone(),
            from: p.from,
            to: p.to,
            computed_at: now,
            indicators: DEFS
                .iter()
                .filter(|d| d.scope == scope)
                .map(|d| {
                    let (value, inputs) = (d.compute)(facts, id);
                    Indicator {
                        code: d.code.into(),
                        name: d.name.into(),
                        title_zh: d.zh.into(),
                        title_en: d.en.into(),
                        value,
                        unit: d.unit.into(),
                        formula: d.formula.into(),
                        inputs,
                    }
                })
                .collect(),
        })
        .collect()
}

/// Computes the sets of every entity of `scope` (or the one given) for a period.
pub async fn compute(
    store: &Store,
    scope: IndicatorScope,
    only: Option<&str>,
    p: &Period,
) -> Result<Vec<IndicatorSet>, Error> {
    let table = match scope {
        IndicatorScope::Provider => "providers",
        IndicatorScope::Department => "departments",
    };
    let entities: Vec<(String, String)> = repo::names(store, table)
        .await?
        .into_iter()
        .filter(|(id, _)| only.is_none_or(|o| o == id))
        .collect();
    if entities.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = entities.iter().map(|(id, _)| id.clone()).collect();
    let mut facts = Facts::load(store, scope, &ids, p).await?;
    if scope == IndicatorScope::Provider {
        for (id, name) in &entities {
            let score = crate::app::sla::month_score(store, id, name, &p.month).await?;
            facts.operations.insert(id.clone(), score);
        }
    }
    Ok(sets(scope, &entities, &facts, p, Timestamp::now()))
}

// ------------------------------------------------------------------ who sees what

/// `None`: every department (and the providers); otherwise the departments the caller
/// administers.
pub fn visible(actor: &Actor) -> Result<Option<Vec<String>>, Error> {
    if authorize(&actor.principal, Action::SupervisionRead(None)).is_ok() {
        return Ok(None);
    }
    let mine: Vec<String> = actor
        .principal
        .grants
        .iter()
        .filter(|g| g.role == Role::DeptAdmin)
        .filter_map(|g| match g.scope {
            Scope::Department(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    if mine.is_empty() {
        authorize(&actor.principal, Action::SupervisionRead(None))?;
    }
    Ok(Some(mine))
}

fn parse_scope(scope: &str) -> Result<IndicatorScope, Error> {
    IndicatorScope::parse(scope).ok_or_else(|| {
        Error::validation(
            "scope",
            t!(
                "scope 须为 provider 或 department",
                "scope must be provider or department"
            ),
        )
    })
}

fn parse_id(id: &str) -> Result<uuid::Uuid, Error> {
    id.trim().parse().map_err(|_| {
        Error::validation(
            "id",
            t!("id 须为对象的 UUID", "id must be the object's UUID"),
        )
    })
}

/// Checks the caller may read the set of `scope`/`id` and that it exists.
async fn authorize_entity(
    s: &AppState,
    actor: &Actor,
    scope: IndicatorScope,
    id: uuid::Uuid,
) -> Result<(), Error> {
    match scope {
        IndicatorScope::Provider => {
            authorize(&actor.principal, Action::SupervisionRead(None))?;
            if !repo::names(&s.store, "providers")
                .await?
                .iter()
                .any(|(p, _)| *p == id.to_string())
            {
                return Err(Error::not_found("provider", id));
            }
        }
        IndicatorScope::Department => {
            authorize(
                &actor.principal,
                Action::SupervisionRead(Some(DepartmentId(id))),
            )?;
            if zy_store::departments::get(s.store.pool(), DepartmentId(id))
                .await?
                .is_none()
            {
                return Err(Error::not_found("department", id));
            }
        }
    }
    Ok(())
}

/// `GET /v1/supervision/indicators`: one provider's or department's set, computed now.
pub async fn indicators(
    s: &AppState,
    actor: &Actor,
    scope: &str,
    id: &str,
    period: Option<&str>,
) -> Result<IndicatorSet, Error> {
    let scope = parse_scope(scope)?;
    let id = parse_id(id)?;
    let p = Period::parse(&s.store, period).await?;
    authorize_entity(s, actor, scope, id).await?;
    compute(&s.store, scope, Some(&id.to_string()), &p)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found(scope.as_str(), id))
}

/// The sets of a scope for a month: the stored snapshots when the task has computed
/// them, otherwise computed now.
pub async fn all_sets(
    store: &Store,
    scope: IndicatorScope,
    p: &Period,
) -> Result<Vec<IndicatorSet>, Error> {
    let stored = repo::snapshots(store, scope.as_str(), &p.month).await?;
    if !stored.is_empty() {
        return Ok(stored
            .into_iter()
            .filter_map(|(_, body)| serde_json::from_str(&body).ok())
            .collect());
    }
    compute(store, scope, None, p).await
}

/// Providers side by side (supervisor, platform admin).
pub async fn providers(
    s: &AppState,
    actor: &Actor,
    period: Option<&str>,
) -> Result<Vec<IndicatorSet>, Error> {
    authorize(&actor.principal, Action::SupervisionRead(None))?;
    let p = Period::parse(&s.store, period).await?;
    all_sets(&s.store, IndicatorScope::Provider, &p).await
}

/// Departments ranked by an indicator (highest first; those without a figure last).
pub async fn departments(
    s: &AppState,
    actor: &Actor,
    period: Option<&str>,
    sort: Option<&str>,
) -> Result<Vec<IndicatorSet>, Error> {
    let ds = visible(actor)?;
    let sort = sort.unwrap_or("cpu_utilisation");
    if !DEFS
        .iter()
        .any(|d| d.scope == IndicatorScope::Department && d.name == sort)
    {
        return Err(Error::validation(
            "sort",
            t!(
                "sort 须为部门指标名，例如 cpu_utilisation 或 spend",
                "sort must name a department indicator, e.g. cpu_utilisation or spend"
            ),
        ));
    }
    let p = Period::parse(&s.store, period).await?;
    let mut sets = all_sets(&s.store, IndicatorScope::Department, &p).await?;
    if let Some(ds) = ds {
        sets.retain(|x| ds.contains(&x.id));
    }
    rank(&mut sets, sort);
    Ok(sets)
}

/// Sorts by `name`, highest first, sets without a figure last, then by name.
pub fn rank(sets: &mut [IndicatorSet], name: &str) {
    sets.sort_by(|a, b| {
        let (x, y) = (a.value(name), b.value(name));
        match (x, y) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.name.cmp(&b.name))
    });
}

/// One month of a trend.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TrendPoint {
    pub month: String,
    /// Indicator name → value, of the month's last snapshot (the current month: now).
    pub values: HashMap<String, Option<f64>>,
}

/// `months` months (1–24) of one entity's indicators, from the snapshots; the current
/// month computed now.
pub async fn trends(
    s: &AppState,
    actor: &Actor,
    scope: &str,
    id: &str,
    months: Option<i64>,
) -> Result<Vec<TrendPoint>, Error> {
    let scope = parse_scope(scope)?;
    let id = parse_id(id)?;
    let months = months.unwrap_or(6);
    if !(1..=24).contains(&months) {
        return Err(Error::validation(
            "months",
            t!("months 须在 1 到 24 之间", "months must be 1–24"),
        ));
    }
    authorize_entity(s, actor, scope, id).await?;
    let now = crate::app::billing::clock(&s.store).await?;
    let current = crate::app::billing::month_of(now);
    let first = month_back(&current, months - 1);
    let mut out: Vec<TrendPoint> =
        repo::snapshot_history(&s.store, scope.as_str(), &id.to_string(), &first, &current)
            .await?
            .into_iter()
            .filter(|(m, _)| *m != current)
            .filter_map(|(m, body)| {
                let set: IndicatorSet = serde_json::from_str(&body).ok()?;
                Some(point(m, &set))
            })
            .collect();
    let p = Period::parse(&s.store, Some(&current)).await?;
    if let Some(set) = compute(&s.store, scope, Some(&id.to_string()), &p)
        .await?
        .first()
    {
        out.push(point(current, set));
    }
    Ok(out)
}

fn point(month: String, set: &IndicatorSet) -> TrendPoint {
    TrendPoint {
        month,
        values: set
            .indicators
            .iter()
            .map(|i| (i.name.clone(), i.value))
            .collect(),
    }
}

/// The month `n` months before `month` (`YYYY-MM`).
pub fn month_back(month: &str, n: i64) -> String {
    let y: i64 = month.get(..4).and_then(|x| x.parse().ok()).unwrap_or(2000);
    let m: i64 = month.get(5..7).and_then(|x| x.parse().ok()).unwrap_or(1);
    let k = y * 12 + (m - 1) - n;
    format!("{:04}-{:02}", k.div_euclid(12), k.rem_euclid(12) + 1)
}

/// Computes and stores the snapshots of every provider and department for `p`.
pub async fn materialise(store: &Store, p: &Period) -> Result<usize, Error> {
    let mut n = 0;
    for scope in [IndicatorScope::Provider, IndicatorScope::Department] {
        let sets = compute(store, scope, None, p).await?;
        let mut tx = store.begin_write().await?;
        for set in &sets {
            let body = serde_json::to_string(set).map_err(|e| Error::internal(e.to_string()))?;
            repo::put_snapshot(
                &mut tx,
                scope.as_str(),
                &set.id,
                &p.month,
                &body,
                set.computed_at,
            )
            .await?;
        }
        tx.commit().await.map_err(zy_store::db_error)?;
        n += sets.len();
    }
    Ok(n)
}

/// `POST /v1/supervision/refresh`: the supervisor recomputes the current month now.
pub async fn refresh(s: &AppState, ctx: &RequestContext, actor: &Actor) -> Result<usize, Error> {
    authorize(&actor.principal, Action::SupervisionManage)?;
    let p = Period::parse(&s.store, None).await?;
    let n = materialise(&s.store, &p).await?;
    let tx = s.store.begin_write().await?;
    crate::app::commit_audited(
        tx,
        ctx,
        Some(actor),
        "refresh_indicators",
        "indicator_snapshot",
        &p.month,
        serde_json::json!({ "sets": n }),
    )
    .await?;
    Ok(n)
}

/// The `supervision` task (one replica, every 10 minutes): materialises the current
/// month's indicator sets and, once, the month just finished; finds idle resources and
/// settles reclaims; generates the monthly reports after a month ends.
pub struct SupervisionTask(pub AppState);

pub fn task(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(SupervisionTask(s))
}

impl crate::tasks::Task for SupervisionTask {
    fn name(&self) -> &'static str {
        "supervision"
    }
    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(600)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> futures_util::future::BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let s = &self.0;
            let now = crate::app::billing::clock(&s.store).await?;
            let idle = idle::detect(&s.store, now).await?;
            let current = Period::parse(&s.store, None).await?;
            let sets = materialise(&s.store, &current).await?;
            let last = Period::parse(&s.store, Some(&month_back(&current.month, 1))).await?;
            // Months before the platform had any provider have nothing to report.
            let existed = repo::first_provider_at(&s.store)
                .await?
                .is_some_and(|at| at < last.to);
            let finished = repo::snapshots(&s.store, "provider", &last.month)
                .await?
                .first()
                .and_then(|(_, b)| serde_json::from_str::<IndicatorSet>(b).ok())
                .is_some_and(|x| x.computed_at >= last.to);
            let mut reports = 0;
            if existed {
                if !finished {
                    materialise(&s.store, &last).await?;
                }
                reports = report::monthly(s, &last.month).await?;
            }
            Ok(serde_json::json!({ "sets": sets, "idle": idle, "reports": reports }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_go_back_across_years() {
        assert_eq!(month_back("2026-03", 2), "2026-01");
        assert_eq!(month_back("2026-01", 1), "2025-12");
        assert_eq!(month_back("2026-12", 13), "2025-11");
        assert_eq!(month_back("2026-05", 0), "2026-05");
    }

    #[test]
    fn every_indicator_has_a_unique_code_and_name_per_scope() {
        let mut seen = std::collections::HashSet::new();
        for d in DEFS {
            assert!(seen.insert(d.code), "{}", d.code);
            assert!(seen.insert(if d.scope == IndicatorScope::Provider {
                Box::leak(format!("p:{}", d.name).into_boxed_str())
            } else {
                Box::leak(format!("d:{}", d.name).into_boxed_str())
            }));
        }
        let doc = include_str!("../../../../../docs/INDICATORS.md");
        for d in DEFS {
            assert!(
                doc.contains(&format!("| {} |", d.code)),
                "{} documented",
                d.code
            );
        }
    }

    #[test]
    fn ranking_puts_missing_figures_last() {
        let set = |name: &str, v: Option<f64>| IndicatorSet {
            scope: IndicatorScope::Department,
            id: name.into(),
            name: name.into(),
            period: "2026-11".into(),
            from: Timestamp(0),
            to: Timestamp(0),
            computed_at: Timestamp(0),
            indicators: vec![Indicator {
                code: "D5".into(),
                name: "cpu_utilisation".into(),
                title_zh: String::new(),
                title_en: String::new(),
                value: v,
                unit: "%".into(),
                formula: String::new(),
                inputs: vec![],
            }],
        };
        let mut v = vec![set("a", None), set("b", Some(3.0)), set("c", Some(9.0))];
        rank(&mut v, "cpu_utilisation");
        let names: Vec<&str> = v.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
    }
}
