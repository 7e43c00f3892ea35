//! Resource requests (资源申请): a department applies, its reviewers decide step by step,
//! the final approval reserves the quota and starts the delivery, and the department
//! accepts what was delivered. Every move is one audited transaction, conditional on the
//! state (and step) the caller saw, so two reviewers can never both move one request and
//! two final approvals can never together take more quota than there is.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};
use zy_model::requests::*;
use zy_model::role::{Role, Scope};
use zy_model::tenancy::Project;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{
    authorize, provider_visibility, tenancy_visibility, Action, ProviderVisibility, Visibility,
};
use zy_store::requests::{self as store, RequestFilter};

/// Hours a provider has to deliver an approved request.
pub const DELIVERY_HOURS: i64 = 24;

/// What a requester fills in.
pub struct Draft {
    pub project_id: ProjectId,
    pub kind: RequestKind,
    pub title: String,
    pub purpose: String,
    pub mlps_level: Option<u8>,
    pub lease_end: Option<Timestamp>,
    pub items: Vec<RequestItem>,
    pub provider_id: Option<ProviderId>,
    pub zone_id: Option<ZoneId>,
}

/// A request with its timeline.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub request: ResourceRequest,
    pub timeline: Vec<RequestEvent>,
    /// Whether the caller may decide the current step.
    pub can_decide: bool,
}

/// Refuses a direct create in a department that takes resources only through requests,
/// saying how to apply instead.
pub async fn refuse_if_requests_only(s: &AppState, d: DepartmentId) -> Result<(), Error> {
    if store::requests_only(s.store.pool(), d).await? {
        return Err(Error::forbidden(t!(
            "本部门的资源须通过资源申请获得：请在「资源申请 → 我的申请」中新建申请，审批通过后自动交付",
            "Your department obtains resources through requests only: create one under Requests → My requests; it is delivered once approved"
        ))
        .with_details(serde_json::json!({ "reason": "requests_only" })));
    }
    Ok(())
}

async fn project(s: &AppState, id: ProjectId) -> Result<Project, Error> {
    zy_store::projects::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("project", id))
}

async fn load(
    s: &AppState,
    actor: &Actor,
    id: ResourceRequestId,
) -> Result<ResourceRequest, Error> {
    let r = store::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("resource_request", id))?;
    authorize(
        &actor.principal,
        Action::RequestRead(r.department_id, r.project_id, r.provider_id),
    )?;
    Ok(r)
}

fn state_conflict(r: &ResourceRequest, what: Text2) -> Error {
    Error::conflict(zy_model::Text::new(
        format!("申请当前为「{}」，不能{}", r.state.zh(), what.0),
        format!(
            "the request is {} and cannot be {} now",
            r.state.as_str(),
            what.1
        ),
    ))
    .with_details(serde_json::json!({ "state": r.state }))
}

/// An action's name in both languages, for messages.
struct Text2(&'static str, &'static str);

fn changed_meanwhile() -> Error {
    Error::conflict(t!(
        "申请刚被其他人处理或修改，请刷新后重试",
        "the request was handled or changed by someone else just now; reload and try again"
    ))
    .with_details(serde_json::json!({ "reason": "changed_meanwhile" }))
}

fn reason_text(reason: Option<&str>) -> Result<String, Error> {
    let r = reason.unwrap_or("").trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(Error::validation(
            "reason",
            t!(
                "请填写理由（500 字以内），申请人将看到它",
                "give a reason (at most 500 characters); the requester will see it"
            ),
        ));
    }
    Ok(r.to_string())
}

fn comment_text(c: Option<&str>) -> Result<Option<String>, Error> {
    match c.map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) if c.chars().count() > 500 => Err(Error::validation(
            "comment",
            t!("意见不能超过 500 字", "a comment is at most 500 characters"),
        )),
        Some(c) => Ok(Some(c.to_string())),
    }
}

