//! Leases (使用期限) and the recycle bin (回收站) of instances: the lease columns and the
//! recycle-bin columns of `instances`. Every step the lease manager records (a reminder, the
//! end, the release, the purge) is one conditional update on what it saw, so two replicas
//! or a restart in the middle never record a step twice.

use crate::db::Tx;
use crate::error::db_error;
use crate::instances::{InstanceRow, COLS};
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;
use zy_model::compute::QuotaLimits;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::Error;

/// Where the lease settings are kept in `settings`.
pub const SETTINGS_KEY: &str = "lease_settings";

/// The lease settings in force (the defaults until the platform admin changes them).
pub async fn settings(store: &Store) -> Result<zy_model::lease::LeaseSettings, Error> {
    Ok(crate::settings::get(store.pool(), SETTINGS_KEY)
        .await?
        .unwrap_or_default())
}

/// The same, read in a transaction.
pub async fn settings_in(tx: &mut Tx) -> Result<zy_model::lease::LeaseSettings, Error> {
    Ok(crate::settings::get(&mut **tx, SETTINGS_KEY)
        .await?
        .unwrap_or_default())
}

/// An instance whose lease needs a look, with what has been recorded for it.
#[derive(Debug, Clone)]
pub struct LeaseDue {
    pub row: InstanceRow,
    pub reminded: Option<i64>,
    pub next_at: i64,
}

impl Decode for LeaseDue {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(LeaseDue {
            row: InstanceRow::decode(r)?,
            reminded: opt_int(r, "lease_reminded")?,
            next_at: opt_int(r, "lease_next_at")?.unwrap_or(0),
        })
    }
}

/// Sets (or clears) an instance's lease end and forgets what was recorded for the previous
/// one: an extended lease gets its reminders again and an ended one is no longer ended.
/// Refused (false) for an instance that is deleted, being deleted or in the recycle bin.
pub async fn set(tx: &mut Tx, id: InstanceId, end: Option<Timestamp>) -> Result<bool, Error> {
    one(tx, sqlx::query(
        "UPDATE instances SET lease_end = $1, lease_reminded = NULL, lease_ended = 0, lease_next_at = $2, \
         updated_at = $3, generation = generation + 1 \
         WHERE id = $4 AND state <> 'deleted' AND desired <> 'deleted' AND recycled_at IS NULL",
    )
    .bind(end.map(|e| e.0))
    .bind(end.map(|_| 0i64))
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    )
    .await
}

/// Runs a conditional update; true when it changed the one row it is about.
async fn one<'q>(tx: &mut Tx, q: Query<'q, Any, AnyArguments<'q>>) -> Result<bool, Error> {
    let n = q
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Leases due for a look at `now`, oldest first.
pub async fn due(store: &Store, now: Timestamp, limit: i64) -> Result<Vec<LeaseDue>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLS}, lease_reminded, lease_next_at FROM instances \
         WHERE lease_next_at IS NOT NULL AND recycled_at IS NULL AND desired <> 'deleted' AND lease_end IS NOT NULL AND lease_next_at <= "
    ));
    sql.bind(crate::sql::Arg::I64(now.0))
        .push(" ORDER BY lease_next_at, id LIMIT ")
        .bind(crate::sql::Arg::I64(limit));
    sql.fetch_all(store).await
}

/// The condition every lease step is recorded under: the lease it was decided on.
const SAME_LEASE: &str =
    "id = $1 AND lease_end = $2 AND recycled_at IS NULL AND desired <> 'deleted'";

/// Records that the reminder for `offset` seconds before `end` went out; false when it had
/// been recorded already (by another replica, or before a restart) or the lease changed.
pub async fn record_reminder(
    tx: &mut Tx,
    id: InstanceId,
    end: Timestamp,
    offset: i64,
    next_at: Timestamp,
) -> Result<bool, Error> {
    one(
        tx,
        sqlx::query(&format!(
        "UPDATE instances SET lease_reminded = $3, lease_next_at = $4 \
         WHERE {SAME_LEASE} AND lease_ended = 0 AND (lease_reminded IS NULL OR lease_reminded > $3)"
    ))
        .bind(id.to_string())
        .bind(end.0)
        .bind(offset)
        .bind(next_at.0),
    )
    .await
}

