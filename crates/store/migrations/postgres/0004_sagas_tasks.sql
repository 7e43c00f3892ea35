-- The saga engine and the background-task runner (PostgreSQL).

-- One row per saga: what it is for, how far it got, and who runs it now. Progress is
-- recorded step by step; a saga whose lease runs out is resumed (or undone) by
-- whichever replica claims it next.
CREATE TABLE sagas (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    -- The object the saga works on (an instance, a volume); at most one active saga each.
    target_id       TEXT NOT NULL,
    -- Inputs fixed when the saga was started, as JSON.
    params          TEXT NOT NULL DEFAULT '{}',
    -- What earlier steps recorded for later steps and undos, as JSON.
    data            TEXT NOT NULL DEFAULT '{}',
    -- running → done, or running → undoing → undone.
    state           TEXT NOT NULL,
    -- running: the next action to take; undoing: the next undo to take (counting down).
    step            BIGINT NOT NULL DEFAULT 0,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE UNIQUE INDEX sagas_one_active ON sagas (target_id) WHERE state IN ('running', 'undoing');
CREATE INDEX sagas_runnable_idx ON sagas (next_attempt_at) WHERE state IN ('running', 'undoing');
CREATE INDEX sagas_target_idx ON sagas (target_id, created_at);

-- Singleton background tasks: the replica holding the lease runs the task.
CREATE TABLE task_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);

-- What each replica's runs of each task did, for operators.
CREATE TABLE task_runs (
    name           TEXT NOT NULL,
    replica        TEXT NOT NULL,
    singleton      BIGINT NOT NULL,
    period_ms      BIGINT NOT NULL,
    runs           BIGINT NOT NULL DEFAULT 0,
    failures       BIGINT NOT NULL DEFAULT 0,
    last_started   BIGINT,
    last_duration_ms BIGINT,
    last_outcome   TEXT,
    last_status    TEXT NOT NULL DEFAULT '{}',
    last_error     TEXT,
    next_run       BIGINT,
    heartbeat      BIGINT NOT NULL,
    PRIMARY KEY (name, replica)
);
