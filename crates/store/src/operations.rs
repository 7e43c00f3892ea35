//! Operations tables: tickets and their timeline (every transition a conditional update
//! on state and, when given, generation), inspection plans, runs and results, monthly SLA
//! scores and the adjustment lines on providers' bills.

use crate::db::Tx;
use crate::error::db_error;
use crate::Store;
use sqlx::any::AnyRow;
use sqlx::Row;
use zy_model::operations::*;
use zy_model::time::Timestamp;
use zy_model::Error;

fn bad(what: &str) -> Error {
    Error::internal(format!("unreadable operations row: {what}"))
}

const TICKET_COLS: &str = "id, kind, priority, state, title, description, department_id, provider_id, subject_kind, subject_id, source, source_key, opened_by, opened_at, respond_by, resolve_by, responded_at, resolved_at, closed_at, assignee, escalation, response_missed, resolution_missed, rating, generation";

fn ts(r: &AnyRow, i: usize) -> Result<Option<Timestamp>, Error> {
    Ok(r.try_get::<Option<i64>, _>(i)
        .map_err(db_error)?
        .map(Timestamp))
}

fn ticket(r: &AnyRow) -> Result<Ticket, Error> {
    let kind: String = r.try_get(1).map_err(db_error)?;
    let priority: String = r.try_get(2).map_err(db_error)?;
    let state: String = r.try_get(3).map_err(db_error)?;
    Ok(Ticket {
        id: r.try_get(0).map_err(db_error)?,
        kind: TicketKind::parse(&kind).ok_or_else(|| bad("kind"))?,
        priority: TicketPriority::parse(&priority).ok_or_else(|| bad("priority"))?,
        state: TicketState::parse(&state).ok_or_else(|| bad("state"))?,
        title: r.try_get(4).map_err(db_error)?,
        description: r.try_get(5).map_err(db_error)?,
        department_id: r.try_get(6).map_err(db_error)?,
        provider_id: r.try_get(7).map_err(db_error)?,
        subject_kind: r.try_get(8).map_err(db_error)?,
        subject_id: r.try_get(9).map_err(db_error)?,
        source: r.try_get(10).map_err(db_error)?,
        source_key: r.try_get(11).map_err(db_error)?,
        opened_by: r.try_get(12).map_err(db_error)?,
        opened_at: Timestamp(r.try_get(13).map_err(db_error)?),
        respond_by: Timestamp(r.try_get(14).map_err(db_error)?),
        resolve_by: Timestamp(r.try_get(15).map_err(db_error)?),
        responded_at: ts(r, 16)?,
        resolved_at: ts(r, 17)?,
        closed_at: ts(r, 18)?,
        assignee: r.try_get(19).map_err(db_error)?,
        escalation: r.try_get(20).map_err(db_error)?,
        response_missed: r.try_get::<i64, _>(21).map_err(db_error)? != 0,
        resolution_missed: r.try_get::<i64, _>(22).map_err(db_error)? != 0,
        rating: r.try_get(23).map_err(db_error)?,
        generation: r.try_get(24).map_err(db_error)?,
    })
}