/// Resolves the items against the catalogue and the project, and adds them up.
async fn totals(s: &AppState, p: &Project, items: &[RequestItem]) -> Result<RequestTotals, Error> {
    let flavors = zy_store::inventory::flavors(&s.store).await?;
    let images = zy_store::inventory::images(&s.store).await?;
    let flavor = |i: usize, f: &str| {
        flavors
            .iter()
            .find(|x| x.name == f || x.id.to_string() == f)
            .cloned()
            .ok_or_else(|| {
                Error::validation(
                    &format!("items[{i}].flavor"),
                    t!("规格 {} 不存在" ; "flavor {} does not exist", validate::clip(f, 40)),
                )
            })
    };
    let mut t = RequestTotals::default();
    for (i, it) in items.iter().enumerate() {
        match it {
            RequestItem::Instances {
                flavor: f,
                image,
                count,
                disk_gib,
                ..
            } => {
                let f = flavor(i, f)?;
                let img = images
                    .iter()
                    .find(|x| x.name == *image || x.id.to_string() == *image)
                    .ok_or_else(|| {
                        Error::validation(
                            &format!("items[{i}].image"),
                            t!("镜像 {} 不存在" ; "image {} does not exist", validate::clip(image, 40)),
                        )
                    })?;
                let disk = disk_gib.unwrap_or(img.min_disk_gib);
                if disk < img.min_disk_gib || disk > 65536 {
                    return Err(Error::validation(
                        &format!("items[{i}].disk_gib"),
                        t!("系统盘须在 {} 到 65536 GiB 之间" ; "the system disk is {} to 65536 GiB", img.min_disk_gib),
                    ));
                }
                let n = *count as i64;
                t.instances += n;
                t.vcpus += n * f.vcpus as i64;
                t.memory_mib += n * f.memory_mib as i64;
                t.disk_gib += n * disk as i64;
            }
            RequestItem::Volume { size_gib, .. } => {
                t.volumes += 1;
                t.volume_gib += *size_gib as i64;
            }
            RequestItem::Resize {
                instance_id,
                flavor: f,
            } => {
                let inst = own_instance(s, p, i, *instance_id).await?;
                let f = flavor(i, f)?;
                t.vcpus += (f.vcpus as i64 - inst.vcpus as i64).max(0);
                t.memory_mib += (f.memory_mib as i64 - inst.memory_mib as i64).max(0);
            }
            RequestItem::ExtendLease { instance_id, .. } | RequestItem::Release { instance_id } => {
                own_instance(s, p, i, *instance_id).await?;
            }
        }
    }
    Ok(t)
}

async fn own_instance(
    s: &AppState,
    p: &Project,
    i: usize,
    id: InstanceId,
) -> Result<Instance, Error> {
    zy_store::instances::get(s.store.pool(), id)
        .await?
        .map(|r| r.instance)
        .filter(|x| x.project_id == p.id && x.state != InstanceState::Deleted)
        .ok_or_else(|| {
            Error::validation(
                &format!("items[{i}].instance_id"),
                t!(
                    "该云主机不属于本项目或已删除",
                    "the instance is not in this project or was deleted"
                ),
            )
        })
}

/// The request's monthly cost at the provider's price list in force: at the provider the
/// request names, else at the dearest provider that has prices (so a cost threshold in
/// the chain is never passed by guessing low). `None` while no provider has prices.
async fn estimate(
    s: &AppState,
    items: &[RequestItem],
    provider: Option<ProviderId>,
) -> Result<Option<i64>, Error> {
    use zy_rating::EstimateItem;
    let flavors = zy_store::inventory::flavors(&s.store).await?;
    let images = zy_store::inventory::images(&s.store).await?;
    let mut est = Vec::new();
    for it in items {
        match it {
            RequestItem::Instances {
                flavor,
                image,
                count,
                disk_gib,
                ..
            } => {
                let Some(f) = flavors
                    .iter()
                    .find(|x| x.name == *flavor || x.id.to_string() == *flavor)
                else {
                    continue;
                };
                let min = images
                    .iter()
                    .find(|x| x.name == *image || x.id.to_string() == *image)
                    .map(|i| i.min_disk_gib)
                    .unwrap_or(0);
                est.push(EstimateItem::Instance {
                    flavor: f.name.clone(),
                    vcpus: f.vcpus,
                    memory_mib: f.memory_mib,
                    disk_gib: disk_gib.unwrap_or(min),
                    gpus: f.gpus,
                    count: *count,
                });
            }
            RequestItem::Volume { size_gib, .. } => est.push(EstimateItem::Volume {
                size_gib: *size_gib,
                count: 1,
            }),
            RequestItem::Resize { .. }
            | RequestItem::ExtendLease { .. }
            | RequestItem::Release { .. } => {}
        }
    }
    if est.is_empty() {
        return Ok(None);
    }
    let providers: Vec<ProviderId> = match provider {
        Some(p) => vec![p],
        None => zy_store::inventory::providers(&s.store)
            .await?
            .into_iter()
            .map(|(p, _)| p.id)
            .collect(),
    };
    let mut best: Option<i64> = None;
    for p in providers {
        if let Some(m) = super::billing::estimate_monthly(&s.store, p, &est).await? {
            best = Some(best.map_or(m.0, |b| b.max(m.0)));
        }
    }
    Ok(best)
}

fn quota_want(t: &RequestTotals) -> QuotaLimits {
    QuotaLimits {
        instances: t.instances,
        vcpus: t.vcpus,
        memory_mib: t.memory_mib,
        disk_gib: t.disk_gib + t.volume_gib,
        volumes: t.volumes,
    }
}

/// Refuses, at submit, a request the quotas could not hold now.
async fn check_quota(s: &AppState, p: &Project, t: &RequestTotals) -> Result<(), Error> {
    let want = quota_want(t);
    for (kind, id) in [
        ("department", p.department_id.to_string()),
        ("project", p.id.to_string()),
    ] {
        let (limits, used) = match zy_store::quotas::get(s.store.pool(), kind, &id).await? {
            Some(q) => (q.limits, q.used),
            None => (
                zy_store::quotas::DEFAULT_LIMITS,
                QuotaLimits {
                    instances: 0,
                    vcpus: 0,
                    memory_mib: 0,
                    disk_gib: 0,
                    volumes: 0,
                },
            ),
        };
        let over = used.instances + want.instances > limits.instances
            || used.vcpus + want.vcpus > limits.vcpus
            || used.memory_mib + want.memory_mib > limits.memory_mib
            || used.disk_gib + want.disk_gib > limits.disk_gib
            || used.volumes + want.volumes > limits.volumes;
        if over {
            return Err(super::quotas::exceeded(s, p.department_id, p.id, &want).await);
        }
    }
    Ok(())
}

