//! Inventory: providers, zones, hosts (with their capacity claims), storage pools, flavors
//! and images. Host capacity changes only by conditional updates that re-check the
//! overcommitted limits in the database, so no two replicas can oversubscribe a host.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::Error;

impl Decode for Provider {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Provider {
            id: id(r, "id")?,
            name: text(r, "name")?,
            kind: text(r, "kind")?,
            simulated: int(r, "simulated")? != 0,
            description: text(r, "description")?,
            created_at: ts(r, "created_at")?,
            generation: int(r, "generation")?,
        })
    }
}

pub async fn insert_provider(tx: &mut Tx, p: &Provider, config: &str) -> Result<(), Error> {
    sqlx::query("INSERT INTO providers (id, name, kind, simulated, description, config, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(p.id.to_string())
        .bind(&p.name)
        .bind(&p.kind)
        .bind(i64::from(p.simulated))
        .bind(&p.description)
        .bind(config)
        .bind(p.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// A provider's name, for messages.
pub async fn provider_name<'c>(
    e: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: ProviderId,
) -> Result<Option<String>, Error> {
    sqlx::query_scalar("SELECT name FROM providers WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)
}

/// The provider an infrastructure object (`host`, `zone` or `provider`) belongs to;
/// `None` when it does not exist or is not infrastructure.
pub async fn provider_of<'c>(
    e: impl sqlx::Executor<'c, Database = sqlx::Any>,
    kind: &str,
    id: &str,
) -> Result<Option<ProviderId>, Error> {
    let sql = match kind {
        "host" => "SELECT provider_id FROM hosts WHERE id = $1",
        "zone" => "SELECT provider_id FROM zones WHERE id = $1",
        "provider" => "SELECT id FROM providers WHERE id = $1",
        _ => return Ok(None),
    };
    let found: Option<String> = sqlx::query_scalar(sql)
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    Ok(found.and_then(|p| p.parse().ok()))
}

pub async fn providers(store: &Store) -> Result<Vec<(Provider, String)>, Error> {
    let rows = sqlx::query("SELECT id, name, kind, simulated, description, config, created_at, generation FROM providers ORDER BY name")
        .fetch_all(store.pool())
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| Ok((Provider::decode(r)?, text(r, "config")?)))
        .collect()
}

pub async fn set_provider_config(tx: &mut Tx, id: ProviderId, config: &str) -> Result<(), Error> {
    let n =
        sqlx::query("UPDATE providers SET config = $1, generation = generation + 1 WHERE id = $2")
            .bind(config)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    if n == 0 {
        return Err(Error::not_found("provider", id));
    }
    Ok(())
}

impl Decode for Zone {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Zone {
            id: id(r, "id")?,
            provider_id: id(r, "provider_id")?,
            region: text(r, "region")?,
            name: text(r, "name")?,
            strategy: if text(r, "strategy")? == "spread" {
                Strategy::Spread
            } else {
                Strategy::Pack
            },
            created_at: ts(r, "created_at")?,
        })
    }
}

pub async fn insert_zone(tx: &mut Tx, z: &Zone) -> Result<(), Error> {
    write_zone(tx, z, "").await.map(|_| ())
}

/// Inserts a zone unless the provider has one of that name already (a concurrent
/// synchronisation made it); returns whether this call inserted it.
pub async fn insert_zone_if_absent(tx: &mut Tx, z: &Zone) -> Result<bool, Error> {
    write_zone(tx, z, " ON CONFLICT (provider_id, name) DO NOTHING").await
}

async fn write_zone(tx: &mut Tx, z: &Zone, on_conflict: &str) -> Result<bool, Error> {
    let sql = format!("INSERT INTO zones (id, provider_id, region, name, strategy, created_at) VALUES ($1, $2, $3, $4, $5, $6){on_conflict}");
    let r = sqlx::query(&sql)
        .bind(z.id.to_string())
        .bind(z.provider_id.to_string())
        .bind(&z.region)
        .bind(&z.name)
        .bind(if z.strategy == Strategy::Spread {
            "spread"
        } else {
            "pack"
        })
        .bind(z.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(r.rows_affected() == 1)
}

pub async fn zones(store: &Store) -> Result<Vec<Zone>, Error> {
    Sql::new(
        "SELECT id, provider_id, region, name, strategy, created_at FROM zones ORDER BY name, id",
    )
    .fetch_all(store)
    .await
}

const HOST_COLS: &str = "id, zone_id, provider_id, name, slot, vcpus, memory_mib, disk_gib, gpus, cpu_ratio_permille, mem_ratio_permille, \
    state, used_vcpus, used_memory_mib, used_disk_gib, used_gpus, created_at, generation, ha_state, group_id";

/// A host with its scheduler slot.
#[derive(Debug, Clone)]
pub struct HostRow {
    pub host: Host,
    pub slot: u32,
}

impl Decode for HostRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let state = text(r, "state")?;
        Ok(HostRow {
            slot: int(r, "slot")? as u32,
            host: Host {
                id: id(r, "id")?,
                zone_id: id(r, "zone_id")?,
                provider_id: id(r, "provider_id")?,
                name: text(r, "name")?,
                vcpus: int(r, "vcpus")? as u32,
                memory_mib: int(r, "memory_mib")? as u64,
                disk_gib: int(r, "disk_gib")? as u64,
                gpus: int(r, "gpus")? as u32,
                cpu_ratio_permille: int(r, "cpu_ratio_permille")? as u32,
                mem_ratio_permille: int(r, "mem_ratio_permille")? as u32,
                state: HostState::parse(&state).unwrap_or(HostState::Down),
                used_vcpus: int(r, "used_vcpus")? as u32,
                used_memory_mib: int(r, "used_memory_mib")? as u64,
                used_disk_gib: int(r, "used_disk_gib")? as u64,
                used_gpus: int(r, "used_gpus")? as u32,
                created_at: ts(r, "created_at")?,
                generation: int(r, "generation")?,
                ha_state: HostHaState::parse(&text(r, "ha_state")?).unwrap_or(HostHaState::Ok),
                group_id: opt_id(r, "group_id")?,
            },
        })
    }
}

