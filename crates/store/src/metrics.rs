//! The embedded time-series store: `metric_blocks`, one row per (scope, entity,
//! resolution, block start) holding an encoded `zy_model::metrics::Block` of every series
//! of that entity. Written in batches by the collector (upserts of the blocks it changed),
//! read by block range for queries, trimmed by age per resolution. Also the one read of
//! what the collector measures (placed instances and hosts with their tenancy and place).

use crate::error::db_error;
use crate::Store;
use sqlx::Row;
use zy_model::metrics::Resolution;
use zy_model::Error;

/// One stored block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub scope: &'static str,
    pub entity: String,
    pub res: Resolution,
    pub block_start: i64,
    pub data: Vec<u8>,
}

/// Rows per statement and per transaction when writing, so one pass never holds the
/// writer for long.
const ROWS_PER_STATEMENT: usize = 400;
const ROWS_PER_TX: usize = 4000;

/// Inserts or replaces the blocks.
pub async fn write_blocks(store: &Store, rows: &[BlockRow]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    for tx_rows in rows.chunks(ROWS_PER_TX) {
        let mut tx = store.begin_write().await?;
        write_blocks_in(&mut tx, tx_rows).await?;
        tx.commit().await.map_err(db_error)?;
    }
    Ok(())
}

/// Inserts or replaces the blocks in the caller's transaction.
pub async fn write_blocks_in(tx: &mut crate::Tx, rows: &[BlockRow]) -> Result<(), Error> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let text = format!(
            "INSERT INTO metric_blocks (scope, entity, res, block_start, data) VALUES {} \
             ON CONFLICT (scope, entity, res, block_start) DO UPDATE SET data = excluded.data",
            crate::sql::value_rows(chunk.len(), 5)
        );
        let mut q = sqlx::query(&text);
        for r in chunk {
            q = q
                .bind(r.scope)
                .bind(r.entity.as_str())
                .bind(r.res.code())
                .bind(r.block_start)
                .bind(r.data.as_slice());
        }
        q.execute(&mut **tx).await.map_err(db_error)?;
    }
    Ok(())
}

/// The blocks of one entity at `res` whose start lies in `[from_block, to_block]`, in order.
pub async fn read_blocks(
    store: &Store,
    scope: &str,
    entity: &str,
    res: Resolution,
    from_block: i64,
    to_block: i64,
) -> Result<Vec<(i64, Vec<u8>)>, Error> {
    let rows = sqlx::query(
        "SELECT block_start, data FROM metric_blocks WHERE scope = $1 AND entity = $2 AND res = $3 \
         AND block_start >= $4 AND block_start <= $5 ORDER BY block_start",
    )
    .bind(scope)
    .bind(entity)
    .bind(res.code())
    .bind(from_block)
    .bind(to_block)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>(0).map_err(db_error)?,
                r.try_get::<Vec<u8>, _>(1).map_err(db_error)?,
            ))
        })
        .collect()
}

/// Every entity's block of `res` starting at `block_start` (the collector's blocks in
/// progress, read back after a restart or a change of replica): (scope, entity, data).
pub async fn blocks_at(
    store: &Store,
    res: Resolution,
    block_start: i64,
) -> Result<Vec<(String, String, Vec<u8>)>, Error> {
    let rows = sqlx::query(
        "SELECT scope, entity, data FROM metric_blocks WHERE res = $1 AND block_start = $2",
    )
    .bind(res.code())
    .bind(block_start)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
                r.try_get(2).map_err(db_error)?,
            ))
        })
        .collect()
}

/// Retention: removes the blocks of `res` that end before `before` (epoch seconds).
pub async fn trim(store: &Store, res: Resolution, before: i64) -> Result<u64, Error> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM metric_blocks WHERE res = $1 AND block_start < $2")
        .bind(res.code())
        .bind(before - res.block_secs())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    tx.commit().await.map_err(db_error)?;
    Ok(n)
}

/// Total size of the stored blocks, per resolution: (res, rows, bytes of encoded data).
pub async fn footprint(store: &Store) -> Result<Vec<(i64, i64, i64)>, Error> {
    let len = match store.backend() {
        crate::Backend::Sqlite => "LENGTH(data)",
        crate::Backend::Postgres => "OCTET_LENGTH(data)",
    };
    let rows = sqlx::query(&format!(
        "SELECT res, COUNT(*), CAST(COALESCE(SUM({len}), 0) AS BIGINT) FROM metric_blocks GROUP BY res ORDER BY res"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
                r.try_get(2).map_err(db_error)?,
            ))
        })
        .collect()
}

