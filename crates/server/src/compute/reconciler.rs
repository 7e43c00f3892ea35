//! The instance reconciler: claims instances that need work (a lease in the database, so
//! replicas share the work and a crashed replica's work is picked up when its lease runs
//! out), and drives each from its state towards its desired state one saga step at a
//! time. Transient failures retry with exponential backoff; a create that keeps failing
//! (or cannot be placed) is undone and ends in `error` holding nothing.

use super::saga::{self, Next, StepError};
use super::Compute;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use zy_model::compute::InstanceState;
use zy_model::time::Timestamp;
use zy_store::instances::{self, InstanceRow};
use zy_store::Store;

/// Tries of a step before a create is undone (or a start/stop gives up into `error`).
pub const MAX_ATTEMPTS: i64 = 4;
const BATCH: u32 = 256;

fn backoff(attempts: i64) -> i64 {
    // 200 ms, 400 ms, 800 ms … capped at 30 s.
    (200i64 << attempts.clamp(0, 8)).min(30_000)
}

/// Runs until the task is aborted.
pub async fn run(c: Arc<Compute>, store: Store, lease_secs: i64) {
    let mut last_reload = std::time::Instant::now();
    loop {
        // Other replicas release capacity this view never hears of: re-read it now and then.
        if last_reload.elapsed() > Duration::from_secs(30) {
            if let Err(e) = c.placement.load(&store).await {
                tracing::warn!(error = %e, "cannot reload the placement view");
            }
            last_reload = std::time::Instant::now();
        }
        let now = Timestamp::now();
        let batch = match instances::claim_work(
            &store,
            &c.owner,
            now,
            now.plus_secs(lease_secs),
            BATCH,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, internal = e.internal.as_deref().unwrap_or(""), "reconciler cannot claim work");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = c.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            continue;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for row in batch {
            let (c, store) = (c.clone(), store.clone());
            tasks.spawn(async move { pass(&c, &store, row).await });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// One pass over one instance: steps until it is where it should be, or a step fails.
pub async fn pass(c: &Compute, store: &Store, mut row: InstanceRow) {
    let id = row.instance.id;
    for _ in 0..16 {
        let result = if row.attempts >= MAX_ATTEMPTS && in_create(&row) {
            let reason = row
                .instance
                .last_error
                .clone()
                .unwrap_or_else(|| "create failed repeatedly".into());
            saga::undo_create(
                c,
                store,
                &row,
                &format!("创建失败，已回滚 / create failed and was undone: {reason}"),
            )
            .await
            .map(|_| Next::Done)
        } else {
            let mut r = step(c, store, &row).await;
            if c.repeat_steps.load(Ordering::Relaxed) && r.is_ok() {
                // Idempotency check: the same step again, on the same (now stale) view.
                r = step(c, store, &row).await;
            }
            r
        };
        match result {
            Ok(Next::Continue) => match instances::get(store.pool(), id).await {
                Ok(Some(r)) => row = r,
                _ => return finish(store, &row, None, None).await,
            },
            Ok(Next::Done) => return finish(store, &row, None, None).await,
            Ok(Next::Finished) => return,
            Err(StepError::Fail(msg)) if in_create(&row) => {
                let reason = format!("创建失败，已回滚 / create failed and was undone: {msg}");
                match saga::undo_create(c, store, &row, &reason).await {
                    Ok(()) => return finish(store, &row, None, Some(&msg)).await,
                    Err(e) => return retry(store, &row, &format!("{e:?}")).await,
                }
            }
            Err(StepError::Fail(msg)) | Err(StepError::Retry(msg)) => {
                return retry(store, &row, &msg).await
            }
        }
    }
    // Still moving after many steps (requests kept arriving): come back soon.
    retry(store, &row, "more work pending").await
}

fn in_create(row: &InstanceRow) -> bool {
    matches!(
        row.instance.state,
        InstanceState::Pending | InstanceState::Scheduling | InstanceState::Provisioning
    ) && row.instance.desired != InstanceState::Deleted
}

async fn step(c: &Compute, store: &Store, row: &InstanceRow) -> saga::StepResult {
    let i = &row.instance;
    if i.state == InstanceState::Migrating {
        // The migration owns the instance until it ends; it then asks for another pass,
        // which applies whatever was requested meanwhile (a stop, a delete).
        return Ok(Next::Done);
    }
    if i.desired == InstanceState::Deleted {
        return match i.state {
            InstanceState::Deleted => Ok(Next::Done),
            _ => saga::delete(c, store, row).await,
        };
    }
    match i.state {
        InstanceState::Pending | InstanceState::Scheduling => saga::schedule(c, store, row).await,
        InstanceState::Provisioning => saga::provision(c, store, row).await,
        InstanceState::Running | InstanceState::Stopped => {
            saga::converge_power(c, store, row).await
        }
        InstanceState::Migrating
        | InstanceState::Error
        | InstanceState::Deleting
        | InstanceState::Deleted => Ok(Next::Done),
    }
}

async fn finish(
    store: &Store,
    row: &InstanceRow,
    retry_at: Option<Timestamp>,
    error: Option<&str>,
) {
    let attempts = if retry_at.is_some() {
        row.attempts + 1
    } else {
        0
    };
    let r = async {
        let mut tx = store.begin_write().await?;
        instances::finish_pass(&mut tx, row.instance.id, retry_at, error, attempts).await?;
        tx.commit().await.map_err(zy_store::db_error)
    }
    .await;
    if let Err(e) = r {
        // The lease runs out and the instance is picked up again; nothing is lost.
        tracing::warn!(instance = %row.instance.id, error = %e, "cannot record reconciler progress");
    }
}

async fn retry(store: &Store, row: &InstanceRow, msg: &str) {
    tracing::debug!(instance = %row.instance.id, attempts = row.attempts + 1, msg, "step failed; will retry");
    if row.attempts + 1 >= MAX_ATTEMPTS
        && !in_create(row)
        && row.instance.desired != InstanceState::Deleted
    {
        // A start or stop that keeps failing: give up into error (resources stay held
        // until the instance is deleted).
        let r = async {
            let mut tx = store.begin_write().await?;
            instances::transition(
                &mut tx,
                row.instance.id,
                row.instance.state,
                InstanceState::Error,
                &format!("gave up: {msg}"),
            )
            .await?;
            tx.commit().await.map_err(zy_store::db_error)
        }
        .await;
        if r.is_ok() {
            return finish(store, row, None, Some(msg)).await;
        }
    }
    let at = Timestamp::now().plus_secs(0).0 + backoff(row.attempts) * 1000;
    finish(store, row, Some(Timestamp(at)), Some(msg)).await
}
