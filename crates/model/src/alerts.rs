//! Alerts (告警): rules over the metrics history and the instances' crash events, what is
//! pending or firing now, the history of firing and resolved alerts, and silences. Pure:
//! the types as the API shows them and the validation of new rules and silences; the
//! evaluation lives in the server (`monitoring/alerts.rs`).

use crate::metrics::{MetricScope, Series};
use crate::time::Timestamp;
use crate::{t, Error};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A series above (or below) a threshold for a while: "cpu > 90 for 10 min",
    /// "disk_used > 85", "host down" (`up < 1` on hosts).
    Threshold,
    /// An instance that crashed at least `crash_count` times in the last hour.
    Crashes,
}

/// What each alert of a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertTarget {
    Instance,
    Host,
}

impl AlertTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertTarget::Instance => "instance",
            AlertTarget::Host => "host",
        }
    }
    pub fn parse(s: &str) -> Option<AlertTarget> {
        match s {
            "instance" => Some(AlertTarget::Instance),
            "host" => Some(AlertTarget::Host),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertOp {
    /// Greater than.
    Gt,
    /// Less than.
    Lt,
}

impl AlertOp {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            AlertOp::Gt => value > threshold,
            AlertOp::Lt => value < threshold,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AlertOp::Gt => "gt",
            AlertOp::Lt => "lt",
        }
    }
    pub fn parse(s: &str) -> Option<AlertOp> {
        match s {
            "gt" => Some(AlertOp::Gt),
            "lt" => Some(AlertOp::Lt),
            _ => None,
        }
    }
}

/// Longest "for" of a threshold rule: the raw points it reads are kept one day.
pub const MAX_FOR_SECS: i64 = 6 * 3600;

/// A new rule, as a department admin, the platform admin or a provider operator sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlertRule {
    /// 1–64 characters, shown in alerts and notices.
    pub name: String,
    pub kind: AlertKind,
    /// What the rule covers: one instance, a project's or a department's instances, or a
    /// host's, a zone's or a provider's hosts (or instances).
    pub scope: MetricScope,
    /// The id of that instance, project, department, host, zone or provider.
    pub id: String,
    /// `instance` (default) or `host` (only with scope host, zone or provider).
    pub target: Option<AlertTarget>,
    /// Threshold rules: the series (`cpu`, `mem`, `disk_used`, `up` …).
    pub series: Option<Series>,
    /// Threshold rules: `gt` (default) or `lt`.
    pub op: Option<AlertOp>,
    /// Threshold rules: the threshold in the series' unit (% for cpu, mem, disk_used).
    pub threshold: Option<f64>,
    /// Threshold rules: how long it must hold before the alert fires, seconds (0–21600).
    #[serde(default)]
    pub for_secs: i64,
    /// Crash rules: crashes within an hour that fire the alert (1–100).
    pub crash_count: Option<i64>,
    /// Open a ticket (工单, priority L2) to the provider when the alert fires.
    #[serde(default)]
    pub open_ticket: bool,
}

/// A rule as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertRule {
    pub id: String,
    pub name: String,
    pub kind: AlertKind,
    pub scope: MetricScope,
    pub entity_id: String,
    /// The department whose resources it covers (absent for the infrastructure).
    pub department_id: Option<String>,
    pub target: AlertTarget,
    pub series: Option<Series>,
    pub op: Option<AlertOp>,
    pub threshold: Option<f64>,
    pub for_secs: i64,
    pub crash_count: Option<i64>,
    /// Opens a ticket when it fires.
    #[serde(default)]
    pub open_ticket: bool,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// A rule's alert about one target that is pending (the condition holds, not yet for long
/// enough) or firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActiveAlert {
    pub rule_id: String,
    pub rule_name: String,
    pub target: AlertTarget,
    pub target_id: String,
    pub target_name: String,
    /// `pending` or `firing`.
    pub state: String,
    pub since: Timestamp,
    pub value: Option<f64>,
}