/// A placed instance as the collector needs it.
#[derive(Debug, Clone)]
pub struct MeteredInstance {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub department_id: String,
    pub zone_id: String,
    pub provider_id: String,
    pub host_id: String,
    pub state: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
}

/// A host as the collector needs it.
#[derive(Debug, Clone)]
pub struct MeteredHost {
    pub id: String,
    pub name: String,
    pub zone_id: String,
    pub provider_id: String,
    pub vcpus: i64,
    pub memory_mib: i64,
}

/// Every host and every instance placed on one (not deleted).
pub async fn metered(store: &Store) -> Result<(Vec<MeteredHost>, Vec<MeteredInstance>), Error> {
    let hosts = sqlx::query("SELECT id, zone_id, provider_id, vcpus, memory_mib, name FROM hosts")
        .fetch_all(store.pool())
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| {
            Ok(MeteredHost {
                id: r.try_get(0).map_err(db_error)?,
                zone_id: r.try_get(1).map_err(db_error)?,
                provider_id: r.try_get(2).map_err(db_error)?,
                vcpus: r.try_get(3).map_err(db_error)?,
                memory_mib: r.try_get(4).map_err(db_error)?,
                name: r.try_get(5).map_err(db_error)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let instances = sqlx::query(
        "SELECT id, project_id, department_id, zone_id, provider_id, host_id, state, vcpus, memory_mib, disk_gib, name \
         FROM instances WHERE host_id IS NOT NULL AND zone_id IS NOT NULL AND provider_id IS NOT NULL \
         AND state NOT IN ('deleted', 'deleting')",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?
    .iter()
    .map(|r| {
        Ok(MeteredInstance {
            id: r.try_get(0).map_err(db_error)?,
            project_id: r.try_get(1).map_err(db_error)?,
            department_id: r.try_get(2).map_err(db_error)?,
            zone_id: r.try_get(3).map_err(db_error)?,
            provider_id: r.try_get(4).map_err(db_error)?,
            host_id: r.try_get(5).map_err(db_error)?,
            state: r.try_get(6).map_err(db_error)?,
            vcpus: r.try_get(7).map_err(db_error)?,
            memory_mib: r.try_get(8).map_err(db_error)?,
            disk_gib: r.try_get(9).map_err(db_error)?,
            name: r.try_get(10).map_err(db_error)?,
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    Ok((hosts, instances))
}

/// The blocks of many entities of one scope at `res` starting in `[from_block, to_block]`:
/// (entity, data), in block order per entity. Read 500 entities per statement.
pub async fn read_blocks_many(
    store: &Store,
    scope: &str,
    entities: &[String],
    res: Resolution,
    from_block: i64,
    to_block: i64,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    for chunk in entities.chunks(500) {
        let mut text = String::from(
            "SELECT entity, data FROM metric_blocks WHERE scope = $1 AND res = $2 AND block_start >= $3 AND block_start <= $4 AND entity IN (",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("${}", i + 5));
        }
        text.push_str(") ORDER BY entity, block_start");
        let mut q = sqlx::query(&text)
            .bind(scope)
            .bind(res.code())
            .bind(from_block)
            .bind(to_block);
        for e in chunk {
            q = q.bind(e.as_str());
        }
        for r in q.fetch_all(store.pool()).await.map_err(db_error)? {
            out.push((
                r.try_get(0).map_err(db_error)?,
                r.try_get(1).map_err(db_error)?,
            ));
        }
    }
    Ok(out)
}

/// A minute in which an instance that should run was unreachable for most readings
/// (`minute` in seconds since the epoch, a multiple of 60).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownMinute {
    pub instance_id: String,
    pub provider_id: String,
    pub minute: i64,
    pub readings: i64,
    pub missed: i64,
}

/// Records down minutes; one already recorded (a replica that took over and counted the
/// same minute again) is kept as it was.
pub async fn record_down_minutes(store: &Store, rows: &[DownMinute]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin_write().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let text = format!(
            "INSERT INTO instance_down_minutes (instance_id, provider_id, minute, readings, missed) \
             VALUES {} ON CONFLICT (instance_id, minute) DO NOTHING",
            crate::sql::value_rows(chunk.len(), 5)
        );
        let mut q = sqlx::query(&text);
        for r in chunk {
            q = q
                .bind(r.instance_id.as_str())
                .bind(r.provider_id.as_str())
                .bind(r.minute)
                .bind(r.readings)
                .bind(r.missed);
        }
        q.execute(&mut *tx).await.map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

impl crate::rows::Decode for DownMinute {
    fn decode<R: crate::rows::Get>(r: &R) -> Result<Self, Error> {
        use crate::rows::{int, text};
        Ok(DownMinute {
            instance_id: text(r, "instance_id")?,
            provider_id: text(r, "provider_id")?,
            minute: int(r, "minute")?,
            readings: int(r, "readings")?,
            missed: int(r, "missed")?,
        })
    }
}

/// A provider's down minutes in `[from, to)` (seconds).
pub async fn down_minutes(
    store: &Store,
    provider_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<DownMinute>, Error> {
    let mut q = crate::sql::Sql::new(
        "SELECT instance_id, provider_id, minute, readings, missed FROM instance_down_minutes \
         WHERE provider_id = ",
    );
    q.bind_text(provider_id);
    q.push(" AND minute >= ").bind(crate::sql::Arg::I64(from));
    q.push(" AND minute < ").bind(crate::sql::Arg::I64(to));
    q.fetch_all(store).await
}

/// The latest reading of an instance on a provider cloud (table `provider_readings`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderReading {
    pub instance_id: String,
    pub provider_id: String,
    /// When it was read, epoch milliseconds.
    pub read_at: i64,
    /// Whether the provider ran the instance at that moment.
    pub running: bool,
    /// The raw counters (JSON), kept for the next reading's rates.
    pub counters: Option<String>,
    /// The derived series (JSON array), what the collector writes for the instance.
    pub figures: Option<String>,
}

/// Inserts or replaces readings, in one transaction (the caller has finished talking to
/// the provider: no remote call runs while it is open).
pub async fn put_provider_readings(store: &Store, rows: &[ProviderReading]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin_write().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let text = format!(
            "INSERT INTO provider_readings (instance_id, provider_id, read_at, running, counters, figures) VALUES {} \
             ON CONFLICT (instance_id) DO UPDATE SET provider_id = excluded.provider_id, read_at = excluded.read_at, \
             running = excluded.running, counters = excluded.counters, figures = excluded.figures",
            crate::sql::value_rows(chunk.len(), 6)
        );
        let mut q = sqlx::query(&text);
        for r in chunk {
            q = q
                .bind(r.instance_id.as_str())
                .bind(r.provider_id.as_str())
                .bind(r.read_at)
                .bind(i64::from(r.running))
                .bind(r.counters.as_deref())
                .bind(r.figures.as_deref());
        }
        q.execute(&mut *tx).await.map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(())
}

/// The readings taken at or after `since` (epoch ms), of one provider or of all.
pub async fn provider_readings(
    store: &Store,
    provider: Option<&str>,
    since: i64,
) -> Result<Vec<ProviderReading>, Error> {
    let rows = sqlx::query(
        "SELECT instance_id, provider_id, read_at, running, counters, figures FROM provider_readings \
         WHERE read_at >= $1 AND ($2 = '' OR provider_id = $2)",
    )
    .bind(since)
    .bind(provider.unwrap_or(""))
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok(ProviderReading {
                instance_id: r.try_get(0).map_err(db_error)?,
                provider_id: r.try_get(1).map_err(db_error)?,
                read_at: r.try_get(2).map_err(db_error)?,
                running: r.try_get::<i64, _>(3).map_err(db_error)? != 0,
                counters: r.try_get(4).map_err(db_error)?,
                figures: r.try_get(5).map_err(db_error)?,
            })
        })
        .collect()
}

/// Removes the readings older than `before` (epoch ms): instances stopped or deleted
/// since, whose counters no later reading can continue.
pub async fn trim_provider_readings(store: &Store, before: i64) -> Result<u64, Error> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM provider_readings WHERE read_at < $1")
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    tx.commit().await.map_err(db_error)?;
    Ok(n)
}
