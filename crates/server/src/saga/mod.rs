//! The one saga engine. A saga is a named list of steps, each an action with an undo;
//! its progress lives in the `sagas` table, so whichever replica holds its lease can
//! resume it after a crash. Actions run first to last; when one fails for good the
//! undos run last to first, starting with the failed step's own (a step may have done
//! part of its work before failing, so every undo must be safe whether or not its action
//! ran). Every action and undo is idempotent: a step may run again after a crash between
//! its effect and the record of its progress.
//!
//! A step that writes to the database records its progress in the same transaction
//! ([`Cx::commit`]): the update of the saga row is conditional on the lease and the step,
//! so a replica that lost its lease cannot commit a step's effects twice.
//!
//! Definitions are static values implementing [`SagaDef`], listed in [`registry`]. The
//! test hooks ([`Hooks`]) run every action twice or fail a chosen step; tests derive
//! which steps to fail from the definitions themselves.

use crate::compute::Compute;
use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::sagas::{self, NewSaga, SagaRow, SagaState};
use zy_store::{db_error, Store, Tx};

/// How a step went wrong.
#[derive(Debug, Clone)]
pub enum StepError {
    /// Worth another try later (a transient driver failure, a busy database).
    Retry(String),
    /// Retrying will not help: undo the saga.
    Fail(String),
    /// The outcome is unknown (a host did not answer where a guest runs): try again
    /// later without counting it as a failure, however long it takes.
    Wait(String),
    /// Another replica took the saga over (our lease ran out): stop touching it.
    LostLease,
}

impl StepError {
    /// The same error with what was being done in front of its message.
    pub fn with_context(self, what: &str) -> StepError {
        match self {
            StepError::Retry(m) => StepError::Retry(format!("{what}: {m}")),
            StepError::Fail(m) => StepError::Fail(format!("{what}: {m}")),
            StepError::Wait(m) => StepError::Wait(format!("{what}: {m}")),
            StepError::LostLease => StepError::LostLease,
        }
    }

    fn message(&self) -> String {
        match self {
            StepError::Retry(m) | StepError::Fail(m) | StepError::Wait(m) => m.clone(),
            StepError::LostLease => "lease lost to another replica".into(),
        }
    }
}

impl From<zy_compute::DriverError> for StepError {
    fn from(e: zy_compute::DriverError) -> Self {
        match e {
            zy_compute::DriverError::Transient(m) => StepError::Retry(m),
            zy_compute::DriverError::InProgress(m) => StepError::Wait(m),
            other => StepError::Fail(other.to_string()),
        }
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Retry(format!(
            "{}: {}",
            e.message.en,
            e.internal.unwrap_or_default()
        ))
    }
}

pub type StepResult = Result<(), StepError>;

/// One kind of saga.
pub trait SagaDef: Send + Sync + 'static {
    /// Stored in `sagas.kind`: `instance_create`, `volume_attach`, …
    fn kind(&self) -> &'static str;
    /// The steps in order; the index is what [`SagaDef::action`] and [`SagaDef::undo`] get.
    fn steps(&self) -> &'static [&'static str];
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult>;
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult>;
    /// Runs in the transaction that ends the saga (`Done` or `Undone`): the place to
    /// record the outcome on the target and to start whatever comes next.
    fn finished<'a>(
        &'a self,
        _cx: &'a Cx,
        _tx: &'a mut Tx,
        _outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    /// Steps the code that starts the saga has done in the starting transaction (e.g. a
    /// reservation); the engine begins after them, and undoes them like any other.
    fn done_by_starter(&self) -> usize {
        0
    }
    /// Tries of a step that keeps failing transiently before the saga is undone.
    fn max_attempts(&self) -> i64 {
        4
    }
    /// Forward-only sagas (a delete) never undo: failures are retried until they pass.
    fn forward_only(&self) -> bool {
        false
    }
}

/// Every saga the engine can run.
pub fn registry() -> &'static [&'static dyn SagaDef] {
    static ALL: std::sync::LazyLock<Vec<&'static dyn SagaDef>> = std::sync::LazyLock::new(|| {
        let mut v = crate::compute::sagas::ALL.to_vec();
        v.push(&crate::requests::delivery::DELIVERY);
        v
    });
    &ALL
}

