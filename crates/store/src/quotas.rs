//! Quotas per department and per project. Use is changed only by a conditional update
//! that keeps every resource within its limit, in the same transaction as the change that
//! needs it; two concurrent creates therefore cannot overrun a quota on any replica.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use sqlx::{Any, Executor};
use zy_model::compute::{Quota, QuotaLimits};
use zy_model::Error;

/// Limits a department or project has until someone sets others.
pub const DEFAULT_LIMITS: QuotaLimits = QuotaLimits {
    instances: 500,
    vcpus: 2000,
    memory_mib: 8 * 1024 * 1024,
    disk_gib: 200 * 1024,
    volumes: 1000,
};

impl Decode for Quota {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Quota {
            scope_type: text(r, "scope_type")?,
            scope_id: text(r, "scope_id")?,
            limits: QuotaLimits {
                instances: int(r, "max_instances")?,
                vcpus: int(r, "max_vcpus")?,
                memory_mib: int(r, "max_memory_mib")?,
                disk_gib: int(r, "max_disk_gib")?,
                volumes: int(r, "max_volumes")?,
            },
            used: QuotaLimits {
                instances: int(r, "used_instances")?,
                vcpus: int(r, "used_vcpus")?,
                memory_mib: int(r, "used_memory_mib")?,
                disk_gib: int(r, "used_disk_gib")?,
                volumes: int(r, "used_volumes")?,
            },
            recycled: None,
        })
    }
}

const COLS: &str =
    "scope_type, scope_id, max_instances, max_vcpus, max_memory_mib, max_disk_gib, max_volumes, \
    used_instances, used_vcpus, used_memory_mib, used_disk_gib, used_volumes";

/// Creates the quota row with default limits if it does not exist yet.
pub async fn ensure(tx: &mut Tx, scope_type: &str, scope_id: &str) -> Result<(), Error> {
    let d = DEFAULT_LIMITS;
    sqlx::query(
        "INSERT INTO quotas (scope_type, scope_id, max_instances, max_vcpus, max_memory_mib, max_disk_gib, max_volumes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope_type, scope_id) DO NOTHING",
    )
    .bind(scope_type)
    .bind(scope_id)
    .bind(d.instances)
    .bind(d.vcpus)
    .bind(d.memory_mib)
    .bind(d.disk_gib)
    .bind(d.volumes)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    scope_type: &str,
    scope_id: &str,
) -> Result<Option<Quota>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM quotas WHERE scope_type = $1 AND scope_id = $2"
    ))
    .bind(scope_type)
    .bind(scope_id)
    .fetch_optional(e)
    .await
    .map_err(db_error)?;
    r.as_ref().map(Quota::decode).transpose()
}

pub async fn set_limits(
    tx: &mut Tx,
    scope_type: &str,
    scope_id: &str,
    l: &QuotaLimits,
) -> Result<(), Error> {
    ensure(tx, scope_type, scope_id).await?;
    sqlx::query(
        "UPDATE quotas SET max_instances = $1, max_vcpus = $2, max_memory_mib = $3, max_disk_gib = $4, max_volumes = $5, generation = generation + 1 \
         WHERE scope_type = $6 AND scope_id = $7",
    )
    .bind(l.instances)
    .bind(l.vcpus)
    .bind(l.memory_mib)
    .bind(l.disk_gib)
    .bind(l.volumes)
    .bind(scope_type)
    .bind(scope_id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Adds `d` to the use if every resource stays within its limit (a negative part always
/// applies). Returns false, changing nothing, when it would not.
pub async fn consume(
    tx: &mut Tx,
    scope_type: &str,
    scope_id: &str,
    d: &QuotaLimits,
) -> Result<bool, Error> {
    ensure(tx, scope_type, scope_id).await?;
    let n = sqlx::query(
        "UPDATE quotas SET used_instances = used_instances + $1, used_vcpus = used_vcpus + $2, used_memory_mib = used_memory_mib + $3, \
         used_disk_gib = used_disk_gib + $4, used_volumes = used_volumes + $5, generation = generation + 1 \
         WHERE scope_type = $6 AND scope_id = $7 \
         AND ($1 <= 0 OR used_instances + $1 <= max_instances) AND ($2 <= 0 OR used_vcpus + $2 <= max_vcpus) \
         AND ($3 <= 0 OR used_memory_mib + $3 <= max_memory_mib) AND ($4 <= 0 OR used_disk_gib + $4 <= max_disk_gib) \
         AND ($5 <= 0 OR used_volumes + $5 <= max_volumes) \
         AND used_instances + $1 >= 0 AND used_vcpus + $2 >= 0 AND used_memory_mib + $3 >= 0 AND used_disk_gib + $4 >= 0 AND used_volumes + $5 >= 0",
    )
    .bind(d.instances)
    .bind(d.vcpus)
    .bind(d.memory_mib)
    .bind(d.disk_gib)
    .bind(d.volumes)
    .bind(scope_type)
    .bind(scope_id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Gives `d` back (never below zero).
pub async fn release(
    tx: &mut Tx,
    scope_type: &str,
    scope_id: &str,
    d: &QuotaLimits,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE quotas SET \
         used_instances = CASE WHEN used_instances >= $1 THEN used_instances - $1 ELSE 0 END, \
         used_vcpus = CASE WHEN used_vcpus >= $2 THEN used_vcpus - $2 ELSE 0 END, \
         used_memory_mib = CASE WHEN used_memory_mib >= $3 THEN used_memory_mib - $3 ELSE 0 END, \
         used_disk_gib = CASE WHEN used_disk_gib >= $4 THEN used_disk_gib - $4 ELSE 0 END, \
         used_volumes = CASE WHEN used_volumes >= $5 THEN used_volumes - $5 ELSE 0 END, generation = generation + 1 \
         WHERE scope_type = $6 AND scope_id = $7",
    )
    .bind(d.instances)
    .bind(d.vcpus)
    .bind(d.memory_mib)
    .bind(d.disk_gib)
    .bind(d.volumes)
    .bind(scope_type)
    .bind(scope_id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Every quota row, for the invariant check.
pub async fn all(store: &crate::Store) -> Result<Vec<Quota>, Error> {
    crate::sql::Sql::new(&format!(
        "SELECT {COLS} FROM quotas ORDER BY scope_type, scope_id"
    ))
    .fetch_all(store)
    .await
}
