//! Operations (运维) as the supervision issue asks for them: tickets (工单) with response
//! and resolution deadlines, inspections (巡检) and their results, and the monthly
//! provider SLA score (服务质量考核) with its availability credit. The score formula and
//! the credit bands are pure functions here, so they are tested on their own.

use crate::time::Timestamp;
use crate::{t, Error};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// ---------------------------------------------------------------- tickets

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// 故障
    Fault,
    /// 服务请求
    ServiceRequest,
    /// 变更
    Change,
    /// 咨询
    Consultation,
}

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Fault => "fault",
            TicketKind::ServiceRequest => "service_request",
            TicketKind::Change => "change",
            TicketKind::Consultation => "consultation",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            TicketKind::Fault,
            TicketKind::ServiceRequest,
            TicketKind::Change,
            TicketKind::Consultation,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// L1 is the most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketPriority {
    L1,
    L2,
    L3,
    L4,
}

impl TicketPriority {
    pub const ALL: [TicketPriority; 4] = [
        TicketPriority::L1,
        TicketPriority::L2,
        TicketPriority::L3,
        TicketPriority::L4,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TicketPriority::L1 => "l1",
            TicketPriority::L2 => "l2",
            TicketPriority::L3 => "l3",
            TicketPriority::L4 => "l4",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// 待响应: waits for the provider to accept it.
    Open,
    /// 处理中: accepted by an operator.
    Accepted,
    /// 待确认: resolved by the provider, waits for the department's confirmation.
    Resolved,
    /// 已关闭: confirmed and rated.
    Closed,
}

impl TicketState {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Open => "open",
            TicketState::Accepted => "accepted",
            TicketState::Resolved => "resolved",
            TicketState::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            TicketState::Open,
            TicketState::Accepted,
            TicketState::Resolved,
            TicketState::Closed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    pub id: String,
    pub kind: TicketKind,
    pub priority: TicketPriority,
    pub state: TicketState,
    pub title: String,
    pub description: String,
    pub department_id: Option<String>,
    pub provider_id: Option<String>,
    /// `instance`, `volume` or `host` when the ticket is about one resource.
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    /// `user`, `alert` or `inspection`.
    pub source: String,
    pub source_key: Option<String>,
    pub opened_by: String,
    pub opened_at: Timestamp,
    /// Response deadline (accept by then).
    pub respond_by: Timestamp,
    /// Resolution deadline.
    pub resolve_by: Timestamp,
    pub responded_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub assignee: Option<String>,
    /// How many deadlines it has missed so far (0, 1 or 2): each one escalates it.
    pub escalation: i64,
    pub response_missed: bool,
    pub resolution_missed: bool,
    /// The department's satisfaction rating, 1–5.
    pub rating: Option<i64>,
    pub generation: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketEvent {
    pub id: String,
    pub ticket_id: String,
    pub at: Timestamp,
    /// The user's name, or `system` for timers, alerts and inspections.
    pub actor: String,
    /// open, accept, resolve, close, reopen, comment, escalate_response,
    /// escalate_resolution, alert_resolved, inspection_failed.
    pub action: String,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TicketDetail {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub timeline: Vec<TicketEvent>,
}

/// A new ticket. About one resource (`subject_kind` + `subject_id`: it goes to the
/// provider that runs it) or general (then `provider_id` chooses the provider).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    pub kind: TicketKind,
    pub priority: TicketPriority,
    /// 1–100 characters.
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// `instance`, `volume` or `host`.
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub provider_id: Option<String>,
    /// The department it is for (general tickets of department people; derived from the
    /// resource otherwise).
    pub department_id: Option<String>,
}

impl NewTicket {
    /// Title and description, trimmed and checked.
    pub fn validate(&self) -> Result<(String, String), Error> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 100 {
            return Err(Error::validation(
                "title",
                t!("标题须为 1 到 100 个字符", "the title is 1–100 characters"),
            ));
        }
        if title.chars().any(char::is_control) {
            return Err(Error::validation(
                "title",
                t!(
                    "标题不能含控制字符",
                    "the title cannot contain control characters"
                ),
            ));
        }
        let description = self.description.trim();
        if description.chars().count() > 4000 {
            return Err(Error::validation(
                "description",
                t!(
                    "描述最多 4000 个字符",
                    "the description is at most 4000 characters"
                ),
            ));
        }
        if description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Error::validation(
                "description",
                t!(
                    "描述不能含控制字符",
                    "the description cannot contain control characters"
                ),
            ));
        }
        Ok((title.to_string(), description.to_string()))
    }
}

