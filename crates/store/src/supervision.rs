//! Supervision (监管): the aggregate reads the indicator engine needs (capacity and
//! allocation per provider, holdings per department, security event counts), idle
//! findings, indicator snapshots and the monthly operations reports. Every aggregate is
//! one grouped statement, so computing every provider's or department's figures costs a
//! few statements, not one per entity.

use crate::error::db_error;
use crate::{Store, Tx};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;
use zy_model::supervision::*;
use zy_model::time::Timestamp;
use zy_model::Error;

fn i(r: &AnyRow, k: usize) -> Result<i64, Error> {
    r.try_get::<i64, _>(k).map_err(db_error)
}
fn s(r: &AnyRow, k: usize) -> Result<String, Error> {
    r.try_get::<String, _>(k).map_err(db_error)
}

/// Hosts of one provider, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTotals {
    pub hosts: i64,
    /// Enabled and judged healthy by HA.
    pub hosts_up: i64,
    pub vcpus: i64,
    /// vCPUs with the overcommit ratio applied (what may be allocated).
    pub vcpus_allocatable: i64,
    pub memory_mib: i64,
    pub used_vcpus: i64,
    pub used_memory_mib: i64,
}

/// Per provider id (`only`: of that provider).
pub async fn host_totals(
    store: &Store,
    only: Option<&str>,
) -> Result<HashMap<String, HostTotals>, Error> {
    let one = if only.is_some() {
        "WHERE provider_id = $1"
    } else {
        ""
    };
    let text = format!(
        "SELECT provider_id, COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN state = 'enabled' AND ha_state = 'ok' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(vcpus), 0) AS BIGINT), \
         CAST(COALESCE(SUM(vcpus * cpu_ratio_permille / 1000), 0) AS BIGINT), \
         CAST(COALESCE(SUM(memory_mib), 0) AS BIGINT), \
         CAST(COALESCE(SUM(used_vcpus), 0) AS BIGINT), \
         CAST(COALESCE(SUM(used_memory_mib), 0) AS BIGINT) \
         FROM hosts {one} GROUP BY provider_id"
    );
    let mut q = sqlx::query(&text);
    if let Some(o) = only {
        q = q.bind(o);
    }
    let rows = q.fetch_all(store.pool()).await.map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                s(r, 0)?,
                HostTotals {
                    hosts: i(r, 1)?,
                    hosts_up: i(r, 2)?,
                    vcpus: i(r, 3)?,
                    vcpus_allocatable: i(r, 4)?,
                    memory_mib: i(r, 5)?,
                    used_vcpus: i(r, 6)?,
                    used_memory_mib: i(r, 7)?,
                },
            ))
        })
        .collect()
}

/// Instances (not deleted, not in the recycle bin) summed per provider or department.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceTotals {
    pub instances: i64,
    pub running: i64,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
}

/// `by` is `provider_id` or `department_id`; `only` limits it to one of them.
pub async fn instance_totals(
    store: &Store,
    by: &str,
    only: Option<&str>,
) -> Result<HashMap<String, InstanceTotals>, Error> {
    let col = match by {
        "provider_id" => "provider_id",
        _ => "department_id",
    };
    let one = if only.is_some() {
        format!("AND {col} = $1")
    } else {
        String::new()
    };
    let text = format!(
        "SELECT {col}, COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(vcpus), 0) AS BIGINT), CAST(COALESCE(SUM(memory_mib), 0) AS BIGINT), \
         CAST(COALESCE(SUM(disk_gib), 0) AS BIGINT) \
         FROM instances WHERE state NOT IN ('deleted', 'deleting') AND recycled_at IS NULL \
         AND {col} IS NOT NULL {one} GROUP BY {col}"
    );
    let mut q = sqlx::query(&text);
    if let Some(o) = only {
        q = q.bind(o);
    }
    let rows = q.fetch_all(store.pool()).await.map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                s(r, 0)?,
                InstanceTotals {
                    instances: i(r, 1)?,
                    running: i(r, 2)?,
                    vcpus: i(r, 3)?,
                    memory_mib: i(r, 4)?,
                    disk_gib: i(r, 5)?,
                },
            ))
        })
        .collect()
}

