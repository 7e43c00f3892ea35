//! Notifications (C5): what can happen (`NoticeKind`), the zh-CN and English templates of
//! each kind, and rendering a notice from its parameters. Pure, so the templates are tested
//! on their own: a missing or odd parameter renders as "—", never a panic.
//!
//! Parameters per kind (strings unless noted; amounts `*_fen` are integer fen and render as
//! yuan with two decimals; anything else renders as its JSON text):
//!
//! | kind | params |
//! |---|---|
//! | `approval_needed` | request, title, department, step, deadline |
//! | `approval_reminder` | request, title, step, deadline |
//! | `request_approved` | request, title, approver |
//! | `request_rejected` | request, title, approver, reason |
//! | `request_returned` | request, title, approver, reason |
//! | `delivery_needed` | request, title, department, provider |
//! | `request_delivered` | request, title, resources |
//! | `delivery_failed` | request, title, reason |
//! | `lease_ending` | resource, name, days (number), expires_at |
//! | `lease_expired` | resource, name |
//! | `released` | resource, name, purge_at |
//! | `restored` | resource, name |
//! | `purged` | resource, name |
//! | `budget_threshold` | department, budget, percent (number), spent_fen, limit_fen |
//! | `alert_firing` | rule, target, value |
//! | `alert_resolved` | rule, target |
//! | `security_alert` | rule, department, events (number), minutes (number), severity |
//! | `vulnerability_overdue` | title, address, department, severity, deadline |
//! | `provider_drift` | provider, count (number), items |
//! | `report_ready` | title, month |

use crate::text::Lang;
use serde::{Deserialize, Serialize};

/// What happened; each kind has a zh-CN and an English template (subject and body).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// 待审批: a request waits for the recipient's approval.
    ApprovalNeeded,
    /// 审批催办: an approval is still waiting.
    ApprovalReminder,
    RequestApproved,
    RequestRejected,
    /// 退回修改: the request was sent back to its author.
    RequestReturned,
    /// 待交付: an approved request waits for the provider to deliver it.
    DeliveryNeeded,
    RequestDelivered,
    DeliveryFailed,
    /// 租期将到: a resource's lease ends in a few days.
    LeaseEnding,
    LeaseExpired,
    /// 已放入回收站.
    Released,
    /// 已从回收站恢复.
    Restored,
    /// 已彻底删除.
    Purged,
    /// 预算预警.
    BudgetThreshold,
    /// 告警触发.
    AlertFiring,
    /// 告警恢复.
    AlertResolved,
    /// 安全告警: an alert rule on security events fired.
    SecurityAlert,
    /// 漏洞整改超期: a vulnerability finding passed its repair deadline.
    VulnerabilityOverdue,
    /// 云服务商资源差异: servers appeared, changed or disappeared in a provider cloud
    /// without going through zhengyun.
    ProviderDrift,
    /// 新工单: a ticket waits for the provider's operators.
    TicketOpened,
    /// 工单超时升级: a ticket missed its response or resolution deadline.
    TicketEscalated,
    /// 运维报告: a monthly operations report is ready.
    ReportReady,
}

/// Placeholder for a parameter that is missing, null or empty.
pub const MISSING: &str = "—";

/// Longest rendering of one parameter (characters); longer values are cut with "…".
const PARAM_MAX_CHARS: usize = 200;