/// One entry of the alert history: an alert fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub department_id: Option<String>,
    pub target: AlertTarget,
    pub target_id: String,
    pub target_name: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub value: Option<f64>,
    pub at: Timestamp,
    /// A silence covered it: recorded, nobody notified.
    pub silenced: bool,
}

/// A new silence: no notices for alerts about the scope's targets during the window.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub scope: MetricScope,
    pub id: String,
    /// Default: now.
    pub starts_at: Option<Timestamp>,
    /// After the start, at most 30 days after now.
    pub ends_at: Timestamp,
    /// Why (1–200 characters), e.g. "planned maintenance".
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Silence {
    pub id: String,
    pub scope: MetricScope,
    pub entity_id: String,
    pub department_id: Option<String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

fn text_len(field: &str, s: &str, max: usize) -> Result<(), Error> {
    let n = s.trim().chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(Error::validation(
            field,
            t!("{} 须为 1–{} 个字符且不含控制字符" ; "{} must be 1–{} characters without control characters", field, max),
        ));
    }
    Ok(())
}

impl NewAlertRule {
    /// Checks the rule's own fields (the scope's entity and the caller's rights are checked
    /// by the server). Returns the target it applies to.
    pub fn validate(&self) -> Result<AlertTarget, Error> {
        text_len("name", &self.name, 64)?;
        let target = self.target.unwrap_or(AlertTarget::Instance);
        if target == AlertTarget::Host
            && !matches!(
                self.scope,
                MetricScope::Host | MetricScope::Zone | MetricScope::Provider
            )
        {
            return Err(Error::validation(
                "target",
                t!(
                    "以宿主机为对象的规则，范围须为 host、zone 或 provider",
                    "rules about hosts need scope host, zone or provider"
                ),
            ));
        }
        match self.kind {
            AlertKind::Threshold => {
                if self.series.is_none() {
                    return Err(Error::validation(
                        "series",
                        t!("阈值规则须指定指标", "a threshold rule needs a series"),
                    ));
                }
                match self.threshold {
                    Some(v) if v.is_finite() && v.abs() <= 1e15 => {}
                    _ => {
                        return Err(Error::validation(
                            "threshold",
                            t!(
                                "阈值规则须给出有限的阈值",
                                "a threshold rule needs a finite threshold"
                            ),
                        ))
                    }
                }
                if !(0..=MAX_FOR_SECS).contains(&self.for_secs) {
                    return Err(Error::validation(
                        "for_secs",
                        t!(
                            "持续时间须在 0 到 21600 秒（6 小时）之间",
                            "for_secs must be 0–21600 (6 hours)"
                        ),
                    ));
                }
                if self.crash_count.is_some() {
                    return Err(Error::validation(
                        "crash_count",
                        t!(
                            "阈值规则不使用 crash_count",
                            "a threshold rule takes no crash_count"
                        ),
                    ));
                }
            }
            AlertKind::Crashes => {
                if target != AlertTarget::Instance {
                    return Err(Error::validation(
                        "target",
                        t!("崩溃规则只适用于云主机", "crash rules are about instances"),
                    ));
                }
                if !matches!(self.crash_count, Some(1..=100)) {
                    return Err(Error::validation(
                        "crash_count",
                        t!("崩溃次数须在 1 到 100 之间", "crash_count must be 1–100"),
                    ));
                }
                if self.series.is_some() || self.threshold.is_some() || self.op.is_some() {
                    return Err(Error::validation(
                        "series",
                        t!(
                            "崩溃规则不使用指标与阈值",
                            "a crash rule takes no series, op or threshold"
                        ),
                    ));
                }
            }
        }
        Ok(target)
    }
}

