//! Supervision (监管): the indicator set (docs/INDICATORS.md) as the API returns it — each
//! figure with the inputs it was computed from, so it can be traced back — idle and
//! zombie resource findings with their recommendation, and the idle thresholds. Pure: the
//! server computes and stores these; the rules here (idle thresholds, the p95, ratios)
//! are tested on their own.

use crate::{t, Error};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an indicator set is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorScope {
    /// A cloud service provider (云服务商): the provider side.
    Provider,
    /// A department (委办局): the user side.
    Department,
}

impl IndicatorScope {
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorScope::Provider => "provider",
            IndicatorScope::Department => "department",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "provider" => Some(IndicatorScope::Provider),
            "department" => Some(IndicatorScope::Department),
            _ => None,
        }
    }
}

/// One named input of an indicator (a count, a sum, a bound of the period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndicatorInput {
    pub name: String,
    pub value: f64,
    /// Where it was read (table or series), for tracing it back.
    pub source: String,
}

/// One computed indicator: its code from docs/INDICATORS.md, value, unit and inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Indicator {
    /// The code in docs/INDICATORS.md, e.g. `P3` or `D2`.
    pub code: String,
    /// Machine name, e.g. `cpu_utilisation`.
    pub name: String,
    pub title_zh: String,
    pub title_en: String,
    /// `None` when the inputs do not allow a figure (e.g. no metrics in the period).
    pub value: Option<f64>,
    /// `%`, `count`, `vcpus`, `MiB`, `GiB`, `fen`.
    pub unit: String,
    pub formula: String,
    pub inputs: Vec<IndicatorInput>,
}

/// Every indicator of one provider or department for one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndicatorSet {
    pub scope: IndicatorScope,
    pub id: String,
    pub name: String,
    /// `YYYY-MM` (Asia/Shanghai).
    pub period: String,
    /// The period's bounds as used: `[from, to)`, `to` capped at the time of computing.
    pub from: crate::time::Timestamp,
    pub to: crate::time::Timestamp,
    pub computed_at: crate::time::Timestamp,
    pub indicators: Vec<Indicator>,
}

impl IndicatorSet {
    /// The value of the indicator named `name`.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.indicators
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.value)
    }

    /// The input `input` of the indicator `name`, as a whole number (0 when absent).
    pub fn input_count(&self, name: &str, input: &str) -> i64 {
        self.indicators
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.inputs.iter().find(|x| x.name == input))
            .map_or(0, |x| x.value as i64)
    }
}

/// `part / whole` in % with two decimals; `None` when `whole` is zero.
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| round2(part / whole * 100.0))
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The p-th percentile (0–100) by the nearest-rank method; `None` for no values.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

// ------------------------------------------------------------------ idle resources

/// Why a resource is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdleKind {
    /// A running instance whose CPU p95 stayed below the threshold over the window.
    LowCpu,
    /// An instance stopped for longer than the threshold (僵尸云主机).
    Stopped,
    /// A volume attached to nothing for longer than the threshold.
    Unattached,
}

impl IdleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdleKind::LowCpu => "low_cpu",
            IdleKind::Stopped => "stopped",
            IdleKind::Unattached => "unattached",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [IdleKind::LowCpu, IdleKind::Stopped, IdleKind::Unattached]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What to do with an idle resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// Give it back (a release request; a volume is deleted into the recycle bin).
    Release,
    /// Resize it to `target_flavor` (a change request).
    Downsize,
}

impl Recommendation {
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Release => "release",
            Recommendation::Downsize => "downsize",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "release" => Some(Recommendation::Release),
            "downsize" => Some(Recommendation::Downsize),
            _ => None,
        }
    }
}

/// Where a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdleState {
    /// Found, waiting for the department.
    Open,
    /// The department asked to reclaim it (a request is under way).
    Reclaiming,
    /// The resource was released or downsized.
    Reclaimed,
    /// The department keeps it, with a reason.
    Dismissed,
    /// The condition no longer holds (it got busy, started, attached).
    Cleared,
}