/// Volumes (not in the recycle bin) per department: (count, GiB).
pub async fn volume_totals(store: &Store) -> Result<HashMap<String, (i64, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT department_id, COUNT(*), CAST(COALESCE(SUM(size_gib), 0) AS BIGINT) \
         FROM volumes WHERE recycled_at IS NULL GROUP BY department_id",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| Ok((s(r, 0)?, (i(r, 1)?, i(r, 2)?))))
        .collect()
}

/// A department's quota: (max, used) of vCPUs and memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaUse {
    pub max_vcpus: i64,
    pub used_vcpus: i64,
    pub max_memory_mib: i64,
    pub used_memory_mib: i64,
}

pub async fn department_quotas(store: &Store) -> Result<HashMap<String, QuotaUse>, Error> {
    let rows = sqlx::query(
        "SELECT scope_id, max_vcpus, used_vcpus, max_memory_mib, used_memory_mib FROM quotas \
         WHERE scope_type = 'department'",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                s(r, 0)?,
                QuotaUse {
                    max_vcpus: i(r, 1)?,
                    used_vcpus: i(r, 2)?,
                    max_memory_mib: i(r, 3)?,
                    used_memory_mib: i(r, 4)?,
                },
            ))
        })
        .collect()
}

/// Security events of days `[from_day, to_day]` per provider or department: (events,
/// blocked).
pub async fn security_totals(
    store: &Store,
    by: &str,
    from_day: &str,
    to_day: &str,
) -> Result<HashMap<String, (i64, i64)>, Error> {
    let col = match by {
        "provider_id" => "provider_id",
        _ => "department_id",
    };
    let rows = sqlx::query(&format!(
        "SELECT {col}, CAST(COALESCE(SUM(events), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN action = 'blocked' THEN events ELSE 0 END), 0) AS BIGINT) \
         FROM security_event_counts WHERE day >= $1 AND day <= $2 GROUP BY {col}"
    ))
    .bind(from_day)
    .bind(to_day)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| Ok((s(r, 0)?, (i(r, 1)?, i(r, 2)?))))
        .collect()
}

/// Open idle findings per department: (findings, vCPUs, monthly fen).
pub async fn idle_totals(store: &Store) -> Result<HashMap<String, (i64, i64, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT department_id, COUNT(*), CAST(COALESCE(SUM(vcpus), 0) AS BIGINT), \
         CAST(COALESCE(SUM(monthly_fen), 0) AS BIGINT) FROM idle_findings \
         WHERE state = 'open' GROUP BY department_id",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| Ok((s(r, 0)?, (i(r, 1)?, i(r, 2)?, i(r, 3)?))))
        .collect()
}