/// A note on a step (accept, resolve, reopen, comment).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketStep {
    /// Up to 2000 characters (required for comments and reopening).
    #[serde(default)]
    pub note: String,
    /// Accept only: who works on it (default: the caller's user name).
    pub assignee: Option<String>,
    /// The ticket's generation the step was decided on (optional).
    pub generation: Option<i64>,
}

/// The department confirms the resolution and rates the service.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketClose {
    /// Satisfaction 1–5 (required when the ticket is a department's).
    pub rating: Option<i64>,
    #[serde(default)]
    pub note: String,
    pub generation: Option<i64>,
}

pub fn check_note(note: &str, required: bool) -> Result<String, Error> {
    let n = note.trim();
    if required && n.is_empty() {
        return Err(Error::validation(
            "note",
            t!("请写明说明", "please write a note"),
        ));
    }
    if n.chars().count() > 2000 {
        return Err(Error::validation(
            "note",
            t!(
                "说明最多 2000 个字符",
                "the note is at most 2000 characters"
            ),
        ));
    }
    if n.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::validation(
            "note",
            t!(
                "说明不能含控制字符",
                "the note cannot contain control characters"
            ),
        ));
    }
    Ok(n.to_string())
}

/// Response and resolution deadlines of one priority, minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    pub priority: TicketPriority,
    pub response_mins: i64,
    pub resolution_mins: i64,
}

/// The deadlines of every priority (set by the platform admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketSettings {
    pub deadlines: Vec<Deadline>,
}

impl Default for TicketSettings {
    /// L1 15 min / 4 h, L2 30 min / 8 h, L3 2 h / 24 h, L4 4 h / 48 h.
    fn default() -> Self {
        let d = |priority, response_mins, resolution_mins| Deadline {
            priority,
            response_mins,
            resolution_mins,
        };
        TicketSettings {
            deadlines: vec![
                d(TicketPriority::L1, 15, 4 * 60),
                d(TicketPriority::L2, 30, 8 * 60),
                d(TicketPriority::L3, 120, 24 * 60),
                d(TicketPriority::L4, 240, 48 * 60),
            ],
        }
    }
}

impl TicketSettings {
    /// Exactly one entry per priority; 1 minute ≤ response ≤ resolution ≤ 90 days.
    pub fn validate(&self) -> Result<(), Error> {
        for p in TicketPriority::ALL {
            if self.deadlines.iter().filter(|d| d.priority == p).count() != 1 {
                return Err(Error::validation(
                    "deadlines",
                    t!("L1 到 L4 每个级别须各有一条时限（{} 缺失或重复）" ; "each of L1–L4 needs exactly one deadline entry ({} is missing or repeated)", p.as_str()),
                ));
            }
        }
        for d in &self.deadlines {
            if d.response_mins < 1
                || d.resolution_mins < d.response_mins
                || d.resolution_mins > 90 * 24 * 60
            {
                return Err(Error::validation(
                    "deadlines",
                    t!("时限须满足 1 分钟 ≤ 响应时限 ≤ 解决时限 ≤ 90 天（{}）" ; "deadlines need 1 minute ≤ response ≤ resolution ≤ 90 days ({})", d.priority.as_str()),
                ));
            }
        }
        Ok(())
    }
    pub fn of(&self, p: TicketPriority) -> Deadline {
        self.deadlines
            .iter()
            .copied()
            .find(|d| d.priority == p)
            .unwrap_or(Deadline {
                priority: p,
                response_mins: 60,
                resolution_mins: 24 * 60,
            })
    }
}