pub fn definition(kind: &str) -> Option<&'static dyn SagaDef> {
    registry().iter().copied().find(|d| d.kind() == kind)
}

/// What a step runs with: the platform, the saga's row and the data earlier steps left.
pub struct Cx {
    pub compute: Arc<Compute>,
    pub store: Store,
    pub row: SagaRow,
    /// Earlier steps' records for later steps and undos (`sagas.data`).
    pub data: serde_json::Value,
    def: &'static dyn SagaDef,
    owner: String,
    /// The progress this step records when it commits; `None` once recorded (or in a
    /// test run that must not record).
    pending: Option<((SagaState, i64), (SagaState, i64))>,
}

impl Cx {
    /// The saga's inputs, as the code that started it wrote them.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, StepError> {
        serde_json::from_str(&self.row.params)
            .map_err(|e| StepError::Fail(format!("saga {} has bad params: {e}", self.row.id)))
    }

    /// Begins a write transaction holding the lock of the saga's target, the order every
    /// change of that object takes (see `Store::begin_write_for`).
    pub async fn begin(&self) -> Result<Tx, StepError> {
        Ok(self.store.begin_write_for(&self.row.target_id).await?)
    }

    /// Commits the step's last transaction together with the saga's progress. Fails with
    /// [`StepError::LostLease`] (rolling the step's changes back) when the saga is no
    /// longer ours.
    pub async fn commit(&mut self, mut tx: Tx) -> StepResult {
        if let Some((from, to)) = self.pending.take() {
            let data = self.data.to_string();
            let err = self.row.error.clone();
            if !sagas::advance(
                &mut tx,
                &self.row.id,
                &self.owner,
                from,
                to,
                &data,
                err.as_deref(),
            )
            .await?
            {
                return Err(StepError::LostLease);
            }
            if !to.0.active() {
                self.def.finished(self, &mut tx, to.0).await?;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }
}

/// Test hooks, off in production: run each action twice (the first time without
/// recording progress, as if the replica died right after the step's effects), or fail a
/// chosen step once, after its effects.
#[derive(Default)]
pub struct Hooks {
    pub twice: AtomicBool,
    fail_at: Mutex<Option<(String, String)>>,
}

impl Hooks {
    /// The next run of `step` of sagas of `kind` fails (once) after doing its work.
    pub fn fail_once(&self, kind: &str, step: &str) {
        if let Ok(mut g) = self.fail_at.lock() {
            *g = Some((kind.to_string(), step.to_string()));
        }
    }

    /// Whether the armed failure has not happened yet.
    pub fn armed(&self) -> bool {
        self.fail_at.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    fn should_fail(&self, kind: &str, step: &str) -> bool {
        let Ok(mut g) = self.fail_at.lock() else {
            return false;
        };
        let hit = g.as_ref().is_some_and(|(k, s)| k == kind && s == step);
        if hit {
            *g = None;
        }
        hit
    }
}

/// Starts a saga in the caller's transaction (false when the target already has an
/// active saga). Wake the executor after committing.
pub async fn start(
    tx: &mut Tx,
    def: &'static dyn SagaDef,
    target: &str,
    params: &impl serde::Serialize,
) -> Result<Option<String>, Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let started = sagas::start(
        tx,
        &NewSaga {
            id: id.clone(),
            kind: def.kind(),
            target_id: target.to_string(),
            params: serde_json::to_string(params).map_err(|e| Error::internal(e.to_string()))?,
            step: def.done_by_starter() as i64,
        },
    )
    .await?;
    Ok(started.then_some(id))
}

/// How a run of a saga ended for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished(SagaState),
    /// Put back in the queue for a later try.
    Later,
    /// Taken over by another replica.
    Lost,
}

fn backoff_ms(attempts: i64) -> i64 {
    // 200 ms, 400 ms, 800 ms … capped at 30 s.
    (200i64 << attempts.clamp(0, 8)).min(30_000)
}

