//! Join tokens, the agents of real hosts, and live migrations. A join token is consumed
//! by one conditional update, so two agents racing with the same token cannot both join;
//! at most one migration per instance runs at a time (a partial unique index).

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use zy_model::agents::*;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::Error;

impl Decode for JoinToken {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(JoinToken {
            id: id(r, "id")?,
            zone_id: id(r, "zone_id")?,
            created_at: ts(r, "created_at")?,
            expires_at: ts(r, "expires_at")?,
            used_at: opt_ts(r, "used_at")?,
            host_id: opt_id(r, "host_id")?,
        })
    }
}

pub async fn insert_join_token(
    tx: &mut Tx,
    t: &JoinToken,
    token_hash: &str,
    created_by: &str,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO join_tokens (id, zone_id, token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(t.id.to_string())
        .bind(t.zone_id.to_string())
        .bind(token_hash)
        .bind(created_by)
        .bind(t.created_at.0)
        .bind(t.expires_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Uses the token if it exists, is unused and unexpired; the zone it joins, or `None`.
pub async fn consume_join_token(
    tx: &mut Tx,
    token_hash: &str,
    host: HostId,
    now: Timestamp,
) -> Result<Option<ZoneId>, Error> {
    let zone: Option<String> = sqlx::query_scalar(
        "UPDATE join_tokens SET used_at = $1, host_id = $2 \
         WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING zone_id",
    )
    .bind(now.0)
    .bind(host.to_string())
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    zone.map(|z| z.parse()).transpose()
}

/// Whether a join token with this hash exists, is unused and unexpired — a read, so a
/// bad token costs one indexed lookup and no write lock.
pub async fn join_token_usable(
    store: &Store,
    token_hash: &str,
    now: Timestamp,
) -> Result<bool, Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM join_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now.0)
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?;
    Ok(found.is_some())
}

pub async fn join_tokens(store: &Store) -> Result<Vec<JoinToken>, Error> {
    let mut sql = Sql::new(
        "SELECT id, zone_id, created_at, expires_at, used_at, host_id FROM join_tokens ORDER BY created_at DESC",
    );
    sql.push(" LIMIT 1000");
    sql.fetch_all(store).await
}

/// An agent as stored, with its certificate.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub host_id: HostId,
    pub host_name: String,
    pub address: String,
    pub cert_pem: String,
    pub accel: String,
    pub joined_at: Timestamp,
    pub last_seen: Timestamp,
    pub report: String,
}

impl Decode for AgentRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(AgentRow {
            host_id: id(r, "host_id")?,
            host_name: opt_text(r, "host_name")?.unwrap_or_default(),
            address: text(r, "address")?,
            cert_pem: text(r, "cert_pem")?,
            accel: text(r, "accel")?,
            joined_at: ts(r, "joined_at")?,
            last_seen: ts(r, "last_seen")?,
            report: text(r, "report")?,
        })
    }
}

/// The name of the row's host, read with it.
const HOST_NAME: &str = "(SELECT name FROM hosts WHERE hosts.id = agents.host_id) AS host_name";
const AGENT_COLS: &str = "host_id, address, cert_pem, accel, joined_at, last_seen, report";

