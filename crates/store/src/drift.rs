//! The drift history of OpenStack provider clouds (what appeared, changed or disappeared
//! there without going through zhengyun) and the insert of an adopted (纳管) instance.
//! State changes are conditional on the state the caller saw, so two admins deciding the
//! same item at once cannot both win.

use crate::db::Tx;
use crate::error::db_error;
use crate::instances::InstanceRow;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use zy_model::compute::DriftRecord;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::Error;

const COLS: &str = "id, provider_id, kind, external_id, change, name, openstack_project, instance_id, department_id, project_id, \
    detail, state, reason, first_seen, last_seen, decided_by, decided_at";

impl Decode for DriftRecord {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(DriftRecord {
            id: id(r, "id")?,
            provider_id: id(r, "provider_id")?,
            kind: text(r, "kind")?,
            external_id: text(r, "external_id")?,
            change: text(r, "change")?,
            name: text(r, "name")?,
            openstack_project: opt_text(r, "openstack_project")?,
            instance_id: opt_id(r, "instance_id")?,
            department_id: opt_id(r, "department_id")?,
            project_id: opt_id(r, "project_id")?,
            detail: text(r, "detail")?,
            state: text(r, "state")?,
            reason: text(r, "reason")?,
            first_seen: ts(r, "first_seen")?,
            last_seen: ts(r, "last_seen")?,
            decided_by: opt_id(r, "decided_by")?,
            decided_at: opt_ts(r, "decided_at")?,
        })
    }
}

/// A provider's drift items, newest first; only those in `states` when given.
pub async fn list(
    store: &Store,
    provider: ProviderId,
    states: Option<&[&str]>,
    limit: u32,
) -> Result<Vec<DriftRecord>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLS} FROM openstack_drift WHERE provider_id = "
    ));
    sql.bind_text(provider.to_string());
    if let Some(states) = states {
        sql.push(" AND ")
            .push_in("state", states.iter().map(|s| s.to_string()));
    }
    sql.push(&format!(
        " ORDER BY last_seen DESC, id DESC LIMIT {}",
        limit.min(10_000)
    ));
    sql.fetch_all(store).await
}

/// Every item of a provider that is not settled for good (open or resolved), plus the
/// dismissed and adopted ones, keyed by what identifies them — for the sync's comparison.
pub async fn all_of(tx: &mut Tx, provider: ProviderId) -> Result<Vec<DriftRecord>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM openstack_drift WHERE provider_id = $1"
    ))
    .bind(provider.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    rows.iter().map(DriftRecord::decode).collect()
}

pub async fn get(tx: &mut Tx, item: DriftItemId) -> Result<Option<DriftRecord>, Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM openstack_drift WHERE id = $1"))
        .bind(item.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    row.as_ref().map(DriftRecord::decode).transpose()
}