fn check_placement(
    s_zones: &[Zone],
    provider: Option<ProviderId>,
    zone: Option<ZoneId>,
) -> Result<(), Error> {
    if let Some(z) = zone {
        let zone = s_zones
            .iter()
            .find(|x| x.id == z)
            .ok_or_else(|| Error::validation("zone_id", t!("可用区不存在", "no such zone")))?;
        if provider.is_some_and(|p| p != zone.provider_id) {
            return Err(Error::validation(
                "zone_id",
                t!(
                    "可用区不属于所选云服务商",
                    "the zone does not belong to that provider"
                ),
            ));
        }
    }
    Ok(())
}

async fn check_draft(s: &AppState, p: &Project, d: &Draft) -> Result<RequestTotals, Error> {
    validate_request(d.kind, &d.title, &d.purpose, d.mlps_level, &d.items)?;
    if d.lease_end.is_some_and(|e| e <= Timestamp::now()) {
        return Err(Error::validation(
            "lease_end",
            t!("使用期限须晚于现在", "the lease end must be in the future"),
        ));
    }
    if let Some(pr) = d.provider_id {
        zy_store::inventory::providers(&s.store)
            .await?
            .into_iter()
            .find(|(x, _)| x.id == pr)
            .ok_or_else(|| {
                Error::validation("provider_id", t!("云服务商不存在", "no such provider"))
            })?;
    }
    check_placement(
        &zy_store::inventory::zones(&s.store).await?,
        d.provider_id,
        d.zone_id,
    )?;
    totals(s, p, &d.items).await
}

fn new_request(p: &Project, actor: &Actor, d: Draft, totals: RequestTotals) -> ResourceRequest {
    let now = Timestamp::now();
    ResourceRequest {
        id: ResourceRequestId::new(),
        department_id: p.department_id,
        project_id: p.id,
        kind: d.kind,
        title: d.title.trim().to_string(),
        purpose: d.purpose.trim().to_string(),
        mlps_level: d.mlps_level,
        lease_end: d.lease_end,
        items: d.items,
        state: RequestState::Draft,
        steps: Vec::new(),
        current_step: 0,
        step_due: None,
        provider_id: d.provider_id,
        zone_id: d.zone_id,
        estimated_monthly_fen: None,
        totals,
        requester_id: actor.principal.user_id,
        requester_name: String::new(),
        delivered: Vec::new(),
        note: None,
        delivery_due: None,
        submitted_at: None,
        created_at: now,
        updated_at: now,
        generation: 1,
    }
}

/// Saves a draft.
pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    d: Draft,
) -> Result<ResourceRequest, Error> {
    create_as(s, ctx, actor, d, "create_request").await
}

async fn create_as(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    d: Draft,
    audit_action: &str,
) -> Result<ResourceRequest, Error> {
    let p = project(s, d.project_id).await?;
    authorize(
        &actor.principal,
        Action::RequestCreate(p.department_id, p.id),
    )?;
    let t = check_draft(s, &p, &d).await?;
    let r = new_request(&p, actor, d, t);
    let mut tx = s.store.begin_write().await?;
    store::insert(&mut tx, &r).await?;
    store::add_event(
        &mut tx,
        r.id,
        "draft",
        Some(actor.principal.user_id),
        None,
        None,
    )
    .await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        audit_action,
        "resource_request",
        &r.id.to_string(),
        serde_json::json!({ "title": r.title, "kind": r.kind, "project_id": r.project_id }),
    )
    .await?;
    get_plain(s, r.id).await
}

/// A timeline entry.
struct Event<'a> {
    action: &'a str,
    step: Option<&'a str>,
    reason: Option<&'a str>,
}

/// Ends a move of a request: its timeline entry and its audit record, committed with the
/// move itself; returns the request as it is now.
#[allow(clippy::too_many_arguments)]
async fn finish(
    s: &AppState,
    mut tx: zy_store::Tx,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
    ev: Event<'_>,
    audit_action: &str,
    detail: serde_json::Value,
) -> Result<ResourceRequest, Error> {
    let who = Some(actor.principal.user_id);
    store::add_event(&mut tx, id, ev.action, who, ev.step, ev.reason).await?;
    let target = id.to_string();
    commit_audited(
        tx,
        ctx,
        Some(actor),
        audit_action,
        "resource_request",
        &target,
        detail,
    )
    .await?;
    get_plain(s, id).await
}

async fn get_plain(s: &AppState, id: ResourceRequestId) -> Result<ResourceRequest, Error> {
    store::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("resource_request", id))
}

