//! Resource requests (资源申请) and their approval (审批): what a department asks for, the
//! chain of reviews it goes through, and the rules that decide each move. Pure: the server
//! stores and drives these; the rules here are tested on their own.

use crate::id::*;
use crate::role::Role;
use crate::time::Timestamp;
use crate::{t, Error};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// 新增: new instances and volumes.
    New,
    /// 变更: resize, more volumes, a longer lease.
    Change,
    /// 释放: give resources back before their lease ends.
    Release,
}

impl RequestKind {
    pub const ALL: [RequestKind; 3] = [RequestKind::New, RequestKind::Change, RequestKind::Release];
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::New => "new",
            RequestKind::Change => "change",
            RequestKind::Release => "release",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a request is. `draft → pending → delivering → delivered → accepted`; a reviewer
/// may send it back (`returned`, editable, submitted again) or end it (`rejected`); the
/// requester may withdraw it before delivery; a delivery that fails is rolled back
/// (`failed`); the requester may report a problem with a delivery (`problem`), which the
/// provider's operator delivers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Draft,
    Pending,
    Returned,
    Rejected,
    Withdrawn,
    Delivering,
    Delivered,
    Problem,
    Accepted,
    Failed,
}

impl RequestState {
    pub const ALL: [RequestState; 10] = [
        RequestState::Draft,
        RequestState::Pending,
        RequestState::Returned,
        RequestState::Rejected,
        RequestState::Withdrawn,
        RequestState::Delivering,
        RequestState::Delivered,
        RequestState::Problem,
        RequestState::Accepted,
        RequestState::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Draft => "draft",
            RequestState::Pending => "pending",
            RequestState::Returned => "returned",
            RequestState::Rejected => "rejected",
            RequestState::Withdrawn => "withdrawn",
            RequestState::Delivering => "delivering",
            RequestState::Delivered => "delivered",
            RequestState::Problem => "problem",
            RequestState::Accepted => "accepted",
            RequestState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    pub fn zh(self) -> &'static str {
        match self {
            RequestState::Draft => "草稿",
            RequestState::Pending => "审批中",
            RequestState::Returned => "已退回",
            RequestState::Rejected => "已驳回",
            RequestState::Withdrawn => "已撤回",
            RequestState::Delivering => "交付中",
            RequestState::Delivered => "待验收",
            RequestState::Problem => "验收有问题",
            RequestState::Accepted => "已验收",
            RequestState::Failed => "交付失败",
        }
    }
    /// The requester may still edit it.
    pub fn editable(self) -> bool {
        matches!(self, RequestState::Draft | RequestState::Returned)
    }
}

/// One line of a request. New requests carry `instances` and `volume` items; change
/// requests `resize`, `volume` (for a project that exists) and `extend_lease`; release
/// requests `release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestItem {
    /// `count` × flavor + image + system disk.
    Instances {
        name: String,
        /// Flavor name or id (e.g. `2C4G`).
        flavor: String,
        /// Image name or id.
        image: String,
        count: u32,
        /// System disk; the image's minimum when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disk_gib: Option<u64>,
    },
    /// A data volume (云硬盘) in the project.
    Volume { name: String, size_gib: u64 },
    /// A new flavor for an instance of the project (applied while it is stopped).
    Resize {
        instance_id: InstanceId,
        flavor: String,
    },
    /// A new lease end for an instance of the project.
    ExtendLease {
        instance_id: InstanceId,
        lease_end: Timestamp,
    },
    /// Give an instance back before its lease ends (it goes to the recycle bin).
    Release { instance_id: InstanceId },
}

impl RequestItem {
    pub fn type_str(&self) -> &'static str {
        match self {
            RequestItem::Instances { .. } => "instances",
            RequestItem::Volume { .. } => "volume",
            RequestItem::Resize { .. } => "resize",
            RequestItem::ExtendLease { .. } => "extend_lease",
            RequestItem::Release { .. } => "release",
        }
    }
    /// Whether this kind of request may carry this item.
    pub fn fits(&self, kind: RequestKind) -> bool {
        matches!(
            (kind, self),
            (
                RequestKind::New,
                RequestItem::Instances { .. } | RequestItem::Volume { .. }
            ) | (
                RequestKind::Change,
                RequestItem::Resize { .. }
                    | RequestItem::Volume { .. }
                    | RequestItem::ExtendLease { .. }
            ) | (RequestKind::Release, RequestItem::Release { .. })
        )
    }
}

