//! The control plane's own work as operators see it: sagas (multi-step changes with
//! undo) and background tasks (periodic work shared between replicas).

use crate::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

/// Where a saga is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaState {
    /// Taking its actions, first to last.
    Running,
    /// An action failed for good: taking the undos of what was done, last to first.
    Undoing,
    /// Every action done.
    Done,
    /// Every undo done: nothing of the saga is left.
    Undone,
}

impl SagaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Running => "running",
            SagaState::Undoing => "undoing",
            SagaState::Done => "done",
            SagaState::Undone => "undone",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => SagaState::Running,
            "undoing" => SagaState::Undoing,
            "done" => SagaState::Done,
            "undone" => SagaState::Undone,
            _ => return None,
        })
    }
    pub fn active(self) -> bool {
        matches!(self, SagaState::Running | SagaState::Undoing)
    }
}

/// One saga as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Saga {
    pub id: String,
    /// `instance_create`, `volume_attach`, …
    pub kind: String,
    /// The instance or volume it works on.
    pub target_id: String,
    pub state: SagaState,
    /// The step it is at (running) or undoing (undoing); the last step when finished.
    pub step: String,
    /// Every step of this kind of saga, in order.
    pub steps: Vec<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A background task's last run on one replica.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskStatus {
    /// `reconciler`, `saga_executor`, `host_monitor`, …
    pub name: String,
    /// The replica that ran it.
    pub replica: String,
    /// Whether it runs on exactly one replica at a time.
    pub singleton: bool,
    /// Whether this replica holds the task's lease now (always true for per-replica tasks).
    pub active: bool,
    pub period_ms: i64,
    pub runs: i64,
    pub failures: i64,
    pub last_started: Option<Timestamp>,
    pub last_duration_ms: Option<i64>,
    /// `ok` or `error`.
    pub last_outcome: Option<String>,
    /// What the last run did, as the task reports it.
    #[schema(value_type = Object)]
    pub last_status: serde_json::Value,
    pub last_error: Option<String>,
    pub next_run: Option<Timestamp>,
    /// When the replica last reported (a replica that stopped reporting is gone).
    pub heartbeat: Timestamp,
}
