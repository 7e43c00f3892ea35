//! The audit log: appending to the hash chain inside the caller's transaction (so a change
//! and its record commit together or not at all), reading with filters, and walking the
//! chain for verification.
//!
//! Appends serialise on the one `audit_head` row: `UPDATE … RETURNING` takes its row lock
//! on PostgreSQL (held to commit), and SQLite has a single writer. So every replica sees
//! one chain with no gaps.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};
use zy_model::audit::{AuditEntry, AuditRecord, Outcome, Verifier};
use zy_model::time::Timestamp;
use zy_model::Error;

const COLS: &str = "seq, at, actor_id, actor_name, actor_roles, source_ip, action, target_type, target_id, outcome, request_id, detail, prev_hash, hash";

impl Decode for AuditRecord {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let outcome = text(r, "outcome")?;
        Ok(AuditRecord {
            seq: int(r, "seq")?,
            at: ts(r, "at")?,
            actor_id: opt_text(r, "actor_id")?,
            actor_name: text(r, "actor_name")?,
            actor_roles: text(r, "actor_roles")?,
            source_ip: text(r, "source_ip")?,
            action: text(r, "action")?,
            target_type: text(r, "target_type")?,
            target_id: text(r, "target_id")?,
            // An unknown outcome can only come from tampering; keep the row (the hash will
            // not match) rather than failing the read.
            outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failure),
            request_id: text(r, "request_id")?,
            detail: text(r, "detail")?,
            prev_hash: text(r, "prev_hash")?,
            hash: text(r, "hash")?,
        })
    }
}

/// Appends one record to the chain within `tx`.
pub async fn append(tx: &mut Tx, entry: AuditEntry) -> Result<AuditRecord, Error> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    let seq = int(&head, "seq")?;
    let prev = text(&head, "hash")?;
    let r = AuditRecord::chain(seq, prev, entry);
    sqlx::query(&format!(
        "INSERT INTO audit_log ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(r.seq)
    .bind(r.at.0)
    .bind(r.actor_id.clone())
    .bind(&r.actor_name)
    .bind(&r.actor_roles)
    .bind(&r.source_ip)
    .bind(&r.action)
    .bind(&r.target_type)
    .bind(&r.target_id)
    .bind(r.outcome.as_str())
    .bind(&r.request_id)
    .bind(&r.detail)
    .bind(&r.prev_hash)
    .bind(&r.hash)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&r.hash)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(r)
}

/// Filters for reading and exporting the log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Only records with a sequence number below this one (paging newest-first).
    pub before_seq: Option<i64>,
}

fn filtered(q: &AuditQuery) -> Sql {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM audit_log WHERE 1 = 1"));
    if let Some(v) = &q.actor {
        sql.push(" AND actor_name = ").bind_text(v.clone());
    }
    if let Some(v) = &q.action {
        sql.push(" AND action = ").bind_text(v.clone());
    }
    if let Some(v) = q.outcome {
        sql.push(" AND outcome = ").bind_text(v.as_str());
    }
    if let Some(v) = &q.target_type {
        sql.push(" AND target_type = ").bind_text(v.clone());
    }
    if let Some(v) = &q.target_id {
        sql.push(" AND target_id = ").bind_text(v.clone());
    }
    if let Some(v) = q.from {
        sql.push(" AND at >= ").bind(crate::sql::Arg::I64(v.0));
    }
    if let Some(v) = q.to {
        sql.push(" AND at < ").bind(crate::sql::Arg::I64(v.0));
    }
    if let Some(v) = q.before_seq {
        sql.push(" AND seq < ").bind(crate::sql::Arg::I64(v));
    }
    sql
}

/// Newest first, at most `limit` records (plus one to tell whether more follow).
pub async fn list(store: &Store, q: &AuditQuery, limit: u32) -> Result<Vec<AuditRecord>, Error> {
    let mut sql = filtered(q);
    sql.push(&format!(" ORDER BY seq DESC LIMIT {}", limit as i64 + 1));
    sql.fetch_all(store).await
}

