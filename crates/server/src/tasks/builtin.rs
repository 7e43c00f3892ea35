//! The control plane's own background tasks.
//!
//! | task | runs on | period | does |
//! |---|---|---|---|
//! | `saga_executor` | every replica | 250 ms, or woken | claims runnable sagas (a lease each, renewed while they run) and runs them, up to 256 at a time, claiming more every 200 ms while any runs |
//! | `saga_lease_keeper` | every replica | a third of the lease | renews the leases of the sagas this replica runs |
//! | `instance_reconciler` | one replica | 1 s | starts the saga each instance waits for (`work = 1` without an active saga) |
//! | `host_monitor` | every replica | 2 s | heartbeats of the agents, guest crashes and power-offs |
//! | `placement_refresh` | every replica | 30 s | re-reads host usage other replicas changed |
//!
//! Tasks that belong to one use case live with it: `lease_manager` (one replica, 1 s:
//! leases and the recycle bin) in `app/leases.rs`, `refused_attempts_audit` in `refusals.rs`,
//! `metrics_collector` and `alert_evaluator` (one replica each, every 10 s) in `monitoring/`,
//! `network_push` (one replica, every second or woken: the hosts' network state) in
//! `app/dataplane.rs`, `openstack_sync` (one replica, 60 s) in `app/openstack.rs` and
//! `openstack_metrics` (one replica, 60 s: Nova's diagnostics of OpenStack instances) in
//! `monitoring/openstack.rs`.
//! | `budget_watch` | one replica | 60 s | raises each department's 80 % and 100 % budget alerts of the month, once each |

use super::Task;
use crate::compute::sagas::instance::ensure_next;
use crate::compute::{monitor, Compute};
use crate::saga::{self, Outcome};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::{sagas, Store};

/// Sagas one replica runs at a time.
const IN_FLIGHT: usize = 256;

/// How often the executor looks for sagas that became runnable (a retry's time came)
/// while others run; a wake (a saga just started) looks at once.
const CLAIM_EVERY: Duration = Duration::from_millis(200);

pub fn all(c: &Arc<Compute>, store: &Store, lease_secs: i64) -> Vec<Arc<dyn Task>> {
    vec![
        Arc::new(SagaExecutor {
            c: c.clone(),
            store: store.clone(),
            lease_secs,
        }),
        Arc::new(SagaLeaseKeeper {
            c: c.clone(),
            store: store.clone(),
            lease_secs,
        }),
        Arc::new(InstanceReconciler {
            c: c.clone(),
            store: store.clone(),
        }),
        Arc::new(HostMonitor {
            c: c.clone(),
            store: store.clone(),
            memory: Default::default(),
        }),
        Arc::new(PlacementRefresh {
            c: c.clone(),
            store: store.clone(),
        }),
        Arc::new(BudgetWatch {
            store: store.clone(),
        }),
    ]
}

pub struct SagaExecutor {
    c: Arc<Compute>,
    store: Store,
    lease_secs: i64,
}

impl Task for SagaExecutor {
    fn name(&self) -> &'static str {
        "saga_executor"
    }
    fn period(&self) -> Duration {
        Duration::from_millis(250)
    }
    fn waker(&self) -> Option<Arc<Notify>> {
        Some(self.c.wake.clone())
    }
    /// Runs until nothing is left in flight. New sagas are claimed whenever there is
    /// room and one is due, not only after everything claimed before has ended: a saga that
    /// runs for minutes (a live migration) never holds back the others' retries.
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let mut tally = Tally::default();
            let mut set = tokio::task::JoinSet::new();
            let mut failed = None;
            let mut due = true;
            loop {
                if due && set.len() < IN_FLIGHT && failed.is_none() {
                    let now = Timestamp::now();
                    match sagas::claim(
                        &self.store,
                        &self.c.owner,
                        now,
                        now.plus_secs(self.lease_secs),
                        (IN_FLIGHT - set.len()) as u32,
                    )
                    .await
                    {
                        Ok(batch) => {
                            tally.claimed += batch.len();
                            for row in batch {
                                set.spawn(saga::run(self.c.clone(), self.store.clone(), row));
                            }
                        }
                        // The sagas in flight still finish; the error is reported after.
                        Err(e) => failed = Some(e),
                    }
                }
                if set.is_empty() {
                    break;
                }
                due = tokio::select! {
                    Some(r) = set.join_next() => {
                        tally.add(r);
                        false
                    }
                    _ = self.c.wake.notified() => true,
                    _ = tokio::time::sleep(CLAIM_EVERY) => true,
                };
                while let Some(r) = set.try_join_next() {
                    tally.add(r);
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(tally.status()),
            }
        })
    }
}

