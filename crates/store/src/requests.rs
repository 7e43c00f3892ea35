//! Resource requests, their timelines and the approval chains. Every move of a request is
//! an update conditional on the state (and step, and generation) the caller saw, so two
//! reviewers — or two replicas — can never both move the same request.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{finish_page, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};
use zy_model::requests::*;
use zy_model::role::Role;
use zy_model::time::Timestamp;
use zy_model::Error;

const COLS: &str = "r.id, r.department_id, r.project_id, r.kind, r.title, r.purpose, r.mlps_level, r.lease_end, r.items, r.state, r.steps, r.current_step, r.step_role, r.step_due, r.provider_id, r.zone_id, r.estimated_monthly_fen, r.totals, r.requester_id, r.delivered, r.note, r.delivery_due, r.submitted_at, r.created_at, r.updated_at, r.generation, COALESCE(u.display_name, '') AS requester_name";
const FROM: &str = "resource_requests r LEFT JOIN users u ON u.id = r.requester_id";

fn json<T: serde::de::DeserializeOwned>(r: &impl Get, col: &str) -> Result<T, Error> {
    serde_json::from_str(&text(r, col)?).map_err(|e| Error::internal(format!("column {col}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::internal(e.to_string()))
}

impl Decode for ResourceRequest {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let totals: serde_json::Value = json(r, "totals")?;
        let n = |k: &str| totals.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
        Ok(ResourceRequest {
            id: id(r, "id")?,
            department_id: id(r, "department_id")?,
            project_id: id(r, "project_id")?,
            kind: RequestKind::parse(&text(r, "kind")?)
                .ok_or_else(|| Error::internal("unknown request kind"))?,
            title: text(r, "title")?,
            purpose: text(r, "purpose")?,
            mlps_level: opt_int(r, "mlps_level")?.map(|l| l as u8),
            lease_end: opt_ts(r, "lease_end")?,
            items: json(r, "items")?,
            state: RequestState::parse(&text(r, "state")?)
                .ok_or_else(|| Error::internal("unknown request state"))?,
            steps: json(r, "steps")?,
            current_step: int(r, "current_step")? as u32,
            step_due: opt_ts(r, "step_due")?,
            provider_id: opt_id(r, "provider_id")?,
            zone_id: opt_id(r, "zone_id")?,
            estimated_monthly_fen: opt_int(r, "estimated_monthly_fen")?,
            totals: RequestTotals {
                instances: n("instances"),
                vcpus: n("vcpus"),
                memory_mib: n("memory_mib"),
                disk_gib: n("disk_gib"),
                volumes: n("volumes"),
                volume_gib: n("volume_gib"),
            },
            requester_id: id(r, "requester_id")?,
            requester_name: text(r, "requester_name")?,
            delivered: json(r, "delivered")?,
            note: opt_text(r, "note")?,
            delivery_due: opt_ts(r, "delivery_due")?,
            submitted_at: opt_ts(r, "submitted_at")?,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
            generation: int(r, "generation")?,
        })
    }
}

pub async fn insert(tx: &mut Tx, r: &ResourceRequest) -> Result<(), Error> {
    sqlx::query("INSERT INTO resource_requests (id, department_id, project_id, kind, title, purpose, mlps_level, lease_end, items, state, totals, requester_id, provider_id, zone_id, created_at, updated_at, generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, 1)")
        .bind(r.id.to_string())
        .bind(r.department_id.to_string())
        .bind(r.project_id.to_string())
        .bind(r.kind.as_str())
        .bind(&r.title)
        .bind(&r.purpose)
        .bind(r.mlps_level.map(i64::from))
        .bind(r.lease_end.map(|t| t.0))
        .bind(to_json(&r.items)?)
        .bind(r.state.as_str())
        .bind(to_json(&r.totals)?)
        .bind(r.requester_id.to_string())
        .bind(r.provider_id.map(|p| p.to_string()))
        .bind(r.zone_id.map(|z| z.to_string()))
        .bind(r.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: ResourceRequestId,
) -> Result<Option<ResourceRequest>, Error> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM {FROM} WHERE r.id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(ResourceRequest::decode).transpose()
}

/// Which requests a list shows.
#[derive(Debug, Default)]
pub struct RequestFilter {
    /// Only this requester's.
    pub requester: Option<UserId>,
    pub state: Option<RequestState>,
    pub department: Option<DepartmentId>,
    /// Only those waiting for a decision by one of these (role, department) pairs — the
    /// department `None` for platform-wide roles.
    pub to_decide: Option<Vec<(Role, Option<DepartmentId>)>>,
    /// Only those in these states (the delivery list).
    pub states: Option<Vec<RequestState>>,
    /// Only those delivered by these providers (an operator's delivery list).
    pub providers: Option<Vec<ProviderId>>,
    /// With `departments`/`projects`: those delivered by these providers are visible too.
    pub visible_providers: Option<Vec<ProviderId>>,
}

pub async fn list(
    store: &Store,
    page: &PageRequest,
    departments: Option<&[DepartmentId]>,
    projects: Option<&[ProjectId]>,
    f: &RequestFilter,
) -> Result<Page<ResourceRequest>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM {FROM} WHERE 1 = 1"));
    if departments.is_some() || projects.is_some() {
        sql.push(" AND (")
            .push_in(
                "r.department_id",
                departments.unwrap_or(&[]).iter().map(|d| d.to_string()),
            )
            .push(" OR ")
            .push_in(
                "r.project_id",
                projects.unwrap_or(&[]).iter().map(|p| p.to_string()),
            );
        if let Some(pv) = &f.visible_providers {
            sql.push(" OR ")
                .push_in("r.provider_id", pv.iter().map(|p| p.to_string()));
        }
        sql.push(")");
    }
    if let Some(pv) = &f.providers {
        sql.push(" AND ")
            .push_in("r.provider_id", pv.iter().map(|p| p.to_string()));
    }
    if let Some(u) = f.requester {
        sql.push(" AND r.requester_id = ").bind_text(u.to_string());
    }
    if let Some(s) = f.state {
        sql.push(" AND r.state = ").bind_text(s.as_str());
    }
    if let Some(d) = f.department {
        sql.push(" AND r.department_id = ").bind_text(d.to_string());
    }
    if let Some(states) = &f.states {
        sql.push(" AND ")
            .push_in("r.state", states.iter().map(|s| s.as_str().to_string()));
    }
    if let Some(pairs) = &f.to_decide {
        sql.push(" AND r.state = 'pending' AND (1 = 0");
        for (role, dept) in pairs {
            sql.push(" OR (r.step_role = ").bind_text(role.as_str());
            if let Some(d) = dept {
                sql.push(" AND r.department_id = ").bind_text(d.to_string());
            }
            sql.push(")");
        }
        sql.push(")");
    }
    sql.push_page(page, "r.title", "r.created_at", "r.id");
    let items: Vec<ResourceRequest> = sql.fetch_all(store).await?;
    Ok(finish_page(page, items, |r| {
        (r.title.clone(), r.created_at.0, r.id.to_string())
    }))
}

/// Rewrites an editable request (draft or returned) if nobody changed it meanwhile.
pub async fn update_draft(
    tx: &mut Tx,
    r: &ResourceRequest,
    generation: i64,
) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE resource_requests SET title = $1, purpose = $2, mlps_level = $3, lease_end = $4, items = $5, totals = $6, provider_id = $7, zone_id = $8, updated_at = $9, generation = generation + 1 WHERE id = $10 AND generation = $11 AND state IN ('draft', 'returned')")
        .bind(&r.title)
        .bind(&r.purpose)
        .bind(r.mlps_level.map(i64::from))
        .bind(r.lease_end.map(|t| t.0))
        .bind(to_json(&r.items)?)
        .bind(to_json(&r.totals)?)
        .bind(r.provider_id.map(|p| p.to_string()))
        .bind(r.zone_id.map(|z| z.to_string()))
        .bind(Timestamp::now().0)
        .bind(r.id.to_string())
        .bind(generation)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

pub async fn delete_draft(tx: &mut Tx, id: ResourceRequestId) -> Result<bool, Error> {
    sqlx::query("DELETE FROM request_events WHERE request_id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    let n = sqlx::query("DELETE FROM resource_requests WHERE id = $1 AND state = 'draft'")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Sends a request into review: its chain fixed, the first step's role and deadline set.
/// `steps` empty means approved without review (the caller then delivers it).
pub async fn submit(
    tx: &mut Tx,
    id: ResourceRequestId,
    generation: i64,
    steps: &[ChainStep],
    estimated_monthly_fen: Option<i64>,
) -> Result<bool, Error> {
    let now = Timestamp::now();
    let first = steps.first();
    let n = sqlx::query("UPDATE resource_requests SET state = 'pending', steps = $1, current_step = 0, step_role = $2, step_due = $3, step_reminded = 0, estimated_monthly_fen = $4, submitted_at = $5, updated_at = $5, note = NULL, generation = generation + 1 WHERE id = $6 AND generation = $7 AND state IN ('draft', 'returned')")
        .bind(to_json(&steps)?)
        .bind(first.map(|s| s.role.as_str()))
        .bind(first.map(|s| now.plus_secs(s.deadline_hours as i64 * 3600).0))
        .bind(estimated_monthly_fen)
        .bind(now.0)
        .bind(id.to_string())
        .bind(generation)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Moves a pending request from step `at` to the next step (approve, not the last).
pub async fn next_step(
    tx: &mut Tx,
    id: ResourceRequestId,
    at: u32,
    next: &ChainStep,
) -> Result<bool, Error> {
    let now = Timestamp::now();
    let n = sqlx::query("UPDATE resource_requests SET current_step = current_step + 1, step_role = $1, step_due = $2, step_reminded = 0, updated_at = $3, generation = generation + 1 WHERE id = $4 AND state = 'pending' AND current_step = $5")
        .bind(next.role.as_str())
        .bind(now.plus_secs(next.deadline_hours as i64 * 3600).0)
        .bind(now.0)
        .bind(id.to_string())
        .bind(at as i64)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Ends the review of a pending request at step `at`: to `delivering` (approved, with the
/// provider and zone chosen and the delivery deadline), `rejected` or `returned`.
pub async fn decide(
    tx: &mut Tx,
    id: ResourceRequestId,
    at: Option<u32>,
    to: RequestState,
    placement: (Option<ProviderId>, Option<ZoneId>),
    delivery_due: Option<Timestamp>,
    note: Option<&str>,
) -> Result<bool, Error> {
    let mut sql = String::from("UPDATE resource_requests SET state = $1, step_role = NULL, step_due = NULL, provider_id = COALESCE($2, provider_id), zone_id = COALESCE($3, zone_id), delivery_due = $4, note = $5, updated_at = $6, generation = generation + 1 WHERE id = $7 AND state = 'pending'");
    if at.is_some() {
        sql.push_str(" AND current_step = $8");
    }
    let mut q = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(placement.0.map(|p| p.to_string()))
        .bind(placement.1.map(|z| z.to_string()))
        .bind(delivery_due.map(|t| t.0))
        .bind(note)
        .bind(Timestamp::now().0)
        .bind(id.to_string());
    if let Some(at) = at {
        q = q.bind(at as i64);
    }
    let n = q
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Records the provider that delivers a request that named none.
pub async fn set_provider_if_unset(
    tx: &mut Tx,
    id: ResourceRequestId,
    provider: ProviderId,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE resource_requests SET provider_id = $1 WHERE id = $2 AND provider_id IS NULL",
    )
    .bind(provider.to_string())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Moves a request from one of `from` to `to`, recording a note when given.
pub async fn transition(
    tx: &mut Tx,
    id: ResourceRequestId,
    from: &[RequestState],
    to: RequestState,
    note: Option<&str>,
) -> Result<bool, Error> {
    let mut sql = Sql::new("UPDATE resource_requests SET state = ");
    sql.bind_text(to.as_str());
    sql.push(", step_role = NULL");
    if let Some(n) = note {
        sql.push(", note = ").bind_text(n);
    }
    sql.push(", updated_at = ")
        .bind(crate::sql::Arg::I64(Timestamp::now().0))
        .push(", generation = generation + 1 WHERE id = ")
        .bind_text(id.to_string())
        .push(" AND ")
        .push_in("state", from.iter().map(|s| s.as_str().to_string()));
    let n = sql
        .query()
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Records what a delivery produced.
pub async fn set_delivered(
    tx: &mut Tx,
    id: ResourceRequestId,
    delivered: &[DeliveredResource],
) -> Result<(), Error> {
    sqlx::query("UPDATE resource_requests SET delivered = $1, updated_at = $2 WHERE id = $3")
        .bind(to_json(&delivered)?)
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn add_event(
    tx: &mut Tx,
    request: ResourceRequestId,
    action: &str,
    actor: Option<UserId>,
    step: Option<&str>,
    reason: Option<&str>,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO request_events (id, request_id, at, action, actor_id, step, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(request.to_string())
        .bind(Timestamp::now().0)
        .bind(action)
        .bind(actor.map(|a| a.to_string()))
        .bind(step)
        .bind(reason)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl Decode for RequestEvent {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(RequestEvent {
            at: ts(r, "at")?,
            action: text(r, "action")?,
            actor_id: opt_id(r, "actor_id")?,
            actor_name: opt_text(r, "actor_name")?,
            step: opt_text(r, "step")?,
            reason: opt_text(r, "reason")?,
        })
    }
}

pub async fn events(store: &Store, id: ResourceRequestId) -> Result<Vec<RequestEvent>, Error> {
    let mut sql = Sql::new("SELECT e.at, e.action, e.actor_id, u.display_name AS actor_name, e.step, e.reason FROM request_events e LEFT JOIN users u ON u.id = e.actor_id WHERE e.request_id = ");
    sql.bind_text(id.to_string());
    sql.push(" ORDER BY e.at, e.id");
    sql.fetch_all(store).await
}

/// Pending requests whose current step is past due and not yet reminded; and requests
/// being delivered past their delivery deadline, not yet reminded.
pub async fn overdue(
    store: &Store,
    now: Timestamp,
) -> Result<(Vec<ResourceRequest>, Vec<ResourceRequest>), Error> {
    let mut steps = Sql::new(&format!("SELECT {COLS} FROM {FROM} WHERE r.state = 'pending' AND r.step_reminded = 0 AND r.step_due < "));
    steps.bind(crate::sql::Arg::I64(now.0)).push(" LIMIT 200");
    let mut deliveries = Sql::new(&format!("SELECT {COLS} FROM {FROM} WHERE r.state = 'delivering' AND r.delivery_reminded = 0 AND r.delivery_due < "));
    deliveries
        .bind(crate::sql::Arg::I64(now.0))
        .push(" LIMIT 200");
    Ok((
        steps.fetch_all(store).await?,
        deliveries.fetch_all(store).await?,
    ))
}

/// Marks a reminder sent, once: false when another replica (or an earlier pass) did.
pub async fn mark_reminded(
    tx: &mut Tx,
    id: ResourceRequestId,
    delivery: bool,
    step: u32,
) -> Result<bool, Error> {
    let sql = if delivery {
        "UPDATE resource_requests SET delivery_reminded = 1 WHERE id = $1 AND state = 'delivering' AND delivery_reminded = 0 AND $2 >= 0"
    } else {
        "UPDATE resource_requests SET step_reminded = 1 WHERE id = $1 AND state = 'pending' AND step_reminded = 0 AND current_step = $2"
    };
    let n = sqlx::query(sql)
        .bind(id.to_string())
        .bind(step as i64)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

// ---- approval chains ----

fn scope_key(d: Option<DepartmentId>) -> String {
    d.map(|d| d.to_string())
        .unwrap_or_else(|| "platform".to_string())
}

impl Decode for ApprovalChain {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let key = text(r, "scope_key")?;
        Ok(ApprovalChain {
            id: id(r, "id")?,
            department_id: if key == "platform" {
                None
            } else {
                Some(key.parse()?)
            },
            kind: RequestKind::parse(&text(r, "kind")?)
                .ok_or_else(|| Error::internal("unknown request kind"))?,
            steps: json(r, "steps")?,
            auto_max_vcpus: opt_int(r, "auto_max_vcpus")?.map(|v| v as u32),
            auto_max_volume_gib: opt_int(r, "auto_max_volume_gib")?.map(|v| v as u64),
            updated_at: ts(r, "updated_at")?,
            generation: int(r, "generation")?,
        })
    }
}

const CHAIN_COLS: &str =
    "id, scope_key, kind, steps, auto_max_vcpus, auto_max_volume_gib, updated_at, generation";

/// The chain a department's request of `kind` goes through: its own, else the platform's,
/// else the built-in default.
pub async fn chain_for<'c>(
    e: impl Executor<'c, Database = Any>,
    department: DepartmentId,
    kind: RequestKind,
) -> Result<ApprovalChain, Error> {
    let rows = sqlx::query(&format!("SELECT {CHAIN_COLS} FROM approval_chains WHERE kind = $1 AND scope_key IN ($2, 'platform')"))
        .bind(kind.as_str())
        .bind(department.to_string())
        .fetch_all(e)
        .await
        .map_err(db_error)?;
    let chains = rows
        .iter()
        .map(ApprovalChain::decode)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(chains
        .iter()
        .find(|c| c.department_id == Some(department))
        .or_else(|| chains.iter().find(|c| c.department_id.is_none()))
        .cloned()
        .unwrap_or_else(|| ApprovalChain {
            id: ApprovalChainId(uuid::Uuid::nil()),
            department_id: None,
            kind,
            steps: default_steps(),
            auto_max_vcpus: None,
            auto_max_volume_gib: None,
            updated_at: Timestamp(0),
            generation: 0,
        }))
}

pub async fn chains(
    store: &Store,
    department: Option<DepartmentId>,
) -> Result<Vec<ApprovalChain>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {CHAIN_COLS} FROM approval_chains WHERE 1 = 1"
    ));
    if let Some(d) = department {
        sql.push(" AND scope_key IN (")
            .bind_text(d.to_string())
            .push(", 'platform')");
    }
    sql.push(" ORDER BY scope_key, kind");
    sql.fetch_all(store).await
}

/// Sets the chain of a department (or the platform's default) for one kind.
pub async fn put_chain(tx: &mut Tx, c: &ApprovalChain) -> Result<(), Error> {
    sqlx::query(&format!("INSERT INTO approval_chains ({CHAIN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) ON CONFLICT (scope_key, kind) DO UPDATE SET steps = excluded.steps, auto_max_vcpus = excluded.auto_max_vcpus, auto_max_volume_gib = excluded.auto_max_volume_gib, updated_at = excluded.updated_at, generation = approval_chains.generation + 1"))
        .bind(c.id.to_string())
        .bind(scope_key(c.department_id))
        .bind(c.kind.as_str())
        .bind(to_json(&c.steps)?)
        .bind(c.auto_max_vcpus.map(i64::from))
        .bind(c.auto_max_volume_gib.map(|v| v as i64))
        .bind(Timestamp::now().0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn delete_chain(
    tx: &mut Tx,
    department: Option<DepartmentId>,
    kind: RequestKind,
) -> Result<bool, Error> {
    let n = sqlx::query("DELETE FROM approval_chains WHERE scope_key = $1 AND kind = $2")
        .bind(scope_key(department))
        .bind(kind.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

// ---- departments that take resources only through requests ----

pub async fn requests_only<'c>(
    e: impl Executor<'c, Database = Any>,
    department: DepartmentId,
) -> Result<bool, Error> {
    let v: Option<i64> = sqlx::query_scalar("SELECT requests_only FROM departments WHERE id = $1")
        .bind(department.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    Ok(v.unwrap_or(0) != 0)
}

pub async fn set_requests_only(
    tx: &mut Tx,
    department: DepartmentId,
    on: bool,
) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE departments SET requests_only = $1, updated_at = $2, generation = generation + 1 WHERE id = $3")
        .bind(on as i64)
        .bind(Timestamp::now().0)
        .bind(department.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}