/// Inserts a new ticket; false when an open ticket with the same `source_key` exists.
pub async fn insert_ticket(tx: &mut Tx, t: &Ticket) -> Result<bool, Error> {
    let n = sqlx::query(&format!(
        "INSERT INTO tickets ({TICKET_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) ON CONFLICT DO NOTHING"
    ))
    .bind(&t.id)
    .bind(t.kind.as_str())
    .bind(t.priority.as_str())
    .bind(t.state.as_str())
    .bind(&t.title)
    .bind(&t.description)
    .bind(t.department_id.clone())
    .bind(t.provider_id.clone())
    .bind(t.subject_kind.clone())
    .bind(t.subject_id.clone())
    .bind(&t.source)
    .bind(t.source_key.clone())
    .bind(&t.opened_by)
    .bind(t.opened_at.0)
    .bind(t.respond_by.0)
    .bind(t.resolve_by.0)
    .bind(t.responded_at.map(|x| x.0))
    .bind(t.resolved_at.map(|x| x.0))
    .bind(t.closed_at.map(|x| x.0))
    .bind(t.assignee.clone())
    .bind(t.escalation)
    .bind(t.response_missed as i64)
    .bind(t.resolution_missed as i64)
    .bind(t.rating)
    .bind(t.generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

pub async fn get_ticket(store: &Store, id: &str) -> Result<Option<Ticket>, Error> {
    let r = sqlx::query(&format!("SELECT {TICKET_COLS} FROM tickets WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await
        .map_err(db_error)?;
    r.as_ref().map(ticket).transpose()
}

pub async fn get_ticket_in(tx: &mut Tx, id: &str) -> Result<Option<Ticket>, Error> {
    let r = sqlx::query(&format!("SELECT {TICKET_COLS} FROM tickets WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    r.as_ref().map(ticket).transpose()
}

/// The open (not closed) ticket with this source key.
pub async fn open_by_key(tx: &mut Tx, key: &str) -> Result<Option<Ticket>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {TICKET_COLS} FROM tickets WHERE source_key = $1 AND state <> 'closed'"
    ))
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    r.as_ref().map(ticket).transpose()
}

#[derive(Debug, Default, Clone)]
pub struct TicketFilter {
    /// With `providers`, whose tickets: those of these departments or assigned to these
    /// providers. Both `None`: every ticket.
    pub departments: Option<Vec<String>>,
    pub providers: Option<Vec<String>>,
    pub state: Option<TicketState>,
    pub provider_id: Option<String>,
    pub limit: i64,
}

/// Tickets, newest first.
pub async fn tickets(store: &Store, f: &TicketFilter) -> Result<Vec<Ticket>, Error> {
    let mut sql = format!("SELECT {TICKET_COLS} FROM tickets WHERE 1 = 1");
    let mut n = 0;
    let mut binds: Vec<String> = Vec::new();
    if let Some(s) = f.state {
        n += 1;
        sql.push_str(&format!(" AND state = ${n}"));
        binds.push(s.as_str().to_string());
    }
    if let Some(p) = &f.provider_id {
        n += 1;
        sql.push_str(&format!(" AND provider_id = ${n}"));
        binds.push(p.clone());
    }
    if f.departments.is_some() || f.providers.is_some() {
        let mut any = Vec::new();
        for (column, ids) in [
            ("department_id", &f.departments),
            ("provider_id", &f.providers),
        ] {
            let Some(ids) = ids.as_ref().filter(|ids| !ids.is_empty()) else {
                continue;
            };
            let ph: Vec<String> = ids
                .iter()
                .map(|d| {
                    n += 1;
                    binds.push(d.clone());
                    format!("${n}")
                })
                .collect();
            any.push(format!("{column} IN ({})", ph.join(", ")));
        }
        if any.is_empty() {
            return Ok(vec![]);
        }
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    sql.push_str(&format!(
        " ORDER BY opened_at DESC, id DESC LIMIT {}",
        f.limit.clamp(1, 1000)
    ));
    let mut q = sqlx::query(&sql);
    for b in &binds {
        q = q.bind(b.clone());
    }
    let rows = q.fetch_all(store.pool()).await.map_err(db_error)?;
    rows.iter().map(ticket).collect()
}

pub async fn add_event(tx: &mut Tx, e: &TicketEvent) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO ticket_events (id, ticket_id, at, actor, action, note) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.id)
    .bind(&e.ticket_id)
    .bind(e.at.0)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.note)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn events(store: &Store, ticket_id: &str) -> Result<Vec<TicketEvent>, Error> {
    let rows = sqlx::query(
        "SELECT id, ticket_id, at, actor, action, note FROM ticket_events WHERE ticket_id = $1 ORDER BY at, id",
    )
    .bind(ticket_id)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok(TicketEvent {
                id: r.try_get(0).map_err(db_error)?,
                ticket_id: r.try_get(1).map_err(db_error)?,
                at: Timestamp(r.try_get(2).map_err(db_error)?),
                actor: r.try_get(3).map_err(db_error)?,
                action: r.try_get(4).map_err(db_error)?,
                note: r.try_get(5).map_err(db_error)?,
            })
        })
        .collect()
}