/// Rewrites a draft or a request returned for changes.
pub async fn update(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
    d: Draft,
    generation: i64,
) -> Result<ResourceRequest, Error> {
    let old = load(s, actor, id).await?;
    authorize(
        &actor.principal,
        Action::RequestCreate(old.department_id, old.project_id),
    )?;
    if !old.state.editable() {
        return Err(state_conflict(&old, Text2("修改", "edited")));
    }
    if d.kind != old.kind || d.project_id != old.project_id {
        return Err(Error::validation(
            "kind",
            t!(
                "申请的类型和项目不能修改，请复制为新申请",
                "a request's kind and project cannot change; copy it into a new request"
            ),
        ));
    }
    let p = project(s, old.project_id).await?;
    let t = check_draft(s, &p, &d).await?;
    let mut r = new_request(&p, actor, d, t);
    r.id = id;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !store::update_draft(&mut tx, &r, generation).await? {
        return Err(changed_meanwhile());
    }
    let ev = Event {
        action: "edit",
        step: None,
        reason: None,
    };
    finish(
        s,
        tx,
        ctx,
        actor,
        id,
        ev,
        "update_request",
        serde_json::json!({ "title": r.title }),
    )
    .await
}

pub async fn delete_draft(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
) -> Result<(), Error> {
    let r = load(s, actor, id).await?;
    authorize(
        &actor.principal,
        Action::RequestCreate(r.department_id, r.project_id),
    )?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !store::delete_draft(&mut tx, id).await? {
        return Err(state_conflict(
            &r,
            Text2("删除（只能删除草稿）", "deleted (only drafts are)"),
        ));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_request",
        "resource_request",
        &id.to_string(),
        serde_json::json!({ "title": r.title }),
    )
    .await
}

/// Copies any request into a new draft of the same project.
pub async fn copy(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
) -> Result<ResourceRequest, Error> {
    let old = load(s, actor, id).await?;
    let d = Draft {
        project_id: old.project_id,
        kind: old.kind,
        title: old.title,
        purpose: old.purpose,
        mlps_level: old.mlps_level,
        lease_end: old.lease_end.filter(|e| *e > Timestamp::now()),
        items: old.items,
        provider_id: old.provider_id,
        zone_id: old.zone_id,
    };
    create_as(s, ctx, actor, d, "copy_request").await
}

/// Submits a draft (or a returned request) into review: the quota is checked now, the
/// chain that applies is fixed on the request, and a request the chain lets through
/// without review is approved and delivered at once.
pub async fn submit(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
    generation: Option<i64>,
) -> Result<ResourceRequest, Error> {
    let r = load(s, actor, id).await?;
    authorize(
        &actor.principal,
        Action::RequestCreate(r.department_id, r.project_id),
    )?;
    if !r.state.editable() {
        return Err(state_conflict(&r, Text2("提交", "submitted")));
    }
    let p = project(s, r.project_id).await?;
    let t = totals(s, &p, &r.items).await?;
    check_quota(s, &p, &t).await?;
    let chain = store::chain_for(s.store.pool(), r.department_id, r.kind).await?;
    let cost = estimate(s, &r.items, r.provider_id).await?;
    let steps = chain.steps_for(&t, cost);
    // Approved without review: resolved now, reserved and delivered in the same
    // transaction as the submit.
    let auto = if steps.is_empty() {
        Some(prepare_delivery(s, &r, (None, None)).await?)
    } else {
        None
    };
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !store::submit(
        &mut tx,
        id,
        generation.unwrap_or(r.generation),
        &steps,
        cost,
    )
    .await?
    {
        return Err(changed_meanwhile());
    }
    store::add_event(
        &mut tx,
        id,
        "submit",
        Some(actor.principal.user_id),
        None,
        None,
    )
    .await?;
    if let Some(prepared) = auto {
        deliver_in(
            &mut tx,
            s,
            &r,
            None,
            prepared,
            (None, None),
            "自动审批 automatic",
        )
        .await?;
        store::add_event(&mut tx, id, "auto_approve", None, None, None).await?;
    } else {
        crate::requests::notify::approval_needed(&mut tx, &r, &steps[0]).await?;
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "submit_request",
        "resource_request",
        &id.to_string(),
        serde_json::json!({ "title": r.title, "steps": steps.len() }),
    )
    .await?;
    s.compute.wake.notify_one();
    get_plain(s, id).await
}

pub async fn withdraw(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
) -> Result<ResourceRequest, Error> {
    let r = load(s, actor, id).await?;
    authorize(
        &actor.principal,
        Action::RequestCreate(r.department_id, r.project_id),
    )?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !store::transition(
        &mut tx,
        id,
        &[RequestState::Pending, RequestState::Returned],
        RequestState::Withdrawn,
        None,
    )
    .await?
    {
        return Err(state_conflict(
            &r,
            Text2(
                "撤回（只能撤回审批中或已退回的申请）",
                "withdrawn (only pending or returned requests are)",
            ),
        ));
    }
    let ev = Event {
        action: "withdraw",
        step: None,
        reason: None,
    };
    finish(
        s,
        tx,
        ctx,
        actor,
        id,
        ev,
        "withdraw_request",
        serde_json::json!({ "title": r.title }),
    )
    .await
}