struct Template {
    zh_subject: &'static str,
    zh_body: &'static str,
    en_subject: &'static str,
    en_body: &'static str,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 22] = [
        NoticeKind::ApprovalNeeded,
        NoticeKind::ApprovalReminder,
        NoticeKind::RequestApproved,
        NoticeKind::RequestRejected,
        NoticeKind::RequestReturned,
        NoticeKind::DeliveryNeeded,
        NoticeKind::RequestDelivered,
        NoticeKind::DeliveryFailed,
        NoticeKind::LeaseEnding,
        NoticeKind::LeaseExpired,
        NoticeKind::Released,
        NoticeKind::Restored,
        NoticeKind::Purged,
        NoticeKind::BudgetThreshold,
        NoticeKind::AlertFiring,
        NoticeKind::AlertResolved,
        NoticeKind::SecurityAlert,
        NoticeKind::VulnerabilityOverdue,
        NoticeKind::ProviderDrift,
        NoticeKind::TicketOpened,
        NoticeKind::TicketEscalated,
        NoticeKind::ReportReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::ApprovalNeeded => "approval_needed",
            NoticeKind::ApprovalReminder => "approval_reminder",
            NoticeKind::RequestApproved => "request_approved",
            NoticeKind::RequestRejected => "request_rejected",
            NoticeKind::RequestReturned => "request_returned",
            NoticeKind::DeliveryNeeded => "delivery_needed",
            NoticeKind::RequestDelivered => "request_delivered",
            NoticeKind::DeliveryFailed => "delivery_failed",
            NoticeKind::LeaseEnding => "lease_ending",
            NoticeKind::LeaseExpired => "lease_expired",
            NoticeKind::Released => "released",
            NoticeKind::Restored => "restored",
            NoticeKind::Purged => "purged",
            NoticeKind::BudgetThreshold => "budget_threshold",
            NoticeKind::AlertFiring => "alert_firing",
            NoticeKind::AlertResolved => "alert_resolved",
            NoticeKind::SecurityAlert => "security_alert",
            NoticeKind::VulnerabilityOverdue => "vulnerability_overdue",
            NoticeKind::ProviderDrift => "provider_drift",
            NoticeKind::TicketOpened => "ticket_opened",
            NoticeKind::TicketEscalated => "ticket_escalated",
            NoticeKind::ReportReady => "report_ready",
        }
    }

    pub fn parse(s: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn template(self) -> Template {
        let (zh_subject, zh_body, en_subject, en_body) = match self {
            NoticeKind::ApprovalNeeded => (
                "待审批：{title}",
                "{department}的资源申请「{title}」（{request}）等待您在“{step}”环节审批，请于 {deadline} 前处理。",
                "Approval needed: {title}",
                "The resource request \"{title}\" ({request}) of {department} waits for your approval at step \"{step}\"; please decide before {deadline}.",
            ),
            NoticeKind::ApprovalReminder => (
                "审批催办：{title}",
                "资源申请「{title}」（{request}）仍在“{step}”环节等待您审批，截止时间 {deadline}。",
                "Reminder: {title} still waits for you",
                "The resource request \"{title}\" ({request}) still waits for your approval at step \"{step}\"; the deadline is {deadline}.",
            ),
            NoticeKind::RequestApproved => (
                "申请已通过：{title}",
                "您的资源申请「{title}」（{request}）已由 {approver} 审批通过，等待交付。",
                "Request approved: {title}",
                "Your resource request \"{title}\" ({request}) was approved by {approver} and waits for delivery.",
            ),
            NoticeKind::RequestRejected => (
                "申请未通过：{title}",
                "您的资源申请「{title}」（{request}）被 {approver} 驳回。理由：{reason}",
                "Request rejected: {title}",
                "Your resource request \"{title}\" ({request}) was rejected by {approver}. Reason: {reason}",
            ),
            NoticeKind::RequestReturned => (
                "申请被退回修改：{title}",
                "您的资源申请「{title}」（{request}）被 {approver} 退回修改。意见：{reason}",
                "Request returned for changes: {title}",
                "Your resource request \"{title}\" ({request}) was returned for changes by {approver}. Comment: {reason}",
            ),
            NoticeKind::DeliveryNeeded => (
                "待交付：{title}",
                "{department}的资源申请「{title}」（{request}）已批准，请 {provider} 交付资源。",
                "Delivery needed: {title}",
                "The resource request \"{title}\" ({request}) of {department} was approved; {provider} is asked to deliver it.",
            ),
            NoticeKind::RequestDelivered => (
                "资源已交付：{title}",
                "您的资源申请「{title}」（{request}）已交付：{resources}。",
                "Resources delivered: {title}",
                "Your resource request \"{title}\" ({request}) was delivered: {resources}.",
            ),
            NoticeKind::DeliveryFailed => (
                "交付失败：{title}",
                "资源申请「{title}」（{request}）交付失败：{reason}",
                "Delivery failed: {title}",
                "The delivery of the resource request \"{title}\" ({request}) failed: {reason}",
            ),
            NoticeKind::LeaseEnding => (
                "租期将到：{name}",
                "{resource}「{name}」的租期还剩 {days} 天，将于 {expires_at} 到期。如需继续使用，请申请续期。",
                "Lease ending: {name}",
                "The lease of {resource} \"{name}\" ends in {days} day(s), at {expires_at}. Ask for a renewal to keep using it.",
            ),
            NoticeKind::LeaseExpired => (
                "租期已到：{name}",
                "{resource}「{name}」的租期已到，已停止并放入回收站。",
                "Lease expired: {name}",
                "The lease of {resource} \"{name}\" has expired; it was stopped and moved to the recycle bin.",
            ),
            NoticeKind::Released => (
                "已放入回收站：{name}",
                "{resource}「{name}」已放入回收站，将于 {purge_at} 彻底删除，此前可以恢复。",
                "Moved to the recycle bin: {name}",
                "{resource} \"{name}\" was moved to the recycle bin and will be deleted for good at {purge_at}; it can be restored until then.",
            ),
            NoticeKind::Restored => (
                "已恢复：{name}",
                "{resource}「{name}」已从回收站恢复。",
                "Restored: {name}",
                "{resource} \"{name}\" was restored from the recycle bin.",
            ),
            NoticeKind::Purged => (
                "已彻底删除：{name}",
                "{resource}「{name}」已从回收站彻底删除，无法再恢复。",
                "Deleted for good: {name}",
                "{resource} \"{name}\" was deleted from the recycle bin for good; it cannot be restored.",
            ),
            NoticeKind::BudgetThreshold => (
                "预算预警：{department}",
                "{department}的预算「{budget}」已使用 {percent}%（{spent_fen} 元 / {limit_fen} 元）。",
                "Budget alert: {department}",
                "{department} has used {percent}% of the budget \"{budget}\" ({spent_fen} / {limit_fen} yuan).",
            ),
            NoticeKind::AlertFiring => (
                "告警：{rule}（{target}）",
                "告警规则「{rule}」对 {target} 触发，当前值 {value}。",
                "Alert: {rule} ({target})",
                "The alert rule \"{rule}\" fired for {target}; the value is {value}.",
            ),
            NoticeKind::AlertResolved => (
                "告警恢复：{rule}（{target}）",
                "告警规则「{rule}」对 {target} 的告警已恢复。",
                "Resolved: {rule} ({target})",
                "The alert of rule \"{rule}\" for {target} is resolved.",
            ),
            NoticeKind::SecurityAlert => (
                "安全告警：{rule}",
                "告警规则「{rule}」已触发：{department}在 {minutes} 分钟内发生 {events} 起{severity}及以上级别的安全事件，请及时处置。",
                "Security alert: {rule}",
                "The alert rule \"{rule}\" fired: {events} security events of severity {severity} or worse for {department} within {minutes} minutes; please look into them.",
            ),
            NoticeKind::VulnerabilityOverdue => (
                "漏洞整改超期：{title}",
                "{department}的漏洞「{title}」（{address}，{severity}）已超过整改期限 {deadline}，请尽快修复并申请复扫。",
                "Vulnerability overdue: {title}",
                "The vulnerability \"{title}\" ({address}, {severity}) of {department} is past its repair deadline {deadline}; fix it and ask for a re-scan.",
            ),
            NoticeKind::ProviderDrift => (
                "云服务商资源差异：{provider}",
                "云服务商「{provider}」中有 {count} 项资源未经 zhengyun 出现、变化或消失：{items}。请在该云服务商的资源差异页面纳管或忽略。",
                "Provider drift: {provider}",
                "{count} resources appeared, changed or disappeared in the provider cloud \"{provider}\" without going through zhengyun: {items}. Adopt or dismiss them on the provider's drift page.",
            ),
            NoticeKind::TicketOpened => (
                "新工单：{title}",
                "有一张{priority}级工单「{title}」等待处理，请在 {respond_by} 前响应。",
                "New ticket: {title}",
                "A priority {priority} ticket \"{title}\" is waiting; please respond by {respond_by}.",
            ),
            NoticeKind::TicketEscalated => (
                "工单超时升级：{title}",
                "工单「{title}」已超过{deadline}时限（{due}），已升级至第 {level} 级，请立即处理。",
                "Ticket escalated: {title}",
                "The ticket \"{title}\" missed its {deadline} deadline ({due}) and is escalated to level {level}; please handle it now.",
            ),
            NoticeKind::ReportReady => (
                "运维报告已生成：{title}",
                "{month} 的运维报告「{title}」已生成，可在监管 › 运维报告中下载 PDF 和 Excel 文件。",
                "Operations report ready: {title}",
                "The operations report \"{title}\" for {month} is ready; download the PDF and Excel files under Supervision › Reports.",
            ),
        };
        Template {
            zh_subject,
            zh_body,
            en_subject,
            en_body,
        }
    }

    /// The parameter names this kind's templates use.
    pub fn params(self) -> Vec<&'static str> {
        let t = self.template();
        let mut names = Vec::new();
        for s in [t.zh_subject, t.zh_body, t.en_subject, t.en_body] {
            for name in placeholders(s) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The kind's name for people, as in the preferences page.
    pub fn label(self, lang: Lang) -> &'static str {
        let (zh, en) = match self {
            NoticeKind::ApprovalNeeded => ("待审批", "Approval needed"),
            NoticeKind::ApprovalReminder => ("审批催办", "Approval reminder"),
            NoticeKind::RequestApproved => ("申请已通过", "Request approved"),
            NoticeKind::RequestRejected => ("申请未通过", "Request rejected"),
            NoticeKind::RequestReturned => ("申请被退回", "Request returned"),
            NoticeKind::DeliveryNeeded => ("待交付", "Delivery needed"),
            NoticeKind::RequestDelivered => ("资源已交付", "Resources delivered"),
            NoticeKind::DeliveryFailed => ("交付失败", "Delivery failed"),
            NoticeKind::LeaseEnding => ("租期将到", "Lease ending"),
            NoticeKind::LeaseExpired => ("租期已到", "Lease expired"),
            NoticeKind::Released => ("放入回收站", "Moved to the recycle bin"),
            NoticeKind::Restored => ("从回收站恢复", "Restored"),
            NoticeKind::Purged => ("彻底删除", "Deleted for good"),
            NoticeKind::BudgetThreshold => ("预算预警", "Budget alert"),
            NoticeKind::AlertFiring => ("告警触发", "Alert firing"),
            NoticeKind::AlertResolved => ("告警恢复", "Alert resolved"),
            NoticeKind::SecurityAlert => ("安全告警", "Security alert"),
            NoticeKind::VulnerabilityOverdue => ("漏洞整改超期", "Vulnerability overdue"),
            NoticeKind::ProviderDrift => ("云服务商资源差异", "Provider drift"),
            NoticeKind::TicketOpened => ("新工单", "New ticket"),
            NoticeKind::TicketEscalated => ("工单超时升级", "Ticket escalated"),
            NoticeKind::ReportReady => ("运维报告", "Operations report"),
        };
        match lang {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notice rendered in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Renders `kind` with `params` (a JSON object; anything else counts as no parameters).
pub fn render(kind: NoticeKind, params: &serde_json::Value, lang: Lang) -> Rendered {
    let t = kind.template();
    let (subject, body) = match lang {
        Lang::Zh => (t.zh_subject, t.zh_body),
        Lang::En => (t.en_subject, t.en_body),
    };
    Rendered {
        // A subject is one line whatever a parameter holds.
        subject: fill(subject, params)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        body: fill(body, params),
    }
}

/// The names between braces in a template.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
}

/// Replaces each `{name}` with the parameter's text; the template's own text is never
/// re-scanned, so a parameter holding `{other}` stays as it is.
fn fill(template: &str, params: &serde_json::Value) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                out.push_str(&param_text(params, name));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn param_text(params: &serde_json::Value, name: &str) -> String {
    use serde_json::Value;
    let text = match params.get(name) {
        None | Some(Value::Null) => return MISSING.to_string(),
        Some(Value::String(s)) if s.trim().is_empty() => return MISSING.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if name.ends_with("_fen") => match n.as_i64() {
            Some(fen) => yuan(fen),
            None => n.to_string(),
        },
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    };
    clip(&text)
}

/// Integer fen as yuan with two decimals: 123456 → "1234.56", -5 → "-0.05".
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn clip(s: &str) -> String {
    if s.chars().count() <= PARAM_MAX_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(PARAM_MAX_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn kind_names_round_trip_and_match_serde() {
        for k in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(json!(k.as_str())),
                "{k:?}"
            );
        }
        assert_eq!(NoticeKind::parse("approval"), None);
    }

    #[test]
    fn every_kind_renders_every_placeholder_in_both_languages() {
        for k in NoticeKind::ALL {
            let params: serde_json::Map<String, serde_json::Value> = k
                .params()
                .into_iter()
                .map(|p| (p.to_string(), json!(format!("<{p}>"))))
                .collect();
            let params = serde_json::Value::Object(params);
            for lang in [Lang::Zh, Lang::En] {
                let r = render(k, &params, lang);
                for p in k.params() {
                    let shown = format!("<{p}>");
                    assert!(
                        r.subject.contains(&shown) || r.body.contains(&shown),
                        "{k:?} {lang:?} does not show {p}"
                    );
                }
                assert!(!r.body.contains('{'), "{k:?} {lang:?}: {}", r.body);
            }
            // Both languages use the same parameters.
            let t = k.template();
            let mut zh: Vec<&str> = placeholders(t.zh_subject)
                .chain(placeholders(t.zh_body))
                .collect();
            let mut en: Vec<&str> = placeholders(t.en_subject)
                .chain(placeholders(t.en_body))
                .collect();
            zh.sort_unstable();
            zh.dedup();
            en.sort_unstable();
            en.dedup();
            assert_eq!(zh, en, "{k:?}");
        }
    }

    #[test]
    fn missing_parameters_render_as_a_dash() {
        let r = render(
            NoticeKind::ApprovalNeeded,
            &json!({"title": "  "}),
            Lang::Zh,
        );
        assert_eq!(r.subject, "待审批：—");
        assert!(r.body.contains("（—）"), "{}", r.body);
        let r = render(NoticeKind::Purged, &json!("not an object"), Lang::En);
        assert_eq!(r.subject, "Deleted for good: —");
    }

    #[test]
    fn amounts_in_fen_render_as_yuan() {
        let r = render(
            NoticeKind::BudgetThreshold,
            &json!({"department": "卫健委", "budget": "2026", "percent": 80, "spent_fen": 8_000_050, "limit_fen": 10_000_000}),
            Lang::Zh,
        );
        assert!(
            r.body.contains("80%（80000.50 元 / 100000.00 元）"),
            "{}",
            r.body
        );
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn parameters_are_not_template_text() {
        let r = render(
            NoticeKind::Restored,
            &json!({"resource": "{name}", "name": "a\r\nSubject: x"}),
            Lang::En,
        );
        assert_eq!(r.subject, "Restored: a  Subject: x");
        assert!(
            r.body.starts_with("{name} \"a\r\nSubject: x\""),
            "{}",
            r.body
        );
    }

    proptest! {
        #[test]
        fn rendering_never_panics_and_subjects_are_one_line(
            k in 0usize..NoticeKind::ALL.len(),
            key in "[a-z_]{0,12}",
            value in any::<String>(),
            n in any::<i64>(),
        ) {
            let kind = NoticeKind::ALL[k];
            let params = json!({ key.clone(): value, "days": n, "spent_fen": n, "title": key });
            for lang in [Lang::Zh, Lang::En] {
                let r = render(kind, &params, lang);
                prop_assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
                prop_assert!(r.subject.chars().count() < 400);
            }
        }
    }
}