/// At most this many items per request (a business system's whole estate fits).
pub const MAX_ITEMS: usize = 50;
/// At most this many approval steps.
pub const MAX_STEPS: usize = 5;

/// The scope an approval step's role is held at, relative to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepScope {
    /// The requesting department (e.g. its dept_admin, the bureau's leader).
    Department,
    /// Platform-wide (supervisor, finance).
    Platform,
}

/// One review in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainStep {
    /// Shown on the timeline (e.g. 部门审核, 大数据局审批, 财政审核).
    pub name: String,
    pub role: Role,
    pub scope: StepScope,
    /// Hours the step may take before its reviewers are reminded (and the request shows
    /// it overdue).
    pub deadline_hours: u32,
    /// The step applies only when the request asks for more than this many vCPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_vcpus: Option<u32>,
    /// The step applies only when the request's estimated monthly cost is above this, in
    /// fen (applies to every request while no price list exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_monthly_fen: Option<i64>,
}

/// How one department's requests of one kind are reviewed. A department without its own
/// chain uses the platform's default for that kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApprovalChain {
    pub id: ApprovalChainId,
    /// `None`: the platform's default.
    pub department_id: Option<DepartmentId>,
    pub kind: RequestKind,
    pub steps: Vec<ChainStep>,
    /// Requests at or below this many vCPUs (and no volumes above `auto_max_volume_gib`)
    /// are approved at submit without review. `None`: never.
    pub auto_max_vcpus: Option<u32>,
    pub auto_max_volume_gib: Option<u64>,
    pub updated_at: Timestamp,
    pub generation: i64,
}

/// What a request asks for in total, for choosing steps and checking quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RequestTotals {
    pub instances: i64,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    pub volumes: i64,
    pub volume_gib: i64,
}

/// The default chain: the department's admin reviews, the supervisor (the big-data
/// bureau) approves and may choose the provider and zone.
pub fn default_steps() -> Vec<ChainStep> {
    vec![
        ChainStep {
            name: "部门审核".into(),
            role: Role::DeptAdmin,
            scope: StepScope::Department,
            deadline_hours: 24,
            min_vcpus: None,
            min_monthly_fen: None,
        },
        ChainStep {
            name: "大数据局审批".into(),
            role: Role::Supervisor,
            scope: StepScope::Platform,
            deadline_hours: 48,
            min_vcpus: None,
            min_monthly_fen: None,
        },
    ]
}

impl ApprovalChain {
    /// The steps this request goes through, in order: conditional steps drop out below
    /// their threshold. Empty when the request is approved without review.
    pub fn steps_for(&self, totals: &RequestTotals, monthly_fen: Option<i64>) -> Vec<ChainStep> {
        if self.auto_approves(totals) {
            return Vec::new();
        }
        self.steps
            .iter()
            .filter(|s| s.min_vcpus.is_none_or(|m| totals.vcpus > m as i64))
            .filter(|s| {
                s.min_monthly_fen
                    .is_none_or(|m| monthly_fen.is_none_or(|c| c > m))
            })
            .cloned()
            .collect()
    }

    fn auto_approves(&self, totals: &RequestTotals) -> bool {
        let Some(max) = self.auto_max_vcpus else {
            return false;
        };
        totals.vcpus <= max as i64
            && self
                .auto_max_volume_gib
                .is_none_or(|g| totals.volume_gib <= g as i64)
    }
}

/// Checks a chain's steps as an administrator sets them.
pub fn validate_steps(steps: &[ChainStep]) -> Result<(), Error> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(Error::validation(
            "steps",
            t!("审批流程须有 1 到 {} 个步骤" ; "an approval chain has 1 to {} steps", MAX_STEPS),
        ));
    }
    for (i, s) in steps.iter().enumerate() {
        crate::validate::name(&format!("steps[{i}].name"), &s.name)?;
        let fits = match s.scope {
            StepScope::Department => s.role == Role::DeptAdmin,
            StepScope::Platform => matches!(s.role, Role::Supervisor | Role::Finance),
        };
        if !fits {
            return Err(Error::validation(
                &format!("steps[{i}].role"),
                t!(
                    "审批人须为：本部门的部门管理员，或平台的监管、财政角色",
                    "a reviewer is the department's dept_admin, or the platform's supervisor or finance"
                ),
            ));
        }
        if !(1..=24 * 30).contains(&s.deadline_hours) {
            return Err(Error::validation(
                &format!("steps[{i}].deadline_hours"),
                t!(
                    "时限须在 1 到 720 小时之间",
                    "the deadline is 1 to 720 hours"
                ),
            ));
        }
        if s.min_monthly_fen.is_some_and(|m| m < 0) {
            return Err(Error::validation(
                &format!("steps[{i}].min_monthly_fen"),
                t!("金额不能为负", "the amount cannot be negative"),
            ));
        }
    }
    Ok(())
}

