-- Operations (issue 15 items 4–6): tickets (工单) with their timeline, inspection plans
-- (巡检) with their runs and per-check results, monthly provider SLA scores
-- (服务质量考核) and the adjustment lines they put on a provider's bill.

-- A ticket: open → accepted (the provider responded) → resolved → closed (the department
-- confirmed and rated it); a resolved ticket may be reopened (back to accepted). Every
-- transition is a conditional update on `state` and `generation`.
CREATE TABLE tickets (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    priority          TEXT NOT NULL,
    state             TEXT NOT NULL,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    department_id     TEXT,
    provider_id       TEXT,
    subject_kind      TEXT,
    subject_id        TEXT,
    -- user, alert, inspection
    source            TEXT NOT NULL,
    -- alert:<rule>:<target>, inspection:<check>:<provider>; one open ticket per key.
    source_key        TEXT,
    opened_by         TEXT NOT NULL,
    opened_at         INTEGER NOT NULL,
    respond_by        INTEGER NOT NULL,
    resolve_by        INTEGER NOT NULL,
    responded_at      INTEGER,
    resolved_at       INTEGER,
    closed_at         INTEGER,
    assignee          TEXT,
    escalation        INTEGER NOT NULL DEFAULT 0,
    response_missed   INTEGER NOT NULL DEFAULT 0,
    resolution_missed INTEGER NOT NULL DEFAULT 0,
    rating            INTEGER,
    generation        INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX tickets_provider_idx ON tickets (provider_id, opened_at);
CREATE INDEX tickets_department_idx ON tickets (department_id, opened_at);
CREATE INDEX tickets_state_idx ON tickets (state, respond_by);
CREATE UNIQUE INDEX tickets_open_source_key ON tickets (source_key)
    WHERE source_key IS NOT NULL AND state <> 'closed';

CREATE TABLE ticket_events (
    id        TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    note      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ticket_events_ticket_idx ON ticket_events (ticket_id, at);

-- Alert rules may open a ticket when they fire.
ALTER TABLE alert_rules ADD COLUMN open_ticket INTEGER NOT NULL DEFAULT 0;

-- Inspection plans: which checks, at which hour (Asia/Shanghai) each day; `owner` is
-- platform (the platform admin's plans) or auditor (audit chain verification).
-- `last_day` is the local day of the last scheduled run, claimed by a conditional update.
CREATE TABLE inspection_plans (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    checks      TEXT NOT NULL,
    hour        INTEGER NOT NULL,
    owner       TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    last_day    TEXT,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT inspection_plans_name_key UNIQUE (name)
);

CREATE TABLE inspection_runs (
    id          TEXT PRIMARY KEY,
    plan_id     TEXT NOT NULL,
    plan_name   TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    passed      INTEGER NOT NULL,
    checks      INTEGER NOT NULL,
    failed      INTEGER NOT NULL
);
CREATE INDEX inspection_runs_started_idx ON inspection_runs (started_at);

-- One row per check and provider of a run (provider '' for platform-wide checks).
CREATE TABLE inspection_results (
    run_id      TEXT NOT NULL REFERENCES inspection_runs (id),
    seq         INTEGER NOT NULL,
    check_name  TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    passed      INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    ticket_id   TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX inspection_results_provider_idx ON inspection_results (provider_id, at);

-- A provider's SLA score of a month, with every input it was computed from (JSON).
CREATE TABLE sla_scores (
    month       TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    score       REAL NOT NULL,
    inputs      TEXT NOT NULL,
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (month, provider_id)
);

-- Adjustment lines on what the city owes a provider for a month; one per source, so
-- recomputing the SLA credit replaces its own line.
CREATE TABLE provider_bill_adjustments (
    month       TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    source      TEXT NOT NULL,
    amount_fen  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (month, provider_id, source)
);