impl NewSilence {
    /// The window (start, end) after the checks.
    pub fn validate(&self, now: Timestamp) -> Result<(Timestamp, Timestamp), Error> {
        text_len("reason", &self.reason, 200)?;
        let start = self.starts_at.unwrap_or(now);
        if self.ends_at.0 <= start.0 || self.ends_at.0 <= now.0 {
            return Err(Error::validation(
                "ends_at",
                t!(
                    "结束时间须晚于开始时间和现在",
                    "ends_at must be after the start and after now"
                ),
            ));
        }
        if self.ends_at.0 > now.plus_secs(30 * 86_400).0 {
            return Err(Error::validation(
                "ends_at",
                t!("静默最长 30 天", "a silence lasts at most 30 days"),
            ));
        }
        Ok((start, self.ends_at))
    }
}

/// Whether the points of one target (time, value, oldest first) fire a threshold rule at
/// `now`: `None` when the newest point (at most `fresh` seconds old) does not meet the
/// condition, `Some((since, value, firing))` when it does — `since` is the oldest point of
/// the unbroken run that meets it, `firing` when that run spans `for_secs`.
pub fn threshold_state(
    points: &[(i64, f64)],
    op: AlertOp,
    threshold: f64,
    for_secs: i64,
    now: i64,
    fresh: i64,
) -> Option<(i64, f64, bool)> {
    let &(last_t, last_v) = points.last()?;
    if now - last_t > fresh || !op.holds(last_v, threshold) {
        return None;
    }
    let mut since = last_t;
    for &(t, v) in points.iter().rev() {
        if !op.holds(v, threshold) {
            break;
        }
        since = t;
    }
    Some((since, last_v, last_t - since >= for_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_fires_only_after_holding_for_its_duration() {
        let pts: Vec<(i64, f64)> = (0..10)
            .map(|i| (i * 10, if i < 4 { 50.0 } else { 95.0 }))
            .collect();
        // 95 from t=40 to t=90: 50 s.
        assert_eq!(
            threshold_state(&pts, AlertOp::Gt, 90.0, 60, 95, 30),
            Some((40, 95.0, false))
        );
        assert_eq!(
            threshold_state(&pts, AlertOp::Gt, 90.0, 50, 95, 30),
            Some((40, 95.0, true))
        );
        assert_eq!(
            threshold_state(&pts, AlertOp::Gt, 90.0, 0, 95, 30),
            Some((40, 95.0, true))
        );
        // Stale data fires nothing, nor does a newest point below the threshold.
        assert_eq!(threshold_state(&pts, AlertOp::Gt, 90.0, 0, 500, 30), None);
        assert_eq!(threshold_state(&pts, AlertOp::Lt, 90.0, 0, 95, 30), None);
        assert_eq!(threshold_state(&[], AlertOp::Gt, 90.0, 0, 95, 30), None);
    }

    #[test]
    fn rules_are_checked_for_what_their_kind_needs() {
        let base = NewAlertRule {
            name: "CPU 过高".into(),
            kind: AlertKind::Threshold,
            scope: MetricScope::Project,
            id: "x".into(),
            target: None,
            series: Some(Series::Cpu),
            op: None,
            threshold: Some(90.0),
            for_secs: 600,
            crash_count: None,
            open_ticket: false,
        };
        assert_eq!(base.validate().ok(), Some(AlertTarget::Instance));
        let bad = |f: &dyn Fn(&mut NewAlertRule)| {
            let mut r = base.clone();
            f(&mut r);
            r.validate().is_err()
        };
        assert!(bad(&|r| r.name = String::new()));
        assert!(bad(&|r| r.threshold = Some(f64::NAN)));
        assert!(bad(&|r| r.series = None));
        assert!(bad(&|r| r.for_secs = MAX_FOR_SECS + 1));
        assert!(bad(&|r| r.target = Some(AlertTarget::Host)));
        assert!(bad(&|r| r.kind = AlertKind::Crashes));
        assert!(!bad(&|r| {
            r.kind = AlertKind::Crashes;
            r.series = None;
            r.threshold = None;
            r.crash_count = Some(3);
        }));
    }
}
