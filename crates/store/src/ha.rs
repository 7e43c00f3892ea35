//! High availability (the HA columns of `hosts`, `ha_recoveries`, `host_groups`),
//! maintenance evacuations and consolidation plans. Every state change is one conditional
//! update on the state that was seen, so two replicas (or a restart halfway) never
//! declare a host failed twice or recover an instance twice.

use crate::db::Tx;
use crate::error::db_error;
use crate::instances::{InstanceRow, COLS};
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::Row;
use zy_model::compute::{HaPolicy, HostState};
use zy_model::ha::*;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::Error;

// --- hosts ------------------------------------------------------------------------------

/// A host that may have failed: heartbeats missed (real hosts) or set down.
#[derive(Debug, Clone)]
pub struct Suspect {
    pub host_id: HostId,
    pub provider_id: ProviderId,
    pub state: HostState,
    /// The agent's last heartbeat (any replica); `None` for hosts without an agent.
    pub last_seen: Option<Timestamp>,
}

impl Decode for Suspect {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Suspect {
            host_id: id(r, "id")?,
            provider_id: id(r, "provider_id")?,
            state: HostState::parse(&text(r, "state")?).unwrap_or(HostState::Down),
            last_seen: opt_ts(r, "last_seen")?,
        })
    }
}

/// Hosts whose HA state is `ok` and that look failed: an agent unheard of since
/// `cutoff`, or a host set `down`. Only hosts carrying instances matter.
pub async fn suspects(store: &Store, cutoff: Timestamp) -> Result<Vec<Suspect>, Error> {
    let mut sql = Sql::new(
        "SELECT h.id, h.provider_id, h.state, a.last_seen FROM hosts h LEFT JOIN agents a ON a.host_id = h.id \
         WHERE h.ha_state = 'ok' AND (h.state = 'down' OR (a.last_seen IS NOT NULL AND a.last_seen < ",
    );
    sql.bind(crate::sql::Arg::I64(cutoff.0)).push(
        ")) AND EXISTS (SELECT 1 FROM instances i WHERE i.host_id = h.id AND i.state NOT IN ('deleted', 'lost'))",
    );
    sql.fetch_all(store).await
}

/// How many hosts have an agent (real hosts), to tell a host failure from the control
/// plane's own isolation.
pub async fn agent_hosts(store: &Store) -> Result<i64, Error> {
    let r = sqlx::query("SELECT COUNT(*) AS n FROM agents a JOIN hosts h ON h.id = a.host_id WHERE h.state <> 'down'")
        .fetch_one(store.pool())
        .await
        .map_err(db_error)?;
    r.try_get::<i64, _>("n").map_err(db_error)
}

/// `ok → fencing`: the failure is declared; replicas stop renewing the host's lease.
pub async fn begin_fencing(
    tx: &mut Tx,
    host: HostId,
    last_seen: Option<Timestamp>,
    now: Timestamp,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE hosts SET ha_state = 'fencing', ha_since = $1, ha_detected_at = $1, ha_last_seen = $2, generation = generation + 1 \
         WHERE id = $3 AND ha_state = 'ok'",
    )
    .bind(now.0)
    .bind(last_seen.map(|t| t.0))
    .bind(host.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// A host being fenced: since when, and its last heartbeat before.
#[derive(Debug, Clone)]
pub struct Fencing {
    pub host_id: HostId,
    pub provider_id: ProviderId,
    pub since: Timestamp,
    pub last_seen: Option<Timestamp>,
}

impl Decode for Fencing {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Fencing {
            host_id: id(r, "id")?,
            provider_id: id(r, "provider_id")?,
            since: opt_ts(r, "ha_since")?.unwrap_or(Timestamp(0)),
            last_seen: opt_ts(r, "ha_last_seen")?,
        })
    }
}

pub async fn fencing(store: &Store) -> Result<Vec<Fencing>, Error> {
    Sql::new("SELECT id, provider_id, ha_since, ha_last_seen FROM hosts WHERE ha_state = 'fencing'")
        .fetch_all(store)
        .await
}

