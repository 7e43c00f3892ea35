//! Live migration as a saga: (1) the target prepares an empty disk and a paused QEMU
//! waiting for the stream, (2) the source mirrors its disk and memory there and hands
//! over, (3) the target resumes. The target's capacity was claimed when the migration
//! was accepted; success moves the instance and releases the source's, failure undoes
//! the target's preparation and releases its claim. QEMU keeps the source running when a
//! migration fails, so an undo never loses the guest.
//!
//! If the replica dies mid-way, [`settle`] (run at start) asks both hosts where the guest
//! runs now and finishes or undoes accordingly.

use super::saga::{demand, spec};
use super::Compute;
use std::sync::Arc;
use zy_compute::agent::MigrationReport;
use zy_compute::PowerState;
use zy_model::agents::{Migration, MigrationState};
use zy_model::compute::InstanceState;
use zy_model::Error;
use zy_store::{agents, instances, Store};

pub async fn run(c: Arc<Compute>, store: Store, m: Migration) {
    let result = attempt(&c, &store, &m).await;
    match result {
        Ok(report) => settle(c, store, m, Some(Ok(report))).await,
        Err(e) => settle(c, store, m, Some(Err(e))).await,
    }
}

async fn attempt(c: &Compute, store: &Store, m: &Migration) -> Result<MigrationReport, String> {
    let row = instances::get(store.pool(), m.instance_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the instance vanished")?;
    let provider = row
        .instance
        .provider_id
        .ok_or("the instance has no provider")?;
    let driver = c.drivers.get(provider).map_err(|e| e.message.en.clone())?;
    let mut target_spec = spec(&row).ok_or("the instance has no host")?;
    target_spec.host_id = m.target_host_id.0;
    let endpoint = driver
        .prepare_incoming(&target_spec)
        .await
        .map_err(|e| format!("target host could not prepare: {e}"))?;
    let report = driver
        .migrate_out(m.instance_id.0, m.source_host_id.0, &endpoint)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    driver
        .finish_incoming(m.instance_id.0, m.target_host_id.0)
        .await
        .map_err(|e| format!("target host could not resume the guest: {e}"))?;
    Ok(report)
}

/// Ends a migration in the database according to `outcome`, or — when the outcome is
/// unknown (a replica died mid-way) — according to where the guest runs now.
pub async fn settle(
    c: Arc<Compute>,
    store: Store,
    m: Migration,
    outcome: Option<Result<MigrationReport, String>>,
) {
    let outcome = match outcome {
        Some(Ok(r)) => Ok(r),
        // A failure reported after the hand-over (a lost answer, a failed resume call)
        // must not throw away the only running copy: look where the guest runs first.
        Some(Err(why)) => match where_it_runs(&c, &store, &m).await {
            Some(true) => Ok(MigrationReport::default()),
            _ => Err(why),
        },
        None => match where_it_runs(&c, &store, &m).await {
            Some(true) => Ok(MigrationReport::default()),
            _ => Err("the control plane restarted during the migration; undone".into()),
        },
    };
    let r = match outcome {
        Ok(report) => complete(&c, &store, &m, &report).await,
        Err(why) => {
            tracing::warn!(instance = %m.instance_id, error = %why, "live migration failed; undoing");
            undo(&c, &store, &m, &why).await
        }
    };
    if let Err(e) = r {
        tracing::error!(migration = %m.id, error = %e, internal = e.internal.as_deref().unwrap_or(""), "cannot record the end of a migration");
    }
    c.wake.notify_one();
}

/// True when the guest runs on the target and not on the source.
async fn where_it_runs(c: &Compute, store: &Store, m: &Migration) -> Option<bool> {
    let row = instances::get(store.pool(), m.instance_id).await.ok()??;
    let driver = c.drivers.get(row.instance.provider_id?).ok()?;
    let target = driver
        .status(m.instance_id.0, m.target_host_id.0)
        .await
        .ok()?;
    let source = driver
        .status(m.instance_id.0, m.source_host_id.0)
        .await
        .ok()?;
    Some(target == PowerState::Running && source != PowerState::Running)
}

async fn complete(
    c: &Compute,
    store: &Store,
    m: &Migration,
    r: &MigrationReport,
) -> Result<(), Error> {
    let Some(row) = instances::get(store.pool(), m.instance_id).await? else {
        return Ok(());
    };
    let d = demand(&row.instance);
    let mut tx = store.begin_write().await?;
    if !agents::finish_migration(
        &mut tx,
        m.id,
        MigrationState::Completed,
        Some(r.downtime_ms),
        Some(r.total_ms),
        None,
    )
    .await?
    {
        return Ok(());
    }
    if agents::move_instance(&mut tx, m.instance_id, m.source_host_id, m.target_host_id).await? {
        zy_store::inventory::release_capacity(&mut tx, m.source_host_id, d).await?;
    }
    instances::transition(
        &mut tx,
        m.instance_id,
        InstanceState::Migrating,
        InstanceState::Running,
        &format!(
            "live-migrated from host {} to host {} (downtime {} ms, {} ms in all)",
            m.source_host_id, m.target_host_id, r.downtime_ms, r.total_ms
        ),
    )
    .await?;
    instances::request_pass(&mut tx, m.instance_id).await?;
    tx.commit().await.map_err(zy_store::db_error)?;
    reload_hosts(c, store, m).await;
    Ok(())
}

async fn undo(c: &Compute, store: &Store, m: &Migration, why: &str) -> Result<(), Error> {
    if let Some(row) = instances::get(store.pool(), m.instance_id).await? {
        if let Some(p) = row.instance.provider_id {
            if let Ok(driver) = c.drivers.get(p) {
                if let Err(e) = driver
                    .abort_incoming(m.instance_id.0, m.target_host_id.0)
                    .await
                {
                    tracing::warn!(error = %e, "the target could not throw away the prepared guest; the next check will show it");
                }
            }
        }
        let d = demand(&row.instance);
        let mut tx = store.begin_write().await?;
        if !agents::finish_migration(&mut tx, m.id, MigrationState::Failed, None, None, Some(why))
            .await?
        {
            return Ok(());
        }
        zy_store::inventory::release_capacity(&mut tx, m.target_host_id, d).await?;
        instances::transition(
            &mut tx,
            m.instance_id,
            InstanceState::Migrating,
            InstanceState::Running,
            &format!("live migration to host {} failed: {why}", m.target_host_id),
        )
        .await?;
        instances::request_pass(&mut tx, m.instance_id).await?;
        tx.commit().await.map_err(zy_store::db_error)?;
        reload_hosts(c, store, m).await;
    }
    Ok(())
}

async fn reload_hosts(c: &Compute, store: &Store, m: &Migration) {
    for h in [m.source_host_id, m.target_host_id] {
        if let Ok(Some(row)) = zy_store::inventory::host(store.pool(), h).await {
            c.placement.upsert(&[row]);
        }
    }
}
