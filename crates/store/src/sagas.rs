//! Sagas as stored: the engine's queue and progress log. Every change is conditional on
//! the lease (`lease_owner`) and, for progress, on the step the caller saw, so a replica
//! that lost its lease can never record progress over another's.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::{Any, Executor};
pub use zy_model::ops::SagaState;
use zy_model::time::Timestamp;
use zy_model::Error;

pub const COLS: &str = "id, kind, target_id, params, data, state, step, attempts, next_attempt_at, lease_owner, lease_until, error, created_at, updated_at, finished_at";

#[derive(Debug, Clone)]
pub struct SagaRow {
    pub id: String,
    pub kind: String,
    pub target_id: String,
    pub params: String,
    pub data: String,
    pub state: SagaState,
    pub step: i64,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_until: Timestamp,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl Decode for SagaRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let state = text(r, "state")?;
        Ok(SagaRow {
            id: text(r, "id")?,
            kind: text(r, "kind")?,
            target_id: text(r, "target_id")?,
            params: text(r, "params")?,
            data: text(r, "data")?,
            state: SagaState::parse(&state)
                .ok_or_else(|| Error::internal(format!("saga state {state}")))?,
            step: int(r, "step")?,
            attempts: int(r, "attempts")?,
            next_attempt_at: ts(r, "next_attempt_at")?,
            lease_owner: opt_text(r, "lease_owner")?,
            lease_until: ts(r, "lease_until")?,
            error: opt_text(r, "error")?,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
            finished_at: r.opt_int("finished_at")?.map(Timestamp),
        })
    }
}

/// A saga to start.
pub struct NewSaga<'a> {
    pub id: String,
    pub kind: &'a str,
    pub target_id: String,
    pub params: String,
    /// The first step the engine takes (earlier ones were done by the starter).
    pub step: i64,
}

/// Starts a saga unless its target already has an active one; true when started. Runs in
/// the caller's transaction, so the saga exists exactly when the change that needs it
/// commits.
pub async fn start(tx: &mut Tx, s: &NewSaga<'_>) -> Result<bool, Error> {
    let now = Timestamp::now().0;
    let n = sqlx::query(
        "INSERT INTO sagas (id, kind, target_id, params, state, step, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'running', $6, $5, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&s.id)
    .bind(s.kind)
    .bind(&s.target_id)
    .bind(&s.params)
    .bind(now)
    .bind(s.step)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Starts many sagas with one statement per 200 (an instance batch of 500 becomes three).
pub async fn start_many(tx: &mut Tx, sagas: &[NewSaga<'_>]) -> Result<(), Error> {
    let now = Timestamp::now().0;
    for chunk in sagas.chunks(200) {
        let mut q = String::from(
            "INSERT INTO sagas (id, kind, target_id, params, state, step, created_at, updated_at) VALUES ",
        );
        for (k, _) in chunk.iter().enumerate() {
            if k > 0 {
                q.push_str(", ");
            }
            let b = k * 5;
            q.push_str(&format!(
                "(${}, ${}, ${}, ${}, 'running', ${}, ${n}, ${n})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                n = chunk.len() * 5 + 1
            ));
        }
        let mut query = sqlx::query(&q);
        for s in chunk {
            query = query
                .bind(s.id.clone())
                .bind(s.kind.to_string())
                .bind(s.target_id.clone())
                .bind(s.params.clone())
                .bind(s.step);
        }
        query.bind(now).execute(&mut **tx).await.map_err(db_error)?;
    }
    Ok(())
}

/// Whether `target` has an active saga (seen from inside a transaction).
pub async fn active_for<'c>(
    e: impl Executor<'c, Database = Any>,
    target: &str,
) -> Result<Option<SagaRow>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM sagas WHERE target_id = $1 AND state IN ('running', 'undoing')"
    ))
    .bind(target)
    .fetch_optional(e)
    .await
    .map_err(db_error)?;
    r.as_ref().map(SagaRow::decode).transpose()
}