/// `fencing → failed`: the host's lease has surely run out. The host goes `down`, so
/// nothing is placed on it.
pub async fn fail_host(tx: &mut Tx, host: HostId, now: Timestamp) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE hosts SET ha_state = 'failed', state = 'down', ha_since = $1, generation = generation + 1 \
         WHERE id = $2 AND ha_state = 'fencing'",
    )
    .bind(now.0)
    .bind(host.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// A failed host heard from again, with its last report (the VMs it still has).
#[derive(Debug, Clone)]
pub struct Returned {
    pub host_id: HostId,
    pub provider_id: ProviderId,
    pub report: String,
}

impl Decode for Returned {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Returned {
            host_id: id(r, "id")?,
            provider_id: id(r, "provider_id")?,
            report: text(r, "report")?,
        })
    }
}

pub async fn returned(store: &Store) -> Result<Vec<Returned>, Error> {
    Sql::new(
        "SELECT h.id, h.provider_id, a.report FROM hosts h JOIN agents a ON a.host_id = h.id \
         WHERE h.ha_state = 'failed' AND a.last_seen > h.ha_since",
    )
    .fetch_all(store)
    .await
}

/// `failed → ok` once a returned host holds no stale guest (it stays `down` until the
/// platform admin enables it again).
pub async fn host_ok(tx: &mut Tx, host: HostId) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE hosts SET ha_state = 'ok', ha_since = NULL, generation = generation + 1 WHERE id = $1 AND ha_state = 'failed'",
    )
    .bind(host.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Clears a host's HA state (a simulated machine restarted empty).
pub async fn clear_ha(tx: &mut Tx, host: HostId) -> Result<(), Error> {
    sqlx::query("UPDATE hosts SET ha_state = 'ok', ha_since = NULL WHERE id = $1")
        .bind(host.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Whether replicas may renew this host's lease (its HA state is `ok`).
pub async fn lease_allowed(store: &Store) -> Result<std::collections::HashSet<HostId>, Error> {
    let rows = sqlx::query("SELECT id FROM hosts WHERE ha_state = 'ok'")
        .fetch_all(store.pool())
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("id").map_err(db_error)?.parse())
        .collect()
}

// --- instances to recover ---------------------------------------------------------------

/// An instance on a failed host waiting for HA, with what decides its fate.
#[derive(Debug, Clone)]
pub struct Stranded {
    pub row: InstanceRow,
    /// The policy of the failed host's group, if it is in one.
    pub group_policy: Option<HaPolicy>,
    /// Volumes attached (they live on the failed host's disk).
    pub volumes: i64,
    /// The failure's timings from the host.
    pub detected_at: Timestamp,
    pub fenced_at: Timestamp,
    pub last_seen: Option<Timestamp>,
}

impl Decode for Stranded {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Stranded {
            row: InstanceRow::decode(r)?,
            group_policy: opt_text(r, "group_policy")?.and_then(|p| HaPolicy::parse(&p)),
            volumes: int(r, "attached_volumes")?,
            detected_at: opt_ts(r, "h_detected")?.unwrap_or(Timestamp(0)),
            fenced_at: opt_ts(r, "h_fenced")?.unwrap_or(Timestamp(0)),
            last_seen: opt_ts(r, "h_last_seen")?,
        })
    }
}