/// What one activation of the executor did, for operators.
#[derive(Default)]
struct Tally {
    claimed: usize,
    done: usize,
    undone: usize,
    later: usize,
    lost: usize,
}

impl Tally {
    fn add(&mut self, r: Result<Outcome, tokio::task::JoinError>) {
        match r {
            Ok(Outcome::Finished(zy_store::sagas::SagaState::Done)) => self.done += 1,
            Ok(Outcome::Finished(_)) => self.undone += 1,
            Ok(Outcome::Later) => self.later += 1,
            Ok(Outcome::Lost) => self.lost += 1,
            // A panicking step: its lease runs out and it is tried again.
            Err(e) => {
                tracing::error!(error = %e, "a saga step panicked");
                self.later += 1
            }
        }
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "claimed": self.claimed, "done": self.done, "undone": self.undone,
            "retry_later": self.later, "lost": self.lost,
        })
    }
}

/// Keeps the leases of the sagas this replica runs alive, however long they take (a
/// live migration of a large guest runs for minutes).
pub struct SagaLeaseKeeper {
    c: Arc<Compute>,
    store: Store,
    lease_secs: i64,
}

impl Task for SagaLeaseKeeper {
    fn name(&self) -> &'static str {
        "saga_lease_keeper"
    }
    fn period(&self) -> Duration {
        Duration::from_millis((self.lease_secs * 1000 / 3).max(300) as u64)
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let until = Timestamp::now().plus_secs(self.lease_secs);
            let renewed = sagas::renew(&self.store, &self.c.owner, until).await?;
            Ok(serde_json::json!({ "renewed": renewed }))
        })
    }
}

pub struct InstanceReconciler {
    c: Arc<Compute>,
    store: Store,
}

impl Task for InstanceReconciler {
    fn name(&self) -> &'static str {
        "instance_reconciler"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let waiting = zy_store::instances::waiting_for_saga(&self.store, 500).await?;
            let mut started = 0;
            for id in &waiting {
                let mut tx = self.store.begin_write_for(&id.to_string()).await?;
                if ensure_next(&mut tx, *id).await?.is_some() {
                    started += 1;
                }
                tx.commit().await.map_err(zy_store::db_error)?;
            }
            if started > 0 {
                self.c.wake.notify_one();
            }
            Ok(serde_json::json!({ "waiting": waiting.len(), "sagas_started": started }))
        })
    }
}

pub struct HostMonitor {
    c: Arc<Compute>,
    store: Store,
    memory: tokio::sync::Mutex<monitor::Memory>,
}

impl Task for HostMonitor {
    fn name(&self) -> &'static str {
        "host_monitor"
    }
    fn period(&self) -> Duration {
        monitor::INTERVAL
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let mut m = self.memory.lock().await;
            let (answered, agents) = monitor::poll(&self.c, &self.store, &mut m).await?;
            Ok(serde_json::json!({ "agents": agents, "answered": answered }))
        })
    }
}

pub struct PlacementRefresh {
    c: Arc<Compute>,
    store: Store,
}

impl Task for PlacementRefresh {
    fn name(&self) -> &'static str {
        "placement_refresh"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(30)
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            self.c.placement.load(&self.store).await?;
            Ok(serde_json::json!({ "reloaded": true }))
        })
    }
}

/// Raises budget alerts (`app::billing::watch_budgets`).
pub struct BudgetWatch {
    store: Store,
}

impl Task for BudgetWatch {
    fn name(&self) -> &'static str {
        "budget_watch"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let raised = crate::app::billing::watch_budgets(&self.store).await?;
            Ok(serde_json::json!({ "alerts_raised": raised }))
        })
    }
}
