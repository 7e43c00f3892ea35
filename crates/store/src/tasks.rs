//! Background tasks as stored: the leases of singleton tasks (one replica runs each at a
//! time) and every replica's record of its last runs, for operators.

use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use zy_model::ops::TaskStatus;
use zy_model::time::Timestamp;
use zy_model::Error;

/// Takes or renews the lease of a singleton task for `owner`; true when `owner` holds it
/// until `until`. A lease held by another replica is taken only once it has run out.
pub async fn acquire(
    store: &Store,
    name: &str,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "INSERT INTO task_leases (name, owner, lease_until) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
         WHERE task_leases.owner = excluded.owner OR task_leases.lease_until < $4",
    )
    .bind(name)
    .bind(owner)
    .bind(until.0)
    .bind(now.0)
    .execute(store.pool())
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Gives a lease back (at shutdown), so another replica takes over at once.
pub async fn release(store: &Store, name: &str, owner: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM task_leases WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(owner)
        .execute(store.pool())
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Frees every task lease. Only for SQLite at start-up (one file, one server).
pub async fn release_all(store: &Store) -> Result<(), Error> {
    sqlx::query("DELETE FROM task_leases")
        .execute(store.pool())
        .await
        .map_err(db_error)?;
    Ok(())
}

/// One run's record.
pub struct Run<'a> {
    pub name: &'a str,
    pub replica: &'a str,
    pub singleton: bool,
    pub period_ms: i64,
    pub started: Timestamp,
    pub duration_ms: i64,
    pub ok: bool,
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub next_run: Timestamp,
}

/// Records the outcome of a run (one row per task and replica).
pub async fn record(store: &Store, r: &Run<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO task_runs (name, replica, singleton, period_ms, runs, failures, last_started, last_duration_ms, last_outcome, last_status, last_error, next_run, heartbeat) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (name, replica) DO UPDATE SET singleton = excluded.singleton, period_ms = excluded.period_ms, \
           runs = task_runs.runs + 1, failures = task_runs.failures + excluded.failures, last_started = excluded.last_started, \
           last_duration_ms = excluded.last_duration_ms, last_outcome = excluded.last_outcome, last_status = excluded.last_status, \
           last_error = excluded.last_error, next_run = excluded.next_run, heartbeat = excluded.heartbeat",
    )
    .bind(r.name)
    .bind(r.replica)
    .bind(i64::from(r.singleton))
    .bind(r.period_ms)
    .bind(i64::from(!r.ok))
    .bind(r.started.0)
    .bind(r.duration_ms)
    .bind(if r.ok { "ok" } else { "error" })
    .bind(r.status)
    .bind(r.error.map(|e| zy_model::validate::clip(e, 2000)))
    .bind(r.next_run.0)
    .bind(Timestamp::now().0)
    .execute(store.pool())
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Notes that a replica runs a task without a run to record (a singleton it does not hold).
pub async fn standby(
    store: &Store,
    name: &str,
    replica: &str,
    period_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO task_runs (name, replica, singleton, period_ms, heartbeat) VALUES ($1, $2, 1, $3, $4) \
         ON CONFLICT (name, replica) DO UPDATE SET heartbeat = excluded.heartbeat",
    )
    .bind(name)
    .bind(replica)
    .bind(period_ms)
    .bind(Timestamp::now().0)
    .execute(store.pool())
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Every task on every replica that reported since `since`, with who holds each lease.
pub async fn list(store: &Store, since: Timestamp) -> Result<Vec<TaskStatus>, Error> {
    let mut sql = Sql::new(
        "SELECT r.name, r.replica, r.singleton, r.period_ms, r.runs, r.failures, r.last_started, r.last_duration_ms, \
         r.last_outcome, r.last_status, r.last_error, r.next_run, r.heartbeat, l.owner AS lease_owner, l.lease_until \
         FROM task_runs r LEFT JOIN task_leases l ON l.name = r.name WHERE r.heartbeat >= ",
    );
    sql.bind(crate::sql::Arg::I64(since.0))
        .push(" ORDER BY r.name, r.replica");
    let rows: Vec<TaskRow> = sql.fetch_all(store).await?;
    let now = Timestamp::now().0;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut t = r.status;
            t.active = !t.singleton
                || (r.lease_owner.as_deref() == Some(t.replica.as_str())
                    && r.lease_until.is_some_and(|u| u >= now));
            t
        })
        .collect())
}

struct TaskRow {
    status: TaskStatus,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
}

impl Decode for TaskRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(TaskRow {
            status: TaskStatus {
                name: text(r, "name")?,
                replica: text(r, "replica")?,
                singleton: int(r, "singleton")? != 0,
                active: false,
                period_ms: int(r, "period_ms")?,
                runs: int(r, "runs")?,
                failures: int(r, "failures")?,
                last_started: opt_ts(r, "last_started")?,
                last_duration_ms: opt_int(r, "last_duration_ms")?,
                last_outcome: opt_text(r, "last_outcome")?,
                last_status: serde_json::from_str(&text(r, "last_status")?)
                    .unwrap_or(serde_json::Value::Null),
                last_error: opt_text(r, "last_error")?,
                next_run: opt_ts(r, "next_run")?,
                heartbeat: ts(r, "heartbeat")?,
            },
            lease_owner: opt_text(r, "lease_owner")?,
            lease_until: opt_int(r, "lease_until")?,
        })
    }
}