/// Claims up to `limit` runnable sagas whose lease is free, for `owner` until
/// `lease_until`; the lease condition is re-checked on each row, so two replicas never
/// hold the same saga.
pub async fn claim(
    store: &Store,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<SagaRow>, Error> {
    let rows = sqlx::query(&format!(
        "UPDATE sagas SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM sagas WHERE state IN ('running', 'undoing') AND next_attempt_at <= $3 AND lease_until < $3 \
                      ORDER BY next_attempt_at LIMIT {limit}) \
         AND state IN ('running', 'undoing') AND lease_until < $3 RETURNING {COLS}"
    ))
    .bind(owner)
    .bind(lease_until.0)
    .bind(now.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(SagaRow::decode).collect()
}

/// Claims one saga by id (to run it at once in the request that started it).
pub async fn claim_one(
    store: &Store,
    id: &str,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<SagaRow>, Error> {
    let r = sqlx::query(&format!(
        "UPDATE sagas SET lease_owner = $1, lease_until = $2 \
         WHERE id = $3 AND state IN ('running', 'undoing') AND lease_until < $4 RETURNING {COLS}"
    ))
    .bind(owner)
    .bind(lease_until.0)
    .bind(id)
    .bind(now.0)
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?;
    r.as_ref().map(SagaRow::decode).transpose()
}

/// Extends every lease `owner` holds on active sagas (called while work runs).
pub async fn renew(store: &Store, owner: &str, lease_until: Timestamp) -> Result<u64, Error> {
    let n = sqlx::query(
        "UPDATE sagas SET lease_until = $1 WHERE lease_owner = $2 AND state IN ('running', 'undoing') AND lease_until > 0",
    )
    .bind(lease_until.0)
    .bind(owner)
    .execute(store.pool())
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n)
}

/// Records a step's outcome: the new state and step, the data, and whether the saga
/// ended. Conditional on the caller still holding the lease and on the step it ran, so
/// the step's own changes in the same transaction commit only if this records them.
#[allow(clippy::too_many_arguments)]
pub async fn advance(
    tx: &mut Tx,
    id: &str,
    owner: &str,
    from: (SagaState, i64),
    to: (SagaState, i64),
    data: &str,
    error: Option<&str>,
) -> Result<bool, Error> {
    let now = Timestamp::now().0;
    let finished = (!to.0.active()).then_some(now);
    let n = sqlx::query(
        "UPDATE sagas SET state = $1, step = $2, data = $3, attempts = 0, next_attempt_at = 0, \
         error = COALESCE($4, error), updated_at = $5, finished_at = $6, \
         lease_owner = CASE WHEN $7 = 1 THEN lease_owner ELSE NULL END, \
         lease_until = CASE WHEN $7 = 1 THEN lease_until ELSE 0 END \
         WHERE id = $8 AND lease_owner = $9 AND state = $10 AND step = $11",
    )
    .bind(to.0.as_str())
    .bind(to.1)
    .bind(data)
    .bind(error.map(|e| zy_model::validate::clip(e, 2000)))
    .bind(now)
    .bind(finished)
    .bind(i64::from(to.0.active()))
    .bind(id)
    .bind(owner)
    .bind(from.0.as_str())
    .bind(from.1)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Puts a saga back in the queue for a later try and lets go of its lease.
pub async fn retry_later(
    store: &Store,
    id: &str,
    owner: &str,
    attempts: i64,
    at: Timestamp,
    error: &str,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE sagas SET attempts = $1, next_attempt_at = $2, error = $3, updated_at = $4, lease_owner = NULL, lease_until = 0 \
         WHERE id = $5 AND lease_owner = $6 AND state IN ('running', 'undoing')",
    )
    .bind(attempts)
    .bind(at.0)
    .bind(zy_model::validate::clip(error, 2000))
    .bind(Timestamp::now().0)
    .bind(id)
    .bind(owner)
    .execute(store.pool())
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<SagaRow>, Error> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM sagas WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(SagaRow::decode).transpose()
}

/// The sagas of one target, newest first.
pub async fn of_target(store: &Store, target: &str, limit: u32) -> Result<Vec<SagaRow>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM sagas WHERE target_id = "));
    sql.bind_text(target.to_string())
        .push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {limit}"));
    sql.fetch_all(store).await
}

/// Active sagas (newest first), for operators and the invariant check.
pub async fn active(store: &Store, limit: u32) -> Result<Vec<SagaRow>, Error> {
    Sql::new(&format!(
        "SELECT {COLS} FROM sagas WHERE state IN ('running', 'undoing') ORDER BY created_at DESC LIMIT {limit}"
    ))
    .fetch_all(store)
    .await
}

/// Counts of sagas by kind and state (for the tasks page and metrics).
pub async fn counts(store: &Store) -> Result<Vec<(String, String, i64)>, Error> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT kind, state, COUNT(*) FROM sagas GROUP BY kind, state")
            .fetch_all(store.pool())
            .await
            .map_err(db_error)?;
    Ok(rows)
}

/// Frees every saga lease. Only for SQLite at start-up: one database file has one
/// server, so a lease left in it belongs to a process that is gone.
pub async fn release_all_leases(store: &Store) -> Result<u64, Error> {
    let n = sqlx::query(
        "UPDATE sagas SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL AND state IN ('running', 'undoing')",
    )
    .execute(store.pool())
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n)
}