/// Instances still on failed hosts, not yet handled and not busy with a saga, highest
/// priority first.
pub async fn stranded(store: &Store, limit: i64) -> Result<Vec<Stranded>, Error> {
    Sql::new(&format!(
        "SELECT {COLS}, \
         (SELECT g.ha_policy FROM host_groups g JOIN hosts gh ON gh.group_id = g.id WHERE gh.id = instances.host_id) AS group_policy, \
         (SELECT COUNT(*) FROM volumes v WHERE v.instance_id = instances.id AND v.state <> 'deleted') AS attached_volumes, \
         (SELECT hh.ha_since FROM hosts hh WHERE hh.id = instances.host_id) AS h_fenced, \
         (SELECT hh.ha_last_seen FROM hosts hh WHERE hh.id = instances.host_id) AS h_last_seen, \
         (SELECT hh.ha_detected_at FROM hosts hh WHERE hh.id = instances.host_id) AS h_detected \
         FROM instances WHERE host_id IN (SELECT id FROM hosts WHERE ha_state = 'failed') \
         AND state IN ('running', 'stopped', 'error', 'recovering') \
         AND NOT EXISTS (SELECT 1 FROM sagas s WHERE s.target_id = instances.id AND s.state IN ('running', 'undoing')) \
         ORDER BY ha_priority DESC, created_at, id LIMIT {limit}"
    ))
    .fetch_all(store)
    .await
}

/// Moves an instance off its failed host onto `to` and into `recovering`, if it is still
/// where and as it was seen.
pub async fn move_to(
    tx: &mut Tx,
    instance: InstanceId,
    seen: zy_model::compute::InstanceState,
    failed: HostId,
    to: HostId,
    zone: ZoneId,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE instances SET host_id = $1, zone_id = $2, updated_at = $3 WHERE id = $4 AND host_id = $5 AND state = $6",
    )
    .bind(to.to_string())
    .bind(zone.to_string())
    .bind(Timestamp::now().0)
    .bind(instance.to_string())
    .bind(failed.to_string())
    .bind(seen.as_str())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    if n != 1 {
        return Ok(false);
    }
    if seen != zy_model::compute::InstanceState::Recovering {
        return crate::instances::transition(
            tx,
            instance,
            seen,
            zy_model::compute::InstanceState::Recovering,
            &format!("host {failed} failed; restarting on host {to}"),
        )
        .await;
    }
    crate::instances::event(
        tx,
        instance,
        "recovering",
        "recovering",
        &format!("host {failed} failed; restarting on host {to}"),
    )
    .await?;
    Ok(true)
}