/// A reviewer's decision on the current step.
pub enum Decision {
    Approve {
        provider_id: Option<ProviderId>,
        zone_id: Option<ZoneId>,
        comment: Option<String>,
    },
    Reject(Option<String>),
    Return(Option<String>),
}

fn step_scope(step: &ChainStep, d: DepartmentId) -> Scope {
    match step.scope {
        StepScope::Department => Scope::Department(d),
        StepScope::Platform => Scope::Platform,
    }
}

/// Approves, rejects or returns the current step. `seen_step` is the step the reviewer
/// looked at; a request that moved on meanwhile is refused rather than decided blind.
pub async fn decide(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
    seen_step: Option<u32>,
    decision: Decision,
) -> Result<ResourceRequest, Error> {
    let r = load(s, actor, id).await?;
    if r.state != RequestState::Pending {
        return Err(state_conflict(&r, Text2("审批", "decided")));
    }
    let at = r.current_step;
    if seen_step.is_some_and(|k| k != at) {
        return Err(changed_meanwhile());
    }
    let step = r
        .steps
        .get(at as usize)
        .cloned()
        .ok_or_else(|| Error::internal("pending request without its step"))?;
    authorize(
        &actor.principal,
        Action::RequestDecide(step.role, step_scope(&step, r.department_id)),
    )?;
    if r.requester_id == actor.principal.user_id {
        return Err(Error::forbidden(t!(
            "不能审批自己提交的申请",
            "You cannot decide a request you submitted yourself"
        )));
    }
    let who = Some(actor.principal.user_id);
    let (action, detail) = match decision {
        Decision::Approve {
            provider_id,
            zone_id,
            comment,
        } => {
            let comment = comment_text(comment.as_deref())?;
            if (provider_id.is_some() || zone_id.is_some()) && step.role != Role::Supervisor {
                return Err(Error::validation(
                    "provider_id",
                    t!(
                        "只有监管（大数据局）审批时可以指定云服务商和可用区",
                        "only the supervisor's step chooses the provider and zone"
                    ),
                ));
            }
            check_placement(
                &zy_store::inventory::zones(&s.store).await?,
                provider_id.or(r.provider_id),
                zone_id,
            )?;
            let last = at as usize + 1 == r.steps.len();
            let placement = (provider_id, zone_id);
            // Resolved before the transaction: the write lock is held only for the writes.
            let prepared = if last {
                Some(prepare_delivery(s, &r, placement).await?)
            } else {
                None
            };
            let mut tx = s.store.begin_write_for(&id.to_string()).await?;
            if let Some(prepared) = prepared {
                store::add_event(
                    &mut tx,
                    id,
                    "approve",
                    who,
                    Some(&step.name),
                    comment.as_deref(),
                )
                .await?;
                deliver_in(
                    &mut tx,
                    s,
                    &r,
                    Some(at),
                    prepared,
                    placement,
                    &actor.user.display_name,
                )
                .await?;
            } else {
                if !store::next_step(&mut tx, id, at, &r.steps[at as usize + 1]).await? {
                    return Err(changed_meanwhile());
                }
                store::add_event(
                    &mut tx,
                    id,
                    "approve",
                    who,
                    Some(&step.name),
                    comment.as_deref(),
                )
                .await?;
                crate::requests::notify::approval_needed(&mut tx, &r, &r.steps[at as usize + 1])
                    .await?;
            }
            let detail = serde_json::json!({ "title": r.title, "step": step.name, "final": last, "provider_id": provider_id, "zone_id": zone_id });
            commit_audited(
                tx,
                ctx,
                Some(actor),
                "approve_request",
                "resource_request",
                &id.to_string(),
                detail,
            )
            .await?;
            s.compute.wake.notify_one();
            return get_plain(s, id).await;
        }
        Decision::Reject(reason) => (RequestState::Rejected, reason_text(reason.as_deref())?),
        Decision::Return(reason) => (RequestState::Returned, reason_text(reason.as_deref())?),
    };
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !store::decide(
        &mut tx,
        id,
        Some(at),
        action,
        (None, None),
        None,
        Some(&detail),
    )
    .await?
    {
        return Err(changed_meanwhile());
    }
    let verb = if action == RequestState::Rejected {
        "reject"
    } else {
        "return"
    };
    crate::requests::notify::decided(&mut tx, &r, action, &actor.user.display_name, &detail)
        .await?;
    let ev = Event {
        action: verb,
        step: Some(&step.name),
        reason: Some(&detail),
    };
    let audit = serde_json::json!({ "title": r.title, "step": step.name, "reason": detail });
    finish(s, tx, ctx, actor, id, ev, &format!("{verb}_request"), audit).await
}

/// What a delivery will insert, resolved before its transaction.
pub struct PreparedDelivery {
    instances: Vec<super::instances::Prepared>,
    volumes: Vec<(Volume, StoragePool)>,
    resizes: Vec<(InstanceId, Flavor)>,
    leases: Vec<(InstanceId, Timestamp)>,
    releases: Vec<InstanceId>,
}