/// A request as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResourceRequest {
    pub id: ResourceRequestId,
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    pub kind: RequestKind,
    pub title: String,
    /// 用途: what the business system needs the resources for.
    pub purpose: String,
    /// 等保级别 of the business system (1–4), when known.
    pub mlps_level: Option<u8>,
    /// 使用期限: when the delivered resources are due back.
    pub lease_end: Option<Timestamp>,
    pub items: Vec<RequestItem>,
    pub state: RequestState,
    /// The chain fixed at submit (configuration changes later do not move it).
    pub steps: Vec<ChainStep>,
    /// Index into `steps` of the review under way (while `pending`).
    pub current_step: u32,
    /// When the current review step is due.
    pub step_due: Option<Timestamp>,
    /// Provider and zone chosen by the supervisor at approval (or by the requester).
    pub provider_id: Option<ProviderId>,
    pub zone_id: Option<ZoneId>,
    /// Estimated monthly cost in fen, once the provider has a price list.
    pub estimated_monthly_fen: Option<i64>,
    pub totals: RequestTotals,
    pub requester_id: UserId,
    pub requester_name: String,
    /// What was delivered (instances, volumes) — or, after a failure, what was rolled back.
    pub delivered: Vec<DeliveredResource>,
    /// Why a delivery failed or what the requester reported.
    pub note: Option<String>,
    /// When the provider must have delivered (set at final approval).
    pub delivery_due: Option<Timestamp>,
    pub submitted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub generation: i64,
}

/// A resource a request produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveredResource {
    /// `instance` or `volume`.
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// One entry of a request's timeline: who did what when, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestEvent {
    pub at: Timestamp,
    /// submit, approve, reject, return, withdraw, auto_approve, deliver, delivered,
    /// failed, accept, problem, remind, copy, edit.
    pub action: String,
    pub actor_id: Option<UserId>,
    pub actor_name: Option<String>,
    /// The step's name, for review decisions.
    pub step: Option<String>,
    pub reason: Option<String>,
}