/// Records that the lease ended: the instance is to be stopped (its wish becomes `stopped`
/// and the reconciler's flag is set; the caller starts the saga). False when recorded
/// already or the lease changed.
pub async fn record_end(
    tx: &mut Tx,
    id: InstanceId,
    end: Timestamp,
    next_at: Timestamp,
) -> Result<bool, Error> {
    one(
        tx,
        sqlx::query(&format!(
            "UPDATE instances SET lease_ended = 1, lease_next_at = $3, \
         desired = CASE WHEN desired = 'running' THEN 'stopped' ELSE desired END, work = 1, \
         updated_at = $4, generation = generation + 1 \
         WHERE {SAME_LEASE} AND lease_ended = 0"
        ))
        .bind(id.to_string())
        .bind(end.0)
        .bind(next_at.0)
        .bind(Timestamp::now().0),
    )
    .await
}

/// Moves the next look at a lease (nothing to do before `next_at`), unless it changed.
pub async fn set_next(
    tx: &mut Tx,
    id: InstanceId,
    end: Timestamp,
    seen_next: i64,
    next_at: Timestamp,
) -> Result<bool, Error> {
    one(
        tx,
        sqlx::query(&format!(
            "UPDATE instances SET lease_next_at = $4 WHERE {SAME_LEASE} AND lease_next_at = $3"
        ))
        .bind(id.to_string())
        .bind(end.0)
        .bind(seen_next)
        .bind(next_at.0),
    )
    .await
}

/// Every pending lease is looked at again on the next pass (after the settings changed).
pub async fn recheck_all(tx: &mut Tx) -> Result<u64, Error> {
    let n = sqlx::query(
        "UPDATE instances SET lease_next_at = 0 \
         WHERE lease_end IS NOT NULL AND recycled_at IS NULL AND desired <> 'deleted'",
    )
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n)
}

/// Releases an instance to the recycle bin: stopped (its wish becomes `stopped`), disks
/// and quota kept, purged at `purge_at`. With `lease_end`, only if the lease is still that
/// one and has ended (the lease manager's release). False when it is in the bin already,
/// deleted or being deleted (or the lease changed).
pub async fn release(
    tx: &mut Tx,
    id: InstanceId,
    reason: &str,
    purge_at: Timestamp,
    lease_end: Option<Timestamp>,
) -> Result<bool, Error> {
    let guard = if lease_end.is_some() {
        " AND lease_end = $5 AND lease_ended = 1"
    } else {
        ""
    };
    let now = Timestamp::now();
    let q = format!(
        "UPDATE instances SET recycled_at = $1, purge_at = $2, recycle_reason = $3, lease_next_at = NULL, \
         desired = CASE WHEN desired = 'running' THEN 'stopped' ELSE desired END, work = 1, \
         updated_at = $1, generation = generation + 1 \
         WHERE id = $4 AND recycled_at IS NULL AND state <> 'deleted' AND desired <> 'deleted'{guard}"
    );
    let mut query = sqlx::query(&q)
        .bind(now.0)
        .bind(purge_at.0)
        .bind(zy_model::validate::clip(reason, 500))
        .bind(id.to_string());
    if let Some(end) = lease_end {
        query = query.bind(end.0);
    }
    one(tx, query).await
}

/// Brings an instance back from the recycle bin (stopped; the caller decides its lease:
/// `lease_end` replaces it, and nothing is pending for it yet). False when it is not in
/// the bin or its purge has begun.
pub async fn restore(
    tx: &mut Tx,
    id: InstanceId,
    lease_end: Option<Timestamp>,
) -> Result<bool, Error> {
    one(
        tx,
        sqlx::query(
            "UPDATE instances SET recycled_at = NULL, purge_at = NULL, recycle_reason = NULL, \
         lease_end = $1, lease_reminded = NULL, lease_ended = 0, lease_next_at = $2, \
         updated_at = $3, generation = generation + 1 \
         WHERE id = $4 AND recycled_at IS NOT NULL AND desired <> 'deleted' AND state <> 'deleted'",
        )
        .bind(lease_end.map(|e| e.0))
        .bind(lease_end.map(|_| 0i64))
        .bind(Timestamp::now().0)
        .bind(id.to_string()),
    )
    .await
}

