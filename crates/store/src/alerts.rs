//! Alert tables: rules, the pending/firing state per rule and target (transitions are
//! conditional statements, so two evaluators never fire or resolve the same alert twice),
//! the history of fired and resolved alerts, and silences.

use crate::db::Tx;
use crate::error::db_error;
use crate::Store;
use sqlx::any::AnyRow;
use sqlx::Row;
use zy_model::alerts::*;
use zy_model::metrics::{MetricScope, Series};
use zy_model::time::Timestamp;
use zy_model::Error;

const RULE_COLS: &str = "id, name, kind, scope, entity, department_id, target, series, op, threshold, for_secs, crash_count, created_by, created_at, open_ticket";

fn bad(what: &str) -> Error {
    Error::internal(format!("unreadable alert row: {what}"))
}

fn rule(r: &AnyRow) -> Result<AlertRule, Error> {
    let kind: String = r.try_get(2).map_err(db_error)?;
    let scope: String = r.try_get(3).map_err(db_error)?;
    let target: String = r.try_get(6).map_err(db_error)?;
    let series: Option<String> = r.try_get(7).map_err(db_error)?;
    let op: Option<String> = r.try_get(8).map_err(db_error)?;
    Ok(AlertRule {
        id: r.try_get(0).map_err(db_error)?,
        name: r.try_get(1).map_err(db_error)?,
        kind: match kind.as_str() {
            "threshold" => AlertKind::Threshold,
            "crashes" => AlertKind::Crashes,
            _ => return Err(bad("kind")),
        },
        scope: MetricScope::parse(&scope).ok_or_else(|| bad("scope"))?,
        entity_id: r.try_get(4).map_err(db_error)?,
        department_id: r.try_get(5).map_err(db_error)?,
        target: AlertTarget::parse(&target).ok_or_else(|| bad("target"))?,
        series: series.as_deref().and_then(Series::parse),
        op: op.as_deref().and_then(AlertOp::parse),
        threshold: r.try_get(9).map_err(db_error)?,
        for_secs: r.try_get(10).map_err(db_error)?,
        crash_count: r.try_get(11).map_err(db_error)?,
        created_by: r.try_get(12).map_err(db_error)?,
        created_at: Timestamp(r.try_get(13).map_err(db_error)?),
        open_ticket: r.try_get::<i64, _>(14).map_err(db_error)? != 0,
    })
}

pub async fn insert_rule(tx: &mut Tx, r: &AlertRule) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO alert_rules ({RULE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CAST($10 AS DOUBLE PRECISION), $11, $12, $13, $14, $15)"
    ))
    .bind(&r.id)
    .bind(&r.name)
    .bind(match r.kind {
        AlertKind::Threshold => "threshold",
        AlertKind::Crashes => "crashes",
    })
    .bind(r.scope.as_str())
    .bind(&r.entity_id)
    .bind(r.department_id.clone())
    .bind(r.target.as_str())
    .bind(r.series.map(|s| s.as_str()))
    .bind(r.op.map(|o| o.as_str()))
    // As text, cast in SQL: sqlx's `Any` driver (0.8.6) binds a NULL f64 as a 4-byte float
    // on PostgreSQL, so a connection whose cached statement was first prepared for a rule
    // without a threshold refused the next rule's 8-byte value ("incorrect binary data
    // format in bind parameter 10": the intermittent 500 on creating an alert rule). A
    // Rust float's text form reads back as exactly the same float.
    .bind(r.threshold.map(|t| t.to_string()))
    .bind(r.for_secs)
    .bind(r.crash_count)
    .bind(&r.created_by)
    .bind(r.created_at.0)
    .bind(r.open_ticket as i64)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_rule(tx: &mut Tx, id: &str) -> Result<Option<AlertRule>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {RULE_COLS} FROM alert_rules WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    r.as_ref().map(rule).transpose()
}

