//! The supervision dashboard (监管大屏) in one answer: the month's provider and department
//! indicator sets (from the snapshots), platform totals summed from them, the largest
//! idle resources, firing alerts and six months of trend — everything the full-screen
//! view draws, read with a handful of statements so it stays fast at province scale. A
//! department admin gets the same shape for their own departments only.

use super::{all_sets, idle, month_back, rank, visible, Period};
use crate::auth::actor::Actor;
use crate::state::AppState;
use serde::Serialize;
use utoipa::ToSchema;
use zy_model::alerts::ActiveAlert;
use zy_model::supervision::*;
use zy_model::Error;

/// Platform (or department) totals, each summed from the sets shown beside it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Totals {
    pub providers: i64,
    pub departments: i64,
    pub hosts: i64,
    pub hosts_up: i64,
    pub instances: i64,
    pub instances_running: i64,
    pub vcpus_allocatable: i64,
    pub vcpus_used: i64,
    /// Mean of the providers' (department: the departments') real CPU utilisation.
    pub cpu_utilisation: Option<f64>,
    pub spend_fen: i64,
    pub idle_open: i64,
    pub idle_monthly_fen: i64,
    pub alerts_firing: i64,
    /// Tickets not closed yet (a department admin: their departments' only).
    pub tickets_open: i64,
    /// Of those, the ones that missed their response or resolution deadline.
    pub tickets_overdue: i64,
    pub security_events: i64,
    pub security_blocked: i64,
}

/// One month of the trend.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendMonth {
    pub month: String,
    pub cpu_utilisation: Option<f64>,
    pub spend_fen: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Dashboard {
    pub period: String,
    /// `platform` (supervisor, platform admin) or `department` (a department admin).
    pub view: String,
    pub totals: Totals,
    pub providers: Vec<IndicatorSet>,
    /// Ranked by spend.
    pub departments: Vec<IndicatorSet>,
    /// The ten open idle resources that free the most per month.
    pub idle: Vec<IdleFinding>,
    /// Firing alerts (at most 20).
    pub alerts: Vec<ActiveAlert>,
    pub trend: Vec<TrendMonth>,
}

fn input(set: &IndicatorSet, name: &str, input: &str) -> i64 {
    set.input_count(name, input)
}

fn mean(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let xs: Vec<f64> = v.flatten().collect();
    (!xs.is_empty()).then(|| round2(xs.iter().sum::<f64>() / xs.len() as f64))
}

pub async fn dashboard(
    s: &AppState,
    actor: &Actor,
    period: Option<&str>,
) -> Result<Dashboard, Error> {
    let ds = visible(actor)?;
    let p = Period::parse(&s.store, period).await?;
    let providers = match ds {
        None => all_sets(&s.store, IndicatorScope::Provider, &p).await?,
        Some(_) => Vec::new(),
    };
    let mut departments = all_sets(&s.store, IndicatorScope::Department, &p).await?;
    if let Some(ds) = &ds {
        departments.retain(|x| ds.contains(&x.id));
    }
    rank(&mut departments, "spend");
    let mut idle = idle::list(s, actor, Some("open")).await?;
    idle.sort_by_key(|f| std::cmp::Reverse(f.monthly_fen.unwrap_or(0)));
    let mut alerts: Vec<ActiveAlert> = crate::app::alerts::active(s, actor)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.state == "firing")
        .collect();
    let alerts_firing = alerts.len() as i64;
    alerts.truncate(20);

    let mut t = Totals {
        providers: providers.len() as i64,
        departments: departments.len() as i64,
        alerts_firing,
        ..Default::default()
    };
    for (dept, open, overdue) in zy_store::operations::open_ticket_counts(&s.store).await? {
        let mine = match (&ds, dept) {
            (None, _) => true,
            (Some(ds), Some(d)) => ds.contains(&d),
            (Some(_), None) => false,
        };
        if mine {
            t.tickets_open += open;
            t.tickets_overdue += overdue;
        }
    }
    for x in &providers {
        t.hosts += input(x, "host_availability", "hosts");
        t.hosts_up += input(x, "host_availability", "hosts_up");
        t.instances += input(x, "instances_running", "instances");
        t.instances_running += input(x, "instances_running", "running");
        t.vcpus_allocatable += input(x, "vcpu_capacity", "allocatable_vcpus");
        t.vcpus_used += input(x, "vcpu_allocation", "used_vcpus");
        t.security_events += input(x, "security_events_blocked", "events");
        t.security_blocked += input(x, "security_events_blocked", "blocked");
    }
    for d in &departments {
        t.spend_fen += d.value("spend").unwrap_or(0.0) as i64;
        t.idle_open += input(d, "idle_resources", "findings");
        t.idle_monthly_fen += input(d, "idle_resources", "monthly_fen");
        if ds.is_some() {
            t.instances += input(d, "instances_held", "instances");
            t.instances_running += input(d, "instances_held", "running");
            t.security_events += input(d, "security_events_blocked", "events");
            t.security_blocked += input(d, "security_events_blocked", "blocked");
        }
    }
    t.cpu_utilisation = match ds {
        None => mean(providers.iter().map(|x| x.value("cpu_utilisation"))),
        Some(_) => mean(departments.iter().map(|x| x.value("cpu_utilisation"))),
    };
    idle.truncate(10);

    // Trend: the snapshots of the five months before, and this month as shown.
    let mut trend = Vec::new();
    for k in (1..=5).rev() {
        let month = month_back(&p.month, k);
        let prov = zy_store::supervision::snapshots(&s.store, "provider", &month).await?;
        let dept = zy_store::supervision::snapshots(&s.store, "department", &month).await?;
        let parse = |rows: Vec<(String, String)>| -> Vec<IndicatorSet> {
            rows.into_iter()
                .filter_map(|(_, b)| serde_json::from_str(&b).ok())
                .filter(|x: &IndicatorSet| ds.as_ref().is_none_or(|ds| ds.contains(&x.id)))
                .collect()
        };
        let (prov, dept) = (parse(prov), parse(dept));
        if prov.is_empty() && dept.is_empty() {
            continue;
        }
        trend.push(TrendMonth {
            month,
            cpu_utilisation: match ds {
                None => mean(prov.iter().map(|x| x.value("cpu_utilisation"))),
                Some(_) => mean(dept.iter().map(|x| x.value("cpu_utilisation"))),
            },
            spend_fen: dept
                .iter()
                .map(|d| d.value("spend").unwrap_or(0.0) as i64)
                .sum(),
        });
    }
    trend.push(TrendMonth {
        month: p.month.clone(),
        cpu_utilisation: t.cpu_utilisation,
        spend_fen: t.spend_fen,
    });
    Ok(Dashboard {
        period: p.month,
        view: if ds.is_none() {
            "platform"
        } else {
            "department"
        }
        .into(),
        totals: t,
        providers,
        departments,
        idle,
        alerts,
        trend,
    })
}