async fn prepare_delivery(
    s: &AppState,
    r: &ResourceRequest,
    placement: (Option<ProviderId>, Option<ZoneId>),
) -> Result<PreparedDelivery, Error> {
    let p = project(s, r.project_id).await?;
    let mut out = PreparedDelivery {
        instances: Vec::new(),
        volumes: Vec::new(),
        resizes: Vec::new(),
        leases: Vec::new(),
        releases: Vec::new(),
    };
    let flavors = zy_store::inventory::flavors(&s.store).await?;
    for it in &r.items {
        match it {
            RequestItem::Instances {
                name,
                flavor,
                image,
                count,
                disk_gib,
            } => {
                let n = super::instances::NewInstances {
                    project_id: p.id,
                    name: name.clone(),
                    flavor: flavor.clone(),
                    image: image.clone(),
                    disk_gib: *disk_gib,
                    zone_id: placement.1.or(r.zone_id),
                    provider_id: placement.0.or(r.provider_id),
                    count: *count,
                    group: None,
                    start: true,
                    user_data: String::new(),
                    lease_end: r.lease_end,
                    nics: Vec::new(),
                };
                out.instances
                    .push(super::instances::prepare(s, &p, &n).await?);
            }
            RequestItem::Volume { name, size_gib } => {
                let pool = super::volumes::pick_pool(s, None).await?;
                let now = Timestamp::now();
                out.volumes.push((
                    Volume {
                        id: VolumeId::new(),
                        project_id: p.id,
                        department_id: p.department_id,
                        name: name.clone(),
                        size_gib: *size_gib,
                        pool_id: pool.id,
                        instance_id: None,
                        state: VolumeState::Available,
                        recycled_at: None,
                        purge_at: None,
                        recycle_reason: None,
                        origin: "created".into(),
                        adopted_at: None,
                        created_at: now,
                        updated_at: now,
                        generation: 1,
                    },
                    pool,
                ));
            }
            RequestItem::Resize {
                instance_id,
                flavor,
            } => {
                let f = flavors
                    .iter()
                    .find(|x| x.name == *flavor || x.id.to_string() == *flavor)
                    .cloned()
                    .ok_or_else(|| {
                        Error::validation(
                            "flavor",
                            t!("规格 {} 已不存在" ; "flavor {} no longer exists", validate::clip(flavor, 40)),
                        )
                    })?;
                out.resizes.push((*instance_id, f));
            }
            RequestItem::ExtendLease {
                instance_id,
                lease_end,
            } => out.leases.push((*instance_id, *lease_end)),
            RequestItem::Release { instance_id } => out.releases.push(*instance_id),
        }
    }
    Ok(out)
}

/// The final approval, in the caller's transaction: the request moves to `delivering`
/// (conditional on the step, so only one approval wins), the quotas are taken for
/// everything at once (or nothing is, and the approval fails with the quota's reason),
/// the resources are inserted with their create sagas and the delivery saga starts.
async fn deliver_in(
    tx: &mut zy_store::Tx,
    s: &AppState,
    r: &ResourceRequest,
    at: Option<u32>,
    prepared: PreparedDelivery,
    placement: (Option<ProviderId>, Option<ZoneId>),
    approver: &str,
) -> Result<(), Error> {
    let due = Timestamp::now().plus_secs(DELIVERY_HOURS * 3600);
    if !store::decide(
        tx,
        r.id,
        at,
        RequestState::Delivering,
        placement,
        Some(due),
        None,
    )
    .await?
    {
        return Err(changed_meanwhile());
    }
    let mut delivered = Vec::new();
    for p in &prepared.instances {
        if !super::instances::insert_prepared(tx, p).await? {
            return Err(super::quotas::exceeded(
                s,
                r.department_id,
                r.project_id,
                &quota_want(&r.totals),
            )
            .await);
        }
        for row in &p.rows {
            delivered.push(DeliveredResource {
                kind: "instance".into(),
                id: row.instance.id.to_string(),
                name: row.instance.name.clone(),
            });
        }
    }
    for (v, pool) in &prepared.volumes {
        if !super::volumes::insert_in(tx, v, pool).await? {
            return Err(super::quotas::exceeded(
                s,
                r.department_id,
                r.project_id,
                &quota_want(&r.totals),
            )
            .await);
        }
        delivered.push(DeliveredResource {
            kind: "volume".into(),
            id: v.id.to_string(),
            name: v.name.clone(),
        });
    }
    for (id, f) in &prepared.resizes {
        let (i, _) = super::instances::resize_in(tx, s, *id, f, None)
            .await
            .map_err(|e| match e.code {
                zy_model::ErrorCode::Conflict
                    if e.details.as_ref().is_some_and(|d| d.get("state").is_some()) =>
                {
                    Error::conflict(t!("变更规格须先关闭云主机 {}：请申请人关机后再审批" ; "a resize needs the instance stopped: ask the requester to stop {} first", id))
                        .with_details(serde_json::json!({ "reason": "stop_first", "instance_id": id }))
                }
                _ => e,
            })?;
        delivered.push(DeliveredResource {
            kind: "resized".into(),
            id: id.to_string(),
            name: i.name,
        });
    }
    for (id, end) in &prepared.leases {
        for i in super::leases::set_lease(tx, &[*id], Some(*end)).await? {
            delivered.push(DeliveredResource {
                kind: "lease".into(),
                id: id.to_string(),
                name: i.name,
            });
        }
    }
    if !prepared.releases.is_empty() {
        let why = format!("释放申请 / release request: {}", r.title);
        for i in super::leases::release(tx, &prepared.releases, &why).await? {
            delivered.push(DeliveredResource {
                kind: "released".into(),
                id: i.id.to_string(),
                name: i.name,
            });
        }
    }
    store::set_delivered(tx, r.id, &delivered).await?;
    crate::saga::start(
        tx,
        &crate::requests::delivery::DELIVERY,
        &r.id.to_string(),
        &crate::requests::delivery::Target { request_id: r.id },
    )
    .await?;
    crate::requests::notify::approved(tx, r, approver).await?;
    let placed = ResourceRequest {
        provider_id: placement.0.or(r.provider_id),
        ..r.clone()
    };
    crate::requests::notify::delivery_needed(tx, &placed).await?;
    Ok(())
}