/// A provider's tickets opened in a period, as the SLA score and the supervision
/// indicators read them. A deadline is *due* once it has passed or been met; tickets
/// whose deadline is still ahead and unmet count in neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketStats {
    pub opened: i64,
    /// Closed (by the department) so far.
    pub closed: i64,
    pub response_due: i64,
    pub response_met: i64,
    pub resolution_due: i64,
    pub resolution_met: i64,
    /// Tickets that missed at least one deadline.
    pub escalated: i64,
    pub ratings: i64,
    pub rating_sum: i64,
    /// Average rating (1–5), absent without ratings.
    pub satisfaction_avg: Option<f64>,
}

// ---------------------------------------------------------------- inspections

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Hosts whose HA state is not ok, and agents not heard from for 5 minutes.
    HostHealth,
    /// Zones whose allocated vCPUs exceed 85 % of what they may allocate.
    Capacity,
    /// Agent certificates that expire within 30 days.
    CertExpiry,
    /// The `zhengyun admin check` invariants.
    AdminCheck,
    /// Audit chain verification (the auditor's plans only).
    AuditChain,
}

impl CheckKind {
    pub const ALL: [CheckKind; 5] = [
        CheckKind::HostHealth,
        CheckKind::Capacity,
        CheckKind::CertExpiry,
        CheckKind::AdminCheck,
        CheckKind::AuditChain,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::HostHealth => "host_health",
            CheckKind::Capacity => "capacity",
            CheckKind::CertExpiry => "cert_expiry",
            CheckKind::AdminCheck => "admin_check",
            CheckKind::AuditChain => "audit_chain",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            CheckKind::HostHealth => "主机与代理健康",
            CheckKind::Capacity => "容量阈值",
            CheckKind::CertExpiry => "证书到期",
            CheckKind::AdminCheck => "一致性检查",
            CheckKind::AuditChain => "审计链校验",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InspectionPlan {
    pub id: String,
    pub name: String,
    pub checks: Vec<CheckKind>,
    /// Local hour (Asia/Shanghai, 0–23) of the daily run.
    pub hour: i64,
    /// `platform` (the platform admin's) or `auditor` (audit chain verification).
    pub owner: String,
    pub enabled: bool,
    /// The local day (YYYY-MM-DD) of the last scheduled run.
    pub last_day: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInspectionPlan {
    /// 1–64 characters, unique.
    pub name: String,
    /// One or more checks; `audit_chain` only alone, in the auditor's plans.
    pub checks: Vec<CheckKind>,
    /// Local hour (Asia/Shanghai, 0–23); default 2.
    pub hour: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    pub check: CheckKind,
    /// The provider it is about; empty for platform-wide checks.
    pub provider_id: String,
    pub passed: bool,
    pub detail: String,
    /// The ticket a failure opened or updated.
    pub ticket_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InspectionRun {
    pub id: String,
    pub plan_id: String,
    pub plan_name: String,
    /// `schedule` or `manual`.
    pub trigger: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub passed: bool,
    pub checks: i64,
    pub failed: i64,
    pub results: Vec<CheckResult>,
}

/// A provider's inspection results in a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InspectionStats {
    pub checks: i64,
    pub passed: i64,
    pub failed: i64,
}

// ---------------------------------------------------------------- SLA scores

/// Weights of the four parts of the score, whole percent, summing to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaWeights {
    pub availability: i64,
    pub timeliness: i64,
    pub inspection: i64,
    pub satisfaction: i64,
}

/// Availability below `below_ppm` (parts per million: 999900 is 99.99 %) takes
/// `credit_pct` percent off the month's fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaBand {
    pub below_ppm: i64,
    pub credit_pct: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    pub weights: SlaWeights,
    pub bands: Vec<SlaBand>,
}

impl Default for SlaPolicy {
    /// 40/25/15/20; 10 % below 99.99 %, 25 % below 99 %, 100 % below 95 %.
    fn default() -> Self {
        SlaPolicy {
            weights: SlaWeights {
                availability: 40,
                timeliness: 25,
                inspection: 15,
                satisfaction: 20,
            },
            bands: vec![
                SlaBand {
                    below_ppm: 999_900,
                    credit_pct: 10,
                },
                SlaBand {
                    below_ppm: 990_000,
                    credit_pct: 25,
                },
                SlaBand {
                    below_ppm: 950_000,
                    credit_pct: 100,
                },
            ],
        }
    }
}

impl SlaPolicy {
    pub fn validate(&self) -> Result<(), Error> {
        let w = self.weights;
        let parts = [w.availability, w.timeliness, w.inspection, w.satisfaction];
        if parts.iter().any(|x| !(0..=100).contains(x)) || parts.iter().sum::<i64>() != 100 {
            return Err(Error::validation(
                "weights",
                t!(
                    "四项权重须为 0 到 100 的整数且合计 100",
                    "the four weights are whole numbers 0–100 that add up to 100"
                ),
            ));
        }
        if self.bands.len() > 10 {
            return Err(Error::validation(
                "bands",
                t!("最多 10 个扣减档位", "at most 10 credit bands"),
            ));
        }
        for b in &self.bands {
            if !(1..=1_000_000).contains(&b.below_ppm) || !(1..=100).contains(&b.credit_pct) {
                return Err(Error::validation(
                    "bands",
                    t!(
                        "档位的可用性阈值须在 0 到 100% 之间（百万分数 1–1000000），扣减比例 1–100%",
                        "a band's threshold is 1–1000000 parts per million and its credit 1–100 %"
                    ),
                ));
            }
        }
        let mut th: Vec<i64> = self.bands.iter().map(|b| b.below_ppm).collect();
        th.sort();
        th.dedup();
        if th.len() != self.bands.len() {
            return Err(Error::validation(
                "bands",
                t!("档位阈值不能重复", "band thresholds cannot repeat"),
            ));
        }
        Ok(())
    }
}

/// Availability in parts per million (floor): 1 000 000 with no service minutes.
pub fn availability_ppm(service_mins: i64, down_mins: i64) -> i64 {
    if service_mins <= 0 {
        return 1_000_000;
    }
    let down = down_mins.clamp(0, service_mins);
    ((service_mins - down) as i128 * 1_000_000 / service_mins as i128) as i64
}

/// The credit percentage for an availability: the largest credit of the bands whose
/// threshold it is below (0 when it is below none).
pub fn credit_pct(bands: &[SlaBand], availability_ppm: i64) -> i64 {
    bands
        .iter()
        .filter(|b| availability_ppm < b.below_ppm)
        .map(|b| b.credit_pct)
        .max()
        .unwrap_or(0)
}

/// The credit in fen: `fee × pct / 100`, rounded down, never more than the fee.
pub fn credit_fen(fee_fen: i64, pct: i64) -> i64 {
    if fee_fen <= 0 {
        return 0;
    }
    ((fee_fen as i128 * pct.clamp(0, 100) as i128) / 100) as i64
}

/// The four part scores (each 0–100) combined by the weights: Σ wᵢ·sᵢ / 100.
pub fn weighted_score(w: SlaWeights, parts: [f64; 4]) -> f64 {
    let ws = [w.availability, w.timeliness, w.inspection, w.satisfaction];
    let total: f64 = ws
        .iter()
        .zip(parts)
        .map(|(w, s)| *w as f64 * s.clamp(0.0, 100.0))
        .sum();
    total / 100.0
}

/// Part scores of a month (each 0–100).
///
/// - availability: ppm / 10 000;
/// - timeliness: deadlines met / deadlines due (response and resolution together), 100
///   with none due;
/// - inspection: checks passed / checks, 100 with none;
/// - satisfaction: average rating / 5 × 100, 100 without ratings.
pub fn part_scores(avail_ppm: i64, t: &TicketStats, i: &InspectionStats) -> [f64; 4] {
    let ratio = |met: i64, due: i64| {
        if due <= 0 {
            100.0
        } else {
            met as f64 * 100.0 / due as f64
        }
    };
    [
        avail_ppm as f64 / 10_000.0,
        ratio(
            t.response_met + t.resolution_met,
            t.response_due + t.resolution_due,
        ),
        ratio(i.passed, i.checks),
        if t.ratings > 0 {
            t.rating_sum as f64 * 20.0 / t.ratings as f64
        } else {
            100.0
        },
    ]
}

/// A provider's score of a month, with everything it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlaScore {
    pub month: String,
    pub provider_id: String,
    pub provider_name: String,
    /// Instance-minutes the provider's instances were billed as running.
    pub service_minutes: i64,
    /// Of those, minutes an instance was unreachable (see ARCHITECTURE.md).
    pub down_minutes: i64,
    pub availability_ppm: i64,
    pub tickets: TicketStats,
    pub inspections: InspectionStats,
    /// availability, timeliness, inspection, satisfaction (each 0–100).
    pub parts: [f64; 4],
    pub weights: SlaWeights,
    /// 0–100.
    pub score: f64,
    /// What the city owes the provider for the month before the credit (fen).
    pub fee_fen: i64,
    pub credit_pct: i64,
    /// The credit taken off the provider's bill (fen, ≥ 0).
    pub credit_fen: i64,
    pub computed_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_bands_match_the_issue() {
        let b = SlaPolicy::default().bands;
        assert_eq!(credit_pct(&b, 1_000_000), 0);
        assert_eq!(credit_pct(&b, 999_900), 0);
        assert_eq!(credit_pct(&b, 999_899), 10);
        assert_eq!(credit_pct(&b, 989_999), 25);
        assert_eq!(credit_pct(&b, 949_999), 100);
        assert_eq!(credit_fen(123_456, 10), 12_345);
        assert_eq!(availability_ppm(43_200, 5), 999_884);
        assert_eq!(availability_ppm(0, 5), 1_000_000);
        SlaPolicy::default().validate().expect("defaults are valid");
        TicketSettings::default()
            .validate()
            .expect("defaults are valid");
    }

