//! Metering, rating and billing (计量 / 计费 / 账单): usage reports from the ledger, price-list
//! versions, draft bills of open months computed on read, month close (one transaction:
//! every department's bill and lines, or nothing), adjustments by finance, confirmation by
//! the department, payment, what each provider is owed, budgets with alerts and a forecast,
//! reconciliation of a provider's claimed usage against our meter, and the test clock.
//!
//! Months are calendar months in Asia/Shanghai, named `YYYY-MM`. Rating is `zy-rating`'s:
//! exact per-second intervals, one rounding per bill line (half away from zero).

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use chrono::{Datelike, TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;
use zy_model::billing::*;
use zy_model::id::*;
use zy_model::time::{shanghai, Timestamp};
use zy_model::{t, Error, Money};
use zy_policy::{authorize, Action};
use zy_rating::{Event, Interval, Line, PriceList, Snapshot, Status};
use zy_store::billing::{Names, UsageFilter};

pub mod budgets;
pub mod demo;
pub mod export;
pub mod pdf;
pub mod prices;
pub mod reconcile;
pub mod xlsx;
pub mod xlsx_read;

pub use budgets::*;
pub use export::*;
pub use pdf::bill_pdf;
pub use prices::*;
pub use reconcile::*;
pub use xlsx::bill_xlsx;
use zy_store::Store;

// ---------------------------------------------------------------- months

/// `[start, end)` of a `YYYY-MM` month in Asia/Shanghai.
pub fn month_bounds(month: &str) -> Result<(Timestamp, Timestamp), Error> {
    let bad = || {
        Error::validation(
            "month",
            t!(
                "月份须写作 YYYY-MM（2000–2099 年），例如 2026-11",
                "a month is written YYYY-MM (years 2000–2099), e.g. 2026-11"
            ),
        )
    };
    let b = month.as_bytes();
    if b.len() != 7
        || b[4] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
    {
        return Err(bad());
    }
    let y: i32 = month[..4].parse().map_err(|_| bad())?;
    let m: u32 = month[5..].parse().map_err(|_| bad())?;
    if !(2000..=2099).contains(&y) || !(1..=12).contains(&m) {
        return Err(bad());
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let tz = shanghai();
    let start = tz
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .ok_or_else(bad)?;
    let end = tz
        .with_ymd_and_hms(ny, nm, 1, 0, 0, 0)
        .single()
        .ok_or_else(bad)?;
    Ok((
        Timestamp(start.timestamp() * 1_000_000),
        Timestamp(end.timestamp() * 1_000_000),
    ))
}

/// The month (Asia/Shanghai) an instant falls in.
pub fn month_of(t: Timestamp) -> String {
    let d = chrono::DateTime::from_timestamp_micros(t.0)
        .unwrap_or_default()
        .with_timezone(&shanghai());
    format!("{:04}-{:02}", d.year(), d.month())
}

fn secs(t: Timestamp) -> i64 {
    t.0.div_euclid(1_000_000)
}

// ---------------------------------------------------------------- rating the ledger

/// Every provider's price list, compiled.
async fn price_lists(store: &Store) -> Result<HashMap<ProviderId, PriceList>, Error> {
    let versions = zy_store::billing::versions(store, None, Timestamp(0)).await?;
    let mut by: BTreeMap<ProviderId, Vec<(i64, Rates)>> = BTreeMap::new();
    for v in versions {
        by.entry(v.provider_id)
            .or_default()
            .push((secs(v.effective_from), v.rates));
    }
    Ok(by
        .into_iter()
        .map(|(p, vs)| {
            let refs: Vec<(i64, &Rates)> = vs.iter().map(|(f, r)| (*f, r)).collect();
            (p, PriceList::new(&refs))
        })
        .collect())
}

/// Bill lines of `[from, to)` rated from the ledger, one per resource that was billed
/// for any second of it, ordered by project and resource name.
pub async fn rate_period(
    store: &Store,
    f: &UsageFilter,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<BillLine>, Error> {
    let events = zy_store::billing::usage_until(store, f, to).await?;
    let lists = price_lists(store).await?;
    let names = zy_store::billing::names(store).await?;
    let empty = PriceList::default();
    let (from_s, to_s) = (secs(from), secs(to));
    let mut lines = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let mut j = i;
        while j < events.len() && events[j].resource_id == events[i].resource_id {
            j += 1;
        }
        let group = &events[i..j];
        i = j;
        let last = &group[group.len() - 1];
        let provider = group.iter().rev().find_map(|e| e.provider_id);
        let list = provider.and_then(|p| lists.get(&p)).unwrap_or(&empty);
        let mut evs: Vec<Event> = group
            .iter()
            .map(|e| Event {
                seq: e.seq,
                at: secs(e.at),
                snapshot: Snapshot {
                    status: match e.status {
                        UsageStatus::Running => Status::Running,
                        UsageStatus::Stopped => Status::Stopped,
                        UsageStatus::Allocated => Status::Allocated,
                        UsageStatus::None => Status::None,
                    },
                    volume: e.kind == ResourceKind::Volume,
                    vcpus: e.vcpus,
                    memory_mib: e.memory_mib,
                    disk_gib: e.disk_gib,
                    gpus: e.gpus,
                    flavor: list.flavor_id(&e.flavor),
                },
            })
            .collect();
        let ivs: Vec<Interval> = zy_rating::intervals(&mut evs, from_s, to_s);
        if ivs.is_empty() {
            continue;
        }
        let dept = list.department(&last.department_id.to_string());
        let mut line = Line::default();
        for iv in &ivs {
            line.add(list, &dept, iv);
        }
        lines.push(to_bill_line(last, provider, &line, &names));
    }
    lines.sort_by(|a, b| {
        (a.department_id, &a.project_name, &a.name, &a.resource_id).cmp(&(
            b.department_id,
            &b.project_name,
            &b.name,
            &b.resource_id,
        ))
    });
    Ok(lines)
}

fn to_bill_line(e: &UsageEvent, provider: Option<ProviderId>, l: &Line, n: &Names) -> BillLine {
    BillLine {
        department_id: e.department_id,
        project_id: e.project_id,
        project_name: n
            .projects
            .get(&e.project_id.to_string())
            .cloned()
            .unwrap_or_default(),
        provider_id: provider,
        provider_name: provider
            .and_then(|p| n.providers.get(&p.to_string()).cloned())
            .unwrap_or_default(),
        resource_id: e.resource_id.clone(),
        kind: e.kind,
        name: e.name.clone(),
        running_secs: l.running_secs,
        stopped_secs: l.stopped_secs,
        vcpu_secs: l.vcpu_secs,
        memory_mib_secs: l.memory_mib_secs,
        disk_gib_secs: l.disk_gib_secs,
        gpu_secs: l.gpu_secs,
        amount: l.amount(),
    }
}

/// The metering clock now (real time unless the test clock moved it).
pub async fn clock(store: &Store) -> Result<Timestamp, Error> {
    zy_store::billing::now(store.pool()).await
}

// ---------------------------------------------------------------- usage

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UsageQuery {
    pub month: Option<String>,
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub provider_id: Option<ProviderId>,
    pub resource_id: Option<String>,
}

/// Usage and its cost per resource for a month (month to date while it is open), for a
/// department, project, provider or resource.
pub async fn usage(s: &AppState, actor: &Actor, q: UsageQuery) -> Result<Vec<BillLine>, Error> {
    let now = clock(&s.store).await?;
    let month = q.month.clone().unwrap_or_else(|| month_of(now));
    let (from, end) = month_bounds(&month)?;
    let mut department = q.department_id;
    if let Some(p) = q.project_id {
        let pr = zy_store::projects::get(s.store.pool(), p)
            .await?
            .ok_or_else(|| Error::not_found("project", p))?;
        if department.is_some_and(|d| d != pr.department_id) {
            return Err(Error::invalid(t!(
                "该项目不属于所给部门",
                "the project does not belong to the given department"
            )));
        }
        department = Some(pr.department_id);
    }
    match department {
        Some(d) => authorize(&actor.principal, Action::BillRead(d))?,
        None => authorize(&actor.principal, Action::BillReadAll)?,
    }
    if let Some(r) = &q.resource_id {
        if r.len() > 64 {
            return Err(Error::validation(
                "resource_id",
                t!("资源 ID 太长", "the resource id is too long"),
            ));
        }
    }
    let f = UsageFilter {
        department_id: department,
        project_id: q.project_id,
        provider_id: q.provider_id,
        resource_id: q.resource_id,
    };
    rate_period(&s.store, &f, from, end.min(now)).await
}

// ---------------------------------------------------------------- bills

/// Months: every closed one, and the open month now.
pub async fn months(s: &AppState, actor: &Actor) -> Result<Vec<BillingMonth>, Error> {
    authorize(&actor.principal, Action::BillReadAll)?;
    let mut v = zy_store::billing::closed_months(&s.store).await?;
    let now = clock(&s.store).await?;
    let current = month_of(now);
    if !v.iter().any(|m| m.month == current) {
        let (from, _) = month_bounds(&current)?;
        let lines = rate_period(&s.store, &UsageFilter::default(), from, now).await?;
        v.push(BillingMonth {
            month: current,
            closed: false,
            closed_at: None,
            total: Money::sum(lines.iter().map(|l| l.amount)),
        });
    }
    Ok(v)
}

/// Closes a month: rates it from the ledger and writes every department's bill and lines,
/// the month's row and the audit record in one transaction, so a crash leaves the month
/// either closed completely or still open. Only a month that has ended can be closed.
pub async fn close_month(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    month: &str,
) -> Result<BillingMonth, Error> {
    authorize(&actor.principal, Action::BillingManage)?;
    let (from, to) = month_bounds(month)?;
    let now = clock(&s.store).await?;
    if now < to {
        return Err(Error::conflict(t!(
            "{} 尚未结束，不能月结" ; "{} has not ended yet and cannot be closed", month
        )));
    }
    if zy_store::billing::month_closed(s.store.pool(), month).await? {
        return Err(Error::conflict(t!(
            "该月已经月结",
            "this month is already closed"
        )));
    }
    let bills = month_bills(&s.store, from, to, month).await?;
    let total = Money::sum(bills.iter().map(|b| b.usage_total));
    let n_lines: usize = bills.iter().map(|b| b.lines.len()).sum();
    let mut tx = s.store.begin_write().await?;
    zy_store::billing::write_closed_month(&mut tx, month, actor.user.id, &bills).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "close_month",
        "billing_month",
        month,
        serde_json::json!({ "bills": bills.len(), "lines": n_lines, "total_fen": total }),
    )
    .await?;
    Ok(BillingMonth {
        month: month.to_string(),
        closed: true,
        closed_at: Some(now),
        total,
    })
}

/// Every department's bill for `[from, to)` (departments without usage get an empty bill,
/// so each can confirm it).
pub async fn month_bills(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
    month: &str,
) -> Result<Vec<Bill>, Error> {
    let lines = rate_period(store, &UsageFilter::default(), from, to).await?;
    let names = zy_store::billing::names(store).await?;
    let mut by: BTreeMap<DepartmentId, Vec<BillLine>> = BTreeMap::new();
    for id in names.departments.keys() {
        if let Ok(d) = id.parse::<DepartmentId>() {
            by.entry(d).or_default();
        }
    }
    for l in lines {
        by.entry(l.department_id).or_default().push(l);
    }
    Ok(by
        .into_iter()
        .map(|(d, lines)| {
            let usage = Money::sum(lines.iter().map(|l| l.amount));
            Bill {
                month: month.to_string(),
                department_id: d,
                department_name: names
                    .departments
                    .get(&d.to_string())
                    .cloned()
                    .unwrap_or_default(),
                state: BillState::Draft,
                usage_total: usage,
                adjustments_total: Money::ZERO,
                total: usage,
                generation: 0,
                lines,
                adjustments: vec![],
            }
        })
        .collect())
}

/// One department's bill: stored when the month is closed, computed (draft, month to
/// date) when it is open.
pub async fn bill(
    s: &AppState,
    actor: &Actor,
    month: &str,
    d: DepartmentId,
) -> Result<Bill, Error> {
    authorize(&actor.principal, Action::BillRead(d))?;
    load_bill(&s.store, month, d).await
}

async fn load_bill(store: &Store, month: &str, d: DepartmentId) -> Result<Bill, Error> {
    let (from, to) = month_bounds(month)?;
    let stored = zy_store::billing::bills(store, Some(month), Some(d)).await?;
    if let Some((sum, generation)) = stored.into_iter().next() {
        let lines = zy_store::billing::lines(store, month, Some(d), None).await?;
        let adjustments = zy_store::billing::adjustments(store, month, d).await?;
        return Ok(Bill {
            month: sum.month,
            department_id: d,
            department_name: sum.department_name,
            state: sum.state,
            usage_total: sum.usage_total,
            adjustments_total: sum.adjustments_total,
            total: sum.total,
            generation,
            lines,
            adjustments,
        });
    }
    if zy_store::billing::month_closed(store.pool(), month).await? {
        return Err(Error::not_found("bill", format!("{month}/{d}")));
    }
    let dept = zy_store::departments::get(store.pool(), d)
        .await?
        .ok_or_else(|| Error::not_found("department", d))?;
    let now = clock(store).await?;
    let f = UsageFilter {
        department_id: Some(d),
        ..Default::default()
    };
    let lines = rate_period(store, &f, from, to.min(now)).await?;
    let usage = Money::sum(lines.iter().map(|l| l.amount));
    Ok(Bill {
        month: month.to_string(),
        department_id: d,
        department_name: dept.name,
        state: BillState::Draft,
        usage_total: usage,
        adjustments_total: Money::ZERO,
        total: usage,
        generation: 0,
        lines,
        adjustments: vec![],
    })
}

/// Bills of every department for a month (finance, supervisor), or one department's bills
/// over the last `months` months with the open month's draft (its trend).
pub async fn list_bills(
    s: &AppState,
    actor: &Actor,
    month: Option<String>,
    department: Option<DepartmentId>,
) -> Result<Vec<BillSummary>, Error> {
    match department {
        Some(d) => {
            authorize(&actor.principal, Action::BillRead(d))?;
            let mut v: Vec<BillSummary> =
                zy_store::billing::bills(&s.store, month.as_deref(), Some(d))
                    .await?
                    .into_iter()
                    .map(|(b, _)| b)
                    .collect();
            // The trend: with no month given, the open months among the last six (drafts,
            // month to date) beside the closed ones; with a month, that month.
            let now = clock(&s.store).await?;
            let wanted: Vec<String> = match &month {
                Some(m) => vec![m.clone()],
                None => last_months(&month_of(now), TREND_MONTHS),
            };
            for m in wanted {
                if !v.iter().any(|b| b.month == m)
                    && !zy_store::billing::month_closed(s.store.pool(), &m).await?
                {
                    let b = load_bill(&s.store, &m, d).await?;
                    if month.is_some() || !b.lines.is_empty() || m == month_of(now) {
                        v.push(summary(&b));
                    }
                }
            }
            v.sort_by(|a, b| a.month.cmp(&b.month));
            Ok(v)
        }
        None => {
            authorize(&actor.principal, Action::BillReadAll)?;
            let now = clock(&s.store).await?;
            let m = month.unwrap_or_else(|| month_of(now));
            let (from, to) = month_bounds(&m)?;
            if zy_store::billing::month_closed(s.store.pool(), &m).await? {
                return Ok(zy_store::billing::bills(&s.store, Some(&m), None)
                    .await?
                    .into_iter()
                    .map(|(b, _)| b)
                    .collect());
            }
            Ok(month_bills(&s.store, from, to.min(now), &m)
                .await?
                .iter()
                .map(summary)
                .collect())
        }
    }
}

/// Months a department's trend shows without a month asked for.
const TREND_MONTHS: u32 = 6;

/// `n` months up to and including `month` (`YYYY-MM`), oldest first.
fn last_months(month: &str, n: u32) -> Vec<String> {
    let (y, m): (i32, i32) = (
        month[..4].parse().unwrap_or(2000),
        month[5..].parse().unwrap_or(1),
    );
    let idx = y * 12 + (m - 1);
    (0..n as i32)
        .rev()
        .map(|k| idx - k)
        .filter(|i| *i >= 2000 * 12)
        .map(|i| format!("{:04}-{:02}", i / 12, i % 12 + 1))
        .collect()
}

fn summary(b: &Bill) -> BillSummary {
    BillSummary {
        month: b.month.clone(),
        department_id: b.department_id,
        department_name: b.department_name.clone(),
        state: b.state,
        usage_total: b.usage_total,
        adjustments_total: b.adjustments_total,
        total: b.total,
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdjustment {
    /// Fen; negative gives money back.
    pub amount: Money,
    pub reason: String,
    /// The bill's `generation` the adjustment was decided on (optional).
    pub generation: Option<i64>,
}

/// An adjustment line on a closed, unpaid bill (finance, with a reason; audited).
pub async fn adjust(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    month: &str,
    d: DepartmentId,
    b: NewAdjustment,
) -> Result<Bill, Error> {
    authorize(&actor.principal, Action::BillingManage)?;
    month_bounds(month)?;
    let reason = b.reason.trim();
    if reason.is_empty() {
        return Err(Error::validation(
            "reason",
            t!("调整须写明原因", "an adjustment needs a reason"),
        ));
    }
    let reason = zy_model::validate::description("reason", reason)?;
    if b.amount.0 == 0 || b.amount.0.unsigned_abs() > 100_000_000_000 {
        return Err(Error::validation(
            "amount",
            t!(
                "调整金额须非零且不超过十亿元",
                "the amount is non-zero and at most one billion yuan"
            ),
        ));
    }
    let mut tx = s.store.begin_write().await?;
    if !zy_store::billing::month_closed(&mut *tx, month).await? {
        return Err(Error::conflict(t!(
            "该月尚未月结：草稿账单随用量变化，月结后才能调整",
            "this month is still open: a draft bill follows the meter and can be adjusted only after the month is closed"
        )));
    }
    let a = Adjustment {
        id: AdjustmentId::new(),
        amount: b.amount,
        reason,
        created_at: Timestamp::now(),
        created_by: actor.user.id,
    };
    if !zy_store::billing::add_adjustment(&mut tx, month, d, b.generation, &a).await? {
        return Err(bill_state_conflict(&s.store, month, d).await);
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "adjust_bill",
        "bill",
        &format!("{month}/{d}"),
        serde_json::json!({ "amount_fen": a.amount, "reason": a.reason, "adjustment_id": a.id }),
    )
    .await?;
    load_bill(&s.store, month, d).await
}

async fn bill_state_conflict(store: &Store, month: &str, d: DepartmentId) -> Error {
    match zy_store::billing::bills(store, Some(month), Some(d)).await {
        Ok(v) if v.is_empty() => Error::not_found("bill", format!("{month}/{d}")),
        Ok(v) => {
            let st = v[0].0.state.as_str();
            Error::conflict(t!(
                "账单当前状态为 {}，或已被他人修改，不能这样操作" ;
                "the bill is {} or was changed meanwhile; this is not possible now", st
            ))
        }
        Err(e) => e,
    }
}

/// The department confirms its closed bill (closed → confirmed).
pub async fn confirm(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    month: &str,
    d: DepartmentId,
) -> Result<Bill, Error> {
    authorize(&actor.principal, Action::BillConfirm(d))?;
    transition(
        s,
        ctx,
        actor,
        month,
        d,
        BillState::Closed,
        BillState::Confirmed,
        "confirm_bill",
    )
    .await
}

/// Finance records the payment of a confirmed bill (confirmed → paid).
pub async fn pay(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    month: &str,
    d: DepartmentId,
) -> Result<Bill, Error> {
    authorize(&actor.principal, Action::BillingManage)?;
    transition(
        s,
        ctx,
        actor,
        month,
        d,
        BillState::Confirmed,
        BillState::Paid,
        "pay_bill",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn transition(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    month: &str,
    d: DepartmentId,
    from: BillState,
    to: BillState,
    action: &str,
) -> Result<Bill, Error> {
    month_bounds(month)?;
    let mut tx = s.store.begin_write().await?;
    let at = zy_store::billing::now(&mut *tx).await?;
    if !zy_store::billing::set_bill_state(&mut tx, month, d, from, to, actor.user.id, at).await? {
        drop(tx);
        return Err(bill_state_conflict(&s.store, month, d).await);
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        action,
        "bill",
        &format!("{month}/{d}"),
        serde_json::json!({ "from": from, "to": to }),
    )
    .await?;
    load_bill(&s.store, month, d).await
}

/// What the city owes each provider for a month, by department (closed: as closed; open:
/// month to date).
pub async fn provider_bills(
    s: &AppState,
    actor: &Actor,
    month: Option<String>,
) -> Result<Vec<ProviderBill>, Error> {
    let visible = zy_policy::provider_visibility(&actor.principal, Action::ProviderBillRead);
    if !visible.is_any() {
        authorize(&actor.principal, Action::ProviderBillRead(None))?;
    }
    let now = clock(&s.store).await?;
    let month = month.unwrap_or_else(|| month_of(now));
    let (from, to) = month_bounds(&month)?;
    let names = zy_store::billing::names(&s.store).await?;
    let closed = zy_store::billing::month_closed(s.store.pool(), &month).await?;
    let rows: Vec<(Option<String>, String, i64)> = if closed {
        zy_store::billing::provider_totals(&s.store, &month).await?
    } else {
        let mut m: BTreeMap<(Option<String>, String), i64> = BTreeMap::new();
        for l in rate_period(&s.store, &UsageFilter::default(), from, to.min(now)).await? {
            *m.entry((
                l.provider_id.map(|p| p.to_string()),
                l.department_id.to_string(),
            ))
            .or_default() += l.amount.0;
        }
        m.into_iter().map(|((p, d), f)| (p, d, f)).collect()
    };
    let mut out: BTreeMap<String, ProviderBill> = BTreeMap::new();
    for (p, d, fen) in rows {
        let Some(pid) = p.as_deref().and_then(|p| p.parse::<ProviderId>().ok()) else {
            continue;
        };
        let e = out.entry(pid.to_string()).or_insert_with(|| ProviderBill {
            month: month.clone(),
            provider_id: pid,
            provider_name: names
                .providers
                .get(&pid.to_string())
                .cloned()
                .unwrap_or_default(),
            closed,
            total: Money::ZERO,
            departments: vec![],
            adjustments: vec![],
            payable: Money::ZERO,
        });
        e.total = e.total + Money(fen);
        if let Ok(did) = d.parse::<DepartmentId>() {
            e.departments.push(ProviderBillDepartment {
                department_id: did,
                department_name: names.departments.get(&d).cloned().unwrap_or_default(),
                amount: Money(fen),
            });
        }
    }
    for a in zy_store::operations::provider_adjustments(&s.store, &month).await? {
        if let Some(b) = out.get_mut(&a.provider_id) {
            b.adjustments.push(ProviderBillAdjustment {
                source: a.source,
                amount: Money(a.amount_fen),
                reason: a.reason,
                created_at: a.created_at,
            });
        }
    }
    for b in out.values_mut() {
        b.payable = b.total + Money(b.adjustments.iter().map(|a| a.amount.0).sum());
    }
    Ok(out
        .into_values()
        .filter(|b| visible.includes(b.provider_id))
        .collect())
}

// ---------------------------------------------------------------- test clock

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetClock {
    /// The instant the metering clock shows from now on (never earlier than it shows).
    pub to: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClockStatus {
    pub now: Timestamp,
    /// Offset from real time in seconds.
    pub offset_secs: i64,
}

/// Moves the metering clock forward (servers started with `--test-clock` only): usage
/// events, price-version checks and month close then see that instant as now.
pub async fn set_clock(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: SetClock,
) -> Result<ClockStatus, Error> {
    authorize(&actor.principal, Action::BillingManage)?;
    if !s.config.test_clock {
        return Err(Error::conflict(t!(
            "计量时钟只能在以 --test-clock 启动的测试服务器上调整",
            "the metering clock can be moved only on a server started with --test-clock"
        )));
    }
    if month_bounds(&month_of(b.to)).is_err() {
        return Err(Error::validation(
            "to",
            t!("时间超出范围", "the instant is out of range"),
        ));
    }
    let mut tx = s.store.begin_write().await?;
    let Some(off) = zy_store::billing::advance_clock(&mut tx, b.to).await? else {
        return Err(Error::conflict(t!(
            "计量时钟只能向前调整",
            "the metering clock only moves forward"
        )));
    };
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_billing_clock",
        "billing_clock",
        "1",
        serde_json::json!({ "to": b.to, "offset_us": off }),
    )
    .await?;
    Ok(ClockStatus {
        now: b.to,
        offset_secs: off / 1_000_000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trend_counts_back_across_the_new_year() {
        assert_eq!(
            last_months("2027-02", 4),
            vec!["2026-11", "2026-12", "2027-01", "2027-02"]
        );
        assert_eq!(last_months("2000-02", 6), vec!["2000-01", "2000-02"]);
    }

    #[test]
    fn months_are_calendar_months_in_shanghai() {
        let (a, b) = month_bounds("2026-11").expect("month");
        assert_eq!(a.to_rfc3339(), "2026-11-01T00:00:00.000+08:00");
        assert_eq!(b.to_rfc3339(), "2026-12-01T00:00:00.000+08:00");
        assert_eq!(
            month_bounds("2026-12").expect("dec").1.to_rfc3339(),
            "2027-01-01T00:00:00.000+08:00"
        );
        assert_eq!(month_of(Timestamp(a.0 - 1)), "2026-10");
        assert_eq!(month_of(a), "2026-11");
        for bad in [
            "2026-13",
            "2026-00",
            "1999-01",
            "26-11",
            "2026/11",
            "２０２６-11",
            "2026-1",
        ] {
            assert!(month_bounds(bad).is_err(), "{bad}");
        }
    }
}