/// A step of a ticket's life, applied only from the state it expects (and at the
/// generation given, if any).
#[derive(Debug, Clone)]
pub enum Step {
    Accept {
        at: Timestamp,
        assignee: String,
    },
    Resolve {
        at: Timestamp,
    },
    Close {
        at: Timestamp,
        rating: Option<i64>,
    },
    Reopen,
    /// No change of state; bumps the generation (comments).
    Touch,
}

/// True when the step applied.
pub async fn step(tx: &mut Tx, id: &str, gen: Option<i64>, s: &Step) -> Result<bool, Error> {
    let (set, from): (&str, &str) = match s {
        Step::Accept { .. } => (
            "state = 'accepted', responded_at = $3, assignee = $4, response_missed = CASE WHEN $3 > respond_by THEN 1 ELSE response_missed END",
            "state = 'open'",
        ),
        Step::Resolve { .. } => (
            "state = 'resolved', resolved_at = $3, resolution_missed = CASE WHEN $3 > resolve_by THEN 1 ELSE resolution_missed END",
            "state = 'accepted'",
        ),
        Step::Close { .. } => (
            "state = 'closed', closed_at = $3, rating = $4",
            "state = 'resolved'",
        ),
        Step::Reopen => (
            "state = 'accepted', resolved_at = NULL",
            "state = 'resolved'",
        ),
        Step::Touch => ("state = state", "state <> 'closed'"),
    };
    let gen_clause = if gen.is_some() {
        " AND generation = $2"
    } else {
        " AND $2 = $2"
    };
    let sql = format!(
        "UPDATE tickets SET {set}, generation = generation + 1 WHERE id = $1 AND {from}{gen_clause}"
    );
    let mut q = sqlx::query(&sql).bind(id).bind(gen.unwrap_or(0));
    match s {
        Step::Accept { at, assignee } => q = q.bind(at.0).bind(assignee.clone()),
        Step::Resolve { at } => q = q.bind(at.0),
        Step::Close { at, rating } => q = q.bind(at.0).bind(*rating),
        Step::Reopen | Step::Touch => {}
    }
    let n = q
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Tickets past a deadline not yet escalated for it: (ticket, response?) pairs.
pub async fn overdue(store: &Store, now: Timestamp) -> Result<Vec<(Ticket, bool)>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {TICKET_COLS} FROM tickets WHERE \
         (state = 'open' AND response_missed = 0 AND respond_by < $1) OR \
         (state IN ('open', 'accepted') AND resolution_missed = 0 AND resolve_by < $1) \
         ORDER BY opened_at LIMIT 500"
    ))
    .bind(now.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    let mut out = Vec::new();
    for r in &rows {
        let t = ticket(r)?;
        if t.state == TicketState::Open && !t.response_missed && t.respond_by < now {
            out.push((t.clone(), true));
        }
        if !t.resolution_missed && t.resolve_by < now {
            out.push((t, false));
        }
    }
    Ok(out)
}

/// Marks a missed deadline once (conditional): true when this call escalated it.
pub async fn escalate(tx: &mut Tx, id: &str, response: bool) -> Result<bool, Error> {
    let sql = if response {
        "UPDATE tickets SET response_missed = 1, escalation = escalation + 1, generation = generation + 1 \
         WHERE id = $1 AND state = 'open' AND response_missed = 0"
    } else {
        "UPDATE tickets SET resolution_missed = 1, escalation = escalation + 1, generation = generation + 1 \
         WHERE id = $1 AND state IN ('open', 'accepted') AND resolution_missed = 0"
    };
    let n = sqlx::query(sql)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// A provider's tickets opened in [from, to).
pub async fn provider_tickets(
    store: &Store,
    provider_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Ticket>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {TICKET_COLS} FROM tickets WHERE provider_id = $1 AND opened_at >= $2 AND opened_at < $3"
    ))
    .bind(provider_id)
    .bind(from.0)
    .bind(to.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(ticket).collect()
}

// ---------------------------------------------------------------- inspections

const PLAN_COLS: &str = "id, name, checks, hour, owner, enabled, last_day, created_by, created_at";