pub async fn insert_agent(tx: &mut Tx, a: &AgentRow) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO agents ({AGENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(a.host_id.to_string())
    .bind(&a.address)
    .bind(&a.cert_pem)
    .bind(&a.accel)
    .bind(a.joined_at.0)
    .bind(a.last_seen.0)
    .bind(&a.report)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn agents(store: &Store) -> Result<Vec<AgentRow>, Error> {
    Sql::new(&format!(
        "SELECT {AGENT_COLS}, {HOST_NAME} FROM agents ORDER BY joined_at"
    ))
    .fetch_all(store)
    .await
}

/// Records a heartbeat (no transaction: last writer wins, and every writer is current).
pub async fn heartbeat(
    store: &Store,
    host: HostId,
    accel: &str,
    report: &str,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query("UPDATE agents SET accel = $1, report = $2, last_seen = $3 WHERE host_id = $4")
        .bind(accel)
        .bind(report)
        .bind(now.0)
        .bind(host.to_string())
        .execute(store.pool())
        .await
        .map_err(db_error)?;
    Ok(())
}

impl Decode for Migration {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let state = text(r, "state")?;
        Ok(Migration {
            id: id(r, "id")?,
            instance_id: id(r, "instance_id")?,
            source_host_id: id(r, "source_host_id")?,
            target_host_id: id(r, "target_host_id")?,
            source_host_name: opt_text(r, "source_host_name")?,
            target_host_name: opt_text(r, "target_host_name")?,
            state: MigrationState::parse(&state).unwrap_or(MigrationState::Failed),
            downtime_ms: opt_int(r, "downtime_ms")?.map(|v| v as u64),
            total_ms: opt_int(r, "total_ms")?.map(|v| v as u64),
            error: opt_text(r, "error")?,
            created_by: text(r, "created_by")?,
            created_at: ts(r, "created_at")?,
            finished_at: opt_ts(r, "finished_at")?,
        })
    }
}

const MIGRATION_COLS: &str = "id, instance_id, source_host_id, target_host_id, state, downtime_ms, total_ms, error, created_by, created_at, finished_at";
/// A migration as read: its columns and the names of its two hosts.
const MIGRATION_VIEW: &str = "id, instance_id, source_host_id, target_host_id, state, downtime_ms, total_ms, error, created_by, created_at, finished_at, \
    (SELECT name FROM hosts WHERE hosts.id = migrations.source_host_id) AS source_host_name, \
    (SELECT name FROM hosts WHERE hosts.id = migrations.target_host_id) AS target_host_name";

pub async fn insert_migration(tx: &mut Tx, m: &Migration) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO migrations ({MIGRATION_COLS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, $6, $7, NULL)"
    ))
    .bind(m.id.to_string())
    .bind(m.instance_id.to_string())
    .bind(m.source_host_id.to_string())
    .bind(m.target_host_id.to_string())
    .bind(m.state.as_str())
    .bind(&m.created_by)
    .bind(m.created_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Ends a running migration; false if it was not running any more.
pub async fn finish_migration(
    tx: &mut Tx,
    id: MigrationId,
    state: MigrationState,
    downtime_ms: Option<u64>,
    total_ms: Option<u64>,
    error: Option<&str>,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE migrations SET state = $1, downtime_ms = $2, total_ms = $3, error = $4, finished_at = $5 \
         WHERE id = $6 AND state = 'running'",
    )
    .bind(state.as_str())
    .bind(downtime_ms.map(|v| v as i64))
    .bind(total_ms.map(|v| v as i64))
    .bind(error)
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

pub async fn migrations_of(store: &Store, instance: InstanceId) -> Result<Vec<Migration>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {MIGRATION_VIEW} FROM migrations WHERE instance_id = "
    ));
    sql.bind_text(instance.to_string());
    sql.push(" ORDER BY created_at DESC LIMIT 100");
    sql.fetch_all(store).await
}

pub async fn running_migrations(store: &Store) -> Result<Vec<Migration>, Error> {
    Sql::new(&format!(
        "SELECT {MIGRATION_VIEW} FROM migrations WHERE state = 'running'"
    ))
    .fetch_all(store)
    .await
}

/// Moves a migrated instance to its new host (and its capacity with it): conditional on
/// the instance still being on `from` and migrating.
pub async fn move_instance(
    tx: &mut Tx,
    instance: InstanceId,
    from: HostId,
    to: HostId,
    zone: ZoneId,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE instances SET host_id = $1, zone_id = $5, updated_at = $2, generation = generation + 1 \
         WHERE id = $3 AND host_id = $4 AND state = 'migrating'",
    )
    .bind(to.to_string())
    .bind(Timestamp::now().0)
    .bind(instance.to_string())
    .bind(from.to_string())
    .bind(zone.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}