/// An instance left stopped by its HA policy: its wish becomes `stopped` too.
pub async fn leave_stopped(tx: &mut Tx, instance: InstanceId) -> Result<(), Error> {
    sqlx::query("UPDATE instances SET desired = 'stopped' WHERE id = $1 AND desired = 'running'")
        .bind(instance.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Records one instance's recovery as it begins (or ends at once: lost, failed).
pub async fn insert_recovery(tx: &mut Tx, r: &HaRecovery) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO ha_recoveries (id, host_id, instance_id, last_seen_at, detected_at, fenced_at, restarted_at, target_host_id, \
         policy, priority, outcome, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(r.id.to_string())
    .bind(r.host_id.to_string())
    .bind(r.instance_id.to_string())
    .bind(r.last_seen_at.map(|t| t.0))
    .bind(r.detected_at.0)
    .bind(r.fenced_at.0)
    .bind(r.restarted_at.map(|t| t.0))
    .bind(r.target_host_id.map(|h| h.to_string()))
    .bind(r.policy.as_str())
    .bind(r.priority as i64)
    .bind(r.outcome.as_str())
    .bind(r.reason.clone())
    .bind(Timestamp::now().0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Ends a pending recovery (conditional: once).
pub async fn finish_recovery(
    tx: &mut Tx,
    id: HaRecoveryId,
    outcome: RecoveryOutcome,
    at: Option<Timestamp>,
    reason: Option<&str>,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE ha_recoveries SET outcome = $1, restarted_at = $2, reason = COALESCE($3, reason) WHERE id = $4 AND outcome = 'pending'",
    )
    .bind(outcome.as_str())
    .bind(at.map(|t| t.0))
    .bind(reason)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Takes a recovery's end back (its saga is being undone).
pub async fn reopen_recovery(tx: &mut Tx, id: HaRecoveryId) -> Result<(), Error> {
    sqlx::query(
        "UPDATE ha_recoveries SET outcome = 'pending', restarted_at = NULL WHERE id = $1 AND outcome IN ('restarted', 'left_stopped')",
    )
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

impl Decode for HaRecovery {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let last_seen_at = opt_ts(r, "last_seen_at")?;
        let detected_at = ts(r, "detected_at")?;
        let restarted_at = opt_ts(r, "restarted_at")?;
        Ok(HaRecovery {
            id: id(r, "id")?,
            host_id: id(r, "host_id")?,
            host_name: opt_text(r, "host_name")?.unwrap_or_default(),
            instance_id: id(r, "instance_id")?,
            instance_name: opt_text(r, "instance_name")?.unwrap_or_default(),
            last_seen_at,
            detected_at,
            fenced_at: ts(r, "fenced_at")?,
            restarted_at,
            target_host_id: opt_id(r, "target_host_id")?,
            policy: HaPolicy::parse(&text(r, "policy")?).unwrap_or(HaPolicy::Restart),
            priority: int(r, "priority")? as i32,
            outcome: RecoveryOutcome::parse(&text(r, "outcome")?)
                .unwrap_or(RecoveryOutcome::Failed),
            reason: opt_text(r, "reason")?,
            recovery_secs: restarted_at
                .map(|t| (t.0 - last_seen_at.unwrap_or(detected_at).0) as f64 / 1e6),
        })
    }
}

const RECOVERY_COLS: &str = "r.id, r.host_id, r.instance_id, r.last_seen_at, r.detected_at, r.fenced_at, r.restarted_at, r.target_host_id, \
    r.policy, r.priority, r.outcome, r.reason, (SELECT name FROM hosts WHERE hosts.id = r.host_id) AS host_name, \
    (SELECT name FROM instances WHERE instances.id = r.instance_id) AS instance_name";

/// Recoveries, newest first; optionally of one host or one instance.
pub async fn recoveries(
    store: &Store,
    host: Option<HostId>,
    instance: Option<InstanceId>,
    limit: i64,
) -> Result<Vec<HaRecovery>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {RECOVERY_COLS} FROM ha_recoveries r WHERE 1 = 1"
    ));
    if let Some(h) = host {
        sql.push(" AND r.host_id = ").bind_text(h.to_string());
    }
    if let Some(i) = instance {
        sql.push(" AND r.instance_id = ").bind_text(i.to_string());
    }
    sql.push(&format!(
        " ORDER BY r.created_at DESC, r.id DESC LIMIT {limit}"
    ));
    sql.fetch_all(store).await
}

// --- per-instance policy, host groups ---------------------------------------------------

pub async fn set_instance_policy(
    tx: &mut Tx,
    instance: InstanceId,
    policy: HaPolicy,
    priority: i32,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE instances SET ha_policy = $1, ha_priority = $2, updated_at = $3, generation = generation + 1 \
         WHERE id = $4 AND state <> 'deleted'",
    )
    .bind(policy.as_str())
    .bind(priority as i64)
    .bind(Timestamp::now().0)
    .bind(instance.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

struct GroupRow {
    id: HostGroupId,
    name: String,
    policy: HaPolicy,
    created_at: Timestamp,
    generation: i64,
}

impl Decode for GroupRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(GroupRow {
            id: id(r, "id")?,
            name: text(r, "name")?,
            policy: HaPolicy::parse(&text(r, "ha_policy")?).unwrap_or(HaPolicy::Restart),
            created_at: ts(r, "created_at")?,
            generation: int(r, "generation")?,
        })
    }
}

struct Member {
    id: HostId,
    group: HostGroupId,
}

impl Decode for Member {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Member {
            id: id(r, "id")?,
            group: id(r, "group_id")?,
        })
    }
}

pub async fn host_groups(store: &Store) -> Result<Vec<HostGroup>, Error> {
    let groups: Vec<GroupRow> = Sql::new(
        "SELECT id, name, ha_policy, created_at, generation FROM host_groups ORDER BY name, id",
    )
    .fetch_all(store)
    .await?;
    let members: Vec<Member> =
        Sql::new("SELECT id, group_id FROM hosts WHERE group_id IS NOT NULL ORDER BY name, id")
            .fetch_all(store)
            .await?;
    Ok(groups
        .into_iter()
        .map(|g| HostGroup {
            hosts: members
                .iter()
                .filter(|m| m.group == g.id)
                .map(|m| m.id)
                .collect(),
            id: g.id,
            name: g.name,
            ha_policy: g.policy,
            created_at: g.created_at,
            generation: g.generation,
        })
        .collect())
}