fn plan(r: &AnyRow) -> Result<InspectionPlan, Error> {
    let checks: String = r.try_get(2).map_err(db_error)?;
    Ok(InspectionPlan {
        id: r.try_get(0).map_err(db_error)?,
        name: r.try_get(1).map_err(db_error)?,
        checks: serde_json::from_str(&checks).map_err(|_| bad("checks"))?,
        hour: r.try_get(3).map_err(db_error)?,
        owner: r.try_get(4).map_err(db_error)?,
        enabled: r.try_get::<i64, _>(5).map_err(db_error)? != 0,
        last_day: r.try_get(6).map_err(db_error)?,
        created_by: r.try_get(7).map_err(db_error)?,
        created_at: Timestamp(r.try_get(8).map_err(db_error)?),
    })
}

/// False when the name is taken.
pub async fn insert_plan(tx: &mut Tx, p: &InspectionPlan) -> Result<bool, Error> {
    let checks = serde_json::to_string(&p.checks).map_err(|e| Error::internal(e.to_string()))?;
    let n = sqlx::query(&format!(
        "INSERT INTO inspection_plans ({PLAN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
    ))
    .bind(&p.id)
    .bind(&p.name)
    .bind(checks)
    .bind(p.hour)
    .bind(&p.owner)
    .bind(p.enabled as i64)
    .bind(p.last_day.clone())
    .bind(&p.created_by)
    .bind(p.created_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

pub async fn plans(store: &Store) -> Result<Vec<InspectionPlan>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {PLAN_COLS} FROM inspection_plans ORDER BY name"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(plan).collect()
}

pub async fn get_plan(store: &Store, id: &str) -> Result<Option<InspectionPlan>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {PLAN_COLS} FROM inspection_plans WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?;
    r.as_ref().map(plan).transpose()
}

pub async fn delete_plan(tx: &mut Tx, id: &str) -> Result<bool, Error> {
    let n = sqlx::query("DELETE FROM inspection_plans WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Claims a plan's scheduled run of `day` (once per day, whichever replica gets it).
pub async fn claim_day(tx: &mut Tx, id: &str, day: &str) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE inspection_plans SET last_day = $2 WHERE id = $1 AND enabled = 1 AND (last_day IS NULL OR last_day <> $2)",
    )
    .bind(id)
    .bind(day)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

pub async fn insert_run(tx: &mut Tx, r: &InspectionRun) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO inspection_runs (id, plan_id, plan_name, trigger, started_at, finished_at, passed, checks, failed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&r.id)
    .bind(&r.plan_id)
    .bind(&r.plan_name)
    .bind(&r.trigger)
    .bind(r.started_at.0)
    .bind(r.finished_at.0)
    .bind(r.passed as i64)
    .bind(r.checks)
    .bind(r.failed)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    for (i, c) in r.results.iter().enumerate() {
        sqlx::query(
            "INSERT INTO inspection_results (run_id, seq, check_name, provider_id, passed, detail, at, ticket_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(i as i64)
        .bind(c.check.as_str())
        .bind(&c.provider_id)
        .bind(c.passed as i64)
        .bind(&c.detail)
        .bind(r.finished_at.0)
        .bind(c.ticket_id.clone())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

const RUN_COLS: &str =
    "id, plan_id, plan_name, trigger, started_at, finished_at, passed, checks, failed";

fn run_row(r: &AnyRow) -> Result<InspectionRun, Error> {
    Ok(InspectionRun {
        id: r.try_get(0).map_err(db_error)?,
        plan_id: r.try_get(1).map_err(db_error)?,
        plan_name: r.try_get(2).map_err(db_error)?,
        trigger: r.try_get(3).map_err(db_error)?,
        started_at: Timestamp(r.try_get(4).map_err(db_error)?),
        finished_at: Timestamp(r.try_get(5).map_err(db_error)?),
        passed: r.try_get::<i64, _>(6).map_err(db_error)? != 0,
        checks: r.try_get(7).map_err(db_error)?,
        failed: r.try_get(8).map_err(db_error)?,
        results: vec![],
    })
}

/// The newest runs (without their results).
pub async fn runs(store: &Store, limit: i64) -> Result<Vec<InspectionRun>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLS} FROM inspection_runs ORDER BY started_at DESC, id DESC LIMIT {}",
        limit.clamp(1, 1000)
    ))
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(run_row).collect()
}