/// The requesting department accepts a delivery (验收) or reports a problem with it.
pub async fn accept(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
    problem: Option<String>,
) -> Result<ResourceRequest, Error> {
    let r = load(s, actor, id).await?;
    authorize(
        &actor.principal,
        Action::RequestAccept(r.department_id, r.project_id),
    )?;
    let (to, verb, reason) = match problem {
        None => (RequestState::Accepted, "accept", None),
        Some(p) => (
            RequestState::Problem,
            "problem",
            Some(reason_text(Some(&p))?),
        ),
    };
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !store::transition(
        &mut tx,
        id,
        &[RequestState::Delivered],
        to,
        reason.as_deref(),
    )
    .await?
    {
        return Err(state_conflict(
            &r,
            Text2(
                "验收（只能验收待验收的申请）",
                "accepted (only delivered requests are)",
            ),
        ));
    }
    if to == RequestState::Problem {
        crate::requests::notify::delivery_needed(&mut tx, &r).await?;
    }
    let ev = Event {
        action: verb,
        step: None,
        reason: reason.as_deref(),
    };
    let audit_action = if to == RequestState::Accepted {
        "accept_request"
    } else {
        "report_problem"
    };
    let audit = serde_json::json!({ "title": r.title, "reason": reason });
    finish(s, tx, ctx, actor, id, ev, audit_action, audit).await
}

/// The provider's operator hands a delivery over again after a reported problem.
pub async fn redeliver(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ResourceRequestId,
    note: Option<String>,
) -> Result<ResourceRequest, Error> {
    let r = load(s, actor, id).await?;
    authorize(&actor.principal, Action::RequestDeliver(r.provider_id))?;
    let note = reason_text(note.as_deref())?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !store::transition(
        &mut tx,
        id,
        &[RequestState::Problem],
        RequestState::Delivered,
        Some(&note),
    )
    .await?
    {
        return Err(state_conflict(
            &r,
            Text2(
                "重新交付（只能处理验收有问题的申请）",
                "delivered again (only requests with a reported problem are)",
            ),
        ));
    }
    crate::requests::notify::delivered(&mut tx, &r).await?;
    let ev = Event {
        action: "redeliver",
        step: None,
        reason: Some(&note),
    };
    let audit = serde_json::json!({ "title": r.title, "note": note });
    finish(s, tx, ctx, actor, id, ev, "redeliver_request", audit).await
}

fn can_decide(actor: &Actor, r: &ResourceRequest) -> bool {
    r.state == RequestState::Pending
        && r.requester_id != actor.principal.user_id
        && r.steps.get(r.current_step as usize).is_some_and(|st| {
            authorize(
                &actor.principal,
                Action::RequestDecide(st.role, step_scope(st, r.department_id)),
            )
            .is_ok()
        })
}