/// Requests delivered in `[from, to)` per department (changes made).
pub async fn delivered_requests(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<HashMap<String, i64>, Error> {
    let rows = sqlx::query(
        "SELECT r.department_id, COUNT(*) FROM resource_requests r WHERE r.id IN \
         (SELECT e.request_id FROM request_events e WHERE e.action = 'delivered' AND e.at >= $1 AND e.at < $2) \
         GROUP BY r.department_id",
    )
    .bind(from.0)
    .bind(to.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(|r| Ok((s(r, 0)?, i(r, 1)?))).collect()
}

// ------------------------------------------------------------------ idle candidates

/// An instance or volume the idle task looks at.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub department_id: String,
    pub project_id: String,
    pub provider_id: Option<String>,
    pub flavor_name: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    /// Since when it is in its present state (stopped / detached), micros.
    pub since: i64,
}

fn candidate(r: &AnyRow) -> Result<Candidate, Error> {
    Ok(Candidate {
        id: s(r, 0)?,
        name: s(r, 1)?,
        department_id: s(r, 2)?,
        project_id: s(r, 3)?,
        provider_id: r.try_get(4).map_err(db_error)?,
        flavor_name: s(r, 5)?,
        vcpus: i(r, 6)?,
        memory_mib: i(r, 7)?,
        disk_gib: i(r, 8)?,
        since: i(r, 9)?,
    })
}

/// Running instances (not in the recycle bin).
pub async fn running_instances(store: &Store) -> Result<Vec<Candidate>, Error> {
    sqlx::query(
        "SELECT id, name, department_id, project_id, provider_id, flavor_name, vcpus, memory_mib, disk_gib, updated_at \
         FROM instances WHERE state = 'running' AND recycled_at IS NULL",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?
    .iter()
    .map(candidate)
    .collect()
}

/// Instances stopped since before `before` (by their last move to `stopped`).
pub async fn stopped_instances(store: &Store, before: Timestamp) -> Result<Vec<Candidate>, Error> {
    sqlx::query(
        "SELECT i.id, i.name, i.department_id, i.project_id, i.provider_id, i.flavor_name, i.vcpus, i.memory_mib, i.disk_gib, \
         COALESCE((SELECT MAX(e.at) FROM instance_events e WHERE e.instance_id = i.id AND e.to_state = 'stopped'), i.updated_at) AS since \
         FROM instances i WHERE i.state = 'stopped' AND i.recycled_at IS NULL",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?
    .iter()
    .map(candidate)
    .filter(|c| c.as_ref().map_or(true, |c| c.since < before.0))
    .collect()
}

/// Volumes attached to nothing since before `before`.
pub async fn unattached_volumes(store: &Store, before: Timestamp) -> Result<Vec<Candidate>, Error> {
    sqlx::query(
        "SELECT v.id, v.name, v.department_id, v.project_id, z.provider_id, '' AS flavor_name, \
         CAST(0 AS BIGINT), CAST(0 AS BIGINT), v.size_gib, v.updated_at \
         FROM volumes v LEFT JOIN storage_pools p ON p.id = v.pool_id LEFT JOIN zones z ON z.id = p.zone_id \
         WHERE v.state = 'available' AND v.instance_id IS NULL AND v.recycled_at IS NULL AND v.updated_at < $1",
    )
    .bind(before.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?
    .iter()
    .map(candidate)
    .collect()
}

/// Flavors: (name, vcpus, memory_mib), smallest first.
pub async fn flavors(store: &Store) -> Result<Vec<(String, i64, i64)>, Error> {
    sqlx::query("SELECT name, vcpus, memory_mib FROM flavors WHERE gpus = 0 ORDER BY vcpus, memory_mib, name")
        .fetch_all(store.pool())
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| Ok((s(r, 0)?, i(r, 1)?, i(r, 2)?)))
        .collect()
}

// ------------------------------------------------------------------ idle findings

const FINDING_COLS: &str = "id, kind, resource_type, resource_id, resource_name, department_id, project_id, provider_id, \
    recommendation, target_flavor, evidence, vcpus, memory_mib, disk_gib, monthly_fen, state, request_id, reason, \
    decided_by, detected_at, updated_at, reclaimed_at, generation";

fn finding(r: &AnyRow) -> Result<IdleFinding, Error> {
    let bad = |what: &str| Error::internal(format!("idle_findings: bad {what}"));
    let opt = |k: &str| r.try_get::<Option<String>, _>(k).map_err(db_error);
    Ok(IdleFinding {
        id: r.try_get("id").map_err(db_error)?,
        kind: IdleKind::parse(&r.try_get::<String, _>("kind").map_err(db_error)?)
            .ok_or_else(|| bad("kind"))?,
        resource_type: r.try_get("resource_type").map_err(db_error)?,
        resource_id: r.try_get("resource_id").map_err(db_error)?,
        resource_name: r.try_get("resource_name").map_err(db_error)?,
        department_id: r.try_get("department_id").map_err(db_error)?,
        project_id: r.try_get("project_id").map_err(db_error)?,
        provider_id: opt("provider_id")?,
        recommendation: Recommendation::parse(
            &r.try_get::<String, _>("recommendation").map_err(db_error)?,
        )
        .ok_or_else(|| bad("recommendation"))?,
        target_flavor: opt("target_flavor")?,
        evidence: serde_json::from_str(&r.try_get::<String, _>("evidence").map_err(db_error)?)
            .map_err(|_| bad("evidence"))?,
        vcpus: r.try_get("vcpus").map_err(db_error)?,
        memory_mib: r.try_get("memory_mib").map_err(db_error)?,
        disk_gib: r.try_get("disk_gib").map_err(db_error)?,
        monthly_fen: r.try_get("monthly_fen").map_err(db_error)?,
        state: IdleState::parse(&r.try_get::<String, _>("state").map_err(db_error)?)
            .ok_or_else(|| bad("state"))?,
        request_id: opt("request_id")?,
        reason: opt("reason")?,
        decided_by: opt("decided_by")?,
        detected_at: Timestamp(r.try_get("detected_at").map_err(db_error)?),
        updated_at: Timestamp(r.try_get("updated_at").map_err(db_error)?),
        reclaimed_at: r
            .try_get::<Option<i64>, _>("reclaimed_at")
            .map_err(db_error)?
            .map(Timestamp),
        generation: r.try_get("generation").map_err(db_error)?,
    })
}

/// Records a finding that holds now: inserted open, or (when known) its evidence and
/// figures refreshed; a cleared one opens again. Returns whether it is new or reopened.
pub async fn upsert_finding(tx: &mut Tx, f: &IdleFinding) -> Result<bool, Error> {
    let before: Option<String> =
        sqlx::query_scalar("SELECT state FROM idle_findings WHERE resource_id = $1 AND kind = $2")
            .bind(&f.resource_id)
            .bind(f.kind.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
    let evidence = f.evidence.to_string();
    match before.as_deref() {
        None => {
            sqlx::query(&format!(
                "INSERT INTO idle_findings ({FINDING_COLS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'open', NULL, NULL, NULL, $16, $16, NULL, 1)"
            ))
            .bind(&f.id)
            .bind(f.kind.as_str())
            .bind(&f.resource_type)
            .bind(&f.resource_id)
            .bind(&f.resource_name)
            .bind(&f.department_id)
            .bind(&f.project_id)
            .bind(f.provider_id.as_deref())
            .bind(f.recommendation.as_str())
            .bind(f.target_flavor.as_deref())
            .bind(&evidence)
            .bind(f.vcpus)
            .bind(f.memory_mib)
            .bind(f.disk_gib)
            .bind(f.monthly_fen)
            .bind(f.detected_at.0)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
            Ok(true)
        }
        Some(state) => {
            let reopen = state == "cleared";
            sqlx::query(
                "UPDATE idle_findings SET evidence = $1, resource_name = $2, recommendation = $3, target_flavor = $4, \
                 vcpus = $5, memory_mib = $6, disk_gib = $7, monthly_fen = $8, updated_at = $9, \
                 state = CASE WHEN state = 'cleared' THEN 'open' ELSE state END, \
                 detected_at = CASE WHEN state = 'cleared' THEN $9 ELSE detected_at END, \
                 generation = generation + 1 \
                 WHERE resource_id = $10 AND kind = $11 AND state IN ('open', 'cleared')",
            )
            .bind(&evidence)
            .bind(&f.resource_name)
            .bind(f.recommendation.as_str())
            .bind(f.target_flavor.as_deref())
            .bind(f.vcpus)
            .bind(f.memory_mib)
            .bind(f.disk_gib)
            .bind(f.monthly_fen)
            .bind(f.detected_at.0)
            .bind(&f.resource_id)
            .bind(f.kind.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
            Ok(reopen)
        }
    }
}

/// Findings in `states` (of `departments` when given), newest first.
pub async fn findings(
    store: &Store,
    departments: Option<&[String]>,
    states: &[IdleState],
) -> Result<Vec<IdleFinding>, Error> {
    let mut sql = format!("SELECT {FINDING_COLS} FROM idle_findings WHERE state IN (");
    for (k, _) in states.iter().enumerate() {
        if k > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", k + 1));
    }
    sql.push(')');
    if let Some(ds) = departments {
        if ds.is_empty() {
            return Ok(Vec::new());
        }
        sql.push_str(" AND department_id IN (");
        for k in 0..ds.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", states.len() + k + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ORDER BY detected_at DESC, id LIMIT 5000");
    let mut q = sqlx::query(&sql);
    for st in states {
        q = q.bind(st.as_str());
    }
    for d in departments.unwrap_or_default() {
        q = q.bind(d.as_str());
    }
    q.fetch_all(store.pool())
        .await
        .map_err(db_error)?
        .iter()
        .map(finding)
        .collect()
}

pub async fn get_finding(tx: &mut Tx, id: &str) -> Result<Option<IdleFinding>, Error> {
    sqlx::query(&format!(
        "SELECT {FINDING_COLS} FROM idle_findings WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?
    .as_ref()
    .map(finding)
    .transpose()
}

/// How a finding is decided.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub state: IdleState,
    pub request_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub by: &'a str,
    pub now: Timestamp,
}

/// Moves an open finding on (reclaiming with its request, or dismissed with a reason),
/// conditional on its generation. False when someone else moved it first.
pub async fn decide_finding(
    tx: &mut Tx,
    id: &str,
    generation: i64,
    d: Decision<'_>,
) -> Result<bool, Error> {
    let Decision {
        state,
        request_id,
        reason,
        by,
        now,
    } = d;
    let n = sqlx::query(
        "UPDATE idle_findings SET state = $1, request_id = $2, reason = $3, decided_by = $4, updated_at = $5, \
         generation = generation + 1 WHERE id = $6 AND generation = $7 AND state = 'open'",
    )
    .bind(state.as_str())
    .bind(request_id)
    .bind(reason)
    .bind(by)
    .bind(now.0)
    .bind(id)
    .bind(generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Open findings of `kind` whose resource is not in `holding` any more become cleared.
pub async fn clear_findings(
    tx: &mut Tx,
    kind: IdleKind,
    holding: &std::collections::HashSet<String>,
    now: Timestamp,
) -> Result<u64, Error> {
    let open: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, resource_id FROM idle_findings WHERE kind = $1 AND state = 'open'",
    )
    .bind(kind.as_str())
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    let mut n = 0;
    for (id, rid) in open {
        if !holding.contains(&rid) {
            n += sqlx::query(
                "UPDATE idle_findings SET state = 'cleared', updated_at = $1, generation = generation + 1 \
                 WHERE id = $2 AND state = 'open'",
            )
            .bind(now.0)
            .bind(&id)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        }
    }
    Ok(n)
}

/// Reclaiming findings whose resource is gone (deleted, in the recycle bin) or, for a
/// downsize, runs on the target flavor now, become reclaimed. Returns how many.
pub async fn settle_reclaims(tx: &mut Tx, now: Timestamp) -> Result<u64, Error> {
    let n1 = sqlx::query(
        "UPDATE idle_findings SET state = 'reclaimed', reclaimed_at = $1, updated_at = $1, generation = generation + 1 \
         WHERE state = 'reclaiming' AND resource_type = 'instance' AND ( \
           NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = idle_findings.resource_id \
                       AND i.state NOT IN ('deleted', 'deleting') AND i.recycled_at IS NULL) \
           OR (recommendation = 'downsize' AND EXISTS (SELECT 1 FROM instances i WHERE i.id = idle_findings.resource_id \
                       AND i.flavor_name = idle_findings.target_flavor)))",
    )
    .bind(now.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    let n2 = sqlx::query(
        "UPDATE idle_findings SET state = 'reclaimed', reclaimed_at = $1, updated_at = $1, generation = generation + 1 \
         WHERE state = 'reclaiming' AND resource_type = 'volume' AND \
           NOT EXISTS (SELECT 1 FROM volumes v WHERE v.id = idle_findings.resource_id AND v.recycled_at IS NULL)",
    )
    .bind(now.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    // A reclaim request that was rejected, withdrawn or failed: the finding is open again.
    let n3 = sqlx::query(
        "UPDATE idle_findings SET state = 'open', request_id = NULL, updated_at = $1, generation = generation + 1 \
         WHERE state = 'reclaiming' AND request_id IN \
           (SELECT id FROM resource_requests WHERE state IN ('rejected', 'withdrawn', 'failed'))",
    )
    .bind(now.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n1 + n2 + n3)
}

/// Opens a reclaiming finding again (its reclaim could not be made).
pub async fn reopen_finding(tx: &mut Tx, id: &str, now: Timestamp) -> Result<(), Error> {
    sqlx::query(
        "UPDATE idle_findings SET state = 'open', request_id = NULL, updated_at = $1, generation = generation + 1 \
         WHERE id = $2 AND state = 'reclaiming'",
    )
    .bind(now.0)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

// ------------------------------------------------------------------ snapshots

pub async fn put_snapshot(
    tx: &mut Tx,
    scope: &str,
    entity: &str,
    month: &str,
    body: &str,
    at: Timestamp,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO indicator_snapshots (scope, entity_id, month, body, computed_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (scope, entity_id, month) DO UPDATE SET body = excluded.body, computed_at = excluded.computed_at",
    )
    .bind(scope)
    .bind(entity)
    .bind(month)
    .bind(body)
    .bind(at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Every snapshot of `scope` for `month`: (entity, body).
pub async fn snapshots(
    store: &Store,
    scope: &str,
    month: &str,
) -> Result<Vec<(String, String)>, Error> {
    sqlx::query_as(
        "SELECT entity_id, body FROM indicator_snapshots WHERE scope = $1 AND month = $2 ORDER BY entity_id",
    )
    .bind(scope)
    .bind(month)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)
}

/// The snapshots of one entity over months `[from_month, to_month]`: (month, body).
pub async fn snapshot_history(
    store: &Store,
    scope: &str,
    entity: &str,
    from_month: &str,
    to_month: &str,
) -> Result<Vec<(String, String)>, Error> {
    sqlx::query_as(
        "SELECT month, body FROM indicator_snapshots WHERE scope = $1 AND entity_id = $2 \
         AND month >= $3 AND month <= $4 ORDER BY month",
    )
    .bind(scope)
    .bind(entity)
    .bind(from_month)
    .bind(to_month)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)
}

// ------------------------------------------------------------------ reports

/// Stores (or replaces) the report of `month` for `provider_id` ('' = the platform).
#[allow(clippy::too_many_arguments)]
pub async fn put_report(
    tx: &mut Tx,
    id: &str,
    month: &str,
    provider_id: &str,
    title: &str,
    pdf: &[u8],
    xlsx: &[u8],
    by: &str,
    at: Timestamp,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO ops_reports (id, month, provider_id, title, pdf, xlsx, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (month, provider_id) DO UPDATE SET \
         id = excluded.id, title = excluded.title, pdf = excluded.pdf, xlsx = excluded.xlsx, \
         created_by = excluded.created_by, created_at = excluded.created_at",
    )
    .bind(id)
    .bind(month)
    .bind(provider_id)
    .bind(title)
    .bind(pdf)
    .bind(xlsx)
    .bind(by)
    .bind(at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn reports(store: &Store) -> Result<Vec<OpsReport>, Error> {
    let len = match store.backend() {
        crate::Backend::Sqlite => "LENGTH",
        crate::Backend::Postgres => "OCTET_LENGTH",
    };
    sqlx::query(&format!(
        "SELECT id, month, provider_id, title, CAST({len}(pdf) AS BIGINT), CAST({len}(xlsx) AS BIGINT), created_by, created_at \
         FROM ops_reports ORDER BY month DESC, provider_id LIMIT 500"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?
    .iter()
    .map(|r| {
        let p = s(r, 2)?;
        Ok(OpsReport {
            id: s(r, 0)?,
            month: s(r, 1)?,
            provider_id: (!p.is_empty()).then_some(p),
            title: s(r, 3)?,
            pdf_bytes: i(r, 4)?,
            xlsx_bytes: i(r, 5)?,
            created_by: s(r, 6)?,
            created_at: Timestamp(i(r, 7)?),
        })
    })
    .collect()
}

/// Whether the report of `month` for `provider_id` exists.
pub async fn report_exists(store: &Store, month: &str, provider_id: &str) -> Result<bool, Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ops_reports WHERE month = $1 AND provider_id = $2",
    )
    .bind(month)
    .bind(provider_id)
    .fetch_one(store.pool())
    .await
    .map_err(db_error)?;
    Ok(n > 0)
}

/// A report's file: `pdf` or `xlsx`, with its month and title.
pub async fn report_file(
    store: &Store,
    id: &str,
    pdf: bool,
) -> Result<Option<(String, String, Vec<u8>)>, Error> {
    let col = if pdf { "pdf" } else { "xlsx" };
    let row = sqlx::query(&format!(
        "SELECT month, title, {col} FROM ops_reports WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?;
    row.map(|r| {
        Ok((
            s(&r, 0)?,
            s(&r, 1)?,
            r.try_get::<Vec<u8>, _>(2).map_err(db_error)?,
        ))
    })
    .transpose()
}

/// Names of every provider (`providers`) or department (`departments`): id → name.
pub async fn names(store: &Store, table: &str) -> Result<Vec<(String, String)>, Error> {
    let table = match table {
        "providers" => "providers",
        _ => "departments",
    };
    sqlx::query_as(&format!("SELECT id, name FROM {table} ORDER BY name, id"))
        .fetch_all(store.pool())
        .await
        .map_err(db_error)
}

/// Incidents of `[from, to)` per provider ('' when unknown): (alerts fired, HA
/// recoveries, of which restarted).
pub async fn incidents(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<HashMap<String, (i64, i64, i64)>, Error> {
    let mut out: HashMap<String, (i64, i64, i64)> = HashMap::new();
    // An alert's target is an instance or a host; both name their provider.
    let alerts = sqlx::query(
        "SELECT COALESCE(i.provider_id, h.provider_id, ''), COUNT(*) FROM alert_events e \
         LEFT JOIN instances i ON i.id = e.target_id LEFT JOIN hosts h ON h.id = e.target_id \
         WHERE e.state = 'firing' AND e.at >= $1 AND e.at < $2 \
         GROUP BY COALESCE(i.provider_id, h.provider_id, '')",
    )
    .bind(from.0)
    .bind(to.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    for r in &alerts {
        out.entry(s(r, 0)?).or_default().0 += i(r, 1)?;
    }
    let ha = sqlx::query(
        "SELECT h.provider_id, COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN r.outcome = 'restarted' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM ha_recoveries r JOIN hosts h ON h.id = r.host_id \
         WHERE r.created_at >= $1 AND r.created_at < $2 GROUP BY h.provider_id",
    )
    .bind(from.0)
    .bind(to.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    for r in &ha {
        let e = out.entry(s(r, 0)?).or_default();
        e.1 += i(r, 1)?;
        e.2 += i(r, 2)?;
    }
    Ok(out)
}

/// Demo data only: marks a volume as last changed (detached) at `at`, so the demo shows a
/// volume detached for weeks.
pub async fn backdate_volume(tx: &mut Tx, id: &str, at: Timestamp) -> Result<(), Error> {
    sqlx::query("UPDATE volumes SET updated_at = $1 WHERE id = $2")
        .bind(at.0)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// When the first provider was created (none: `None`).
pub async fn first_provider_at(store: &Store) -> Result<Option<Timestamp>, Error> {
    let at: Option<i64> = sqlx::query_scalar("SELECT MIN(created_at) FROM providers")
        .fetch_one(store.pool())
        .await
        .map_err(db_error)?;
    Ok(at.map(Timestamp))
}
