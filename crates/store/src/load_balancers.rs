//! Load balancers (负载均衡): one row each, with the listeners as a JSON document replaced
//! whole (conditional on the generation), the host running it, the generation the host
//! applied and the members' operating status it last reported. The virtual IP is a row of
//! `nics` (see the migration), inserted and removed with the load balancer.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::*;
use zy_model::network::lb::*;
use zy_model::time::Timestamp;
use zy_model::Error;

const COLS: &str = "id, department_id, project_id, vpc_id, subnet_id, vip_nic_id, vip, name, description, \
    listeners, state, host_id, simulated, applied_generation, member_status, last_error, created_at, updated_at, generation";

/// A load balancer with the id of the NIC row holding its virtual IP.
#[derive(Debug, Clone)]
pub struct LbRow {
    pub lb: LoadBalancer,
    pub vip_nic_id: NicId,
}

fn json_col<T: serde::de::DeserializeOwned>(r: &impl Get, col: &str) -> Result<T, Error> {
    serde_json::from_str(&text(r, col)?)
        .map_err(|e| Error::internal(format!("load_balancers.{col} is not valid JSON: {e}")))
}

impl Decode for LbRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(LbRow {
            vip_nic_id: id(r, "vip_nic_id")?,
            lb: LoadBalancer {
                id: id(r, "id")?,
                department_id: id(r, "department_id")?,
                project_id: id(r, "project_id")?,
                vpc_id: id(r, "vpc_id")?,
                subnet_id: id(r, "subnet_id")?,
                name: text(r, "name")?,
                description: text(r, "description")?,
                vip: text(r, "vip")?,
                listeners: json_col(r, "listeners")?,
                state: LbState::parse(&text(r, "state")?).unwrap_or(LbState::Error),
                host_id: opt_id(r, "host_id")?,
                simulated: int(r, "simulated")? != 0,
                applied_generation: int(r, "applied_generation")?,
                members: json_col(r, "member_status")?,
                last_error: opt_text(r, "last_error")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
                generation: int(r, "generation")?,
            },
        })
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::internal(e.to_string()))
}

pub async fn insert(tx: &mut Tx, lb: &LoadBalancer, vip_nic: NicId) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO load_balancers ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(lb.id.to_string())
    .bind(lb.department_id.to_string())
    .bind(lb.project_id.to_string())
    .bind(lb.vpc_id.to_string())
    .bind(lb.subnet_id.to_string())
    .bind(vip_nic.to_string())
    .bind(&lb.vip)
    .bind(&lb.name)
    .bind(&lb.description)
    .bind(to_json(&lb.listeners)?)
    .bind(lb.state.as_str())
    .bind(lb.host_id.map(|h| h.to_string()))
    .bind(i64::from(lb.simulated))
    .bind(lb.applied_generation)
    .bind(to_json(&lb.members)?)
    .bind(lb.last_error.clone())
    .bind(lb.created_at.0)
    .bind(lb.updated_at.0)
    .bind(lb.generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: LoadBalancerId,
) -> Result<Option<LbRow>, Error> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM load_balancers WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(LbRow::decode).transpose()
}

/// Load balancers visible to a caller (`None`: all), optionally of one project.
pub async fn list(
    store: &Store,
    departments: Option<&[DepartmentId]>,
    projects: Option<&[ProjectId]>,
    project: Option<ProjectId>,
) -> Result<Vec<LoadBalancer>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM load_balancers WHERE 1 = 1"));
    sql.push_visible("project_id", departments, projects);
    if let Some(p) = project {
        sql.push(" AND project_id = ").bind_text(p.to_string());
    }
    sql.push(" ORDER BY name, id LIMIT 1000");
    let rows: Vec<LbRow> = sql.fetch_all(store).await?;
    Ok(rows.into_iter().map(|r| r.lb).collect())
}

/// Every load balancer placed on a host and not being deleted (for the health poll).
pub async fn placed(store: &Store) -> Result<Vec<LoadBalancer>, Error> {
    let rows: Vec<LbRow> = Sql::new(&format!(
        "SELECT {COLS} FROM load_balancers WHERE host_id IS NOT NULL AND state <> 'deleting' ORDER BY id LIMIT 10000"
    ))
    .fetch_all(store)
    .await?;
    Ok(rows.into_iter().map(|r| r.lb).collect())
}

/// Replaces the listeners when the generation is still `generation`; the new generation
/// waits to be applied (`pending`). False when someone changed it meanwhile.
pub async fn replace_listeners(
    tx: &mut Tx,
    id: LoadBalancerId,
    generation: i64,
    listeners: &[LbListener],
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE load_balancers SET listeners = $1, state = 'pending', last_error = NULL, updated_at = $2, \
         generation = generation + 1 WHERE id = $3 AND generation = $4 AND state <> 'deleting'",
    )
    .bind(to_json(&listeners)?)
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(n.rows_affected() == 1)
}