pub async fn get_run(store: &Store, id: &str) -> Result<Option<InspectionRun>, Error> {
    let Some(r) = sqlx::query(&format!(
        "SELECT {RUN_COLS} FROM inspection_runs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?
    else {
        return Ok(None);
    };
    let mut run = run_row(&r)?;
    let rows = sqlx::query(
        "SELECT check_name, provider_id, passed, detail, ticket_id FROM inspection_results WHERE run_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    for r in &rows {
        let c: String = r.try_get(0).map_err(db_error)?;
        run.results.push(CheckResult {
            check: CheckKind::parse(&c).ok_or_else(|| bad("check"))?,
            provider_id: r.try_get(1).map_err(db_error)?,
            passed: r.try_get::<i64, _>(2).map_err(db_error)? != 0,
            detail: r.try_get(3).map_err(db_error)?,
            ticket_id: r.try_get(4).map_err(db_error)?,
        });
    }
    Ok(Some(run))
}

/// A provider's check results in [from, to).
pub async fn inspection_stats(
    store: &Store,
    provider_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<InspectionStats, Error> {
    let r = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(passed), 0) AS BIGINT) FROM inspection_results WHERE provider_id = $1 AND at >= $2 AND at < $3",
    )
    .bind(provider_id)
    .bind(from.0)
    .bind(to.0)
    .fetch_one(store.pool())
    .await
    .map_err(db_error)?;
    let checks: i64 = r.try_get(0).map_err(db_error)?;
    let passed: i64 = r.try_get(1).map_err(db_error)?;
    Ok(InspectionStats {
        checks,
        passed,
        failed: checks - passed,
    })
}

// ---------------------------------------------------------------- SLA scores

pub async fn put_score(tx: &mut Tx, s: &SlaScore) -> Result<(), Error> {
    let inputs = serde_json::to_string(s).map_err(|e| Error::internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO sla_scores (month, provider_id, score, inputs, computed_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (month, provider_id) DO UPDATE SET score = excluded.score, inputs = excluded.inputs, computed_at = excluded.computed_at",
    )
    .bind(&s.month)
    .bind(&s.provider_id)
    .bind(s.score)
    .bind(inputs)
    .bind(s.computed_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Stored scores, of one month or all, by month then provider.
pub async fn scores(store: &Store, month: Option<&str>) -> Result<Vec<SlaScore>, Error> {
    let rows = match month {
        Some(m) => {
            sqlx::query("SELECT inputs FROM sla_scores WHERE month = $1 ORDER BY provider_id")
                .bind(m)
                .fetch_all(store.pool())
                .await
        }
        None => {
            sqlx::query("SELECT inputs FROM sla_scores ORDER BY month DESC, provider_id LIMIT 1200")
                .fetch_all(store.pool())
                .await
        }
    }
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let s: String = r.try_get(0).map_err(db_error)?;
            serde_json::from_str(&s).map_err(|_| bad("inputs"))
        })
        .collect()
}

/// Writes (or replaces) the adjustment line of `source` on a provider's month; a zero
/// amount removes it.
#[allow(clippy::too_many_arguments)]
pub async fn put_provider_adjustment(
    tx: &mut Tx,
    month: &str,
    provider_id: &str,
    source: &str,
    amount_fen: i64,
    reason: &str,
    at: Timestamp,
    by: &str,
) -> Result<(), Error> {
    if amount_fen == 0 {
        sqlx::query(
            "DELETE FROM provider_bill_adjustments WHERE month = $1 AND provider_id = $2 AND source = $3",
        )
        .bind(month)
        .bind(provider_id)
        .bind(source)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO provider_bill_adjustments (month, provider_id, source, amount_fen, reason, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (month, provider_id, source) DO UPDATE SET \
         amount_fen = excluded.amount_fen, reason = excluded.reason, created_at = excluded.created_at, created_by = excluded.created_by",
    )
    .bind(month)
    .bind(provider_id)
    .bind(source)
    .bind(amount_fen)
    .bind(reason)
    .bind(at.0)
    .bind(by)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// A provider month's adjustment line.
#[derive(Debug, Clone)]
pub struct ProviderAdjustmentRow {
    pub provider_id: String,
    pub source: String,
    pub amount_fen: i64,
    pub reason: String,
    pub created_at: Timestamp,
}

pub async fn provider_adjustments(
    store: &Store,
    month: &str,
) -> Result<Vec<ProviderAdjustmentRow>, Error> {
    let rows = sqlx::query(
        "SELECT provider_id, source, amount_fen, reason, created_at FROM provider_bill_adjustments WHERE month = $1 ORDER BY provider_id, source",
    )
    .bind(month)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok(ProviderAdjustmentRow {
                provider_id: r.try_get(0).map_err(db_error)?,
                source: r.try_get(1).map_err(db_error)?,
                amount_fen: r.try_get(2).map_err(db_error)?,
                reason: r.try_get(3).map_err(db_error)?,
                created_at: Timestamp(r.try_get(4).map_err(db_error)?),
            })
        })
        .collect()
}

/// Instance-unavailability intervals of a provider's instances overlapping [from, to):
/// HA recoveries from the instance's last sign of life (or detection) to its restart
/// (or `to` when it was never restarted), as (instance, start, end).
pub async fn outages(
    store: &Store,
    provider_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(String, i64, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT r.instance_id, COALESCE(r.last_seen_at, r.detected_at), COALESCE(r.restarted_at, $3) \
         FROM ha_recoveries r JOIN hosts h ON h.id = r.host_id \
         WHERE h.provider_id = $1 AND COALESCE(r.restarted_at, $3) > $2 AND COALESCE(r.last_seen_at, r.detected_at) < $3",
    )
    .bind(provider_id)
    .bind(from.0)
    .bind(to.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
                r.try_get(2).map_err(db_error)?,
            ))
        })
        .collect()
}

