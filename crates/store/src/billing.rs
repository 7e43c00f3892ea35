//! Metering and billing tables: the usage ledger (written by [`meter_instance`] and
//! [`meter_volume`] inside the transaction of every change that affects a charge), the
//! metering clock, price-list versions, closed months with their bills, lines and
//! adjustments, budgets and their alerts, reconciliations.
//!
//! The ledger is deduplicated at the source: an event is appended only when what the
//! resource costs (status, sizes, provider) differs from its last event, so a step that
//! runs twice or a state change that does not affect the charge adds nothing.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{Arg, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::billing::*;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::{Error, Money};

// ---------------------------------------------------------------- clock

/// The metering clock: real time plus the test offset (0 unless a server started with
/// the test clock moved it).
pub async fn now<'c>(e: impl Executor<'c, Database = Any>) -> Result<Timestamp, Error> {
    let off: i64 = sqlx::query_scalar("SELECT offset_us FROM billing_clock WHERE id = 1")
        .fetch_optional(e)
        .await
        .map_err(db_error)?
        .unwrap_or(0);
    Ok(Timestamp(Timestamp::now().0.saturating_add(off)))
}

/// Moves the metering clock forward to `to` (never back: the ledger would otherwise get
/// events out of order and a closed month could gain usage). Returns the new offset.
pub async fn advance_clock(tx: &mut Tx, to: Timestamp) -> Result<Option<i64>, Error> {
    let off = to.0 - Timestamp::now().0;
    let n = sqlx::query("UPDATE billing_clock SET offset_us = $1 WHERE id = 1 AND offset_us <= $1")
        .bind(off)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok((n == 1).then_some(off))
}

// ---------------------------------------------------------------- ledger

struct Snap {
    status: UsageStatus,
    name: String,
    department_id: String,
    project_id: String,
    provider_id: Option<String>,
    flavor: String,
    vcpus: i64,
    memory_mib: i64,
    disk_gib: i64,
    gpus: i64,
}

impl Snap {
    fn same_charge(&self, o: &Snap) -> bool {
        self.status == o.status
            && self.provider_id == o.provider_id
            && self.flavor == o.flavor
            && (self.vcpus, self.memory_mib, self.disk_gib, self.gpus)
                == (o.vcpus, o.memory_mib, o.disk_gib, o.gpus)
            && self.department_id == o.department_id
            && self.project_id == o.project_id
    }
}

impl Decode for Snap {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Snap {
            status: UsageStatus::parse(&text(r, "status")?).unwrap_or(UsageStatus::None),
            name: text(r, "name")?,
            department_id: text(r, "department_id")?,
            project_id: text(r, "project_id")?,
            provider_id: opt_text(r, "provider_id")?,
            flavor: text(r, "flavor")?,
            vcpus: int(r, "vcpus")?,
            memory_mib: int(r, "memory_mib")?,
            disk_gib: int(r, "disk_gib")?,
            gpus: int(r, "gpus")?,
        })
    }
}

const SNAP_COLS: &str = "status, name, department_id, project_id, provider_id, flavor, vcpus, memory_mib, disk_gib, gpus";

async fn last_snap(tx: &mut Tx, resource: &str) -> Result<Option<Snap>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {SNAP_COLS} FROM usage_events WHERE resource_id = $1 ORDER BY seq DESC LIMIT 1"
    ))
    .bind(resource)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    row.as_ref().map(Snap::decode).transpose()
}