/// Marks a saga as run by this replica until dropped. Leases are per replica, so this is
/// what keeps the executor and a request that runs its own saga at once from running the
/// same saga side by side.
struct Running {
    c: Arc<Compute>,
    id: String,
}

impl Running {
    fn enter(c: &Arc<Compute>, id: &str) -> Option<Running> {
        let mut set = c.running_sagas.lock().ok()?;
        set.insert(id.to_string()).then(|| Running {
            c: c.clone(),
            id: id.to_string(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut set) = self.c.running_sagas.lock() {
            set.remove(&self.id);
        }
    }
}

/// Runs a claimed saga as far as it goes now.
pub async fn run(c: Arc<Compute>, store: Store, row: SagaRow) -> Outcome {
    let Some(_running) = Running::enter(&c, &row.id) else {
        // Already running here (a request runs it at once); that run goes on with it.
        return Outcome::Lost;
    };
    run_entered(c, store, row).await
}

async fn run_entered(c: Arc<Compute>, store: Store, row: SagaRow) -> Outcome {
    let Some(def) = definition(&row.kind) else {
        tracing::error!(saga = %row.id, kind = %row.kind, "no definition for this saga kind; left for a newer server");
        let _ = sagas::retry_later(
            &store,
            &row.id,
            &c.owner,
            row.attempts,
            Timestamp::now().plus_secs(60),
            "unknown saga kind",
        )
        .await;
        return Outcome::Later;
    };
    let data = serde_json::from_str(&row.data).unwrap_or_else(|_| serde_json::json!({}));
    let mut cx = Cx {
        compute: c.clone(),
        store: store.clone(),
        owner: c.owner.clone(),
        row,
        data,
        def,
        pending: None,
    };
    let steps = def.steps();
    loop {
        let (state, step) = (cx.row.state, cx.row.step);
        let idx = (step.max(0) as usize).min(steps.len().saturating_sub(1));
        let next = match state {
            SagaState::Running if idx + 1 >= steps.len() => (SagaState::Done, step + 1),
            SagaState::Running => (SagaState::Running, step + 1),
            SagaState::Undoing if step <= 0 => (SagaState::Undone, 0),
            SagaState::Undoing => (SagaState::Undoing, step - 1),
            SagaState::Done | SagaState::Undone => return Outcome::Finished(state),
        };
        let r = match run_step(&mut cx, idx, ((state, step), next)).await {
            Ok(()) if cx.pending.is_some() => {
                // The step did not record its progress with its own changes: record it.
                match cx.begin().await {
                    Ok(tx) => cx.commit(tx).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match r {
            Ok(()) => {
                cx.row.state = next.0;
                cx.row.step = next.1;
                cx.row.attempts = 0;
            }
            Err(e) => return settle_error(&mut cx, e).await,
        }
    }
}

type Progress = ((SagaState, i64), (SagaState, i64));

async fn run_step(cx: &mut Cx, idx: usize, progress: Progress) -> StepResult {
    let def = cx.def;
    let forward = progress.0 .0 == SagaState::Running;
    if cx.compute.saga_hooks.twice.load(Ordering::Relaxed) {
        // The effects without the record of progress, as if the replica died just after.
        cx.pending = None;
        if forward {
            def.action(cx, idx).await?;
        } else {
            def.undo(cx, idx).await?;
        }
    }
    let name = def.steps()[idx];
    if forward && cx.compute.saga_hooks.should_fail(def.kind(), name) {
        cx.pending = None;
        if let Err(e) = def.action(cx, idx).await {
            // Not done yet (e.g. still waiting): inject the failure after it succeeds.
            cx.compute.saga_hooks.fail_once(def.kind(), name);
            return Err(e);
        }
        return Err(StepError::Fail(format!("injected failure at step {name}")));
    }
    cx.pending = Some(progress);
    if forward {
        def.action(cx, idx).await
    } else {
        def.undo(cx, idx).await
    }
}

/// After a step failed: undo, retry later, or give up on the lease.
async fn settle_error(cx: &mut Cx, e: StepError) -> Outcome {
    let def = cx.def;
    let row = cx.row.clone();
    let msg = e.message();
    let attempts = row.attempts + 1;
    let give_up = match &e {
        StepError::LostLease => return Outcome::Lost,
        StepError::Wait(_) => false,
        StepError::Fail(_) => true,
        StepError::Retry(_) => attempts >= def.max_attempts(),
    };
    if give_up && row.state == SagaState::Running && !def.forward_only() {
        tracing::info!(saga = %row.id, kind = %row.kind, step = row.step, error = %msg, "saga step failed; undoing");
        // Undo from the failed step itself down to the first.
        cx.row.error = Some(msg.clone());
        cx.pending = Some((
            (SagaState::Running, row.step),
            (SagaState::Undoing, row.step),
        ));
        let r = async {
            let tx = cx.begin().await?;
            cx.commit(tx).await
        }
        .await;
        return match r {
            Ok(()) => {
                cx.row.state = SagaState::Undoing;
                cx.row.attempts = 0;
                Box::pin(run_entered(
                    cx.compute.clone(),
                    cx.store.clone(),
                    cx.row.clone(),
                ))
                .await
            }
            Err(StepError::LostLease) => Outcome::Lost,
            Err(e2) => later(cx, attempts, &format!("{msg}; {}", e2.message())).await,
        };
    }
    if give_up && row.state == SagaState::Undoing {
        // An undo that keeps failing is retried, more slowly, until it passes: stopping
        // half-way would leave exactly what undo exists to remove.
        tracing::warn!(saga = %row.id, kind = %row.kind, step = row.step, error = %msg, "saga undo step failed; will retry");
    }
    let attempts = if matches!(e, StepError::Wait(_)) {
        row.attempts.min(6)
    } else {
        attempts
    };
    later(cx, attempts, &msg).await
}

async fn later(cx: &Cx, attempts: i64, msg: &str) -> Outcome {
    let at = Timestamp(Timestamp::now().0 + backoff_ms(attempts) * 1000);
    match sagas::retry_later(&cx.store, &cx.row.id, &cx.owner, attempts, at, msg).await {
        Ok(true) => Outcome::Later,
        Ok(false) => Outcome::Lost,
        Err(e) => {
            // The lease runs out and the saga is picked up again; nothing is lost.
            tracing::warn!(saga = %cx.row.id, error = %e, "cannot record a saga retry");
            Outcome::Later
        }
    }
}

/// Claims a saga just started by this request and runs it at once, so simple sagas
/// finish before the answer; when another replica already took it, or it has to wait for
/// a retry, the executor goes on with it.
pub async fn run_now(c: &Arc<Compute>, store: &Store, id: &str, lease_secs: i64) -> Outcome {
    let now = Timestamp::now();
    match sagas::claim_one(store, id, &c.owner, now, now.plus_secs(lease_secs)).await {
        Ok(Some(row)) => run(c.clone(), store.clone(), row).await,
        Ok(None) => Outcome::Lost,
        Err(_) => Outcome::Later,
    }
}

/// Waits up to `limit` for a saga to end; its final state, or `None` if it is still
/// active then (it goes on in the background).
pub async fn wait(
    store: &Store,
    id: &str,
    limit: std::time::Duration,
) -> Result<Option<SagaState>, Error> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match sagas::get(store.pool(), id).await? {
            Some(r) if !r.state.active() => return Ok(Some(r.state)),
            None => return Ok(None),
            Some(_) if std::time::Instant::now() >= deadline => return Ok(None),
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
        }
    }
}

/// The API's view of a saga row.
pub fn view(row: &SagaRow) -> zy_model::ops::Saga {
    let steps: Vec<String> = definition(&row.kind)
        .map(|d| d.steps().iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    let idx = (row.step.max(0) as usize).min(steps.len().saturating_sub(1));
    zy_model::ops::Saga {
        id: row.id.clone(),
        kind: row.kind.clone(),
        target_id: row.target_id.clone(),
        state: row.state,
        step: steps.get(idx).cloned().unwrap_or_default(),
        steps,
        attempts: row.attempts,
        error: row.error.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        finished_at: row.finished_at,
    }
}
