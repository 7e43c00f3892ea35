//! Tickets (工单): a department's people open one about a resource (it goes to the
//! provider that runs it) or in general (to the provider they choose); the providers'
//! operators accept it (the response) and resolve it; the department confirms and rates
//! it, or reopens it. Deadlines come from the priority (`TicketSettings`, set by the
//! platform admin) and are measured on the metering clock (`billing::clock`, which the
//! test clock moves); the `ticket_timers` task escalates a ticket once per missed
//! deadline. Alerts and inspections open tickets too (`open_system`).
//!
//! Read functions for the supervision indicators: [`provider_ticket_stats`].

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::notify::{self, Notice, NoticeKind};
use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use zy_model::id::{DepartmentId, ProviderId};
use zy_model::operations::*;
use zy_model::role::{Role, Scope};
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, provider_visibility, Action, ProviderVisibility};
use zy_store::operations as store;
use zy_store::{Store, Tx};

pub const SETTINGS_KEY: &str = "ticket_deadlines";
const MINUTE_US: i64 = 60_000_000;

pub async fn settings(s: &Store) -> Result<TicketSettings, Error> {
    Ok(zy_store::settings::get(s.pool(), SETTINGS_KEY)
        .await?
        .unwrap_or_default())
}

/// Whose tickets the caller sees: `None` all of them; otherwise those of the departments
/// (first) and those assigned to the providers (second) it works for.
type Visible = Option<(Vec<String>, Vec<String>)>;