async fn append(tx: &mut Tx, resource: &str, kind: ResourceKind, s: Snap) -> Result<(), Error> {
    let last = last_snap(tx, resource).await?;
    let changed = match &last {
        Some(l) => !l.same_charge(&s),
        None => s.status != UsageStatus::None,
    };
    if !changed {
        return Ok(());
    }
    let at = now(&mut **tx).await?;
    sqlx::query(&format!(
        "INSERT INTO usage_events (resource_id, kind, at, {SNAP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(resource)
    .bind(kind.as_str())
    .bind(at.0)
    .bind(s.status.as_str())
    .bind(s.name)
    .bind(s.department_id)
    .bind(s.project_id)
    .bind(s.provider_id)
    .bind(s.flavor)
    .bind(s.vcpus)
    .bind(s.memory_mib)
    .bind(s.disk_gib)
    .bind(s.gpus)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Records what an instance costs now, if that changed. Running and migrating instances
/// are metered as running, stopped ones as stopped; any other state (not yet placed,
/// failed, being deleted, deleted) is not billed.
pub async fn meter_instance(tx: &mut Tx, id: InstanceId) -> Result<(), Error> {
    let row = sqlx::query(
        "SELECT state, name, department_id, project_id, provider_id, flavor_name, vcpus, memory_mib, disk_gib, gpus FROM instances WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    let Some(r) = row else { return Ok(()) };
    let status = match text(&r, "state")?.as_str() {
        "running" | "migrating" => UsageStatus::Running,
        "stopped" => UsageStatus::Stopped,
        _ => UsageStatus::None,
    };
    let snap = Snap {
        status,
        name: text(&r, "name")?,
        department_id: text(&r, "department_id")?,
        project_id: text(&r, "project_id")?,
        provider_id: opt_text(&r, "provider_id")?,
        flavor: text(&r, "flavor_name")?,
        vcpus: int(&r, "vcpus")?,
        memory_mib: int(&r, "memory_mib")?,
        disk_gib: int(&r, "disk_gib")?,
        gpus: int(&r, "gpus")?,
    };
    append(tx, &id.to_string(), ResourceKind::Instance, snap).await
}

/// Records what a volume costs now (its size, on its pool's provider), or that it is
/// gone when its row no longer exists.
pub async fn meter_volume(tx: &mut Tx, id: VolumeId) -> Result<(), Error> {
    let row = sqlx::query(
        "SELECT v.name, v.department_id, v.project_id, v.size_gib, z.provider_id FROM volumes v \
         JOIN storage_pools p ON p.id = v.pool_id JOIN zones z ON z.id = p.zone_id WHERE v.id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    let key = id.to_string();
    let snap = match row {
        Some(r) => Snap {
            status: UsageStatus::Allocated,
            name: text(&r, "name")?,
            department_id: text(&r, "department_id")?,
            project_id: text(&r, "project_id")?,
            provider_id: opt_text(&r, "provider_id")?,
            flavor: String::new(),
            vcpus: 0,
            memory_mib: 0,
            disk_gib: int(&r, "size_gib")?,
            gpus: 0,
        },
        None => match last_snap(tx, &key).await? {
            Some(mut last) => {
                last.status = UsageStatus::None;
                last
            }
            None => return Ok(()),
        },
    };
    append(tx, &key, ResourceKind::Volume, snap).await
}

impl Decode for UsageEvent {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(UsageEvent {
            seq: int(r, "seq")?,
            at: ts(r, "at")?,
            resource_id: text(r, "resource_id")?,
            kind: ResourceKind::parse(&text(r, "kind")?).unwrap_or(ResourceKind::Instance),
            name: text(r, "name")?,
            status: UsageStatus::parse(&text(r, "status")?).unwrap_or(UsageStatus::None),
            department_id: id(r, "department_id")?,
            project_id: id(r, "project_id")?,
            provider_id: opt_id(r, "provider_id")?,
            flavor: text(r, "flavor")?,
            vcpus: int(r, "vcpus")? as u32,
            memory_mib: int(r, "memory_mib")? as u64,
            disk_gib: int(r, "disk_gib")? as u64,
            gpus: int(r, "gpus")? as u32,
        })
    }
}

/// Which part of the ledger to read.
#[derive(Debug, Default, Clone)]
pub struct UsageFilter {
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub provider_id: Option<ProviderId>,
    pub resource_id: Option<String>,
}

/// Every event before `to` of every resource matching the filter that has an event
/// before `to`, ordered by resource and sequence: what rating a period needs (the state
/// carried in from before the period included). A resource's department, project and
/// provider are those of its events (they do not change).
pub async fn usage_until(
    store: &Store,
    f: &UsageFilter,
    to: Timestamp,
) -> Result<Vec<UsageEvent>, Error> {
    let mut sql = Sql::new(
        "SELECT seq, at, resource_id, kind, name, status, department_id, project_id, provider_id, flavor, vcpus, memory_mib, disk_gib, gpus \
         FROM usage_events WHERE at < ",
    );
    sql.bind(Arg::I64(to.0));
    if let Some(d) = f.department_id {
        sql.push(" AND department_id = ").bind_text(d.to_string());
    }
    if let Some(p) = f.project_id {
        sql.push(" AND project_id = ").bind_text(p.to_string());
    }
    if let Some(p) = f.provider_id {
        sql.push(" AND provider_id = ").bind_text(p.to_string());
    }
    if let Some(r) = &f.resource_id {
        sql.push(" AND resource_id = ").bind_text(r.clone());
    }
    sql.push(" ORDER BY resource_id, seq");
    sql.fetch_all(store).await
}

// ---------------------------------------------------------------- price lists

impl Decode for PriceVersion {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let rates: Rates = serde_json::from_str(&text(r, "rates")?)
            .map_err(|e| Error::internal(format!("price version rates: {e}")))?;
        Ok(PriceVersion {
            id: id(r, "id")?,
            provider_id: id(r, "provider_id")?,
            effective_from: ts(r, "effective_from")?,
            rates,
            note: text(r, "note")?,
            created_at: ts(r, "created_at")?,
            in_effect: false,
        })
    }
}

pub async fn insert_version(tx: &mut Tx, v: &PriceVersion, by: UserId) -> Result<(), Error> {
    let rates = serde_json::to_string(&v.rates).map_err(|e| Error::internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO price_versions (id, provider_id, effective_from, rates, note, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(v.id.to_string())
    .bind(v.provider_id.to_string())
    .bind(v.effective_from.0)
    .bind(rates)
    .bind(&v.note)
    .bind(v.created_at.0)
    .bind(by.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Price versions, of one provider or all, oldest first, with `in_effect` as of `now`.
pub async fn versions(
    store: &Store,
    provider: Option<ProviderId>,
    now: Timestamp,
) -> Result<Vec<PriceVersion>, Error> {
    let mut sql = Sql::new(
        "SELECT id, provider_id, effective_from, rates, note, created_at FROM price_versions",
    );
    if let Some(p) = provider {
        sql.push(" WHERE provider_id = ").bind_text(p.to_string());
    }
    sql.push(" ORDER BY provider_id, effective_from");
    let mut v: Vec<PriceVersion> = sql.fetch_all(store).await?;
    for x in &mut v {
        x.in_effect = x.effective_from <= now;
    }
    Ok(v)
}

/// Withdraws a version that has not taken effect; false when it has (or is gone).
pub async fn withdraw_version(
    tx: &mut Tx,
    id: PriceVersionId,
    now: Timestamp,
) -> Result<bool, Error> {
    let n = sqlx::query("DELETE FROM price_versions WHERE id = $1 AND effective_from > $2")
        .bind(id.to_string())
        .bind(now.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

pub async fn get_version<'c>(
    e: impl Executor<'c, Database = Any>,
    id: PriceVersionId,
) -> Result<Option<PriceVersion>, Error> {
    let r = sqlx::query("SELECT id, provider_id, effective_from, rates, note, created_at FROM price_versions WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(PriceVersion::decode).transpose()
}

// ---------------------------------------------------------------- months and bills

impl Decode for BillingMonth {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(BillingMonth {
            month: text(r, "month")?,
            closed: true,
            closed_at: Some(ts(r, "closed_at")?),
            total: Money(int(r, "total_fen")?),
        })
    }
}

pub async fn closed_months(store: &Store) -> Result<Vec<BillingMonth>, Error> {
    Sql::new("SELECT month, closed_at, total_fen FROM billing_months ORDER BY month")
        .fetch_all(store)
        .await
}

pub async fn month_closed<'c>(
    e: impl Executor<'c, Database = Any>,
    month: &str,
) -> Result<bool, Error> {
    let n: Option<i64> = sqlx::query_scalar("SELECT 1 FROM billing_months WHERE month = $1")
        .bind(month)
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    Ok(n.is_some())
}

/// Writes a closed month: the month row first (a second close conflicts on its key), then
/// every department's bill and lines. The caller commits all of it at once.
pub async fn write_closed_month(
    tx: &mut Tx,
    month: &str,
    by: UserId,
    bills: &[Bill],
) -> Result<(), Error> {
    let total = Money::sum(bills.iter().map(|b| b.usage_total));
    let at = now(&mut **tx).await?;
    sqlx::query("INSERT INTO billing_months (month, closed_at, closed_by, total_fen) VALUES ($1, $2, $3, $4)")
        .bind(month)
        .bind(at.0)
        .bind(by.to_string())
        .bind(total.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for b in bills {
        sqlx::query(
            "INSERT INTO bills (month, department_id, department_name, state, usage_fen) VALUES ($1, $2, $3, 'closed', $4)",
        )
        .bind(month)
        .bind(b.department_id.to_string())
        .bind(&b.department_name)
        .bind(b.usage_total.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        const COLS: usize = 17;
        const BATCH: usize = 400;
        for (chunk_no, chunk) in b.lines.chunks(BATCH).enumerate() {
            let mut sql = String::from(
                "INSERT INTO bill_lines (month, department_id, line_no, project_id, project_name, provider_id, provider_name, resource_id, kind, name, \
                 running_secs, stopped_secs, vcpu_secs, memory_mib_secs, disk_gib_secs, gpu_secs, amount_fen) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..COLS {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("${}", i * COLS + c + 1));
                }
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for (i, l) in chunk.iter().enumerate() {
                q = q
                    .bind(month)
                    .bind(b.department_id.to_string())
                    .bind((chunk_no * BATCH + i) as i64)
                    .bind(l.project_id.to_string())
                    .bind(l.project_name.clone())
                    .bind(l.provider_id.map(|p| p.to_string()))
                    .bind(l.provider_name.clone())
                    .bind(l.resource_id.clone())
                    .bind(l.kind.as_str())
                    .bind(l.name.clone())
                    .bind(l.running_secs)
                    .bind(l.stopped_secs)
                    .bind(l.vcpu_secs)
                    .bind(l.memory_mib_secs)
                    .bind(l.disk_gib_secs)
                    .bind(l.gpu_secs)
                    .bind(l.amount.0);
            }
            q.execute(&mut **tx).await.map_err(db_error)?;
        }
    }
    Ok(())
}

impl Decode for BillSummary {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let usage = Money(int(r, "usage_fen")?);
        let adj = Money(int(r, "adjustments_fen")?);
        Ok(BillSummary {
            month: text(r, "month")?,
            department_id: id(r, "department_id")?,
            department_name: text(r, "department_name")?,
            state: BillState::parse(&text(r, "state")?).unwrap_or(BillState::Closed),
            usage_total: usage,
            adjustments_total: adj,
            total: usage + adj,
        })
    }
}

/// Stored bills (closed months), of one month or all, of one department or all.
pub async fn bills(
    store: &Store,
    month: Option<&str>,
    department: Option<DepartmentId>,
) -> Result<Vec<(BillSummary, i64)>, Error> {
    struct Row(BillSummary, i64);
    impl Decode for Row {
        fn decode<R: Get>(r: &R) -> Result<Self, Error> {
            Ok(Row(BillSummary::decode(r)?, int(r, "generation")?))
        }
    }
    let mut sql = Sql::new("SELECT month, department_id, department_name, state, usage_fen, adjustments_fen, generation FROM bills WHERE 1 = 1");
    if let Some(m) = month {
        sql.push(" AND month = ").bind_text(m);
    }
    if let Some(d) = department {
        sql.push(" AND department_id = ").bind_text(d.to_string());
    }
    sql.push(" ORDER BY month, department_name");
    Ok(sql
        .fetch_all::<Row>(store)
        .await?
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect())
}

impl Decode for BillLine {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(BillLine {
            department_id: id(r, "department_id")?,
            project_id: id(r, "project_id")?,
            project_name: text(r, "project_name")?,
            provider_id: opt_id(r, "provider_id")?,
            provider_name: text(r, "provider_name")?,
            resource_id: text(r, "resource_id")?,
            kind: ResourceKind::parse(&text(r, "kind")?).unwrap_or(ResourceKind::Instance),
            name: text(r, "name")?,
            running_secs: int(r, "running_secs")?,
            stopped_secs: int(r, "stopped_secs")?,
            vcpu_secs: int(r, "vcpu_secs")?,
            memory_mib_secs: int(r, "memory_mib_secs")?,
            disk_gib_secs: int(r, "disk_gib_secs")?,
            gpu_secs: int(r, "gpu_secs")?,
            amount: Money(int(r, "amount_fen")?),
        })
    }
}

/// Lines of a closed month, of one department or all, of one provider or all.
pub async fn lines(
    store: &Store,
    month: &str,
    department: Option<DepartmentId>,
    provider: Option<ProviderId>,
) -> Result<Vec<BillLine>, Error> {
    let mut sql = Sql::new(
        "SELECT department_id, project_id, project_name, provider_id, provider_name, resource_id, kind, name, running_secs, stopped_secs, \
         vcpu_secs, memory_mib_secs, disk_gib_secs, gpu_secs, amount_fen FROM bill_lines WHERE month = ",
    );
    sql.bind_text(month);
    if let Some(d) = department {
        sql.push(" AND department_id = ").bind_text(d.to_string());
    }
    if let Some(p) = provider {
        sql.push(" AND provider_id = ").bind_text(p.to_string());
    }
    sql.push(" ORDER BY department_id, line_no");
    sql.fetch_all(store).await
}

impl Decode for Adjustment {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Adjustment {
            id: id(r, "id")?,
            amount: Money(int(r, "amount_fen")?),
            reason: text(r, "reason")?,
            created_at: ts(r, "created_at")?,
            created_by: id(r, "created_by")?,
        })
    }
}

pub async fn adjustments(
    store: &Store,
    month: &str,
    department: DepartmentId,
) -> Result<Vec<Adjustment>, Error> {
    let mut sql = Sql::new("SELECT id, amount_fen, reason, created_at, created_by FROM bill_adjustments WHERE month = ");
    sql.bind_text(month)
        .push(" AND department_id = ")
        .bind_text(department.to_string());
    sql.push(" ORDER BY created_at, id");
    sql.fetch_all(store).await
}

/// Adds an adjustment line to a bill that is not paid yet; false when the bill is paid,
/// does not exist, or changed since `generation`.
pub async fn add_adjustment(
    tx: &mut Tx,
    month: &str,
    department: DepartmentId,
    generation: Option<i64>,
    a: &Adjustment,
) -> Result<bool, Error> {
    let mut sql = String::from(
        "UPDATE bills SET adjustments_fen = adjustments_fen + $1, generation = generation + 1 WHERE month = $2 AND department_id = $3 AND state <> 'paid'",
    );
    if generation.is_some() {
        sql.push_str(" AND generation = $4");
    }
    let mut q = sqlx::query(&sql)
        .bind(a.amount.0)
        .bind(month)
        .bind(department.to_string());
    if let Some(g) = generation {
        q = q.bind(g);
    }
    let n = q
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO bill_adjustments (id, month, department_id, amount_fen, reason, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(a.id.to_string())
    .bind(month)
    .bind(department.to_string())
    .bind(a.amount.0)
    .bind(&a.reason)
    .bind(a.created_at.0)
    .bind(a.created_by.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(true)
}

/// Moves a bill `from → to` (closed → confirmed → paid); false when it is not in `from`.
pub async fn set_bill_state(
    tx: &mut Tx,
    month: &str,
    department: DepartmentId,
    from: BillState,
    to: BillState,
    by: UserId,
    at: Timestamp,
) -> Result<bool, Error> {
    let cols = match to {
        BillState::Confirmed => "confirmed_at = $1, confirmed_by = $2",
        _ => "paid_at = $1, paid_by = $2",
    };
    let n = sqlx::query(&format!(
        "UPDATE bills SET state = $3, {cols}, generation = generation + 1 WHERE month = $4 AND department_id = $5 AND state = $6"
    ))
    .bind(at.0)
    .bind(by.to_string())
    .bind(to.as_str())
    .bind(month)
    .bind(department.to_string())
    .bind(from.as_str())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// What each provider is owed in a closed month, by department: (provider, department, fen).
pub async fn provider_totals(
    store: &Store,
    month: &str,
) -> Result<Vec<(Option<String>, String, i64)>, Error> {
    struct Row(Option<String>, String, i64);
    impl Decode for Row {
        fn decode<R: Get>(r: &R) -> Result<Self, Error> {
            Ok(Row(
                opt_text(r, "provider_id")?,
                text(r, "department_id")?,
                int(r, "fen")?,
            ))
        }
    }
    let mut sql = Sql::new(
        "SELECT provider_id, department_id, CAST(SUM(amount_fen) AS BIGINT) AS fen FROM bill_lines WHERE month = ",
    );
    sql.bind_text(month)
        .push(" GROUP BY provider_id, department_id ORDER BY provider_id, department_id");
    Ok(sql
        .fetch_all::<Row>(store)
        .await?
        .into_iter()
        .map(|r| (r.0, r.1, r.2))
        .collect())
}

// ---------------------------------------------------------------- budgets

/// Department budgets: (department, monthly budget).
pub async fn budgets(store: &Store) -> Result<Vec<(DepartmentId, Money)>, Error> {
    struct Row(DepartmentId, Money);
    impl Decode for Row {
        fn decode<R: Get>(r: &R) -> Result<Self, Error> {
            Ok(Row(id(r, "department_id")?, Money(int(r, "monthly_fen")?)))
        }
    }
    Ok(
        Sql::new("SELECT department_id, monthly_fen FROM budgets ORDER BY department_id")
            .fetch_all::<Row>(store)
            .await?
            .into_iter()
            .map(|r| (r.0, r.1))
            .collect(),
    )
}

pub async fn set_budget(
    tx: &mut Tx,
    department: DepartmentId,
    monthly: Money,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO budgets (department_id, monthly_fen, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (department_id) DO UPDATE SET monthly_fen = excluded.monthly_fen, updated_at = excluded.updated_at, generation = budgets.generation + 1",
    )
    .bind(department.to_string())
    .bind(monthly.0)
    .bind(Timestamp::now().0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// A budget alert as recorded.
#[derive(Debug, Clone)]
pub struct BudgetAlertRow {
    pub department_id: DepartmentId,
    pub month: String,
    pub level: u32,
    pub at: Timestamp,
    pub spent: Money,
    pub budget: Money,
}

impl Decode for BudgetAlertRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(BudgetAlertRow {
            department_id: id(r, "department_id")?,
            month: text(r, "month")?,
            level: int(r, "level")? as u32,
            at: ts(r, "at")?,
            spent: Money(int(r, "spent_fen")?),
            budget: Money(int(r, "budget_fen")?),
        })
    }
}

/// Records an alert once per department, month and level; true when it is new.
pub async fn raise_alert(tx: &mut Tx, a: &BudgetAlertRow) -> Result<bool, Error> {
    let n = sqlx::query(
        "INSERT INTO budget_alerts (department_id, month, level, at, spent_fen, budget_fen) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (department_id, month, level) DO NOTHING",
    )
    .bind(a.department_id.to_string())
    .bind(&a.month)
    .bind(i64::from(a.level))
    .bind(a.at.0)
    .bind(a.spent.0)
    .bind(a.budget.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

pub async fn alerts(
    store: &Store,
    department: Option<DepartmentId>,
) -> Result<Vec<BudgetAlertRow>, Error> {
    let mut sql = Sql::new(
        "SELECT department_id, month, level, at, spent_fen, budget_fen FROM budget_alerts",
    );
    if let Some(d) = department {
        sql.push(" WHERE department_id = ").bind_text(d.to_string());
    }
    sql.push(" ORDER BY at DESC LIMIT 200");
    sql.fetch_all(store).await
}

// ---------------------------------------------------------------- reconciliations

/// A stored reconciliation: its id, provider, month, source name, report JSON and time.
#[derive(Debug, Clone)]
pub struct ReconciliationRow {
    pub id: String,
    pub provider_id: ProviderId,
    pub month: String,
    pub source: String,
    pub report: String,
    pub created_at: Timestamp,
}

impl Decode for ReconciliationRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(ReconciliationRow {
            id: text(r, "id")?,
            provider_id: id(r, "provider_id")?,
            month: text(r, "month")?,
            source: text(r, "source")?,
            report: text(r, "report")?,
            created_at: ts(r, "created_at")?,
        })
    }
}

pub async fn insert_reconciliation(
    tx: &mut Tx,
    r: &ReconciliationRow,
    by: UserId,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO reconciliations (id, provider_id, month, source, report, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.id)
    .bind(r.provider_id.to_string())
    .bind(&r.month)
    .bind(&r.source)
    .bind(&r.report)
    .bind(r.created_at.0)
    .bind(by.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn reconciliations(
    store: &Store,
    provider: Option<ProviderId>,
) -> Result<Vec<ReconciliationRow>, Error> {
    let mut sql =
        Sql::new("SELECT id, provider_id, month, source, report, created_at FROM reconciliations");
    if let Some(p) = provider {
        sql.push(" WHERE provider_id = ").bind_text(p.to_string());
    }
    sql.push(" ORDER BY created_at DESC LIMIT 100");
    sql.fetch_all(store).await
}

// ---------------------------------------------------------------- names

/// Names of every department, project and provider (bills carry names as of the close).
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub departments: std::collections::HashMap<String, String>,
    pub projects: std::collections::HashMap<String, String>,
    pub providers: std::collections::HashMap<String, String>,
}

pub async fn names(store: &Store) -> Result<Names, Error> {
    struct Row(String, String, String);
    impl Decode for Row {
        fn decode<R: Get>(r: &R) -> Result<Self, Error> {
            Ok(Row(text(r, "k")?, text(r, "id")?, text(r, "name")?))
        }
    }
    let rows: Vec<Row> = Sql::new(
        "SELECT 'd' AS k, id, name FROM departments UNION ALL SELECT 'p' AS k, id, name FROM projects \
         UNION ALL SELECT 'v' AS k, id, name FROM providers",
    )
    .fetch_all(store)
    .await?;
    let mut n = Names::default();
    for Row(k, id, name) in rows {
        match k.as_str() {
            "d" => n.departments.insert(id, name),
            "p" => n.projects.insert(id, name),
            _ => n.providers.insert(id, name),
        };
    }
    Ok(n)
}

/// Appends a ledger event as given (its `at` included). Only for loading demo data and
/// benchmarks: live changes go through [`meter_instance`] and [`meter_volume`].
pub async fn insert_event(tx: &mut Tx, e: &UsageEvent) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO usage_events (resource_id, kind, at, {SNAP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&e.resource_id)
    .bind(e.kind.as_str())
    .bind(e.at.0)
    .bind(e.status.as_str())
    .bind(&e.name)
    .bind(e.department_id.to_string())
    .bind(e.project_id.to_string())
    .bind(e.provider_id.map(|p| p.to_string()))
    .bind(&e.flavor)
    .bind(i64::from(e.vcpus))
    .bind(e.memory_mib as i64)
    .bind(e.disk_gib as i64)
    .bind(i64::from(e.gpus))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}