/// What a ticket's resource belongs to: (department, project, provider). `None` when no
/// such resource exists.
pub async fn subject(
    store: &Store,
    kind: &str,
    id: &str,
) -> Result<Option<(Option<String>, Option<String>, Option<String>)>, Error> {
    let sql = match kind {
        "instance" => {
            "SELECT department_id, project_id, COALESCE(provider_id, want_provider_id) FROM instances WHERE id = $1"
        }
        "volume" => {
            "SELECT v.department_id, v.project_id, z.provider_id FROM volumes v \
             JOIN storage_pools p ON p.id = v.pool_id JOIN zones z ON z.id = p.zone_id WHERE v.id = $1"
        }
        "host" => "SELECT NULL, NULL, provider_id FROM hosts WHERE id = $1",
        _ => return Ok(None),
    };
    let r = sqlx::query(sql)
        .bind(id)
        .fetch_optional(store.pool())
        .await
        .map_err(db_error)?;
    r.map(|r| {
        Ok((
            r.try_get::<Option<String>, _>(0).map_err(db_error)?,
            r.try_get::<Option<String>, _>(1).map_err(db_error)?,
            r.try_get::<Option<String>, _>(2).map_err(db_error)?,
        ))
    })
    .transpose()
}

/// Every provider: (id, name).
/// Tickets not closed yet, and of those the ones that missed a deadline, per department
/// (`None` key: infrastructure tickets without one) — the dashboard's "open tickets and
/// SLA status".
pub async fn open_ticket_counts(store: &Store) -> Result<Vec<(Option<String>, i64, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT department_id, COUNT(*), \
                SUM(CASE WHEN escalation > 0 OR response_missed <> 0 OR resolution_missed <> 0 THEN 1 ELSE 0 END) \
         FROM tickets WHERE state <> 'closed' GROUP BY department_id",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
                r.try_get::<Option<i64>, _>(2)
                    .map_err(db_error)?
                    .unwrap_or(0),
            ))
        })
        .collect()
}