/// Places the load balancer on a host (only if it has none yet); false if it has one.
pub async fn place(
    tx: &mut Tx,
    id: LoadBalancerId,
    host: HostId,
    simulated: bool,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE load_balancers SET host_id = $1, simulated = $2 WHERE id = $3 AND host_id IS NULL",
    )
    .bind(host.to_string())
    .bind(i64::from(simulated))
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(n.rows_affected() == 1)
}

/// Takes the host back (undo of a placement) when nothing was applied there.
pub async fn unplace(tx: &mut Tx, id: LoadBalancerId) -> Result<(), Error> {
    sqlx::query(
        "UPDATE load_balancers SET host_id = NULL WHERE id = $1 AND applied_generation = 0",
    )
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Records that the host runs `generation`: `active` when that is still the newest.
pub async fn applied(
    tx: &mut Tx,
    id: LoadBalancerId,
    generation: i64,
    members: &[MemberStatus],
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE load_balancers SET applied_generation = $1, member_status = $2, last_error = NULL, \
         state = CASE WHEN generation = $1 AND state <> 'deleting' THEN 'active' ELSE state END \
         WHERE id = $3 AND applied_generation <= $1",
    )
    .bind(generation)
    .bind(to_json(&members)?)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Records the members' health the host reported for the applied generation.
pub async fn set_member_status(
    tx: &mut Tx,
    id: LoadBalancerId,
    applied_generation: i64,
    members: &[MemberStatus],
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE load_balancers SET member_status = $1 WHERE id = $2 AND applied_generation = $3",
    )
    .bind(to_json(&members)?)
    .bind(id.to_string())
    .bind(applied_generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(n.rows_affected() == 1)
}

/// A saga could not apply a change: a new load balancer ends `error`; a changed one keeps
/// running its previous configuration (restored by the undo) and shows why.
pub async fn failed(tx: &mut Tx, id: LoadBalancerId, first: bool, why: &str) -> Result<(), Error> {
    let q = if first {
        "UPDATE load_balancers SET state = 'error', last_error = $1 WHERE id = $2 AND state <> 'deleting'"
    } else {
        "UPDATE load_balancers SET last_error = $1 WHERE id = $2 AND state <> 'deleting'"
    };
    sqlx::query(q)
        .bind(zy_model::validate::clip(why, 500))
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Puts earlier listeners back (undo of a change) as a new generation, which it returns.
pub async fn restore_listeners(
    tx: &mut Tx,
    id: LoadBalancerId,
    listeners: &[LbListener],
) -> Result<i64, Error> {
    sqlx::query(
        "UPDATE load_balancers SET listeners = $1, updated_at = $2, generation = generation + 1 \
         WHERE id = $3 AND state <> 'deleting'",
    )
    .bind(to_json(&listeners)?)
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query_scalar("SELECT generation FROM load_balancers WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)
}

/// Nothing runs on the host any more (undo of a first apply).
pub async fn forget_applied(tx: &mut Tx, id: LoadBalancerId) -> Result<(), Error> {
    sqlx::query(
        "UPDATE load_balancers SET applied_generation = 0, member_status = '[]' WHERE id = $1",
    )
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Marks it for deletion; false when it already is.
pub async fn mark_deleting(tx: &mut Tx, id: LoadBalancerId) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE load_balancers SET state = 'deleting', updated_at = $1, generation = generation + 1 \
         WHERE id = $2 AND state <> 'deleting'",
    )
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(n.rows_affected() == 1)
}

/// Removes the row and its virtual IP's NIC row.
pub async fn delete(tx: &mut Tx, id: LoadBalancerId, vip_nic: NicId) -> Result<(), Error> {
    sqlx::query("DELETE FROM load_balancers WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    crate::networks::delete_nic(tx, vip_nic).await?;
    Ok(())
}

/// The hosts where instances owning `nics` run, most members first: where a load balancer
/// of those members best lives (the VPC's bridge is there already).
pub async fn member_hosts(store: &Store, nics: &[NicId]) -> Result<Vec<HostId>, Error> {
    if nics.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(
        "SELECT i.host_id AS host_id, COUNT(*) AS cnt FROM nics n JOIN instances i ON i.id = n.instance_id \
         WHERE i.host_id IS NOT NULL AND ",
    );
    sql.push_in("n.id", nics.iter().map(|n| n.to_string()))
        .push(" GROUP BY i.host_id ORDER BY cnt DESC, i.host_id");
    let rows: Vec<HostCount> = sql.fetch_all(store).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

struct HostCount(HostId);

impl Decode for HostCount {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(HostCount(id(r, "host_id")?))
    }
}

/// Load balancers per host (placement spreads them).
pub async fn count_on(store: &Store, host: HostId) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM load_balancers WHERE host_id = $1")
        .bind(host.to_string())
        .fetch_one(store.pool())
        .await
        .map_err(db_error)
}