/// Inserts hosts, giving each the next free scheduler slot.
pub async fn insert_hosts(tx: &mut Tx, hosts: &[Host]) -> Result<(), Error> {
    let next: Option<i64> = sqlx::query_scalar("SELECT MAX(slot) FROM hosts")
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    let first = next.map(|s| s + 1).unwrap_or(0);
    for (slot, h) in (first..).zip(hosts) {
        sqlx::query(
            "INSERT INTO hosts (id, zone_id, provider_id, name, slot, vcpus, memory_mib, disk_gib, gpus, cpu_ratio_permille, mem_ratio_permille, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(h.id.to_string())
        .bind(h.zone_id.to_string())
        .bind(h.provider_id.to_string())
        .bind(&h.name)
        .bind(slot)
        .bind(h.vcpus as i64)
        .bind(h.memory_mib as i64)
        .bind(h.disk_gib as i64)
        .bind(h.gpus as i64)
        .bind(h.cpu_ratio_permille as i64)
        .bind(h.mem_ratio_permille as i64)
        .bind(h.state.as_str())
        .bind(h.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

pub async fn hosts(store: &Store, provider: Option<ProviderId>) -> Result<Vec<HostRow>, Error> {
    let mut sql = Sql::new(&format!("SELECT {HOST_COLS} FROM hosts WHERE 1 = 1"));
    if let Some(p) = provider {
        sql.push(" AND provider_id = ").bind_text(p.to_string());
    }
    sql.push(" ORDER BY slot");
    sql.fetch_all(store).await
}

pub async fn host<'c>(
    e: impl Executor<'c, Database = Any>,
    id: HostId,
) -> Result<Option<HostRow>, Error> {
    let r = sqlx::query(&format!("SELECT {HOST_COLS} FROM hosts WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(HostRow::decode).transpose()
}

pub async fn set_host_state(tx: &mut Tx, id: HostId, state: HostState) -> Result<(), Error> {
    let n = sqlx::query("UPDATE hosts SET state = $1, generation = generation + 1 WHERE id = $2")
        .bind(state.as_str())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("host", id));
    }
    Ok(())
}

/// What an instance takes from a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demand {
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    pub gpus: i64,
}

/// Takes `d` from the host if it still fits its overcommitted capacity and the host is
/// enabled. False when it does not (another replica was faster, or the host changed).
pub async fn claim_capacity(tx: &mut Tx, host: HostId, d: Demand) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE hosts SET used_vcpus = used_vcpus + $1, used_memory_mib = used_memory_mib + $2, \
         used_disk_gib = used_disk_gib + $3, used_gpus = used_gpus + $4, generation = generation + 1 \
         WHERE id = $5 AND state = 'enabled' \
         AND used_vcpus + $1 <= vcpus * cpu_ratio_permille / 1000 \
         AND used_memory_mib + $2 <= memory_mib * mem_ratio_permille / 1000 \
         AND used_disk_gib + $3 <= disk_gib AND used_gpus + $4 <= gpus",
    )
    .bind(d.vcpus)
    .bind(d.memory_mib)
    .bind(d.disk_gib)
    .bind(d.gpus)
    .bind(host.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Gives `d` back to the host (never below zero).
pub async fn release_capacity(tx: &mut Tx, host: HostId, d: Demand) -> Result<(), Error> {
    sqlx::query(
        "UPDATE hosts SET \
         used_vcpus = CASE WHEN used_vcpus >= $1 THEN used_vcpus - $1 ELSE 0 END, \
         used_memory_mib = CASE WHEN used_memory_mib >= $2 THEN used_memory_mib - $2 ELSE 0 END, \
         used_disk_gib = CASE WHEN used_disk_gib >= $3 THEN used_disk_gib - $3 ELSE 0 END, \
         used_gpus = CASE WHEN used_gpus >= $4 THEN used_gpus - $4 ELSE 0 END, generation = generation + 1 WHERE id = $5",
    )
    .bind(d.vcpus)
    .bind(d.memory_mib)
    .bind(d.disk_gib)
    .bind(d.gpus)
    .bind(host.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

impl Decode for StoragePool {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(StoragePool {
            id: id(r, "id")?,
            zone_id: id(r, "zone_id")?,
            name: text(r, "name")?,
            capacity_gib: int(r, "capacity_gib")? as u64,
            used_gib: int(r, "used_gib")? as u64,
            created_at: ts(r, "created_at")?,
            kind: PoolKind::parse(&text(r, "kind")?).unwrap_or(PoolKind::Local),
            path: opt_text(r, "path")?,
        })
    }
}

pub async fn insert_pool(tx: &mut Tx, p: &StoragePool) -> Result<(), Error> {
    sqlx::query("INSERT INTO storage_pools (id, zone_id, name, capacity_gib, created_at, kind, path) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(p.id.to_string())
        .bind(p.zone_id.to_string())
        .bind(&p.name)
        .bind(p.capacity_gib as i64)
        .bind(p.created_at.0)
        .bind(p.kind.as_str())
        .bind(p.path.clone())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn pools(store: &Store) -> Result<Vec<StoragePool>, Error> {
    Sql::new("SELECT id, zone_id, name, capacity_gib, used_gib, created_at, kind, path FROM storage_pools ORDER BY name, id").fetch_all(store).await
}

/// Takes (or, negative, gives back) pool space; false when it would not fit.
pub async fn claim_pool(tx: &mut Tx, pool: StoragePoolId, gib: i64) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE storage_pools SET used_gib = used_gib + $1, generation = generation + 1 WHERE id = $2 AND used_gib + $1 <= capacity_gib AND used_gib + $1 >= 0")
        .bind(gib)
        .bind(pool.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

impl Decode for Flavor {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Flavor {
            id: id(r, "id")?,
            name: text(r, "name")?,
            vcpus: int(r, "vcpus")? as u32,
            memory_mib: int(r, "memory_mib")? as u64,
            gpus: int(r, "gpus")? as u32,
            created_at: ts(r, "created_at")?,
        })
    }
}

pub async fn insert_flavor(tx: &mut Tx, f: &Flavor) -> Result<(), Error> {
    sqlx::query("INSERT INTO flavors (id, name, vcpus, memory_mib, gpus, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(f.id.to_string())
        .bind(&f.name)
        .bind(f.vcpus as i64)
        .bind(f.memory_mib as i64)
        .bind(f.gpus as i64)
        .bind(f.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn flavors(store: &Store) -> Result<Vec<Flavor>, Error> {
    Sql::new("SELECT id, name, vcpus, memory_mib, gpus, created_at FROM flavors ORDER BY vcpus, memory_mib, name").fetch_all(store).await
}

impl Decode for Image {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let providers = text(r, "providers")?;
        Ok(Image {
            id: id(r, "id")?,
            name: text(r, "name")?,
            os: text(r, "os")?,
            min_disk_gib: int(r, "min_disk_gib")? as u64,
            providers: providers
                .split(',')
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect(),
            created_at: ts(r, "created_at")?,
        })
    }
}

pub async fn insert_image(tx: &mut Tx, i: &Image) -> Result<(), Error> {
    let providers: Vec<String> = i.providers.iter().map(|p| p.to_string()).collect();
    sqlx::query("INSERT INTO images (id, name, os, min_disk_gib, providers, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(i.id.to_string())
        .bind(&i.name)
        .bind(&i.os)
        .bind(i.min_disk_gib as i64)
        .bind(providers.join(","))
        .bind(i.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn images(store: &Store) -> Result<Vec<Image>, Error> {
    Sql::new("SELECT id, name, os, min_disk_gib, providers, created_at FROM images ORDER BY name")
        .fetch_all(store)
        .await
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Changes how the scheduler fills a zone.
pub async fn set_zone_strategy(tx: &mut Tx, id: ZoneId, strategy: Strategy) -> Result<(), Error> {
    let n = sqlx::query("UPDATE zones SET strategy = $1 WHERE id = $2")
        .bind(if strategy == Strategy::Spread {
            "spread"
        } else {
            "pack"
        })
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("zone", id));
    }
    Ok(())
}

/// Sets the capacity of a host whose capacity comes from elsewhere (a provider cloud's
/// hypervisor); what is in use stays as it is.
pub async fn set_host_capacity(
    tx: &mut Tx,
    id: HostId,
    vcpus: u32,
    memory_mib: u64,
    disk_gib: u64,
    state: HostState,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE hosts SET vcpus = $1, memory_mib = $2, disk_gib = $3, state = $4, generation = generation + 1 WHERE id = $5",
    )
    .bind(vcpus as i64)
    .bind(memory_mib as i64)
    .bind(disk_gib as i64)
    .bind(state.as_str())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}