/// Removes the rule and its pending/firing states (its history stays).
pub async fn delete_rule(tx: &mut Tx, id: &str) -> Result<bool, Error> {
    sqlx::query("DELETE FROM alert_states WHERE rule_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    let n = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Rules, all of them (`None`) or those of the given departments, newest first.
pub async fn rules(store: &Store, departments: Option<&[String]>) -> Result<Vec<AlertRule>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {RULE_COLS} FROM alert_rules ORDER BY created_at DESC, id DESC"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    let all = rows.iter().map(rule).collect::<Result<Vec<_>, _>>()?;
    Ok(match departments {
        None => all,
        Some(ds) => all
            .into_iter()
            .filter(|r| r.department_id.as_ref().is_some_and(|d| ds.contains(d)))
            .collect(),
    })
}

/// Active (pending or firing) alerts, of all rules or of the given rules.
pub async fn active(store: &Store) -> Result<Vec<(ActiveAlert, Option<String>)>, Error> {
    let rows = sqlx::query(
        "SELECT s.rule_id, r.name, r.target, s.target_id, s.target_name, s.state, s.since, s.value, r.department_id \
         FROM alert_states s JOIN alert_rules r ON r.id = s.rule_id ORDER BY s.since DESC",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let target: String = r.try_get(2).map_err(db_error)?;
            Ok((
                ActiveAlert {
                    rule_id: r.try_get(0).map_err(db_error)?,
                    rule_name: r.try_get(1).map_err(db_error)?,
                    target: AlertTarget::parse(&target).ok_or_else(|| bad("target"))?,
                    target_id: r.try_get(3).map_err(db_error)?,
                    target_name: r.try_get(4).map_err(db_error)?,
                    state: r.try_get(5).map_err(db_error)?,
                    since: Timestamp(r.try_get(6).map_err(db_error)?),
                    value: r.try_get(7).map_err(db_error)?,
                },
                r.try_get(8).map_err(db_error)?,
            ))
        })
        .collect()
}