pub async fn provider_names(store: &Store) -> Result<Vec<(String, String)>, Error> {
    let rows = sqlx::query("SELECT id, name FROM providers ORDER BY name")
        .fetch_all(store.pool())
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
            ))
        })
        .collect()
}

/// Hosts that are not healthy: (provider, host name, why). HA state other than ok, or an
/// agent not heard from since `stale_before` (µs).
pub async fn unhealthy_hosts(
    store: &Store,
    stale_before: i64,
) -> Result<Vec<(String, String, String)>, Error> {
    let rows = sqlx::query(
        "SELECT h.provider_id, h.name, h.ha_state, a.last_seen FROM hosts h LEFT JOIN agents a ON a.host_id = h.id \
         WHERE h.state <> 'disabled' AND (h.ha_state <> 'ok' OR (a.last_seen IS NOT NULL AND a.last_seen < $1)) ORDER BY h.provider_id, h.name",
    )
    .bind(stale_before)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let ha: String = r.try_get(2).map_err(db_error)?;
            let seen: Option<i64> = r.try_get(3).map_err(db_error)?;
            let why = if ha != "ok" {
                format!("HA {ha}")
            } else {
                format!(
                    "agent silent since {}",
                    seen.map(|s| Timestamp(s).to_rfc3339()).unwrap_or_default()
                )
            };
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
                why,
            ))
        })
        .collect()
}

/// Per zone: (provider, zone name, allocated vCPUs, vCPUs it may allocate).
pub async fn zone_vcpus(store: &Store) -> Result<Vec<(String, String, i64, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT z.provider_id, z.name, CAST(COALESCE(SUM(h.used_vcpus), 0) AS BIGINT), CAST(COALESCE(SUM(h.vcpus * h.cpu_ratio_permille / 1000), 0) AS BIGINT) \
         FROM zones z JOIN hosts h ON h.zone_id = z.id WHERE h.state <> 'disabled' GROUP BY z.provider_id, z.name ORDER BY z.provider_id, z.name",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
                r.try_get(2).map_err(db_error)?,
                r.try_get(3).map_err(db_error)?,
            ))
        })
        .collect()
}

/// Agents' certificates: (provider, host name, PEM).
pub async fn agent_certs(store: &Store) -> Result<Vec<(String, String, String)>, Error> {
    let rows = sqlx::query(
        "SELECT h.provider_id, h.name, a.cert_pem FROM agents a JOIN hosts h ON h.id = a.host_id ORDER BY h.provider_id, h.name",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
                r.try_get(2).map_err(db_error)?,
            ))
        })
        .collect()
}

/// A provider's ticket figures for the tickets opened in [from, to), as of `now`, counted
/// in the database (the same rules as `app::tickets::stats_of`).
pub async fn ticket_stats(
    store: &Store,
    provider_id: &str,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<TicketStats, Error> {
    let r = sqlx::query(
        "SELECT COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN state = 'closed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN responded_at IS NOT NULL OR respond_by < $4 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN responded_at IS NOT NULL AND responded_at <= respond_by THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL OR resolve_by < $4 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL AND resolved_at <= resolve_by THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN escalation > 0 OR response_missed = 1 OR resolution_missed = 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         COUNT(rating), CAST(COALESCE(SUM(rating), 0) AS BIGINT) \
         FROM tickets WHERE provider_id = $1 AND opened_at >= $2 AND opened_at < $3",
    )
    .bind(provider_id)
    .bind(from.0)
    .bind(to.0)
    .bind(now.0)
    .fetch_one(store.pool())
    .await
    .map_err(db_error)?;
    let g = |i: usize| -> Result<i64, Error> { r.try_get::<i64, _>(i).map_err(db_error) };
    let (ratings, rating_sum) = (g(7)?, g(8)?);
    Ok(TicketStats {
        opened: g(0)?,
        closed: g(1)?,
        response_due: g(2)?,
        response_met: g(3)?,
        resolution_due: g(4)?,
        resolution_met: g(5)?,
        escalated: g(6)?,
        ratings,
        rating_sum,
        satisfaction_avg: (ratings > 0).then(|| rating_sum as f64 / ratings as f64),
    })
}