/// Instances in the recycle bin whose retention is over, oldest first.
pub async fn purge_due(
    store: &Store,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<InstanceRow>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLS} FROM instances WHERE purge_at IS NOT NULL AND recycled_at IS NOT NULL AND desired <> 'deleted' AND purge_at <= "
    ));
    sql.bind(crate::sql::Arg::I64(now.0))
        .push(" ORDER BY purge_at, id LIMIT ")
        .bind(crate::sql::Arg::I64(limit));
    sql.fetch_all(store).await
}

/// Marks an instance in the bin for deletion (the caller starts the delete saga), if it is
/// still in the bin with the same purge time.
pub async fn mark_purge(tx: &mut Tx, id: InstanceId, purge_at: Timestamp) -> Result<bool, Error> {
    one(tx, sqlx::query(
        "UPDATE instances SET desired = 'deleted', work = 1, updated_at = $1, generation = generation + 1 \
         WHERE id = $2 AND recycled_at IS NOT NULL AND purge_at = $3 AND desired <> 'deleted'",
    )
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(purge_at.0)
    )
    .await
}

/// What the recycle bin's instances of a department (or project) hold of its quota.
pub async fn recycled_usage(
    store: &Store,
    department: DepartmentId,
    project: Option<ProjectId>,
) -> Result<QuotaLimits, Error> {
    let mut sql = Sql::new(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(vcpus), 0) AS BIGINT) AS vcpus, \
         CAST(COALESCE(SUM(memory_mib), 0) AS BIGINT) AS memory_mib, \
         CAST(COALESCE(SUM(disk_gib), 0) AS BIGINT) AS disk_gib FROM instances \
         WHERE recycled_at IS NOT NULL AND quota_held = 1 AND state <> 'deleted' AND department_id = ",
    );
    sql.bind_text(department.to_string());
    if let Some(p) = project {
        sql.push(" AND project_id = ").bind_text(p.to_string());
    }
    let rows: Vec<Usage> = sql.fetch_all(store).await?;
    Ok(rows.into_iter().next().map(|u| u.0).unwrap_or(QuotaLimits {
        instances: 0,
        vcpus: 0,
        memory_mib: 0,
        disk_gib: 0,
        volumes: 0,
    }))
}

struct Usage(QuotaLimits);

impl Decode for Usage {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Usage(QuotaLimits {
            instances: int(r, "n")?,
            vcpus: int(r, "vcpus")?,
            memory_mib: int(r, "memory_mib")?,
            disk_gib: int(r, "disk_gib")?,
            volumes: 0,
        }))
    }
}

// --- volumes --------------------------------------------------------------------------

/// Releases a detached volume to the recycle bin; false when it is attached (or being
/// attached), already in the bin or gone.
pub async fn release_volume(
    tx: &mut Tx,
    id: VolumeId,
    reason: &str,
    purge_at: Timestamp,
) -> Result<bool, Error> {
    one(
        tx,
        sqlx::query(
            "UPDATE volumes SET recycled_at = $1, purge_at = $2, recycle_reason = $3, updated_at = $1, \
             generation = generation + 1 WHERE id = $4 AND state = 'available' AND recycled_at IS NULL",
        )
        .bind(Timestamp::now().0)
        .bind(purge_at.0)
        .bind(zy_model::validate::clip(reason, 500))
        .bind(id.to_string()),
    )
    .await
}

/// Brings a volume back from the recycle bin; false when it is not in the bin.
pub async fn restore_volume(tx: &mut Tx, id: VolumeId) -> Result<bool, Error> {
    one(
        tx,
        sqlx::query(
            "UPDATE volumes SET recycled_at = NULL, purge_at = NULL, recycle_reason = NULL, updated_at = $1, \
             generation = generation + 1 WHERE id = $2 AND recycled_at IS NOT NULL",
        )
        .bind(Timestamp::now().0)
        .bind(id.to_string()),
    )
    .await
}

/// Volumes in the recycle bin whose retention is over, oldest first.
pub async fn volumes_to_purge(
    store: &Store,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<zy_model::compute::Volume>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM volumes WHERE recycled_at IS NOT NULL AND purge_at IS NOT NULL AND purge_at <= ",
        crate::volumes::READ_COLS
    ));
    sql.bind(crate::sql::Arg::I64(now.0))
        .push(" ORDER BY purge_at, id LIMIT ")
        .bind(crate::sql::Arg::I64(limit));
    sql.fetch_all(store).await
}