/// Creates or changes a host group and sets its members (hosts leave any other group).
pub async fn put_host_group(
    tx: &mut Tx,
    id: HostGroupId,
    name: &str,
    policy: HaPolicy,
    hosts: &[HostId],
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO host_groups (id, name, ha_policy, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET ha_policy = $3, generation = host_groups.generation + 1",
    )
    .bind(id.to_string())
    .bind(name)
    .bind(policy.as_str())
    .bind(Timestamp::now().0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let gid: String = sqlx::query("SELECT id FROM host_groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?
        .try_get("id")
        .map_err(db_error)?;
    sqlx::query("UPDATE hosts SET group_id = NULL WHERE group_id = $1")
        .bind(&gid)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for h in hosts {
        sqlx::query("UPDATE hosts SET group_id = $1 WHERE id = $2")
            .bind(&gid)
            .bind(h.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

pub async fn delete_host_group(tx: &mut Tx, name: &str) -> Result<bool, Error> {
    sqlx::query(
        "UPDATE hosts SET group_id = NULL WHERE group_id IN (SELECT id FROM host_groups WHERE name = $1)",
    )
    .bind(name)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let n = sqlx::query("DELETE FROM host_groups WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

// --- evacuations ------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct EvacuationRow {
    pub id: EvacuationId,
    pub host_id: HostId,
    pub state: EvacuationState,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub failures: Vec<EvacuationFailure>,
}

impl Decode for EvacuationRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let failures: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&text(r, "failures")?).unwrap_or_default();
        Ok(EvacuationRow {
            id: id(r, "id")?,
            host_id: id(r, "host_id")?,
            state: EvacuationState::parse(&text(r, "state")?)
                .unwrap_or(EvacuationState::Incomplete),
            started_at: ts(r, "started_at")?,
            finished_at: opt_ts(r, "finished_at")?,
            failures: failures
                .into_iter()
                .filter_map(|(k, v)| {
                    Some(EvacuationFailure {
                        instance_id: k.parse().ok()?,
                        reason: v,
                    })
                })
                .collect(),
        })
    }
}

const EVAC_COLS: &str = "id, host_id, state, started_at, finished_at, failures";

/// Starts an evacuation unless one is running for the host (then returns that one's id).
pub async fn start_evacuation(
    tx: &mut Tx,
    host: HostId,
    by: Option<&str>,
) -> Result<EvacuationId, Error> {
    if let Some(r) =
        sqlx::query("SELECT id FROM host_evacuations WHERE host_id = $1 AND state = 'running'")
            .bind(host.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?
    {
        return r.try_get::<String, _>("id").map_err(db_error)?.parse();
    }
    let id = EvacuationId::new();
    sqlx::query(
        "INSERT INTO host_evacuations (id, host_id, state, started_at, started_by) VALUES ($1, $2, 'running', $3, $4)",
    )
    .bind(id.to_string())
    .bind(host.to_string())
    .bind(Timestamp::now().0)
    .bind(by)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(id)
}

pub async fn running_evacuation_of(
    tx: &mut Tx,
    host: HostId,
) -> Result<Option<EvacuationId>, Error> {
    match sqlx::query("SELECT id FROM host_evacuations WHERE host_id = $1 AND state = 'running'")
        .bind(host.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
    {
        Some(r) => Ok(Some(
            r.try_get::<String, _>("id").map_err(db_error)?.parse()?,
        )),
        None => Ok(None),
    }
}

pub async fn running_evacuations(store: &Store) -> Result<Vec<EvacuationRow>, Error> {
    Sql::new(&format!(
        "SELECT {EVAC_COLS} FROM host_evacuations WHERE state = 'running' ORDER BY started_at"
    ))
    .fetch_all(store)
    .await
}

pub async fn last_evacuation(store: &Store, host: HostId) -> Result<Option<EvacuationRow>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {EVAC_COLS} FROM host_evacuations WHERE host_id = "
    ));
    sql.bind_text(host.to_string())
        .push(" ORDER BY started_at DESC, id DESC LIMIT 1");
    Ok(sql.fetch_all(store).await?.into_iter().next())
}

/// Records why an instance could not leave (conditional on the evacuation running).
pub async fn evacuation_failure(
    tx: &mut Tx,
    evac: EvacuationId,
    failures: &[EvacuationFailure],
) -> Result<(), Error> {
    let map: std::collections::BTreeMap<String, String> = failures
        .iter()
        .map(|f| (f.instance_id.to_string(), f.reason.clone()))
        .collect();
    sqlx::query("UPDATE host_evacuations SET failures = $1 WHERE id = $2 AND state = 'running'")
        .bind(serde_json::to_string(&map).unwrap_or_else(|_| "{}".into()))
        .bind(evac.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn end_evacuation(
    tx: &mut Tx,
    evac: EvacuationId,
    state: EvacuationState,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE host_evacuations SET state = $1, finished_at = $2 WHERE id = $3 AND state = 'running'",
    )
    .bind(state.as_str())
    .bind(Timestamp::now().0)
    .bind(evac.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Counts for an evacuation's progress: instances left on the host, migrations off it
/// since `since` that completed, and those running.
pub async fn evacuation_counts(
    store: &Store,
    host: HostId,
    since: Timestamp,
) -> Result<(u32, u32, u32), Error> {
    let r = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM instances WHERE host_id = $1 AND state NOT IN ('deleted')) AS remaining, \
         (SELECT COUNT(*) FROM migrations WHERE source_host_id = $1 AND created_at >= $2 AND state = 'completed') AS migrated, \
         (SELECT COUNT(*) FROM migrations WHERE source_host_id = $1 AND created_at >= $2 AND state = 'running') AS in_progress",
    )
    .bind(host.to_string())
    .bind(since.0)
    .fetch_one(store.pool())
    .await
    .map_err(db_error)?;
    let g = |c: &str| r.try_get::<i64, _>(c).map(|v| v as u32).map_err(db_error);
    Ok((g("remaining")?, g("migrated")?, g("in_progress")?))
}

/// The last migration of an instance off a host since an instant (its outcome).
pub async fn last_migration_off(
    store: &Store,
    instance: InstanceId,
    host: HostId,
    since: Timestamp,
) -> Result<Option<(String, Option<String>)>, Error> {
    let r = sqlx::query(
        "SELECT state, error FROM migrations WHERE instance_id = $1 AND source_host_id = $2 AND created_at >= $3 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(instance.to_string())
    .bind(host.to_string())
    .bind(since.0)
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?;
    match r {
        None => Ok(None),
        Some(r) => Ok(Some((
            r.try_get::<String, _>("state").map_err(db_error)?,
            r.try_get::<Option<String>, _>("error").map_err(db_error)?,
        ))),
    }
}

/// An instance on a host, with whether a saga works on it and how many volumes it has.
#[derive(Debug, Clone)]
pub struct Resident {
    pub row: InstanceRow,
    pub busy: bool,
    pub volumes: i64,
}

impl Decode for Resident {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Resident {
            row: InstanceRow::decode(r)?,
            busy: int(r, "busy")? != 0,
            volumes: int(r, "attached_volumes")?,
        })
    }
}

/// The instances on a host (not deleted), oldest first.
pub async fn residents(store: &Store, host: HostId) -> Result<Vec<Resident>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLS}, \
         (SELECT COUNT(*) FROM sagas s WHERE s.target_id = instances.id AND s.state IN ('running', 'undoing')) AS busy, \
         (SELECT COUNT(*) FROM volumes v WHERE v.instance_id = instances.id AND v.state <> 'deleted') AS attached_volumes \
         FROM instances WHERE state <> 'deleted' AND host_id = "
    ));
    sql.bind_text(host.to_string())
        .push(" ORDER BY created_at, id");
    sql.fetch_all(store).await
}