impl IdleState {
    pub const ALL: [IdleState; 5] = [
        IdleState::Open,
        IdleState::Reclaiming,
        IdleState::Reclaimed,
        IdleState::Dismissed,
        IdleState::Cleared,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            IdleState::Open => "open",
            IdleState::Reclaiming => "reclaiming",
            IdleState::Reclaimed => "reclaimed",
            IdleState::Dismissed => "dismissed",
            IdleState::Cleared => "cleared",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One idle or zombie resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IdleFinding {
    pub id: String,
    pub kind: IdleKind,
    /// `instance` or `volume`.
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub department_id: String,
    pub project_id: String,
    pub provider_id: Option<String>,
    pub recommendation: Recommendation,
    /// For `downsize`: the flavor to resize to.
    pub target_flavor: Option<String>,
    /// What was measured (p95 CPU and samples, or since when it is stopped / detached).
    pub evidence: serde_json::Value,
    /// Capacity the recommendation frees.
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    /// Monthly cost it frees, fen, under the provider's prices in force (`None`: no price
    /// list).
    pub monthly_fen: Option<i64>,
    pub state: IdleState,
    pub request_id: Option<String>,
    /// The reason given when dismissed.
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub detected_at: crate::time::Timestamp,
    pub updated_at: crate::time::Timestamp,
    pub reclaimed_at: Option<crate::time::Timestamp>,
    pub generation: i64,
}

/// The idle thresholds (platform admin).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdleSettings {
    /// An instance is idle when the p95 of its hourly CPU stays below this, % (0.1–100).
    pub cpu_p95_percent: f64,
    /// Over this many days (1–30).
    pub cpu_window_days: i64,
    /// An instance stopped longer than this many days is a zombie (1–365).
    pub stopped_days: i64,
    /// A volume attached to nothing longer than this many days is idle (1–365).
    pub unattached_days: i64,
}

impl Default for IdleSettings {
    fn default() -> Self {
        IdleSettings {
            cpu_p95_percent: 5.0,
            cpu_window_days: 14,
            stopped_days: 30,
            unattached_days: 30,
        }
    }
}

impl IdleSettings {
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.cpu_p95_percent.is_finite() && (0.1..=100.0).contains(&self.cpu_p95_percent)) {
            return Err(Error::validation(
                "cpu_p95_percent",
                t!(
                    "CPU 阈值须在 0.1 到 100 之间",
                    "the CPU threshold must be 0.1–100"
                ),
            ));
        }
        if !(1..=30).contains(&self.cpu_window_days) {
            return Err(Error::validation(
                "cpu_window_days",
                t!(
                    "观察天数须在 1 到 30 之间（分钟数据保留 30 天）",
                    "the window must be 1–30 days (minute data is kept 30 days)"
                ),
            ));
        }
        for (field, v) in [
            ("stopped_days", self.stopped_days),
            ("unattached_days", self.unattached_days),
        ] {
            if !(1..=365).contains(&v) {
                return Err(Error::validation(
                    field,
                    t!("天数须在 1 到 365 之间", "days must be 1–365"),
                ));
            }
        }
        Ok(())
    }

    /// Whether hourly CPU values over the window make an instance idle: enough coverage
    /// (at least half of the window's hours measured) and a p95 below the threshold.
    /// Returns the p95 when it is idle.
    pub fn low_cpu(&self, hourly: &[f64]) -> Option<f64> {
        let needed = (self.cpu_window_days * 24 / 2) as usize;
        if hourly.len() < needed.max(1) {
            return None;
        }
        let mut v = hourly.to_vec();
        percentile(&mut v, 95.0).filter(|p| *p < self.cpu_p95_percent)
    }
}

/// Freed capacity per month and department (reclaimed findings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReclaimedCapacity {
    /// `YYYY-MM` of the reclaim (Asia/Shanghai).
    pub month: String,
    pub department_id: String,
    pub findings: i64,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    pub monthly_fen: i64,
}

/// A stored monthly operations report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpsReport {
    pub id: String,
    pub month: String,
    /// `None`: the whole platform.
    pub provider_id: Option<String>,
    pub title: String,
    pub pdf_bytes: i64,
    pub xlsx_bytes: i64,
    pub created_by: String,
    pub created_at: crate::time::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 95.0), Some(95.0));
        assert_eq!(percentile(&mut [3.0], 95.0), Some(3.0));
        assert_eq!(percentile(&mut [], 95.0), None);
        let mut w = vec![10.0, 1.0, 2.0, 3.0];
        assert_eq!(percentile(&mut w, 50.0), Some(2.0));
    }

    #[test]
    fn low_cpu_needs_coverage_and_a_low_p95() {
        let s = IdleSettings::default();
        // 14 days of 2 % with a few busy hours (fewer than 5 %): idle.
        let mut quiet = vec![2.0; 14 * 24];
        for v in quiet.iter_mut().take(10) {
            *v = 80.0;
        }
        assert_eq!(s.low_cpu(&quiet), Some(2.0));
        // Busy more than 5 % of the hours: not idle.
        let mut busy = vec![2.0; 14 * 24];
        for v in busy.iter_mut().take(20) {
            *v = 80.0;
        }
        assert_eq!(s.low_cpu(&busy), None);
        // Only two days measured: not enough to say.
        assert_eq!(s.low_cpu(&vec![1.0; 48]), None);
    }

    #[test]
    fn settings_are_bounded() {
        assert!(IdleSettings::default().validate().is_ok());
        for bad in [
            IdleSettings {
                cpu_p95_percent: f64::NAN,
                ..Default::default()
            },
            IdleSettings {
                cpu_window_days: 31,
                ..Default::default()
            },
            IdleSettings {
                stopped_days: 0,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }

    proptest! {
        #[test]
        fn percentile_is_a_member_and_monotone(mut v in proptest::collection::vec(0.0f64..100.0, 1..200), p in 1.0f64..100.0) {
            let mut w = v.clone();
            let a = percentile(&mut v, p).expect("not empty");
            prop_assert!(w.contains(&a));
            let b = percentile(&mut w, (p + 10.0).min(100.0)).expect("not empty");
            prop_assert!(b >= a);
        }
    }
}
