//! Who is told what about a request. Each function runs in the transaction of the change
//! that caused it, so a notice exists exactly when its cause commits (`crate::notify`
//! puts it in the inboxes and queues its e-mails and webhook calls).

use crate::notify::{enqueue, holders, Notice, NoticeKind};
use serde_json::{json, Value};
use zy_model::id::UserId;
use zy_model::requests::{ChainStep, RequestState, ResourceRequest, StepScope};
use zy_model::role::{Role, Scope};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::Tx;

fn base(r: &ResourceRequest) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("request".into(), json!(r.id.to_string()));
    m.insert("title".into(), json!(r.title));
    m
}

async fn department_name(tx: &mut Tx, r: &ResourceRequest) -> Result<String, Error> {
    Ok(zy_store::departments::get(&mut **tx, r.department_id)
        .await?
        .map(|d| d.name)
        .unwrap_or_default())
}

async fn send(
    tx: &mut Tx,
    r: &ResourceRequest,
    kind: NoticeKind,
    to: Vec<UserId>,
    params: serde_json::Map<String, Value>,
) -> Result<(), Error> {
    if to.is_empty() {
        return Ok(());
    }
    let n = Notice {
        kind,
        to,
        params: Value::Object(params),
        link: Some(format!("/portal/requests/{}", r.id)),
        subject: Some(r.id.0),
    };
    enqueue(tx, &n).await
}

/// The people who decide `step` of `r` (never its requester).
async fn reviewers(
    tx: &mut Tx,
    r: &ResourceRequest,
    step: &ChainStep,
) -> Result<Vec<UserId>, Error> {
    let scope = match step.scope {
        StepScope::Department => Scope::Department(r.department_id),
        StepScope::Platform => Scope::Platform,
    };
    let mut to = holders(tx, step.role, scope).await?;
    to.retain(|u| *u != r.requester_id);
    Ok(to)
}

fn deadline(step: &ChainStep) -> String {
    Timestamp::now()
        .plus_secs(step.deadline_hours as i64 * 3600)
        .to_rfc3339()
        .chars()
        .take(16)
        .collect::<String>()
        .replace('T', " ")
}

/// The reviewers of `step` have a request to decide.
pub async fn approval_needed(
    tx: &mut Tx,
    r: &ResourceRequest,
    step: &ChainStep,
) -> Result<(), Error> {
    let to = reviewers(tx, r, step).await?;
    let mut p = base(r);
    p.insert("department".into(), json!(department_name(tx, r).await?));
    p.insert("step".into(), json!(step.name));
    p.insert("deadline".into(), json!(deadline(step)));
    send(tx, r, NoticeKind::ApprovalNeeded, to, p).await
}

/// The reviewers of `step` are past its deadline.
pub async fn approval_overdue(
    tx: &mut Tx,
    r: &ResourceRequest,
    step: &ChainStep,
) -> Result<(), Error> {
    let to = reviewers(tx, r, step).await?;
    let mut p = base(r);
    p.insert("step".into(), json!(step.name));
    p.insert(
        "deadline".into(),
        json!(r.step_due.map(|d| d.to_rfc3339()).unwrap_or_default()),
    );
    send(tx, r, NoticeKind::ApprovalReminder, to, p).await
}

/// The requester: rejected or returned by `approver`, with the reason.
pub async fn decided(
    tx: &mut Tx,
    r: &ResourceRequest,
    to: RequestState,
    approver: &str,
    reason: &str,
) -> Result<(), Error> {
    let kind = if to == RequestState::Rejected {
        NoticeKind::RequestRejected
    } else {
        NoticeKind::RequestReturned
    };
    let mut p = base(r);
    p.insert("approver".into(), json!(approver));
    p.insert("reason".into(), json!(reason));
    send(tx, r, kind, vec![r.requester_id], p).await
}

/// The requester: fully approved (by `approver`), delivery under way.
pub async fn approved(tx: &mut Tx, r: &ResourceRequest, approver: &str) -> Result<(), Error> {
    let mut p = base(r);
    p.insert("approver".into(), json!(approver));
    send(tx, r, NoticeKind::RequestApproved, vec![r.requester_id], p).await
}

/// The operators of the provider that delivers it (the platform admins while no provider
/// is chosen): a delivery to make (or to look at again).
pub async fn delivery_needed(tx: &mut Tx, r: &ResourceRequest) -> Result<(), Error> {
    let to = match r.provider_id {
        Some(p) => holders(tx, Role::ProviderOperator, Scope::Provider(p)).await?,
        None => holders(tx, Role::PlatformAdmin, Scope::Platform).await?,
    };
    let provider = match r.provider_id {
        Some(p) => zy_store::inventory::provider_name(&mut **tx, p)
            .await?
            .unwrap_or_default(),
        None => String::new(),
    };
    let mut p = base(r);
    p.insert("department".into(), json!(department_name(tx, r).await?));
    p.insert("provider".into(), json!(provider));
    send(tx, r, NoticeKind::DeliveryNeeded, to, p).await
}

/// The requester: delivered, please accept.
pub async fn delivered(tx: &mut Tx, r: &ResourceRequest) -> Result<(), Error> {
    let names: Vec<&str> = r.delivered.iter().map(|d| d.name.as_str()).collect();
    let mut p = base(r);
    p.insert("resources".into(), json!(names.join("、")));
    send(tx, r, NoticeKind::RequestDelivered, vec![r.requester_id], p).await
}

/// The requester: the delivery failed and was rolled back.
pub async fn failed(tx: &mut Tx, r: &ResourceRequest, note: &str) -> Result<(), Error> {
    let mut p = base(r);
    p.insert("reason".into(), json!(note));
    send(tx, r, NoticeKind::DeliveryFailed, vec![r.requester_id], p).await
}