// --- consolidation plans ----------------------------------------------------------------

/// A placed instance as the consolidation planner sees it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub id: InstanceId,
    pub name: String,
    pub host_id: HostId,
    pub state: zy_model::compute::InstanceState,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    pub group: Option<(ServerGroupId, String)>,
    pub volumes: i64,
    pub busy: bool,
}

impl Decode for Placed {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let group = match (opt_id(r, "group_id")?, opt_text(r, "group_policy")?) {
            (Some(g), Some(p)) => Some((g, p)),
            _ => None,
        };
        Ok(Placed {
            id: id(r, "id")?,
            name: text(r, "name")?,
            host_id: id(r, "host_id")?,
            state: zy_model::compute::InstanceState::parse(&text(r, "state")?)
                .unwrap_or(zy_model::compute::InstanceState::Error),
            vcpus: int(r, "vcpus")? as u32,
            memory_mib: int(r, "memory_mib")? as u64,
            disk_gib: int(r, "disk_gib")? as u64,
            gpus: int(r, "gpus")? as u32,
            group,
            volumes: int(r, "attached_volumes")?,
            busy: int(r, "busy")? != 0,
        })
    }
}

/// Every instance holding capacity on a host.
pub async fn placed(store: &Store) -> Result<Vec<Placed>, Error> {
    Sql::new(
        "SELECT i.id, i.name, i.host_id, i.state, i.vcpus, i.memory_mib, i.disk_gib, i.gpus, i.group_id, \
         (SELECT g.policy FROM server_groups g WHERE g.id = i.group_id) AS group_policy, \
         (SELECT COUNT(*) FROM volumes v WHERE v.instance_id = i.id AND v.state <> 'deleted') AS attached_volumes, \
         (SELECT COUNT(*) FROM sagas s WHERE s.target_id = i.id AND s.state IN ('running', 'undoing')) AS busy \
         FROM instances i WHERE i.host_id IS NOT NULL AND i.capacity_held = 1 AND i.state <> 'deleted' ORDER BY i.id",
    )
    .fetch_all(store)
    .await
}