pub async fn get(
    s: &AppState,
    actor: &Actor,
    id: ResourceRequestId,
) -> Result<RequestDetail, Error> {
    let r = load(s, actor, id).await?;
    let timeline = store::events(&s.store, id).await?;
    Ok(RequestDetail {
        can_decide: can_decide(actor, &r),
        request: r,
        timeline,
    })
}

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// 我的申请: the caller's own.
    Mine,
    /// Every request the caller may read.
    All,
    /// 待我审批: waiting for a step the caller decides.
    ToDecide,
    /// The providers' delivery list: being delivered, delivered, or with a problem.
    Deliveries,
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    kind: ListKind,
    state: Option<RequestState>,
    department: Option<DepartmentId>,
) -> Result<Page<ResourceRequest>, Error> {
    authorize(&actor.principal, Action::RequestList)?;
    let mut f = RequestFilter {
        state,
        department,
        ..Default::default()
    };
    let vis = match kind {
        ListKind::Mine => {
            f.requester = Some(actor.principal.user_id);
            Visibility::All
        }
        ListKind::All => match provider_visibility(&actor.principal, Action::RequestDeliver) {
            ProviderVisibility::All => Visibility::All,
            ProviderVisibility::Some(providers) => {
                // An operator reads the requests its provider delivers.
                if !providers.is_empty() {
                    f.visible_providers = Some(providers);
                }
                tenancy_visibility(&actor.principal)
            }
        },
        ListKind::ToDecide => {
            let mut pairs = Vec::new();
            for g in &actor.principal.grants {
                match (g.role, g.scope) {
                    (Role::DeptAdmin, Scope::Department(d)) => {
                        pairs.push((Role::DeptAdmin, Some(d)))
                    }
                    (Role::Supervisor | Role::Finance, Scope::Platform) => {
                        pairs.push((g.role, None))
                    }
                    _ => {}
                }
            }
            f.to_decide = Some(pairs);
            Visibility::All
        }
        ListKind::Deliveries => {
            match provider_visibility(&actor.principal, Action::RequestDeliver) {
                ProviderVisibility::All => {}
                ProviderVisibility::Some(v) if v.is_empty() => {
                    authorize(&actor.principal, Action::RequestDeliver(None))?
                }
                ProviderVisibility::Some(v) => f.providers = Some(v),
            }
            f.states = Some(vec![
                RequestState::Delivering,
                RequestState::Delivered,
                RequestState::Problem,
                RequestState::Failed,
            ]);
            Visibility::All
        }
    };
    match vis {
        Visibility::All => store::list(&s.store, page, None, None, &f).await,
        Visibility::Some {
            departments,
            projects,
        } => store::list(&s.store, page, Some(&departments), Some(&projects), &f).await,
    }
}

// ---- approval chains and requests-only departments ----

pub async fn chains(
    s: &AppState,
    actor: &Actor,
    department: Option<DepartmentId>,
) -> Result<Vec<ApprovalChain>, Error> {
    authorize(&actor.principal, Action::ApprovalChainRead(department))?;
    match department {
        // The chain that applies to each kind of this department's requests.
        Some(d) => {
            let mut out = Vec::new();
            for k in RequestKind::ALL {
                out.push(store::chain_for(s.store.pool(), d, k).await?);
            }
            Ok(out)
        }
        None => store::chains(&s.store, None).await,
    }
}

pub struct ChainInput {
    pub department_id: Option<DepartmentId>,
    pub kind: RequestKind,
    pub steps: Vec<ChainStep>,
    pub auto_max_vcpus: Option<u32>,
    pub auto_max_volume_gib: Option<u64>,
}

pub async fn put_chain(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    c: ChainInput,
) -> Result<ApprovalChain, Error> {
    authorize(&actor.principal, Action::ApprovalChainSet)?;
    validate_steps(&c.steps)?;
    if c.auto_max_vcpus.is_some_and(|v| v > 1024)
        || c.auto_max_volume_gib.is_some_and(|v| v > 65536)
    {
        return Err(Error::validation(
            "auto_max_vcpus",
            t!(
                "自动审批阈值超出合理范围",
                "the automatic approval threshold is out of range"
            ),
        ));
    }
    if let Some(d) = c.department_id {
        zy_store::departments::get(s.store.pool(), d)
            .await?
            .ok_or_else(|| Error::not_found("department", d))?;
    }
    let chain = ApprovalChain {
        id: ApprovalChainId::new(),
        department_id: c.department_id,
        kind: c.kind,
        steps: c.steps,
        auto_max_vcpus: c.auto_max_vcpus,
        auto_max_volume_gib: c.auto_max_volume_gib,
        updated_at: Timestamp::now(),
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    store::put_chain(&mut tx, &chain).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_approval_chain",
        "approval_chain",
        &c.department_id.map(|d| d.to_string()).unwrap_or_else(|| "platform".into()),
        serde_json::json!({ "kind": chain.kind, "steps": chain.steps, "auto_max_vcpus": chain.auto_max_vcpus }),
    )
    .await?;
    match c.department_id {
        Some(d) => store::chain_for(s.store.pool(), d, chain.kind).await,
        None => Ok(store::chains(&s.store, None)
            .await?
            .into_iter()
            .find(|x| x.department_id.is_none() && x.kind == chain.kind)
            .unwrap_or(chain)),
    }
}

pub async fn delete_chain(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    department: Option<DepartmentId>,
    kind: RequestKind,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::ApprovalChainSet)?;
    let mut tx = s.store.begin_write().await?;
    if !store::delete_chain(&mut tx, department, kind).await? {
        return Err(Error::not_found("approval_chain", kind.as_str()));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_approval_chain",
        "approval_chain",
        &department
            .map(|d| d.to_string())
            .unwrap_or_else(|| "platform".into()),
        serde_json::json!({ "kind": kind }),
    )
    .await
}

pub async fn set_requests_only(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    department: DepartmentId,
    on: bool,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::ApprovalChainSet)?;
    let mut tx = s.store.begin_write().await?;
    if !store::set_requests_only(&mut tx, department, on).await? {
        return Err(Error::not_found("department", department));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_requests_only",
        "department",
        &department.to_string(),
        serde_json::json!({ "requests_only": on }),
    )
    .await
}