/// The state of every target of a rule: target id → state.
pub async fn states_of(
    store: &Store,
    rule_id: &str,
) -> Result<std::collections::HashMap<String, String>, Error> {
    let rows = sqlx::query("SELECT target_id, state FROM alert_states WHERE rule_id = $1")
        .bind(rule_id)
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

/// Pending from now on, unless already pending or firing. True when it changed.
pub async fn to_pending(
    tx: &mut Tx,
    rule_id: &str,
    target_id: &str,
    target_name: &str,
    since: Timestamp,
    value: f64,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "INSERT INTO alert_states (rule_id, target_id, target_name, state, since, value) VALUES ($1, $2, $3, 'pending', $4, $5) \
         ON CONFLICT (rule_id, target_id) DO NOTHING",
    )
    .bind(rule_id)
    .bind(target_id)
    .bind(target_name)
    .bind(since.0)
    .bind(value)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Firing from now on, unless it already fires. True when this call made it fire (so
/// exactly one evaluator records and announces it).
pub async fn to_firing(
    tx: &mut Tx,
    rule_id: &str,
    target_id: &str,
    target_name: &str,
    since: Timestamp,
    value: f64,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "INSERT INTO alert_states (rule_id, target_id, target_name, state, since, value) VALUES ($1, $2, $3, 'firing', $4, $5) \
         ON CONFLICT (rule_id, target_id) DO UPDATE SET state = 'firing', value = excluded.value \
         WHERE alert_states.state = 'pending'",
    )
    .bind(rule_id)
    .bind(target_id)
    .bind(target_name)
    .bind(since.0)
    .bind(value)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Ends a pending or firing alert; returns the state it had (so a firing one is recorded
/// as resolved once).
pub async fn clear(tx: &mut Tx, rule_id: &str, target_id: &str) -> Result<Option<String>, Error> {
    let r = sqlx::query(
        "DELETE FROM alert_states WHERE rule_id = $1 AND target_id = $2 RETURNING state",
    )
    .bind(rule_id)
    .bind(target_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    r.map(|r| r.try_get(0).map_err(db_error)).transpose()
}

pub async fn insert_event(tx: &mut Tx, e: &AlertEvent) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO alert_events (id, rule_id, rule_name, department_id, target, target_id, target_name, state, value, at, silenced) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&e.id)
    .bind(&e.rule_id)
    .bind(&e.rule_name)
    .bind(e.department_id.clone())
    .bind(e.target.as_str())
    .bind(&e.target_id)
    .bind(&e.target_name)
    .bind(&e.state)
    .bind(e.value)
    .bind(e.at.0)
    .bind(i64::from(e.silenced))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The newest history entries (at most `limit`), of all departments or of the given ones.
/// The newest events: all (`departments` `None`), or those of these departments and of
/// these rules.
pub async fn events(
    store: &Store,
    departments: Option<&[String]>,
    rules: &[String],
    limit: i64,
) -> Result<Vec<AlertEvent>, Error> {
    let mut sql = String::from(
        "SELECT id, rule_id, rule_name, department_id, target, target_id, target_name, state, value, at, silenced FROM alert_events",
    );
    if let Some(ds) = departments {
        // Ids are UUIDs: anything else is left out rather than quoted into the query.
        let quoted = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .filter(|d| d.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
                .map(|d| format!("'{d}'"))
                .collect()
        };
        let mut any = Vec::new();
        for (column, list) in [("department_id", quoted(ds)), ("rule_id", quoted(rules))] {
            if !list.is_empty() {
                any.push(format!("{column} IN ({})", list.join(", ")));
            }
        }
        if any.is_empty() {
            return Ok(Vec::new());
        }
        sql.push_str(&format!(" WHERE {}", any.join(" OR ")));
    }
    sql.push_str(" ORDER BY at DESC, id DESC LIMIT $1");
    let rows = sqlx::query(&sql)
        .bind(limit)
        .fetch_all(store.pool())
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let target: String = r.try_get(4).map_err(db_error)?;
            let silenced: i64 = r.try_get(10).map_err(db_error)?;
            Ok(AlertEvent {
                id: r.try_get(0).map_err(db_error)?,
                rule_id: r.try_get(1).map_err(db_error)?,
                rule_name: r.try_get(2).map_err(db_error)?,
                department_id: r.try_get(3).map_err(db_error)?,
                target: AlertTarget::parse(&target).ok_or_else(|| bad("target"))?,
                target_id: r.try_get(5).map_err(db_error)?,
                target_name: r.try_get(6).map_err(db_error)?,
                state: r.try_get(7).map_err(db_error)?,
                value: r.try_get(8).map_err(db_error)?,
                at: Timestamp(r.try_get(9).map_err(db_error)?),
                silenced: silenced != 0,
            })
        })
        .collect()
}

const SILENCE_COLS: &str =
    "id, scope, entity, department_id, starts_at, ends_at, reason, created_by, created_at";

fn silence(r: &AnyRow) -> Result<Silence, Error> {
    let scope: String = r.try_get(1).map_err(db_error)?;
    Ok(Silence {
        id: r.try_get(0).map_err(db_error)?,
        scope: MetricScope::parse(&scope).ok_or_else(|| bad("scope"))?,
        entity_id: r.try_get(2).map_err(db_error)?,
        department_id: r.try_get(3).map_err(db_error)?,
        starts_at: Timestamp(r.try_get(4).map_err(db_error)?),
        ends_at: Timestamp(r.try_get(5).map_err(db_error)?),
        reason: r.try_get(6).map_err(db_error)?,
        created_by: r.try_get(7).map_err(db_error)?,
        created_at: Timestamp(r.try_get(8).map_err(db_error)?),
    })
}

pub async fn insert_silence(tx: &mut Tx, s: &Silence) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO alert_silences ({SILENCE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&s.id)
    .bind(s.scope.as_str())
    .bind(&s.entity_id)
    .bind(s.department_id.clone())
    .bind(s.starts_at.0)
    .bind(s.ends_at.0)
    .bind(&s.reason)
    .bind(&s.created_by)
    .bind(s.created_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_silence(tx: &mut Tx, id: &str) -> Result<Option<Silence>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {SILENCE_COLS} FROM alert_silences WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    r.as_ref().map(silence).transpose()
}

pub async fn delete_silence(tx: &mut Tx, id: &str) -> Result<bool, Error> {
    let n = sqlx::query("DELETE FROM alert_silences WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Silences that have not ended by `now`, newest first.
pub async fn silences(store: &Store, now: Timestamp) -> Result<Vec<Silence>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {SILENCE_COLS} FROM alert_silences WHERE ends_at > $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(now.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(silence).collect()
}

/// Crashes per instance since `since` (the host monitor's "died unexpectedly" events).
pub async fn crashes_since(
    store: &Store,
    since: Timestamp,
) -> Result<std::collections::HashMap<String, i64>, Error> {
    let rows = sqlx::query(
        "SELECT instance_id, COUNT(*) FROM instance_events WHERE at >= $1 \
         AND reason LIKE 'the guest died unexpectedly%' GROUP BY instance_id",
    )
    .bind(since.0)
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