/// The stored parts of a plan (the `plan` column holds moves, freed hosts and figures).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlanBody {
    pub moves: Vec<PlanMove>,
    pub freed_hosts: Vec<HostId>,
    pub before: PlanUtilisation,
    pub after: PlanUtilisation,
}

#[derive(Debug, Clone)]
pub struct PlanRow {
    pub plan: ConsolidationPlan,
    pub current_migration_id: Option<MigrationId>,
}

impl Decode for PlanRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let body: PlanBody = serde_json::from_str(&text(r, "plan")?)
            .map_err(|e| Error::internal(format!("plan: {e}")))?;
        let skipped: Vec<EvacuationFailure> =
            serde_json::from_str(&text(r, "skipped")?).unwrap_or_default();
        Ok(PlanRow {
            current_migration_id: opt_id(r, "current_migration_id")?,
            plan: ConsolidationPlan {
                id: id(r, "id")?,
                state: PlanState::parse(&text(r, "state")?).unwrap_or(PlanState::Failed),
                moves: body.moves,
                freed_hosts: body.freed_hosts,
                before: body.before,
                after: body.after,
                next_move: int(r, "next_move")? as u32,
                created_at: ts(r, "created_at")?,
                approved_at: opt_ts(r, "approved_at")?,
                finished_at: opt_ts(r, "finished_at")?,
                error: opt_text(r, "error")?,
                skipped,
                generation: int(r, "generation")?,
            },
        })
    }
}

const PLAN_COLS: &str = "id, state, plan, moves, next_move, current_migration_id, created_at, approved_at, finished_at, error, skipped, generation";