/// Checks the free-text fields and the items' own shape (flavors and images are resolved
/// by the server).
pub fn validate_request(
    kind: RequestKind,
    title: &str,
    purpose: &str,
    mlps_level: Option<u8>,
    items: &[RequestItem],
) -> Result<(), Error> {
    crate::validate::name("title", title)?;
    if purpose.trim().is_empty() || purpose.chars().count() > 500 {
        return Err(Error::validation(
            "purpose",
            t!(
                "请填写用途（500 字以内）",
                "state the purpose (at most 500 characters)"
            ),
        ));
    }
    if mlps_level.is_some_and(|l| !(1..=4).contains(&l)) {
        return Err(Error::validation(
            "mlps_level",
            t!("等保级别须为 1 到 4", "the MLPS level is 1 to 4"),
        ));
    }
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(Error::validation(
            "items",
            t!("申请须有 1 到 {} 项" ; "a request has 1 to {} items", MAX_ITEMS),
        ));
    }
    for (i, it) in items.iter().enumerate() {
        if !it.fits(kind) {
            return Err(Error::validation(
                &format!("items[{i}].type"),
                t!("{} 类申请不能包含 {} 项" ; "a {} request cannot contain a {} item", kind.as_str(), it.type_str()),
            ));
        }
        match it {
            RequestItem::Instances { name, count, .. } => {
                crate::validate::batch_name(
                    &format!("items[{i}].name"),
                    name,
                    if *count > 1 { 4 } else { 0 },
                )?;
                if !(1..=500).contains(count) {
                    return Err(Error::validation(
                        &format!("items[{i}].count"),
                        t!("每项 1 到 500 台", "1 to 500 instances per item"),
                    ));
                }
            }
            RequestItem::Volume { name, size_gib } => {
                crate::validate::name(&format!("items[{i}].name"), name)?;
                if !(1..=65536).contains(size_gib) {
                    return Err(Error::validation(
                        &format!("items[{i}].size_gib"),
                        t!(
                            "云硬盘大小须在 1 到 65536 GiB 之间",
                            "a volume is 1 to 65536 GiB"
                        ),
                    ));
                }
            }
            RequestItem::ExtendLease { lease_end, .. } => {
                if *lease_end <= Timestamp::now() {
                    return Err(Error::validation(
                        &format!("items[{i}].lease_end"),
                        t!(
                            "新的使用期限须晚于现在",
                            "the new lease end must be in the future"
                        ),
                    ));
                }
            }
            RequestItem::Resize { .. } | RequestItem::Release { .. } => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(steps: Vec<ChainStep>, auto: Option<u32>) -> ApprovalChain {
        ApprovalChain {
            id: ApprovalChainId::new(),
            department_id: None,
            kind: RequestKind::New,
            steps,
            auto_max_vcpus: auto,
            auto_max_volume_gib: None,
            updated_at: Timestamp(0),
            generation: 1,
        }
    }

    fn totals(vcpus: i64) -> RequestTotals {
        RequestTotals {
            vcpus,
            ..Default::default()
        }
    }

    #[test]
    fn a_finance_step_joins_only_above_its_threshold() {
        let mut steps = default_steps();
        steps.push(ChainStep {
            name: "财政审核".into(),
            role: Role::Finance,
            scope: StepScope::Platform,
            deadline_hours: 24,
            min_vcpus: Some(32),
            min_monthly_fen: None,
        });
        let c = chain(steps, None);
        assert_eq!(c.steps_for(&totals(32), None).len(), 2);
        let big = c.steps_for(&totals(33), None);
        assert_eq!(big.len(), 3);
        assert_eq!(big[2].role, Role::Finance);
    }

    #[test]
    fn a_cost_threshold_applies_while_no_price_is_known() {
        let mut steps = default_steps();
        steps[1].min_monthly_fen = Some(100_000);
        let c = chain(steps, None);
        assert_eq!(
            c.steps_for(&totals(2), None).len(),
            2,
            "unknown cost: review"
        );
        assert_eq!(c.steps_for(&totals(2), Some(99_999)).len(), 1);
        assert_eq!(c.steps_for(&totals(2), Some(100_001)).len(), 2);
    }

    #[test]
    fn small_requests_of_chosen_departments_are_approved_without_review() {
        let c = chain(default_steps(), Some(4));
        assert!(c.steps_for(&totals(4), None).is_empty());
        assert_eq!(c.steps_for(&totals(5), None).len(), 2);
        let mut with_volumes = c.clone();
        with_volumes.auto_max_volume_gib = Some(100);
        let t = RequestTotals {
            vcpus: 2,
            volume_gib: 500,
            ..Default::default()
        };
        assert_eq!(with_volumes.steps_for(&t, None).len(), 2);
    }

    #[test]
    fn chains_are_bounded_and_reviewers_fit_their_scope() {
        assert!(validate_steps(&[]).is_err());
        assert!(validate_steps(&default_steps()).is_ok());
        let six: Vec<ChainStep> = (0..6).map(|_| default_steps()[0].clone()).collect();
        assert!(validate_steps(&six).is_err());
        let mut wrong = default_steps();
        wrong[0].role = Role::Supervisor; // a supervisor is not held at a department
        assert!(validate_steps(&wrong).is_err());
        let mut member = default_steps();
        member[0].role = Role::DeptMember;
        assert!(validate_steps(&member).is_err());
    }

    #[test]
    fn items_must_fit_the_kind_of_request() {
        let release = RequestItem::Release {
            instance_id: InstanceId::new(),
        };
        assert!(validate_request(
            RequestKind::New,
            "t",
            "p",
            None,
            std::slice::from_ref(&release)
        )
        .is_err());
        assert!(validate_request(RequestKind::Release, "t", "p", None, &[release]).is_ok());
        let inst = RequestItem::Instances {
            name: "web".into(),
            flavor: "2C4G".into(),
            image: "x".into(),
            count: 0,
            disk_gib: None,
        };
        assert!(validate_request(RequestKind::New, "t", "p", None, &[inst]).is_err());
        assert!(validate_request(RequestKind::New, "t", " ", None, &[]).is_err());
        assert!(validate_request(RequestKind::New, "t", "p", Some(5), &[]).is_err());
    }

    #[test]
    fn items_round_trip_as_tagged_json() {
        let it = RequestItem::Volume {
            name: "data".into(),
            size_gib: 100,
        };
        let j = serde_json::to_value(&it).expect("json");
        assert_eq!(j["type"], "volume");
        let back: RequestItem = serde_json::from_value(j).expect("back");
        assert_eq!(back, it);
        let bad = serde_json::json!({"type": "volume", "name": "x", "size_gib": 1, "extra": 1});
        assert!(serde_json::from_value::<RequestItem>(bad).is_err());
    }
}