    #[test]
    fn bad_policies_are_refused() {
        let mut p = SlaPolicy::default();
        p.weights.availability = 41;
        assert!(p.validate().is_err());
        let mut p = SlaPolicy::default();
        p.bands.push(p.bands[0]);
        assert!(p.validate().is_err());
        let mut s = TicketSettings::default();
        s.deadlines.pop();
        assert!(s.validate().is_err());
        let mut s = TicketSettings::default();
        s.deadlines[0].response_mins = 300;
        assert!(s.validate().is_err());
    }

    fn weights() -> impl Strategy<Value = SlaWeights> {
        (0i64..=100, 0i64..=100, 0i64..=100).prop_filter_map("sum ≤ 100", |(a, b, c)| {
            (a + b + c <= 100).then_some(SlaWeights {
                availability: a,
                timeliness: b,
                inspection: c,
                satisfaction: 100 - a - b - c,
            })
        })
    }

    proptest! {
        #[test]
        fn the_score_stays_within_its_parts(w in weights(), p in proptest::array::uniform4(0.0f64..=100.0)) {
            let s = weighted_score(w, p);
            let lo = p.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(s >= lo - 1e-9 && s <= hi + 1e-9, "{s} not within [{lo}, {hi}]");
            prop_assert!((0.0..=100.0 + 1e-9).contains(&s));
            prop_assert!((weighted_score(w, [100.0; 4]) - 100.0).abs() < 1e-9);
        }

        #[test]
        fn credits_never_exceed_the_fee_and_fall_with_availability(fee in 0i64..10_000_000_000, a in 0i64..=1_000_000, b in 0i64..=1_000_000) {
            let bands = SlaPolicy::default().bands;
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(credit_pct(&bands, lo) >= credit_pct(&bands, hi));
            let c = credit_fen(fee, credit_pct(&bands, lo));
            prop_assert!((0..=fee).contains(&c));
        }

        #[test]
        fn availability_is_a_fraction(service in 0i64..10_000_000, down in -5i64..20_000_000) {
            let p = availability_ppm(service, down);
            prop_assert!((0..=1_000_000).contains(&p));
            if down <= 0 { prop_assert_eq!(p, 1_000_000); }
        }
    }
}