pub async fn insert_plan(
    tx: &mut Tx,
    id: ConsolidationPlanId,
    body: &PlanBody,
    by: &str,
) -> Result<(), Error> {
    // A new proposal replaces the proposals nobody approved.
    sqlx::query("UPDATE consolidation_plans SET state = 'superseded', generation = generation + 1 WHERE state = 'proposed'")
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    sqlx::query(
        "INSERT INTO consolidation_plans (id, state, plan, moves, created_at, created_by) VALUES ($1, 'proposed', $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(serde_json::to_string(body).map_err(|e| Error::internal(e.to_string()))?)
    .bind(body.moves.len() as i64)
    .bind(Timestamp::now().0)
    .bind(by)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn plan(store: &Store, id: ConsolidationPlanId) -> Result<Option<PlanRow>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {PLAN_COLS} FROM consolidation_plans WHERE id = "
    ));
    sql.bind_text(id.to_string());
    Ok(sql.fetch_all(store).await?.into_iter().next())
}

pub async fn plans(store: &Store, limit: i64) -> Result<Vec<PlanRow>, Error> {
    Sql::new(&format!(
        "SELECT {PLAN_COLS} FROM consolidation_plans ORDER BY created_at DESC, id DESC LIMIT {limit}"
    ))
    .fetch_all(store)
    .await
}

pub async fn executing_plan(store: &Store) -> Result<Option<PlanRow>, Error> {
    Ok(Sql::new(&format!(
        "SELECT {PLAN_COLS} FROM consolidation_plans WHERE state = 'executing' LIMIT 1"
    ))
    .fetch_all(store)
    .await?
    .into_iter()
    .next())
}

/// Moves a plan from one state to another, conditional on its generation.
pub async fn plan_transition(
    tx: &mut Tx,
    id: ConsolidationPlanId,
    from: PlanState,
    to: PlanState,
    generation: Option<i64>,
    by: Option<&str>,
    error: Option<&str>,
) -> Result<bool, Error> {
    let now = Timestamp::now().0;
    let finished = matches!(to, PlanState::Done | PlanState::Stopped | PlanState::Failed);
    let n = sqlx::query(
        "UPDATE consolidation_plans SET state = $1, generation = generation + 1, \
         approved_at = CASE WHEN $1 = 'executing' THEN $2 ELSE approved_at END, \
         approved_by = CASE WHEN $1 = 'executing' THEN $3 ELSE approved_by END, \
         finished_at = CASE WHEN $4 = 1 THEN $2 ELSE finished_at END, error = COALESCE($5, error) \
         WHERE id = $6 AND state = $7 AND ($8 < 0 OR generation = $8)",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(by)
    .bind(finished as i64)
    .bind(error)
    .bind(id.to_string())
    .bind(from.as_str())
    .bind(generation.unwrap_or(-1))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Records a move as started (its migration) or finished/skipped (next index).
pub async fn plan_progress(
    tx: &mut Tx,
    id: ConsolidationPlanId,
    expect_next: u32,
    next_move: u32,
    current: Option<MigrationId>,
    skipped: Option<&[EvacuationFailure]>,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE consolidation_plans SET next_move = $1, current_migration_id = $2, skipped = COALESCE($3, skipped), generation = generation + 1 \
         WHERE id = $4 AND state = 'executing' AND next_move = $5",
    )
    .bind(next_move as i64)
    .bind(current.map(|m| m.to_string()))
    .bind(skipped.map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into())))
    .bind(id.to_string())
    .bind(expect_next as i64)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// A migration's state and error.
pub async fn migration_state(
    store: &Store,
    id: MigrationId,
) -> Result<Option<(String, Option<String>)>, Error> {
    let r = sqlx::query("SELECT state, error FROM migrations WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(store.pool())
        .await
        .map_err(db_error)?;
    match r {
        None => Ok(None),
        Some(r) => Ok(Some((
            r.try_get::<String, _>("state").map_err(db_error)?,
            r.try_get::<Option<String>, _>("error").map_err(db_error)?,
        ))),
    }
}
