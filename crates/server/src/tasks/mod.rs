//! The one background-task runner. Every piece of periodic work — the saga executor, the
//! instance reconciler, the host monitor, the placement refresh, and later lease expiry,
//! month close, HA, backups and SLA timers — is a [`Task`]: `activate()` does one pass
//! and returns a small JSON status. The runner calls it every period (or at once when
//! woken), records each run's duration and outcome in `task_runs` for operators
//! (`GET /v1/system/tasks`), catches panics and errors (a failing task is reported, never
//! silent) and, for singleton tasks, holds a lease in `task_leases` renewed while the
//! work runs, so exactly one replica runs them.

pub mod builtin;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::Store;

/// One kind of periodic work.
pub trait Task: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Time between runs when nothing wakes the task.
    fn period(&self) -> Duration;
    /// Whether exactly one replica runs it at a time.
    fn singleton(&self) -> bool {
        false
    }
    /// Wakes the task before its period is over (new work arrived).
    fn waker(&self) -> Option<Arc<Notify>> {
        None
    }
    /// One pass; the status says what it did, for operators.
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>>;
}

/// Runs tasks until dropped.
pub struct Runner {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// How long a singleton's lease lasts beyond its period; renewed at a third of it.
fn lease_for(period: Duration) -> Duration {
    (period * 3).max(Duration::from_secs(10))
}

/// A run is recorded at least this often, and whenever it fails or its status changes.
const RECORD_EVERY: Duration = Duration::from_secs(5);

impl Runner {
    /// Stops every task and waits until each has let go of what it held (database
    /// connections above all), so the store can be closed cleanly after this.
    pub async fn stop(mut self) {
        let handles = std::mem::take(&mut self.handles);
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let _ = h.await;
        }
    }

    pub fn start(store: Store, replica: String, tasks: Vec<Arc<dyn Task>>) -> Runner {
        let handles = tasks
            .into_iter()
            .map(|t| tokio::spawn(drive(store.clone(), replica.clone(), t)))
            .collect();
        Runner { handles }
    }
}

async fn drive(store: Store, replica: String, task: Arc<dyn Task>) {
    let period = task.period();
    let waker = task.waker();
    let mut last_record: Option<(Instant, serde_json::Value)> = None;
    loop {
        if task.singleton() && !hold_lease(&store, &*task, &replica).await {
            if last_record
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() > RECORD_EVERY)
            {
                let _ = zy_store::tasks::standby(&store, task.name(), &replica, ms(period)).await;
                last_record = Some((Instant::now(), serde_json::Value::Null));
            }
            tokio::time::sleep(period.max(Duration::from_secs(1))).await;
            continue;
        }
        let started = Timestamp::now();
        let clock = Instant::now();
        // Renew the singleton's lease while the pass runs, however long it takes.
        // Aborted when dropped, so a runner stopped mid-pass leaves no renewer behind.
        let renewer = task.singleton().then(|| {
            let (store, replica, t) = (store.clone(), replica.clone(), task.clone());
            AbortOnDrop(tokio::spawn(async move {
                let every = lease_for(t.period()) / 3;
                loop {
                    tokio::time::sleep(every).await;
                    if !hold_lease(&store, &*t, &replica).await {
                        tracing::warn!(task = t.name(), "lost the task's lease while running");
                    }
                }
            }))
        });
        // A panic in the task is caught and reported as a failure. The pass runs inside
        // this tokio task, so stopping the runner drops it at once.
        let result = match std::panic::AssertUnwindSafe(task.activate())
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(_) => Err(Error::internal("the task panicked")),
        };
        drop(renewer);
        let duration = clock.elapsed();
        let (ok, status, error) = match result {
            Ok(s) => (true, s, None),
            Err(e) => {
                let msg = format!(
                    "{}{}",
                    e.message.en,
                    e.internal
                        .as_deref()
                        .map(|i| format!(": {i}"))
                        .unwrap_or_default()
                );
                tracing::warn!(task = task.name(), error = %msg, "background task failed");
                (false, serde_json::Value::Null, Some(msg))
            }
        };
        let due = last_record
            .as_ref()
            .is_none_or(|(at, last)| at.elapsed() > RECORD_EVERY || *last != status || !ok);
        if due {
            let run = zy_store::tasks::Run {
                name: task.name(),
                replica: &replica,
                singleton: task.singleton(),
                period_ms: ms(period),
                started,
                duration_ms: duration.as_millis() as i64,
                ok,
                status: &status.to_string(),
                error: error.as_deref(),
                next_run: Timestamp(started.0 + ms(period) * 1000),
            };
            if let Err(e) = zy_store::tasks::record(&store, &run).await {
                tracing::debug!(task = task.name(), error = %e, "cannot record a task run");
            }
            last_record = Some((Instant::now(), status));
        }
        match &waker {
            Some(w) => {
                tokio::select! {
                    _ = w.notified() => {}
                    _ = tokio::time::sleep(period) => {}
                }
            }
            None => tokio::time::sleep(period).await,
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn hold_lease(store: &Store, task: &dyn Task, replica: &str) -> bool {
    let now = Timestamp::now();
    let until = Timestamp(now.0 + ms(lease_for(task.period())) * 1000);
    zy_store::tasks::acquire(store, task.name(), replica, now, until)
        .await
        .unwrap_or(false)
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}
