//! Budgets per department: the monthly amount, spending so far, a forecast to month end,
//! and the 80 % / 100 % alerts raised once each by the `budget_watch` task.

use super::*;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetAlert {
    pub month: String,
    /// 80 or 100 (% of the monthly budget).
    pub level: u32,
    pub at: Timestamp,
    pub spent: Money,
    pub budget: Money,
}

/// A department's budget with this month's spending so far and the forecast to month end.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetStatus {
    pub department_id: DepartmentId,
    pub month: String,
    /// `None` when no budget is set.
    pub monthly: Option<Money>,
    pub spent: Money,
    /// `spent` extrapolated at the month's run rate so far to the whole month.
    pub forecast: Money,
    /// `spent` as per mille of the budget (`None` without a budget).
    pub used_permille: Option<i64>,
    pub alerts: Vec<BudgetAlert>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// Fen per month.
    pub monthly: Money,
}

pub async fn budget(s: &AppState, actor: &Actor, d: DepartmentId) -> Result<BudgetStatus, Error> {
    authorize(&actor.principal, Action::BillRead(d))?;
    zy_store::departments::get(s.store.pool(), d)
        .await?
        .ok_or_else(|| Error::not_found("department", d))?;
    budget_status(&s.store, d).await
}

async fn budget_status(store: &Store, d: DepartmentId) -> Result<BudgetStatus, Error> {
    let now = clock(store).await?;
    let month = month_of(now);
    let (from, to) = month_bounds(&month)?;
    let monthly = zy_store::billing::budgets(store)
        .await?
        .into_iter()
        .find(|(x, _)| *x == d)
        .map(|(_, m)| m);
    let f = UsageFilter {
        department_id: Some(d),
        ..Default::default()
    };
    let spent = Money::sum(
        rate_period(store, &f, from, now.min(to))
            .await?
            .iter()
            .map(|l| l.amount),
    );
    let forecast = forecast(spent, from, now, to);
    let alerts = zy_store::billing::alerts(store, Some(d))
        .await?
        .into_iter()
        .map(|a| BudgetAlert {
            month: a.month,
            level: a.level,
            at: a.at,
            spent: a.spent,
            budget: a.budget,
        })
        .collect();
    Ok(BudgetStatus {
        department_id: d,
        month,
        monthly,
        spent,
        forecast,
        used_permille: monthly
            .filter(|m| m.0 > 0)
            .map(|m| (i128::from(spent.0) * 1000 / i128::from(m.0)) as i64),
        alerts,
    })
}

/// Month-end forecast at the run rate so far: `spent × month length ÷ elapsed`, in integer
/// arithmetic.
pub fn forecast(spent: Money, from: Timestamp, now: Timestamp, to: Timestamp) -> Money {
    let elapsed = i128::from((now.0.min(to.0) - from.0).max(1));
    let whole = i128::from(to.0 - from.0);
    Money((i128::from(spent.0) * whole / elapsed) as i64)
}

pub async fn set_budget(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    d: DepartmentId,
    b: SetBudget,
) -> Result<BudgetStatus, Error> {
    authorize(&actor.principal, Action::BillingManage)?;
    if b.monthly.0 < 0 || b.monthly.0 > 100_000_000_000 {
        return Err(Error::validation(
            "monthly",
            t!(
                "预算须在 0 到十亿元之间",
                "a budget is between 0 and one billion yuan"
            ),
        ));
    }
    zy_store::departments::get(s.store.pool(), d)
        .await?
        .ok_or_else(|| Error::not_found("department", d))?;
    let mut tx = s.store.begin_write().await?;
    zy_store::billing::set_budget(&mut tx, d, b.monthly).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_budget",
        "department",
        &d.to_string(),
        serde_json::json!({ "monthly_fen": b.monthly }),
    )
    .await?;
    budget_status(&s.store, d).await
}

/// One pass of the budget watch: raises the 80 % and 100 % alerts of this month for every
/// department with a budget, once each. Returns how many were raised.
pub async fn watch_budgets(store: &Store) -> Result<usize, Error> {
    let budgets = zy_store::billing::budgets(store).await?;
    let mut raised = 0;
    for (d, monthly) in budgets {
        if monthly.0 <= 0 {
            continue;
        }
        let st = budget_status(store, d).await?;
        for level in [80u32, 100] {
            if i128::from(st.spent.0) * 100 >= i128::from(monthly.0) * i128::from(level) {
                let a = zy_store::billing::BudgetAlertRow {
                    department_id: d,
                    month: st.month.clone(),
                    level,
                    at: clock(store).await?,
                    spent: st.spent,
                    budget: monthly,
                };
                let mut tx = store.begin_write().await?;
                let new = zy_store::billing::raise_alert(&mut tx, &a).await?;
                if new {
                    raise_budget_alert(&mut tx, &a).await?;
                    raised += 1;
                }
                tx.commit().await.map_err(zy_store::db_error)?;
            }
        }
    }
    Ok(raised)
}

/// THE place a budget alert is raised, in the transaction that records it (once per
/// department, month and level): the department's admins and finance are told, in the
/// inbox and by their chosen channels.
pub async fn raise_budget_alert(
    tx: &mut zy_store::Tx,
    a: &zy_store::billing::BudgetAlertRow,
) -> Result<(), Error> {
    use crate::notify::{enqueue, holders, Notice, NoticeKind};
    use zy_model::role::{Role, Scope};
    tracing::info!(department_id = %a.department_id, month = %a.month, level = a.level, "budget alert");
    let mut to = holders(tx, Role::DeptAdmin, Scope::Department(a.department_id)).await?;
    to.extend(holders(tx, Role::Finance, Scope::Platform).await?);
    let department = zy_store::departments::get(&mut **tx, a.department_id)
        .await?
        .map(|d| d.name)
        .unwrap_or_default();
    let n = Notice {
        kind: NoticeKind::BudgetThreshold,
        to,
        params: serde_json::json!({
            "department": department,
            "budget": format!("{} 月度预算 / monthly budget", a.month),
            "percent": a.level,
            "spent_fen": a.spent.0,
            "limit_fen": a.budget.0,
        }),
        link: Some("/portal/bills".into()),
        subject: Some(a.department_id.0),
    };
    enqueue(tx, &n).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forecast_extrapolates_the_run_rate() {
        let (a, b) = month_bounds("2026-11").expect("month");
        let mid = Timestamp(a.0 + (b.0 - a.0) / 3);
        assert_eq!(forecast(Money(1000), a, mid, b), Money(3000));
        assert_eq!(forecast(Money(1000), a, b, b), Money(1000));
    }
}
