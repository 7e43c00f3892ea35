//! Volumes (云硬盘): space in a storage pool, attached to at most one instance. Pool space
//! and quota are taken by conditional updates in the same transaction as the change;
//! attachment changes are conditional on the state the caller saw.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{finish_page, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::compute::{Volume, VolumeState};
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};
use zy_model::time::Timestamp;
use zy_model::Error;

const COLS: &str = "id, project_id, department_id, name, size_gib, pool_id, instance_id, state, created_at, updated_at, generation";
/// What is read: the columns written at insert, the recycle-bin and the adoption columns.
pub const READ_COLS: &str = "id, project_id, department_id, name, size_gib, pool_id, instance_id, state, created_at, updated_at, generation, \
    recycled_at, purge_at, recycle_reason, origin, adopted_at";

impl Decode for Volume {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Volume {
            id: id(r, "id")?,
            project_id: id(r, "project_id")?,
            department_id: id(r, "department_id")?,
            name: text(r, "name")?,
            size_gib: int(r, "size_gib")? as u64,
            pool_id: id(r, "pool_id")?,
            instance_id: opt_id(r, "instance_id")?,
            state: if text(r, "state")? == "in_use" {
                VolumeState::InUse
            } else {
                VolumeState::Available
            },
            recycled_at: opt_ts(r, "recycled_at")?,
            purge_at: opt_ts(r, "purge_at")?,
            recycle_reason: opt_text(r, "recycle_reason")?,
            origin: text(r, "origin")?,
            adopted_at: opt_ts(r, "adopted_at")?,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
            generation: int(r, "generation")?,
        })
    }
}

pub async fn insert(tx: &mut Tx, v: &Volume) -> Result<(), Error> {
    sqlx::query(&format!("INSERT INTO volumes ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, NULL, 'available', $7, $7, 1)"))
        .bind(v.id.to_string())
        .bind(v.project_id.to_string())
        .bind(v.department_id.to_string())
        .bind(&v.name)
        .bind(v.size_gib as i64)
        .bind(v.pool_id.to_string())
        .bind(v.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    crate::billing::meter_volume(tx, v.id).await
}

/// Inserts an adopted (纳管) volume as it is found: attached or not, origin `adopted`;
/// metered from now. Quota and pool space are the caller's, in the same transaction.
pub async fn insert_adopted(tx: &mut Tx, v: &Volume) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO volumes ({COLS}, origin, adopted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, 'adopted', $10)"
    ))
    .bind(v.id.to_string())
    .bind(v.project_id.to_string())
    .bind(v.department_id.to_string())
    .bind(&v.name)
    .bind(v.size_gib as i64)
    .bind(v.pool_id.to_string())
    .bind(v.instance_id.map(|i| i.to_string()))
    .bind(if v.instance_id.is_some() {
        "in_use"
    } else {
        "available"
    })
    .bind(v.created_at.0)
    .bind(v.adopted_at.map(|t| t.0))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    crate::billing::meter_volume(tx, v.id).await
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: VolumeId,
) -> Result<Option<Volume>, Error> {
    let r = sqlx::query(&format!("SELECT {READ_COLS} FROM volumes WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(Volume::decode).transpose()
}

pub async fn list(
    store: &Store,
    page: &PageRequest,
    departments: Option<&[DepartmentId]>,
    projects: Option<&[ProjectId]>,
    project: Option<ProjectId>,
    recycled: bool,
) -> Result<Page<Volume>, Error> {
    let mut sql = Sql::new(&format!("SELECT {READ_COLS} FROM volumes WHERE 1 = 1"));
    sql.push_visible("project_id", departments, projects);
    if let Some(p) = project {
        sql.push(" AND project_id = ").bind_text(p.to_string());
    }
    sql.push(if recycled {
        " AND recycled_at IS NOT NULL"
    } else {
        " AND recycled_at IS NULL"
    });
    sql.push_page(page, "name", "created_at", "id");
    let items: Vec<Volume> = sql.fetch_all(store).await?;
    Ok(finish_page(page, items, |v| {
        (v.name.clone(), v.created_at.0, v.id.to_string())
    }))
}

/// Attaches (`Some`) or detaches (`None`) if the volume is still in the expected state (and,
/// to attach, not in the recycle bin).
pub async fn set_attachment(
    tx: &mut Tx,
    id: VolumeId,
    instance: Option<InstanceId>,
) -> Result<bool, Error> {
    let (to, from) = if instance.is_some() {
        ("in_use", "available")
    } else {
        ("available", "in_use")
    };
    let n = sqlx::query("UPDATE volumes SET state = $1, instance_id = $2, updated_at = $3, generation = generation + 1 WHERE id = $4 AND state = $5 AND ($5 = 'in_use' OR recycled_at IS NULL)")
        .bind(to)
        .bind(instance.map(|i| i.to_string()))
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .bind(from)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

pub async fn set_size(tx: &mut Tx, id: VolumeId, size_gib: u64) -> Result<(), Error> {
    sqlx::query("UPDATE volumes SET size_gib = $1, updated_at = $2, generation = generation + 1 WHERE id = $3")
        .bind(size_gib as i64)
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    crate::billing::meter_volume(tx, id).await
}

/// Deletes a volume that is not attached; false if it is (or is gone).
pub async fn delete_available(tx: &mut Tx, id: VolumeId) -> Result<bool, Error> {
    let n = sqlx::query("DELETE FROM volumes WHERE id = $1 AND state = 'available'")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 1 {
        crate::billing::meter_volume(tx, id).await?;
    }
    Ok(n == 1)
}

/// Frees every volume attached to an instance that is being deleted.
pub async fn detach_all(tx: &mut Tx, instance: InstanceId) -> Result<u64, Error> {
    let n = sqlx::query("UPDATE volumes SET state = 'available', instance_id = NULL, updated_at = $1, generation = generation + 1 WHERE instance_id = $2")
        .bind(Timestamp::now().0)
        .bind(instance.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n)
}

/// Every volume, for the invariant check.
pub async fn all(store: &Store) -> Result<Vec<Volume>, Error> {
    Sql::new(&format!("SELECT {READ_COLS} FROM volumes"))
        .fetch_all(store)
        .await
}

pub async fn count_attached<'c>(
    e: impl Executor<'c, Database = Any>,
    instance: InstanceId,
) -> Result<i64, Error> {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM volumes WHERE instance_id = $1")
        .bind(instance.to_string())
        .fetch_one(e)
        .await
        .map_err(db_error)
}

/// Lets go of a volume's attachment to `instance` (the end of a detach, or the undo of an
/// attach); false when it is not attached to that instance (released already).
pub async fn release_attachment(
    tx: &mut Tx,
    id: VolumeId,
    instance: InstanceId,
) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE volumes SET state = 'available', instance_id = NULL, updated_at = $1, generation = generation + 1 WHERE id = $2 AND instance_id = $3")
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .bind(instance.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Sets the size back from `to` to `from` (the undo of an extend); false when the volume
/// no longer has size `to` (undone already).
pub async fn restore_size(tx: &mut Tx, id: VolumeId, to: u64, from: u64) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE volumes SET size_gib = $1, updated_at = $2, generation = generation + 1 WHERE id = $3 AND size_gib = $4")
        .bind(from as i64)
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .bind(to as i64)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 1 {
        crate::billing::meter_volume(tx, id).await?;
    }
    Ok(n == 1)
}

/// Reads a volume inside a write transaction (the state a conditional change is decided on).
pub async fn get_for_update(tx: &mut Tx, id: VolumeId) -> Result<Option<Volume>, Error> {
    get(&mut **tx, id).await
}