fn visible(actor: &Actor) -> Result<Visible, Error> {
    authorize(&actor.principal, Action::TicketRead)?;
    if authorize(&actor.principal, Action::TicketView(None, None)).is_ok() {
        return Ok(None);
    }
    let providers = match provider_visibility(&actor.principal, |pv| Action::TicketView(None, pv)) {
        ProviderVisibility::All => return Ok(None),
        ProviderVisibility::Some(v) => v.iter().map(|p| p.to_string()).collect(),
    };
    let mut out: Vec<String> = actor
        .principal
        .grants
        .iter()
        .filter(|g| matches!(g.role, Role::DeptAdmin | Role::DeptMember))
        .filter_map(|g| match g.scope {
            Scope::Department(d) | Scope::Project(d, _) => Some(d.to_string()),
            Scope::Platform | Scope::Provider(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(Some((out, providers)))
}

fn department_of(t: &Ticket) -> Option<DepartmentId> {
    t.department_id.as_deref().and_then(|d| d.parse().ok())
}

fn provider_of(t: &Ticket) -> Option<ProviderId> {
    t.provider_id.as_deref().and_then(|p| p.parse().ok())
}

/// Who works a ticket and hears of its deadlines: the operators of the provider it is
/// assigned to, or the platform admins while no provider is.
async fn workers(
    tx: &mut Tx,
    provider: Option<ProviderId>,
) -> Result<Vec<zy_model::id::UserId>, Error> {
    match provider {
        Some(p) => notify::holders(tx, Role::ProviderOperator, Scope::Provider(p)).await,
        None => notify::holders(tx, Role::PlatformAdmin, Scope::Platform).await,
    }
}

pub struct ListQuery {
    pub state: Option<String>,
    pub provider_id: Option<String>,
    pub limit: Option<i64>,
}

pub async fn list(s: &AppState, actor: &Actor, q: ListQuery) -> Result<Vec<Ticket>, Error> {
    let (departments, providers) = match visible(actor)? {
        None => (None, None),
        Some((d, p)) => (Some(d), Some(p)),
    };
    let state = match q.state.as_deref() {
        None => None,
        Some(x) => Some(TicketState::parse(x).ok_or_else(|| {
            Error::validation(
                "state",
                t!(
                    "状态须为 open、accepted、resolved 或 closed",
                    "state is open, accepted, resolved or closed"
                ),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation(
            "limit",
            t!("limit 须在 1 到 1000 之间", "limit must be 1–1000"),
        ));
    }
    if let Some(p) = &q.provider_id {
        zy_model::validate::name("provider_id", p)?;
    }
    store::tickets(
        &s.store,
        &store::TicketFilter {
            departments,
            providers,
            state,
            provider_id: q.provider_id,
            limit,
        },
    )
    .await
}

async fn load(s: &AppState, actor: &Actor, id: &str) -> Result<Ticket, Error> {
    authorize(&actor.principal, Action::TicketRead)?;
    let t = store::get_ticket(&s.store, id)
        .await?
        .ok_or_else(|| Error::not_found("ticket", id))?;
    authorize(
        &actor.principal,
        Action::TicketView(department_of(&t), provider_of(&t)),
    )?;
    Ok(t)
}

pub async fn get(s: &AppState, actor: &Actor, id: &str) -> Result<TicketDetail, Error> {
    let ticket = load(s, actor, id).await?;
    let timeline = store::events(&s.store, id).await?;
    Ok(TicketDetail { ticket, timeline })
}

fn event(ticket_id: &str, at: Timestamp, actor: &str, action: &str, note: &str) -> TicketEvent {
    TicketEvent {
        id: uuid::Uuid::now_v7().to_string(),
        ticket_id: ticket_id.to_string(),
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        note: note.to_string(),
    }
}

/// A ticket as opened now with the configured deadlines of its priority.
#[allow(clippy::too_many_arguments)]
fn fresh(
    cfg: &TicketSettings,
    now: Timestamp,
    kind: TicketKind,
    priority: TicketPriority,
    title: String,
    description: String,
    department_id: Option<String>,
    provider_id: Option<String>,
    subject: Option<(String, String)>,
    source: &str,
    source_key: Option<String>,
    opened_by: &str,
) -> Ticket {
    let d = cfg.of(priority);
    Ticket {
        id: uuid::Uuid::now_v7().to_string(),
        kind,
        priority,
        state: TicketState::Open,
        title,
        description,
        department_id,
        provider_id,
        subject_kind: subject.as_ref().map(|s| s.0.clone()),
        subject_id: subject.map(|s| s.1),
        source: source.to_string(),
        source_key,
        opened_by: opened_by.to_string(),
        opened_at: now,
        respond_by: Timestamp(now.0 + d.response_mins * MINUTE_US),
        resolve_by: Timestamp(now.0 + d.resolution_mins * MINUTE_US),
        responded_at: None,
        resolved_at: None,
        closed_at: None,
        assignee: None,
        escalation: 0,
        response_missed: false,
        resolution_missed: false,
        rating: None,
        generation: 1,
    }
}

async fn announce_opened(tx: &mut Tx, t: &Ticket) -> Result<(), Error> {
    let to = workers(tx, provider_of(t)).await?;
    notify::enqueue(
        tx,
        &Notice {
            kind: NoticeKind::TicketOpened,
            to,
            params: serde_json::json!({
                "title": t.title,
                "priority": t.priority.as_str().to_uppercase(),
                "respond_by": t.respond_by.to_rfc3339(),
            }),
            link: Some(format!("/tickets/{}", t.id)),
            subject: t.id.parse().ok(),
        },
    )
    .await
}

pub async fn open(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewTicket,
) -> Result<Ticket, Error> {
    authorize(&actor.principal, Action::TicketRead)?;
    let (title, description) = b.validate()?;
    let chosen_provider = match b.provider_id.as_deref() {
        None => None,
        Some(p) => {
            let known = store::provider_names(&s.store).await?;
            if !known.iter().any(|(id, _)| id == p) {
                return Err(Error::validation(
                    "provider_id",
                    t!("没有这个云服务商", "there is no such provider"),
                ));
            }
            Some(p.to_string())
        }
    };
    let given_department: Option<DepartmentId> = match b.department_id.as_deref() {
        None => None,
        Some(d) => Some(d.parse().map_err(|_| {
            Error::validation(
                "department_id",
                t!("部门编号格式不对", "the department id is malformed"),
            )
        })?),
    };
    let (department, provider, subject) = match (b.subject_kind.as_deref(), b.subject_id.as_deref())
    {
        (Some(k), Some(id)) => {
            if !matches!(k, "instance" | "volume" | "host") {
                return Err(Error::validation(
                    "subject_kind",
                    t!(
                        "工单对象须为 instance、volume 或 host",
                        "the subject is an instance, a volume or a host"
                    ),
                ));
            }
            zy_model::validate::name("subject_id", id)?;
            let Some((d, _project, p)) = store::subject(&s.store, k, id).await? else {
                return Err(Error::not_found(k, id));
            };
            let d: Option<DepartmentId> = d.and_then(|d| d.parse().ok());
            if given_department.is_some() && given_department != d {
                return Err(Error::validation(
                    "department_id",
                    t!(
                        "所选部门与该资源所属部门不一致",
                        "the department is not the one the resource belongs to"
                    ),
                ));
            }
            let provider = match (p, chosen_provider) {
                (Some(p), Some(c)) if p != c => {
                    return Err(Error::validation(
                        "provider_id",
                        t!(
                            "该资源由另一家云服务商运行，工单会自动转给它",
                            "another provider runs this resource; the ticket goes to it by itself"
                        ),
                    ))
                }
                (Some(p), _) => Some(p),
                (None, c) => c,
            };
            (d, provider, Some((k.to_string(), id.to_string())))
        }
        (None, None) => (given_department, chosen_provider, None),
        _ => {
            return Err(Error::validation(
                "subject_id",
                t!(
                    "subject_kind 与 subject_id 须同时给出",
                    "subject_kind and subject_id go together"
                ),
            ))
        }
    };
    authorize(&actor.principal, Action::TicketOpen(department))?;
    if provider.is_none() {
        return Err(Error::validation(
            "provider_id",
            t!(
                "请选择受理的云服务商",
                "choose the provider that should handle the ticket"
            ),
        ));
    }
    let cfg = settings(&s.store).await?;
    let now = super::billing::clock(&s.store).await?;
    let ticket = fresh(
        &cfg,
        now,
        b.kind,
        b.priority,
        title,
        description,
        department.map(|d| d.to_string()),
        provider,
        subject,
        "user",
        None,
        &actor.user.username,
    );
    let mut tx = s.store.begin_write().await?;
    store::insert_ticket(&mut tx, &ticket).await?;
    store::add_event(
        &mut tx,
        &event(&ticket.id, now, &actor.user.username, "open", ""),
    )
    .await?;
    announce_opened(&mut tx, &ticket).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "open_ticket",
        "ticket",
        &ticket.id,
        serde_json::json!({ "title": ticket.title, "priority": ticket.priority, "provider": ticket.provider_id }),
    )
    .await?;
    Ok(ticket)
}

/// Which step, for the API handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Accept,
    Resolve,
    Reopen,
    Comment,
}

pub async fn step(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
    kind: StepKind,
    b: TicketStep,
) -> Result<TicketDetail, Error> {
    let t = load(s, actor, id).await?;
    match kind {
        StepKind::Accept | StepKind::Resolve => {
            authorize(&actor.principal, Action::TicketWork(provider_of(&t)))?
        }
        StepKind::Reopen => authorize(&actor.principal, Action::TicketConfirm(department_of(&t)))?,
        StepKind::Comment => {}
    }
    let note = check_note(
        &b.note,
        matches!(kind, StepKind::Reopen | StepKind::Comment),
    )?;
    if b.assignee.is_some() && kind != StepKind::Accept {
        return Err(Error::validation(
            "assignee",
            t!(
                "只有受理时才能指定处理人",
                "an assignee is named only when accepting"
            ),
        ));
    }
    let assignee = match b.assignee.as_deref() {
        Some(a) => zy_model::validate::username(a)?,
        None => actor.user.username.clone(),
    };
    let now = super::billing::clock(&s.store).await?;
    let (st, action) = match kind {
        StepKind::Accept => (
            store::Step::Accept {
                at: now,
                assignee: assignee.clone(),
            },
            "accept",
        ),
        StepKind::Resolve => (store::Step::Resolve { at: now }, "resolve"),
        StepKind::Reopen => (store::Step::Reopen, "reopen"),
        StepKind::Comment => (store::Step::Touch, "comment"),
    };
    let mut tx = s.store.begin_write_for(id).await?;
    if !store::step(&mut tx, id, b.generation, &st).await? {
        drop(tx);
        return Err(state_conflict(s, id).await);
    }
    let note = if kind == StepKind::Accept && note.is_empty() {
        assignee.clone()
    } else {
        note
    };
    store::add_event(
        &mut tx,
        &event(id, now, &actor.user.username, action, &note),
    )
    .await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        &format!("{action}_ticket"),
        "ticket",
        id,
        serde_json::json!({ "from": t.state, "note": note }),
    )
    .await?;
    get(s, actor, id).await
}

async fn state_conflict(s: &AppState, id: &str) -> Error {
    match store::get_ticket(&s.store, id).await {
        Ok(Some(t)) => Error::conflict(t!(
            "工单当前状态为 {}，或已被他人修改，不能这样操作" ;
            "the ticket is {} or was changed meanwhile; this is not possible now",
            t.state.as_str()
        )),
        Ok(None) => Error::not_found("ticket", id),
        Err(e) => e,
    }
}

pub async fn close(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
    b: TicketClose,
) -> Result<TicketDetail, Error> {
    let t = load(s, actor, id).await?;
    authorize(&actor.principal, Action::TicketConfirm(department_of(&t)))?;
    let note = check_note(&b.note, false)?;
    match b.rating {
        Some(r) if !(1..=5).contains(&r) => {
            return Err(Error::validation(
                "rating",
                t!("满意度评分须为 1 到 5", "the rating is 1–5"),
            ))
        }
        None if t.department_id.is_some() => {
            return Err(Error::validation(
                "rating",
                t!(
                    "关闭工单时请给出满意度评分（1 到 5）",
                    "rate the service (1–5) when closing the ticket"
                ),
            ))
        }
        _ => {}
    }
    let now = super::billing::clock(&s.store).await?;
    let mut tx = s.store.begin_write_for(id).await?;
    if !store::step(
        &mut tx,
        id,
        b.generation,
        &store::Step::Close {
            at: now,
            rating: b.rating,
        },
    )
    .await?
    {
        drop(tx);
        return Err(state_conflict(s, id).await);
    }
    let note = match b.rating {
        Some(r) if note.is_empty() => format!("{r}/5"),
        Some(r) => format!("{r}/5 {note}"),
        None => note,
    };
    store::add_event(
        &mut tx,
        &event(id, now, &actor.user.username, "close", &note),
    )
    .await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "close_ticket",
        "ticket",
        id,
        serde_json::json!({ "rating": b.rating }),
    )
    .await?;
    get(s, actor, id).await
}

pub async fn get_settings(s: &AppState, actor: &Actor) -> Result<TicketSettings, Error> {
    authorize(&actor.principal, Action::TicketRead)?;
    settings(&s.store).await
}

pub async fn set_settings(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: TicketSettings,
) -> Result<TicketSettings, Error> {
    authorize(&actor.principal, Action::TicketSettingsManage)?;
    b.validate()?;
    let mut b = b;
    b.deadlines.sort_by_key(|d| d.priority);
    let mut tx = s.store.begin_write().await?;
    zy_store::settings::put(&mut tx, SETTINGS_KEY, &b).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_ticket_settings",
        "settings",
        SETTINGS_KEY,
        serde_json::to_value(&b).unwrap_or_default(),
    )
    .await?;
    Ok(b)
}

// ---------------------------------------------------------------- opened by the system

/// Opens a ticket for an alert or an inspection inside the caller's transaction, unless an
/// open ticket with the same key exists: then only a timeline entry is added to it.
/// Returns the ticket's id.
#[allow(clippy::too_many_arguments)]
pub async fn open_system(
    tx: &mut Tx,
    cfg: &TicketSettings,
    now: Timestamp,
    source: &str,
    key: &str,
    title: String,
    description: String,
    department_id: Option<String>,
    provider_id: Option<String>,
    subject: Option<(String, String)>,
    priority: TicketPriority,
) -> Result<String, Error> {
    if let Some(t) = store::open_by_key(tx, key).await? {
        store::add_event(
            tx,
            &event(
                &t.id,
                now,
                "system",
                &format!("{source}_again"),
                &description,
            ),
        )
        .await?;
        return Ok(t.id);
    }
    let ticket = fresh(
        cfg,
        now,
        TicketKind::Fault,
        priority,
        zy_model::validate::clip(&title, 100),
        zy_model::validate::clip(&description, 4000),
        department_id,
        provider_id,
        subject,
        source,
        Some(key.to_string()),
        "system",
    );
    if !store::insert_ticket(tx, &ticket).await? {
        return Err(Error::conflict(t!(
            "同一来源的工单刚被打开，请重试",
            "a ticket of the same source was just opened; try again"
        )));
    }
    store::add_event(tx, &event(&ticket.id, now, "system", "open", &description)).await?;
    announce_opened(tx, &ticket).await?;
    Ok(ticket.id)
}

/// The alert seam: a firing alert of a rule that opens tickets opens one (or notes the
/// repeat on the open one); a resolved one adds a timeline entry to it.
pub async fn on_alert(
    tx: &mut Tx,
    store_: &Store,
    rule: &zy_model::alerts::AlertRule,
    e: &zy_model::alerts::AlertEvent,
) -> Result<(), Error> {
    if !rule.open_ticket {
        return Ok(());
    }
    let key = format!("alert:{}:{}", rule.id, e.target_id);
    let now = super::billing::clock(store_).await?;
    if e.state == "resolved" {
        if let Some(t) = store::open_by_key(tx, &key).await? {
            store::add_event(
                tx,
                &event(
                    &t.id,
                    now,
                    "system",
                    "alert_resolved",
                    &format!("{} · {}", rule.name, e.target_name),
                ),
            )
            .await?;
        }
        return Ok(());
    }
    let kind = match e.target {
        zy_model::alerts::AlertTarget::Instance => "instance",
        zy_model::alerts::AlertTarget::Host => "host",
    };
    let provider = store::subject(store_, kind, &e.target_id)
        .await?
        .and_then(|x| x.2);
    let cfg = settings(store_).await?;
    let value = e.value.map(|v| format!("{v:.2}")).unwrap_or_default();
    open_system(
        tx,
        &cfg,
        now,
        "alert",
        &key,
        format!("告警：{} · {}", rule.name, e.target_name),
        format!(
            "告警规则「{}」对 {} 触发（当前值 {value}）/ alert rule \"{}\" fired on {} (value {value})",
            rule.name, e.target_name, rule.name, e.target_name
        ),
        rule.department_id.clone(),
        provider,
        Some((kind.to_string(), e.target_id.clone())),
        TicketPriority::L2,
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- figures

/// A provider's tickets opened in [from, to) as of `now` (the metering clock): opened,
/// closed, deadlines due and met, escalated, ratings. See `TicketStats` for what counts.
/// The reference for `zy_store::operations::ticket_stats`, which counts the same in the
/// database (the province-scale benchmark compares the two).
pub fn stats_of(tickets: &[Ticket], now: Timestamp) -> TicketStats {
    let mut s = TicketStats::default();
    for t in tickets {
        s.opened += 1;
        if t.state == TicketState::Closed {
            s.closed += 1;
        }
        match t.responded_at {
            Some(r) => {
                s.response_due += 1;
                if r <= t.respond_by {
                    s.response_met += 1;
                }
            }
            None if now > t.respond_by => s.response_due += 1,
            None => {}
        }
        match t.resolved_at {
            Some(r) => {
                s.resolution_due += 1;
                if r <= t.resolve_by {
                    s.resolution_met += 1;
                }
            }
            None if now > t.resolve_by => s.resolution_due += 1,
            None => {}
        }
        if t.escalation > 0 || t.response_missed || t.resolution_missed {
            s.escalated += 1;
        }
        if let Some(r) = t.rating {
            s.ratings += 1;
            s.rating_sum += r;
        }
    }
    s.satisfaction_avg = (s.ratings > 0).then(|| s.rating_sum as f64 / s.ratings as f64);
    s
}

/// The supervision figure: a provider's ticket timeliness and satisfaction for the
/// tickets opened in [from, to), as of the metering clock's now.
pub async fn provider_ticket_stats(
    store_: &Store,
    provider_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<TicketStats, Error> {
    let now = super::billing::clock(store_).await?;
    store::ticket_stats(store_, provider_id, from, to, now).await
}

// ---------------------------------------------------------------- timers

pub fn timers(s: AppState) -> Arc<dyn crate::tasks::Task> {
    Arc::new(TicketTimers(s))
}

/// `ticket_timers` (singleton, every 5 s): escalates each ticket once per missed deadline
/// (conditional update), with a timeline entry and a notice to the providers' operators
/// and the supervisors.
struct TicketTimers(AppState);

impl crate::tasks::Task for TicketTimers {
    fn name(&self) -> &'static str {
        "ticket_timers"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(5)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let s = &self.0;
            let now = super::billing::clock(&s.store).await?;
            let mut escalated = 0;
            for (t, response) in store::overdue(&s.store, now).await? {
                let mut tx = s.store.begin_write_for(&t.id).await?;
                if store::escalate(&mut tx, &t.id, response).await? {
                    let level = t.escalation + 1;
                    let (action, due) = if response {
                        ("escalate_response", t.respond_by)
                    } else {
                        ("escalate_resolution", t.resolve_by)
                    };
                    store::add_event(
                        &mut tx,
                        &event(&t.id, now, "system", action, &format!("level {level}")),
                    )
                    .await?;
                    let mut to = workers(&mut tx, provider_of(&t)).await?;
                    to.extend(notify::holders(&mut tx, Role::Supervisor, Scope::Platform).await?);
                    notify::enqueue(
                        &mut tx,
                        &Notice {
                            kind: NoticeKind::TicketEscalated,
                            to,
                            params: serde_json::json!({
                                "title": t.title,
                                "deadline": if response { "响应 / response" } else { "解决 / resolution" },
                                "due": due.to_rfc3339(),
                                "level": level,
                            }),
                            link: Some(format!("/tickets/{}", t.id)),
                            subject: t.id.parse().ok(),
                        },
                    )
                    .await?;
                    escalated += 1;
                }
                tx.commit().await.map_err(zy_store::db_error)?;
            }
            Ok(serde_json::json!({ "escalated": escalated }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_count_once_due_or_met() {
        let cfg = TicketSettings::default();
        let t0 = Timestamp(1_000_000_000_000);
        let mk = || {
            fresh(
                &cfg,
                t0,
                TicketKind::Fault,
                TicketPriority::L1,
                "x".into(),
                String::new(),
                None,
                Some("p".into()),
                None,
                "user",
                None,
                "u",
            )
        };
        let pending = mk();
        let mut late = mk();
        late.responded_at = Some(Timestamp(t0.0 + 16 * MINUTE_US));
        late.escalation = 1;
        let mut good = mk();
        good.responded_at = Some(Timestamp(t0.0 + MINUTE_US));
        good.resolved_at = Some(Timestamp(t0.0 + 60 * MINUTE_US));
        good.state = TicketState::Closed;
        good.rating = Some(4);
        let now = Timestamp(t0.0 + 10 * MINUTE_US);
        let s = stats_of(&[pending.clone(), late.clone(), good.clone()], now);
        assert_eq!(
            (s.opened, s.closed, s.response_due, s.response_met),
            (3, 1, 2, 1)
        );
        assert_eq!((s.resolution_due, s.resolution_met, s.escalated), (1, 1, 1));
        assert_eq!(s.satisfaction_avg, Some(4.0));
        // Twenty minutes on, the pending ticket's response is due (and missed).
        let s = stats_of(&[pending], Timestamp(t0.0 + 20 * MINUTE_US));
        assert_eq!((s.response_due, s.response_met), (1, 0));
    }
}