/// Oldest first, records with `seq > after`, at most `limit`; for exports and verification.
pub async fn batch_after(
    store: &Store,
    q: &AuditQuery,
    after: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>, Error> {
    let mut sql = filtered(q);
    sql.push(" AND seq > ").bind(crate::sql::Arg::I64(after));
    sql.push(&format!(" ORDER BY seq ASC LIMIT {limit}"));
    sql.fetch_all(store).await
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyOutcome {
    pub checked: u64,
    pub finding: Option<zy_model::audit::TamperFinding>,
    /// The chain's head now: write it down outside the database to anchor later checks.
    pub head_seq: i64,
    pub head_hash: String,
}

/// Walks the chain from where the kept log starts to the head, in batches.
///
/// Records keep being appended while it walks (every change is audited), so the head is
/// read *after* the walk: a record and its head move commit together, so the head then
/// covers every record seen, and the records the head counts that came after the walk are
/// walked too (up to the head, not beyond). A log that still ends before the head, or goes
/// on past it, is tampering, not timing.
pub async fn verify(
    store: &crate::Store,
    anchor: Option<(i64, String)>,
) -> Result<VerifyOutcome, Error> {
    let start = sqlx::query("SELECT first_seq, first_prev_hash FROM audit_head WHERE id = 1")
        .fetch_one(store.pool())
        .await
        .map_err(db_error)?;
    let first_seq = int(&start, "first_seq")?;
    let mut v = Verifier::starting_at(first_seq, text(&start, "first_prev_hash")?);
    if let Some((seq, hash)) = anchor.filter(|(seq, _)| *seq >= first_seq) {
        v = v.with_anchor(seq, hash);
    }
    // From the very beginning, not from first_seq: records slipped in with smaller
    // numbers must be seen too.
    let mut after = i64::MIN;
    let mut intact = true;
    while intact {
        let batch = batch_after(store, &AuditQuery::default(), after, 1000).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        intact = batch.iter().all(|r| v.feed(r));
    }
    let (head_seq, head_hash) = head(store.pool()).await?;
    while intact && after < head_seq {
        let batch = batch_after(store, &AuditQuery::default(), after, 1000).await?;
        let batch: Vec<_> = batch.into_iter().filter(|r| r.seq <= head_seq).collect();
        let Some(last) = batch.last() else { break };
        after = last.seq;
        intact = batch.iter().all(|r| v.feed(r));
    }
    v.finish(Some((head_seq, head_hash.clone())));
    Ok(VerifyOutcome {
        checked: v.checked,
        finding: v.finding,
        head_seq,
        head_hash,
    })
}

pub async fn head<'c>(e: impl Executor<'c, Database = Any>) -> Result<(i64, String), Error> {
    let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(e)
        .await
        .map_err(db_error)?;
    Ok((int(&r, "seq")?, text(&r, "hash")?))
}

/// Deletes records older than `before` (the caller has checked the 180-day floor; the
/// database enforces it again) and moves the chain's start past them.
pub async fn purge(tx: &mut Tx, before: Timestamp) -> Result<u64, Error> {
    let next: Option<AnyRow> =
        sqlx::query("SELECT seq, prev_hash FROM audit_log WHERE at >= $1 ORDER BY seq ASC LIMIT 1")
            .bind(before.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
    let Some(next) = next else { return Ok(0) };
    let first_seq = int(&next, "seq")?;
    let first_prev = text(&next, "prev_hash")?;
    let n = sqlx::query("DELETE FROM audit_log WHERE seq < $1")
        .bind(first_seq)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    sqlx::query("UPDATE audit_head SET first_seq = $1, first_prev_hash = $2 WHERE id = 1")
        .bind(first_seq)
        .bind(first_prev)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(n)
}