pub async fn insert(tx: &mut Tx, d: &DriftRecord) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO openstack_drift (id, provider_id, kind, external_id, change, name, openstack_project, instance_id, \
         department_id, project_id, detail, state, reason, notified, first_seen, last_seen) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $15)",
    )
    .bind(d.id.to_string())
    .bind(d.provider_id.to_string())
    .bind(&d.kind)
    .bind(&d.external_id)
    .bind(&d.change)
    .bind(&d.name)
    .bind(d.openstack_project.as_deref())
    .bind(d.instance_id.map(|i| i.to_string()))
    .bind(d.department_id.map(|i| i.to_string()))
    .bind(d.project_id.map(|i| i.to_string()))
    .bind(&d.detail)
    .bind(&d.state)
    .bind(&d.reason)
    .bind(d.first_seen.0)
    .bind(d.last_seen.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Seen again: the last-seen time and the detail; a resolved item opens again (and is
/// announced again).
pub async fn seen(
    tx: &mut Tx,
    item: DriftItemId,
    at: Timestamp,
    detail: &str,
    reopen: bool,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE openstack_drift SET last_seen = $1, detail = $2, \
         state = CASE WHEN $3 = 1 AND state = 'resolved' THEN 'open' ELSE state END, \
         notified = CASE WHEN $3 = 1 AND state = 'resolved' THEN 0 ELSE notified END \
         WHERE id = $4",
    )
    .bind(at.0)
    .bind(detail)
    .bind(i64::from(reopen))
    .bind(item.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Moves an item from `from` to `to` with the reason (and who decided, for decisions);
/// false when it was no longer in `from`.
#[allow(clippy::too_many_arguments)]
pub async fn set_state(
    tx: &mut Tx,
    item: DriftItemId,
    from: &str,
    to: &str,
    reason: &str,
    instance: Option<InstanceId>,
    by: Option<UserId>,
    at: Timestamp,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE openstack_drift SET state = $1, reason = $2, instance_id = COALESCE($3, instance_id), \
         decided_by = COALESCE($4, decided_by), decided_at = CASE WHEN $4 IS NULL THEN decided_at ELSE $5 END \
         WHERE id = $6 AND state = $7",
    )
    .bind(to)
    .bind(reason)
    .bind(instance.map(|i| i.to_string()))
    .bind(by.map(|u| u.to_string()))
    .bind(at.0)
    .bind(item.to_string())
    .bind(from)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// The reason an open item stays open (e.g. over quota), without changing its state.
pub async fn set_reason(tx: &mut Tx, item: DriftItemId, reason: &str) -> Result<(), Error> {
    sqlx::query("UPDATE openstack_drift SET reason = $1 WHERE id = $2")
        .bind(reason)
        .bind(item.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Open items not yet announced; marks them announced.
pub async fn take_unnotified(tx: &mut Tx, provider: ProviderId) -> Result<Vec<DriftRecord>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM openstack_drift WHERE provider_id = $1 AND state = 'open' AND notified = 0 ORDER BY first_seen, id"
    ))
    .bind(provider.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    let items: Vec<DriftRecord> = rows
        .iter()
        .map(DriftRecord::decode)
        .collect::<Result<_, _>>()?;
    if !items.is_empty() {
        sqlx::query(
            "UPDATE openstack_drift SET notified = 1 WHERE provider_id = $1 AND state = 'open' AND notified = 0",
        )
        .bind(provider.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(items)
}

/// Inserts an instance adopted from a provider cloud: already placed and in its settled
/// state, holding its quota, nothing left for the reconciler to do.
pub async fn insert_adopted(tx: &mut Tx, r: &InstanceRow) -> Result<(), Error> {
    let i = &r.instance;
    let at = i.adopted_at.unwrap_or(i.created_at);
    sqlx::query(
        "INSERT INTO instances (id, project_id, department_id, name, flavor_id, flavor_name, image_id, image_name, vcpus, memory_mib, disk_gib, gpus, \
         zone_id, provider_id, host_id, state, desired, quota_held, capacity_held, disk_created, work, created_at, updated_at, user_data, \
         origin, adopted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, 0, 1, 0, $18, $18, '', 'adopted', $19)",
    )
    .bind(i.id.to_string())
    .bind(i.project_id.to_string())
    .bind(i.department_id.to_string())
    .bind(&i.name)
    .bind(i.flavor_id.to_string())
    .bind(&i.flavor_name)
    .bind(i.image_id.to_string())
    .bind(&i.image_name)
    .bind(i.vcpus as i64)
    .bind(i.memory_mib as i64)
    .bind(i.disk_gib as i64)
    .bind(i.gpus as i64)
    .bind(i.zone_id.map(|z| z.to_string()))
    .bind(i.provider_id.map(|p| p.to_string()))
    .bind(i.host_id.map(|h| h.to_string()))
    .bind(i.state.as_str())
    .bind(i.desired.as_str())
    .bind(i.created_at.0)
    .bind(at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    crate::instances::event(
        tx,
        i.id,
        "",
        i.state.as_str(),
        "adopted from the provider cloud (纳管)",
    )
    .await
}
