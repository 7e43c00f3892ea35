//! Demo data for operations: tickets of the first departments in every state (one past
//! its response deadline, which the `ticket_timers` task escalates at start), the
//! platform admin's daily inspection plan and the auditor's audit-chain plan. Written in
//! the demo loader's transaction.

use zy_model::id::{DepartmentId, ProviderId};
use zy_model::operations::*;
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::operations as store;
use zy_store::Tx;

const MIN: i64 = 60_000_000;

pub async fn load(
    tx: &mut Tx,
    departments: &[DepartmentId],
    providers: &[ProviderId],
) -> Result<(), Error> {
    let (Some(d), Some(p)) = (departments.first(), providers.first()) else {
        return Ok(());
    };
    let cfg = TicketSettings::default();
    let now = Timestamp::now().0;
    // (title, kind, priority, state, opened minutes ago, rating)
    let rows = [
        (
            "门户网站访问缓慢",
            TicketKind::Fault,
            TicketPriority::L2,
            TicketState::Open,
            10,
            None,
        ),
        (
            "数据库主机无法登录",
            TicketKind::Fault,
            TicketPriority::L1,
            TicketState::Open,
            40,
            None,
        ),
        (
            "申请开通对象存储",
            TicketKind::ServiceRequest,
            TicketPriority::L3,
            TicketState::Accepted,
            180,
            None,
        ),
        (
            "调整安全组放通 443 端口",
            TicketKind::Change,
            TicketPriority::L4,
            TicketState::Resolved,
            600,
            None,
        ),
        (
            "如何扩容数据盘",
            TicketKind::Consultation,
            TicketPriority::L4,
            TicketState::Closed,
            5 * 24 * 60,
            Some(5),
        ),
    ];
    for (title, kind, priority, state, ago, rating) in rows {
        let opened = now - ago * MIN;
        let dl = cfg.of(priority);
        let responded = (state != TicketState::Open).then_some(Timestamp(opened + 5 * MIN));
        let resolved = matches!(state, TicketState::Resolved | TicketState::Closed)
            .then_some(Timestamp(opened + 90 * MIN));
        let t = Ticket {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            priority,
            state,
            title: title.to_string(),
            description: "演示工单 / demo ticket".to_string(),
            department_id: Some(d.to_string()),
            provider_id: Some(p.to_string()),
            subject_kind: None,
            subject_id: None,
            source: "user".to_string(),
            source_key: None,
            opened_by: "wjw.user".to_string(),
            opened_at: Timestamp(opened),
            respond_by: Timestamp(opened + dl.response_mins * MIN),
            resolve_by: Timestamp(opened + dl.resolution_mins * MIN),
            responded_at: responded,
            resolved_at: resolved,
            closed_at: (state == TicketState::Closed).then_some(Timestamp(opened + 120 * MIN)),
            assignee: responded.map(|_| "inspur.ops".to_string()),
            escalation: 0,
            response_missed: false,
            resolution_missed: false,
            rating,
            generation: 1,
        };
        store::insert_ticket(tx, &t).await?;
        let mut steps = vec![(opened, "wjw.user", "open")];
        if let Some(r) = responded {
            steps.push((r.0, "inspur.ops", "accept"));
        }
        if let Some(r) = resolved {
            steps.push((r.0, "inspur.ops", "resolve"));
        }
        if let Some(c) = t.closed_at {
            steps.push((c.0, "wjw.user", "close"));
        }
        for (at, actor, action) in steps {
            store::add_event(
                tx,
                &TicketEvent {
                    id: uuid::Uuid::now_v7().to_string(),
                    ticket_id: t.id.clone(),
                    at: Timestamp(at),
                    actor: actor.to_string(),
                    action: action.to_string(),
                    note: String::new(),
                },
            )
            .await?;
        }
    }
    for (name, checks, hour, owner, by) in [
        (
            "每日运维巡检",
            vec![
                CheckKind::HostHealth,
                CheckKind::Capacity,
                CheckKind::CertExpiry,
                CheckKind::AdminCheck,
            ],
            2,
            "platform",
            "admin",
        ),
        (
            "审计链每日校验",
            vec![CheckKind::AuditChain],
            3,
            "auditor",
            "auditor",
        ),
    ] {
        store::insert_plan(
            tx,
            &InspectionPlan {
                id: uuid::Uuid::now_v7().to_string(),
                name: name.to_string(),
                checks,
                hour,
                owner: owner.to_string(),
                enabled: true,
                last_day: None,
                created_by: by.to_string(),
                created_at: Timestamp(now),
            },
        )
        .await?;
    }
    Ok(())
}
